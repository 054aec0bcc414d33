//! `clsfc diff --verify`: whether a new policy is equivalent to an old one,
//! more permissive, less, or incomparable, per group and action — proved
//! over every identity in the group (in any other groups too) and every
//! column of the lock, with a concrete counterexample for each widening.
//!
//! Both policies speak of the same columns, but may classify them
//! differently; so the two policy sets are put side by side in one Cedar
//! schema where a column carries both classifications: the new policies'
//! conditions read `new_level`, `new_categories`, `new_has_mask`, and their
//! groups are renamed `new:NAME`. The domain pairs each column's old and
//! new classification, ties a group's old and new definitions through the
//! groups with conditions both policies have, and narrows every question
//! to members of the group being compared.

use crate::schema::{ColId, RelId};
use std::collections::BTreeSet;

use cedar_policy::{EntityUid, EvalResult, Policy, PolicyId, PolicySet, RequestEnv, Schema};
use cedar_policy_symcc::CompiledPolicySet;
use serde::Serialize;

use super::checks::set;
use super::domain;
use super::solver::{Prover, VerifyError, internal};
use crate::Engine;
use crate::cedar::{self, NAMESPACE, SCHEMA_TEXT};
use crate::engine::{Identity, Verdict};
use crate::plan::{ClaimMatch, GroupCondition, Membership, Plan, StrMatch};

/// How the new policy relates to the old for one group and action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Same decisions.
    Equivalent,
    /// Allows more, refuses nothing the old allowed.
    Wider,
    /// Allows less, nothing the old refused.
    Narrower,
    /// Allows some things the old refused and refuses others it allowed.
    Incomparable,
}

/// A request the new policy allows and the old refused.
#[derive(Clone, Debug, Serialize)]
pub struct Widening {
    /// The identity's groups (new names).
    pub groups: Vec<String>,
    /// What puts an identity in them: token claims, a certificate, a
    /// service account.
    pub credentials: Vec<String>,
    /// `schema.table.column`, when a column of the lock matches.
    pub column: Option<String>,
    /// A statement that exercises it.
    pub sql: Option<String>,
    /// What the statement engine does with it under the old and the new
    /// policy (`deny`, `hold`, `rewrite`, `forward`, masked columns noted).
    pub old_engine: Option<String>,
    /// See `old_engine`.
    pub new_engine: Option<String>,
    /// Whether the engines differ on the statement as the proof says.
    pub confirmed: bool,
}

/// One group and action.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The group.
    pub group: String,
    /// The Cedar action (`use (joined)` for usage).
    pub action: String,
    /// The proved relation (None: not proved, see `unproved`).
    pub relation: Option<Relation>,
    /// The counterexample, when wider or incomparable.
    pub widening: Option<Widening>,
    /// Why it was not proved.
    pub unproved: Option<String>,
}

const RENAMED: [(&str, &str); 3] = [
    ("resource.level", "resource.new_level"),
    ("resource.categories", "resource.new_categories"),
    ("resource.has_mask", "resource.new_has_mask"),
];

/// The new policy's text as it reads in the side-by-side schema.
fn renamed(text: &str) -> String {
    let mut out = text.replace(
        &format!("{NAMESPACE}::Group::\""),
        &format!("{NAMESPACE}::Group::\"new:"),
    );
    for (from, to) in RENAMED {
        out = out.replace(from, to);
    }
    out
}

fn schema() -> Result<Schema, VerifyError> {
    let text = SCHEMA_TEXT.replace(
        "    \"has_mask\": Bool,\n",
        "    \"has_mask\": Bool,\n    \"new_level\": Long,\n    \"new_categories\": Set<String>,\n    \"new_has_mask\": Bool,\n",
    );
    if text == SCHEMA_TEXT {
        return Err(internal("the Cedar schema changed shape"));
    }
    Schema::from_cedarschema_str(&text)
        .map(|(s, _)| s)
        .map_err(internal)
}

fn policies(engine: &Engine, prefix: &str, new: bool) -> Result<Vec<Policy>, VerifyError> {
    let g = engine.generated();
    g.policy_set
        .policies()
        .map(|p| {
            let text = g
                .policies
                .iter()
                .find(|q| q.id == p.id().to_string())
                .map(|q| q.text.as_str())
                .ok_or_else(|| internal(format!("no text for {}", p.id())))?;
            let text = if new { renamed(text) } else { text.to_owned() };
            Policy::parse(Some(PolicyId::new(format!("{prefix}{}", p.id()))), text)
                .map_err(internal)
        })
        .collect()
}

