//! What the symbolic questions range over. Cedar's symbolic compiler
//! reasons about every request and entity store its schema allows; clsf's
//! questions are about *this* database and *these* groups. The domain
//! narrows them down, as Cedar policies:
//! - every column is one of the database's columns as the policies see it
//!   (its level, categories, whether it has a mask, and its membership of
//!   the tables and identity among the columns that rules name): one
//!   *class* per distinct combination;
//! - a composed group's members are exactly those its expression admits,
//!   and an identity is not in two groups whose conditions contradict;
//! - `context.usage` is one of the usage classes the engine asks about.
//!
//! The guard is a `forbid … unless { domain }` policy set: added to a
//! policy set, it denies every request outside the domain and changes
//! nothing inside it.

use crate::schema::{ColId, RelId};
use std::collections::{BTreeMap, BTreeSet};

use crate::cedar::NAMESPACE;
use crate::engine::scope::Usage;
use crate::plan::{
    ClaimMatch, ClauseKind, GroupCondition, GroupExpr, Membership, Plan, StrMatch, Target,
};

/// What the generated policies can see of a column.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassKey {
    /// Label level.
    pub level: usize,
    /// Category bits.
    pub categories: u64,
    /// Whether the column has a mask.
    pub has_mask: bool,
    /// Its relation, when some rule names that relation.
    pub relation: Option<RelId>,
    /// Itself, when some rule names the column.
    pub column: Option<(RelId, ColId)>,
}

/// Columns the policies cannot tell apart.
#[derive(Clone, Debug)]
pub struct Class {
    /// What they share.
    pub key: ClassKey,
    /// (relation, column) indices, in schema order.
    pub members: Vec<(RelId, ColId)>,
}

/// Relations and columns some clause names.
fn named(plan: &Plan) -> (BTreeSet<RelId>, BTreeSet<(RelId, ColId)>) {
    let mut relations = BTreeSet::new();
    let mut columns = BTreeSet::new();
    for clause in plan.rules.iter().flat_map(|r| &r.clauses) {
        if let ClauseKind::Access { target, .. } | ClauseKind::Limit { target, .. } = &clause.kind {
            match target {
                Target::Relation(ri) => {
                    relations.insert(*ri);
                }
                Target::Column(ri, ci) => {
                    relations.insert(*ri);
                    columns.insert((*ri, *ci));
                }
                _ => {}
            }
        }
    }
    (relations, columns)
}

/// The database's columns, grouped into classes.
pub fn classes(plan: &Plan) -> Vec<Class> {
    let (relations, columns) = named(plan);
    let mut by_key: BTreeMap<ClassKey, Vec<(RelId, ColId)>> = BTreeMap::new();
    for (ri, rel) in plan.schema.relations_with_ids() {
        // A catalog relation the policy does not classify is refused whole
        // by the engine: no request about it reaches Cedar.
        if !plan.is_decided(ri) {
            continue;
        }
        for ci in rel.column_ids() {
            let class = &plan.classes[ri][ci];
            let key = ClassKey {
                level: class.level,
                categories: class.categories.0,
                has_mask: class.mask.is_some(),
                relation: relations.contains(&ri).then_some(ri),
                column: columns.contains(&(ri, ci)).then_some((ri, ci)),
            };
            by_key.entry(key).or_default().push((ri, ci));
        }
    }
    by_key
        .into_iter()
        .map(|(key, members)| Class { key, members })
        .collect()
}

pub(crate) use crate::cedar::cedar_string as string;

fn table(plan: &Plan, ri: RelId) -> String {
    format!(
        "{NAMESPACE}::Table::{}",
        string(&plan.schema.relation(ri).qualified())
    )
}

fn column(plan: &Plan, ri: RelId, ci: ColId) -> String {
    let rel = plan.schema.relation(ri);
    format!(
        "{NAMESPACE}::Column::{}",
        string(&format!("{}.{}", rel.qualified(), rel.columns[ci].name))
    )
}

