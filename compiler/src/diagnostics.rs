//! Every diagnostic the compiler emits, one constructor per code. Code
//! strings appear nowhere else in this crate (see `codes` for the table).

use clsf_lang::{Diagnostic, Span};

/// CLSF0101: a classified table does not exist in the schema.
pub fn unknown_table(span: Span, name: &str, suggestion: Option<&str>) -> Diagnostic {
    let d = Diagnostic::error(
        "CLSF0101",
        format!("unknown table `{name}`"),
        span,
        "not found in the schema lock",
    );
    match suggestion {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help("pull the schema again with `clsfc schema pull` if the table is new"),
    }
}

/// CLSF0102: a classified column does not exist in its table.
pub fn unknown_column(
    span: Span,
    table: &str,
    column: &str,
    suggestion: Option<&str>,
) -> Diagnostic {
    let d = Diagnostic::error(
        "CLSF0102",
        format!("unknown column `{column}` in table `{table}`"),
        span,
        format!("`{table}` has no column `{column}`"),
    );
    match suggestion {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help("pull the schema again with `clsfc schema pull` if the column is new"),
    }
}

/// CLSF0103: a label that the `labels` declaration does not define.
pub fn unknown_label(span: Span, label: &str, known: &[String]) -> Diagnostic {
    Diagnostic::error(
        "CLSF0103",
        format!("unknown label `{label}`"),
        span,
        "not a declared label",
    )
    .with_help(format!("declared labels: {}", known.join(", ")))
}

/// CLSF0104: a rule names a group that is not defined.
pub fn unknown_group(span: Span, group: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0104",
        format!("unknown group `{group}`"),
        span,
        "no group with this name",
    )
    .with_help("define it with `group NAME { … }`")
}

/// CLSF0105: something is defined twice.
pub fn duplicate(span: Span, what: &str, name: &str, first: Span) -> Diagnostic {
    Diagnostic::error(
        "CLSF0105",
        format!("{what} `{name}` is defined twice"),
        span,
        "second definition",
    )
    .with_label(first, "first defined here")
}

/// CLSF0106: a mask name that is not in the catalogue.
pub fn unknown_mask(span: Span, name: &str, known: &[&str]) -> Diagnostic {
    Diagnostic::error(
        "CLSF0106",
        format!("unknown mask `{name}`"),
        span,
        "not a built-in mask",
    )
    .with_help(format!("built-in masks: {}", known.join(", ")))
}

/// CLSF0107: a mask does not accept the column's type.
pub fn mask_type_mismatch(
    span: Span,
    mask: &str,
    column: &str,
    type_name: &str,
    accepts: &[&str],
) -> Diagnostic {
    Diagnostic::error(
        "CLSF0107",
        format!("mask `{mask}` cannot be applied to column `{column}` of type `{type_name}`"),
        span,
        format!("`{mask}` does not accept `{type_name}`"),
    )
    .with_help(format!(
        "`{mask}` accepts {} columns; `null` fits every type",
        accepts.join(", ")
    ))
}

/// CLSF0108: a mask got the wrong number of arguments.
pub fn mask_arity(span: Span, mask: &str, expected: usize, got: usize) -> Diagnostic {
    let form = if expected == 0 {
        mask.to_owned()
    } else {
        format!("{mask}(N)")
    };
    Diagnostic::error(
        "CLSF0108",
        format!("mask `{mask}` takes {expected} argument(s), got {got}"),
        span,
        "wrong number of arguments",
    )
    .with_help(format!("write it as `{form}`"))
}

/// CLSF0109: the policy has no `labels` declaration.
pub fn missing_labels(span: Span) -> Diagnostic {
    Diagnostic::error(
        "CLSF0109",
        "the policy declares no labels",
        span,
        "no `labels` declaration in this policy",
    )
    .with_help(
        "declare the label order, e.g. `labels public < internal < confidential < restricted`",
    )
}

/// CLSF0110: a `mask` clause covers columns that have no mask.
pub fn mask_clause_without_mask(
    span: Span,
    group: &str,
    n_columns: usize,
    example: &str,
) -> Diagnostic {
    Diagnostic::warning(
        "CLSF0110",
        format!("`mask` clause covers {n_columns} column(s) without a mask, which group `{group}` cannot read at all"),
        span,
        format!("e.g. `{example}` has no mask"),
    )
    .with_help("give the column a mask (`column: LABEL mask redact`) or write `deny` to say what you mean")
}

/// CLSF0111: a qualified name with too many parts.
pub fn bad_table_name(span: Span, name: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0111",
        format!("`{name}` is not a table name"),
        span,
        "expected `table` or `schema.table`",
    )
}
