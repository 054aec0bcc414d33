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
pub fn mask_arity(span: Span, mask: &str, expected: usize, got: usize, form: &str) -> Diagnostic {
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

/// CLSF0112: a category that no `categories` declaration defines.
pub fn unknown_category(span: Span, name: &str, known: &[String]) -> Diagnostic {
    let d = Diagnostic::error(
        "CLSF0112",
        format!("unknown category `{name}`"),
        span,
        "not a declared category",
    );
    if known.is_empty() {
        d.with_help("declare it, e.g. `categories pii, pci`")
    } else {
        d.with_help(format!("declared categories: {}", known.join(", ")))
    }
}

/// CLSF0113: a regular expression that does not compile.
pub fn bad_regex(span: Span, error: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0113",
        "invalid regular expression",
        span,
        error.lines().last().unwrap_or("invalid").trim().to_owned(),
    )
    .with_help("the syntax is that of the Rust `regex` crate (no look-around, no back-references)")
}

/// CLSF0114: a schema that is not in the schema lock.
pub fn unknown_schema(span: Span, name: &str, suggestion: Option<&str>) -> Diagnostic {
    let d = Diagnostic::error(
        "CLSF0114",
        format!("unknown schema `{name}`"),
        span,
        "no relation of the schema lock is in this schema",
    );
    match suggestion {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help("pull the schema again with `clsfc schema pull` if the schema is new"),
    }
}

/// CLSF0115: two patterns of equal priority classify a column differently.
pub fn pattern_conflict(span: Span, other: Span, column: &str, a: &str, b: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0115",
        format!("patterns classify `{column}` differently ({a} and {b}) at the same priority"),
        span,
        format!("classifies it {a}"),
    )
    .with_label(other, format!("classifies it {b}"))
    .with_help("give one of them a higher `priority N`, or classify the column explicitly")
}

/// CLSF0116: a `use` that names no file.
pub fn import_not_found(span: Span, what: &str, known: &[&str]) -> Diagnostic {
    let d = Diagnostic::error(
        "CLSF0116",
        format!("cannot import `{what}`"),
        span,
        "no such file or directory",
    );
    if known.is_empty() {
        d.with_help("a path is relative to the importing file")
    } else {
        d.with_help(format!("the standard library has: {}", known.join(", ")))
    }
}

/// CLSF0117: files that import each other.
pub fn import_cycle(span: Span, cycle: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0117",
        "import cycle",
        span,
        format!("closes the cycle {cycle}"),
    )
    .with_help("move the shared declarations into a file that both import")
}

/// CLSF0118: a group defined in terms of itself.
pub fn group_cycle(span: Span, cycle: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0118",
        "group defined in terms of itself",
        span,
        format!("cycle: {cycle}"),
    )
    .with_help("a composed group may only refer to groups that do not refer back to it")
}

/// CLSF0119: two rules that could apply to the same column disagree in a
/// way no precedence settles.
pub fn ambiguous_rules(span: Span, other: Span, column: &str, what: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0119",
        format!("ambiguous rules for `{column}`: {what}"),
        span,
        "this clause",
    )
    .with_label(other, "conflicts with this clause")
    // `override because` is not a way out: it applies to `allow` clauses
    // only (CLSF0123), and these are two `mask … with` clauses.
    .with_help("narrow one clause's target so that they cover different columns, or give both the same mask")
}

/// CLSF0120: a mask argument of the wrong kind.
pub fn bad_mask_argument(span: Span, mask: &str, expected: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0120",
        format!("invalid argument for mask `{mask}`"),
        span,
        format!("expected {expected}"),
    )
}

/// CLSF0121: a user-defined mask whose template is not a safe expression.
pub fn bad_mask_template(span: Span, why: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0121",
        "invalid mask template",
        span,
        why.to_owned(),
    )
    .with_help("a template is one SQL expression over `{param}`: no other columns, no subqueries, only functions clsf knows to be pure")
}

/// CLSF0122: a row-filter predicate that is not a safe expression.
pub fn bad_filter(span: Span, why: &str) -> Diagnostic {
    Diagnostic::error("CLSF0122", "invalid row filter", span, why.to_owned()).with_help(
        "a filter is one SQL boolean expression over the table's columns; claim values are written `{claim.NAME}`",
    )
}

/// CLSF0123: an action, mask or reason that does not apply to the clause.
pub fn not_applicable(span: Span, what: &str, help: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0123",
        format!("{what} does not apply here"),
        span,
        "not applicable",
    )
    .with_help(help.to_owned())
}

/// CLSF0124: a label or category named like a keyword of rule clauses.
pub fn reserved_name(span: Span, name: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0124",
        format!("`{name}` is reserved and cannot name a label or category"),
        span,
        "reserved word",
    )
    .with_help("rule clauses would read it as an action or keyword; choose another name")
}

/// CLSF0125: more categories than the plan can represent.
pub fn too_many_categories(span: Span, max: usize) -> Diagnostic {
    Diagnostic::error(
        "CLSF0125",
        format!("more than {max} categories"),
        span,
        "one too many",
    )
}

