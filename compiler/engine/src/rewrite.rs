//! Rewriting: each reference to a relation the identity may not read in
//! clear is replaced, at its source range, by a masking subquery with the
//! same name and column types. Everything downstream (predicates, joins,
//! functions, error messages) then sees only masked values. The rest of the
//! statement stays byte-identical.

use crate::column_access::Access;
use crate::schema::Relation;

/// A replacement of `start..end` in the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// First byte replaced.
    pub start: usize,
    /// One past the last byte replaced.
    pub end: usize,
    /// Replacement text.
    pub text: String,
}

/// Quotes an identifier for PostgreSQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `(SELECT …masked columns… FROM [ONLY] schema.relation [TABLESAMPLE …])`:
/// one output column per
/// relation column, in order, each with the column's name and type. Denied
/// columns become typed NULLs, so that a reference the analysis missed still
/// reveals nothing. The system columns the statement reads through the
/// reference (`system`, see `engine::system_columns`) follow them.
///
/// A row filter, when given, becomes the subquery's `WHERE` clause, with
/// the client's leakproof conditions on the relation (`copied`, see
/// `engine::barrier`) beside it, and `OFFSET 0` makes the subquery a
/// barrier no other condition of the client's crosses.
pub fn masking_subquery(
    relation: &Relation,
    access: &[Access],
    filter: Option<&str>,
    copied: &[String],
    only: bool,
    sample: Option<&str>,
    system: &[&str],
) -> String {
    let mut out = String::from("(SELECT ");
    for (i, (col, acc)) in relation.columns.iter().zip(access).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let name = quote_ident(&col.name);
        // A pseudo-type (the `anyarray` of planner statistics) cannot be
        // cast to: what is withheld becomes a NULL of type text.
        if crate::schema::catalog::is_pseudo_type(&col.type_name) && *acc != Access::Clear {
            out.push_str(&format!("CAST(NULL AS text) AS {name}"));
            continue;
        }
        match acc {
            Access::Clear => out.push_str(&name),
            // A domain's constraints (CHECK, NOT NULL) need not hold for a
            // masked or withheld value: those are produced as the base type.
            Access::Masked(mask) => {
                out.push_str(&mask.to_sql(&name, col.value_type()));
                out.push_str(" AS ");
                out.push_str(&name);
            }
            Access::Denied { .. } | Access::Approval { .. } => {
                out.push_str(&format!("CAST(NULL AS {}) AS {name}", col.value_type()));
            }
        }
    }
    for column in system {
        out.push_str(", ");
        out.push_str(column);
    }
    out.push_str(if only { " FROM ONLY " } else { " FROM " });
    out.push_str(&quote_ident(&relation.schema));
    out.push('.');
    out.push_str(&quote_ident(&relation.name));
    if let Some(sample) = sample {
        out.push(' ');
        out.push_str(sample);
    }
    if let Some(f) = filter {
        out.push_str(" WHERE ");
        out.push_str(f);
        for c in copied {
            out.push_str(" AND ");
            out.push_str(c);
        }
        out.push_str(" OFFSET 0");
    }
    out.push(')');
    out
}

/// Applies non-overlapping edits to `text` (sorting them in place, so the
/// caller keeps them without a copy). Returns `None` when two edits
/// overlap (the caller denies rather than guess).
pub fn splice(text: &str, edits: &mut [Edit]) -> Option<String> {
    edits.sort_by_key(|e| e.start);
    let extra = edits.iter().map(|e| e.text.len()).sum();
    splice_ordered(
        text,
        edits.iter().map(|e| (e.start, e.end, e.text.as_str())),
        extra,
    )
}

/// Applies edits (byte range, replacement) given in the order of their
/// start, borrowing their replacements, with room for `extra` bytes more
/// than `text`. Returns `None` when two edits overlap or one is out of
/// range. The shape cache splices with it, so a hit copies no replacement.
pub fn splice_ordered<'a>(
    text: &str,
    edits: impl IntoIterator<Item = (usize, usize, &'a str)>,
    extra: usize,
) -> Option<String> {
    let mut out = String::with_capacity(text.len() + extra);
    let mut pos = 0;
    for (start, end, replacement) in edits {
        if start < pos || end > text.len() || start > end {
            return None;
        }
        out.push_str(text.get(pos..start)?);
        out.push_str(replacement);
        pos = end;
    }
    out.push_str(text.get(pos..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_keeps_the_rest_byte_identical() {
        let text = "SELECT a FROM t JOIN u ON true";
        let mut edits = vec![
            Edit {
                start: 21,
                end: 22,
                text: "(U)".into(),
            },
            Edit {
                start: 14,
                end: 15,
                text: "(T)".into(),
            },
        ];
        assert_eq!(
            splice(text, &mut edits).unwrap(),
            "SELECT a FROM (T) JOIN (U) ON true"
        );
    }

    #[test]
    fn overlapping_edits_are_refused() {
        let mut edits = vec![
            Edit {
                start: 0,
                end: 5,
                text: "x".into(),
            },
            Edit {
                start: 3,
                end: 6,
                text: "y".into(),
            },
        ];
        assert_eq!(splice("0123456789", &mut edits), None);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
