//! `clsfc who-can`: the exposure report. For each group, each selected
//! column and each action, whether a member of the group can do it, how
//! (clear, masked with which mask, with whose approval) and through which
//! clause — the engine's own access table, computed from the compiled
//! Cedar — and, for every cell, a proof by the solver that Cedar decides
//! it so for every column of its class.
//!
//! The proof, per group and Cedar action: with `Q_yes` the requests of a
//! member of exactly the group's group set on a column of a class the
//! report says is allowed, `Q_yes` implies the policy set (every such
//! request is allowed); with `Q_no` the same for the classes it says are
//! refused, `Q_no` and the policy set are disjoint (no such request is
//! allowed). Both sets carry the domain guard.

use crate::schema::{ColId, RelId};
use std::collections::BTreeMap;

use cedar_policy::{
    Authorizer, Context, Decision, Entity, EntityUid, Policy, PolicyId, Request, RequestEnv,
    RestrictedExpression,
};
use cedar_policy_symcc::CompiledPolicySet;
use serde::Serialize;

use super::checks::{guard, set};
use super::domain::{self, Class};
use super::solver::{Prover, VerifyError, internal};
use crate::Engine;
use crate::cedar::{self, NAMESPACE};
use crate::diff::{perm_text, read_text};
use crate::engine::Identity;
use crate::engine::access::{Access, Perm};
use crate::engine::decide::{guarded_keys, row_limit};
use crate::engine::scope::Usage;
use crate::plan::{ColumnClass, Plan};

/// Which columns the report covers.
#[derive(Clone, Debug)]
pub enum Selection {
    /// Every column the policy decides.
    All,
    /// One column, `schema.table.column` or `table.column` (schema `public`).
    Column(String),
    /// Columns with this label.
    Label(String),
    /// Columns tagged with this category.
    Category(String),
}

/// One cell: what a member of `group` can do with `column`.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// The group.
    pub group: String,
    /// `schema.table.column`.
    pub column: String,
    /// `read`, `use (joined)` …, `write`, `export`.
    pub action: String,
    /// `clear`, `masked (email)`, `approval by leads`, `denied`, `allowed`.
    pub decision: String,
    /// Where the clauses that decided it are (`file:line:column`).
    pub via: Vec<String>,
}

/// A group as the report evaluates it.
#[derive(Clone, Debug, Serialize)]
pub struct GroupRow {
    /// The group.
    pub name: String,
    /// The groups a typical member is in (the group itself, and composed
    /// groups that follow); empty when nobody can be a member.
    pub member_of: Vec<String>,
}

/// What the solver proved.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Proof {
    /// Cells (group × Cedar action × column class) proved.
    pub cells: u64,
    /// Questions asked of the solver.
    pub questions: u64,
    /// Questions the solver answered against the report (a clsf bug);
    /// each names the group, action and claim.
    pub failures: Vec<String>,
    /// Questions with no answer (timeout, unknown).
    pub unproved: Vec<String>,
}

/// The exposure report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Groups evaluated.
    pub groups: Vec<GroupRow>,
    /// Columns covered.
    pub columns: Vec<String>,
    /// Every cell.
    pub cells: Vec<Cell>,
    /// The proof, when a solver was given.
    pub proof: Option<Proof>,
}

/// Why the selection is invalid.
fn unknown(what: &str, name: &str) -> VerifyError {
    VerifyError::Selection(format!("no {what} `{name}` in the policy or schema"))
}

