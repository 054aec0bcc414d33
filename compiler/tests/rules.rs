//! The language's rule kinds, end to end through the compiler and the
//! statement engine (no database): categories and patterns, mask overrides,
//! precedence, actions, functions, approvals, row filters and limits,
//! observe-only rules, and group composition.

use clsf_compiler::engine::identity::{Credentials, groups_for, groups_for_credentials};
use clsf_compiler::engine::{Identity, Verdict};
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::schema::{self, Schema};
use clsf_compiler::{Engine, resolve};
use serde_json::json;

fn quickstart_schema() -> Schema {
    schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json")).unwrap()
}

const POLICY: &str = r#"
use std::labels

// No table default: a table's default label would take precedence over the
// patterns below (explicit > table > schema > pattern).
table public.customers {
  id: internal
  created_at: internal
  ssn: restricted [pii]
  card_number: restricted [pci] mask last(4)
}
table public.orders: public {
  total_cents: internal
}
classify columns named /^e?mail$/ as confidential [pii] mask email
classify columns named /^name$/ as confidential [pii] mask first(1)

group ci {
  issuer "https://issuer.example"
  claim repository like "acme/*"
  claim ref in ["refs/heads/main", "refs/heads/release"]
}
group k8s { claim "kubernetes.io".namespace == "batch" }
group forks { claim repository like "*-fork" }
group trusted = ci and not forks
group support { claim team == "support" }
group leads { claim team == "leads" }
group trial { claim team == "trial" }

rule trusted_reads for trusted {
  allow <= internal
  mask  [pii]
  mask  [pci] with first(2)
  deny  column public.customers.ssn
  // A deny wins over a usage grant too.
  allow join column public.customers.ssn
  allow write table public.orders
  deny  function pg_sleep
  allow function md5, pg_notify, archive_orders
}

rule support_reads for support {
  allow <= confidential
  mask  [pii] with hash
  allow column public.customers.email override because "support answers customers by e-mail"
  require approval [pci] by leads ttl 10m
  filter table public.orders where "customer_id = {claim.customer}"
}

rule k8s_reads for k8s {
  allow <= public
  limit 100 rows table public.orders
  // Join and filter on the customer key without ever reading it; totals
  // only summed.
  allow join, filter column public.customers.id
  allow aggregate column public.orders.total_cents
  deny  function pg_notify
}

rule trial_reads for trial observe {
  deny [pii]
  deny table public.orders
}
rule trial_base for trial {
  allow <= confidential
}

rule leads_approve for leads {
  allow read, write, export <= restricted
  allow ddl
}

// Writes orders, which it reads whole, and joins and filters on the card
// number it never reads.
group writer { claim "kubernetes.io".namespace == "writer" }
rule writer_reads for writer {
  allow <= internal
  allow write table public.orders
  allow join, filter column public.customers.card_number
}
"#;

/// The engine of this file's policy (also the engine of the table file
/// `engine_cases/rules.sql`).
pub(crate) fn engine() -> Engine {
    let mut parsed = Parsed::default();
    policy::add_source(&mut parsed, "rules.clsf", POLICY);
    policy::resolve_imports(&mut parsed);
    let (plan, diags) = resolve::compile(&parsed, &quickstart_schema());
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(
        errors.is_empty(),
        "{}",
        clsf_lang::render(&diags, &parsed.sources, false)
    );
    Engine::new(plan.unwrap())
        .unwrap()
        .with_hash_key("k3y".into())
}

fn decide(e: &Engine, claims: serde_json::Value, sql: &str) -> Verdict {
    let identity = Identity {
        subject: "t".into(),
        groups: groups_for(e.plan(), &claims),
    };
    let access = e.access_for(&identity);
    e.decide_with_claims(&access, Some(&claims), sql).verdict
}

fn rewritten(v: Verdict) -> String {
    match v {
        Verdict::Rewrite(s) => s,
        other => panic!("expected a rewrite, got {other:?}"),
    }
}

