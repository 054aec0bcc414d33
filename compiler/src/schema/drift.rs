//! Drift between two schemas (`clsfc schema diff OLD NEW`): what was added,
//! removed or changed, object by object, in a stable order.

use std::collections::BTreeMap;

use serde::Serialize;

use super::model::{Column, Function, Relation, Schema, UserType};

/// One difference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// `relation`, `column`, `type` or `function`.
    pub object: &'static str,
    /// The object's name (`schema.table`, `schema.table.column`, …).
    pub name: String,
    /// For `changed`: what changed, as `field: old → new` lines.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.change {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        write!(f, "{sign} {} {}", self.object, self.name)?;
        for d in &self.details {
            write!(f, "\n    {d}")?;
        }
        Ok(())
    }
}

fn added(object: &'static str, name: String) -> Change {
    Change {
        change: "added",
        object,
        name,
        details: Vec::new(),
    }
}

fn removed(object: &'static str, name: String) -> Change {
    Change {
        change: "removed",
        object,
        name,
        details: Vec::new(),
    }
}

fn field<T: PartialEq + std::fmt::Debug>(out: &mut Vec<String>, name: &str, old: &T, new: &T) {
    if old != new {
        out.push(format!("{name}: {old:?} → {new:?}"));
    }
}

/// Every difference from `old` to `new`: relations (then their columns),
/// types, functions; each group sorted by name.
pub fn diff(old: &Schema, new: &Schema) -> Vec<Change> {
    let mut out = Vec::new();
    if old.server_version != new.server_version {
        out.push(Change {
            change: "changed",
            object: "server",
            name: "server_version".to_owned(),
            details: vec![format!(
                "server_version: {:?} → {:?}",
                old.server_version, new.server_version
            )],
        });
    }
    compare(
        &mut out,
        "relation",
        &relations(old),
        &relations(new),
        |out, name, r, n| {
            relation(out, name, r, n);
        },
    );
    compare(
        &mut out,
        "type",
        &types(old),
        &types(new),
        |out, name, t, n| {
            if n.kind != t.kind {
                out.push(Change {
                    change: "changed",
                    object: "type",
                    name: name.to_owned(),
                    details: vec![format!("definition: {:?} → {:?}", t.kind, n.kind)],
                });
            }
        },
    );
    let object = "security definer function";
    compare(
        &mut out,
        object,
        &functions(old),
        &functions(new),
        |out, name, f, n| {
            let mut details = Vec::new();
            field(&mut details, "result", &f.result, &n.result);
            field(&mut details, "owner", &f.owner, &n.owner);
            if !details.is_empty() {
                out.push(Change {
                    change: "changed",
                    object,
                    name: name.to_owned(),
                    details,
                });
            }
        },
    );
    out
}

/// One kind of object in both schemas, by name: what is gone, what
/// `changed` finds different in what is in both, then what is new.
fn compare<T>(
    out: &mut Vec<Change>,
    object: &'static str,
    a: &BTreeMap<String, T>,
    b: &BTreeMap<String, T>,
    changed: impl Fn(&mut Vec<Change>, &str, &T, &T),
) {
    for (name, old) in a {
        match b.get(name) {
            None => out.push(removed(object, name.clone())),
            Some(new) => changed(out, name, old, new),
        }
    }
    for name in b.keys().filter(|n| !a.contains_key(*n)) {
        out.push(added(object, name.clone()));
    }
}

fn relations(s: &Schema) -> BTreeMap<String, &Relation> {
    s.relations.iter().map(|r| (r.qualified(), r)).collect()
}

fn types(s: &Schema) -> BTreeMap<String, &UserType> {
    s.types
        .iter()
        // `name` is as `format_type` prints it: already schema-qualified.
        .map(|t| (t.name.clone(), t))
        .collect()
}

fn functions(s: &Schema) -> BTreeMap<String, &Function> {
    s.functions
        .iter()
        .map(|f| (format!("{}.{}({})", f.schema, f.name, f.arguments), f))
        .collect()
}

