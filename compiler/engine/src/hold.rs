//! Statements held for approval. A statement refused only because it needs
//! an approval is decided again as if the approval clauses it hit had been
//! approved; if that succeeds, the verdict is a [`Hold`]: what to run once
//! approved, and who must approve. Anything else it touches is decided as
//! usual, so an approval never releases a column that is denied outright.

use crate::access::PrincipalAccess;
use crate::decide::{self, Env};
use crate::plan::{ApprovalScope, ClauseKind, Effect, Plan};
use crate::verdict::{Decision, Denial, Verdict};
pub use crate::verdict::{Hold, Need};

/// The approval clauses a denial names, when it was refused only for want
/// of an approval.
fn approval_clauses(plan: &Plan, denial: &Denial) -> Option<Vec<String>> {
    if denial.policies.is_empty() {
        return None;
    }
    let all_approvals = denial.policies.iter().all(|id| {
        plan.clause_by_policy(id).is_some_and(|(_, c)| {
            matches!(
                c.kind,
                ClauseKind::Access {
                    effect: Effect::Approval(_),
                    ..
                }
            )
        })
    });
    all_approvals.then(|| denial.policies.clone())
}

/// Turns a refusal for want of approval into a hold, when approving every
/// approval clause the statement hits would let it run. Other decisions
/// are returned unchanged.
pub(crate) fn hold(
    plan: &Plan,
    access: &PrincipalAccess,
    env: &Env<'_>,
    text: &str,
    first: Decision,
) -> Decision {
    let Verdict::Deny(denial) = &first.verdict else {
        return first;
    };
    let Some(mut released) = approval_clauses(plan, denial) else {
        return first;
    };
    // Each round releases the approval clauses the last refusal named; it
    // ends when the statement runs or is refused for another reason. Bounded
    // by the number of clauses, since each round adds at least one.
    let rounds = plan.rules.iter().map(|r| r.clauses.len()).sum::<usize>() + 1;
    for _ in 0..rounds {
        let view = access.released(&released);
        let (decision, _) = decide::decide_with_edits(plan, &view, env, text);
        let denial = match &decision.verdict {
            Verdict::Deny(d) => d,
            _ => return held(plan, &released, decision),
        };
        match approval_clauses(plan, denial) {
            Some(more) if more.iter().any(|id| !released.contains(id)) => {
                for id in more {
                    if !released.contains(&id) {
                        released.push(id);
                    }
                }
            }
            // Refused for another reason: that is the answer.
            _ => return decision,
        }
    }
    first
}

fn held(plan: &Plan, released: &[String], mut decision: Decision) -> Decision {
    let mut needs = Vec::new();
    let mut scope: Option<ApprovalScope> = None;
    let mut ttl = u64::MAX;
    for id in released {
        let Some((rule, clause)) = plan.clause_by_policy(id) else {
            continue;
        };
        let ClauseKind::Access {
            effect: Effect::Approval(a),
            ..
        } = &clause.kind
        else {
            continue;
        };
        needs.push(Need {
            policy_id: id.clone(),
            rule: rule.name.clone(),
            clause: format!("{} at {}", clause.text, clause.location),
            approvers: a.approvers.clone(),
            quorum: a.quorum.max(1),
        });
        ttl = ttl.min(a.ttl_seconds);
        scope = Some(match scope {
            None => a.scope,
            Some(s) => narrower(s, a.scope),
        });
    }
    let mut touches = Vec::new();
    for s in &mut decision.statements {
        s.decision = "hold";
        for c in &s.columns {
            let t = format!("{} ({})", c.column, c.label);
            if !touches.contains(&t) {
                touches.push(t);
            }
        }
    }
    decision.verdict = Verdict::Hold(Box::new(Hold {
        needs,
        scope: scope.unwrap_or(ApprovalScope::Statement),
        ttl_seconds: ttl.min(u64::from(u32::MAX)),
        then: decision.verdict,
        touches,
    }));
    decision
}

/// The scope that releases less: one statement < N executions < a session.
fn narrower(a: ApprovalScope, b: ApprovalScope) -> ApprovalScope {
    use ApprovalScope::*;
    match (a, b) {
        (Statement, _) | (_, Statement) => Statement,
        (Executions(x), Executions(y)) => Executions(x.min(y)),
        (Executions(x), Session(_)) | (Session(_), Executions(x)) => Executions(x),
        (Session(x), Session(y)) => Session(x.min(y)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_narrowest_scope_wins() {
        use ApprovalScope::*;
        assert_eq!(narrower(Session(60), Executions(3)), Executions(3));
        assert_eq!(narrower(Executions(2), Executions(3)), Executions(2));
        assert_eq!(narrower(Session(60), Session(30)), Session(30));
        assert_eq!(narrower(Executions(2), Statement), Statement);
    }
}
