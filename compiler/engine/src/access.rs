//! Per-identity access to every column and action, asked of the Cedar
//! authorizer once per group set and cached by the engine.

use crate::schema::{ColId, RelId};
use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityUid, PolicySet,
    Request, Response, RestrictedExpression,
};

use crate::cedar;
use crate::plan::{Categories, ClauseId, ClauseKind, Effect, Plan, Target};
use crate::scope::Usage;

pub use crate::column_access::{Access, Perm};

/// A row filter that applies to the identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFilter {
    /// The relation.
    pub relation: RelId,
    /// Predicate template.
    pub predicate: String,
    /// The clause's policy id.
    pub policy_id: String,
}

/// A row limit that applies to the identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowLimit {
    /// Rows per statement.
    pub rows: u64,
    /// Which relations.
    pub target: Target,
    /// The clause's policy id.
    pub policy_id: String,
}

/// The access table of one group set, parallel to the plan's schema.
#[derive(Debug)]
pub struct PrincipalAccess {
    /// Groups this table was computed for.
    pub groups: Vec<String>,
    /// Read access per relation, per column.
    pub columns: Vec<Vec<Access>>,
    /// Cedar policy ids that decided each column's read access.
    pub policies: Vec<Vec<Vec<String>>>,
    /// Write permission per relation, per column.
    pub write: Vec<Vec<Perm>>,
    /// Export (COPY TO) permission per relation, per column.
    pub export: Vec<Vec<Perm>>,
    /// Schema changes.
    pub ddl: Perm,
    /// Administrative statements.
    pub admin: Perm,
    /// Functions a rule explicitly allows (`true`) or denies (`false`).
    pub functions: HashMap<String, bool>,
    /// Row filters of the identity's groups.
    pub filters: Vec<RowFilter>,
    /// Row limits of the identity's groups.
    pub limits: Vec<RowLimit>,
    /// Read access had observe-only rules been enforced (only when some
    /// observe-only rule applies to these groups).
    pub observed: Option<Vec<Vec<Access>>>,
    /// True when every column is `Clear` and writable, ddl and admin are
    /// allowed, and no filter or limit applies: nothing is withheld.
    pub full_clear: bool,
    /// Decisions already made for this group set, by query text (see
    /// `Engine::decide_with_claims`).
    pub decisions: crate::cache::DecisionCache,
    /// True when something is permitted only with an approval.
    pub has_approvals: bool,
    /// Per relation, per column: the usage classes (bits of
    /// [`Usage::bit`](crate::scope::Usage::bit)) whose clear value
    /// a `use` grant permits for a column not readable in clear. Empty
    /// when no rule of these groups has a usage action.
    pub uses: Vec<Vec<u16>>,
}

impl PrincipalAccess {
    /// The usage classes a `use` grant permits on column `ci` of `ri`.
    pub fn uses(&self, ri: RelId, ci: ColId) -> u16 {
        self.uses
            .get(ri.index())
            .and_then(|r| r.get(ci.index()))
            .copied()
            .unwrap_or(0)
    }

    /// True when a `use` grant passes some column in clear for some usage.
    pub fn has_use_grants(&self) -> bool {
        self.uses.iter().flatten().any(|&bits| bits != 0)
    }

    /// True when some column of relation `ri` is not readable in clear, or
    /// a row filter applies to it.
    pub fn relation_restricted(&self, ri: RelId) -> bool {
        self.columns[ri].iter().any(|a| *a != Access::Clear)
            || self.filters.iter().any(|f| f.relation == ri)
    }
}

struct Asker<'a> {
    principal: EntityUid,
    entities: Entities,
    authorizer: &'a Authorizer,
}

