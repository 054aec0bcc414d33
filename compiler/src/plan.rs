//! The compiled plan: what the statement engine needs, with no reference to
//! the source syntax beyond human-readable locations.

use crate::masks::Mask;
use crate::schema::Schema;

/// A compiled policy, checked against a schema.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Labels from least to most protected; a label's index is its level.
    pub labels: Vec<String>,
    /// Level given to columns no classification covers.
    pub unclassified_level: usize,
    /// Identity groups.
    pub groups: Vec<Group>,
    /// Rules in source order.
    pub rules: Vec<Rule>,
    /// The schema the policy was checked against.
    pub schema: Schema,
    /// Classification of every column, parallel to `schema.relations[i].columns`.
    pub classes: Vec<Vec<ColumnClass>>,
}

/// A group of identities, by conditions on verified token claims (all must hold).
#[derive(Clone, Debug)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Conditions.
    pub conditions: Vec<GroupCondition>,
}

/// One membership condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupCondition {
    /// `iss` equals.
    Issuer(String),
    /// `aud` equals or (as an array) contains.
    Audience(String),
    /// A claim is a string equal to the value.
    ClaimEquals(String, String),
    /// A claim is an array containing the value, or a string equal to it.
    ClaimContains(String, String),
}

/// A rule: what one group may do with columns of some labels.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Rule name.
    pub name: String,
    /// Group it applies to.
    pub group: String,
    /// Clauses.
    pub clauses: Vec<Clause>,
    /// `file:line:column` of the rule.
    pub location: String,
}

/// The effect of a clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Read in clear.
    Allow,
    /// Read masked.
    Mask,
    /// Never read.
    Deny,
}

impl Effect {
    /// Lowercase keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Mask => "mask",
            Effect::Deny => "deny",
        }
    }
}

/// One clause of a rule, covering the levels `min_level..=max_level`.
#[derive(Clone, Debug)]
pub struct Clause {
    /// The effect.
    pub effect: Effect,
    /// Lowest covered level.
    pub min_level: usize,
    /// Highest covered level.
    pub max_level: usize,
    /// The Cedar policy id generated for it.
    pub policy_id: String,
    /// `file:line:column` of the clause.
    pub location: String,
    /// The clause as written, for messages.
    pub text: String,
}

/// Where a column's label came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Classified by name.
    Explicit,
    /// Inherited from its table's default.
    Table,
    /// Covered by nothing: the `unclassified` label.
    Unclassified,
}

/// The classification of one column.
#[derive(Clone, Debug)]
pub struct ColumnClass {
    /// Level (index into `Plan::labels`).
    pub level: usize,
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

    /// Finds a rule clause by its Cedar policy id.
    pub fn clause_by_policy(&self, id: &str) -> Option<(&Rule, &Clause)> {
        self.rules
            .iter()
            .flat_map(|r| r.clauses.iter().map(move |c| (r, c)))
            .find(|(_, c)| c.policy_id == id)
    }
}