/// The condition (over `resource`) that holds exactly for the columns of
/// `class`.
pub fn class_condition(plan: &Plan, class: &ClassKey) -> String {
    let (relations, columns) = named(plan);
    let mut parts = vec![
        format!("resource.level == {}", class.level),
        format!("resource.has_mask == {}", class.has_mask),
    ];
    let names: Vec<String> = plan
        .category_names(crate::plan::Categories(class.categories))
        .into_iter()
        .map(string)
        .collect();
    if names.is_empty() {
        parts.push("resource.categories.isEmpty()".to_owned());
    } else {
        let set = format!("[{}]", names.join(", "));
        parts.push(format!(
            "resource.categories.containsAll({set}) && {set}.containsAll(resource.categories)"
        ));
    }
    for &ri in &relations {
        let t = table(plan, ri);
        if class.relation == Some(ri) {
            parts.push(format!("resource in {t}"));
        } else {
            parts.push(format!("!(resource in {t})"));
        }
    }
    match class.column {
        Some((ri, ci)) => parts.push(format!("resource == {}", column(plan, ri, ci))),
        None => {
            for &(ri, ci) in &columns {
                parts.push(format!("resource != {}", column(plan, ri, ci)));
            }
        }
    }
    format!("({})", parts.join(" && "))
}

/// `Clsf::Group::"name"`.
pub fn group(name: &str) -> String {
    format!("{NAMESPACE}::Group::{}", string(name))
}

fn expr(plan: &Plan, e: &GroupExpr) -> String {
    match e {
        GroupExpr::Group(i) => format!("(principal in {})", group(&plan.groups[*i].name)),
        GroupExpr::Not(inner) => format!("!{}", expr(plan, inner)),
        GroupExpr::And(terms) if terms.is_empty() => "true".to_owned(),
        GroupExpr::Or(terms) if terms.is_empty() => "false".to_owned(),
        GroupExpr::And(terms) => format!(
            "({})",
            terms
                .iter()
                .map(|t| expr(plan, t))
                .collect::<Vec<_>>()
                .join(" && ")
        ),
        GroupExpr::Or(terms) => format!(
            "({})",
            terms
                .iter()
                .map(|t| expr(plan, t))
                .collect::<Vec<_>>()
                .join(" || ")
        ),
    }
}

/// The conditions that tie group membership to the plan's group
/// definitions: a composed group's members are those its expression
/// admits; a group whose conditions contradict has none; two groups whose
/// conditions contradict each other share none.
pub fn membership(plan: &Plan) -> Vec<String> {
    let mut membership = Vec::new();
    for (i, g) in plan.groups.iter().enumerate() {
        match &g.membership {
            Membership::Expr(e) => membership.push(format!(
                "((principal in {}) == {})",
                group(&g.name),
                expr(plan, e)
            )),
            Membership::Conditions(conds) if !satisfiable(conds.iter()) => {
                membership.push(format!("!(principal in {})", group(&g.name)));
            }
            Membership::Conditions(a) => {
                for h in plan.groups.iter().skip(i + 1) {
                    if let Membership::Conditions(b) = &h.membership
                        && !satisfiable(a.iter().chain(b))
                    {
                        membership.push(format!(
                            "!((principal in {}) && (principal in {}))",
                            group(&g.name),
                            group(&h.name)
                        ));
                    }
                }
            }
        }
    }
    membership
}

