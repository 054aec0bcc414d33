//! The database schema a policy is checked against: the model (the
//! engine's), its lock file and drift between two of them. Reading a live
//! catalog is `clsf-catalog`'s.

pub mod drift;
pub mod lock;

pub use clsf_engine::schema::{ColId, RelId, catalog, model};

pub use model::{
    Column, ForeignKey, Function, OwnedBy, QualifiedName, Relation, RelationKind, Schema,
    TypeFamily, TypeKind, UserType,
};