/// Every decided column with its old and new class condition.
fn pair_domain(old: &Plan, new: &Plan) -> String {
    let old_classes = domain::classes(old);
    let new_classes = domain::classes(new);
    let find = |classes: &[domain::Class], m: (RelId, ColId)| {
        classes
            .iter()
            .find(|c| c.members.contains(&m))
            .map(|c| c.key.clone())
    };
    let mut pairs = BTreeSet::new();
    for c in &old_classes {
        for &m in &c.members {
            if let Some(n) = find(&new_classes, m) {
                pairs.insert((c.key.clone(), n));
            }
        }
    }
    let conditions: Vec<String> = pairs
        .iter()
        .map(|(o, n)| {
            format!(
                "({} && {})",
                domain::class_condition(old, o),
                renamed(&domain::class_condition(new, n))
            )
        })
        .collect();
    if conditions.is_empty() {
        "false".to_owned()
    } else {
        conditions.join(" || ")
    }
}

/// The side-by-side guard, narrowed to members of `group`.
fn guard(old: &Plan, new: &Plan, group: &str) -> Result<Vec<Policy>, VerifyError> {
    let mut text = format!(
        "forbid (principal, action, resource is {NAMESPACE}::Column) unless {{ {} }};\n",
        pair_domain(old, new)
    );
    let mut membership = domain::membership(old);
    membership.extend(domain::membership(new).iter().map(|m| renamed(m)));
    // A group with conditions in both policies is the same set of
    // credentials when its conditions are the same.
    for g in &old.groups {
        if let (Membership::Conditions(a), Some(n)) = (
            &g.membership,
            new.group_index(&g.name).map(|i| &new.groups[i]),
        ) && n.membership == Membership::Conditions(a.clone())
        {
            membership.push(format!(
                "((principal in {}) == (principal in {}))",
                domain::group(&g.name),
                domain::group(&format!("new:{}", g.name))
            ));
        }
    }
    if !membership.is_empty() {
        text.push_str(&format!(
            "forbid (principal, action, resource) unless {{ {} }};\n",
            membership.join(" && ")
        ));
    }
    let member = if new.group_index(group).is_some() {
        format!("new:{group}")
    } else {
        group.to_owned()
    };
    text.push_str(&format!(
        "forbid (principal, action, resource) unless {{ principal in {} }};\n",
        domain::group(&member)
    ));
    let parsed: PolicySet = text
        .parse()
        .map_err(|e: cedar_policy::ParseErrors| internal(e))?;
    Ok(parsed
        .policies()
        .enumerate()
        .map(|(i, p)| p.new_id(PolicyId::new(format!("clsf.compare.{i}"))))
        .collect())
}

/// Compares `new` against `old`, group by group and action by action.
pub fn compare(
    old: &Engine,
    new: &Engine,
    prover: &mut Prover,
) -> Result<Vec<Comparison>, VerifyError> {
    let schema = schema()?;
    let old_policies = policies(old, "old.", false)?;
    let new_policies = policies(new, "new.", true)?;
    let groups: BTreeSet<String> = old
        .plan()
        .groups
        .iter()
        .chain(&new.plan().groups)
        .map(|g| g.name.clone())
        .collect();
    let actions = super::who_can::cedar_actions();
    let envs: Vec<RequestEnv> = schema.request_envs().collect();
    let mut out = Vec::new();
    for group in &groups {
        let guard = guard(old.plan(), new.plan(), group)?;
        for &(action, usage) in &actions {
            let env = envs
                .iter()
                .find(|e| e.action().id().unescaped() == action)
                .ok_or_else(|| internal(format!("no request environment for {action}")))?;
            let mut guard = guard.clone();
            if let Some(u) = usage {
                let only: Policy = Policy::parse(
                    Some(PolicyId::new("clsf.compare.usage")),
                    format!(
                        "forbid (principal, action, resource) unless {{ context.usage == {} }};",
                        domain::string(u)
                    ),
                )
                .map_err(internal)?;
                guard.push(only);
            }
            let compile = |ps: &[Policy]| -> Result<CompiledPolicySet, VerifyError> {
                CompiledPolicySet::compile(&set(ps.iter().chain(&guard))?, env, &schema)
                    .map_err(internal)
            };
            let a = compile(&old_policies)?;
            let b = compile(&new_policies)?;
            let label = match usage {
                Some(u) => format!("use ({u})"),
                None => action.to_owned(),
            };
            let mut comparison = Comparison {
                group: group.clone(),
                action: label,
                relation: None,
                widening: None,
                unproved: None,
            };
            let wider = match prover.implies_counterexample(&b, &a)? {
                Ok(cex) => cex,
                Err(e) => {
                    comparison.unproved = Some(e.to_string());
                    out.push(comparison);
                    continue;
                }
            };
            let narrower = match prover.implies(&a, &b)? {
                Ok(holds) => !holds,
                Err(e) => {
                    comparison.unproved = Some(e.to_string());
                    out.push(comparison);
                    continue;
                }
            };
            comparison.relation = Some(match (wider.is_some(), narrower) {
                (false, false) => Relation::Equivalent,
                (true, false) => Relation::Wider,
                (false, true) => Relation::Narrower,
                (true, true) => Relation::Incomparable,
            });
            if let Some(env) = wider {
                comparison.widening = Some(render(old, new, &env, action, usage));
            }
            out.push(comparison);
        }
    }
    Ok(out)
}

