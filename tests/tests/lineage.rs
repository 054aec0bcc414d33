//! View lineage and partition inheritance through the real proxy with psql:
//! a view, a materialized view and a partition over masked columns return
//! masked values to a masked principal, a view column computed from a
//! restricted column is refused, and the same statements read directly as
//! a superuser show that each would leak without the proxy.

use clsf_tests::fixture;
use clsf_tests::psql;
use serde_json::json;

const VIEWS: &str = "
CREATE VIEW customer_contacts AS
    SELECT c.id, c.name, c.email, upper(c.card_number) AS card FROM customers c;
CREATE MATERIALIZED VIEW big_spenders AS
    SELECT c.email AS contact, sum(o.total_cents) AS spent
    FROM customers c JOIN orders o ON o.customer_id = c.id
    GROUP BY c.email;
CREATE VIEW contacts_of_contacts AS SELECT * FROM customer_contacts;
CREATE TABLE events (id int, at date NOT NULL, email text) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events VALUES (1, '2026-03-01', 'ada@example.com');
CREATE DOMAIN email_address AS text CHECK (VALUE LIKE '%@%');
CREATE DOMAIN work_email AS email_address NOT NULL;
CREATE TABLE staff (id int, email email_address, work work_email);
INSERT INTO staff VALUES (1, 'ada@example.com', 'ada@work.example');
GRANT SELECT ON ALL TABLES IN SCHEMA public TO clsf_gateway;
";

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted report none

group ci { claim team == "ci" }

table public.customers: internal {
  email:       confidential mask email
  card_number: restricted
  ssn:         restricted
}
table public.orders: internal
table public.events: internal {
  email: confidential mask email
}

table public.staff: internal {
  email: confidential mask redact
  work:  restricted
}

rule ci_reads for ci {
  allow <= internal
  mask  confidential
}
"#;

fn rows(out: &psql::PsqlRun) -> Vec<&str> {
    out.stdout.lines().filter(|l| !l.is_empty()).collect()
}

#[test]
fn views_and_partitions_are_masked_like_their_sources() {
    let q = fixture::quickstart(None);
    q.pg.superuser_sql("shop", VIEWS);
    // The role name the harness gives the gateway.
    assert!(q.pg.gateway_url().contains("clsf_gateway"));
    let proxy = fixture::proxy_with_policy(&q, POLICY);
    let ci = q
        .issuer
        .sign(&q.issuer.claims("runner", json!({"team": "ci"})));

    let leaks = [
        (
            "SELECT email FROM customer_contacts WHERE id = 1;",
            "ada@example.com",
        ),
        (
            "SELECT email FROM contacts_of_contacts WHERE id = 1;",
            "ada@example.com",
        ),
        (
            "SELECT contact FROM big_spenders WHERE spent = 6499;",
            "ada@example.com",
        ),
        ("SELECT email FROM events_2026;", "ada@example.com"),
        ("SELECT email FROM events;", "ada@example.com"),
    ];
    for (sql, clear) in leaks {
        // Without the proxy the statement reads the clear value …
        let direct = q.pg.superuser_sql("shop", sql);
        assert_eq!(direct.trim(), clear, "{sql}");
        // … through it, the mask of the source column.
        let out = psql::run(proxy.addr, &ci, sql);
        assert_eq!(rows(&out), ["****@example.com"], "{sql}: {}", out.stderr);
    }

    // A view column computed from a restricted column is restricted.
    let out = psql::run(
        proxy.addr,
        &ci,
        "SELECT card FROM customer_contacts WHERE id = 1;",
    );
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("card"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains("4111"), "{}", out.stdout);
    // Columns from internal sources stay readable.
    let out = psql::run(
        proxy.addr,
        &ci,
        "SELECT name FROM customer_contacts WHERE id = 1;",
    );
    assert_eq!(rows(&out), ["Ada Lovelace"], "{}", out.stderr);

    // Columns of domain types: the masked value need not satisfy the
    // domain's CHECK, and a withheld NOT NULL domain column is a NULL.
    let out = psql::run(proxy.addr, &ci, "SELECT id, email FROM staff;");
    assert_eq!(rows(&out), ["1|****"], "{}", out.stderr);
    let out = psql::run(proxy.addr, &ci, "SELECT work FROM staff;");
    assert!(out.stderr.contains("42501"), "{}{}", out.stdout, out.stderr);
}
