//! The tool matrix: the tools non-human identities actually run, each
//! through the real proxy with TLS required (verify-full against the test
//! CA) as an identity with masked and denied columns, `allow export` of
//! what it reads (masked where masked) and `allow function pg_sleep`. Each connects, reads metadata,
//! reads masked values, gets a 42501 denial and goes on, streams 10 000
//! rows, and copies and cancels where the tool can: SQLAlchemy 2 (ORM, Core,
//! reflection, `yield_per`), psycopg 3 (named cursors, binary, COPY,
//! `cancel_safe()` over TLS), pgJDBC (DatabaseMetaData, fetch size,
//! CopyManager, cancel), node-postgres with pg-cursor and pg-copy-streams,
//! psql's `\d` family and `\copy`, pg_dump, and an AI agent's database tool
//! (`@modelcontextprotocol/server-postgres` over stdio JSON-RPC).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clsf_tests::bins::repo_root;
use clsf_tests::fixture::{self, Quickstart};
use clsf_tests::postgres::DATABASE;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;
use serde_json::{Value, json};

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group ci { claim repository == "acme/shop" }
group agent { claim role == "agent" }
group dumper { claim role == "dumper" }
group dba-bot { claim groups contains "dba" }

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential mask last(4)
  ssn:         restricted
}
table public.orders: internal {
  status: public
}
table public.events: internal {
  contact: confidential mask email
}

// The masked identity of the matrix: masked and denied columns, exports
// (of masked values where masked), and one function beyond the safe
// classes.
rule ci_reads for ci {
  allow read <= internal
  allow export <= confidential
  mask  confidential
  deny  restricted
  allow function pg_sleep
}

// An AI agent: reads, never writes.
rule agent_reads for agent {
  allow read <= internal
  mask  confidential
}

// Refreshing a staging database: everything exported, masked.
rule dumps for dumper {
  allow read, export <= internal
  allow export <= restricted
  mask  confidential
  mask  restricted with redact
}

rule dba for dba-bot {
  allow read, write, export <= restricted
  allow ddl, admin
}
"#;

/// The quickstart with a 10 000-row table (for streaming), an index, a
/// foreign key and a view, the policy above, TLS required.
fn setup() -> (Quickstart, Proxy) {
    let q = fixture::quickstart(None);
    q.pg.superuser_sql(
        DATABASE,
        "CREATE TABLE events (id integer PRIMARY KEY, \
           customer_id integer NOT NULL REFERENCES customers(id), \
           kind text NOT NULL, contact text NOT NULL); \
         CREATE INDEX events_customer ON events (customer_id); \
         INSERT INTO events SELECT g, 1 + g % 4, 'k' || g % 7, 'user' || g || '@mail.example' \
           FROM generate_series(1, 10000) g; \
         CREATE VIEW shipped AS SELECT id, customer_id FROM orders WHERE status = 'shipped'; \
         GRANT ALL ON ALL TABLES IN SCHEMA public TO clsf_gateway; ANALYZE;",
    );
    // The same proxy.toml as the quickstart's, now with this policy.
    let config = fixture::config_with_policy(&q, POLICY);
    assert_eq!(config, q.config);
    fixture::enable_client_tls(&q);
    let proxy = Proxy::start(&q.config);
    (q, proxy)
}

fn token(q: &Quickstart, role: &str) -> String {
    q.issuer.sign(&q.issuer.claims(role, json!({ "role": role })))
}

/// libpq connection options for the proxy over verified TLS.
fn conninfo(q: &Quickstart, proxy: &Proxy) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={} sslmode=verify-full sslrootcert={}",
        proxy.addr.port(),
        q.dir.path().join("ca.pem").display()
    )
}

fn deps() -> PathBuf {
    repo_root().join("tests/.deps")
}

fn clients_dir() -> PathBuf {
    repo_root().join("tests/clients")
}

