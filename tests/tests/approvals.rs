//! Statements held for approval, end to end: psql as an agent whose rule
//! needs an on-call engineer's approval to read `ssn`; approvers decide with
//! the real `clsf-proxy approvals` CLI over the admin listener's TLS, with
//! real signed tokens. Held → approved → rows; held → denied; held →
//! expired; self-approval refused; a statement approved for `id = 1` does
//! not release `id = 2`; every step in the audit trail.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clsf_tests::admin::{approvals as cli_at, team_token as token};
use clsf_tests::bins::bin;
use clsf_tests::fixture::{self, Quickstart};
use clsf_tests::proxy::Proxy;
use clsf_tests::psql::{self, PsqlRun};
use serde_json::{Value, json};

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group agent { claim team == "agent" }
group oncall { claim team == "oncall" }

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential
  ssn:         restricted
}
table public.orders: internal

rule agent_reads for agent {
  allow <= internal
  mask  confidential
  require approval column public.customers.ssn by oncall ttl 60s
  require approval column public.customers.card_number by oncall ttl 2s
  require approval column public.orders.total_cents by oncall scope 2 executions
}
"#;

struct Setup {
    q: Quickstart,
    proxy: Proxy,
}

const ADMIN: &str = "\n[admin]\nlisten = \"127.0.0.1:0\"\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n\n[mcp]\nlisten = \"127.0.0.1:0\"\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n";

fn setup() -> Setup {
    let q = fixture::quickstart(None);
    clsf_tests::certs::write_test_ca(q.dir.path());
    let config = fixture::config_with_policy(&q, POLICY);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(ADMIN);
    std::fs::write(&config, text).unwrap();
    let proxy = Proxy::start(&config);
    Setup { q, proxy }
}

impl Setup {
    fn token(&self, sub: &str, team: &str) -> String {
        token(&self.q, sub, team)
    }

    /// Runs `clsf-proxy approvals --json ARGS` as `sub` of `team`.
    fn cli(&self, sub: &str, team: &str, args: &[&str]) -> Result<Value, String> {
        cli_at(
            &self.q,
            self.proxy.admin.expect("admin listener"),
            sub,
            team,
            args,
        )
    }

    /// Runs psql as the agent in a thread (it blocks while held).
    fn agent_psql(&self, sql: &str) -> std::thread::JoinHandle<PsqlRun> {
        let (addr, token, sql) = (
            self.proxy.addr,
            self.token("agent-1", "agent"),
            sql.to_owned(),
        );
        std::thread::spawn(move || psql::run(addr, &token, &sql))
    }

    /// Waits (at most 10 s) for a pending request and returns it.
    fn pending(&self) -> Value {
        pending_at(&self.q, self.proxy.admin.expect("admin listener"))
    }
}