impl Asker<'_> {
    fn ask(&self, policies: &PolicySet, action: &str, resource: &EntityUid) -> Response {
        self.ask_in(policies, action, resource, Context::empty())
    }

    fn ask_in(
        &self,
        policies: &PolicySet,
        action: &str,
        resource: &EntityUid,
        context: Context,
    ) -> Response {
        let request = Request::new(
            self.principal.clone(),
            cedar::uid("Action", action),
            resource.clone(),
            context,
            None,
        )
        .expect("requests without a schema always build");
        self.authorizer
            .is_authorized(&request, policies, &self.entities)
    }

    /// The usage classes whose clear value Cedar permits (`use` with
    /// `context.usage`), as bits.
    fn uses(&self, policies: &PolicySet, resource: &EntityUid) -> u16 {
        let mut bits = 0;
        for usage in Usage::GRANTABLE {
            let context = Context::from_pairs([(
                "usage".to_owned(),
                RestrictedExpression::new_string(usage.as_str().to_owned()),
            )])
            .expect("one string attribute is a valid context");
            if allowed(&self.ask_in(policies, cedar::ACTION_USE, resource, context)) {
                bits |= usage.bit();
            }
        }
        bits
    }
}

fn reasons(r: &Response) -> Vec<String> {
    let mut ids: Vec<String> = r.diagnostics().reason().map(ToString::to_string).collect();
    ids.sort();
    ids
}

fn allowed(r: &Response) -> bool {
    r.decision() == CedarDecision::Allow
}

/// The approval clauses among the Cedar policies `ids` that permitted an
/// `_approved` action, with the approver group of the first; `None` when
/// none of them is an approval clause (then nothing can approve it).
fn approval(plan: &Plan, ids: &[String]) -> Option<(String, Vec<ClauseId>)> {
    let mut approvers = None;
    let mut clauses = Vec::new();
    for id in ids {
        let Some(clause) = plan.clause_id(id) else {
            continue;
        };
        if let ClauseKind::Access {
            effect: Effect::Approval(a),
            ..
        } = &plan.clause(clause).1.kind
        {
            approvers.get_or_insert_with(|| a.approvers.clone());
            clauses.push(clause);
        }
    }
    Some((approvers?, clauses))
}

fn perm(
    plan: &Plan,
    asker: &Asker<'_>,
    set: &PolicySet,
    action: &str,
    resource: &EntityUid,
) -> Perm {
    let plain = asker.ask(set, action, resource);
    if allowed(&plain) {
        return Perm::Allowed;
    }
    let approved = asker.ask(set, &format!("{action}_approved"), resource);
    if allowed(&approved)
        && let Some((approvers, clauses)) = approval(plan, &reasons(&approved))
    {
        return Perm::Approval { approvers, clauses };
    }
    Perm::Denied(reasons(&plain))
}

/// The access of a column Cedar permits only masked (`ids` permitted it):
/// a `mask … with M` clause among them chooses the mask where M fits the
/// column's type; otherwise the classification's mask; without one, denied.
fn masked_access(plan: &Plan, ids: &[String], ri: RelId, ci: ColId) -> Access {
    let family = plan.schema.relation(ri).columns[ci].family();
    let chosen = ids
        .iter()
        .filter_map(|id| plan.clause_id(id))
        .find_map(|c| match &plan.clause(c).1.kind {
            ClauseKind::Access { mask: Some(m), .. } if m.accepts(family) => Some(m.clone()),
            _ => None,
        });
    match chosen.or_else(|| plan.classes[ri][ci].mask.clone()) {
        Some(mask) => Access::Masked(mask),
        None => Access::Denied {
            policies: Vec::new(),
            no_mask: true,
        },
    }
}

/// Read access to one column.
fn read_access(
    plan: &Plan,
    asker: &Asker<'_>,
    set: &PolicySet,
    resource: &EntityUid,
    ri: RelId,
    ci: ColId,
) -> (Access, Vec<String>) {
    let clear = asker.ask(set, cedar::ACTION_READ, resource);
    if allowed(&clear) {
        return (Access::Clear, reasons(&clear));
    }
    let masked = asker.ask(set, cedar::ACTION_READ_MASKED, resource);
    let mut unmaskable = None;
    if allowed(&masked) {
        let ids = reasons(&masked);
        let access = masked_access(plan, &ids, ri, ci);
        if !matches!(access, Access::Denied { no_mask: true, .. }) {
            return (access, ids);
        }
        // A masked read without a mask: an approval may still give it.
        unmaskable = Some((access, ids));
    }
    let approved = asker.ask(set, cedar::ACTION_READ_APPROVED, resource);
    if allowed(&approved) {
        let ids = reasons(&approved);
        if let Some((approvers, clauses)) = approval(plan, &ids) {
            return (Access::Approval { approvers, clauses }, ids);
        }
    }
    if let Some(found) = unmaskable {
        return found;
    }
    let ids = reasons(&masked);
    (
        Access::Denied {
            policies: ids.clone(),
            no_mask: false,
        },
        ids,
    )
}

