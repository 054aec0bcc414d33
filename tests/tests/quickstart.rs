//! The walking skeleton end to end: the quickstart policy, a real
//! PostgreSQL, the proxy, real signed tokens and the real psql.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use clsf_tests::bins::{bin, repo_root};
use clsf_tests::fixture;
use clsf_tests::identity::Issuer;
use clsf_tests::postgres::{GATEWAY_ROLE, Postgres};
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;
use serde_json::json;

struct Setup {
    pg: Postgres,
    issuer: Issuer,
    proxy: Proxy,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    Setup {
        pg: q.pg,
        issuer: q.issuer,
        proxy,
        _dir: q.dir,
    }
}

fn rows(out: &psql::PsqlRun) -> Vec<&str> {
    out.stdout.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn ci_reads_masked_values_through_every_path() {
    let s = setup();
    let token = s.issuer.ci_token();
    let out = psql::run(
        s.proxy.addr,
        &token,
        "SELECT email, card_number FROM customers ORDER BY id;\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        rows(&out),
        vec![
            "****@example.com|************1111",
            "****@turing.org|************0004",
            "****@navy.mil|***********0009",
            "****@tue.nl|************0004",
        ]
    );

    // Expressions, subqueries, predicates and whole-row references see only
    // masked values: the clear addresses never come back, and a predicate on
    // the clear value matches nothing.
    let probes = "\
SELECT upper(email) FROM customers;
SELECT x FROM (SELECT email AS x FROM customers) s;
SELECT count(*) FROM customers WHERE email = 'ada@example.com';
SELECT count(*) FROM customers WHERE email LIKE 'a%';
SELECT email FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.id = 10;
SELECT row_to_json(t) FROM (SELECT id, email FROM customers) t;
";
    let out = psql::run(s.proxy.addr, &token, probes);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for clear in [
        "ada@",
        "alan@",
        "grace@",
        "edsger@",
        "ADA@",
        "4111111111111111",
    ] {
        assert!(
            !out.stdout.contains(clear),
            "clear value {clear} leaked:\n{}",
            out.stdout
        );
    }
    let lines = rows(&out);
    assert!(lines.contains(&"****@EXAMPLE.COM"), "{lines:?}");
    assert!(lines.contains(&"****@navy.mil"), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| **l == "0").count(),
        2,
        "predicates on clear values must match nothing: {lines:?}"
    );
    assert!(
        lines.contains(&"{\"id\":1,\"email\":\"****@example.com\"}"),
        "{lines:?}"
    );
}

#[test]
fn ci_denied_column_is_refused_and_the_session_goes_on() {
    let s = setup();
    let token = s.issuer.ci_token();
    let script = "\
SELECT ssn FROM customers;
SELECT * FROM customers;
SELECT * FROM customers WHERE email LIKE 'a%';
SELECT c FROM customers c;
SELECT 'still here' AS alive;
";
    let out = psql::run(s.proxy.addr, &token, script);
    // psql exits 0 when the last statement succeeded; errors go to stderr.
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(rows(&out), vec!["still here"], "{}", out.stderr);
    let denials: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("psql:<stdin>"))
        .collect();
    assert_eq!(denials.len(), 4, "{}", out.stderr);
    for d in &denials {
        assert!(d.contains("42501"), "{d}");
        assert!(d.contains("`ssn`"), "{d}");
        assert!(d.contains("`restricted`"), "{d}");
        assert!(d.contains("ci_reads"), "{d}");
    }
    assert!(!out.stderr.contains("123-45-6789"), "{}", out.stderr);
}

#[test]
fn a_denial_inside_a_transaction_fails_it_as_postgres_would() {
    let s = setup();
    let token = s.issuer.ci_token();
    let script = "\
BEGIN;
UPDATE orders SET status = 'changed' WHERE id = 10;
SELECT ssn FROM customers;
SELECT 1;
COMMIT;
SELECT status FROM orders WHERE id = 10;
";
    let out = psql::run(s.proxy.addr, &token, script);
    assert!(out.stderr.contains("42501"), "{}", out.stderr);
    assert!(
        out.stderr.contains("25P02"),
        "the transaction must be aborted: {}",
        out.stderr
    );
    assert_eq!(
        rows(&out).last(),
        Some(&"shipped"),
        "the update must be rolled back: {}",
        out.stdout
    );
}