/// Waits (at most 10 s) for a pending request at `admin` and returns it.
fn pending_at(q: &Quickstart, admin: std::net::SocketAddr) -> Value {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let list = cli_at(q, admin, "bob", "oncall", &["list"]).unwrap();
        if let Some(r) = list["requests"].as_array().and_then(|a| a.first()) {
            return r.clone();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no request became pending");
}

fn events(path: &Path) -> Vec<Value> {
    clsf_runtime::audit::read_text(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn held_statements_are_approved_denied_expired_and_never_self_approved() {
    let s = setup();

    // Held, then approved by an on-call engineer: the client gets its rows.
    let client = s.agent_psql("SELECT id, ssn FROM customers WHERE id = 1;");
    let r = s.pending();
    let id = r["id"].as_str().unwrap().to_owned();
    assert_eq!(r["subject"], "agent-1");
    assert_eq!(
        r["statement"],
        "SELECT id, ssn FROM customers WHERE id = 1;"
    );
    assert_eq!(r["approvers"], "1 of group `oncall`");
    assert_eq!(r["claims"]["team"], "agent");
    assert!(r["claims"].get("exp").is_none(), "{r}");
    assert!(
        r["touches"]
            .as_array()
            .unwrap()
            .contains(&json!("public.customers.ssn (restricted)")),
        "{r}"
    );

    // Nobody approves their own request, even from the approver group;
    // outsiders and anonymous callers see nothing.
    let own = s.cli("agent-1", "oncall", &["approve", &id]).unwrap_err();
    assert!(
        own.contains("HTTP 403") && own.contains("own request"),
        "{own}"
    );
    let outsider = s.cli("eve", "agent", &["list"]).unwrap_err();
    assert!(outsider.contains("HTTP 403"), "{outsider}");

    let approved = s
        .cli(
            "bob",
            "oncall",
            &["approve", &id, "--comment", "incident 42"],
        )
        .unwrap();
    assert_eq!(approved["state"], "approved");
    let out = client.join().unwrap();
    assert_eq!(out.stdout.trim(), "1|123-45-6789", "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("held for approval, request {id}")),
        "the client is told what it waits for: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("clsf-proxy approvals approve"),
        "{}",
        out.stderr
    );
    // A decided request takes no more votes.
    let late = s.cli("carol", "oncall", &["deny", &id]).unwrap_err();
    assert!(late.contains("HTTP 409"), "{late}");

    // The approval covered that statement with those values once: `id = 2`
    // is held again; denied, the client gets 42501 and its session goes on.
    let client = s.agent_psql("SELECT id, ssn FROM customers WHERE id = 2;\nSELECT 'still here';");
    let r = s.pending();
    let id2 = r["id"].as_str().unwrap().to_owned();
    assert_ne!(id2, id);
    s.cli("bob", "oncall", &["deny", &id2, "--comment", "not needed"])
        .unwrap();
    let out = client.join().unwrap();
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("denied by bob: not needed"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("987-65-4321"), "{}", out.stdout);
    assert_eq!(out.stdout.trim(), "still here", "{}", out.stderr);

    // Nobody decides within the 2 s time to live: expired, session goes on.
    let started = Instant::now();
    let out = s
        .agent_psql("SELECT card_number FROM customers WHERE id = 3;\nSELECT 'after';")
        .join()
        .unwrap();
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("expired"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "after");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );

    // The trail tells the story in order.
    let kinds: Vec<String> = events(&s.proxy.audit_path)
        .iter()
        .filter(|e| {
            e["event"]
                .as_str()
                .is_some_and(|k| k.starts_with("approval"))
        })
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["decision"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "approval_requested ",
            "approval_vote approve",
            "approval_vote_refused ",
            "approval_vote approve",
            "approval_released ",
            "approval_vote deny",
            "approval_vote_refused ",
            "approval_requested ",
            "approval_vote deny",
            "approval_refused ",
            "approval_requested ",
            "approval_refused ",
        ]
    );
    // Metrics count what happened, without a token; the page is served.
    let admin = s.proxy.admin.unwrap();
    let ca = s.q.dir.path().join("ca.pem");
    let (status, metrics) = clsf_tests::https::get(admin, &ca, "/metrics");
    assert!(status.contains("200"), "{status}");
    for line in [
        "clsf_approvals_total{outcome=\"approved\"} 1",
        "clsf_approvals_total{outcome=\"denied\"} 1",
        "clsf_approvals_total{outcome=\"expired\"} 1",
        "clsf_statements_total{decision=\"hold\"} 3",
        "clsf_approvals_pending 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    // Probes need no token either: alive, and ready while the database
    // takes the gateway's login.
    let (status, body) = clsf_tests::https::get(admin, &ca, "/healthz");
    assert!(status.contains("200") && body.contains("ok"), "{status}");
    let (status, body) = clsf_tests::https::get(admin, &ca, "/readyz");
    assert!(
        status.contains("200") && body.contains("ready"),
        "{status} {body}"
    );
    let (status, page) = clsf_tests::https::get(admin, &ca, "/");
    assert!(status.contains("200") && page.contains("Pending approval requests"));

    let verify = Command::new(bin("clsf-proxy"))
        .arg("verify-audit")
        .arg(&s.proxy.audit_path)
        .output()
        .unwrap();
    assert!(verify.status.success());
}

#[test]
fn extended_protocol_holds_bind_parameters_count_executions_and_cancel() {
    let s = setup();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = s.token("agent-7", "agent");
    let port = s.proxy.addr.port();
    let client = runtime.block_on(async {
        let (client, connection) = clsf_tests::client::config(port, "agent", &token)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        std::sync::Arc::new(client)
    });
    let stmt = runtime
        .block_on(client.prepare("SELECT ssn FROM customers WHERE id = $1"))
        .unwrap();

    // Held at Execute with its bound value; approved, the rows arrive.
    let query = |id: i32| {
        let (client, stmt) = (std::sync::Arc::clone(&client), stmt.clone());
        runtime.spawn(async move { client.query(&stmt, &[&id]).await })
    };
    let held = query(1);
    let r = s.pending();
    assert_eq!(r["statement"], "SELECT ssn FROM customers WHERE id = $1");
    let first_hash = r["statement_hash"].as_str().unwrap().to_owned();
    s.cli("bob", "oncall", &["approve", r["id"].as_str().unwrap()])
        .unwrap();
    let rows = runtime.block_on(held).unwrap().unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "123-45-6789");

    // The same statement with another value is another request (the hash
    // covers the parameters); the client's cancel withdraws it (57014) and
    // the connection goes on.
    let held = query(2);
    let r = s.pending();
    assert_ne!(r["statement_hash"].as_str().unwrap(), first_hash);
    let cancel = client.cancel_token();
    runtime
        .block_on(cancel.cancel_query(tokio_postgres::NoTls))
        .unwrap();
    let err = runtime.block_on(held).unwrap().unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err:?}"
    );
    let all = s.cli("bob", "oncall", &["list", "--all"]).unwrap();
    // Both from the same second: their order is the ids'.
    let mut states: Vec<&str> = all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    states.sort_unstable();
    assert_eq!(states, ["approved", "withdrawn"]);
    let one: i32 = runtime
        .block_on(client.query_one("SELECT 1", &[]))
        .unwrap()
        .get(0);
    assert_eq!(one, 1);

    // `scope 2 executions`: one approval runs the statement twice with the
    // same value, then it is held again.
    let totals = runtime
        .block_on(client.prepare("SELECT total_cents FROM orders WHERE id = $1"))
        .unwrap();
    let total = |id: i32| {
        let (client, stmt) = (std::sync::Arc::clone(&client), totals.clone());
        runtime.spawn(async move { client.query(&stmt, &[&id]).await })
    };
    let held = total(10);
    let r = s.pending();
    assert_eq!(r["scope"], "this statement 2 times");
    s.cli("bob", "oncall", &["approve", r["id"].as_str().unwrap()])
        .unwrap();
    let rows = runtime.block_on(held).unwrap().unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 1999);
    let again = runtime.block_on(total(10)).unwrap().unwrap();
    assert_eq!(again[0].get::<_, i32>(0), 1999);
    let third = total(10);
    let r = s.pending();
    s.cli("bob", "oncall", &["deny", r["id"].as_str().unwrap()])
        .unwrap();
    let err = runtime.block_on(third).unwrap().unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let used = events(&s.proxy.audit_path)
        .iter()
        .filter(|e| e["event"] == "approval_grant_used")
        .count();
    assert_eq!(used, 1);
}

