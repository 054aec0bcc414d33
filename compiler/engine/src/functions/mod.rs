//! What calling a function can reveal or change: every built-in function
//! of `pg_catalog` and `information_schema` has a class, generated from the
//! real catalog (`compiler/catalog/classify_functions.py` writes
//! `functions/builtin.rs`). Identities with anything withheld may call the
//! pure and metadata ones; a rule's `allow function` permits more.

use std::fmt;

mod builtin;

use builtin::BUILTIN;

/// A function's class (spec/runtime.md, *Functions*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FunctionClass {
    /// Computes on its arguments alone.
    Pure,
    /// Reads only catalogs, settings and session facts that carry no row
    /// values.
    Metadata,
    /// Reads rows, files, other sessions' statements or statistics values,
    /// or runs SQL text.
    ValueExposing,
    /// Changes server, session or sequence state, or is server-internal.
    SideEffecting,
}

impl FunctionClass {
    /// The class's name as the spec and messages write it.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionClass::Pure => "pure",
            FunctionClass::Metadata => "metadata",
            FunctionClass::ValueExposing => "value-exposing",
            FunctionClass::SideEffecting => "side-effecting",
        }
    }

    /// True for the classes identities with withheld columns may call
    /// without a rule.
    pub fn callable_by_default(self) -> bool {
        matches!(self, FunctionClass::Pure | FunctionClass::Metadata)
    }
}

impl fmt::Display for FunctionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A built-in function's class and why it has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// `pg_catalog` or `information_schema`.
    pub schema: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// Its class.
    pub class: FunctionClass,
    /// The rule of the generator that gave it.
    pub why: &'static str,
}

/// Constructs sqlparser reads as calls that PostgreSQL implements as
/// syntax (no `pg_proc` row): all compute on their arguments, name the
/// session's user or database, read the transaction's clock
/// (`CURRENT_TIMESTAMP`, `LOCALTIME`, …) or say which grouping set a row
/// belongs to (`GROUPING`).
const SYNTAX_CALLS: &[&str] = &[
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "array",
    "row",
    "current_catalog",
    "current_role",
    "user",
    "trim",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "grouping",
];

/// Every built-in function, sorted by schema and name.
pub fn all() -> impl Iterator<Item = Builtin> {
    BUILTIN.iter().map(|&(schema, name, class, why)| Builtin {
        schema,
        name,
        class,
        why,
    })
}

/// The built-in function a call names: `schema` is the folded schema as
/// written, or `None` for an unqualified call (resolved in `pg_catalog`,
/// which PostgreSQL searches first). `information_schema` functions must be
/// qualified, as they are not on the search path.
pub fn builtin(name: &str, schema: Option<&str>) -> Option<Builtin> {
    let schema = schema.unwrap_or("pg_catalog");
    if schema == "pg_catalog" && SYNTAX_CALLS.contains(&name) {
        return Some(Builtin {
            schema: "pg_catalog",
            name: SYNTAX_CALLS
                .iter()
                .find(|n| **n == name)
                .copied()
                .unwrap_or(""),
            class: FunctionClass::Pure,
            why: "SQL syntax that computes on its arguments",
        });
    }
    let i = BUILTIN
        .binary_search_by(|&(s, n, _, _)| (s, n).cmp(&(schema, name)))
        .ok()?;
    let (schema, name, class, why) = BUILTIN[i];
    Some(Builtin {
        schema,
        name,
        class,
        why,
    })
}

/// The class of a call, `None` when it names no built-in function.
pub fn class(name: &str, schema: Option<&str>) -> Option<FunctionClass> {
    builtin(name, schema).map(|b| b.class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_so_lookups_find_every_entry() {
        assert!(
            BUILTIN
                .windows(2)
                .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1))
        );
        for b in all() {
            assert_eq!(builtin(b.name, Some(b.schema)), Some(b));
        }
    }

    #[test]
    fn classes_of_functions_tools_call() {
        use FunctionClass::*;
        for (name, schema, class) in [
            ("to_regtype", None, Metadata),
            ("format_type", Some("pg_catalog"), Metadata),
            ("_pg_expandarray", Some("information_schema"), Metadata),
            ("current_setting", None, Metadata),
            ("upper", None, Pure),
            ("coalesce", None, Pure),
            ("current_timestamp", None, Pure),
            ("grouping", None, Pure),
            ("json_agg", None, Pure),
            ("query_to_xml", None, ValueExposing),
            ("pg_read_file", None, ValueExposing),
            ("lo_get", None, ValueExposing),
            ("current_query", None, ValueExposing),
            ("pg_notify", None, SideEffecting),
            ("setval", None, SideEffecting),
            ("pg_advisory_lock", None, SideEffecting),
            ("pg_advisory_unlock_all", None, Metadata),
            ("pg_export_snapshot", None, Metadata),
            ("set_config", None, SideEffecting),
        ] {
            assert_eq!(super::class(name, schema), Some(class), "{name}");
        }
        // Not built in: a user function, or a built-in name under another schema.
        assert_eq!(super::class("upper", Some("public")), None);
        assert_eq!(super::class("_pg_expandarray", None), None);
    }
}
