//! The mask catalogue: built-in masks and user-defined SQL templates, which
//! column types each accepts, and how each is rendered to SQL. Every
//! rendering is cast back to the column's own type, so a rewritten statement
//! type-checks as the original did.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::schema::TypeFamily;

/// A mask applied to a column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// HMAC-SHA256 under the deployment's key: deterministic (equal values
    /// hash equal, so joins on the hash still match) and not invertible or
    /// forgeable without the key.
    Hash,
    /// Truncate a date or timestamp to the start of its year.
    Year,
    /// Round a number to N decimal places (negative: to tens, hundreds…).
    Round(i64),
    /// Round a number down to a multiple of W.
    Bucket(i64),
    /// A constant given in the policy.
    Constant(Literal),
    /// A user-defined template.
    Custom(Arc<CustomMask>),
}

/// A constant mask value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Literal {
    /// A string (for text, dates, timestamps, uuids).
    Str(String),
    /// An integer (for numbers).
    Int(i64),
    /// A boolean.
    Bool(bool),
}

/// A checked user-defined mask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomMask {
    /// Its name.
    pub name: String,
    /// Parameter name (`{param}` in the template).
    pub param: String,
    /// The SQL expression template.
    pub template: String,
    /// Accepted input families.
    pub accepts: Vec<TypeFamily>,
    /// Result family.
    pub output: TypeFamily,
}

/// The kind of an argument a built-in mask takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// A non-negative integer.
    Count,
    /// Any integer.
    Int,
    /// A positive integer.
    Positive,
    /// A value of the column's type.
    Value,
}

/// A catalogue entry.
#[derive(Debug)]
pub struct MaskSpec {
    /// Name as written in policies.
    pub name: &'static str,
    /// Arguments it takes.
    pub args: &'static [ArgKind],
    /// Accepted column type families (empty = all).
    pub accepts: &'static [TypeFamily],
    /// How it is written, e.g. `last(N)`.
    pub form: &'static str,
    /// One-line description.
    pub summary: &'static str,
}

const SCALARS: &[TypeFamily] = &[
    TypeFamily::Text,
    TypeFamily::Number,
    TypeFamily::Bool,
    TypeFamily::Date,
    TypeFamily::Timestamp,
    TypeFamily::Uuid,
];

/// The built-in catalogue.
pub const CATALOGUE: &[MaskSpec] = &[
    MaskSpec {
        name: "redact",
        args: &[],
        accepts: SCALARS,
        form: "redact",
        summary: "replace every value with a constant of the column's type",
    },
    MaskSpec {
        name: "null",
        args: &[],
        accepts: &[],
        form: "null",
        summary: "replace every value with NULL",
    },
    MaskSpec {
        name: "first",
        args: &[ArgKind::Count],
        accepts: &[TypeFamily::Text],
        form: "first(N)",
        summary: "keep the first N characters, replace the rest with `*`",
    },
    MaskSpec {
        name: "last",
        args: &[ArgKind::Count],
        accepts: &[TypeFamily::Text],
        form: "last(N)",
        summary: "keep the last N characters, replace the rest with `*`",
    },
    MaskSpec {
        name: "email",
        args: &[],
        accepts: &[TypeFamily::Text],
        form: "email",
        summary: "keep the domain of an e-mail address, hide the local part",
    },
    MaskSpec {
        name: "hash",
        args: &[],
        accepts: &[TypeFamily::Text, TypeFamily::Number, TypeFamily::Uuid],
        form: "hash",
        summary: "HMAC-SHA256 under the deployment's key: deterministic and join-preserving, not invertible",
    },
    MaskSpec {
        name: "year",
        args: &[],
        accepts: &[TypeFamily::Date, TypeFamily::Timestamp],
        form: "year",
        summary: "truncate a date or timestamp to January 1st of its year",
    },
    MaskSpec {
        name: "round",
        args: &[ArgKind::Int],
        accepts: &[TypeFamily::Number],
        form: "round(N)",
        summary: "round to N decimal places (negative N: to tens, hundreds, …)",
    },
    MaskSpec {
        name: "bucket",
        args: &[ArgKind::Positive],
        accepts: &[TypeFamily::Number],
        form: "bucket(W)",
        summary: "round down to a multiple of W",
    },
    MaskSpec {
        name: "constant",
        args: &[ArgKind::Value],
        accepts: SCALARS,
        form: "constant(V)",
        summary: "replace every value with V (a value of the column's type)",
    },
];

