//! The compiled plan: what the statement engine needs, with no reference to
//! the source syntax beyond human-readable locations.

use crate::schema::{ColId, RelId};
pub use clsf_lang::ast::Action;
use serde::{Deserialize, Serialize};

use crate::masks::Mask;
use crate::schema::Schema;

/// A compiled policy, checked against a schema.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Labels from least to most protected; a label's index is its level.
    pub labels: Vec<String>,
    /// Declared categories; a category's index is its bit in [`Categories`].
    pub categories: Vec<String>,
    /// Level given to columns no classification covers.
    pub unclassified_level: usize,
    /// Categories given to columns no classification covers.
    pub unclassified_categories: Categories,
    /// Identity groups, in declaration order.
    pub groups: Vec<Group>,
    /// Rules in source order.
    pub rules: Vec<Rule>,
    /// The schema the policy was checked against: the lock's relations plus
    /// the value-exposing catalog relations (`schema::catalog`). Serialized
    /// apart (see `bundle`), since its lookup index is derived.
    #[serde(skip)]
    pub schema: Schema,
    /// Content hash of the schema lock (without the catalog relations).
    pub schema_hash: String,
    /// Catalog relations a `table` declaration classifies: only these are
    /// decided column by column; the others are refused whole.
    pub classified_catalog: Vec<RelId>,
    /// Classification of every column, parallel to `schema.relations[i].columns`.
    pub classes: Vec<Vec<ColumnClass>>,
}

/// A set of categories, one bit per declared category (at most 64).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Categories(pub u64);

impl Categories {
    /// True when the sets share a category.
    pub fn intersects(self, other: Categories) -> bool {
        self.0 & other.0 != 0
    }

    /// Indices of the categories in the set.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |i| self.0 & (1 << i) != 0)
    }
}

/// A group of identities.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// How membership is decided.
    pub membership: Membership,
    /// Where the group is declared (not kept in a bundle).
    #[serde(skip)]
    pub span: clsf_lang::Span,
}

/// How membership of a group is decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Membership {
    /// All conditions hold (an empty list matches nobody).
    Conditions(Vec<GroupCondition>),
    /// A boolean expression over other groups (indices into `Plan::groups`;
    /// the resolver guarantees there is no cycle).
    Expr(GroupExpr),
}

/// A boolean expression over groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupExpr {
    /// Member of the group with this index.
    Group(usize),
    /// Not.
    Not(Box<GroupExpr>),
    /// All.
    And(Vec<GroupExpr>),
    /// Any.
    Or(Vec<GroupExpr>),
}

/// One membership condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupCondition {
    /// The token's `iss`.
    Issuer(StrMatch),
    /// The token's `aud` equals or (as an array) contains.
    Audience(String),
    /// The token's `sub`.
    Subject(StrMatch),
    /// A claim at a path into nested objects.
    Claim {
        /// Path segments.
        path: Vec<String>,
        /// The test.
        test: ClaimMatch,
    },
    /// The client certificate's subject DN.
    CertSubject(StrMatch),
    /// One of the client certificate's subject alternative names.
    CertSan(StrMatch),
    /// A static service account, by name.
    Account(String),
}

/// A test on a string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrMatch {
    /// Equal.
    Equals(String),
    /// Not equal (and present).
    NotEquals(String),
    /// Glob (`*`, `?`).
    Like(String),
    /// One of.
    In(Vec<String>),
}

impl StrMatch {
    /// Whether `value` passes the test.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StrMatch::Equals(v) => value == v,
            StrMatch::NotEquals(v) => value != v,
            StrMatch::Like(g) => crate::glob::matches(g, value),
            StrMatch::In(vs) => vs.iter().any(|v| v == value),
        }
    }
}

/// A test on a claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimMatch {
    /// A string claim passes the test.
    Str(StrMatch),
    /// An array claim contains the value (or a string claim equals it).
    Contains(String),
}

/// A rule: what one group may do.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rule {
    /// Rule name.
    pub name: String,
    /// Group it applies to.
    pub group: String,
    /// Observe-only: its refusals are recorded, not enforced.
    pub observe: bool,
    /// Clauses.
    pub clauses: Vec<Clause>,
    /// `file:line:column` of the rule.
    pub location: String,
}

/// The effect of an access clause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Permit in clear.
    Allow,
    /// Permit through a mask only.
    Mask,
    /// Never.
    Deny,
    /// Permit once a human approves.
    Approval(Approval),
}

impl Effect {
    /// The keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Mask => "mask",
            Effect::Deny => "deny",
            Effect::Approval(_) => "require approval",
        }
    }
}

/// How an approval is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Group whose members may approve.
    pub approvers: String,
    /// Seconds a request waits before it expires.
    pub ttl_seconds: u64,
    /// What one approval releases.
    pub scope: ApprovalScope,
    /// Approvals needed.
    pub quorum: u64,
}

/// What one approval releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalScope {
    /// The exact statement, once.
    Statement,
    /// Covered statements of the session, for this many seconds.
    Session(u64),
    /// The exact statement, N times.
    Executions(u64),
}

/// What a clause covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Everything.
    All,
    /// Columns with a level in `min..=max`.
    Levels(usize, usize),
    /// Columns with any of these categories.
    Categories(Categories),
    /// Every column of a relation.
    Relation(RelId),
    /// One column: relation, column.
    Column(RelId, ColId),
    /// Functions, by lower-case name (`schema.name` or `name`).
    Functions(Vec<String>),
}

