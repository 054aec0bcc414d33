//! The clsf compiler: policies read, resolved and type-checked against a
//! schema into the engine's plan, and what is built on that (reports,
//! bundles, policy tests, diffs, suggestions, verification).
//!
//! Nothing here talks to a database: a schema comes in as a value (from a
//! lock file, or from `clsf-catalog` in `clsfc`), and plans go out as
//! values. The plan, the schema model and the statement engine are
//! `clsf-engine`'s, re-exported below.

pub mod bundle;
pub mod codes;
pub mod diagnostics;
pub mod diff;
pub mod load;
pub mod policy;
pub mod policy_test;
pub mod report;
pub mod resolve;
pub mod schema;
pub mod signing;
pub mod stdlib;
pub mod suggest;
#[cfg(feature = "verify")]
pub mod verify;

/// The statement engine and what it decides on, from `clsf-engine`.
pub use clsf_engine::{self as engine, cedar, glob, masks, plan};
pub use clsf_engine::{Engine, Plan};
