//! The database schema a policy is checked against: the model, its lock
//! file, and (in `pull`, the only module here that does I/O) its discovery
//! from a live PostgreSQL catalog.

#[cfg(feature = "db")]
pub mod connect;
pub mod drift;
pub mod lock;
#[cfg(feature = "db")]
pub mod pull;

pub use clsf_engine::schema::{catalog, model};

pub use model::{
    Column, ForeignKey, Function, QualifiedName, Relation, RelationKind, Schema, TypeFamily,
    TypeKind, UserType,
};