#[test]
fn the_approver_page_releases_a_held_statement_in_chromium() {
    let s = setup();
    let client = s.agent_psql("SELECT ssn FROM customers WHERE id = 4;");
    let r = s.pending();
    let id = r["id"].as_str().unwrap().to_owned();
    let admin = s.proxy.admin.unwrap();
    let deps = clsf_tests::bins::repo_root().join("tests/.deps/node/node_modules");
    let out = Command::new("node")
        .arg(clsf_tests::bins::repo_root().join("tests/clients/approve_page.js"))
        .arg(format!("https://localhost:{}", admin.port()))
        .arg(&id)
        .env("NODE_PATH", deps)
        .env("CLSF_TOKEN", s.token("dana", "oncall"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = page["shown"].as_str().unwrap();
    // The approver saw who asks, what, and under which rule.
    for part in [
        "agent-1",
        "SELECT ssn FROM customers WHERE id = 4;",
        "public.customers.ssn (restricted)",
        "agent_reads",
        "1 of group `oncall`",
    ] {
        assert!(
            shown.contains(part),
            "{part} missing from the page:\n{shown}"
        );
    }
    assert!(page["status"].as_str().unwrap().contains(&id));
    let out = client.join().unwrap();
    assert_eq!(out.stdout.trim(), "222-33-4444", "{}", out.stderr);
    let vote = events(&s.proxy.audit_path)
        .into_iter()
        .find(|e| e["event"] == "approval_vote")
        .unwrap();
    assert_eq!(vote["approver"], "dana");
    assert_eq!(vote["comment"], "approved in the browser");
}

#[test]
fn an_approval_given_on_one_replica_releases_a_statement_held_on_another() {
    use clsf_tests::postgres::GATEWAY_ROLE;
    use clsf_tests::proxy::spawn_binary;
    let q = fixture::quickstart(None);
    clsf_tests::certs::write_test_ca(q.dir.path());
    q.pg.superuser_sql(
        "postgres",
        &format!("CREATE DATABASE clsf_control OWNER {GATEWAY_ROLE}"),
    );
    let config_a = fixture::config_with_policy(&q, POLICY);
    let mut text = std::fs::read_to_string(&config_a).unwrap();
    text.push_str(ADMIN);
    text.push_str(&format!(
        "\n[control_plane]\nurl = \"postgres://{GATEWAY_ROLE}@127.0.0.1:{}/clsf_control?sslmode=disable\"\npassword_file = \"upstream.pw\"\n",
        q.pg.port
    ));
    std::fs::write(&config_a, &text).unwrap();
    let config_b = q.dir.path().join("proxy-b.toml");
    let audit_a = q.dir.path().join("audit.jsonl");
    let audit_b = q.dir.path().join("audit-b.jsonl");
    std::fs::write(
        &config_b,
        text.replace(
            &audit_a.display().to_string(),
            &audit_b.display().to_string(),
        ),
    )
    .unwrap();
    // Two proxy processes, as two replicas would run.
    let start = |config: &Path| {
        let mut command = Command::new(bin("clsf-proxy"));
        command.arg("--config").arg(config);
        spawn_binary(command)
    };
    let (_a, _, log_a) = start(&config_a);
    let (_b, addr_b, _) = start(&config_b);
    let admin_a = clsf_tests::admin::admin_address(&log_a);

    // Held on B …
    let agent = token(&q, "agent-1", "agent");
    let client = std::thread::spawn(move || {
        psql::run(addr_b, &agent, "SELECT ssn FROM customers WHERE id = 2;")
    });
    // … listed and approved through A.
    let r = pending_at(&q, admin_a);
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["statement"], "SELECT ssn FROM customers WHERE id = 2;");
    let own = cli_at(&q, admin_a, "agent-1", "oncall", &["approve", id]);
    assert!(own.unwrap_err().contains("own request"));
    let approved = cli_at(&q, admin_a, "bob", "oncall", &["approve", id]).unwrap();
    assert_eq!(approved["state"], "approved");
    let out = client.join().unwrap();
    assert_eq!(out.stdout.trim(), "987-65-4321", "{}", out.stderr);
    // B released it (its trail); A took the votes (its trail).
    assert!(
        events(&audit_b)
            .iter()
            .any(|e| e["event"] == "approval_released" && e["request"] == id)
    );
    assert!(
        events(&audit_a)
            .iter()
            .any(|e| e["event"] == "approval_vote" && e["approver"] == "bob")
    );
    let all = cli_at(&q, admin_a, "bob", "oncall", &["list", "--all"]).unwrap();
    assert_eq!(all["requests"][0]["state"], "approved");

    // The control plane's database restarts (here it is also the upstream):
    // both replicas connect to it again by themselves, and the next
    // request is held, listed, approved and released across them as before.
    q.pg.restart_with("");
    let agent = token(&q, "agent-2", "agent");
    let client = std::thread::spawn(move || {
        psql::run(addr_b, &agent, "SELECT ssn FROM customers WHERE id = 3;")
    });
    let begun = Instant::now();
    let r = loop {
        let list = cli_at(&q, admin_a, "bob", "oncall", &["list"]);
        if let Some(r) = list
            .ok()
            .and_then(|l| l["requests"].as_array().and_then(|a| a.first().cloned()))
        {
            break r;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "no request became pending after the control plane restarted"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r["statement"], "SELECT ssn FROM customers WHERE id = 3;");
    let id = r["id"].as_str().unwrap();
    let approved = cli_at(&q, admin_a, "bob", "oncall", &["approve", id]).unwrap();
    assert_eq!(approved["state"], "approved");
    let out = client.join().unwrap();
    assert_eq!(out.stdout.trim(), "555-12-3456", "{}", out.stderr);
}

#[test]
fn a_portal_runs_what_it_was_bound_from_not_a_later_parse() {
    use clsf_tests::raw::{contains, exchange, login, message};
    // No admin listener: a statement needing approval is refused at once.
    let q = fixture::quickstart(None);
    let proxy = fixture::proxy_with_policy(&q, POLICY);
    let token = q
        .issuer
        .sign(&q.issuer.claims("agent-1", json!({ "team": "agent" })));
    let mut session = login("agent", "shop", &token);
    // Parse the held statement into the unnamed statement, bind the
    // unnamed portal to it, then parse something harmless over the
    // unnamed statement and execute the portal: the portal still runs the
    // first statement (PostgreSQL keeps it), so it must be held.
    session.extend_from_slice(&message(
        b'P',
        b"\0SELECT ssn FROM customers WHERE id = 1\0\0\0",
    ));
    session.extend_from_slice(&message(b'B', b"\0\0\0\0\0\0\0\0"));
    session.extend_from_slice(&message(b'P', b"\0SELECT 1\0\0\0"));
    session.extend_from_slice(&message(b'E', b"\0\0\0\0\0"));
    session.extend_from_slice(&message(b'S', b""));
    session.extend_from_slice(&message(b'X', b""));
    let answer = exchange(proxy.addr, &session);
    assert!(!contains(&answer, "123-45-6789"), "leaked: {answer:?}");
    assert!(
        contains(&answer, "42501") && contains(&answer, "needs approval"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// With the database unreachable the proxy still starts: its readiness
/// probe answers 503 (its liveness 200), and clients get a clear 08006.
#[test]
fn readiness_follows_the_database() {
    let q = fixture::quickstart(None);
    clsf_tests::certs::write_test_ca(q.dir.path());
    let config = fixture::config_with_policy(&q, POLICY);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&config).unwrap();
    let moved = text.replacen(
        &format!("port = {}\n", q.pg.port),
        &format!("port = {closed}\n"),
        1,
    );
    assert_ne!(moved, text, "the upstream port is in the config");
    std::fs::write(&config, moved + ADMIN).unwrap();
    let proxy = Proxy::start(&config);
    let admin = proxy.admin.unwrap();
    let ca = q.dir.path().join("ca.pem");
    let (status, body) = clsf_tests::https::get(admin, &ca, "/readyz");
    assert!(
        status.contains("503") && body.contains("not ready"),
        "{status} {body}"
    );
    let (status, _) = clsf_tests::https::get(admin, &ca, "/healthz");
    assert!(status.contains("200"), "{status}");
    let out = psql::run(proxy.addr, &token(&q, "agent-1", "agent"), "SELECT 1;\n");
    assert!(
        out.stderr.contains("cannot reach the upstream database"),
        "{}",
        out.stderr
    );
}

/// The database restarting while a statement waits for approval: the
/// session ends with a clear error, the request cannot be approved into a
/// dead session, and nothing is reported as run.
#[test]
fn a_held_statement_is_not_run_when_the_database_restarts() {
    let s = setup();
    let client = s.agent_psql("SELECT id, ssn FROM customers WHERE id = 1;");
    let r = s.pending();
    let id = r["id"].as_str().unwrap().to_owned();

    s.q.pg.restart_with("");

    let out = client.join().unwrap();
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(!out.stdout.contains("123-45-6789"), "{}", out.stdout);
    assert!(
        out.stderr.contains("terminating connection")
            || out.stderr.contains("server closed the connection"),
        "{}",
        out.stderr
    );
    // The request ended with its session: approving it now changes nothing.
    let late = s.cli("bob", "oncall", &["approve", &id]);
    let said = format!("{late:?}");
    assert!(late.is_err(), "{said}");
    assert!(
        said.contains("withdrawn") || said.contains("not pending"),
        "{said}"
    );

    let events = events(&s.proxy.audit_path);
    let held = events
        .iter()
        .find(|e| e["decision"] == "hold")
        .expect("the hold is on the trail");
    assert_eq!(
        held["statement"],
        "SELECT id, ssn FROM customers WHERE id = 1;"
    );
    for e in &events {
        for c in e["completed"].as_array().into_iter().flatten() {
            assert_ne!(c["outcome"], "ok", "nothing ran: {e}");
        }
    }
    assert!(
        events.iter().any(|e| e["event"] == "disconnect"
            && e["reason"].as_str().is_some_and(|r| r.contains("upstream"))),
        "the trail says why the session ended"
    );
}

#[test]
fn an_agent_asks_for_approval_through_mcp_and_gets_the_rows_once_approved() {
    let s = setup();
    // Over HTTPS with the proxy's certificate (trusting its CA), and over
    // stdio through the bridge, which verifies it too.
    let url = format!("https://{}/mcp", s.proxy.mcp.expect("MCP listener"));
    let ca = s.q.dir.path().join("ca.pem");
    let agent = s.token("agent-9", "agent");
    let sql = "SELECT id, ssn FROM customers WHERE id = 2";
    let report = clsf_tests::programs::mcp_agent_trusting(
        &url,
        &agent,
        &json!([
            { "tool": "query", "args": { "sql": sql } },
            { "tool": "request_approval", "args": { "sql": sql } },
            { "tool": "request_approval", "args": { "sql": "SELECT id FROM customers WHERE id = 2" } },
        ]),
        false,
        Some(&ca),
    );
    let tools = report["tools"].as_array().unwrap();
    assert!(tools.contains(&json!("request_approval")), "{tools:?}");
    assert!(tools.contains(&json!("approval_status")), "{tools:?}");
    let r = &report["results"];
    // Held, not run: the agent is told whom to ask and how.
    let held = r[0]["text"].as_str().unwrap();
    assert!(r[0]["isError"].as_bool().unwrap());
    assert!(
        held.contains("`oncall`") && held.contains("request_approval"),
        "{held}"
    );
    let id = r[1]["data"]["request_id"].as_str().unwrap().to_owned();
    assert_eq!(r[1]["data"]["approvers"][0]["group"], "oncall", "{}", r[1]);
    assert!(
        r[2]["text"].as_str().unwrap().contains("needs no approval"),
        "{}",
        r[2]
    );

    // The request is the proxy's own: approvers see and decide it as any.
    let pending = s.pending();
    assert_eq!(pending["id"], id.as_str());
    assert_eq!(pending["subject"], "agent-9");
    assert_eq!(pending["statement"], sql);
    // Another agent cannot read its status.
    let other = clsf_tests::programs::mcp_agent_trusting(
        &url,
        &s.token("agent-8", "agent"),
        &json!([{ "tool": "approval_status", "args": { "request_id": id } }]),
        true,
        Some(&ca),
    );
    assert!(
        other["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("no request")
    );
    s.cli("bob", "oncall", &["approve", &id]).unwrap();

    // Approved: the statement ran; its rows come with the status.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let report = clsf_tests::programs::mcp_agent_trusting(
            &url,
            &agent,
            &json!([{ "tool": "approval_status", "args": { "request_id": id } }]),
            false,
            Some(&ca),
        );
        let status = report["results"][0]["data"].clone();
        if status.get("result").is_some() || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["state"], "approved", "{status}");
    assert_eq!(
        status["result"]["rows"],
        json!([["2", "987-65-4321"]]),
        "{status}"
    );
    let events = events(&s.proxy.audit_path);
    assert!(events.iter().any(|e| e["event"] == "connect"
        && e["subject"] == "agent-9"
        && e["via"]["mcp"]["tool"] == "request_approval"));
}
