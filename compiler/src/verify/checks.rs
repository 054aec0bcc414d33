//! `clsfc check --verify`: questions about each generated Cedar policy,
//! answered by the solver over the domain of this database and these
//! groups (see `domain`), and reported as diagnostics on the clause that
//! generated the policy.
//!
//! For each policy and each action it applies to:
//! - can it error? (an erroring `forbid` is skipped: it would fail open);
//! - can it match at all? (`{p as permit} + guard` always denies);
//! - for an `allow` clause's permit: is it shadowed (`{p} + every forbid +
//!   guard` always denies: a deny or a more protective clause always
//!   wins), or redundant (the set without it allows everything the set
//!   with it allows)?
//!
//! A clause is reported only when the finding holds for every action it
//! applies to.

use std::collections::BTreeMap;

use cedar_policy::{ActionConstraint, Effect, Policy, PolicyId, PolicySet, RequestEnv};
use cedar_policy_symcc::{CompiledPolicy, CompiledPolicySet};
use clsf_lang::{Diagnostic, Span};

use super::domain;
use super::solver::{Prover, Unproved, VerifyError, internal};
use crate::cedar::Generated;
use crate::plan::{ClauseKind, Effect as ClauseEffect, Membership, Plan};

/// What was asked and found.
#[derive(Debug, Default)]
pub struct Report {
    /// The findings, as diagnostics on the policy's sources.
    pub diagnostics: Vec<Diagnostic>,
    /// Policies examined.
    pub policies: usize,
    /// Column classes in the domain.
    pub classes: usize,
}

/// What the solver found about one policy, over the actions it applies to.
#[derive(Debug, Default)]
struct Finding {
    actions: usize,
    never_matches: usize,
    shadowed: usize,
    redundant: usize,
    shadowed_by: Vec<String>,
    redundant_with: Vec<String>,
    can_error: Vec<String>,
    unproved: Vec<(String, Unproved)>,
}

fn applies(policy: &Policy, env: &RequestEnv) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => &a == env.action(),
        ActionConstraint::In(v) => v.contains(env.action()),
    }
}

/// A policy set of `policies` (ids kept).
pub(crate) fn set<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
) -> Result<PolicySet, VerifyError> {
    let mut out = PolicySet::new();
    for p in policies {
        out.add(p.clone()).map_err(internal)?;
    }
    Ok(out)
}

/// The guard's policies, with ids of their own.
pub(crate) fn guard(plan: &Plan, classes: &[domain::Class]) -> Result<Vec<Policy>, VerifyError> {
    let parsed: PolicySet = domain::guard_text(plan, classes)
        .parse()
        .map_err(|e: cedar_policy::ParseErrors| internal(e))?;
    Ok(parsed
        .policies()
        .enumerate()
        .map(|(i, p)| p.new_id(PolicyId::new(format!("clsf.domain.{i}"))))
        .collect())
}

fn action_name(env: &RequestEnv) -> String {
    env.action().id().unescaped().to_owned()
}