/// The guard: Cedar policies that deny every request outside the domain.
pub fn guard_text(plan: &Plan, classes: &[Class]) -> String {
    let mut out = String::new();
    let any_class: Vec<String> = classes
        .iter()
        .map(|c| class_condition(plan, &c.key))
        .collect();
    let domain = if any_class.is_empty() {
        "false".to_owned()
    } else {
        any_class.join(" || ")
    };
    out.push_str(&format!(
        "@id(\"domain.columns\")\nforbid (principal, action, resource is {NAMESPACE}::Column) unless {{ {domain} }};\n"
    ));
    let membership = membership(plan);
    if !membership.is_empty() {
        out.push_str(&format!(
            "@id(\"domain.groups\")\nforbid (principal, action, resource) unless {{ {} }};\n",
            membership.join(" && ")
        ));
    }
    let usages: Vec<String> = Usage::GRANTABLE
        .iter()
        .map(|u| string(u.as_str()))
        .collect();
    out.push_str(&format!(
        "@id(\"domain.usage\")\nforbid (principal, action == {NAMESPACE}::Action::\"use\", resource) unless {{ [{}].contains(context.usage) }};\n",
        usages.join(", ")
    ));
    out
}

/// The condition that the principal is in exactly `groups` of the plan.
pub fn exactly(plan: &Plan, groups: &[String]) -> String {
    plan.groups
        .iter()
        .map(|g| {
            if groups.contains(&g.name) {
                format!("(principal in {})", group(&g.name))
            } else {
                format!("!(principal in {})", group(&g.name))
            }
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// What a condition tests, to find two conditions on the same thing.
fn subject(c: &GroupCondition) -> Option<(String, &StrMatch)> {
    match c {
        GroupCondition::Issuer(m) => Some(("iss".into(), m)),
        GroupCondition::Subject(m) => Some(("sub".into(), m)),
        GroupCondition::Claim {
            path,
            test: ClaimMatch::Str(m),
        } => Some((format!("claim:{}", path.join("\u{0}")), m)),
        GroupCondition::CertSubject(m) => Some(("cert-subject".into(), m)),
        _ => None,
    }
}

/// Whether two tests of one string value can both pass.
fn compatible(a: &StrMatch, b: &StrMatch) -> bool {
    use StrMatch::*;
    match (a, b) {
        (Equals(x), Equals(y)) => x == y,
        (Equals(x), NotEquals(y)) | (NotEquals(y), Equals(x)) => x != y,
        (Equals(x), In(ys)) | (In(ys), Equals(x)) => ys.contains(x),
        (Equals(x), Like(g)) | (Like(g), Equals(x)) => crate::glob::matches(g, x),
        (In(xs), In(ys)) => xs.iter().any(|x| ys.contains(x)),
        (In(xs), NotEquals(y)) | (NotEquals(y), In(xs)) => xs.iter().any(|x| x != y),
        (In(xs), Like(g)) | (Like(g), In(xs)) => xs.iter().any(|x| crate::glob::matches(g, x)),
        // Two globs, a glob and an inequality, two inequalities: assumed
        // compatible (an over-approximation: fewer "no member" reports).
        _ => true,
    }
}

/// Whether one credential can meet every condition. Conditions on
/// different things are independent; two tests of one value must be
/// compatible; a credential is one service account at most. An empty list
/// matches nobody (membership is never implied).
pub fn satisfiable<'a>(conds: impl Iterator<Item = &'a GroupCondition> + Clone) -> bool {
    let all: Vec<&GroupCondition> = conds.collect();
    if all.is_empty() {
        return false;
    }
    let accounts: BTreeSet<&str> = all
        .iter()
        .filter_map(|c| match c {
            GroupCondition::Account(a) => Some(a.as_str()),
            _ => None,
        })
        .collect();
    if accounts.len() > 1 {
        return false;
    }
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if let (Some((ka, ma)), Some((kb, mb))) = (subject(a), subject(b))
                && ka == kb
                && !compatible(ma, mb)
            {
                return false;
            }
        }
    }
    true
}

/// The leaf groups (those with conditions) a group's membership depends on.
fn leaves(plan: &Plan, i: usize, out: &mut BTreeSet<usize>, depth: usize) {
    if depth > 64 {
        return;
    }
    match &plan.groups[i].membership {
        Membership::Conditions(_) => {
            out.insert(i);
        }
        Membership::Expr(e) => leaves_of(plan, e, out, depth + 1),
    }
}

