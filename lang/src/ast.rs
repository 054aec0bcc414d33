//! The typed syntax tree of a policy file. Every node carries the [`Span`]
//! it was parsed from; names are already case-folded the way SQL folds them
//! (unquoted → lower case, quoted → verbatim).

use crate::span::Span;

/// A name with its source span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// The folded name.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// One parsed `.clsf` file.
#[derive(Clone, Debug, Default)]
pub struct File {
    /// Top-level declarations in source order.
    pub items: Vec<Item>,
}

/// A top-level declaration.
#[derive(Clone, Debug)]
pub enum Item {
    /// `labels public < internal < …`
    Labels(LabelsDecl),
    /// `unclassified LABEL`
    Unclassified(UnclassifiedDecl),
    /// `group NAME { … }`
    Group(GroupDecl),
    /// `table schema.table [: LABEL] { column: LABEL [mask M] … }`
    Table(TableDecl),
    /// `rule NAME for GROUP { allow|mask|deny [cmp] LABEL … }`
    Rule(RuleDecl),
}

/// The ordered label lattice, lowest first.
#[derive(Clone, Debug)]
pub struct LabelsDecl {
    /// Labels from least to most protected.
    pub labels: Vec<Name>,
    /// The whole declaration.
    pub span: Span,
}

/// The label given to columns that no classification covers.
#[derive(Clone, Debug)]
pub struct UnclassifiedDecl {
    /// The label.
    pub label: Name,
    /// The whole declaration.
    pub span: Span,
}

/// A group of workload identities, defined by conditions on verified token claims.
#[derive(Clone, Debug)]
pub struct GroupDecl {
    /// Group name.
    pub name: Name,
    /// All conditions must hold.
    pub conditions: Vec<Condition>,
    /// The whole declaration.
    pub span: Span,
}

/// One membership condition of a group.
#[derive(Clone, Debug)]
pub enum Condition {
    /// `issuer "…"`: the token's `iss` equals the string.
    Issuer(StringLit),
    /// `audience "…"`: the token's `aud` equals or contains the string.
    Audience(StringLit),
    /// `claim NAME == "…"` or `claim NAME contains "…"`.
    Claim(ClaimCondition),
}

/// A condition on one claim.
#[derive(Clone, Debug)]
pub struct ClaimCondition {
    /// Claim name (such as `repository` or `groups`).
    pub claim: StringLit,
    /// Comparison.
    pub op: ClaimOp,
    /// Expected value.
    pub value: StringLit,
    /// The whole condition.
    pub span: Span,
}

/// How a claim is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimOp {
    /// The claim is a string equal to the value.
    Equals,
    /// The claim is an array containing the value (or a string equal to it).
    Contains,
}

/// A string literal with escapes removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringLit {
    /// The value.
    pub value: String,
    /// Where it was written (including quotes).
    pub span: Span,
}

/// Classification of one table and its columns.
#[derive(Clone, Debug)]
pub struct TableDecl {
    /// Qualified name parts, such as `public`, `customers`.
    pub name: Vec<Name>,
    /// Span of the qualified name.
    pub name_span: Span,
    /// Label inherited by columns without one of their own.
    pub default_label: Option<Name>,
    /// Explicitly classified columns.
    pub columns: Vec<ColumnDecl>,
    /// The whole declaration.
    pub span: Span,
}

/// Classification of one column.
#[derive(Clone, Debug)]
pub struct ColumnDecl {
    /// Column name.
    pub name: Name,
    /// Its label.
    pub label: Name,
    /// How it is masked for identities that may only see it masked.
    pub mask: Option<MaskExpr>,
    /// The whole declaration.
    pub span: Span,
}

/// A mask application such as `redact` or `last(4)`.
#[derive(Clone, Debug)]
pub struct MaskExpr {
    /// Mask name.
    pub name: Name,
    /// Integer arguments, with their spans.
    pub args: Vec<(u64, Span)>,
    /// The whole expression.
    pub span: Span,
}

/// What a group may do with columns of some labels.
#[derive(Clone, Debug)]
pub struct RuleDecl {
    /// Rule name (its id in Cedar and in audit records).
    pub name: Name,
    /// The group it applies to.
    pub group: Name,
    /// Clauses in source order.
    pub clauses: Vec<RuleClause>,
    /// The whole declaration.
    pub span: Span,
}

/// `allow|mask|deny [cmp] LABEL`.
#[derive(Clone, Debug)]
pub struct RuleClause {
    /// The effect.
    pub action: RuleAction,
    /// Which labels, relative to `label`.
    pub cmp: LabelCmp,
    /// The reference label.
    pub label: Name,
    /// The whole clause.
    pub span: Span,
}

/// The effect of a rule clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// Read in clear.
    Allow,
    /// Read through the column's mask.
    Mask,
    /// Never read.
    Deny,
}

/// Which labels a clause covers, relative to its reference label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelCmp {
    /// Exactly the label.
    Eq,
    /// The label and all below it.
    Le,
    /// Strictly below.
    Lt,
    /// The label and all above it.
    Ge,
    /// Strictly above.
    Gt,
}
