//! The database schema a policy is checked against: the model, its lock
//! file, and (in `pull`, the only module here that does I/O) its discovery
//! from a live PostgreSQL catalog.

pub mod catalog;
#[cfg(feature = "db")]
pub mod connect;
pub mod drift;
pub mod lock;
pub mod model;
#[cfg(feature = "db")]
pub mod pull;

pub use model::{
    Column, ForeignKey, Function, QualifiedName, Relation, RelationKind, Schema, TypeFamily,
    TypeKind, UserType,
};
