//! Statements held for approval: which statements are held, what one
//! approval must come from, and what runs once approved — on the
//! quickstart schema, with no database.

use clsf_compiler::engine::{Hold, Identity, Verdict};
use clsf_compiler::plan::ApprovalScope;
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::schema;
use clsf_compiler::{Engine, resolve};

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted
group agents { claim role == "agent" }
group oncall { claim role == "oncall" }
group leads { claim role == "lead" }

table public.customers: internal {
  email: confidential mask email
  card_number: confidential mask last(4)
  ssn: restricted
}
table public.orders: internal { status: public }

rule agent_reads for agents {
  allow <= internal
  mask confidential
  deny column public.customers.name
  require approval column public.customers.ssn by oncall ttl 5m scope 3 executions
  require approval column public.orders.total_cents by leads scope session 30m quorum 2
}
group writers { claim role == "writer" }
rule writer_orders for writers {
  allow <= internal
  require approval write table public.orders by leads ttl 1m scope session 10m
}
"#;

fn engine() -> Engine {
    let mut parsed = Parsed::default();
    policy::add_source(&mut parsed, "holds.clsf", POLICY);
    let schema =
        schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json")).unwrap();
    let (plan, diags) = resolve::compile(&parsed, &schema);
    assert!(
        !diags.iter().any(|d| d.is_error()),
        "{}",
        clsf_lang::render(&diags, &parsed.sources, false)
    );
    Engine::new(plan.unwrap()).unwrap()
}

fn decide(e: &Engine, sql: &str) -> Verdict {
    decide_as(e, "agents", sql)
}

fn decide_as(e: &Engine, group: &str, sql: &str) -> Verdict {
    let identity = Identity {
        subject: "agent-1".into(),
        groups: vec![group.into()],
    };
    let access = e.access_for(&identity);
    e.decide(&access, sql).verdict
}

fn held(v: Verdict) -> Hold {
    match v {
        Verdict::Hold(h) => *h,
        other => panic!("expected a hold, got {other:?}"),
    }
}

#[test]
fn a_gated_column_is_held_and_runs_in_clear_once_approved() {
    let e = engine();
    let h = held(decide(&e, "SELECT ssn, email FROM customers WHERE id = 1"));
    assert_eq!(h.approvers_text(), "1 of group `oncall`");
    assert_eq!(h.scope, ApprovalScope::Executions(3));
    assert_eq!(h.ttl_seconds, 300);
    assert_eq!(h.needs[0].rule, "agent_reads");
    let Verdict::Rewrite(then) = &h.then else {
        panic!("{:?}", h.then)
    };
    // ssn is read in clear once approved; e-mail stays masked; the denied
    // name stays a NULL.
    assert!(then.contains(", \"ssn\", "), "{then}");
    assert!(then.contains("CAST(NULL AS text) AS \"name\""), "{then}");
    assert!(then.contains("'****' END AS text) AS \"email\""), "{then}");
}

#[test]
fn an_approval_never_releases_a_denied_column() {
    let e = engine();
    let Verdict::Deny(d) = decide(&e, "SELECT ssn, name FROM customers") else {
        panic!("expected a denial")
    };
    assert!(d.message.contains("`name`"), "{}", d.message);
    assert!(!d.message.contains("approval"), "{}", d.message);
}

#[test]
fn a_statement_needing_two_clauses_needs_both_approver_groups() {
    let e = engine();
    let h = held(decide(
        &e,
        "SELECT c.ssn, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id",
    ));
    assert_eq!(
        h.approvers_text(),
        "1 of group `oncall` and 2 of group `leads`"
    );
    // The narrowest scope and the shortest time to live of the two.
    assert_eq!(h.scope, ApprovalScope::Executions(3));
    assert_eq!(h.ttl_seconds, 300);
}

#[test]
fn a_gated_write_is_held() {
    let e = engine();
    let h = held(decide_as(
        &e,
        "writers",
        "UPDATE orders SET status = 'late' WHERE id = 10",
    ));
    assert_eq!(h.approvers_text(), "1 of group `leads`");
    assert_eq!(h.scope, ApprovalScope::Session(600));
    assert_eq!(h.ttl_seconds, 60);
    assert_eq!(h.then, Verdict::Forward);
}

#[test]
fn statements_without_gated_access_are_not_held() {
    let e = engine();
    assert!(matches!(
        decide(&e, "SELECT id, email FROM customers"),
        Verdict::Rewrite(_)
    ));
    assert!(matches!(
        decide(&e, "SELECT id, status FROM orders"),
        Verdict::Rewrite(_)
    ));
    assert!(matches!(
        decide_as(&e, "writers", "SELECT total_cents FROM orders"),
        Verdict::Forward
    ));
}

#[test]
fn every_statement_of_a_string_adds_its_clauses_to_one_hold() {
    let e = engine();
    let h = held(decide(
        &e,
        "SELECT ssn FROM customers WHERE id = 1; SELECT total_cents FROM orders",
    ));
    assert_eq!(
        h.approvers_text(),
        "1 of group `oncall` and 2 of group `leads`"
    );
    let Verdict::Rewrite(then) = &h.then else {
        panic!("{:?}", h.then)
    };
    assert!(then.contains(", \"ssn\", "), "{then}");
    assert!(then.contains(", \"total_cents\""), "{then}");
}

#[test]
fn a_statement_decided_in_another_form_is_held_in_its_own() {
    // `BETWEEN SYMMETRIC` is decided as `BETWEEN` padded to the same
    // length; what runs once approved is the client's text, rewritten.
    let e = engine();
    let h = held(decide(
        &e,
        "SELECT ssn FROM customers WHERE id BETWEEN SYMMETRIC 2 AND 1",
    ));
    assert_eq!(h.approvers_text(), "1 of group `oncall`");
    let Verdict::Rewrite(then) = &h.then else {
        panic!("{:?}", h.then)
    };
    assert!(then.ends_with("BETWEEN SYMMETRIC 2 AND 1"), "{then}");
    assert!(then.contains(", \"ssn\", "), "{then}");
}

#[test]
fn a_hold_is_decided_once_and_shared() {
    // The hold comes out of the one decision, so the decision cache keeps
    // it like any other: the same text is not decided again.
    let e = engine();
    let identity = Identity {
        subject: "agent-1".into(),
        groups: vec!["agents".into()],
    };
    let access = e.access_for(&identity);
    let sql = "SELECT ssn FROM customers WHERE id = 1";
    let first = e.decide_shared(&access, None, sql);
    let again = e.decide_shared(&access, None, sql);
    assert!(matches!(first.verdict, Verdict::Hold(_)));
    assert!(std::sync::Arc::ptr_eq(&first, &again));
}

#[test]
fn every_clause_is_found_by_its_policy_id_and_nothing_else_is() {
    let e = engine();
    let plan = e.plan();
    let mut found = 0;
    for rule in &plan.rules {
        for clause in &rule.clauses {
            let id = plan
                .clause_id(&clause.policy_id)
                .expect("a clause's own id");
            let (r, c) = plan.clause(id);
            assert_eq!((&r.name, &c.policy_id), (&rule.name, &clause.policy_id));
            found += 1;
        }
    }
    assert!(found >= 5, "{found}");
    for other in [
        "agent_reads",
        "agent_reads.99",
        "agent_reads.3.forbid",
        "agent_reads.-1",
        "nobody.0",
        "",
        ".",
    ] {
        assert_eq!(plan.clause_id(other), None, "{other}");
    }
}
