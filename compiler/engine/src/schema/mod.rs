//! The database schema as the plan carries it: relations, columns, types
//! and functions, and the catalog relations PostgreSQL defines itself. The
//! compiler reads it from a lock file or a live catalog; here it is data.

pub mod catalog;
mod ids;
pub mod model;

pub use ids::{ColId, RelId};

pub use model::{
    Column, ForeignKey, Function, OwnedBy, QualifiedName, Relation, RelationKind, Schema,
    TypeFamily, TypeKind, UserType,
};

/// The schema searched for unqualified table names.
pub const DEFAULT_SCHEMA: &str = "public";

/// How the proxy's sessions resolve unqualified relation names: catalog
/// relations first, as PostgreSQL does, then the pinned default schema.
pub const SEARCH_PATH: &[&str] = &[catalog::SCHEMA, DEFAULT_SCHEMA];