/// Looks up a built-in mask by name.
pub fn spec(name: &str) -> Option<&'static MaskSpec> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// A mask argument as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Integer.
    Int(i64),
    /// String.
    Str(String),
    /// Boolean.
    Bool(bool),
}

/// Why a mask application is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaskError {
    /// Wrong number of arguments.
    Arity {
        /// Expected count.
        expected: usize,
        /// The form to write.
        form: String,
    },
    /// Argument `index` is not of the expected kind.
    BadArg {
        /// Argument index.
        index: usize,
        /// What it should be.
        expected: String,
    },
    /// The mask does not accept the column's type.
    Type {
        /// Families it accepts.
        accepts: Vec<&'static str>,
    },
}

/// Builds a built-in mask for a column of family `family`.
pub fn build(spec: &MaskSpec, args: &[Arg], family: TypeFamily) -> Result<Mask, MaskError> {
    if args.len() != spec.args.len() {
        return Err(MaskError::Arity {
            expected: spec.args.len(),
            form: spec.form.to_owned(),
        });
    }
    for (index, (kind, arg)) in spec.args.iter().zip(args).enumerate() {
        let ok = match (kind, arg) {
            (ArgKind::Count, Arg::Int(n)) => *n >= 0,
            (ArgKind::Int, Arg::Int(_)) => true,
            (ArgKind::Positive, Arg::Int(n)) => *n > 0,
            (ArgKind::Value, Arg::Int(_)) => family == TypeFamily::Number,
            (ArgKind::Value, Arg::Bool(_)) => family == TypeFamily::Bool,
            (ArgKind::Value, Arg::Str(_)) => matches!(
                family,
                TypeFamily::Text | TypeFamily::Date | TypeFamily::Timestamp | TypeFamily::Uuid
            ),
            _ => false,
        };
        if !ok {
            let expected = match kind {
                ArgKind::Count => "a non-negative integer".to_owned(),
                ArgKind::Int => "an integer".to_owned(),
                ArgKind::Positive => "a positive integer".to_owned(),
                ArgKind::Value => format!("a value of the column's type ({})", family.as_str()),
            };
            // A `constant` of the wrong kind for the column is a type error
            // only once the family is one `constant` accepts at all.
            if !(spec.accepts.is_empty() || spec.accepts.contains(&family)) {
                break;
            }
            return Err(MaskError::BadArg { index, expected });
        }
    }
    if !spec.accepts.is_empty() && !spec.accepts.contains(&family) {
        return Err(MaskError::Type {
            accepts: spec.accepts.iter().map(|f| f.as_str()).collect(),
        });
    }
    let int = |i: usize| match &args[i] {
        Arg::Int(n) => *n,
        _ => 0,
    };
    Ok(match spec.name {
        "redact" => Mask::Redact,
        "null" => Mask::Null,
        "first" => Mask::First(int(0).unsigned_abs()),
        "last" => Mask::Last(int(0).unsigned_abs()),
        "email" => Mask::Email,
        "hash" => Mask::Hash,
        "year" => Mask::Year,
        "round" => Mask::Round(int(0)),
        "bucket" => Mask::Bucket(int(0)),
        _ => Mask::Constant(match &args[0] {
            Arg::Int(n) => Literal::Int(*n),
            Arg::Str(s) => Literal::Str(s.clone()),
            Arg::Bool(b) => Literal::Bool(*b),
        }),
    })
}