/// The kinds of clause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClauseKind {
    /// allow / mask / deny / require approval.
    Access {
        /// The effect.
        effect: Effect,
        /// The actions (at least one).
        actions: Vec<Action>,
        /// What it covers.
        target: Target,
        /// Mask that replaces the classification's (for `mask … with`).
        mask: Option<Mask>,
        /// Stated reason when it overrides more protective rules.
        override_reason: Option<String>,
    },
    /// Rows of a relation are filtered by a predicate.
    Filter {
        /// The relation.
        relation: RelId,
        /// Predicate template (`{claim.path}` placeholders).
        predicate: String,
    },
    /// At most this many rows per statement.
    Limit {
        /// Rows.
        rows: u64,
        /// Which relations.
        target: Target,
    },
}

/// A clause's place in the plan: its rule's position in `Plan::rules` and
/// its own in the rule's `clauses`. Cedar names a clause by a policy id
/// string (`Clause::policy_id`); the engine holds this instead, found once
/// when an access table is computed ([`Plan::clause_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClauseId {
    rule: usize,
    clause: usize,
}

/// One clause of a rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Clause {
    /// What it says.
    pub kind: ClauseKind,
    /// The Cedar policy id generated for it (`RULE.INDEX`).
    pub policy_id: String,
    /// `file:line:column` of the clause.
    pub location: String,
    /// Where the clause is in the policy's sources (not kept in a bundle).
    #[serde(skip)]
    pub span: clsf_lang::Span,
    /// The clause as written, whitespace-normalised, for messages.
    pub text: String,
}

impl Clause {
    /// True when the clause covers column `ci` of relation `ri`.
    pub fn covers_column(&self, plan: &Plan, ri: RelId, ci: ColId) -> bool {
        match &self.kind {
            ClauseKind::Access { target, .. } | ClauseKind::Limit { target, .. } => {
                target.covers_column(plan, ri, ci)
            }
            ClauseKind::Filter { relation, .. } => *relation == ri,
        }
    }
}

impl Target {
    /// True when the target covers column `ci` of relation `ri`.
    pub fn covers_column(&self, plan: &Plan, ri: RelId, ci: ColId) -> bool {
        let class = &plan.classes[ri][ci];
        match self {
            Target::All => true,
            Target::Levels(min, max) => (*min..=*max).contains(&class.level),
            Target::Categories(c) => class.categories.intersects(*c),
            Target::Relation(r) => *r == ri,
            Target::Column(r, c) => *r == ri && *c == ci,
            Target::Functions(_) => false,
        }
    }
}

/// Where a column's label came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    /// Classified by name.
    Explicit,
    /// Inherited from its table's default.
    Table,
    /// Inherited from its schema's default.
    Schema,
    /// Matched by a `classify` pattern.
    Pattern,
    /// Covered by nothing: the `unclassified` label.
    Unclassified,
    /// A view column from the columns it is computed from, or a partition's
    /// or inheritance child's column from its parent's.
    Lineage,
}

impl Origin {
    /// Lower-case name, for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Explicit => "explicit",
            Origin::Table => "table",
            Origin::Schema => "schema",
            Origin::Pattern => "pattern",
            Origin::Unclassified => "unclassified",
            Origin::Lineage => "lineage",
        }
    }
}

/// The classification of one column.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ColumnClass {
    /// Level (index into `Plan::labels`).
    pub level: usize,
    /// Categories.
    pub categories: Categories,
    /// The mask, if any.
    pub mask: Option<Mask>,
    /// Where the label came from.
    pub origin: Origin,
}

impl Plan {
    /// The label name of a level.
    pub fn label(&self, level: usize) -> &str {
        &self.labels[level]
    }

    /// Category names of a set.
    pub fn category_names(&self, set: Categories) -> Vec<&str> {
        set.indices().map(|i| self.categories[i].as_str()).collect()
    }

    /// `level [cat, …]` of a column class, for messages.
    pub fn describe_class(&self, class: &ColumnClass) -> String {
        let cats = self.category_names(class.categories);
        if cats.is_empty() {
            self.label(class.level).to_owned()
        } else {
            format!("{} [{}]", self.label(class.level), cats.join(", "))
        }
    }

    /// The clause whose Cedar policy id (`RULE.INDEX`) is `id`.
    pub fn clause_id(&self, id: &str) -> Option<ClauseId> {
        let (_, index) = id.rsplit_once('.')?;
        let clause: usize = index.parse().ok()?;
        let rule = self
            .rules
            .iter()
            .position(|r| r.clauses.get(clause).is_some_and(|c| c.policy_id == id))?;
        Some(ClauseId { rule, clause })
    }

    /// A clause and its rule.
    pub fn clause(&self, id: ClauseId) -> (&Rule, &Clause) {
        let rule = &self.rules[id.rule];
        (rule, &rule.clauses[id.clause])
    }

    /// Finds a rule clause by its Cedar policy id.
    pub fn clause_by_policy(&self, id: &str) -> Option<(&Rule, &Clause)> {
        self.clause_id(id).map(|c| self.clause(c))
    }

    /// The catalog relation `pg_catalog.name`, when the policy classifies it.
    pub fn classified_catalog_relation(&self, name: &str) -> Option<RelId> {
        self.schema
            .find(crate::schema::catalog::SCHEMA, name)
            .filter(|ri| self.classified_catalog.contains(ri))
    }

    /// False for a catalog relation the policy does not classify: the engine
    /// refuses it whole, so rules and warnings do not concern it.
    pub fn is_decided(&self, ri: RelId) -> bool {
        self.schema.relation(ri).schema != crate::schema::catalog::SCHEMA
            || self.classified_catalog.contains(&ri)
    }

    /// Groups named as approvers by some approval clause, sorted, each once.
    pub fn approver_groups(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .rules
            .iter()
            .flat_map(|r| r.clauses.iter())
            .filter_map(|c| match &c.kind {
                ClauseKind::Access {
                    effect: Effect::Approval(a),
                    ..
                } => Some(a.approvers.clone()),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Index of a group by name.
    pub fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }
}
