//! The end-to-end test harness: a real PostgreSQL cluster per test, the
//! proxy running in-process on a loopback port, real tokens, and helpers to
//! drive the real `psql` and `clsfc` binaries.
//!
//! Every dependency is required: a missing PostgreSQL or psql fails the
//! test with a message saying what to install; nothing is skipped.

pub mod admin;
pub mod bins;
pub mod certs;
pub mod client;
pub mod fixture;
pub mod https;
pub mod identity;
pub mod pgbench;
pub mod postgres;
pub mod programs;
pub mod proxy;
pub mod psql;
pub mod raw;
pub mod shared;
pub mod trail;
