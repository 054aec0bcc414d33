//! Schema drift: the live database against the lock the plan was compiled
//! on. A column a migration adds after the lock was pulled has no
//! classification, and a relation whose known columns are all clear would
//! otherwise be forwarded as written, so every identity would read the new
//! column in clear, by name or through `*`. Where the live relation has
//! columns the lock does not, the engine reads it through a subquery that
//! lists the lock's columns (as it does a relation with anything withheld),
//! refuses a statement that names a column it does not know, and refuses a
//! write that takes such a relation whole (`RETURNING *`, `INSERT … SELECT
//! *`), which it forwards as written.
//!
//! The proxy compares the catalog when a policy comes into force and
//! periodically; the engine only holds the answer.

use std::collections::BTreeMap;

use crate::schema::{RelId, Schema};

/// What the engine knows of the live relations' columns against the lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Drift {
    /// Not compared (`clsfc`, tests), or compared and no relation has a
    /// column the lock lacks.
    #[default]
    None,
    /// Not yet compared, or the comparison failed: every relation counts as
    /// drifted, which costs a rewrite but leaks nothing.
    Unknown,
    /// The relations with columns the lock does not have, and those
    /// columns' names.
    Added(BTreeMap<RelId, Vec<String>>),
}

/// Schemas whose relations the engine knows from its own table, not from
/// the lock: not compared.
const BUILT_IN_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

/// True for a schema whose relations the engine knows from its own table.
pub(crate) fn built_in(schema: &str) -> bool {
    BUILT_IN_SCHEMAS.contains(&schema)
}

impl Drift {
    /// Compares `live` — every column of the live database's relations in
    /// the lock's schemas, as `(schema, relation, column)` — with the
    /// lock's `schema`. Relations the lock does not have are unknown to
    /// the engine and refused anyway; columns the lock has and the live
    /// relation lost make PostgreSQL refuse the statements that read them.
    pub fn compare<'a>(
        schema: &Schema,
        live: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Drift {
        let mut added: BTreeMap<RelId, Vec<String>> = BTreeMap::new();
        for (ns, rel, column) in live {
            if BUILT_IN_SCHEMAS.contains(&ns) {
                continue;
            }
            let Some(ri) = schema.find(ns, rel) else {
                continue;
            };
            if schema.relation(ri).column_index(column).is_none() {
                let columns = added.entry(ri).or_default();
                if !columns.iter().any(|c| c == column) {
                    columns.push(column.to_owned());
                }
            }
        }
        if added.is_empty() {
            Drift::None
        } else {
            Drift::Added(added)
        }
    }

    /// The schemas a comparison reads: the lock's, without the built-in
    /// ones.
    pub fn schemas(schema: &Schema) -> Vec<String> {
        let mut names: Vec<String> = schema
            .relations
            .iter()
            .map(|r| r.schema.clone())
            .filter(|s| !BUILT_IN_SCHEMAS.contains(&s.as_str()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// True when `ri` must be read through the lock's columns.
    pub fn pins(&self, ri: RelId) -> bool {
        match self {
            Drift::None => false,
            Drift::Unknown => true,
            Drift::Added(added) => added.contains_key(&ri),
        }
    }

    /// True when some relation may have columns the lock lacks.
    pub fn any(&self) -> bool {
        !matches!(self, Drift::None)
    }

    /// True when `column` is one the live `ri` has and the lock does not
    /// (always, while the catalog has not been compared).
    pub fn added(&self, ri: RelId, column: &str) -> bool {
        match self {
            Drift::None => false,
            Drift::Unknown => true,
            Drift::Added(added) => added
                .get(&ri)
                .is_some_and(|c| c.iter().any(|c| c == column)),
        }
    }

    /// A drifted relation that gained a column called `column`, if any.
    pub fn gained(&self, column: &str) -> Option<RelId> {
        match self {
            Drift::Added(added) => added
                .iter()
                .find(|(_, columns)| columns.iter().any(|c| c == column))
                .map(|(&ri, _)| ri),
            _ => None,
        }
    }

    /// Each drifted relation with its added columns, for logs and the
    /// audit trail (`public.orders (extra, note)`).
    pub fn describe(&self, schema: &Schema) -> Vec<String> {
        match self {
            Drift::None => Vec::new(),
            Drift::Unknown => vec!["every relation (the catalog is not compared yet)".to_owned()],
            Drift::Added(added) => added
                .iter()
                .map(|(&ri, columns)| {
                    format!(
                        "{} ({})",
                        schema.relation(ri).qualified(),
                        columns.join(", ")
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Column, Relation};

    fn schema() -> Schema {
        let rel = |schema: &str, name: &str, cols: &[&str]| Relation {
            schema: schema.to_owned(),
            name: name.to_owned(),
            columns: cols
                .iter()
                .map(|c| Column {
                    name: (*c).to_owned(),
                    ..Column::default()
                })
                .collect(),
            ..Relation::default()
        };
        Schema::new(
            "15".to_owned(),
            vec![
                rel("public", "orders", &["id", "total"]),
                rel("public", "people", &["id", "ssn"]),
                rel("pg_catalog", "pg_class", &["oid"]),
            ],
        )
    }

    #[test]
    fn only_columns_the_lock_lacks_drift() {
        let s = schema();
        let live = [
            ("public", "orders", "id"),
            ("public", "orders", "total"),
            ("public", "orders", "extra"),
            // Lost a column: PostgreSQL refuses what reads it.
            ("public", "people", "id"),
            // Not in the lock: refused as unknown anyway.
            ("public", "fresh", "x"),
            // Built in: the engine's own table, not the lock.
            ("pg_catalog", "pg_class", "relname"),
        ];
        let drift = Drift::compare(&s, live);
        let orders = s.find("public", "orders").unwrap();
        let people = s.find("public", "people").unwrap();
        assert!(drift.pins(orders));
        assert!(!drift.pins(people));
        assert!(drift.added(orders, "extra"));
        assert!(!drift.added(orders, "total"));
        assert_eq!(drift.gained("extra"), Some(orders));
        assert_eq!(drift.gained("id"), None);
        assert_eq!(drift.describe(&s), vec!["public.orders (extra)"]);
        assert_eq!(Drift::schemas(&s), vec!["public"]);
    }

    #[test]
    fn the_same_columns_do_not_drift_and_unknown_pins_everything() {
        let s = schema();
        let live = [("public", "orders", "id"), ("public", "orders", "total")];
        assert_eq!(Drift::compare(&s, live), Drift::None);
        let people = s.find("public", "people").unwrap();
        assert!(Drift::Unknown.pins(people));
        assert!(Drift::Unknown.added(people, "anything"));
        assert!(!Drift::None.any());
    }
}
