//! The clsf compiler: the schema model and its discovery, name resolution
//! and type checking of policies, Cedar generation, the compiled plan, and
//! the statement engine shared by `clsfc` and the proxy.
//!
//! Only `schema::pull` talks to a database; everything else takes values and
//! returns values.

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
