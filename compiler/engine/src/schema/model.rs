//! Relations and columns as the compiler and the statement engine see them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::ids::{ColId, RelId};

/// What kind of relation a catalog entry is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum RelationKind {
    /// An ordinary table.
    #[default]
    Table,
    /// A partitioned table.
    PartitionedTable,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A foreign table.
    ForeignTable,
    /// A sequence: one row of `last_value`, `log_cnt` and `is_called`.
    Sequence,
}

impl RelationKind {
    /// The lock-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::Table => "table",
            RelationKind::PartitionedTable => "partitioned_table",
            RelationKind::View => "view",
            RelationKind::MaterializedView => "materialized_view",
            RelationKind::ForeignTable => "foreign_table",
            RelationKind::Sequence => "sequence",
        }
    }

    /// Parses the lock-file spelling.
    pub fn parse(s: &str) -> Option<RelationKind> {
        Some(match s {
            "table" => RelationKind::Table,
            "partitioned_table" => RelationKind::PartitionedTable,
            "view" => RelationKind::View,
            "materialized_view" => RelationKind::MaterializedView,
            "foreign_table" => RelationKind::ForeignTable,
            "sequence" => RelationKind::Sequence,
            _ => return None,
        })
    }
}

/// A column.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name as stored in the catalog (case preserved).
    pub name: String,
    /// Type as printed by `format_type`, e.g. `character varying(64)` or
    /// `email_address[]`; an array's element type is the text before `[]`.
    pub type_name: String,
    /// False when the column is `NOT NULL`.
    pub nullable: bool,
    /// When the type is a domain (or an array of one): the type the domain
    /// resolves to through any chain of domains, e.g. `text` or `text[]`.
    pub base_type: Option<String>,
}

impl Column {
    /// The type values actually have: the domain's base type, or the type.
    pub fn value_type(&self) -> &str {
        self.base_type.as_deref().unwrap_or(&self.type_name)
    }

    /// The coarse type family masks are checked against (of the base type,
    /// so a mask that fits `text` fits a domain over `text`).
    pub fn family(&self) -> TypeFamily {
        TypeFamily::of(self.value_type())
    }
}

/// Coarse type families: what masks need to know about a column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TypeFamily {
    /// `text`, `varchar`, `char`, `citext`, `name`.
    Text,
    /// Integers, `numeric`, floating point.
    Number,
    /// `boolean`.
    Bool,
    /// `date`.
    Date,
    /// `timestamp` with or without time zone.
    Timestamp,
    /// `uuid`.
    Uuid,
    /// Anything else (arrays, json, bytea, user types…).
    Other,
}

impl TypeFamily {
    /// Classifies a `format_type` string.
    pub fn of(type_name: &str) -> TypeFamily {
        let t = type_name.trim();
        if t.ends_with("[]") {
            return TypeFamily::Other;
        }
        let base = t.split('(').next().unwrap_or(t).trim();
        match base {
            "text" | "character varying" | "character" | "varchar" | "char" | "bpchar"
            | "citext" | "name" => TypeFamily::Text,
            "smallint" | "integer" | "bigint" | "numeric" | "decimal" | "real"
            | "double precision" => TypeFamily::Number,
            "boolean" => TypeFamily::Bool,
            "date" => TypeFamily::Date,
            "timestamp without time zone"
            | "timestamp with time zone"
            | "timestamp"
            | "timestamptz" => TypeFamily::Timestamp,
            "uuid" => TypeFamily::Uuid,
            _ if base.starts_with("timestamp") => TypeFamily::Timestamp,
            _ => TypeFamily::Other,
        }
    }

    /// Lowercase name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeFamily::Text => "text",
            TypeFamily::Number => "number",
            TypeFamily::Bool => "boolean",
            TypeFamily::Date => "date",
            TypeFamily::Timestamp => "timestamp",
            TypeFamily::Uuid => "uuid",
            TypeFamily::Other => "other",
        }
    }
}

/// A table, view or similar relation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// Schema (namespace) name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// Its kind.
    pub kind: RelationKind,
    /// Columns in attribute-number order (the order `*` expands to).
    pub columns: Vec<Column>,
    /// The owning role.
    pub owner: String,
    /// Relations this one inherits from, in `inhseqno` order: the parent of
    /// a partition, or the parents named by `INHERITS`.
    pub parents: Vec<QualifiedName>,
    /// True for a partition (its one parent is a partitioned table).
    pub partition: bool,
    /// A view's or materialized view's definition (`pg_get_viewdef`).
    pub definition: Option<String>,
    /// Primary-key columns in key order (empty without a primary key).
    pub primary_key: Vec<String>,
    /// Foreign keys, sorted by constraint name.
    pub foreign_keys: Vec<ForeignKey>,
    /// For a sequence owned by a column (`serial`, identity columns, `OWNED
    /// BY`): that column, whose values the sequence issues.
    pub owned_by: Option<OwnedBy>,
}

/// The column a sequence belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedBy {
    /// The column's relation.
    pub relation: QualifiedName,
    /// The column.
    pub column: String,
}

/// `schema.name` of a relation, type or function.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QualifiedName {
    /// Schema (namespace) name.
    pub schema: String,
    /// Object name.
    pub name: String,
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// A foreign-key constraint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing columns, in key order.
    pub columns: Vec<String>,
    /// The referenced relation.
    pub references: QualifiedName,
    /// Referenced columns, parallel to `columns`.
    pub referenced_columns: Vec<String>,
}

