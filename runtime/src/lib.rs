//! The clsf enforcement proxy: PostgreSQL wire protocol on both sides,
//! workload-token authentication, the gateway-held upstream credential, the
//! statement engine applied to every query, and the audit trail.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod central_audit;
pub mod config;
pub mod control_plane;
pub mod distribution;
pub mod drift;
pub mod extended;
pub mod http_client;
pub mod keys;
pub mod mcp;
pub mod metrics;
pub mod otel;
pub mod reload;
pub mod scram;
pub mod serve;
pub mod server;
pub mod session;
pub mod start;
pub mod timeline;
pub mod tls;
pub mod upstream;
pub use clsf_wire as wire;
