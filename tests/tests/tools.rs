//! The tool matrix: the tools non-human identities actually run, each
//! through the real proxy with TLS required (verify-full against the test
//! CA) as an identity with masked and denied columns, `allow export` of
//! what it reads (masked where masked) and `allow function pg_sleep`. Each connects, reads metadata,
//! reads masked values, gets a 42501 denial and goes on, streams 10 000
//! rows, and copies and cancels where the tool can: SQLAlchemy 2 (ORM, Core,
//! reflection, `yield_per`), Django (introspection, `inspectdb`, querysets,
//! server-side cursors, `explain`), psycopg 3 (named cursors, binary, COPY,
//! `cancel_safe()` over TLS), pgJDBC (DatabaseMetaData, fetch size,
//! CopyManager, cancel), node-postgres with pg-cursor and pg-copy-streams,
//! psql's `\d` family and `\copy`, pg_dump, and an AI agent's database tool
//! (`@modelcontextprotocol/server-postgres` over stdio JSON-RPC).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clsf_tests::fixture::{self, Quickstart};
use clsf_tests::postgres::DATABASE;
use clsf_tests::programs;
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
table public.tickets: internal {
  requester: confidential mask email
}
// Its sequences (a serial and an identity column) are as protected as the
// columns they issue values for.
table public.notes: internal

// The masked identity of the matrix: masked and denied columns, exports
// (of masked values where masked), one function beyond the safe classes,
// and the write right on customers, which lets it lock their rows (as
// Hibernate does) but never write them (they have withheld columns).
rule ci_reads for ci {
  allow read <= internal
  allow export <= confidential
  mask  confidential
  deny  restricted
  allow function pg_sleep
  allow write table public.customers
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
         CREATE TYPE ticket_state AS ENUM ('open', 'closed'); \
         CREATE TABLE tickets (id integer PRIMARY KEY, state ticket_state NOT NULL, \
           requester text NOT NULL); \
         INSERT INTO tickets VALUES (1, 'open', 'ada@example.com'), (2, 'closed', 'bob@example.com'); \
         CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL, \
           n bigint GENERATED ALWAYS AS IDENTITY); \
         INSERT INTO notes (body) VALUES ('first'), ('second'); \
         GRANT ALL ON ALL TABLES IN SCHEMA public TO clsf_gateway; \
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO clsf_gateway; ANALYZE;",
    );
    // The same proxy.toml as the quickstart's, now with this policy.
    let config = fixture::config_with_policy(&q, POLICY);
    assert_eq!(config, q.config);
    fixture::enable_client_tls(&q);
    let proxy = Proxy::start(&q.config);
    (q, proxy)
}

fn token(q: &Quickstart, role: &str) -> String {
    q.issuer
        .sign(&q.issuer.claims(role, json!({ "role": role })))
}

/// libpq connection options for the proxy over verified TLS.
fn conninfo(q: &Quickstart, proxy: &Proxy) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={} sslmode=verify-full sslrootcert={}",
        proxy.addr.port(),
        q.dir.path().join("ca.pem").display()
    )
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