/// A SQL string literal.
pub fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// For `numeric(p, s)`: the number of integer digits it holds, `p - s`.
fn numeric_integer_digits(type_name: &str) -> Option<u32> {
    let rest = type_name
        .strip_prefix("numeric(")
        .or_else(|| type_name.strip_prefix("decimal("))?;
    let inner = rest.strip_suffix(')')?;
    let mut parts = inner.split(',').map(|p| p.trim().parse::<i64>());
    let p = parts.next()?.ok()?;
    let s = parts.next().unwrap_or(Ok(0)).ok()?;
    u32::try_from((p - s).max(0)).ok()
}

/// The session setting holding the `hash` mask's inner HMAC pad (hex).
pub const HASH_IPAD_SETTING: &str = "clsf.hash_ipad";
/// The session setting holding the `hash` mask's outer HMAC pad (hex).
pub const HASH_OPAD_SETTING: &str = "clsf.hash_opad";

/// The HMAC-SHA256 (RFC 2104) inner and outer padded keys of `key`, hex:
/// the values of [`HASH_IPAD_SETTING`] and [`HASH_OPAD_SETTING`]. The proxy
/// passes them as startup parameters of the upstream session (never in a
/// statement, so never in the server's statement log, `pg_stat_activity`
/// or a plan); the engine refuses every client read or change of them.
pub fn hash_pads(key: &str) -> (String, String) {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key.as_bytes()));
    } else {
        block[..key.len()].copy_from_slice(key.as_bytes());
    }
    let pad = |byte: u8| hex::encode(block.iter().map(|b| b ^ byte).collect::<Vec<u8>>());
    (pad(0x36), pad(0x5c))
}

/// SQL for the hex HMAC-SHA256 of the text `message` with only built-in
/// functions (`sha256`, bytea concatenation), so the server needs no
/// pgcrypto. The padded keys are read from the session's settings
/// ([`hash_pads`]): the key never appears in statement text.
fn hmac_sha256_sql(message: &str) -> String {
    format!(
        "encode(sha256(decode(current_setting('{HASH_OPAD_SETTING}'), 'hex') || sha256(decode(current_setting('{HASH_IPAD_SETTING}'), 'hex') || convert_to({message}, 'UTF8'))), 'hex')"
    )
}

impl Mask {
    /// Whether the mask can render a column of this family.
    pub fn accepts(&self, family: TypeFamily) -> bool {
        match self {
            Mask::Custom(c) => c.accepts.contains(&family) && c.output == family,
            Mask::Constant(Literal::Int(_)) => family == TypeFamily::Number,
            Mask::Constant(Literal::Bool(_)) => family == TypeFamily::Bool,
            Mask::Constant(Literal::Str(_)) => matches!(
                family,
                TypeFamily::Text | TypeFamily::Date | TypeFamily::Timestamp | TypeFamily::Uuid
            ),
            other => spec(other.catalogue_name())
                .is_some_and(|s| s.accepts.is_empty() || s.accepts.contains(&family)),
        }
    }