#[test]
fn dba_bot_reads_clear_and_unprotected_statements_pass_byte_identical() {
    let s = setup();
    let out = psql::run(
        s.proxy.addr,
        &s.issuer.dba_token(),
        "SELECT email, ssn FROM customers WHERE id = 1;\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(rows(&out), vec!["ada@example.com|123-45-6789"]);

    let unprotected = "SELECT status,  total_cents FROM orders WHERE id = 10 /* marker-7f3a */";
    let out = psql::run(
        s.proxy.addr,
        &s.issuer.ci_token(),
        &format!("{unprotected};\n"),
    );
    assert_eq!(rows(&out), vec!["shipped|1999"], "{}", out.stderr);
    let masked = "SELECT email FROM customers WHERE id = 2 /* marker-91bc */";
    let out = psql::run(s.proxy.addr, &s.issuer.ci_token(), &format!("{masked};\n"));
    assert_eq!(rows(&out), vec!["****@turing.org"], "{}", out.stderr);

    let log = s.pg.log();
    assert!(
        log.contains(&format!("statement: {unprotected};")),
        "the upstream must see the exact bytes:\n{log}"
    );
    assert!(
        !log.contains(&format!("statement: {masked};")),
        "a masked statement must not reach upstream as written"
    );
    assert!(
        log.contains("statement: SELECT email FROM (SELECT \"id\""),
        "{log}"
    );
}

#[test]
fn bad_tokens_are_refused_and_upstream_never_sees_a_connection() {
    let s = setup();
    let other = Issuer::new("test-key"); // same kid, different key
    let good = s.issuer.claims("ci", json!({ "repository": "acme/shop" }));
    let mut expired = good.clone();
    expired["exp"] = json!(good["iat"].as_i64().unwrap() - 3600);
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("someone-else");
    let log_before = s.pg.log().len();
    let cases = [
        (s.issuer.sign(&expired), "token has expired"),
        (s.issuer.sign(&wrong_iss), "token issuer is not trusted"),
        (
            s.issuer.sign(&wrong_aud),
            "token audience is not this proxy",
        ),
        (other.sign(&good), "token signature is invalid"),
        ("not-a-jwt".to_owned(), "not a well-formed JWT"),
    ];
    for (token, expected) in &cases {
        let out = psql::run(s.proxy.addr, token, "SELECT 1;\n");
        assert_eq!(out.code, 2, "{expected}: {}", out.stderr);
        assert!(
            out.stderr.contains(expected),
            "expected `{expected}` in: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("28000") || out.stderr.contains("authentication failed"),
            "{}",
            out.stderr
        );
    }
    let authorized = format!("connection authorized: user={GATEWAY_ROLE}");
    let log_after = s.pg.log()[log_before..].to_owned();
    assert!(
        !log_after.contains(&authorized),
        "upstream saw a connection:\n{log_after}"
    );
    let active = s.pg.superuser_sql(
        "postgres",
        &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{GATEWAY_ROLE}'"),
    );
    assert_eq!(active.trim(), "0");
    let failures = s
        .proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "auth_failed")
        .count();
    assert_eq!(failures, cases.len());

    // Positive control: a good token does reach upstream.
    let out = psql::run(s.proxy.addr, &s.issuer.sign(&good), "SELECT 1;\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(s.pg.log()[log_before..].contains(&authorized));
}

#[test]
fn rs256_tokens_are_accepted() {
    let q = fixture::quickstart_with(
        Issuer::with_alg(clsf_runtime::keys::KeyAlg::Rs256, "rsa-key"),
        None,
    );
    let proxy = Proxy::start(&q.config);
    let out = psql::run(
        proxy.addr,
        &q.issuer.ci_token(),
        "SELECT card_number FROM customers WHERE id = 1;\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(rows(&out), vec!["************1111"]);
}

#[test]
fn every_statement_is_audited_before_it_is_forwarded() {
    let s = setup();
    let out = psql::run(
        s.proxy.addr,
        &s.issuer.ci_token(),
        "SELECT email FROM customers;\nSELECT ssn FROM customers;\nSELECT 1; SELECT 2;\n",
    );
    assert!(out.stderr.contains("42501"));
    let statements: Vec<serde_json::Value> = s
        .proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["event"] == "statement")
        .collect();
    let summary: Vec<(String, String)> = statements
        .iter()
        .map(|e| {
            (
                e["statement"].as_str().unwrap().to_owned(),
                e["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("SELECT email FROM customers;".to_owned(), "mask".to_owned()),
            ("SELECT ssn FROM customers;".to_owned(), "deny".to_owned()),
            // psql splits at semicolons and sends each statement on its own.
            ("SELECT 1;".to_owned(), "allow".to_owned()),
            ("SELECT 2;".to_owned(), "allow".to_owned()),
        ]
    );
    assert_eq!(
        statements[0]["masked"],
        json!(["public.customers.email", "public.customers.card_number"])
    );
    assert!(
        statements[1]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "ci_reads.2"),
        "{}",
        statements[1]
    );
    // One read for both sides: the session's `disconnect` event may land
    // between two reads.
    let text = clsf_runtime::audit::read_text(&s.proxy.audit_path).unwrap();
    assert_eq!(clsf_runtime::audit::verify(&text), Ok(text.lines().count()));

    // Ordering: hold a lock upstream so a forwarded statement blocks, and
    // look at the audit file while it is running.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(&s.pg.gateway_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .simple_query("SELECT pg_advisory_lock(4242)")
            .await
            .unwrap();
        client
    });
    let addr = s.proxy.addr;
    let token = s.issuer.dba_token();
    let blocked = std::thread::spawn(move || {
        psql::run(
            addr,
            &token,
            "SELECT pg_advisory_lock(4242) /* audit-order */;\n",
        )
    });
    let running = s.pg.wait_for(Duration::from_secs(20), |pg| {
        pg.superuser_sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%audit-order%' AND wait_event_type = 'Lock'",
        )
        .trim()
            == "1"
    });
    assert!(running, "the statement never reached upstream");
    let audited = s.proxy.audit_events().iter().any(|e| {
        e["event"] == "statement"
            && e["statement"]
                .as_str()
                .unwrap_or("")
                .contains("audit-order")
    });
    runtime.block_on(async {
        holder
            .simple_query("SELECT pg_advisory_unlock(4242)")
            .await
            .unwrap()
    });
    let out = blocked.join().unwrap();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        audited,
        "the statement was running upstream before its audit event was written"
    );
}

