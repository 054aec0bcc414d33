//! The typed syntax tree of a policy file. Every node carries the [`Span`]
//! it was parsed from; names are already case-folded the way SQL folds them
//! (unquoted → lower case, quoted → verbatim).

use crate::span::Span;

/// A name with its source span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// The folded name.
    pub text: String,
    /// True when it was written in double quotes (kept verbatim).
    pub quoted: bool,
    /// Where it was written.
    pub span: Span,
}

/// A dotted name such as `public.customers` or `public.customers.email`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QualifiedName {
    /// The parts, in order.
    pub parts: Vec<Name>,
    /// The whole name.
    pub span: Span,
}

/// A string literal with escapes removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringLit {
    /// The value.
    pub value: String,
    /// Where it was written (including quotes).
    pub span: Span,
}

/// An unsigned integer with its span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int {
    /// The value.
    pub value: u64,
    /// Where it was written.
    pub span: Span,
}

/// One parsed `.clsf` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct File {
    /// Top-level declarations in source order.
    pub items: Vec<Item>,
}

/// A top-level declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `use std::pii` or `use "../common"`.
    Use(UseDecl),
    /// `labels public < internal < …`
    Labels(LabelsDecl),
    /// `categories pii, pci`
    Categories(CategoriesDecl),
    /// `unclassified LABEL`
    Unclassified(UnclassifiedDecl),
    /// `group NAME { … }` or `group NAME = a and not b`
    Group(GroupDecl),
    /// `schema NAME: LABEL`
    Schema(SchemaDecl),
    /// `table schema.table [: LABEL] { column: LABEL [mask M] … }`
    Table(TableDecl),
    /// `classify columns named /re/ as LABEL …`
    Classify(ClassifyDecl),
    /// `mask NAME(v: type) -> type = "template"`
    Mask(MaskDecl),
    /// `rule NAME for GROUP { … }`
    Rule(RuleDecl),
}

impl Item {
    /// The whole declaration's span.
    pub fn span(&self) -> Span {
        match self {
            Item::Use(d) => d.span,
            Item::Labels(d) => d.span,
            Item::Categories(d) => d.span,
            Item::Unclassified(d) => d.span,
            Item::Group(d) => d.span,
            Item::Schema(d) => d.span,
            Item::Table(d) => d.span,
            Item::Classify(d) => d.span,
            Item::Mask(d) => d.span,
            Item::Rule(d) => d.span,
        }
    }
}

/// An import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UseDecl {
    /// What is imported.
    pub target: UseTarget,
    /// The whole declaration.
    pub span: Span,
}

/// Where an import points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UseTarget {
    /// `std::NAME`: a file of the standard library (`policies/NAME.clsf`).
    Std(Vec<Name>),
    /// `"path"`: a file or directory relative to the importing file.
    Path(StringLit),
}

/// The ordered label lattice, lowest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelsDecl {
    /// Labels from least to most protected.
    pub labels: Vec<Name>,
    /// The whole declaration.
    pub span: Span,
}

/// Declared categories (unordered tags such as `pii`, `pci`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoriesDecl {
    /// The categories.
    pub categories: Vec<Name>,
    /// The whole declaration.
    pub span: Span,
}

/// A label with optional categories: `confidential [pii, pci]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelRef {
    /// The level.
    pub level: Name,
    /// Categories.
    pub categories: Vec<Name>,
    /// The whole reference.
    pub span: Span,
}

/// The label given to columns that no classification covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnclassifiedDecl {
    /// The label.
    pub label: LabelRef,
    /// How `clsfc check` reports columns no classification covers
    /// (`report error|warning|none`; warning when not written).
    pub report: Option<Report>,
    /// The whole declaration.
    pub span: Span,
}

/// How uncovered columns are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// An error: `check` fails.
    Error,
    /// A warning.
    Warning,
    /// Not reported.
    None,
}

impl Report {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Report::Error => "error",
            Report::Warning => "warning",
            Report::None => "none",
        }
    }
}

/// A group of identities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDecl {
    /// Group name.
    pub name: Name,
    /// How membership is decided.
    pub body: GroupBody,
    /// The whole declaration.
    pub span: Span,
}

/// How group membership is decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupBody {
    /// `{ conditions }`: all must hold.
    Conditions(Vec<Condition>),
    /// `= expression` over other groups.
    Expr(GroupExpr),
}

/// A boolean expression over group names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupExpr {
    /// Membership in a named group.
    Ref(Name),
    /// Not a member.
    Not(Box<GroupExpr>),
    /// All hold (two or more).
    And(Vec<GroupExpr>),
    /// Any holds (two or more).
    Or(Vec<GroupExpr>),
}

/// One membership condition, with its span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// What is tested.
    pub kind: ConditionKind,
    /// The whole condition.
    pub span: Span,
}