/// Runs a tool's check program with HOST PORT DBNAME CA_FILE TOKEN and
/// returns its output lines; fails on a non-zero exit.
fn run_check(mut cmd: Command, q: &Quickstart, proxy: &Proxy, token: &str) -> Vec<String> {
    let out = cmd
        .args([
            "localhost",
            &proxy.addr.port().to_string(),
            DATABASE,
            &q.dir.path().join("ca.pem").display().to_string(),
            token,
        ])
        .output()
        .expect("start the check program");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// The values of protected columns no masked output may hold.
fn clear_values(q: &Quickstart) -> Vec<String> {
    q.pg.superuser_sql(
        DATABASE,
        "SELECT email FROM customers UNION ALL SELECT ssn FROM customers \
         UNION ALL SELECT card_number FROM customers \
         UNION ALL (SELECT contact FROM events ORDER BY id LIMIT 50)",
    )
    .lines()
    .map(|l| l.trim().to_owned())
    .filter(|l| !l.is_empty())
    .collect()
}

fn assert_no_clear_value(q: &Quickstart, what: &str, text: &str) {
    for value in clear_values(q) {
        assert!(!text.contains(&value), "{what} holds a clear protected value");
    }
}

/// pg_dump (15, Debian's) as an identity that may export everything
/// masked: the dump holds masked values only, restores into a fresh
/// database, and keeps the rows. The masked identity whose rule denies a
/// column gets a clear refusal naming it instead of a dump without it.
#[test]
fn pg_dump_makes_a_masked_dump_that_restores() {
    let (q, proxy) = setup();
    let dump = q.dir.path().join("dump.sql");
    let run = |token: &str, out: &Path| {
        Command::new(q.pg.program("pg_dump"))
            .arg(format!("{} user=workload dbname={DATABASE}", conninfo(&q, &proxy)))
            .arg("-f")
            .arg(out)
            .env("PGPASSWORD", token)
            .output()
            .expect("pg_dump (Debian package postgresql-15)")
    };
    let out = run(&token(&q, "dumper"), &dump);
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("COPY public.customers"), "customers dumped");
    assert!(text.contains("****@example.com"), "emails masked in the dump");
    assert_no_clear_value(&q, "the dump", &text);

    q.pg.superuser_sql("postgres", "CREATE DATABASE restored");
    // Restored by the superuser, as a staging refresh would be.
    q.pg.run_file("restored", &dump, true);
    let restored = q.pg.superuser_sql(
        "restored",
        "SELECT (SELECT count(*) FROM customers), email, ssn, card_number FROM customers WHERE id = 1",
    );
    assert_eq!(
        restored.trim(),
        "4|****@example.com|****       |************1111"
    );
    let events = q.pg.superuser_sql("restored", "SELECT count(*) FROM events");
    assert_eq!(events.trim(), "10000");

    // ci's rule denies ssn: pg_dump stops with the reason, and writes no
    // clear value on the way.
    let partial = q.dir.path().join("ci.sql");
    let out = run(&q.issuer.ci_token(), &partial);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("permission denied for column `ssn`"),
        "{stderr}"
    );
    assert_no_clear_value(
        &q,
        "the refused dump",
        &std::fs::read_to_string(&partial).unwrap_or_default(),
    );
}

/// psql's describe commands and `\copy` as the masked identity.
#[test]
fn psql_describe_commands_and_copy() {
    let (q, proxy) = setup();
    let out = psql::run_conninfo(
        &conninfo(&q, &proxy),
        &q.issuer.ci_token(),
        "\\d customers\n\\dt\n\\dv\n\\df pg_sleep\n\\di\n\\dn\n\\l\n\
         \\copy (SELECT id, email FROM customers ORDER BY id) TO STDOUT\n\
         \\copy orders TO STDOUT\n\
         \\copy (SELECT ssn FROM customers) TO STDOUT\n\
         SELECT count(*) FROM orders;\n",
    );
    assert!(out.stdout.contains("card_number|character varying(19)"), "{}", out.stdout);
    assert!(out.stdout.contains("public|events|table|"), "\\dt: {}", out.stdout);
    assert!(out.stdout.contains("public|shipped|view|"), "\\dv: {}", out.stdout);
    assert!(out.stdout.contains("pg_sleep|void|double precision"), "\\df: {}", out.stdout);
    assert!(out.stdout.contains("events_customer"), "\\di: {}", out.stdout);
    assert!(out.stdout.contains("1\t****@example.com"), "\\copy: {}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("10\t1\t"), "\\copy orders: {}", out.stdout);
    assert!(out.stderr.contains("42501") && out.stderr.contains("ssn"), "{}", out.stderr);
    assert!(out.stdout.trim_end().ends_with('4'), "usable after the denial: {}", out.stdout);
    assert_eq!(
        out.stderr.matches("ERROR").count(),
        1,
        "only the ssn copy is refused: {}",
        out.stderr
    );
    assert_no_clear_value(&q, "psql's output", &out.stdout);
}
