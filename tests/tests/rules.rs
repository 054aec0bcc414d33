//! The language's rule kinds through the real proxy with psql: a row filter
//! bound to a token claim, the write action, a denied function, and an
//! observe-only rule recorded in the audit trail but not enforced.

use clsf_tests::fixture;
use clsf_tests::proxy::{Proxy, write_config};
use clsf_tests::psql;
use serde_json::json;

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group tenant { claim team == "tenant" }
group trial { claim team == "trial" }
group analyst { claim team == "analyst" }

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential mask last(4)
  ssn:         restricted
}
table public.orders: internal

rule tenant_reads for tenant {
  allow <= internal
  mask  confidential
  // One condition of four operators, dearer than the attacks' predicates
  // below (PostgreSQL orders a scan's conditions by cost).
  filter table public.orders where "customer_id = {claim.customer} OR (status = 'public' AND total_cents > 0)"
  deny  function pg_sleep
}

rule analyst_reads for analyst {
  allow <= internal
  mask  confidential with hash
}

rule trial_watch for trial observe {
  deny confidential
}
rule trial_reads for trial {
  allow <= confidential
}
"#;

fn rows(out: &psql::PsqlRun) -> Vec<&str> {
    out.stdout.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn filters_writes_functions_and_observe_only_rules_through_the_proxy() {
    let q = fixture::quickstart(None);
    let policy = q.dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::write(policy.join("p.clsf"), POLICY).unwrap();
    let audit = q.dir.path().join("audit.jsonl");
    let config = write_config(q.dir.path(), &q.pg, &q.issuer, &policy, &q.lock, &audit);
    std::fs::write(q.dir.path().join("hash.key"), "0123456789abcdef-test\n").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[policy]\n", "[policy]\nhash_key_file = \"hash.key\"\n"),
    )
    .unwrap();
    let proxy = Proxy::start(&config);

    let tenant = |customer: serde_json::Value| {
        q.issuer.sign(
            &q.issuer
                .claims("t", json!({"team": "tenant", "customer": customer})),
        )
    };
    // Customer 1 has orders 10 and 11; a quote in the claim stays a literal.
    let out = psql::run(
        proxy.addr,
        &tenant(json!(1)),
        "SELECT id FROM orders ORDER BY id;",
    );
    assert_eq!(rows(&out), ["10", "11"], "{}", out.stderr);
    let out = psql::run(
        proxy.addr,
        &tenant(json!("1' OR '1'='1")),
        "SELECT count(*) FROM orders;",
    );
    assert!(
        out.stderr.contains("invalid input syntax for type integer"),
        "the claim must reach PostgreSQL as one literal: {}{}",
        out.stdout,
        out.stderr
    );
    let out = psql::run(
        proxy.addr,
        &q.issuer
            .sign(&q.issuer.claims("t", json!({"team": "tenant"}))),
        "SELECT count(*) FROM orders;",
    );
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("claim `customer`"),
        "{}",
        out.stderr
    );

    // Rows outside the filter cannot be reached by the client's own
    // predicates: a cast that fails on a value would name it, a division
    // by zero would tell it exists. Customer 1's rows hold no 'cancelled' status, no
    // total of 9900 and no customer 3.
    for attack in [
        "SELECT id FROM orders WHERE CAST(status || ':' || total_cents AS int) = 0;",
        "SELECT id FROM orders WHERE 1 / (total_cents - 9900) = 0;",
        "SELECT id FROM orders WHERE total_cents / (total_cents - 9900) = 0;",
        "SELECT id FROM orders WHERE CAST(status AS int) = 0 OR id = 10;",
        "SELECT id FROM orders WHERE CAST(customer_id::text || 'x' AS int) = 0 OR id = 10;",
        "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id \
         WHERE 1 / (o.customer_id - 3) = 0 ORDER BY 1;",
        "SELECT id FROM orders WHERE CASE WHEN status = 'cancelled' THEN 1 / (total_cents - total_cents) ELSE 0 END = 0 ORDER BY 1;",
        // Cheaper than the filter (a cast through text costs 2, the filter
        // 3): without a barrier PostgreSQL runs these first on order 13.
        "SELECT id FROM orders WHERE id = 13 AND status::bool;",
        "SELECT id FROM orders WHERE id = 13 AND (1 / (total_cents - 9900))::bool;",
        "SELECT o.id FROM orders o WHERE o.id = 13 AND o.status::bool;",
        "SELECT c.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id = 13 AND o.status::bool;",
        // A CTE named like the table reads the filtered table inside its
        // definition; outside, the CTE is all there is.
        "WITH orders AS (SELECT * FROM orders) SELECT id FROM orders WHERE 1 / (total_cents - 9900) = 0;",
    ] {
        let out = psql::run(proxy.addr, &tenant(json!(1)), attack);
        for hidden in ["cancelled", "9900", "3x", "division by zero"] {
            assert!(
                !out.stderr.contains(hidden) && !out.stdout.contains(hidden),
                "{attack} reveals a hidden row ({hidden}):\n{}{}",
                out.stdout,
                out.stderr
            );
        }
        for id in ["12", "13"] {
            assert!(!rows(&out).contains(&id), "{attack}: {}", out.stdout);
        }
    }
    // The ones that do not fail on customer 1's own rows still answer.
    let out = psql::run(
        proxy.addr,
        &tenant(json!(1)),
        "SELECT id FROM orders WHERE CASE WHEN status = 'cancelled' THEN 1 / (total_cents - total_cents) ELSE 0 END = 0 ORDER BY 1;",
    );
    assert_eq!(rows(&out), ["10", "11"], "{}", out.stderr);
    // dbt's import CTEs (a CTE named like the table it selects from): the
    // name binds by scope, so this reads the filtered table (refused
    // before, when CTE names were matched statement-wide).
    let out = psql::run(
        proxy.addr,
        &tenant(json!(1)),
        "WITH orders AS (SELECT * FROM orders) SELECT id FROM orders ORDER BY 1;",
    );
    assert_eq!(rows(&out), ["10", "11"], "{}", out.stderr);

    // The barrier keeps indexes: with enough rows for the planner to
    // prefer it, a point query on the filtered table is an index scan
    // (the client's leakproof `id = …` is copied beside the filter).
    q.pg.superuser_sql(
        "shop",
        "INSERT INTO orders SELECT g, 2, g, 'shipped' FROM generate_series(100, 20099) g; ANALYZE orders;",
    );
    for (point, visible) in [
        ("SELECT id FROM orders WHERE id = 11;", "11"),
        ("SELECT id FROM orders WHERE id = 5000;", ""),
    ] {
        let out = psql::run(proxy.addr, &tenant(json!(1)), &format!("EXPLAIN {point}"));
        assert!(
            out.stdout.contains("Index Cond: (id = "),
            "{point} does not use the primary key through the filter:\n{}{}",
            out.stdout,
            out.stderr
        );
        let out = psql::run(proxy.addr, &tenant(json!(1)), point);
        assert_eq!(rows(&out).join(""), visible, "{point}: {}", out.stderr);
    }

    // No rule grants `write`: the update is refused and nothing changes,
    // also behind a CTE of the table's name (a write's target is never a
    // CTE; the proxy once took it for one and forwarded the update).
    let refuses_write = |token: &str, sql: &str| {
        let out = psql::run(proxy.addr, token, sql);
        assert!(
            out.stderr.contains("42501") && out.stderr.contains("write"),
            "{sql}: {}",
            out.stderr
        );
    };
    for update in [
        "UPDATE orders SET status = 'x' WHERE id = 10;",
        "WITH orders AS (SELECT 1) UPDATE orders SET status = 'x' WHERE id = 10;",
        "WITH orders AS (SELECT 1), d AS (UPDATE orders SET status = 'x' WHERE id = 10 RETURNING id) SELECT * FROM d;",
    ] {
        refuses_write(&tenant(json!(1)), update);
    }
    assert_eq!(
        q.pg.superuser_sql("shop", "SELECT status FROM orders WHERE id = 10")
            .trim(),
        "shipped"
    );
    let out = psql::run(proxy.addr, &tenant(json!(1)), "SELECT pg_sleep(0);");
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("pg_sleep"),
        "{}",
        out.stderr
    );

    // `hash` uses the configured key: the value PostgreSQL computes from
    // the key and the clear value, never the clear value itself.
    let analyst = q
        .issuer
        .sign(&q.issuer.claims("a", json!({"team": "analyst"})));
    let out = psql::run(
        proxy.addr,
        &analyst,
        "SELECT email FROM customers WHERE id = 1;",
    );
    // pgcrypto's HMAC is the independent reference.
    let expected = q.pg.superuser_sql(
        "shop",
        "CREATE EXTENSION IF NOT EXISTS pgcrypto; \
         SELECT encode(hmac('ada@example.com', '0123456789abcdef-test', 'sha256'), 'hex')",
    );
    assert_eq!(rows(&out), [expected.trim()], "{}", out.stderr);
    // The analyst reads orders in clear but no rule lets it write: an
    // INSERT in a query's body or in a CTE is refused like a plain one
    // (an INSERT's target is no FROM entry; the proxy once forwarded these).
    for insert in [
        "WITH x AS (SELECT 1) INSERT INTO orders VALUES (99999, 1, 1, 'x');",
        "WITH x AS (INSERT INTO orders VALUES (99999, 1, 1, 'x') RETURNING id) SELECT * FROM x;",
    ] {
        refuses_write(&analyst, insert);
    }
    assert_eq!(
        q.pg.superuser_sql("shop", "SELECT count(*) FROM orders WHERE id = 99999")
            .trim(),
        "0"
    );

    // Observe-only: trial reads e-mail in clear; the audit trail records
    // that the observed rule would have denied it.
    let trial = q
        .issuer
        .sign(&q.issuer.claims("trial", json!({"team": "trial"})));
    let out = psql::run(
        proxy.addr,
        &trial,
        "SELECT email FROM customers WHERE id = 1;",
    );
    assert_eq!(rows(&out), ["ada@example.com"], "{}", out.stderr);
    let observed: Vec<serde_json::Value> = proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["subject"] == "trial" && e["event"] == "statement")
        .collect();
    assert_eq!(observed.len(), 1, "{observed:?}");
    assert_eq!(
        observed[0]["observed"],
        json!(["deny public.customers.email"])
    );
    assert_eq!(observed[0]["decision"], "allow");
}