fn leaves_of(plan: &Plan, e: &GroupExpr, out: &mut BTreeSet<usize>, depth: usize) {
    match e {
        GroupExpr::Group(i) => leaves(plan, *i, out, depth),
        GroupExpr::Not(inner) => leaves_of(plan, inner, out, depth),
        GroupExpr::And(ts) | GroupExpr::Or(ts) => {
            for t in ts {
                leaves_of(plan, t, out, depth);
            }
        }
    }
}

fn eval(plan: &Plan, i: usize, leaves_in: &BTreeSet<usize>, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    match &plan.groups[i].membership {
        Membership::Conditions(_) => leaves_in.contains(&i),
        Membership::Expr(e) => eval_expr(plan, e, leaves_in, depth + 1),
    }
}

fn eval_expr(plan: &Plan, e: &GroupExpr, leaves_in: &BTreeSet<usize>, depth: usize) -> bool {
    match e {
        GroupExpr::Group(i) => eval(plan, *i, leaves_in, depth),
        GroupExpr::Not(inner) => !eval_expr(plan, inner, leaves_in, depth),
        GroupExpr::And(ts) => ts.iter().all(|t| eval_expr(plan, t, leaves_in, depth)),
        GroupExpr::Or(ts) => ts.iter().any(|t| eval_expr(plan, t, leaves_in, depth)),
    }
}

/// Most leaf groups one composed group is searched over (2^N sets).
const MAX_LEAVES: usize = 16;

/// Whether `member_groups` searches group `i` exhaustively (its
/// membership depends on at most `MAX_LEAVES` groups with conditions).
pub fn searchable(plan: &Plan, i: usize) -> bool {
    let mut deps = BTreeSet::new();
    leaves(plan, i, &mut deps, 0);
    deps.len() <= MAX_LEAVES
}

/// The group set of a typical member of group `i`: the fewest leaf groups
/// whose conditions one credential can meet together and that make `i`
/// true, with every composed group that follows from them. `None` when no
/// credential can be a member (within the search bound).
pub fn member_groups(plan: &Plan, i: usize) -> Option<Vec<String>> {
    let mut deps = BTreeSet::new();
    leaves(plan, i, &mut deps, 0);
    let deps: Vec<usize> = deps.into_iter().collect();
    if deps.len() > MAX_LEAVES {
        return None;
    }
    let feasible = |set: &BTreeSet<usize>| {
        set.iter().all(|&l| match &plan.groups[l].membership {
            Membership::Conditions(c) => satisfiable(c.iter()),
            Membership::Expr(_) => true,
        }) && satisfiable_together(plan, set)
    };
    let mut best: Option<BTreeSet<usize>> = None;
    for bits in 0u32..(1 << deps.len()) {
        if best
            .as_ref()
            .is_some_and(|b| b.len() <= bits.count_ones() as usize)
        {
            continue;
        }
        let set: BTreeSet<usize> = deps
            .iter()
            .enumerate()
            .filter(|(k, _)| bits & (1 << k) != 0)
            .map(|(_, &l)| l)
            .collect();
        if eval(plan, i, &set, 0) && feasible(&set) {
            best = Some(set);
        }
    }
    let leaves_in = best?;
    let mut groups: Vec<String> = (0..plan.groups.len())
        .filter(|&g| eval(plan, g, &leaves_in, 0))
        .map(|g| plan.groups[g].name.clone())
        .collect();
    groups.sort();
    Some(groups)
}

fn satisfiable_together(plan: &Plan, set: &BTreeSet<usize>) -> bool {
    if set.is_empty() {
        return true;
    }
    satisfiable(set.iter().flat_map(|&l| match &plan.groups[l].membership {
        Membership::Conditions(c) => c.iter(),
        Membership::Expr(_) => [].iter(),
    }))
}