/// Verifies the enforced policies of `generated` for `plan`.
pub fn check(
    plan: &Plan,
    generated: &Generated,
    prover: &mut Prover,
) -> Result<Report, VerifyError> {
    let classes = domain::classes(plan);
    let guard = guard(plan, &classes)?;
    let texts: BTreeMap<&str, &str> = generated
        .policies
        .iter()
        .map(|p| (p.id.as_str(), p.text.as_str()))
        .collect();
    let policies: Vec<Policy> = generated
        .policy_set
        .policies()
        .filter(|p| !is_filter(p))
        .cloned()
        .collect();
    let envs: Vec<RequestEnv> = generated.schema.request_envs().collect();
    let mut findings: BTreeMap<String, Finding> = BTreeMap::new();
    for env in &envs {
        let here: Vec<&Policy> = policies.iter().filter(|p| applies(p, env)).collect();
        if here.is_empty() {
            continue;
        }
        let compile = |ps: Vec<&Policy>| -> Result<CompiledPolicySet, VerifyError> {
            CompiledPolicySet::compile(&set(ps)?, env, &generated.schema).map_err(internal)
        };
        let forbids: Vec<&Policy> = here
            .iter()
            .copied()
            .filter(|p| p.effect() == Effect::Forbid)
            .collect();
        let everything = compile(here.iter().copied().chain(&guard).collect())?;
        let action = action_name(env);
        for p in &here {
            let id = p.id().to_string();
            let finding = findings.entry(id.clone()).or_default();
            finding.actions += 1;
            let alone = CompiledPolicy::compile(p, env, &generated.schema).map_err(internal)?;
            match prover.never_errors(&alone)? {
                Ok(true) => {}
                Ok(false) => finding.can_error.push(action.clone()),
                Err(e) => {
                    // One unanswered question is reported; the others
                    // about this policy and action would wait as long.
                    finding.unproved.push((action.clone(), e));
                    continue;
                }
            }
            let as_permit = match p.effect() {
                Effect::Permit => (*p).clone(),
                Effect::Forbid => permit_of(p, texts.get(id.as_str()).copied())?,
            };
            let matches = compile(std::iter::once(&as_permit).chain(&guard).collect())?;
            match prover.always_denies(&matches)? {
                Ok(true) => {
                    finding.never_matches += 1;
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    finding.unproved.push((action.clone(), e));
                    continue;
                }
            }
            if p.effect() != Effect::Permit || !is_allow_clause(plan, &id) {
                continue;
            }
            let shadow = compile(
                std::iter::once(*p)
                    .chain(forbids.iter().copied())
                    .chain(&guard)
                    .collect(),
            )?;
            match prover.always_denies(&shadow)? {
                Ok(true) => {
                    finding.shadowed += 1;
                    for f in &forbids {
                        let pair = compile(vec![*p, *f].into_iter().chain(&guard).collect())?;
                        if prover.always_denies(&pair)? == Ok(true) {
                            push_unique(&mut finding.shadowed_by, f.id().to_string());
                        }
                    }
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    finding.unproved.push((action.clone(), e));
                    continue;
                }
            }
            let without = compile(
                here.iter()
                    .copied()
                    .filter(|q| q.id() != p.id())
                    .chain(&guard)
                    .collect(),
            )?;
            match prover.implies(&everything, &without)? {
                Ok(true) => {
                    finding.redundant += 1;
                    let mine = compile(std::iter::once(*p).chain(&guard).collect())?;
                    for q in here
                        .iter()
                        .filter(|q| q.effect() == Effect::Permit && q.id() != p.id())
                    {
                        let theirs = compile(std::iter::once(*q).chain(&guard).collect())?;
                        if prover.implies(&mine, &theirs)? == Ok(true) {
                            push_unique(&mut finding.redundant_with, q.id().to_string());
                        }
                    }
                }
                Ok(false) => {}
                Err(e) => finding.unproved.push((action.clone(), e)),
            }
        }
    }
    let mut diagnostics = Vec::new();
    for (id, finding) in &findings {
        diagnostics.extend(diagnose(plan, id, finding));
    }
    diagnostics.extend(memberless_groups(plan));
    Ok(Report {
        diagnostics,
        policies: policies.len(),
        classes: classes.len(),
    })
}

fn push_unique(list: &mut Vec<String>, id: String) {
    if !list.contains(&id) {
        list.push(id);
    }
}

fn is_filter(p: &Policy) -> bool {
    matches!(p.action_constraint(), ActionConstraint::Eq(a) if a.id().unescaped() == "filter")
}

/// The clause a policy id was generated from (`RULE.N` or `RULE.N.forbid`).
fn clause_id(id: &str) -> &str {
    id.strip_suffix(".forbid").unwrap_or(id)
}

fn is_allow_clause(plan: &Plan, id: &str) -> bool {
    matches!(
        plan.clause_by_policy(clause_id(id)),
        Some((_, c)) if matches!(&c.kind, ClauseKind::Access { effect: ClauseEffect::Allow, .. })
    )
}

/// A `forbid`'s body as a `permit`, to ask whether it can match.
fn permit_of(p: &Policy, text: Option<&str>) -> Result<Policy, VerifyError> {
    let text = text.ok_or_else(|| internal(format!("no text for policy {}", p.id())))?;
    let flipped = text.replacen("\nforbid (", "\npermit (", 1);
    Policy::parse(Some(p.id().clone()), flipped).map_err(internal)
}

/// Where a policy's clause is, and how to name it.
fn place(plan: &Plan, id: &str) -> Option<(Span, String, String)> {
    let (rule, clause) = plan.clause_by_policy(clause_id(id))?;
    Some((clause.span, rule.name.clone(), clause.location.clone()))
}

fn describe(plan: &Plan, ids: &[String]) -> (Vec<(Span, String)>, Vec<String>) {
    let mut spans = Vec::new();
    let mut names = Vec::new();
    for id in ids {
        if let Some((span, rule, location)) = place(plan, id) {
            spans.push((span, format!("in rule `{rule}`")));
            names.push(format!("rule `{rule}` at {location}"));
        }
    }
    (spans, names)
}

