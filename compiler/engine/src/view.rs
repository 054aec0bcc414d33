//! What one identity may see of the schema, in the engine's own words: for
//! tools that describe the policy to the identity it applies to (the MCP
//! front door's `list_tables`, `describe_table`, refusals and policy
//! summary). The runtime reads these views instead of the access table, so
//! what a column "is for you" is decided here, next to the decisions that
//! enforce it.

use std::fmt;

use sqlparser::ast as sql;

use crate::Engine;
use crate::access::{Access, Perm, PrincipalAccess};
use crate::analyze;
use crate::schema::{ColId, DEFAULT_SCHEMA, RelId};
use crate::scope::Usage;

/// What reading one column gives an identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnAccess {
    /// Read in clear.
    Clear,
    /// Read through a mask (shown as the mask is written).
    Masked(String),
    /// Read in clear once a member of the group approves.
    NeedsApproval(String),
    /// Never returned, but usable in these clauses (`join`, `filter`, …).
    UsageOnly(Vec<&'static str>),
    /// Never read.
    Denied,
}

impl fmt::Display for ColumnAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnAccess::Clear => f.write_str("clear"),
            ColumnAccess::Masked(mask) => write!(f, "masked ({mask})"),
            ColumnAccess::NeedsApproval(group) => write!(f, "needs approval (by {group})"),
            ColumnAccess::UsageOnly(uses) => {
                write!(f, "usage only ({}; never returned)", uses.join(", "))
            }
            ColumnAccess::Denied => f.write_str("denied"),
        }
    }
}

/// One column as an identity sees it.
#[derive(Clone, Debug)]
pub struct ColumnView {
    /// The column's name.
    pub name: String,
    /// Its type as PostgreSQL prints it.
    pub type_name: String,
    /// Its compiled classification, in words.
    pub label: String,
    /// What reading it gives.
    pub access: ColumnAccess,
}

/// One relation as an identity sees it.
#[derive(Clone, Debug)]
pub struct RelationView {
    /// `schema.name`.
    pub name: String,
    /// The name without its schema.
    pub table: String,
    /// `table`, `view`, `materializedview`, … (lower case).
    pub kind: String,
    /// Its columns, in order.
    pub columns: Vec<ColumnView>,
    /// The row filters in force for the identity (SQL predicates).
    pub row_filters: Vec<String>,
    /// The row limit in force (rows, rule name), if any.
    pub row_limit: Option<(u64, String)>,
    /// True when the identity may read at least one column (in clear,
    /// masked, or with approval).
    pub readable: bool,
}

fn column_access(access: &PrincipalAccess, ri: RelId, ci: ColId) -> ColumnAccess {
    match &access.columns[ri][ci] {
        Access::Clear => ColumnAccess::Clear,
        Access::Masked(m) => ColumnAccess::Masked(m.display()),
        Access::Approval { approvers, .. } => ColumnAccess::NeedsApproval(approvers.clone()),
        Access::Denied { .. } => {
            let bits = access.uses(ri, ci);
            let uses: Vec<&'static str> = [
                (Usage::Joined, "join"),
                (Usage::Filtered, "filter"),
                (Usage::Grouped, "group"),
                (Usage::Ordered, "order"),
                (Usage::Aggregated, "aggregate"),
            ]
            .into_iter()
            .filter(|(u, _)| bits & u.bit() != 0)
            .map(|(_, n)| n)
            .collect();
            if uses.is_empty() {
                ColumnAccess::Denied
            } else {
                ColumnAccess::UsageOnly(uses)
            }
        }
    }
}

impl PrincipalAccess {
    /// True when some rule lets this identity write (now or with approval).
    pub fn may_write(&self) -> bool {
        self.write
            .iter()
            .flatten()
            .any(|p| !matches!(p, Perm::Denied(_)))
    }
}

impl Engine {
    fn view(&self, access: &PrincipalAccess, ri: RelId) -> RelationView {
        let plan = self.plan();
        let rel = plan.schema.relation(ri);
        RelationView {
            name: rel.qualified(),
            table: rel.name.clone(),
            kind: format!("{:?}", rel.kind).to_lowercase(),
            columns: rel
                .columns_with_ids()
                .map(|(ci, c)| ColumnView {
                    name: c.name.clone(),
                    type_name: c.type_name.clone(),
                    label: plan.describe_class(&plan.classes[ri][ci]),
                    access: column_access(access, ri, ci),
                })
                .collect(),
            row_filters: access
                .filters
                .iter()
                .filter(|f| f.relation == ri)
                .map(|f| f.predicate.clone())
                .collect(),
            row_limit: self.row_limit(access, ri),
            readable: access.columns[ri].iter().any(|a| {
                matches!(
                    a,
                    Access::Clear | Access::Masked(_) | Access::Approval { .. }
                )
            }),
        }
    }

    /// The relations the identity may read at least one column of, in
    /// schema order.
    pub fn readable_relations(&self, access: &PrincipalAccess) -> Vec<RelationView> {
        self.plan()
            .schema
            .relation_ids()
            .map(|ri| self.view(access, ri))
            .filter(|v| v.readable)
            .collect()
    }

    /// A relation the identity may read, by `schema.name` or by a name in
    /// the default schema (double quotes around either part are removed).
    /// `None` when there is no such relation or none of it is readable, so
    /// an unreadable relation and a missing one look the same.
    pub fn readable_relation(&self, access: &PrincipalAccess, table: &str) -> Option<RelationView> {
        let (s, t) = table.split_once('.').unwrap_or((DEFAULT_SCHEMA, table));
        let unquote = |n: &str| n.trim().trim_matches('"').to_owned();
        let ri = self.plan().schema.find(&unquote(s), &unquote(t))?;
        Some(self.view(access, ri)).filter(|v| v.readable)
    }

    /// The known relations a statement names in table positions, each
    /// once, as the identity sees them (readable or not).
    pub fn relations_named(
        &self,
        access: &PrincipalAccess,
        statement: &sql::Statement,
        text: &str,
    ) -> Vec<RelationView> {
        let schema = &self.plan().schema;
        let mut seen = Vec::new();
        for t in analyze::analyze(statement, text).tables {
            let (s, n) = match t.parts.as_slice() {
                [s, n] => (s.as_str(), n.as_str()),
                [n] => (DEFAULT_SCHEMA, n.as_str()),
                _ => continue,
            };
            if let Some(ri) = schema.find(s, n)
                && !seen.contains(&ri)
            {
                seen.push(ri);
            }
        }
        seen.into_iter().map(|ri| self.view(access, ri)).collect()
    }
}

/// True for one statement that only reads: a query with no data-modifying
/// CTE and no `SELECT … INTO`.
pub fn only_reads(statement: &sql::Statement, text: &str) -> bool {
    let a = analyze::analyze(statement, text);
    matches!(statement, sql::Statement::Query(_)) && a.statements == 1 && !a.select_into
}