/// Relations named by some clause target: their columns are decided one by
/// one. All other columns are decided once per (level, categories, has_mask),
/// which is all the generated policies can see of them.
fn named_relations(plan: &Plan) -> HashSet<RelId> {
    let mut out = HashSet::new();
    for rule in &plan.rules {
        for c in &rule.clauses {
            match &c.kind {
                ClauseKind::Access { target, .. } | ClauseKind::Limit { target, .. } => {
                    match target {
                        Target::Relation(ri) | Target::Column(ri, _) => {
                            out.insert(*ri);
                        }
                        _ => {}
                    }
                }
                ClauseKind::Filter { .. } => {}
            }
        }
    }
    out
}

type ColumnDecision = (Access, Vec<String>, Perm, Perm, u16);

/// Asks Cedar about every column and action for an identity in `groups`.
pub fn compute(
    plan: &Plan,
    policies: &PolicySet,
    observe: Option<&PolicySet>,
    entities: &Entities,
    authorizer: &Authorizer,
    groups: &[String],
) -> PrincipalAccess {
    // The identity entity is synthetic: its parents are its groups, which is
    // all the generated policies look at.
    let principal = cedar::uid("Identity", "session");
    let parents: HashSet<_> = groups.iter().map(|g| cedar::uid("Group", g)).collect();
    let identity = Entity::new_no_attrs(principal.clone(), parents);
    let entities = entities
        .clone()
        .add_entities([identity], None)
        .expect("the synthetic identity entity is unique");
    let asker = Asker {
        principal,
        entities,
        authorizer,
    };
    let named = named_relations(plan);
    let mut by_signature: HashMap<(usize, Categories, bool), ColumnDecision> = HashMap::new();
    let mut observed_by_signature: HashMap<(usize, Categories, bool), Access> = HashMap::new();

    let in_groups = |g: &str| groups.iter().any(|x| x == g);
    let observe_applies =
        observe.is_some() && plan.rules.iter().any(|r| r.observe && in_groups(&r.group));

    let n = plan.schema.relations.len();
    let mut columns = Vec::with_capacity(n);
    let mut all_policies = Vec::with_capacity(n);
    let mut write = Vec::with_capacity(n);
    let mut export = Vec::with_capacity(n);
    let mut observed = observe_applies.then(|| Vec::with_capacity(n));
    // Usage grants are asked for only when some rule of these groups has a
    // usage action: five requests per withheld column otherwise wasted.
    let with_uses = plan.rules.iter().any(|r| {
        !r.observe
            && in_groups(&r.group)
            && r.clauses.iter().any(|c| {
                matches!(&c.kind, ClauseKind::Access { actions, .. }
                    if actions.iter().any(|a| a.usage().is_some()))
            })
    });
    let mut uses = Vec::new();
    let mut full_clear = true;
    for (ri, rel) in plan.schema.relations_with_ids() {
        let qualified = rel.qualified();
        let mut rel_access = Vec::with_capacity(rel.columns.len());
        let mut rel_policies = Vec::with_capacity(rel.columns.len());
        let mut rel_write = Vec::with_capacity(rel.columns.len());
        let mut rel_export = Vec::with_capacity(rel.columns.len());
        let mut rel_uses = Vec::new();
        let mut rel_observed = Vec::new();
        for (ci, col) in rel.columns_with_ids() {
            let class = &plan.classes[ri][ci];
            let signature = (class.level, class.categories, class.mask.is_some());
            let resource = cedar::column_uid(&qualified, &col.name);
            let decide = |set: &PolicySet| -> ColumnDecision {
                let (access, ids) = read_access(plan, &asker, set, &resource, ri, ci);
                let w = perm(plan, &asker, set, "write", &resource);
                let e = perm(plan, &asker, set, "export", &resource);
                let u = if with_uses && access != Access::Clear {
                    asker.uses(set, &resource)
                } else {
                    0
                };
                (access, ids, w, e, u)
            };
            // Columns of relations a clause names are decided one by one;
            // the others share the answer of their classification.
            let shareable = !named.contains(&ri);
            let (access, ids, w, e, u) = if shareable {
                let d = by_signature
                    .entry(signature)
                    .or_insert_with(|| decide(policies))
                    .clone();
                // The mask depends on this column's own mask and type.
                match &d.0 {
                    Access::Masked(_) | Access::Denied { no_mask: true, .. } => {
                        (masked_access(plan, &d.1, ri, ci), d.1, d.2, d.3, d.4)
                    }
                    _ => d,
                }
            } else {
                decide(policies)
            };
            if let (true, Some(set)) = (observed.is_some(), observe) {
                let o = if shareable {
                    observed_by_signature
                        .entry(signature)
                        .or_insert_with(|| read_access(plan, &asker, set, &resource, ri, ci).0)
                        .clone()
                } else {
                    read_access(plan, &asker, set, &resource, ri, ci).0
                };
                // Observed masks are not applied, only whether it would be
                // masked or refused matters.
                rel_observed.push(o);
            }
            full_clear &= access == Access::Clear && w.allowed();
            rel_access.push(access);
            rel_policies.push(ids);
            rel_write.push(w);
            rel_export.push(e);
            rel_uses.push(u);
        }
        columns.push(rel_access);
        all_policies.push(rel_policies);
        write.push(rel_write);
        export.push(rel_export);
        if with_uses {
            uses.push(rel_uses);
        }
        if let Some(o) = observed.as_mut() {
            o.push(rel_observed);
        }
    }
    let database = cedar::uid("Database", cedar::DATABASE);
    let ddl = perm(plan, &asker, policies, "ddl", &database);
    let admin = perm(plan, &asker, policies, "admin", &database);

    let mut functions = HashMap::new();
    let mut filters = Vec::new();
    let mut limits = Vec::new();
    for rule in plan
        .rules
        .iter()
        .filter(|r| !r.observe && in_groups(&r.group))
    {
        for c in &rule.clauses {
            match &c.kind {
                ClauseKind::Access {
                    target: Target::Functions(names),
                    ..
                } => {
                    for name in names {
                        let resource = cedar::uid("Function", name);
                        let ok = allowed(&asker.ask(policies, cedar::ACTION_CALL, &resource));
                        functions.insert(name.clone(), ok);
                    }
                }
                ClauseKind::Filter {
                    relation,
                    predicate,
                } => filters.push(RowFilter {
                    relation: *relation,
                    predicate: predicate.clone(),
                    policy_id: c.policy_id.clone(),
                }),
                ClauseKind::Limit { rows, target } => limits.push(RowLimit {
                    rows: *rows,
                    target: target.clone(),
                    policy_id: c.policy_id.clone(),
                }),
                ClauseKind::Access { .. } => {}
            }
        }
    }
    full_clear &= ddl.allowed() && admin.allowed() && filters.is_empty() && limits.is_empty();
    let gated = |p: &Perm| matches!(p, Perm::Approval { .. });
    let has_approvals = columns
        .iter()
        .flatten()
        .any(|a| matches!(a, Access::Approval { .. }))
        || write.iter().chain(export.iter()).flatten().any(gated)
        || gated(&ddl)
        || gated(&admin);
    PrincipalAccess {
        has_approvals,
        groups: groups.to_vec(),
        columns,
        policies: all_policies,
        write,
        export,
        ddl,
        admin,
        functions,
        filters,
        limits,
        observed,
        full_clear,
        decisions: crate::cache::DecisionCache::default(),
        uses,
    }
}