    /// The catalogue name of a built-in mask (`custom` for user masks).
    fn catalogue_name(&self) -> &'static str {
        match self {
            Mask::Redact => "redact",
            Mask::Null => "null",
            Mask::First(_) => "first",
            Mask::Last(_) => "last",
            Mask::Email => "email",
            Mask::Hash => "hash",
            Mask::Year => "year",
            Mask::Round(_) => "round",
            Mask::Bucket(_) => "bucket",
            Mask::Constant(_) => "constant",
            Mask::Custom(_) => "custom",
        }
    }

    /// The policy spelling, e.g. `last(4)`.
    pub fn display(&self) -> String {
        match self {
            Mask::Redact => "redact".into(),
            Mask::Null => "null".into(),
            Mask::First(n) => format!("first({n})"),
            Mask::Last(n) => format!("last({n})"),
            Mask::Email => "email".into(),
            Mask::Hash => "hash".into(),
            Mask::Year => "year".into(),
            Mask::Round(n) => format!("round({n})"),
            Mask::Bucket(w) => format!("bucket({w})"),
            Mask::Constant(Literal::Str(s)) => {
                format!("constant({})", clsf_lang::format::string(s))
            }
            Mask::Constant(Literal::Int(n)) => format!("constant({n})"),
            Mask::Constant(Literal::Bool(b)) => format!("constant({b})"),
            Mask::Custom(c) => c.name.clone(),
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
            Mask::Hash => {
                let hex = hmac_sha256_sql(&format!("CAST({column} AS text)"));
                match TypeFamily::of(type_name) {
                    TypeFamily::Uuid => format!("CAST(substr({hex}, 1, 32) AS uuid)"),
                    TypeFamily::Number if type_name.starts_with("smallint") => {
                        format!(
                            "(CAST(CAST('x' || substr({hex}, 1, 4) AS bit(16)) AS integer) - 32768)"
                        )
                    }
                    TypeFamily::Number if type_name.starts_with("integer") => {
                        format!("CAST(CAST('x' || substr({hex}, 1, 8) AS bit(32)) AS integer)")
                    }
                    TypeFamily::Number => {
                        let big =
                            format!("CAST(CAST('x' || substr({hex}, 1, 16) AS bit(64)) AS bigint)");
                        // numeric(p, s) holds integers below 10^(p-s): keep
                        // the hash in range so the cast back cannot overflow.
                        match numeric_integer_digits(type_name) {
                            Some(0) => "0".to_owned(),
                            Some(d) if d < 18 => format!("mod({big}, {})", 10i64.pow(d)),
                            _ => big,
                        }
                    }
                    _ => hex,
                }
            }
            Mask::Year => format!("date_trunc('year', {column})"),
            Mask::Round(n) => format!("round(CAST({column} AS numeric), {n})"),
            Mask::Bucket(w) => format!("floor(CAST({column} AS numeric) / {w}) * {w}"),
            Mask::Constant(Literal::Str(s)) => sql_string(s),
            Mask::Constant(Literal::Int(n)) => n.to_string(),
            Mask::Constant(Literal::Bool(b)) => b.to_string(),
            Mask::Custom(c) => format!(
                "({})",
                c.template.replace(&format!("{{{}}}", c.param), column)
            ),
        };
        // NULL stays NULL under every mask but `constant`, `redact` and custom
        // templates, which decide for themselves.
        format!("CAST({body} AS {type_name})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_entry_builds_for_a_type_it_accepts() {
        for spec in CATALOGUE {
            let family = spec.accepts.first().copied().unwrap_or(TypeFamily::Text);
            let args: Vec<Arg> = spec
                .args
                .iter()
                .map(|k| match (k, family) {
                    (ArgKind::Value, TypeFamily::Text) => Arg::Str("x".into()),
                    _ => Arg::Int(2),
                })
                .collect();
            let mask = build(spec, &args, family).expect(spec.name);
            assert!(mask.to_sql("\"c\"", "text").starts_with("CAST("));
        }
    }

    #[test]
    fn misuse_is_refused() {
        let first = spec("first").unwrap();
        assert!(matches!(
            build(first, &[Arg::Int(2)], TypeFamily::Number),
            Err(MaskError::Type { .. })
        ));
        assert!(matches!(
            build(first, &[Arg::Str("a".into())], TypeFamily::Text),
            Err(MaskError::BadArg { index: 0, .. })
        ));
        assert!(matches!(
            build(spec("bucket").unwrap(), &[Arg::Int(0)], TypeFamily::Number),
            Err(MaskError::BadArg { .. })
        ));
        assert!(matches!(
            build(spec("constant").unwrap(), &[Arg::Int(0)], TypeFamily::Text),
            Err(MaskError::BadArg { .. })
        ));
    }

    #[test]
    fn last_keeps_tail() {
        assert_eq!(
            Mask::Last(4).to_sql("\"card\"", "text"),
            "CAST(repeat('*', greatest(length(\"card\") - 4, 0)) || right(\"card\", 4) AS text)"
        );
    }
}
