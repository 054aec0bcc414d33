//! COPY through the proxy with psql: `COPY … TO STDOUT` (and psql's
//! `\copy`) is an export whose output is masked like a query's, for a
//! table or a query; a denied column stays refused; `COPY … FROM STDIN`
//! is a write the policy must allow; server-side files are refused. Each
//! masked output is checked against what the same COPY returns directly.

use clsf_tests::fixture;
use clsf_tests::psql;

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group ci {
  issuer "https://issuer.clsf.example"
  claim repository == "acme/shop"
}

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential mask last(4)
  ssn:         restricted
}
table public.orders: internal { status: public }

// Writes customers, whose e-mail it reads masked and whose ssn it may not
// read: a write there could answer questions about what it cannot see
// (a unique key's error, a trigger), so INSERT and COPY FROM are refused
// alike.
group loader {
  issuer "https://issuer.clsf.example"
  claim repository == "acme/loader"
}
rule loader_writes for loader {
  allow <= internal
  mask  confidential
  allow write table public.customers
}

rule ci_exports for ci {
  allow <= internal
  mask  confidential
  deny  restricted
  allow export <= confidential
  allow write table public.orders
}
"#;

#[test]
fn copy_out_is_masked_and_copy_in_is_a_write() {
    let q = fixture::quickstart(None);
    let proxy = fixture::proxy_with_policy(&q, POLICY);
    let token = q.issuer.ci_token();
    let run = |sql: &str| psql::run(proxy.addr, &token, sql);

    // The table form, with a column list (psql's \copy sends COPY … TO STDOUT).
    let out = run("\\copy customers (id, email, card_number) TO STDOUT\n");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "1\t****@example.com\t************1111",
            "2\t****@turing.org\t************0004",
            "3\t****@navy.mil\t***********0009",
            "4\t****@tue.nl\t************0004"
        ]
    );
    let direct =
        q.pg.superuser_sql("shop", "COPY customers (id, email, card_number) TO STDOUT");
    assert!(
        direct.contains("ada@example.com"),
        "leaks without the proxy: {direct}"
    );

    // The query form, with options.
    let out = run(
        "COPY (SELECT id, email FROM customers WHERE id = 1) TO STDOUT (FORMAT csv, HEADER);\n",
    );
    assert_eq!(
        out.stdout.trim(),
        "id,email\n1,****@example.com",
        "{}",
        out.stderr
    );

    // All columns includes the denied one: refused, nothing copied.
    let out = run("COPY customers TO STDOUT;\nSELECT 'after';\n");
    assert!(out.stderr.contains("42501"), "{}", out.stderr);
    assert!(out.stderr.contains("ssn"), "{}", out.stderr);
    assert!(!out.stdout.contains("123-45"), "{}", out.stdout);
    assert_eq!(out.stdout.trim(), "after");

    // A server-side file: refused before it reaches the server.
    let out = run("COPY (SELECT email FROM customers) TO '/tmp/clsf-copy-leak.txt';\n");
    assert!(out.stderr.contains("file or program"), "{}", out.stderr);
    assert!(!std::path::Path::new("/tmp/clsf-copy-leak.txt").exists());

    // COPY FROM STDIN into a table the rule lets it write.
    let out = run(
        "COPY orders (id, customer_id, total_cents, status) FROM STDIN;\n20\t4\t700\tpending\n21\t4\t800\tpending\n\\.\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let count =
        q.pg.superuser_sql("shop", "SELECT count(*) FROM orders WHERE customer_id = 4");
    assert_eq!(count.trim(), "2");
    // … and not into one it may not. (psql, like with a refusal from
    // PostgreSQL itself, then reads the data lines as SQL.)
    let out = run(
        "COPY customers (id, name, email, ssn, card_number) FROM STDIN;\n9\tx\tx@x\t000-00-0000\t1\n\\.\n",
    );
    assert!(out.stderr.contains("42501"), "{}", out.stderr);
    assert!(out.stderr.contains("writing column"), "{}", out.stderr);
    let count = q.pg.superuser_sql("shop", "SELECT count(*) FROM customers");
    assert_eq!(count.trim(), "4");

    // A write right on a table with withheld columns: COPY FROM is refused
    // like INSERT, and nothing is stored.
    let loader = q.issuer.sign(&q.issuer.claims(
        "repo:acme/loader:ref:refs/heads/main",
        serde_json::json!({ "repository": "acme/loader" }),
    ));
    for sql in [
        "COPY customers (id, name, email, ssn, card_number) FROM STDIN;\n1\tx\tx@x\t123-45-6789\t1\n\\.\n",
        "INSERT INTO customers (id, name, email, ssn, card_number) VALUES (1, 'x', 'x@x', '123-45-6789', '1');\n",
    ] {
        let out = psql::run(proxy.addr, &loader, sql);
        assert!(
            out.stderr.contains("42501") && out.stderr.contains("masked or denied columns"),
            "{sql}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("already exists"), "{}", out.stderr);
    }
    let count = q.pg.superuser_sql("shop", "SELECT count(*) FROM customers");
    assert_eq!(count.trim(), "4");

    // `COPY (INSERT … RETURNING …) TO STDOUT` writes: refused to the
    // loader, which may read orders but not write them (it was once let
    // through, the INSERT's target being no FROM entry), and run for ci,
    // which may write and export them.
    let out = psql::run(
        proxy.addr,
        &loader,
        "COPY (INSERT INTO orders VALUES (30, 4, 1, 'x') RETURNING id) TO STDOUT;\n",
    );
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("write"),
        "{}",
        out.stderr
    );
    let out = run("COPY (INSERT INTO orders VALUES (31, 4, 1, 'x') RETURNING id) TO STDOUT;\n");
    assert_eq!(out.stdout.trim(), "31", "{}", out.stderr);
    let stored = q.pg.superuser_sql(
        "shop",
        "SELECT string_agg(id::text, ',') FROM orders WHERE id IN (30, 31)",
    );
    assert_eq!(stored.trim(), "31");

    // Every COPY was audited with its decision.
    let copies: Vec<String> = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "statement")
        .filter_map(|e| {
            let s = e["statement"].as_str()?;
            (s.contains("COPY") && e["subject"] != "repo:acme/loader:ref:refs/heads/main").then(
                || {
                    format!(
                        "{} {}",
                        e["decision"].as_str().unwrap_or(""),
                        &s[..s.len().min(30)]
                    )
                },
            )
        })
        .collect();
    assert_eq!(copies.len(), 7, "{copies:#?}");
    assert_eq!(
        copies[6], "allow COPY (INSERT INTO orders VALUE",
        "{copies:#?}"
    );
}