/// A user-defined type: enums, domains and standalone composite types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserType {
    /// Schema (namespace) name.
    pub schema: String,
    /// Name as `format_type` prints it in a column's type (qualified when
    /// the type is not on the default search path).
    pub name: String,
    /// What it is.
    pub kind: TypeKind,
}

/// The kinds of user-defined type the lock records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TypeKind {
    /// An enum with its labels in sort order.
    Enum(Vec<String>),
    /// A domain: the type it resolves to (through any chain of domains) and
    /// whether it is `NOT NULL`.
    Domain {
        /// Base type as `format_type` prints it.
        base: String,
        /// `NOT NULL` on the domain.
        not_null: bool,
    },
    /// A standalone composite type: attribute names and types.
    Composite(Vec<(String, String)>),
}

/// A function that runs with its owner's privileges (`SECURITY DEFINER`):
/// calling it can read what the caller could not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// Schema (namespace) name.
    pub schema: String,
    /// Function name.
    pub name: String,
    /// Identity arguments (`pg_get_function_identity_arguments`).
    pub arguments: String,
    /// Result type (`pg_get_function_result`).
    pub result: String,
    /// The owning role, whose privileges the function runs with.
    pub owner: String,
}

impl Relation {
    /// `schema.name` for messages and ids.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The position of a column by exact name.
    pub fn column_index(&self, name: &str) -> Option<ColId> {
        self.columns.iter().position(|c| c.name == name).map(ColId)
    }

    /// The positions of its columns, in order.
    pub fn column_ids(&self) -> impl DoubleEndedIterator<Item = ColId> + ExactSizeIterator + use<> {
        ColId::all(self.columns.len())
    }

    /// The columns with their positions, in order.
    pub fn columns_with_ids(&self) -> impl Iterator<Item = (ColId, &Column)> {
        self.columns.iter().enumerate().map(|(i, c)| (ColId(i), c))
    }
}

/// A database schema: all relations the policy may classify.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    /// `server_version` of the database it was pulled from.
    pub server_version: String,
    /// Relations sorted by (schema, name).
    pub relations: Vec<Relation>,
    /// User-defined types sorted by (schema, name).
    pub types: Vec<UserType>,
    /// `SECURITY DEFINER` functions sorted by (schema, name, arguments).
    pub functions: Vec<Function>,
    index: HashMap<(String, String), usize>,
}

impl Schema {
    /// Builds a schema, sorting relations so that equal databases give equal schemas.
    pub fn new(server_version: String, mut relations: Vec<Relation>) -> Schema {
        relations.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        let index = relations
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.schema.clone(), r.name.clone()), i))
            .collect();
        Schema {
            server_version,
            relations,
            types: Vec::new(),
            functions: Vec::new(),
            index,
        }
    }

    /// Adds user types and functions, sorted.
    pub fn with_objects(
        mut self,
        mut types: Vec<UserType>,
        mut functions: Vec<Function>,
    ) -> Schema {
        types.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        functions.sort_by(|a, b| {
            (&a.schema, &a.name, &a.arguments).cmp(&(&b.schema, &b.name, &b.arguments))
        });
        self.types = types;
        self.functions = functions;
        self
    }

    /// The user type a column's type names (an array's element type).
    pub fn user_type(&self, type_name: &str) -> Option<&UserType> {
        let element = type_name.trim_end_matches("[]");
        self.types.iter().find(|t| t.name == element)
    }

    /// The position of `schema.name`.
    pub fn find(&self, schema: &str, name: &str) -> Option<RelId> {
        self.index
            .get(&(schema.to_owned(), name.to_owned()))
            .copied()
            .map(RelId)
    }

    /// The relation a written name (`name`, `schema.name` or
    /// `database.schema.name`) refers to: a qualified name in its schema,
    /// an unqualified one in the first schema of `search_path` that has it,
    /// as PostgreSQL resolves names. The one lookup of the engine's
    /// resolvers (queries, schema changes, view lineage).
    pub fn lookup(&self, parts: &[String], search_path: &[&str]) -> Option<RelId> {
        match parts {
            [name] => search_path.iter().find_map(|s| self.find(s, name)),
            [schema, name] | [_, schema, name] => self.find(schema, name),
            _ => None,
        }
    }

    /// The relation at `id`.
    pub fn relation(&self, id: RelId) -> &Relation {
        &self.relations[id]
    }

    /// The positions of its relations, in order.
    pub fn relation_ids(
        &self,
    ) -> impl DoubleEndedIterator<Item = RelId> + ExactSizeIterator + use<> {
        (0..self.relations.len()).map(RelId)
    }

    /// The relations with their positions, in order.
    pub fn relations_with_ids(&self) -> impl Iterator<Item = (RelId, &Relation)> {
        self.relations
            .iter()
            .enumerate()
            .map(|(i, r)| (RelId(i), r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_families() {
        assert_eq!(TypeFamily::of("character varying(64)"), TypeFamily::Text);
        assert_eq!(TypeFamily::of("numeric(10,2)"), TypeFamily::Number);
        assert_eq!(
            TypeFamily::of("timestamp(3) with time zone"),
            TypeFamily::Timestamp
        );
        assert_eq!(TypeFamily::of("text[]"), TypeFamily::Other);
        assert_eq!(TypeFamily::of("jsonb"), TypeFamily::Other);
    }
}