fn long(v: Option<EvalResult>) -> Option<i64> {
    match v {
        Some(EvalResult::Long(n)) => Some(n),
        _ => None,
    }
}

fn strings(v: Option<EvalResult>) -> BTreeSet<String> {
    match v {
        Some(EvalResult::Set(s)) => s
            .iter()
            .filter_map(|e| match e {
                EvalResult::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn boolean(v: Option<EvalResult>) -> Option<bool> {
    match v {
        Some(EvalResult::Bool(b)) => Some(b),
        _ => None,
    }
}

/// The column of the lock the counterexample's resource stands for: the
/// one it names, or one with both its classifications and table.
fn column_of(old: &Plan, new: &Plan, env: &cedar_policy_symcc::Env) -> Option<(RelId, ColId)> {
    let resource = env.request.resource()?;
    let entity = env.entities.get(resource)?;
    let attr = |name: &str| entity.attr(name).and_then(Result::ok);
    let tables: BTreeSet<String> = env
        .entities
        .ancestors(resource)
        .map(|it| {
            it.map(|u: &EntityUid| u.id().unescaped().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let cats = |plan: &Plan, ri: RelId, ci: ColId| -> BTreeSet<String> {
        plan.category_names(plan.classes[ri][ci].categories)
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    let mut candidates = Vec::new();
    for (ri, rel) in new.schema.relations_with_ids() {
        if !new.is_decided(ri) && !old.is_decided(ri) {
            continue;
        }
        for (ci, col) in rel.columns_with_ids() {
            let uid = cedar::column_uid(&rel.qualified(), &col.name);
            if &uid == resource {
                return Some((ri, ci));
            }
            let (o, n) = (&old.classes[ri][ci], &new.classes[ri][ci]);
            let matches = long(attr("level")) == Some(o.level as i64)
                && long(attr("new_level")) == Some(n.level as i64)
                && strings(attr("categories")) == cats(old, ri, ci)
                && strings(attr("new_categories")) == cats(new, ri, ci)
                && boolean(attr("has_mask")) == Some(o.mask.is_some())
                && boolean(attr("new_has_mask")) == Some(n.mask.is_some());
            if matches {
                candidates.push((ri, ci, tables.contains(&rel.qualified())));
            }
        }
    }
    candidates
        .iter()
        .find(|c| c.2)
        .or(candidates.first())
        .map(|&(ri, ci, _)| (ri, ci))
}

/// Words for what puts an identity in a group with conditions.
fn credentials(plan: &Plan, group: &str) -> Vec<String> {
    let Some(g) = plan.group_index(group).map(|i| &plan.groups[i]) else {
        return Vec::new();
    };
    let Membership::Conditions(conds) = &g.membership else {
        return Vec::new();
    };
    let sample = |m: &StrMatch| match m {
        StrMatch::Equals(v) => format!("{v:?}"),
        StrMatch::NotEquals(v) => format!("anything but {v:?}"),
        StrMatch::Like(glob) => format!("{:?}", glob.replace(['*', '?'], "x")),
        StrMatch::In(vs) => format!("{:?}", vs.first().cloned().unwrap_or_default()),
    };
    conds
        .iter()
        .map(|c| match c {
            GroupCondition::Issuer(m) => format!("token iss = {}", sample(m)),
            GroupCondition::Subject(m) => format!("token sub = {}", sample(m)),
            GroupCondition::Audience(a) => format!("token aud contains {a:?}"),
            GroupCondition::Claim { path, test } => match test {
                ClaimMatch::Str(m) => format!("token {} = {}", path.join("."), sample(m)),
                ClaimMatch::Contains(v) => format!("token {} contains {v:?}", path.join(".")),
            },
            GroupCondition::CertSubject(m) => format!("client certificate subject {}", sample(m)),
            GroupCondition::CertSan(m) => format!("client certificate SAN {}", sample(m)),
            GroupCondition::Account(a) => format!("service account {a:?}"),
        })
        .collect()
}

fn statement(table: &str, column: &str, action: &str, usage: Option<&str>) -> String {
    match (action, usage) {
        ("write" | "write_approved", _) => format!("INSERT INTO {table} ({column}) VALUES (NULL)"),
        ("export" | "export_approved", _) => format!("COPY {table} ({column}) TO STDOUT"),
        (_, Some("joined")) => {
            format!("SELECT 1 FROM {table} a JOIN {table} b ON a.{column} = b.{column}")
        }
        (_, Some("filtered")) => format!("SELECT 1 FROM {table} WHERE {column} IS NOT NULL"),
        (_, Some("grouped")) => format!("SELECT count(*) FROM {table} GROUP BY {column}"),
        (_, Some("ordered")) => format!("SELECT 1 FROM {table} ORDER BY {column}"),
        (_, Some(_)) => format!("SELECT count(DISTINCT {column}) FROM {table}"),
        _ => format!("SELECT {column} FROM {table}"),
    }
}

/// How a decision reads, and how much it reveals of `column`.
fn outcome(engine: &Engine, groups: &[String], sql: &str, column: &str) -> (String, u8) {
    let access = engine.access_for(&Identity {
        subject: "counterexample".into(),
        groups: groups.to_vec(),
    });
    let decision = engine.decide(&access, sql);
    let masked = decision
        .statements
        .first()
        .is_some_and(|r| r.masked.iter().any(|m| m == column));
    match &decision.verdict {
        Verdict::Deny(d) => (format!("deny ({})", d.message), 0),
        Verdict::Hold(_) => ("hold for approval".into(), 1),
        Verdict::Rewrite(_) if masked => (format!("rewrite ({column} masked)"), 2),
        Verdict::Rewrite(_) => (format!("rewrite ({column} in clear)"), 3),
        Verdict::Forward => ("forward".into(), 3),
    }
}

fn render(
    old: &Engine,
    new: &Engine,
    env: &cedar_policy_symcc::Env,
    action: &str,
    usage: Option<&str>,
) -> Widening {
    let parents: Vec<String> = env
        .request
        .principal()
        .and_then(|p| env.entities.ancestors(p))
        .map(|it| it.map(|u| u.id().unescaped().to_owned()).collect())
        .unwrap_or_default();
    let new_groups: Vec<String> = {
        let mut g: Vec<String> = parents
            .iter()
            .filter_map(|g| g.strip_prefix("new:").map(str::to_owned))
            .collect();
        g.sort();
        g
    };
    let old_groups: Vec<String> = {
        let mut g: Vec<String> = parents
            .iter()
            .filter(|g| !g.starts_with("new:"))
            .cloned()
            .collect();
        g.sort();
        g
    };
    let credentials = new_groups
        .iter()
        .flat_map(|g| credentials(new.plan(), g))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut widening = Widening {
        groups: new_groups.clone(),
        credentials,
        column: None,
        sql: None,
        old_engine: None,
        new_engine: None,
        confirmed: false,
    };
    if let Some((ri, ci)) = column_of(old.plan(), new.plan(), env) {
        let rel = new.plan().schema.relation(ri);
        let column = format!("{}.{}", rel.qualified(), rel.columns[ci].name);
        let sql = statement(&rel.qualified(), &rel.columns[ci].name, action, usage);
        let (o, rank_o) = outcome(old, &old_groups, &sql, &column);
        let (n, rank_n) = outcome(new, &new_groups, &sql, &column);
        widening.confirmed = rank_n > rank_o;
        widening.column = Some(column);
        widening.sql = Some(sql);
        widening.old_engine = Some(o);
        widening.new_engine = Some(n);
    }
    widening
}
