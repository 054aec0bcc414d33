//! The audit trail under pressure and after the fact: a proxy process whose
//! file-size limit stops the trail refuses statements instead of running
//! them unaudited; `audit verify` names an edited or deleted event in a
//! real, rotated trail; `audit show` replays a session.

use std::process::Command;

use clsf_tests::bins::bin;
use clsf_tests::fixture;
use clsf_tests::postgres::DATABASE;
use clsf_tests::proxy::spawn_binary;
use clsf_tests::psql;

#[test]
fn a_full_audit_trail_refuses_statements_instead_of_running_them() {
    let q = fixture::quickstart(None);
    // 32 blocks of 512 bytes: room for the connection and a few dozen
    // statement events, far less than 300.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -f 32 && exec \"$0\" --config \"$1\"")
        .arg(bin("clsf-proxy"))
        .arg(&q.config);
    let (_proxy, addr, log) = spawn_binary(command);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let extended = runtime.block_on(async {
        let (client, conn) = clsf_tests::client::config(addr.port(), "dba", &q.issuer.dba_token())
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    });
    let script: String = (0..300)
        .map(|i| format!("INSERT INTO orders VALUES ({}, 1, 1, 'audit');\n", 1000 + i))
        .collect();
    let out = psql::run(addr, &q.issuer.dba_token(), &script);
    let ran = out.stdout.lines().filter(|l| *l == "INSERT 0 1").count();
    let refused = out.stderr.matches("58030").count();
    assert!(ran > 5, "some statements fit: {}", out.stderr);
    assert_eq!(ran + refused, 300, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("the audit trail cannot be written"),
        "{}",
        out.stderr
    );
    // The extended protocol too: a statement prepared while the trail is
    // full is not executed (its event, due at the Execute, cannot be
    // written). The session was opened while there was room.
    let refused = runtime.block_on(async {
        extended
            .execute("INSERT INTO orders VALUES ($1, 1, 1, 'audit')", &[&5000i32])
            .await
            .unwrap_err()
    });
    assert_eq!(refused.code().map(|c| c.code()), Some("58030"), "{refused}");
    drop(extended);
    drop(runtime);
    // Exactly the audited statements ran.
    let rows = q.pg.superuser_sql(
        DATABASE,
        "SELECT count(*) FROM orders WHERE status = 'audit'",
    );
    assert_eq!(rows.trim(), ran.to_string());
    let audited = clsf_runtime::audit::read_text(&q.dir.path().join("audit.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("INSERT INTO orders"))
        .count();
    assert_eq!(audited, ran);
    // The cut-off event was removed again: the trail still verifies.
    let verify = Command::new(bin("clsf-proxy"))
        .args(["audit", "verify"])
        .arg(q.dir.path().join("audit.jsonl"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let said = log.lock().unwrap().join("\n");
    assert!(
        said.contains("cannot be written") && said.contains("File too large"),
        "the log says why: {said}"
    );
}

/// `kill -9` of the proxy under a write load: the trail verifies, and
/// every statement that ran in the database has its event (each was on
/// the trail before it was forwarded). The trail is the default, mapped
/// one, left with its reserved room by the crash; a new proxy continues it.
#[test]
fn a_proxy_killed_under_load_leaves_a_trail_with_every_statement_that_ran() {
    let q = fixture::quickstart(None);
    let start = || {
        let mut command = Command::new(bin("clsf-proxy"));
        command.arg("--config").arg(&q.config);
        spawn_binary(command)
    };
    let (proxy, addr, _log) = start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let token = q.issuer.dba_token();
    let acknowledged = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let config = clsf_tests::client::config(addr.port(), "dba", &token);
            let acknowledged = std::sync::Arc::clone(&acknowledged);
            runtime.spawn(async move {
                let Ok((client, conn)) = config.connect(tokio_postgres::NoTls).await else {
                    return;
                };
                tokio::spawn(conn);
                // Bounded: the proxy is killed long before.
                for i in 0..20_000 {
                    let id = 100_000 + w * 20_000 + i;
                    let sql = format!("INSERT INTO orders VALUES ({id}, 1, 1, 'crash')");
                    if client.simple_query(&sql).await.is_err() {
                        return;
                    }
                    acknowledged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    let begun = std::time::Instant::now();
    while acknowledged.load(std::sync::atomic::Ordering::Relaxed) < 200
        && begun.elapsed() < std::time::Duration::from_secs(30)
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(proxy); // SIGKILL, mid-load
    runtime.block_on(async {
        for w in writers {
            let _ = w.await;
        }
    });
    let acknowledged = acknowledged.load(std::sync::atomic::Ordering::Relaxed);
    assert!(acknowledged >= 200, "the load ran: {acknowledged}");

    let trail = q.dir.path().join("audit.jsonl");
    clsf_tests::trail::assert_every_insert_is_on_the_trail(&q.pg, &trail, "crash", acknowledged);

    // A new proxy continues the crashed trail.
    let (proxy, addr, _log) = start();
    let out = psql::run(addr, &q.issuer.dba_token(), "SELECT 'after_crash';");
    assert!(out.stdout.contains("after_crash"), "{}", out.stderr);
    drop(proxy);
    let verify = Command::new(bin("clsf-proxy"))
        .args(["audit", "verify"])
        .arg(&trail)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout).into_owned()
        + &String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{said}");
    assert!(
        clsf_runtime::audit::read_text(&trail)
            .unwrap()
            .contains("after_crash"),
        "{said}"
    );
}

#[test]
fn verify_names_the_broken_event_and_show_replays_a_session() {
    let q = fixture::quickstart(None);
    let trail = q.dir.path().join("trail");
    std::fs::create_dir(&trail).unwrap();
    let text = std::fs::read_to_string(&q.config).unwrap();
    let text = text.replace(
        &format!("path = \"{}\"", q.dir.path().join("audit.jsonl").display()),
        &format!(
            "path = \"{}\"\nmax_file_bytes = 3000",
            trail.join("audit.jsonl").display()
        ),
    );
    assert!(text.contains("max_file_bytes"), "{text}");
    std::fs::write(&q.config, text).unwrap();
    let mut command = Command::new(bin("clsf-proxy"));
    command.arg("--config").arg(&q.config);
    let (proxy, addr, _log) = spawn_binary(command);
    let script =
        "SELECT email FROM customers WHERE id = 1;\nSELECT ssn FROM customers;\n".repeat(5);
    let out = psql::run(addr, &q.issuer.ci_token(), &script);
    assert!(out.stdout.contains("@example.com"), "{}", out.stderr);
    // The session's end is recorded once the proxy has read psql's goodbye.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10)
        && !std::fs::read_dir(&trail).unwrap().any(|f| {
            std::fs::read_to_string(f.unwrap().path())
                .unwrap_or_default()
                .contains("\"disconnect\"")
        })
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(proxy);

    let cli = |args: &[&str]| {
        let out = Command::new(bin("clsf-proxy"))
            .arg("audit")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let dir = trail.to_str().unwrap();
    let (ok, said) = cli(&["verify", dir]);
    assert!(ok, "{said}");
    let files: Vec<_> = std::fs::read_dir(&trail).unwrap().collect();
    assert!(files.len() >= 3, "rotated by size: {said}");
    assert!(said.contains("chain intact"), "{said}");

    // The session's timeline: connection, masked read, denial, end.
    let (ok, shown) = cli(&["show", dir, "--session", "1"]);
    assert!(ok, "{shown}");
    assert!(shown.starts_with("session 1 (repo:acme/shop"), "{shown}");
    for part in [
        "connect from 127.0.0.1:",
        "statement [mask] SELECT email FROM customers WHERE id = 1;",
        "masked: public.customers.email",
        "statement [deny] SELECT ssn FROM customers;",
        "disconnect",
    ] {
        assert!(shown.contains(part), "{part} missing:\n{shown}");
    }
    assert!(shown.contains(" completed: ok, 1 row(s) in "), "{shown}");
    let (_, none) = cli(&["show", dir, "--identity", "nobody"]);
    assert_eq!(none.trim(), "no events match");

    // What the events carry: the connection's claims and TLS; the statement
    // as sent and as forwarded, its columns with labels and its rules; its
    // completion with rows and duration.
    let mut events: Vec<serde_json::Value> = Vec::new();
    for file in clsf_runtime::audit::trail_paths(&trail).unwrap() {
        for line in clsf_runtime::audit::read_text(&file).unwrap().lines() {
            events.push(serde_json::from_str(line).unwrap());
        }
    }
    let connect = events.iter().find(|e| e["event"] == "connect").unwrap();
    assert_eq!(connect["claims"]["repository"], "acme/shop");
    assert!(connect["claims"].get("exp").is_none());
    assert_eq!(connect["tls"], "none");
    let read = events
        .iter()
        .find(|e| e["event"] == "statement" && e["decision"] == "mask")
        .unwrap();
    assert!(
        read["rewritten"]
            .as_str()
            .unwrap()
            .contains("strpos(\"email\""),
        "{read}"
    );
    assert_eq!(read["rules"], serde_json::json!(["ci_reads"]));
    assert!(
        read["columns"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(
                "public.customers.email (confidential): masked (email)"
            )),
        "{read}"
    );
    // Its completion is on the session's next event.
    let completions: Vec<&serde_json::Value> = events
        .iter()
        .filter_map(|e| e["completed"].as_array())
        .flatten()
        .collect();
    let done = completions
        .iter()
        .find(|c| c["statement_seq"] == read["seq"])
        .unwrap();
    assert_eq!(
        (done["rows"].as_u64(), done["outcome"].as_str()),
        (Some(1), Some("ok"))
    );
    assert!(done["duration_ms"].as_f64().unwrap() > 0.0);
    let denied = events
        .iter()
        .find(|e| e["event"] == "statement" && e["decision"] == "deny")
        .unwrap();
    assert!(
        !completions
            .iter()
            .any(|c| c["statement_seq"] == denied["seq"]),
        "a refused statement never ran"
    );

    // One byte edited in a rotated file: verify fails and names the place.
    let mut rotated: Vec<_> = std::fs::read_dir(&trail)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x != "jsonl"))
        .collect();
    rotated.sort();
    let first = &rotated[0];
    let original = std::fs::read_to_string(first).unwrap();
    std::fs::write(
        first,
        original.replacen("\"session\":1", "\"session\":2", 1),
    )
    .unwrap();
    let (ok, said) = cli(&["verify", dir]);
    assert!(!ok, "{said}");
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    assert!(said.contains(&name) && said.contains("edited"), "{said}");
    // A line deleted instead.
    let without: String = original
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(first, without).unwrap();
    let (ok, said) = cli(&["verify", dir]);
    assert!(
        !ok && said.contains(&name) && said.contains("line 2") && said.contains("missing"),
        "{said}"
    );
}