/// Sets up the quickstart and runs the check program `cmd` as `ci`; its
/// output lines.
fn check_as_ci(cmd: Command) -> (Quickstart, Proxy, Vec<String>) {
    let (q, proxy) = setup();
    let lines = run_check(cmd, &q, &proxy, &q.issuer.ci_token());
    (q, proxy, lines)
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
        assert!(
            !text.contains(&value),
            "{what} holds a clear protected value"
        );
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
    let run = |token: &str, out: &Path, extra: &[&str]| {
        Command::new(q.pg.program("pg_dump"))
            .args(extra)
            .arg(format!(
                "{} user=workload dbname={DATABASE}",
                conninfo(&q, &proxy)
            ))
            .arg("-f")
            .arg(out)
            .env("PGPASSWORD", token)
            .output()
            .expect("pg_dump (Debian package postgresql-15)")
    };
    let out = run(&token(&q, "dumper"), &dump, &[]);
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(text.contains("COPY public.customers"), "customers dumped");
    assert!(
        text.contains("****@example.com"),
        "emails masked in the dump"
    );
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
    let events =
        q.pg.superuser_sql("restored", "SELECT count(*) FROM events");
    assert_eq!(events.trim(), "10000");
    // Sequences (a serial and an identity column) are read like their
    // columns, and restored where they were.
    assert!(
        text.contains("SELECT pg_catalog.setval('public.notes_id_seq', 2, true);"),
        "the serial's sequence dumped"
    );
    let next = q.pg.superuser_sql(
        "restored",
        "INSERT INTO notes (body) VALUES ('third') RETURNING id, n",
    );
    assert_eq!(next.lines().next().map(str::trim), Some("3|3"), "{next}");

    // `--inserts` reads each table with `SELECT * FROM ONLY t` through a
    // cursor: rewritten like any read, `ONLY` kept inside the subquery.
    let inserts = q.dir.path().join("inserts.sql");
    let out = run(
        &token(&q, "dumper"),
        &inserts,
        &["--inserts", "--table=public.customers"],
    );
    assert!(
        out.status.success(),
        "pg_dump --inserts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&inserts).unwrap();
    assert_eq!(
        text.matches("INSERT INTO public.customers VALUES").count(),
        4,
        "{text}"
    );
    assert!(text.contains("'****@example.com'"), "{text}");
    assert_no_clear_value(&q, "the --inserts dump", &text);

    // A parallel dump (directory format, two jobs): the leader exports its
    // snapshot and each worker's session imports it.
    let parallel = q.dir.path().join("parallel");
    let out = run(
        &token(&q, "dumper"),
        &parallel,
        &["--format=directory", "--jobs=2", "--compress=0"],
    );
    assert!(
        out.status.success(),
        "pg_dump --jobs=2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut data = String::new();
    for entry in std::fs::read_dir(&parallel).unwrap() {
        let path = entry.unwrap().path();
        // Each table's rows in `<id>.dat`; `toc.dat` is the binary index.
        if path.extension().is_some_and(|e| e == "dat")
            && path.file_name().is_some_and(|n| n != "toc.dat")
        {
            data.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    assert!(
        data.contains("****@example.com"),
        "emails masked: {data:.200}"
    );
    assert!(data.contains("****@mail.example"), "contacts masked");
    assert_no_clear_value(&q, "the parallel dump", &data);

    // Other modes as backups and staging refreshes run them: a snapshot
    // that waits to be safe (`SET TRANSACTION … DEFERRABLE`), the custom
    // format, INSERTs with column names, schema only.
    for (i, extra) in [
        &["--serializable-deferrable"][..],
        &["--format=custom"],
        &["--column-inserts", "--rows-per-insert=2"],
        &["--schema-only"],
    ]
    .iter()
    .enumerate()
    {
        let out = run(
            &token(&q, "dumper"),
            &q.dir.path().join(format!("mode{i}.dump")),
            extra,
        );
        assert!(
            out.status.success(),
            "pg_dump {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // ci's rule denies ssn: pg_dump stops with the reason, and writes no
    // clear value on the way.
    let partial = q.dir.path().join("ci.sql");
    let out = run(&q.issuer.ci_token(), &partial, &[]);
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
    assert!(
        out.stdout.contains("card_number|character varying(19)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("public|events|table|"),
        "\\dt: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("public|shipped|view|"),
        "\\dv: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("pg_sleep|void|double precision"),
        "\\df: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("events_customer"),
        "\\di: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("1\t****@example.com"),
        "\\copy: {}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("10\t1\t"),
        "\\copy orders: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("ssn"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.trim_end().ends_with('4'),
        "usable after the denial: {}",
        out.stdout
    );
    assert_eq!(
        out.stderr.matches("ERROR").count(),
        1,
        "only the ssn copy is refused: {}",
        out.stderr
    );
    assert_no_clear_value(&q, "psql's output", &out.stdout);
}

/// Query builders qualify every column by schema and relation (Prisma,
/// jOOQ): the masking subquery that replaces the relation keeps its name,
/// so the rewrite drops the schema, and the statements run masked. A
/// profiler's `TABLESAMPLE` moves into the subquery (PostgreSQL samples
/// tables only); Hibernate's `FOR NO KEY UPDATE` is read.
#[test]
fn schema_qualified_columns_and_samples_as_tools_write_them() {
    let (q, proxy) = setup();
    let out = psql::run_conninfo(
        &conninfo(&q, &proxy),
        &q.issuer.ci_token(),
        "SELECT \"public\".\"customers\".\"id\", \"public\".\"customers\".\"email\" \
         FROM \"public\".\"customers\" WHERE 1=1 \
         ORDER BY \"public\".\"customers\".\"id\" ASC LIMIT 1 OFFSET 0;\n\
         select \"public\".\"orders\".\"id\", \"public\".\"customers\".\"card_number\" \
         from \"public\".\"orders\" join \"public\".\"customers\" \
         on \"public\".\"orders\".\"customer_id\" = \"public\".\"customers\".\"id\" \
         where \"public\".\"orders\".\"id\" = 10;\n\
         SELECT c.id, c.email FROM customers c TABLESAMPLE SYSTEM (100) REPEATABLE (1) \
         WHERE c.id = 2;\n\
         select c1_0.id,c1_0.email from customers c1_0 where c1_0.id=3 for no key update;\n\
         SELECT ctid, * FROM events WHERE ctid > '(0,0)' AND id = 7;\n\
         SELECT e.id, e.contact, e.xmin::text::bigint > 0 FROM events AS e WHERE e.id = 8;\n\
         SELECT count(email), GROUPING(name) FROM customers \
         WHERE created_at < CURRENT_TIMESTAMP + make_interval(days => 1) GROUP BY ROLLUP (name) \
         ORDER BY 2 DESC LIMIT 1;\n\
         SET client_min_messages TO 'warning'; SET standard_conforming_strings = on; \
         SET intervalstyle = iso_8601; SET SESSION timezone TO 'UTC'; SET search_path TO public;\n\
         BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE;\n\
         SELECT email, current_setting('transaction_deferrable') FROM customers WHERE id = 4;\n\
         COMMIT;\n",
    );
    assert_eq!(out.stderr.matches("ERROR").count(), 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("1|****@")),
        "{}",
        out.stdout
    );
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.starts_with("10|") && l.contains("*")),
        "{}",
        out.stdout
    );
    assert!(
        lines.get(2).is_some_and(|l| l.starts_with("2|****@")),
        "{}",
        out.stdout
    );
    // Hibernate's row lock, which sqlparser does not parse.
    assert!(
        lines.get(3).is_some_and(|l| l.starts_with("3|****@")),
        "{}",
        out.stdout
    );
    // System columns of a masked relation (a CDC connector's keyless
    // paging, EF Core's `xmin` token): carried by the masking subquery,
    // `*` still the table's own columns.
    assert_eq!(
        lines.get(4),
        Some(&"(0,7)|7|4|k0|****@mail.example"),
        "{}",
        out.stdout
    );
    assert_eq!(
        lines.get(5),
        Some(&"8|****@mail.example|t"),
        "{}",
        out.stdout
    );
    assert_no_clear_value(&q, "psql's output", &out.stdout);
}

#[test]
fn asyncpg_prepares_introspects_streams_and_pools() {
    let (q, _proxy, lines) = check_as_ci(programs::python("asyncpg_tools.py"));
    assert_eq!(
        lines,
        [
            "masked ****@example.com ************1111",
            "enum 2 open ****@example.com",
            "json ****@turing.org",
            "prepared email ****@navy.mil",
            "denied 42501",
            "after_denial 4",
            "cursor 10000 ****@mail.example",
            "executemany 42501",
            "copy 4 ****@example.com",
            "pool 4 4 4",
        ]
    );
    assert_no_clear_value(&q, "asyncpg's output", &lines.join("\n"));
}

#[test]
fn psycopg3_pipeline_mode_with_a_refusal_inside() {
    let (_q, _proxy, lines) = check_as_ci(programs::python("psycopg_pipeline.py"));
    assert_eq!(
        lines,
        [
            "pipelined 20 20 ****@mail.example",
            "refused 42501 ****@example.com",
            "skipped yes",
            "after 4",
            "executemany 4 ****@tue.nl",
        ]
    );
}

#[test]
fn postgresjs_prepares_streams_and_copies() {
    let (q, _proxy, lines) = check_as_ci(programs::node("postgresjs_tools.js"));
    assert_eq!(
        lines,
        [
            "masked ****@example.com ************1111",
            "enum 2 open ****@example.com",
            "helpers ****@turing.org ****@navy.mil",
            "denied 42501",
            "cursor 10000 ****@mail.example",
            "describe email",
            "tx ****@example.com",
            "unsafe ****@tue.nl 1",
            "copy 4",
        ]
    );
    assert_no_clear_value(&q, "postgres.js's output", &lines.join("\n"));
}

#[test]
fn psycopg3_named_cursors_copy_and_cancel_over_tls() {
    let (_q, proxy, lines) = check_as_ci(programs::python("psycopg_tools.py"));
    assert_eq!(
        lines,
        [
            // The bundled libpq sends its CancelRequest inside TLS.
            "libpq ge17",
            "typeinfo text 25",
            "masked ****@example.com ************1111",
            "denied 42501",
            "after_denial 4",
            "copy 4 ****@example.com",
            "withhold 5 ****@mail.example",
            "cancel 57014 fast",
            "after_cancel 1",
            "direct_cancel 57014",
            "named 10000 ****@mail.example",
            "binary_scroll 11 ****@mail.example",
            "named_denied 42501",
            "after_rollback 10000",
        ]
    );
    let events = proxy.audit_events();
    assert_eq!(
        events.iter().filter(|e| e["event"] == "cancel").count(),
        2,
        "both cancels are audited"
    );
}

/// Python's two ORMs on one quickstart: SQLAlchemy 2 and Django.
#[test]
fn sqlalchemy2_and_django_connect_reflect_and_stream() {
    let (q, proxy, lines) = check_as_ci(programs::python("sqlalchemy_check.py"));
    assert_eq!(
        lines,
        [
            "connect 1 15",
            "tables customers events notes orders tickets",
            "views shipped",
            "columns id name email ssn card_number created_at",
            "pk id",
            "fk customers id",
            "indexes events_customer",
            "core ****@example.com ************1111",
            "denied 42501",
            "after_denial 4",
            "stream_results 10000",
            "orm ****@turing.org",
            "yield_per 10000 ****@mail.example",
        ]
    );
    let lines = run_check(
        programs::python("django_check.py"),
        &q,
        &proxy,
        &q.issuer.ci_token(),
    );
    assert_eq!(
        lines,
        [
            "connect 15",
            "tables customers events notes orders tickets",
            "inspectdb Events Orders",
            "inspectdb_refused ssn",
            "defer ****@example.com ************1111",
            "values ****@example.com ****@turing.org",
            "count 4 2500",
            "denied 42501",
            "after_denial ****@turing.org",
            "iterator 10000 ****@mail.example",
            "savepoint ****@example.com",
            "join ****@turing.org",
            "explain True",
            "explain_analyze True",
            "explain_filter 42501",
        ]
    );
}

#[test]
fn pgjdbc_metadata_fetch_size_copy_and_cancel() {
    let (q, proxy) = setup();
    let cmd = programs::java("JdbcTools", &q.dir.path().join("classes"));
    let lines = run_check(cmd, &q, &proxy, &q.issuer.ci_token());
    assert_eq!(
        lines,
        [
            "product PostgreSQL",
            "startup 61s public",
            "tables customers events notes orders shipped tickets",
            "columns id name email ssn card_number created_at",
            "primary_keys id",
            "index_info events_customer events_pkey",
            "imported_keys customers",
            "schemas true",
            "type_info true",
            "functions true",
            "procedure_columns true",
            "table_privileges true",
            "column_privileges true",
            "best_row id",
            "version_columns ctid",
            "udts 6",
            "catalogs 1",
            "set_schema public",
            "server_prepared ****@tue.nl true",
            "masked ****@example.com",
            "denied 42501",
            "after_denial 4",
            "fetch_size 10000 ****@mail.example",
            "copy 4 1 ****@example.com",
            "cancel 57014 fast",
            "after_cancel 1",
        ]
    );
}

#[test]
fn node_postgres_cursor_and_copy_streams() {
    let (_q, _proxy, lines) = check_as_ci(programs::node("node_tools.js"));
    assert_eq!(
        lines,
        [
            "columns id name email ssn card_number created_at",
            "masked ****@navy.mil",
            "denied 42501",
            "after_denial 4",
            "cursor 10000 ****@mail.example",
            "copy 4 1 ****@example.com",
            "copy_denied 42501",
            "after_copy 1",
        ]
    );
}

/// An MCP server speaking JSON-RPC over its standard input and output.
struct McpServer {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
    next_id: u64,
}

impl McpServer {
    fn start(mut cmd: Command) -> McpServer {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the MCP server");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        McpServer {
            child,
            stdin,
            lines,
            next_id: 1,
        }
    }

    fn send(&mut self, message: &Value) {
        writeln!(self.stdin, "{message}").expect("write to the MCP server");
        self.stdin.flush().expect("flush");
    }

    /// Sends a request and waits (bounded) for the response with its id.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} in 20 s"));
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if v["id"] == json!(id) {
                return v;
            }
        }
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reference MCP server for PostgreSQL, as an AI agent's database tool,
/// connected to the proxy with the agent's token: it lists tables, reads a
/// schema, gets masked values, gets a refusal, and its read-only guard's
/// known escape (`COMMIT; DELETE …`) is refused by the policy.
#[test]
fn mcp_postgres_server_as_an_agent_tool() {
    let (q, proxy) = setup();
    let server = programs::deps()
        .join("node/node_modules/@modelcontextprotocol/server-postgres/dist/index.js");
    let mut cmd = Command::new("node");
    cmd.arg(&server)
        .arg(format!(
            "postgresql://workload:{}@localhost:{}/{DATABASE}?sslmode=verify-full",
            token(&q, "agent"),
            proxy.addr.port()
        ))
        .env("NODE_EXTRA_CA_CERTS", q.dir.path().join("ca.pem"))
        // localhost is 127.0.0.1 first, where the proxy listens.
        .env("NODE_OPTIONS", "--dns-result-order=ipv4first");
    let mut mcp = McpServer::start(cmd);
    let init = mcp.call(
        "initialize",
        json!({"protocolVersion": "2024-11-05", "capabilities": {},
               "clientInfo": {"name": "clsf-e2e", "version": "1"}}),
    );
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    mcp.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));

    let resources = mcp.call("resources/list", json!({}));
    let mut names: Vec<&str> = resources["result"]["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{resources}"))
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names.len(), 6, "{resources}");
    assert!(names[0].ends_with("/customers/schema"), "{names:?}");
    let schema = mcp.call("resources/read", json!({"uri": names[0]}));
    let text = schema["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.contains("card_number") && text.contains("ssn"),
        "{schema}"
    );

    let tools = mcp.call("tools/list", json!({}));
    assert_eq!(tools["result"]["tools"][0]["name"], "query", "{tools}");
    let query = |mcp: &mut McpServer, sql: &str| {
        mcp.call(
            "tools/call",
            json!({"name": "query", "arguments": {"sql": sql}}),
        )
    };
    let masked = query(&mut mcp, "SELECT id, email FROM customers ORDER BY id");
    let text = masked["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("****@example.com"), "{masked}");
    assert_no_clear_value(&q, "the agent's result", &masked.to_string());

    let refused = query(&mut mcp, "SELECT ssn FROM customers");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ssn")),
        "{refused}"
    );
    assert_no_clear_value(&q, "the agent's error", &refused.to_string());
    let escape = query(&mut mcp, "COMMIT; DELETE FROM orders");
    assert!(escape["error"].is_object(), "{escape}");
    assert_eq!(
        q.pg.superuser_sql(DATABASE, "SELECT count(*) FROM orders")
            .trim(),
        "4",
        "nothing deleted"
    );
    // The agent's tool still works after the refusals.
    let after = query(&mut mcp, "SELECT count(*) AS n FROM events");
    assert!(
        after["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("10000")),
        "{after}"
    );
}