#[test]
fn an_unwritable_audit_trail_refuses_connections() {
    let q = fixture::quickstart(Some(PathBuf::from("/dev/full")));
    let proxy = Proxy::start(&q.config);
    let out = psql::run(proxy.addr, &q.issuer.dba_token(), "SELECT 1;\n");
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("audit trail cannot be written"),
        "{}",
        out.stderr
    );
}

#[test]
fn schema_pull_is_deterministic_and_check_points_at_unknown_columns() {
    let q = fixture::quickstart(None);
    let dir = &q.dir;
    let (a, b) = (q.lock.clone(), dir.path().join("b.json"));
    fixture::pull_lock(&q.pg, &b);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // The committed lock the database-free tests use still matches schema.sql.
    let pulled =
        clsf_compiler::schema::lock::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    let committed = clsf_compiler::schema::lock::from_str(include_str!(
        "../../examples/quickstart/schema.lock.json"
    ))
    .unwrap();
    assert_eq!(pulled.relations, committed.relations);

    let good = Command::new(bin("clsfc"))
        .args(["--color", "never", "check"])
        .arg(repo_root().join("examples/quickstart/policy"))
        .arg("--schema")
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );

    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::write(
        policy.join("bad.clsf"),
        "labels public < internal < confidential < restricted\n\ntable public.customers {\n  emial: confidential mask redact\n}\n",
    )
    .unwrap();
    let bad = Command::new(bin("clsfc"))
        .args(["--color", "never", "check"])
        .arg(&policy)
        .arg("--schema")
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    insta::assert_snapshot!("check_unknown_column", String::from_utf8_lossy(&bad.stderr));

    let missing = Command::new(bin("clsfc"))
        .args(["check", "/nonexistent", "--schema"])
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn psql_catalog_commands_work_for_a_masked_identity() {
    let s = setup();
    let out = psql::run(
        s.proxy.addr,
        &s.issuer.ci_token(),
        "\\d customers\n\\dt\n\\dn\n\\l\n",
    );
    assert!(!out.stderr.contains("ERROR"), "{}", out.stderr);
    assert!(
        out.stdout.contains("card_number|character varying(19)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("public|orders|table"), "{}", out.stdout);
    // Catalogs that expose stored values stay closed.
    let out = psql::run(
        s.proxy.addr,
        &s.issuer.ci_token(),
        "SELECT most_common_vals FROM pg_stats;\nSELECT query FROM pg_stat_activity;\n",
    );
    assert_eq!(out.stderr.matches("42501").count(), 2, "{}", out.stderr);
}

#[test]
fn settings_that_decide_how_text_is_read_are_pinned_and_refused() {
    let s = setup();
    // Even if the database's defaults say otherwise, the proxy's sessions
    // read text as the engine does and resolve names in `public`.
    s.pg.superuser_sql(
        "postgres",
        "ALTER DATABASE shop SET standard_conforming_strings = off",
    );
    s.pg.superuser_sql(
        "postgres",
        "ALTER DATABASE shop SET search_path = pg_temp, other",
    );
    let script = "\
SHOW standard_conforming_strings;
SHOW search_path;
DISCARD ALL;
SHOW search_path;
SET standard_conforming_strings = off;
SET client_encoding = 'SJIS';
SET search_path = other;
SELECT 'a\\', ssn FROM customers -- ';
";
    let out = psql::run(s.proxy.addr, &s.issuer.ci_token(), script);
    assert_eq!(
        rows(&out),
        vec!["on", "public", "DISCARD ALL", "public"],
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.matches("42501").count(), 4, "{}", out.stderr);
    assert!(!out.stdout.contains("123-45"), "{}", out.stdout);
}

#[test]
fn notices_and_notifications_are_relayed() {
    let s = setup();
    let script = "\
DROP TABLE IF EXISTS no_such_table;
LISTEN clsf_channel;
NOTIFY clsf_channel, 'hello';
SELECT 'after' AS done;
";
    let out = psql::run(s.proxy.addr, &s.issuer.dba_token(), script);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("NOTICE") && out.stderr.contains("no_such_table"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("Asynchronous notification \"clsf_channel\" with payload \"hello\""),
        "{}",
        out.stdout
    );
}

/// `ci` writes orders and reads customers with email and card_number
/// masked: a write that picks its rows by a customer's name runs (as an
/// ORM's filter across a relation writes it), and so does one that returns
/// the customer it touched with its email masked (as PostgREST and Hasura
/// embed related rows); one that would compare a masked email in clear is
/// refused and changes nothing.
#[test]
fn ci_writes_orders_chosen_by_clear_columns_of_a_masked_table() {
    let s = setup();
    let token = s.issuer.ci_token();
    let script = "\
UPDATE orders SET status = 'held' WHERE customer_id IN (SELECT id FROM customers WHERE name = 'Ada Lovelace');
WITH u AS (UPDATE orders SET total_cents = total_cents + 1 WHERE id = 12 RETURNING customer_id) SELECT c.name, c.email FROM u JOIN customers c ON c.id = u.customer_id;
MERGE INTO orders o USING customers c ON o.customer_id = c.id AND c.name = 'Grace Hopper' WHEN MATCHED THEN UPDATE SET status = 'merged';
UPDATE orders SET status = 'guessed' FROM customers c WHERE c.id = orders.customer_id AND c.email = 'alan@turing.org';
INSERT INTO orders (id, customer_id, total_cents, status) SELECT 30, id, 1, email FROM customers WHERE id = 2;
";
    let out = psql::run(s.proxy.addr, &token, script);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&"UPDATE 2"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert_eq!(
        lines.get(1),
        Some(&"Alan Turing|****@turing.org"),
        "{}",
        out.stdout
    );
    let cents =
        s.pg.superuser_sql("shop", "SELECT total_cents FROM orders WHERE id = 12");
    assert_eq!(cents.trim(), "1251");
    assert_eq!(lines.get(2), Some(&"MERGE 1"), "{}", out.stdout);
    let denials: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("psql:<stdin>"))
        .collect();
    assert_eq!(denials.len(), 2, "{}", out.stderr);
    for d in &denials {
        assert!(d.contains("42501") && d.contains("column `email`"), "{d}");
    }
    let statuses = s.pg.superuser_sql(
        "shop",
        "SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM orders",
    );
    assert_eq!(
        statuses.trim(),
        "10:held,11:held,12:shipped,13:merged",
        "{}",
        out.stderr
    );
}