fn denied(v: Verdict) -> String {
    match v {
        Verdict::Deny(d) => d.message,
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn ci() -> serde_json::Value {
    json!({"iss": "https://issuer.example", "repository": "acme/shop", "ref": "refs/heads/main"})
}

#[test]
fn groups_follow_claims_globs_lists_paths_and_composition() {
    let e = engine();
    let p = e.plan();
    assert_eq!(groups_for(p, &ci()), ["ci", "trusted"]);
    let fork = json!({"iss": "https://issuer.example", "repository": "acme/shop-fork", "ref": "refs/heads/main"});
    assert_eq!(groups_for(p, &fork), ["ci", "forks"]);
    let other_ref = json!({"iss": "https://issuer.example", "repository": "acme/shop", "ref": "refs/heads/dev"});
    assert!(groups_for(p, &other_ref).is_empty());
    let pod = json!({"kubernetes.io": {"namespace": "batch"}});
    assert_eq!(groups_for(p, &pod), ["k8s"]);
    // Certificates and accounts are other credentials: no claim matches them.
    let creds = Credentials {
        account: Some("reporting"),
        ..Credentials::default()
    };
    assert!(groups_for_credentials(p, &creds).is_empty());
}

#[test]
fn a_column_rule_denies_inside_a_category_that_is_masked() {
    let e = engine();
    let msg = denied(decide(&e, ci(), "SELECT ssn FROM customers"));
    assert!(
        msg.contains("`ssn`") && msg.contains("trusted_reads"),
        "{msg}"
    );
}

#[test]
fn an_override_with_a_reason_lifts_a_mask_but_nothing_else() {
    let e = engine();
    let support = json!({"team": "support", "customer": 1});
    // The whole rewrites are in engine_cases/rules.sql; here, what a table
    // file cannot show: the key and its pads are never written.
    let out = rewritten(decide(&e, support.clone(), "SELECT name FROM customers"));
    let (ipad, opad) = clsf_compiler::masks::hash_pads("k3y");
    assert!(
        !out.contains("k3y") && !out.contains(&ipad[..6]) && !out.contains(&opad[..6]),
        "the key is never written: {out}"
    );
    // pci needs approval: the statement is held, and what runs once it is
    // approved reads the card number in clear (the approval clause lifts
    // the mask) while the rest of the relation stays masked as before.
    let hold = held(decide(
        &e,
        support.clone(),
        "SELECT card_number FROM customers",
    ));
    assert_eq!(hold.approvers_text(), "1 of group `leads`");
    assert_eq!(hold.ttl_seconds, 600);
    assert_eq!(hold.needs.len(), 1);
    assert_eq!(hold.needs[0].rule, "support_reads");
    assert!(matches!(hold.then, Verdict::Rewrite(_)), "{:?}", hold.then);
    // Statements not touching pci are not held.
    assert!(matches!(
        decide(&e, support, "SELECT email FROM customers"),
        Verdict::Forward | Verdict::Rewrite(_)
    ));
}

fn held(v: Verdict) -> clsf_compiler::engine::Hold {
    match v {
        Verdict::Hold(h) => *h,
        other => panic!("expected a hold, got {other:?}"),
    }
}

#[test]
fn writes_need_the_write_action_on_the_written_table() {
    let e = engine();
    assert_eq!(
        decide(&e, ci(), "UPDATE orders SET status = 'x' WHERE id = 10"),
        Verdict::Forward
    );
    let msg = denied(decide(&e, ci(), "UPDATE customers SET id = 5 WHERE id = 4"));
    assert!(msg.contains("writing") && msg.contains("write"), "{msg}");
    let leads = json!({"team": "leads"});
    assert_eq!(
        decide(&e, leads.clone(), "CREATE TABLE t (x int)"),
        Verdict::Forward
    );
    let msg = denied(decide(&e, ci(), "CREATE TABLE t (x int)"));
    assert!(msg.contains("ddl"), "{msg}");
}

#[test]
fn function_rules_allow_and_deny_by_name() {
    let e = engine();
    let msg = denied(decide(&e, ci(), "SELECT pg_sleep(1)"));
    assert!(msg.contains("pg_sleep"), "{msg}");
    assert_eq!(decide(&e, ci(), "SELECT md5('x')"), Verdict::Forward);
}

#[test]
fn row_limits_are_reported_for_the_proxy_to_enforce() {
    let e = engine();
    let pod = json!({"kubernetes.io": {"namespace": "batch"}});
    let identity = Identity {
        subject: "t".into(),
        groups: groups_for(e.plan(), &pod),
    };
    let access = e.access_for(&identity);
    let d = e.decide_with_claims(&access, Some(&pod), "SELECT status FROM orders");
    assert!(matches!(d.verdict, Verdict::Rewrite(_)), "{:?}", d.verdict);
    assert_eq!(
        d.statements[0].row_limit,
        Some((100, "k8s_reads".to_owned()))
    );
    // In a subquery too: the limit is on the statement's result.
    let d = e.decide_with_claims(
        &access,
        Some(&pod),
        "SELECT 1 WHERE EXISTS (SELECT 1 FROM orders)",
    );
    assert_eq!(
        d.statements[0].row_limit,
        Some((100, "k8s_reads".to_owned()))
    );
}

#[test]
fn observe_only_rules_record_without_denying() {
    let e = engine();
    let trial = json!({"team": "trial"});
    let identity = Identity {
        subject: "t".into(),
        groups: groups_for(e.plan(), &trial),
    };
    let access = e.access_for(&identity);
    let d = e.decide_with_claims(&access, Some(&trial), "SELECT email, id FROM customers");
    // The rewrite (email in clear) is in engine_cases/rules.sql; here, what
    // is recorded.
    assert!(matches!(d.verdict, Verdict::Rewrite(_)), "{:?}", d.verdict);
    assert_eq!(d.statements[0].observed, ["deny public.customers.email"]);
    // A relation nothing withholds is observed too.
    let d = e.decide_with_claims(&access, Some(&trial), "SELECT status FROM orders");
    assert_eq!(d.verdict, Verdict::Forward);
    assert_eq!(d.statements[0].observed, ["deny public.orders.status"]);
    assert_eq!(d.statements[0].columns[0].column, "public.orders.status");
    assert_eq!(d.statements[0].columns[0].access, "clear");
}

fn catalog_engine(with_module: bool) -> Engine {
    let text = format!(
        "{}\ngroup ci {{ claim sub == \"ci\" }}\nrule r for ci {{\n  allow <= internal\n  mask  confidential\n}}\n",
        if with_module {
            "use std::postgres-catalog"
        } else {
            "use std::labels"
        }
    );
    let mut parsed = Parsed::default();
    policy::add_source(&mut parsed, "p.clsf", &text);
    policy::resolve_imports(&mut parsed);
    let (plan, diags) = resolve::compile(&parsed, &quickstart_schema());
    assert!(
        plan.is_some(),
        "{}",
        clsf_lang::render(&diags, &parsed.sources, false)
    );
    Engine::new(plan.unwrap()).unwrap()
}

#[test]
fn classified_catalog_relations_are_decided_column_by_column() {
    let e = catalog_engine(true);
    let ci = json!({"sub": "ci"});
    let out = rewritten(decide(
        &e,
        ci.clone(),
        "SELECT attname, null_frac FROM pg_stats",
    ));
    assert!(
        out.contains("CAST(NULL AS text) AS \"most_common_vals\"")
            && out.contains("FROM \"pg_catalog\".\"pg_stats\""),
        "{out}"
    );
    let msg = denied(decide(
        &e,
        ci.clone(),
        "SELECT most_common_vals FROM pg_catalog.pg_stats",
    ));
    assert!(
        msg.contains("most_common_vals") && msg.contains("restricted"),
        "{msg}"
    );
    let msg = denied(decide(&e, ci.clone(), "SELECT query FROM pg_stat_activity"));
    assert!(msg.contains("`query`"), "{msg}");
    // Catalog relations the module does not model stay refused whole.
    let msg = denied(decide(&e, ci, "SELECT * FROM pg_authid"));
    assert!(msg.contains("pg_authid"), "{msg}");
}

#[test]
fn unclassified_catalog_relations_are_refused_whole() {
    let e = catalog_engine(false);
    let msg = denied(decide(
        &e,
        json!({"sub": "ci"}),
        "SELECT attname FROM pg_stats",
    ));
    assert!(msg.contains("catalog relation `pg_stats`"), "{msg}");
}

#[test]
fn generated_cedar_for_every_rule_kind_reads_like_the_policy() {
    let e = engine();
    insta::assert_snapshot!(clsf_compiler::cedar::policies_text(e.generated()));
}

#[test]
fn repeated_statements_reuse_their_decision_but_row_filters_depend_on_claims() {
    let e = engine();
    let claims = ci();
    let identity = Identity {
        subject: "t".into(),
        groups: groups_for(e.plan(), &claims),
    };
    let access = e.access_for(&identity);
    let sql = "SELECT name, card_number FROM customers";
    let first = e.decide_with_claims(&access, Some(&claims), sql);
    assert_eq!(access.decisions.len(), 1);
    assert_eq!(e.decide_with_claims(&access, Some(&claims), sql), first);
    assert_eq!(access.decisions.len(), 1);

    // The support group has a row filter bound to a claim: never cached.
    let one = json!({"team": "support", "customer": 1});
    let two = json!({"team": "support", "customer": 2});
    let support = e.access_for(&Identity {
        subject: "s".into(),
        groups: groups_for(e.plan(), &one),
    });
    let a = rewritten(
        e.decide_with_claims(&support, Some(&one), "SELECT id FROM orders")
            .verdict,
    );
    let b = rewritten(
        e.decide_with_claims(&support, Some(&two), "SELECT id FROM orders")
            .verdict,
    );
    assert!(
        a.contains("customer_id = '1'") && b.contains("customer_id = '2'"),
        "{a}\n{b}"
    );
    assert!(support.decisions.is_empty());
}

fn k8s() -> serde_json::Value {
    json!({"kubernetes.io": {"namespace": "batch"}})
}

#[test]
fn a_deny_wins_over_a_usage_grant_and_renamed_columns_are_still_refused() {
    let e = engine();
    let msg = denied(decide(
        &e,
        ci(),
        "SELECT c.id FROM customers c JOIN customers d ON c.ssn = d.ssn",
    ));
    assert!(
        msg.contains("column `ssn`") && msg.contains("(joined)"),
        "{msg}"
    );
    // A column alias list renames ssn to s: the resolver follows it.
    let msg = denied(decide(&e, ci(), "SELECT s FROM customers AS c(a, b, e, s)"));
    assert!(
        msg.contains("column `ssn`") && msg.contains("(projected)"),
        "{msg}"
    );
}

#[test]
fn usage_actions_stand_alone_and_are_never_approved() {
    let policy = r#"
use std::labels
group g { claim team == "x" }
group leads { claim team == "leads" }
rule r for g {
  allow read, join column public.customers.id
  require approval join column public.customers.email by leads
}
"#;
    let mut parsed = Parsed::default();
    policy::add_source(&mut parsed, "usage.clsf", policy);
    policy::resolve_imports(&mut parsed);
    let (_, diags) = resolve::compile(&parsed, &quickstart_schema());
    let text = clsf_lang::render(&diags, &parsed.sources, false);
    let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert!(messages.contains(&"usage actions (`join`, `filter`, `group`, `order`, `aggregate`) beside other actions does not apply here"), "{text}");
    assert!(
        messages.contains(&"approval of a usage action does not apply here"),
        "{text}"
    );
    assert_eq!(diags.iter().filter(|d| d.is_error()).count(), 2, "{text}");
}

/// The engine's views for tools that describe the policy to its subject
/// (the MCP front door): each column's access in words, the row filter and
/// limit in force, and only readable relations listed.
#[test]
fn views_say_what_each_column_is_for_the_identity() {
    use clsf_compiler::engine::ColumnAccess;
    let e = engine();
    let as_group = |claims: serde_json::Value| {
        e.access_for(&Identity {
            subject: "t".into(),
            groups: groups_for(e.plan(), &claims),
        })
    };
    let parse = |sql: &str| {
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    };
    let k8s_access = as_group(k8s());
    // Nothing of customers is readable for k8s (its columns are above
    // public), so it is not listed, but a statement naming it says why.
    assert!(e.readable_relation(&k8s_access, "customers").is_none());
    let customers = e
        .relations_named(&k8s_access, &parse("SELECT 1 FROM customers"), "")
        .remove(0);
    assert!(!customers.readable);
    let access_of = |view: &clsf_compiler::engine::RelationView, column: &str| {
        view.columns
            .iter()
            .find(|c| c.name == column)
            .unwrap_or_else(|| panic!("no column {column}"))
            .access
            .clone()
    };
    assert_eq!(
        access_of(&customers, "id"),
        ColumnAccess::UsageOnly(vec!["join", "filter"])
    );
    assert_eq!(
        access_of(&customers, "id").to_string(),
        "usage only (join, filter; never returned)"
    );
    assert_eq!(access_of(&customers, "ssn"), ColumnAccess::Denied);
    let orders = e
        .readable_relation(&k8s_access, "\"public\".orders")
        .expect("orders");
    assert_eq!(orders.row_limit, Some((100, "k8s_reads".to_owned())));
    assert_eq!(
        access_of(&orders, "total_cents").to_string(),
        "usage only (aggregate; never returned)"
    );
    assert!(!k8s_access.may_write());

    let support = as_group(json!({"team": "support", "customer": "7"}));
    let customers = e
        .readable_relation(&support, "customers")
        .expect("customers");
    assert_eq!(
        access_of(&customers, "card_number").to_string(),
        "needs approval (by leads)"
    );
    assert_eq!(access_of(&customers, "email"), ColumnAccess::Clear);
    assert!(
        matches!(access_of(&customers, "name"), ColumnAccess::Masked(m) if m.starts_with("hash"))
    );
    let orders = e.readable_relation(&support, "orders").expect("orders");
    assert_eq!(
        orders.row_filters,
        vec!["customer_id = {claim.customer}".to_owned()]
    );

    // An identity with no groups reads nothing: no relation is listed, and a
    // named one looks the same as a missing one.
    let nobody = as_group(json!({}));
    assert!(e.readable_relations(&nobody).is_empty());
    assert!(e.readable_relation(&nobody, "customers").is_none());
    assert!(e.readable_relation(&support, "no_such_table").is_none());
    // The relations a statement names, readable or not, each once.
    let stmt = parse(
        "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id JOIN customers d ON true",
    );
    let named: Vec<String> = e
        .relations_named(&nobody, &stmt, "")
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(named, ["public.customers", "public.orders"]);
}

#[test]
fn an_engine_prints_no_trace_of_its_hash_key() {
    let e = engine();
    let printed = format!("{e:?}");
    let [(_, ipad), (_, opad)] = e.hash_settings();
    assert!(
        !printed.contains("k3y") && !printed.contains(&ipad) && !printed.contains(&opad),
        "{printed}"
    );
}
