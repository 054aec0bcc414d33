//! The table of every diagnostic code clsf emits, with a summary and the
//! explanation `clsfc explain CODE` prints. Codes are never reused; a
//! removed diagnostic keeps its row. `spec/language.md` lists the same table
//! (a test keeps them in step).

/// One row of the code table.
#[derive(Debug)]
pub struct Code {
    /// `CLSF####`.
    pub code: &'static str,
    /// Error or warning.
    pub severity: &'static str,
    /// What it means, in a few words.
    pub summary: &'static str,
    /// A paragraph: why it is reported and what to do.
    pub explanation: &'static str,
}

/// Looks a code up (case-insensitive, `CLSF` prefix optional).
pub fn find(code: &str) -> Option<&'static Code> {
    let upper = code.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CLSF") {
        upper
    } else {
        format!("CLSF{upper}")
    };
    CODES.iter().find(|c| c.code == full)
}

/// All codes, sorted.
pub const CODES: &[Code] = &[
    Code {
        code: "CLSF0001",
        severity: "error",
        summary: "syntax error",
        explanation: "The text does not match the grammar of the policy language. The label
lists the tokens that would have been accepted where the error is. Every
broken declaration of a file is reported (the parser resumes at the next
line that starts, in column 0, with a declaration keyword); declarations
that parse are still checked.",
    },
    Code {
        code: "CLSF0002",
        severity: "error",
        summary: "integer literal too large",
        explanation: "An integer does not fit in 64 bits (or, for a mask argument, in a signed
64-bit integer).",
    },
    Code {
        code: "CLSF0101",
        severity: "error",
        summary: "unknown table",
        explanation: "A table named in the policy is not in the schema lock. Pull the schema
again (`clsfc schema pull`) if the table is new; a close name is suggested
when there is one.",
    },
    Code {
        code: "CLSF0102",
        severity: "error",
        summary: "unknown column",
        explanation: "A column named in the policy is not a column of its table in the schema
lock.",
    },
    Code {
        code: "CLSF0103",
        severity: "error",
        summary: "unknown label",
        explanation: "A label that the `labels` declaration does not declare.",
    },
    Code {
        code: "CLSF0104",
        severity: "error",
        summary: "unknown group",
        explanation: "A rule, an approval or a composed group names a group that is not
defined.",
    },
    Code {
        code: "CLSF0105",
        severity: "error",
        summary: "duplicate definition",
        explanation: "Something is defined or classified twice: a label, category, group, mask,
rule, or the classification of a schema, table or column. Both places are
shown. Imported files share the namespace of the policy.",
    },
    Code {
        code: "CLSF0106",
        severity: "error",
        summary: "unknown mask",
        explanation: "A mask that is neither built in nor defined with `mask NAME(...)`.",
    },
    Code {
        code: "CLSF0107",
        severity: "error",
        summary: "mask does not fit the column type",
        explanation: "A mask applied to a column whose type it does not accept, e.g. `email` on
an integer. Each mask's accepted types are listed in the mask table; `null`
fits every type.",
    },
    Code {
        code: "CLSF0108",
        severity: "error",
        summary: "wrong number of mask arguments",
        explanation: "A mask written with the wrong number of arguments, e.g. `last` instead of
`last(4)`.",
    },
    Code {
        code: "CLSF0109",
        severity: "error",
        summary: "no labels declared",
        explanation: "The policy (with its imports) has no `labels` declaration. Declare one, or
`use std::labels`.",
    },
    Code {
        code: "CLSF0110",
        severity: "warning",
        summary: "mask clause covers columns without a mask",
        explanation: "A `mask` clause (without `with MASK`) covers columns whose classification
has no mask. Members of the group cannot read those columns at all, which is
rarely what was meant: give the columns a mask or write `deny`.",
    },
    Code {
        code: "CLSF0111",
        severity: "error",
        summary: "malformed table name",
        explanation: "A table name with more than three parts, or a column reference without a
table.",
    },
    Code {
        code: "CLSF0112",
        severity: "error",
        summary: "unknown category",
        explanation: "A category that no `categories` declaration declares.",
    },
    Code {
        code: "CLSF0113",
        severity: "error",
        summary: "invalid regular expression",
        explanation: "A `named /…/` pattern that does not compile. The syntax is that of the
Rust `regex` crate: no look-around and no back-references, which keeps
matching linear in the length of the name.",
    },
    Code {
        code: "CLSF0114",
        severity: "error",
        summary: "unknown schema",
        explanation: "A `schema NAME: LABEL` declaration names a schema with no relation in the
schema lock.",
    },
    Code {
        code: "CLSF0115",
        severity: "error",
        summary: "conflicting patterns",
        explanation: "Two `classify` patterns of the same priority match a column and classify
it differently (label, categories or mask). Give one a higher `priority`, or
classify the column explicitly.",
    },
    Code {
        code: "CLSF0116",
        severity: "error",
        summary: "import not found",
        explanation: "A `use` names a standard-library module that does not exist, or a path
(relative to the importing file) that does not exist.",
    },
    Code {
        code: "CLSF0117",
        severity: "error",
        summary: "import cycle",
        explanation: "Files import each other. Move what they share into a third file that both
import.",
    },
    Code {
        code: "CLSF0118",
        severity: "error",
        summary: "group cycle",
        explanation: "A composed group refers to itself, directly or through other groups.",
    },
    Code {
        code: "CLSF0119",
        severity: "error",
        summary: "ambiguous rules",
        explanation: "Two clauses that can apply to the same column disagree in a way that no
precedence settles: two `mask … with` clauses choose different masks.
Narrow one clause's target so that they cover different columns, or give
both the same mask (`override because` applies to `allow` clauses only).",
    },
    Code {
        code: "CLSF0120",
        severity: "error",
        summary: "invalid mask argument",
        explanation: "A mask argument of the wrong kind: `first`/`last` take a non-negative
count, `round` an integer, `bucket` a positive width, and `constant` a value
of the column's type (a string for text, dates, timestamps and uuids, an
integer for numbers, `true`/`false` for booleans).",
    },
    Code {
        code: "CLSF0121",
        severity: "error",
        summary: "invalid mask template",
        explanation: "A user-defined mask's template is not one SQL expression over its
parameter: it does not parse, reads another column, contains a subquery,
calls a function that is not known to be pure, or never uses `{param}`.",
    },
    Code {
        code: "CLSF0122",
        severity: "error",
        summary: "invalid row filter",
        explanation: "A row filter is not one SQL expression over the table's columns: it does
not parse, names a column the table does not have, contains a subquery,
calls a function that is not known to be pure, or uses a placeholder other
than `{claim.NAME}`.",
    },
    Code {
        code: "CLSF0123",
        severity: "error",
        summary: "not applicable here",
        explanation: "An action, mask or reason that does not apply to its clause: `ddl` and
`admin` with a column target, `with MASK` on a clause that is not `mask`,
`override because` on a clause that is not `allow`, `mask` on functions or
on actions other than read, actions on a function clause.",
    },
    Code {
        code: "CLSF0124",
        severity: "error",
        summary: "reserved name",
        explanation: "A label or category named like a word rule clauses read as a keyword
(`read`, `write`, `ddl`, `export`, `admin`, `table`, `column`, `function`,
`by`, `with`, `override`, `all`).",
    },
    Code {
        code: "CLSF0125",
        severity: "error",
        summary: "too many categories",
        explanation: "A policy may declare at most 64 categories.",
    },
    Code {
        code: "CLSF0126",
        severity: "error",
        summary: "unknown type",
        explanation: "A user-defined mask names an input or output type clsf cannot check. Use
a family (`text`, `number`, `boolean`, `date`, `timestamp`, `uuid`) or a
concrete type of one of them (`integer`, `\"character varying\"`, …).",
    },
    Code {
        code: "CLSF0127",
        severity: "error",
        summary: "invalid value",
        explanation: "A row limit, quorum, time-to-live, session duration or execution count of
zero.",
    },
    Code {
        code: "CLSF0128",
        severity: "error",
        summary: "weaker than lineage",
        explanation: "A view or materialized-view column is computed from columns that are more
protected than the label the policy gives it (or a partition's or
inheritance child's column is less protected than its parent's). Reading
the view would reveal what the source columns protect. Raise the label, or
state why the view is safe with `override because \"…\"`.",
    },
    Code {
        code: "CLSF0129",
        severity: "error",
        summary: "columns no classification covers",
        explanation: "Some columns of the schema are covered by no classification (explicit,
table, schema, pattern or lineage) and `unclassified … report error` makes
that an error. They would get the `unclassified` label. Classify them, or
lower the report to `warning`.",
    },
    Code {
        code: "CLSF0201",
        severity: "warning",
        summary: "unused group",
        explanation: "A group that no rule, approval or composed group names.",
    },
    Code {
        code: "CLSF0202",
        severity: "warning",
        summary: "can never apply",
        explanation: "A group without conditions (nobody is a member), or a clause whose target
covers nothing: no column has its label or categories, or a comparison
above the highest or below the lowest label.",
    },
    Code {
        code: "CLSF0203",
        severity: "warning",
        summary: "classification shadowed",
        explanation: "A pattern matches a column that an explicit, table or schema
classification classifies less protectively; the declaration wins
(explicit > table > schema > pattern). Classify the column explicitly if
the pattern was right.",
    },
    Code {
        code: "CLSF0204",
        severity: "warning",
        summary: "unused label",
        explanation: "A declared label that no column has and no rule or declaration names.",
    },
    Code {
        code: "CLSF0205",
        severity: "warning",
        summary: "mask fits only some columns",
        explanation: "A pattern or a `mask … with` clause applies a mask to columns of types it
does not accept; those columns get no mask from there (they keep their
classification's mask, or have none).",
    },
    Code {
        code: "CLSF0206",
        severity: "warning",
        summary: "columns no classification covers",
        explanation: "Some columns of the schema are covered by no classification; they get the
`unclassified` label (the highest when the policy declares none). Usually a
column added since the policy was written. Classify them, or set
`unclassified LABEL report none` to stop the report, or `report error` to
make CI fail on new columns.",
    },
    Code {
        code: "CLSF0207",
        severity: "warning",
        summary: "view lineage not traced",
        explanation: "The definition of a view or materialized view could not be resolved
column by column (a construct the resolver does not follow, or a relation
the schema lock lacks). Its columns get the most protective classification
of every relation the definition names, or the highest label when one of
them is unknown. Classify its columns explicitly to be precise.",
    },
    Code {
        code: "CLSF0301",
        severity: "error",
        summary: "forbid can error",
        explanation: "`clsfc check --verify` found a request for which the Cedar forbid this
clause generates fails to evaluate. Cedar skips a policy that errors, so a
forbid that errors lets through what it was written to stop (it fails
open). The generated targets always evaluate; this means a compiler bug or
a hand-edited bundle: report it.",
    },
    Code {
        code: "CLSF0302",
        severity: "warning",
        summary: "clause applies to nothing",
        explanation: "`clsfc check --verify` proved that no request this clause could match
exists for this database and these groups: no column of the schema lock
has the label, category, table or name the target names, or no identity
can be in the rule's group. The clause decides nothing; it is usually a
typo in a category, a label with no columns yet, or a rule for a group
that cannot have members. Remove it or fix its target.",
    },
    Code {
        code: "CLSF0303",
        severity: "warning",
        summary: "clause shadowed",
        explanation: "`clsfc check --verify` proved that every request this `allow` clause
permits is forbidden by a more protective clause (a `deny`, or the clear
read a `mask` or `require approval` clause forbids), for every action the
clause names. The clause grants nothing. Remove it, narrow the more
protective clause, or, for a mask, say `override because \"…\"`.",
    },
    Code {
        code: "CLSF0304",
        severity: "warning",
        summary: "clause redundant",
        explanation: "`clsfc check --verify` proved that the policy decides every request the
same way without this `allow` clause: other clauses already allow
everything it allows. Redundant clauses hide what a change to the broader
clause would do; remove this one, or narrow the broader clause if that is
the mistake.",
    },
    Code {
        code: "CLSF0305",
        severity: "warning",
        summary: "group with no possible member",
        explanation: "No credential can be a member of this group: its conditions test one
claim for two values, name two service accounts, or its composition needs
groups whose conditions contradict (for example `ci_github and ci_gitlab`
when each tests a different issuer). Rules for the group grant nothing.
The check compares equalities, lists and globs; conditions it cannot
compare are assumed compatible, so it never reports a group that can have
members.",
    },
    Code {
        code: "CLSF0306",
        severity: "error",
        summary: "clause not verified",
        explanation: "The solver gave no answer for a question about this clause within the
time bound (`--solver-timeout`, 60 s by default), answered `unknown`, or
failed. Verification never reports an unanswered question as clean. Raise
the bound, or simplify the clause's target.",
    },
    Code {
        code: "CLSF0307",
        severity: "warning",
        summary: "permit can error",
        explanation: "`clsfc check --verify` found a request for which the Cedar permit this
clause generates fails to evaluate. Cedar skips it, so the access it
grants is refused (it fails closed). The generated targets always
evaluate; this means a compiler bug or a hand-edited bundle: report it.",
    },
];
