//! `clsfc explain` says what the proxy does: for the same identity and the
//! same statements, the decision, masked columns and Cedar policies that
//! `clsfc explain --format json` prints equal those in the proxy's audit
//! trail, and every statement explain refuses the proxy refuses.

use std::process::Command;

use clsf_tests::bins::{bin, repo_root};
use clsf_tests::fixture;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;
use serde_json::Value;

const STATEMENTS: &[&str] = &[
    "SELECT 1",
    "SELECT id, name FROM customers ORDER BY id",
    "SELECT email FROM customers WHERE id = 1",
    "SELECT card_number FROM customers",
    "SELECT ssn FROM customers",
    "SELECT * FROM customers",
    "SELECT c.email, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id",
    "SELECT count(*) FROM customers WHERE email LIKE 'ada%'",
    "SELECT upper(email) FROM customers",
    "SELECT email FROM (SELECT email FROM customers) s",
    "WITH x AS (SELECT email FROM customers) SELECT * FROM x",
    "SELECT status, total_cents FROM orders",
    "SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE name LIKE 'A%')",
    "SELECT customers FROM customers",
    "SELECT pg_sleep(0)",
    "SELECT * FROM pg_stats",
    "SELECT name FROM customers UNION SELECT email FROM customers",
    "UPDATE orders SET status = status WHERE id = 10",
    "UPDATE customers SET name = name WHERE id = 1",
    "DELETE FROM orders WHERE id = -1",
    "CREATE TABLE t_explain (x int)",
    "SET search_path = public",
    "SHOW server_version",
    "SELECT email FROM customers WHERE ssn = '123-45-6789'",
];

fn explain(q: &fixture::Quickstart, claims: &Value, sql: &str) -> Value {
    let identity = q.dir.path().join("claims.json");
    std::fs::write(&identity, claims.to_string()).unwrap();
    let out = Command::new(bin("clsfc"))
        .args(["explain", "--format", "json", "--sql", sql, "--policy"])
        .arg(fixture::quickstart_policy())
        .arg("--schema")
        .arg(&q.lock)
        .arg("--identity")
        .arg(&identity)
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn policy_ids(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|p| p["id"].as_str().or(p.as_str()).unwrap_or("").to_owned())
        .collect()
}

#[test]
fn explain_matches_the_proxy_on_the_same_statements() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let claims = q.issuer.claims(
        "repo:acme/shop:ref:refs/heads/main",
        serde_json::json!({ "repository": "acme/shop" }),
    );
    let token = q.issuer.sign(&claims);
    for (i, sql) in STATEMENTS.iter().enumerate() {
        let explained = explain(&q, &claims, sql);
        let before = proxy.audit_events().len();
        let run = psql::run(proxy.addr, &token, &format!("{sql};"));
        let refused = run.stderr.contains("ERROR");
        assert_eq!(
            explained["verdict"] == "deny",
            refused,
            "statement {i} `{sql}`: explain says {}, proxy said {}{}",
            explained["verdict"],
            run.stdout,
            run.stderr
        );
        let events: Vec<Value> = proxy
            .audit_events()
            .into_iter()
            .skip(before)
            .filter(|e| e["event"] == "statement")
            .collect();
        assert_eq!(events.len(), 1, "`{sql}`: {events:?}");
        let audited = &events[0];
        let stmt = &explained["statements"][0];
        assert_eq!(audited["decision"], stmt["decision"], "`{sql}`");
        assert_eq!(
            audited["masked"].as_array().cloned().unwrap_or_default(),
            stmt["masked"].as_array().cloned().unwrap_or_default(),
            "`{sql}`"
        );
        assert_eq!(
            policy_ids(&audited["policies"]),
            policy_ids(&stmt["policies"]),
            "`{sql}`"
        );
    }
}

/// `explain` names how a statement uses each column it touches.
#[test]
fn explain_reports_usage_classes() {
    let q = fixture::quickstart(None);
    let claims = q.issuer.claims(
        "repo:acme/shop:ref:refs/heads/main",
        serde_json::json!({ "repository": "acme/shop" }),
    );
    let usages = |sql: &str| -> Vec<String> {
        let v = explain(&q, &claims, sql);
        v["statements"][0]["usages"]
            .as_array()
            .unwrap_or_else(|| panic!("no usages for `{sql}`: {v}"))
            .iter()
            .map(|u| {
                let how: Vec<&str> = u["usages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                format!("{}: {}", u["column"].as_str().unwrap(), how.join(" "))
            })
            .collect()
    };
    assert_eq!(
        usages(
            "SELECT c.name, count(o.id) FROM customers c JOIN orders o ON o.customer_id = c.id \
             WHERE c.email LIKE '%x' GROUP BY c.name ORDER BY c.name"
        ),
        [
            "public.customers.id: joined",
            "public.customers.name: projected grouped ordered",
            "public.customers.email: filtered",
            "public.orders.id: aggregated",
            "public.orders.customer_id: joined",
        ]
    );
    assert_eq!(
        usages("UPDATE orders SET status = 'x' WHERE id = 10 RETURNING total_cents"),
        [
            "public.orders.id: filtered",
            "public.orders.total_cents: returned",
            "public.orders.status: written",
        ]
    );
    // What the resolver does not follow is said, not guessed.
    let v = explain(&q, &claims, "SHOW server_version");
    assert!(v["statements"][0]["usages"].is_null());
    assert!(v["statements"][0]["usages_unresolved"].is_string(), "{v}");
}