/// What a condition tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionKind {
    /// The token's `iss`.
    Issuer(StrTest),
    /// The token's `aud` equals or contains the string.
    Audience(StringLit),
    /// The token's `sub`.
    Subject(StrTest),
    /// A claim, addressed by a path into nested objects.
    Claim {
        /// Path segments (`"kubernetes.io"`, `namespace`).
        path: Vec<StringLit>,
        /// The test.
        test: ClaimTest,
    },
    /// The client certificate's subject DN or one of its SANs.
    Certificate {
        /// Which field.
        field: CertField,
        /// The test.
        test: StrTest,
    },
    /// A static service account, by name.
    Account(StringLit),
}

/// A field of a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertField {
    /// The subject distinguished name (RFC 4514 string).
    Subject,
    /// Any subject alternative name (DNS, URI or e-mail).
    San,
}

/// A test on a string value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrTest {
    /// Equal (`== "v"` or just `"v"`).
    Equals(StringLit),
    /// Not equal.
    NotEquals(StringLit),
    /// Matches a glob (`*` any run, `?` one character).
    Like(StringLit),
    /// Equal to one of the strings.
    In(Vec<StringLit>),
}

/// A test on a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimTest {
    /// A test on a string claim.
    Str(StrTest),
    /// An array claim contains the value (or a string claim equals it).
    Contains(StringLit),
}

/// A schema-wide default label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaDecl {
    /// Schema name.
    pub name: Name,
    /// Label of its tables' columns unless classified otherwise.
    pub label: LabelRef,
    /// The whole declaration.
    pub span: Span,
}

/// Classification of one table and its columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDecl {
    /// Qualified name (`table`, `schema.table`, `database.schema.table`).
    pub name: QualifiedName,
    /// Label inherited by columns without one of their own.
    pub label: Option<LabelRef>,
    /// Explicitly classified columns.
    pub columns: Vec<ColumnDecl>,
    /// True when written with a `{ … }` body (kept by the formatter).
    pub has_body: bool,
    /// The whole declaration.
    pub span: Span,
}

/// Classification of one column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDecl {
    /// Column name.
    pub name: Name,
    /// Its label.
    pub label: LabelRef,
    /// How it is masked for identities that may only see it masked.
    pub mask: Option<MaskExpr>,
    /// `override because "…"`: the label may be less protective than the
    /// one lineage gives a view or partition column.
    pub reason: Option<StringLit>,
    /// The whole declaration.
    pub span: Span,
}

/// A pattern classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassifyDecl {
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// The label given.
    pub label: LabelRef,
    /// The mask given.
    pub mask: Option<MaskExpr>,
    /// Priority among patterns (higher wins; default 0).
    pub priority: Option<Int>,
    /// The whole declaration.
    pub span: Span,
}

/// One condition of a pattern classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    /// What is matched.
    pub kind: MatcherKind,
    /// The whole matcher.
    pub span: Span,
}

/// What a pattern matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatcherKind {
    /// `named /re/[i]`: the column name matches a regular expression.
    Named(Regex),
    /// `like "glob"`: the qualified column name matches a glob.
    Like(StringLit),
    /// `of type t, …`: the column's type is one of these.
    Type(Vec<TypeName>),
    /// `in "glob"`: the column's relation (`schema.table`) matches a glob.
    In(StringLit),
}

/// A regular expression literal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regex {
    /// The pattern between the slashes (escaped slashes unescaped).
    pub pattern: String,
    /// Case-insensitive (`/…/i`).
    pub case_insensitive: bool,
    /// Where it was written.
    pub span: Span,
}

/// A SQL type name as written in a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeName {
    /// Lower-cased, unquoted (`character varying`, `text[]`).
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// A mask application such as `redact`, `last(4)` or `constant("n/a")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskExpr {
    /// Mask name.
    pub name: Name,
    /// Arguments.
    pub args: Vec<MaskArg>,
    /// True when written with parentheses (kept by the formatter).
    pub parens: bool,
    /// The whole expression.
    pub span: Span,
}

/// A mask argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskArg {
    /// The value.
    pub value: ArgValue,
    /// Where it was written.
    pub span: Span,
}

/// The value of a mask argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgValue {
    /// A signed integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

/// A user-defined mask: a SQL expression template with typed input and output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaskDecl {
    /// Mask name.
    pub name: Name,
    /// The parameter name used as `{param}` in the template.
    pub param: Name,
    /// Accepted input types.
    pub inputs: Vec<TypeName>,
    /// Result type.
    pub output: TypeName,
    /// The SQL expression template.
    pub template: StringLit,
    /// The whole declaration.
    pub span: Span,
}

/// What a group may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleDecl {
    /// Rule name (its id in Cedar and in audit records).
    pub name: Name,
    /// The group it applies to.
    pub group: Name,
    /// Observe-only: record what it would deny, deny nothing.
    pub observe: bool,
    /// Clauses in source order.
    pub clauses: Vec<RuleClause>,
    /// The whole declaration.
    pub span: Span,
}

/// One clause of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleClause {
    /// What it says.
    pub kind: ClauseKind,
    /// The whole clause.
    pub span: Span,
}