/// CLSF0126: a type name that is not a known SQL type or family.
pub fn unknown_type(span: Span, name: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0126",
        format!("unknown type `{name}`"),
        span,
        "not a type clsf can check",
    )
    .with_help(
        "use text, number, boolean, date, timestamp, uuid or a concrete type such as integer",
    )
}

/// CLSF0127: a number that makes no sense where it is written.
pub fn bad_value(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        "CLSF0127",
        format!("invalid {what}"),
        span,
        "must be at least 1",
    )
}

/// CLSF0201: a group that no rule uses.
pub fn unused_group(span: Span, name: &str) -> Diagnostic {
    Diagnostic::warning(
        "CLSF0201",
        format!("group `{name}` is never used"),
        span,
        "no rule, composed group or approval names it",
    )
    .with_help("remove it, or write a rule for it")
}

/// CLSF0202: a group or clause that can never apply.
pub fn never_matches(span: Span, what: &str, why: &str) -> Diagnostic {
    Diagnostic::warning(
        "CLSF0202",
        format!("{what} can never apply"),
        span,
        why.to_owned(),
    )
}

/// CLSF0203: a classification hidden by one that takes precedence.
pub fn shadowed(span: Span, by: Span, column: &str, why: &str) -> Diagnostic {
    Diagnostic::warning(
        "CLSF0203",
        format!("classification of `{column}` is shadowed"),
        span,
        why.to_owned(),
    )
    .with_label(by, "takes precedence")
    .with_help("explicit beats table, table beats schema, schema beats pattern; classify the column explicitly if the pattern was right")
}

/// CLSF0204: a declared label that nothing uses.
pub fn unused_label(span: Span, name: &str) -> Diagnostic {
    Diagnostic::warning(
        "CLSF0204",
        format!("label `{name}` is never used"),
        span,
        "no column has it and no rule names it",
    )
}

/// CLSF0205: a mask that fits only some of the columns it is applied to.
pub fn mask_partly_fits(
    span: Span,
    mask: &str,
    n: usize,
    example: &str,
    type_name: &str,
) -> Diagnostic {
    Diagnostic::warning(
        "CLSF0205",
        format!(
            "mask `{mask}` does not fit {n} of the columns it covers; they get no mask from here"
        ),
        span,
        format!("e.g. `{example}` of type `{type_name}`"),
    )
    .with_help("add `of type …` to the pattern, or use `null`, which fits every type")
}

/// CLSF0128: an explicit label on a view (or partition) column below what
/// its sources require.
pub fn weaker_than_lineage(
    span: Span,
    column: &str,
    given: &str,
    required: &str,
    sources: &[String],
) -> Diagnostic {
    Diagnostic::error(
        "CLSF0128",
        format!("`{column}` is classified {given}, but it is computed from columns classified {required}"),
        span,
        format!("less protected than {}", sources.join(", ")),
    )
    .with_help(format!(
        "classify it {required} or higher, or add `override because \"…\"` saying why the view is safe"
    ))
}

/// CLSF0129 (error) or CLSF0206 (warning): columns no classification covers.
pub fn unclassified_columns(
    error: bool,
    span: Option<Span>,
    by_relation: &std::collections::BTreeMap<String, Vec<&str>>,
    label: &str,
) -> Diagnostic {
    const SHOWN: usize = 10;
    let total: usize = by_relation.values().map(Vec::len).sum();
    let (code, severity) = if error {
        ("CLSF0129", clsf_lang::Severity::Error)
    } else {
        ("CLSF0206", clsf_lang::Severity::Warning)
    };
    let mut listed: Vec<String> = by_relation
        .iter()
        .take(SHOWN)
        .map(|(rel, cols)| format!("{rel} ({})", cols.join(", ")))
        .collect();
    if by_relation.len() > SHOWN {
        listed.push(format!("and {} more relations", by_relation.len() - SHOWN));
    }
    let message = format!(
        "{total} column(s) in {} relation(s) are covered by no classification and get `{label}`",
        by_relation.len()
    );
    let help = format!(
        "{}; classify them, or set `unclassified LABEL report none|warning|error`",
        listed.join("; ")
    );
    let d = match span {
        Some(span) => Diagnostic {
            severity,
            ..Diagnostic::error(code, message, span, "the report this declaration asks for")
        },
        None => Diagnostic::unlocated(code, severity, message),
    };
    d.with_help(help)
}

/// CLSF0207: a view definition the resolver could not follow.
pub fn lineage_not_traced(view: &str, reason: &str, fallback: &str) -> Diagnostic {
    Diagnostic::unlocated(
        "CLSF0207",
        clsf_lang::Severity::Warning,
        format!("lineage of view `{view}` not traced: {reason}; {fallback}"),
    )
    .with_help(format!(
        "classify the columns of `{view}` explicitly to be precise"
    ))
}