fn selected(plan: &Plan, selection: &Selection) -> Result<Vec<(RelId, ColId)>, VerifyError> {
    let mut out = Vec::new();
    let decided = |ri: RelId| plan.is_decided(ri);
    match selection {
        Selection::All => {
            for (ri, rel) in plan.schema.relations_with_ids() {
                if decided(ri) {
                    out.extend(rel.column_ids().map(|ci| (ri, ci)));
                }
            }
        }
        Selection::Column(name) => {
            let parts: Vec<&str> = name.split('.').collect();
            let (schema, table, column) = match parts.as_slice() {
                [s, t, c] => (*s, *t, *c),
                [t, c] => ("public", *t, *c),
                _ => {
                    return Err(VerifyError::Selection(format!(
                        "`{name}`: give the column as schema.table.column or table.column"
                    )));
                }
            };
            let ri = plan
                .schema
                .find(schema, table)
                .ok_or_else(|| unknown("table", &format!("{schema}.{table}")))?;
            let ci = plan.schema.relation(ri).column_index(column);
            out.push((ri, ci.ok_or_else(|| unknown("column", name))?));
        }
        Selection::Label(label) => {
            let level = plan
                .labels
                .iter()
                .position(|l| l == label)
                .ok_or_else(|| unknown("label", label))?;
            out.extend(classified(plan, &decided, |c| c.level == level));
        }
        Selection::Category(category) => {
            let bit = plan
                .categories
                .iter()
                .position(|c| c == category)
                .ok_or_else(|| unknown("category", category))?;
            out.extend(classified(plan, &decided, |c| {
                c.categories.0 & (1 << bit) != 0
            }));
        }
    }
    Ok(out)
}

/// The columns of decided relations whose classification `keep` selects.
fn classified<'p>(
    plan: &'p Plan,
    decided: &'p impl Fn(RelId) -> bool,
    keep: impl Fn(&ColumnClass) -> bool + 'p,
) -> impl Iterator<Item = (RelId, ColId)> + 'p {
    plan.schema
        .relations_with_ids()
        .filter(move |(ri, _)| decided(*ri))
        .flat_map(move |(ri, rel)| rel.column_ids().map(move |ci| (ri, ci)))
        .filter(move |&(ri, ci)| keep(&plan.classes[ri][ci]))
}