/// The kinds of rule clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClauseKind {
    /// `allow|mask|deny [actions] [target] [with MASK] [override because "…"]`
    Access {
        /// The effect.
        effect: Effect,
        /// Actions (none written means `read`).
        actions: Vec<ActionRef>,
        /// What it covers (none means everything).
        target: Option<Target>,
        /// Mask overriding the classification's.
        mask: Option<MaskExpr>,
        /// Stated reason for overriding a more protective rule.
        reason: Option<StringLit>,
    },
    /// `require approval [actions] [target] by GROUP [ttl D] [scope S] [quorum N]`
    Approval {
        /// Actions (none written means `read`).
        actions: Vec<ActionRef>,
        /// What it covers (none means everything).
        target: Option<Target>,
        /// Who may approve.
        approvers: Name,
        /// How long a request waits.
        ttl: Option<Duration>,
        /// What one approval releases.
        scope: Option<ApprovalScope>,
        /// Approvals needed.
        quorum: Option<Int>,
    },
    /// `filter table T where "predicate"`
    Filter {
        /// The table.
        table: QualifiedName,
        /// SQL predicate template (may use `{claim.NAME}`).
        predicate: StringLit,
    },
    /// `limit N rows [target]`
    Limit {
        /// Maximum rows per statement.
        rows: Int,
        /// Which relations (none means every statement).
        target: Option<Target>,
    },
}

/// The effect of an access clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Permit in clear.
    Allow,
    /// Permit only through a mask.
    Mask,
    /// Never.
    Deny,
}

impl Effect {
    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Mask => "mask",
            Effect::Deny => "deny",
        }
    }
}

/// An action with its span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionRef {
    /// The action.
    pub action: Action,
    /// Where it was written.
    pub span: Span,
}

/// What is done to data.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read values (queries).
    Read,
    /// Change rows (INSERT, UPDATE, DELETE, MERGE, COPY FROM).
    Write,
    /// Change the schema.
    Ddl,
    /// Bulk reads: COPY TO and reads without a row limit.
    Export,
    /// Administrative statements (roles, settings, maintenance).
    Admin,
    /// Use the clear value in a join condition, without reading it.
    Join,
    /// Use the clear value in `WHERE` or `HAVING`, without reading it.
    Filter,
    /// Use the clear value in `GROUP BY` or `DISTINCT ON`, without reading it.
    Group,
    /// Use the clear value in `ORDER BY`, without reading it.
    Order,
    /// Return the value only through an aggregate (`count`, `min`, …).
    Aggregate,
}

impl Action {
    /// All actions, in keyword order.
    pub const ALL: [Action; 10] = [
        Action::Read,
        Action::Write,
        Action::Ddl,
        Action::Export,
        Action::Admin,
        Action::Join,
        Action::Filter,
        Action::Group,
        Action::Order,
        Action::Aggregate,
    ];

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Ddl => "ddl",
            Action::Export => "export",
            Action::Admin => "admin",
            Action::Join => "join",
            Action::Filter => "filter",
            Action::Group => "group",
            Action::Order => "order",
            Action::Aggregate => "aggregate",
        }
    }

    /// For a usage action, the usage class the engine hands to Cedar
    /// (`joined`, `filtered`, `grouped`, `ordered`, `aggregated`).
    pub fn usage(self) -> Option<&'static str> {
        match self {
            Action::Join => Some("joined"),
            Action::Filter => Some("filtered"),
            Action::Group => Some("grouped"),
            Action::Order => Some("ordered"),
            Action::Aggregate => Some("aggregated"),
            _ => None,
        }
    }
}

/// What a clause covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The kind of target.
    pub kind: TargetKind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of clause target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// Columns whose level compares to a label.
    Label {
        /// The comparison.
        cmp: LabelCmp,
        /// The reference label.
        label: Name,
    },
    /// Columns tagged with any of these categories.
    Categories(Vec<Name>),
    /// Every column of a table.
    Table(QualifiedName),
    /// One column (`schema.table.column` or `table.column`).
    Column(QualifiedName),
    /// Functions by name.
    Functions(Vec<QualifiedName>),
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

impl LabelCmp {
    /// The operator as written; empty for `Eq` written without `==`.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelCmp::Eq => "==",
            LabelCmp::Le => "<=",
            LabelCmp::Lt => "<",
            LabelCmp::Ge => ">=",
            LabelCmp::Gt => ">",
        }
    }
}

/// A duration such as `15m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration {
    /// Seconds.
    pub seconds: u64,
    /// The unit as written (`s`, `m`, `h`, `d`), kept by the formatter.
    pub unit: char,
    /// Where it was written.
    pub span: Span,
}

/// What one approval releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalScope {
    /// Exactly the held statement (bytes and parameters).
    Statement,
    /// Any statement the rule covers, in the same session, for a while.
    Session(Option<Duration>),
    /// The same statement, N times.
    Executions(Int),
}
