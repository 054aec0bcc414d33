//! The PostgreSQL client of clsf's tools: connecting the way libpq's URLs
//! say (`connect`, with verified TLS through rustls) and reading a live
//! catalog into the engine's schema model (`pull`), and the control plane's
//! table of published policy bundles (`bundles`). `clsfc` pulls schema
//! locks with it and samples values for `suggest`; the proxy connects its
//! control plane and builds its upstream TLS configuration with it.
//!
//! The compiler does not depend on this crate: it checks policies against a
//! schema it is given, so it builds without a database client.

pub mod bundles;
pub mod connect;
mod error;
pub mod pull;

pub use error::PullError;