fn relation(out: &mut Vec<Change>, name: &str, old: &Relation, new: &Relation) {
    let mut details = Vec::new();
    field(&mut details, "kind", &old.kind.as_str(), &new.kind.as_str());
    field(&mut details, "owner", &old.owner, &new.owner);
    let parents = |r: &Relation| r.parents.iter().map(|p| p.to_string()).collect::<Vec<_>>();
    field(&mut details, "inherits", &parents(old), &parents(new));
    field(&mut details, "partition", &old.partition, &new.partition);
    let owner = |r: &Relation| {
        r.owned_by
            .as_ref()
            .map(|o| format!("{}.{}", o.relation, o.column))
    };
    field(&mut details, "owned by", &owner(old), &owner(new));
    field(
        &mut details,
        "primary key",
        &old.primary_key,
        &new.primary_key,
    );
    let fks = |r: &Relation| {
        r.foreign_keys
            .iter()
            .map(|f| {
                format!(
                    "{} ({}) → {} ({})",
                    f.name,
                    f.columns.join(", "),
                    f.references,
                    f.referenced_columns.join(", ")
                )
            })
            .collect::<Vec<_>>()
    };
    field(&mut details, "foreign keys", &fks(old), &fks(new));
    if old.definition != new.definition {
        details.push("definition changed".to_owned());
    }
    let names = |r: &Relation| r.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    let (old_names, new_names) = (names(old), names(new));
    let common_old: Vec<&String> = old_names.iter().filter(|n| new_names.contains(n)).collect();
    let common_new: Vec<&String> = new_names.iter().filter(|n| old_names.contains(n)).collect();
    if common_old != common_new {
        // `*` expands in column order, so a reorder changes query results.
        details.push("column order changed".to_owned());
    }
    if !details.is_empty() {
        out.push(Change {
            change: "changed",
            object: "relation",
            name: name.to_owned(),
            details,
        });
    }
    for c in &old.columns {
        let full = format!("{name}.{}", c.name);
        match new.columns.iter().find(|n| n.name == c.name) {
            None => out.push(removed("column", full)),
            Some(n) => column(out, full, c, n),
        }
    }
    for c in new
        .columns
        .iter()
        .filter(|c| old.column_index(&c.name).is_none())
    {
        let mut change = added("column", format!("{name}.{}", c.name));
        change.details.push(format!("type: {}", c.type_name));
        out.push(change);
    }
}

fn column(out: &mut Vec<Change>, name: String, old: &Column, new: &Column) {
    let mut details = Vec::new();
    field(&mut details, "type", &old.type_name, &new.type_name);
    field(&mut details, "base type", &old.base_type, &new.base_type);
    field(&mut details, "nullable", &old.nullable, &new.nullable);
    if !details.is_empty() {
        out.push(Change {
            change: "changed",
            object: "column",
            name,
            details,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::RelationKind;

    fn rel(columns: &[(&str, &str)]) -> Relation {
        Relation {
            schema: "public".into(),
            name: "t".into(),
            kind: RelationKind::Table,
            owner: "o".into(),
            columns: columns
                .iter()
                .map(|(n, t)| Column {
                    name: (*n).into(),
                    type_name: (*t).into(),
                    ..Column::default()
                })
                .collect(),
            ..Relation::default()
        }
    }

    #[test]
    fn added_removed_and_changed_columns() {
        let old = Schema::new("15".into(), vec![rel(&[("a", "int"), ("b", "text")])]);
        let new = Schema::new("15".into(), vec![rel(&[("a", "bigint"), ("c", "text")])]);
        let text: Vec<String> = diff(&old, &new).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            text,
            [
                "~ column public.t.a\n    type: \"int\" → \"bigint\"",
                "- column public.t.b",
                "+ column public.t.c\n    type: text",
            ]
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn reordered_columns_are_a_change() {
        let old = Schema::new("15".into(), vec![rel(&[("a", "int"), ("b", "text")])]);
        let new = Schema::new("15".into(), vec![rel(&[("b", "text"), ("a", "int")])]);
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].details, ["column order changed"]);
    }
}
