//! Relations and columns as the compiler and the statement engine see them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// What kind of relation a catalog entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RelationKind {
    /// An ordinary table.
    Table,
    /// A partitioned table.
    PartitionedTable,
    /// A view.
    View,
    /// A materialized view.
    MaterializedView,
    /// A foreign table.
    ForeignTable,
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
            _ => return None,
        })
    }
}

/// A column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name as stored in the catalog (case preserved).
    pub name: String,
    /// Type as printed by `format_type`, e.g. `character varying(64)`.
    pub type_name: String,
    /// False when the column is `NOT NULL`.
    pub nullable: bool,
}

impl Column {
    /// The coarse type family masks are checked against.
    pub fn family(&self) -> TypeFamily {
        TypeFamily::of(&self.type_name)
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// Schema (namespace) name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// Its kind.
    pub kind: RelationKind,
    /// Columns in attribute-number order (the order `*` expands to).
    pub columns: Vec<Column>,
}

impl Relation {
    /// `schema.name` for messages and ids.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The index of a column by exact name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A database schema: all relations the policy may classify.
#[derive(Clone, Debug, Default)]
pub struct Schema {
    /// `server_version` of the database it was pulled from.
    pub server_version: String,
    /// Relations sorted by (schema, name).
    pub relations: Vec<Relation>,
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
            index,
        }
    }

    /// The index of `schema.name`.
    pub fn find(&self, schema: &str, name: &str) -> Option<usize> {
        self.index
            .get(&(schema.to_owned(), name.to_owned()))
            .copied()
    }

    /// The relation at `index`.
    pub fn relation(&self, index: usize) -> &Relation {
        &self.relations[index]
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
