//! Statements held for approval. The decision notes, in the same pass,
//! each approval clause the statement needs and decides it as if approved
//! (`decide::Needs`); when nothing else refuses it, the verdict becomes a
//! [`Hold`]: what to run once approved, and who must approve. Anything
//! else it touches is decided as usual, so an approval never releases a
//! column that is denied outright.

use crate::plan::{ApprovalScope, ClauseId, ClauseKind, Effect, Plan};
use crate::verdict::{Decision, Verdict};
pub use crate::verdict::{Hold, Need};

/// Turns `decision` (what runs once approved) into a hold for the
/// approval clauses `released`.
pub(crate) fn held(plan: &Plan, released: &[ClauseId], mut decision: Decision) -> Decision {
    let mut needs = Vec::new();
    let mut scope: Option<ApprovalScope> = None;
    let mut ttl = u64::MAX;
    for &id in released {
        let (rule, clause) = plan.clause(id);
        let ClauseKind::Access {
            effect: Effect::Approval(a),
            ..
        } = &clause.kind
        else {
            continue;
        };
        needs.push(Need {
            policy_id: clause.policy_id.clone(),
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
        s.findings_mut().decision = "hold";
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