fn diagnose(plan: &Plan, id: &str, f: &Finding) -> Vec<Diagnostic> {
    let Some((span, rule, _)) = place(plan, id) else {
        return Vec::new();
    };
    let forbid = id.ends_with(".forbid")
        || matches!(plan.clause_by_policy(id), Some((_, c)) if matches!(&c.kind, ClauseKind::Access { effect: ClauseEffect::Deny, .. }));
    let mut out = Vec::new();
    if !f.can_error.is_empty() {
        let actions = f.can_error.join(", ");
        out.push(if forbid {
            Diagnostic::error(
                "CLSF0301",
                format!("a forbid of rule `{rule}` can fail to evaluate ({actions})"),
                span,
                "this clause's forbid can error",
            )
            .with_help("Cedar skips a policy that errors, so this forbid would let the request through: rewrite the clause's target so that it always evaluates")
        } else {
            Diagnostic::warning(
                "CLSF0307",
                format!("a permit of rule `{rule}` can fail to evaluate ({actions})"),
                span,
                "this clause can error",
            )
            .with_help("Cedar skips a policy that errors: the access it grants would be refused")
        });
    }
    for (action, why) in &f.unproved {
        out.push(
            Diagnostic::error(
                "CLSF0306",
                format!("rule `{rule}` could not be verified for `{action}`: {why}"),
                span,
                "not verified",
            )
            .with_help("raise --solver-timeout, or simplify the clause's target; an unverified clause is never reported as clean"),
        );
    }
    if !f.unproved.is_empty() {
        return out;
    }
    if f.never_matches == f.actions {
        out.push(
            Diagnostic::warning(
                "CLSF0302",
                format!("this clause of rule `{rule}` applies to nothing in the schema"),
                span,
                "matches no column, group member or request",
            )
            .with_help("no column of the schema lock has what the target names, or no identity can be in the rule's group: remove the clause or fix its target"),
        );
        return out;
    }
    let effective = f.actions - f.never_matches;
    if f.shadowed > 0 && f.shadowed == effective {
        let (spans, names) = describe(plan, &f.shadowed_by);
        let by = if names.is_empty() {
            "the deny and mask clauses together".to_owned()
        } else {
            names.join(", ")
        };
        let mut d = Diagnostic::warning(
            "CLSF0303",
            format!("this clause of rule `{rule}` never grants anything: it is always overridden by {by}"),
            span,
            "shadowed",
        )
        .with_help("a deny, mask or approval clause forbids every request this clause permits; remove it, or narrow the more protective clause (or give an `override because` for a mask)");
        for (s, label) in spans.into_iter().filter(|(s, _)| s.file == span.file) {
            d = d.with_label(s, format!("always wins ({label})"));
        }
        out.push(d);
        return out;
    }
    if f.redundant > 0 && f.shadowed + f.redundant == effective {
        let (spans, names) = describe(plan, &f.redundant_with);
        let by = if names.is_empty() {
            "the other clauses together".to_owned()
        } else {
            names.join(", ")
        };
        let mut d = Diagnostic::warning(
            "CLSF0304",
            format!("this clause of rule `{rule}` is redundant: everything it allows is already allowed by {by}"),
            span,
            "redundant",
        )
        .with_help("removing this clause changes no decision; remove it, or narrow the broader clause if that one is the mistake");
        for (s, label) in spans.into_iter().filter(|(s, _)| s.file == span.file) {
            d = d.with_label(s, format!("already allows it ({label})"));
        }
        out.push(d);
    }
    out
}

/// Groups no credential can be a member of.
fn memberless_groups(plan: &Plan) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, g) in plan.groups.iter().enumerate() {
        let empty = matches!(&g.membership, Membership::Conditions(c) if c.is_empty());
        if empty || !domain::searchable(plan, i) {
            // An empty condition list is a resolve error already; a
            // composition too large to search is not claimed either way.
            continue;
        }
        if domain::member_groups(plan, i).is_none() {
            out.push(
                Diagnostic::warning(
                    "CLSF0305",
                    format!("no identity can be a member of group `{}`", g.name),
                    g.span,
                    "no possible member",
                )
                .with_help("its conditions contradict each other (two values for one claim, two service accounts), or its composition needs groups whose conditions contradict; rules for it grant nothing"),
            );
        }
    }
    out
}
