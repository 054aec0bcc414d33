//! The built-in mask catalogue: which column types each mask accepts, and
//! how it is rendered to SQL. Every rendering is cast back to the column's
//! own type, so a rewritten statement type-checks as the original did.

use crate::schema::TypeFamily;

/// A mask applied to a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mask {
    /// A constant of the column's type.
    Redact,
    /// SQL `NULL` of the column's type.
    Null,
    /// Keep the first N characters, replace the rest with `*`.
    First(u64),
    /// Keep the last N characters, replace the rest with `*`.
    Last(u64),
    /// Keep the domain of an e-mail address.
    Email,
}

/// A catalogue entry: name, arity and the type families it accepts.
#[derive(Debug)]
pub struct MaskSpec {
    /// Name as written in policies.
    pub name: &'static str,
    /// Number of integer arguments.
    pub arity: usize,
    /// Accepted column type families (empty = all).
    pub accepts: &'static [TypeFamily],
    /// One-line description.
    pub summary: &'static str,
}

/// The catalogue.
pub const CATALOGUE: &[MaskSpec] = &[
    MaskSpec {
        name: "redact",
        arity: 0,
        accepts: &[
            TypeFamily::Text,
            TypeFamily::Number,
            TypeFamily::Bool,
            TypeFamily::Date,
            TypeFamily::Timestamp,
            TypeFamily::Uuid,
        ],
        summary: "replace every value with a constant of the column's type",
    },
    MaskSpec {
        name: "null",
        arity: 0,
        accepts: &[],
        summary: "replace every value with NULL",
    },
    MaskSpec {
        name: "first",
        arity: 1,
        accepts: &[TypeFamily::Text],
        summary: "keep the first N characters, replace the rest with `*`",
    },
    MaskSpec {
        name: "last",
        arity: 1,
        accepts: &[TypeFamily::Text],
        summary: "keep the last N characters, replace the rest with `*`",
    },
    MaskSpec {
        name: "email",
        arity: 0,
        accepts: &[TypeFamily::Text],
        summary: "keep the domain of an e-mail address, hide the local part",
    },
];

/// Looks up a mask by name.
pub fn spec(name: &str) -> Option<&'static MaskSpec> {
    CATALOGUE.iter().find(|m| m.name == name)
}

impl Mask {
    /// Builds a mask from a checked catalogue name and arguments.
    pub fn from_parts(name: &str, args: &[u64]) -> Option<Mask> {
        Some(match (name, args) {
            ("redact", []) => Mask::Redact,
            ("null", []) => Mask::Null,
            ("first", [n]) => Mask::First(*n),
            ("last", [n]) => Mask::Last(*n),
            ("email", []) => Mask::Email,
            _ => return None,
        })
    }

    /// The policy spelling, e.g. `last(4)`.
    pub fn display(&self) -> String {
        match self {
            Mask::Redact => "redact".into(),
            Mask::Null => "null".into(),
            Mask::First(n) => format!("first({n})"),
            Mask::Last(n) => format!("last({n})"),
            Mask::Email => "email".into(),
        }
    }

    /// SQL for the masked value of column `column` (a quoted identifier) of
    /// type `type_name`. The result always has the column's type.
    pub fn to_sql(&self, column: &str, type_name: &str) -> String {
        let body = match self {
            Mask::Null => "NULL".to_owned(),
            Mask::Redact => match TypeFamily::of(type_name) {
                TypeFamily::Text => "'****'".to_owned(),
                TypeFamily::Number => "0".to_owned(),
                TypeFamily::Bool => "false".to_owned(),
                TypeFamily::Date => "'1970-01-01'".to_owned(),
                TypeFamily::Timestamp => "'1970-01-01 00:00:00'".to_owned(),
                TypeFamily::Uuid => "'00000000-0000-0000-0000-000000000000'".to_owned(),
                // The type checker refuses `redact` on other types; NULL is
                // the safe rendering should one ever get here.
                TypeFamily::Other => "NULL".to_owned(),
            },
            Mask::First(n) => {
                format!("left({column}, {n}) || repeat('*', greatest(length({column}) - {n}, 0))")
            }
            Mask::Last(n) => {
                format!("repeat('*', greatest(length({column}) - {n}, 0)) || right({column}, {n})")
            }
            Mask::Email => format!(
                "CASE WHEN {column} IS NULL THEN NULL WHEN strpos({column}, '@') > 0 \
                 THEN '****' || substr({column}, strpos({column}, '@')) ELSE '****' END"
            ),
        };
        format!("CAST({body} AS {type_name})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_entry_builds() {
        for spec in CATALOGUE {
            let args = vec![2; spec.arity];
            let mask = Mask::from_parts(spec.name, &args).expect(spec.name);
            assert!(mask.to_sql("\"c\"", "text").starts_with("CAST("));
        }
    }

    #[test]
    fn last_keeps_tail() {
        assert_eq!(
            Mask::Last(4).to_sql("\"card\"", "text"),
            "CAST(repeat('*', greatest(length(\"card\") - 4, 0)) || right(\"card\", 4) AS text)"
        );
    }
}