fn locations(plan: &Plan, ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = ids
        .iter()
        .filter_map(|id| plan.clause_by_policy(id.strip_suffix(".forbid").unwrap_or(id)))
        .map(|(_, c)| c.location.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Where the clauses that decided `p` are written.
fn perm_locations(plan: &Plan, p: &Perm) -> Vec<String> {
    match p {
        Perm::Allowed => Vec::new(),
        Perm::Approval { clauses, .. } => {
            let ids: Vec<String> = clauses
                .iter()
                .map(|&c| plan.clause(c).1.policy_id.clone())
                .collect();
            locations(plan, &ids)
        }
        Perm::Denied(ids) => locations(plan, ids),
    }
}

/// Builds the report; with a prover, proves every cell.
pub fn who_can(
    engine: &Engine,
    selection: &Selection,
    prover: Option<&mut Prover>,
) -> Result<Report, VerifyError> {
    let plan = engine.plan();
    let columns = selected(plan, selection)?;
    let mut groups = Vec::new();
    let mut cells = Vec::new();
    for (gi, g) in plan.groups.iter().enumerate() {
        let member_of = if domain::searchable(plan, gi) {
            domain::member_groups(plan, gi).unwrap_or_default()
        } else {
            vec![g.name.clone()]
        };
        groups.push(GroupRow {
            name: g.name.clone(),
            member_of: member_of.clone(),
        });
        if member_of.is_empty() {
            continue;
        }
        let access = engine.access_for(&Identity {
            subject: format!("member of {}", g.name),
            groups: member_of,
        });
        for &(ri, ci) in &columns {
            let rel = plan.schema.relation(ri);
            let column = format!("{}.{}", rel.qualified(), rel.columns[ci].name);
            let mut push = |action: String, decision: String, via: Vec<String>| {
                cells.push(Cell {
                    group: g.name.clone(),
                    column: column.clone(),
                    action,
                    decision,
                    via,
                })
            };
            let read = &access.columns[ri][ci];
            push(
                "read".into(),
                read_text(read),
                locations(plan, access.policies[ri][ci].as_slice()),
            );
            let uses = access.uses(ri, ci);
            for usage in Usage::GRANTABLE {
                let allowed = *read == Access::Clear || uses & usage.bit() != 0;
                push(
                    format!("use ({})", usage.as_str()),
                    if allowed { "allowed" } else { "denied" }.into(),
                    Vec::new(),
                );
            }
            // A write is decided for the whole row, and only on a table
            // the identity reads whole (decide/writes.rs): the report says
            // what the engine does, not only what Cedar permits.
            let write = &access.write[ri][ci];
            let whole_row = access.write[ri].iter().all(|p| p == write);
            let write_text = match write {
                Perm::Denied(_) => perm_text(write),
                _ if access.relation_restricted(ri) => {
                    "denied (the table has columns this group may not read in clear)".to_owned()
                }
                _ if row_limit(plan, &access, ri).is_some() => {
                    "denied (the table has a row limit)".to_owned()
                }
                _ if !whole_row => {
                    "denied (other columns of the table may not be written)".to_owned()
                }
                _ if guarded_keys(plan, &access, ri)
                    .iter()
                    .any(|(fk, _)| fk.columns.contains(&rel.columns[ci].name)) =>
                {
                    "denied (its foreign key checks values this group may not read in clear)"
                        .to_owned()
                }
                _ => perm_text(write),
            };
            push("write".into(), write_text, perm_locations(plan, write));
            let export = &access.export[ri][ci];
            push(
                "export".into(),
                perm_text(export),
                perm_locations(plan, export),
            );
        }
    }
    let proof = match prover {
        Some(prover) => Some(prove(engine, &groups, &columns, prover)?),
        None => None,
    };
    Ok(Report {
        groups,
        columns: columns
            .iter()
            .map(|&(ri, ci)| {
                let rel = plan.schema.relation(ri);
                format!("{}.{}", rel.qualified(), rel.columns[ci].name)
            })
            .collect(),
        cells,
        proof,
    })
}

/// The Cedar actions behind the report's cells, with the usage context of
/// `use`.
pub(crate) fn cedar_actions() -> Vec<(&'static str, Option<&'static str>)> {
    let mut out = vec![
        (cedar::ACTION_READ, None),
        (cedar::ACTION_READ_MASKED, None),
        (cedar::ACTION_READ_APPROVED, None),
        ("write", None),
        ("write_approved", None),
        ("export", None),
        ("export_approved", None),
    ];
    for u in Usage::GRANTABLE {
        out.push((cedar::ACTION_USE, Some(u.as_str())));
    }
    out
}

/// One fact the report rests on: Cedar allows (or refuses) `action` to a
/// member of exactly `member_of` on the columns of class `class`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The group the row is for.
    pub group: String,
    /// The group set of its typical member.
    pub member_of: Vec<String>,
    /// The Cedar action.
    pub action: &'static str,
    /// `context.usage` for `use`.
    pub usage: Option<&'static str>,
    /// Index into the classes `claims` returns.
    pub class: usize,
    /// Allowed or refused.
    pub allowed: bool,
}

/// The claims behind the cells of `columns` for `groups`, each decided by
/// Cedar's authorizer for one column of its class; and the classes.
pub fn claims(
    engine: &Engine,
    groups: &[GroupRow],
    columns: &[(RelId, ColId)],
) -> Result<(Vec<Class>, Vec<Claim>), VerifyError> {
    let plan = engine.plan();
    let generated = engine.generated();
    let classes: Vec<Class> = domain::classes(plan);
    let authorizer = Authorizer::new();
    let mut out = Vec::new();
    for row in groups.iter().filter(|g| !g.member_of.is_empty()) {
        let principal = cedar::uid("Identity", "who-can");
        let parents = row
            .member_of
            .iter()
            .map(|g| cedar::uid("Group", g))
            .collect();
        let entities = generated
            .entities
            .clone()
            .add_entities([Entity::new_no_attrs(principal.clone(), parents)], None)
            .map_err(internal)?;
        for (action, usage) in cedar_actions() {
            let context = match usage {
                Some(u) => Context::from_pairs([(
                    "usage".to_owned(),
                    RestrictedExpression::new_string(u.to_owned()),
                )])
                .map_err(internal)?,
                None => Context::empty(),
            };
            for (k, class) in classes.iter().enumerate() {
                if !class.members.iter().any(|m| columns.contains(m)) {
                    continue;
                }
                let (ri, ci) = class.members[0];
                let rel = plan.schema.relation(ri);
                let resource: EntityUid =
                    cedar::column_uid(&rel.qualified(), &rel.columns[ci].name);
                let request = Request::new(
                    principal.clone(),
                    cedar::uid("Action", action),
                    resource,
                    context.clone(),
                    None,
                )
                .map_err(internal)?;
                let response = authorizer.is_authorized(&request, &generated.policy_set, &entities);
                out.push(Claim {
                    group: row.name.clone(),
                    member_of: row.member_of.clone(),
                    action,
                    usage,
                    class: k,
                    allowed: response.decision() == Decision::Allow,
                });
            }
        }
    }
    Ok((classes, out))
}

fn prove(
    engine: &Engine,
    groups: &[GroupRow],
    columns: &[(RelId, ColId)],
    prover: &mut Prover,
) -> Result<Proof, VerifyError> {
    let (classes, claims) = claims(engine, groups, columns)?;
    prove_claims(engine, &classes, &claims, prover)
}

/// Proves claims, one solver question per group, action and answer: all
/// the classes claimed allowed at once (implication), all those claimed
/// refused at once (disjointness).
pub fn prove_claims(
    engine: &Engine,
    classes: &[Class],
    claims: &[Claim],
    prover: &mut Prover,
) -> Result<Proof, VerifyError> {
    let plan = engine.plan();
    let generated = engine.generated();
    let guard = guard(plan, classes)?;
    let envs: BTreeMap<String, RequestEnv> = generated
        .schema
        .request_envs()
        .map(|e| (e.action().id().unescaped().to_owned(), e))
        .collect();
    // (group, action, usage, allowed) → class conditions, in claim order.
    let mut questions: Vec<((&Claim, bool), Vec<String>)> = Vec::new();
    for claim in claims {
        let condition = domain::class_condition(plan, &classes[claim.class].key);
        match questions.iter_mut().find(|((c, allowed), _)| {
            c.group == claim.group
                && c.action == claim.action
                && c.usage == claim.usage
                && *allowed == claim.allowed
        }) {
            Some((_, conditions)) => conditions.push(condition),
            None => questions.push(((claim, claim.allowed), vec![condition])),
        }
    }
    let mut proof = Proof::default();
    let mut compiled_sets: BTreeMap<&str, CompiledPolicySet> = BTreeMap::new();
    for ((claim, allowed), conditions) in &questions {
        let action = claim.action;
        let env = envs
            .get(action)
            .ok_or_else(|| internal(format!("no request environment for {action}")))?;
        if !compiled_sets.contains_key(action) {
            let everything = set(generated.policy_set.policies().chain(&guard))?;
            compiled_sets.insert(
                action,
                CompiledPolicySet::compile(&everything, env, &generated.schema)
                    .map_err(internal)?,
            );
        }
        let everything = &compiled_sets[action];
        let exactly = domain::exactly(plan, &claim.member_of);
        let usage_test = claim
            .usage
            .map(|u| format!(" && context.usage == {}", domain::string(u)))
            .unwrap_or_default();
        let query = format!(
            "permit (principal, action == {NAMESPACE}::Action::{}, resource) when {{ {exactly}{usage_test} && ({}) }};",
            domain::string(action),
            conditions.join(" || ")
        );
        let query = Policy::parse(Some(PolicyId::new("clsf.query")), query).map_err(internal)?;
        let query = CompiledPolicySet::compile(&set([&query])?, env, &generated.schema)
            .map_err(internal)?;
        let answer = if *allowed {
            prover.implies(&query, everything)?
        } else {
            prover.disjoint(everything, &query)?
        };
        proof.questions += 1;
        let what = |text: &str| {
            format!(
                "group {}, {action}{}: {text}",
                claim.group,
                claim.usage.map(|u| format!(" ({u})")).unwrap_or_default()
            )
        };
        match answer {
            Ok(true) => proof.cells += conditions.len() as u64,
            Ok(false) => proof.failures.push(what(if *allowed {
                "a request the report calls allowed is refused"
            } else {
                "a request the report calls refused is allowed"
            })),
            Err(e) => proof.unproved.push(what(&e.to_string())),
        }
    }
    Ok(proof)
}
