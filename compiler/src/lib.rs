//! The clsf compiler: the schema model and its discovery, name resolution
//! and type checking of policies, Cedar generation, the compiled plan, and
//! the statement engine shared by `clsfc` and the proxy.
//!
//! Only `schema::pull` talks to a database; everything else takes values and
//! returns values.

pub mod bundle;
pub mod cedar;
pub mod codes;
pub mod diagnostics;
pub mod diff;
pub mod engine;
pub mod glob;
pub mod load;
pub mod masks;
pub mod plan;
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

pub use engine::Engine;
pub use plan::Plan;
