//! Shutdown and faults: the proxy stops accepting and lets a statement in flight
//! finish, then ends the session with 57P01.

use std::time::{Duration, Instant};

use clsf_tests::client;
use clsf_tests::fixture;
use clsf_tests::proxy::Proxy;

#[test]
fn a_statement_in_flight_finishes_before_the_proxy_stops() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let port = proxy.addr.port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cfg = client::config(port, "dba", &q.issuer.dba_token());
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let running = tokio::spawn(async move {
            let rows = client
                .simple_query("SELECT pg_sleep(1.5), 'finished'")
                .await;
            (client, rows)
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Stopping blocks until the sessions are done, so do it off this runtime.
        let stopper = std::thread::spawn(move || {
            let started = Instant::now();
            drop(proxy);
            started.elapsed()
        });
        let (client, rows) = running.await.unwrap();
        let rows = rows.expect("the statement in flight must complete");
        let finished = rows.iter().any(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(1) == Some("finished"),
            _ => false,
        });
        assert!(finished);
        let stop_took = tokio::task::spawn_blocking(move || stopper.join().unwrap())
            .await
            .unwrap();
        assert!(
            stop_took >= Duration::from_millis(800),
            "stopped before the statement finished: {stop_took:?}"
        );
        assert!(stop_took < Duration::from_secs(10), "{stop_took:?}");
        // The session was then ended by the proxy.
        assert!(client.simple_query("SELECT 1").await.is_err());
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "no longer accepting"
        );
    });
}

#[test]
fn idle_sessions_are_closed_but_open_transactions_are_not() {
    let q = fixture::quickstart(None);
    let config = std::fs::read_to_string(&q.config).unwrap();
    let config = config.replacen(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nidle_timeout_seconds = 1\n",
        1,
    );
    std::fs::write(&q.config, config).unwrap();
    let proxy = Proxy::start(&q.config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let connect = || client::config(proxy.addr.port(), "dba", &q.issuer.dba_token());
        let (in_tx, conn) = connect().connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let (idle, conn) = connect().connect(tokio_postgres::NoTls).await.unwrap();
        let idle_conn = tokio::spawn(conn);
        let (active, conn) = connect().connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        in_tx.simple_query("BEGIN").await.unwrap();
        idle.simple_query("SELECT 1").await.unwrap();
        // A session idle for less than the timeout between its statements
        // lives on, past the deadline its first idle time set.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            active.simple_query("SELECT 1").await.unwrap();
        }
        // The idle one was closed with 57P05; the one in a transaction lives.
        let ended = idle_conn.await.unwrap();
        let err = ended.expect_err("the idle session must be closed");
        assert_eq!(err.code().map(|c| c.code()), Some("57P05"), "{err:?}");
        in_tx.simple_query("SELECT 1").await.unwrap();
        in_tx.simple_query("COMMIT").await.unwrap();
        active.simple_query("SELECT 1").await.unwrap();
    });
}

/// `statement_timeout_seconds`: a statement still running after the limit
/// is cancelled by the proxy (57014, audited), even one whose session set
/// its own `statement_timeout` to 0, and the session goes on.
#[test]
fn statements_past_the_timeout_are_cancelled() {
    let q = fixture::quickstart(None);
    let config = std::fs::read_to_string(&q.config).unwrap();
    let config = config.replacen(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nstatement_timeout_seconds = 1\n",
        1,
    );
    std::fs::write(&q.config, config).unwrap();
    let proxy = Proxy::start(&q.config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (c, conn) = client::config(proxy.addr.port(), "dba", &q.issuer.dba_token())
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.simple_query("SET statement_timeout = 0").await.unwrap();
        let started = Instant::now();
        let err = c
            .simple_query("SELECT pg_sleep(20)")
            .await
            .expect_err("cancelled");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{err}"
        );
        // Quick statements in a row are not affected, and the session lives on.
        for _ in 0..20 {
            c.simple_query("SELECT 1").await.unwrap();
        }
    });
    let timeouts = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "statement_timeout")
        .count();
    assert_eq!(timeouts, 1);
}

/// A client that vanishes while its statement runs leaves no backend
/// working for nobody: the proxy cancels the statement upstream.
#[test]
fn a_vanished_clients_statement_is_cancelled_upstream() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let running = "SELECT count(*) FROM pg_stat_activity \
                   WHERE query LIKE '%clsf_vanish%' AND state = 'active' \
                   AND pid <> pg_backend_pid()";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (c, conn) = client::config(proxy.addr.port(), "dba", &q.issuer.dba_token())
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        let connection = tokio::spawn(conn);
        let statement =
            tokio::spawn(async move { c.simple_query("SELECT pg_sleep(60) -- clsf_vanish").await });
        // Running upstream first.
        let started = Instant::now();
        while q.pg.superuser_sql("shop", running).trim() != "1" {
            assert!(started.elapsed() < Duration::from_secs(10), "never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The client goes away without a word: its socket is closed.
        connection.abort();
        statement.abort();
    });
    let vanished = Instant::now();
    while q.pg.superuser_sql("shop", running).trim() != "0" {
        assert!(
            vanished.elapsed() < Duration::from_secs(10),
            "the statement still runs upstream {:?} after its client vanished",
            vanished.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancels = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "cancel")
        .count();
    assert_eq!(cancels, 1);
}

/// The database restarting under open sessions: an idle session and one
/// inside a transaction each end with a clear error (the server's 57P01 or
/// the proxy's 08006), the transaction's write is not there, new sessions
/// work once the server is back, and the audit trail says how each ended.
#[test]
fn sessions_end_clearly_when_the_database_restarts() {
    use tokio_postgres::error::SqlState;
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let cfg = client::config(proxy.addr.port(), "dba", &q.issuer.dba_token());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (idle, idle_conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        let idle_conn = tokio::spawn(idle_conn);
        idle.simple_query("SELECT 1").await.unwrap();
        let (in_tx, tx_conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        let tx_conn = tokio::spawn(tx_conn);
        in_tx
            .simple_query(
                "BEGIN; INSERT INTO orders (id, customer_id, total_cents, status) \
                 VALUES (99, 1, 1, 'restart')",
            )
            .await
            .unwrap();

        q.pg.restart_with("");

        for (name, conn) in [("idle", idle_conn), ("in a transaction", tx_conn)] {
            let ended = tokio::time::timeout(Duration::from_secs(10), conn)
                .await
                .unwrap_or_else(|_| panic!("the {name} session was not ended"))
                .unwrap();
            let err = ended.expect_err("ended with an error");
            assert!(
                matches!(
                    err.code(),
                    Some(&SqlState::ADMIN_SHUTDOWN) | Some(&SqlState::CONNECTION_FAILURE)
                ),
                "the {name} session: {err}"
            );
        }
        assert!(in_tx.simple_query("COMMIT").await.is_err());
        assert!(idle.simple_query("SELECT 1").await.is_err());

        let again = client::connect_within(&cfg, Duration::from_secs(20)).await;
        assert_eq!(again.simple_query("SELECT 1").await.unwrap().len(), 3);
    });
    assert_eq!(
        q.pg.superuser_sql("shop", "SELECT count(*) FROM orders WHERE id = 99")
            .trim(),
        "0",
        "the write of the interrupted transaction is not there"
    );
    let ended: Vec<String> = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "disconnect")
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        ended.iter().filter(|r| r.contains("upstream")).count(),
        2,
        "{ended:?}"
    );
}

/// SIGTERM (what Kubernetes, systemd and `docker stop` send) under load:
/// the proxy stops accepting, lets statements in flight finish, ends the
/// sessions, closes the audit trail cleanly and exits 0, within the grace.
#[test]
fn sigterm_under_load_is_a_graceful_bounded_stop() {
    use std::process::Command;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let q = fixture::quickstart(None);
    let text = std::fs::read_to_string(&q.config).unwrap();
    std::fs::write(&q.config, format!("shutdown_grace_seconds = 3\n{text}")).unwrap();
    let mut command = Command::new(clsf_tests::bins::bin("clsf-proxy"));
    command.arg("--config").arg(&q.config);
    let (mut proxy, addr, log) = clsf_tests::proxy::spawn_binary(command);
    let token = q.issuer.dba_token();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let config = client::config(addr.port(), "dba", &token);
            let acknowledged = Arc::clone(&acknowledged);
            runtime.spawn(async move {
                let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                // Bounded: the proxy stops long before.
                for i in 0..20_000 {
                    let id = 200_000 + w * 20_000 + i;
                    let sql = format!("INSERT INTO orders VALUES ({id}, 1, 1, 'term')");
                    if client.simple_query(&sql).await.is_err() {
                        return;
                    }
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let slow = {
        let config = client::config(addr.port(), "dba", &token);
        runtime.spawn(async move {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            client
                .simple_query("SELECT pg_sleep(1.5), 'slow finished'")
                .await
                .map(|rows| {
                    rows.iter().any(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            r.get(1) == Some("slow finished")
                        }
                        _ => false,
                    })
                })
        })
    };
    let begun = Instant::now();
    while acknowledged.load(Ordering::Relaxed) < 200 && begun.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300)); // the slow statement is in flight
    let pid = proxy.0.id().to_string();
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = proxy.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(6), "stopping took {took:?}");
    assert!(
        runtime
            .block_on(slow)
            .unwrap()
            .expect("the slow statement finished"),
        "the statement in flight finished"
    );
    runtime.block_on(async {
        for w in writers {
            w.await.unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l == "clsf-proxy: stopped"),
        "{:?}",
        log.lock().unwrap()
    );

    // The trail is closed cleanly (no reserved room left), verifies, and
    // holds every insert that ran.
    let trail = q.dir.path().join("audit.jsonl");
    let raw = std::fs::read(&trail).unwrap();
    assert_eq!(raw.last(), Some(&b'\n'), "trimmed to its last event");
    clsf_tests::trail::assert_every_insert_is_on_the_trail(
        &q.pg,
        &trail,
        "term",
        acknowledged.load(Ordering::Relaxed),
    );
    drop(proxy);
}

/// The database restarting in the middle of a COPY, in each direction: the
/// client gets a clear error, nothing of the interrupted COPY FROM is
/// stored, the trail records the statement and why the session ended, and
/// the next session works.
#[test]
fn copies_end_clearly_when_the_database_restarts() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let token = q.issuer.dba_token();
    let psql = |sql: &str| {
        clsf_tests::postgres::psql()
            .arg(format!(
                "host=127.0.0.1 port={} user=dba dbname={} sslmode=disable",
                proxy.addr.port(),
                clsf_tests::postgres::DATABASE
            ))
            .args(["-X", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", &token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };

    // COPY FROM STDIN: some rows sent, then the database restarts.
    let mut from = psql("COPY orders (id, customer_id, total_cents, status) FROM STDIN");
    let mut stdin = from.stdin.take().unwrap();
    for id in 500..600 {
        writeln!(stdin, "{id}\t1\t1\tcopy-restart").unwrap();
    }
    stdin.flush().unwrap();
    // COPY TO STDOUT: a large result, partly read, then the restart.
    let mut to = psql("COPY (SELECT repeat('x', 1000) FROM generate_series(1, 3000000)) TO STDOUT");
    let mut stdout = to.stdout.take().unwrap();
    let mut first = vec![0u8; 64 * 1024];
    stdout.read_exact(&mut first).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    q.pg.restart_with("");

    // The rest of the COPY FROM goes nowhere; psql reports the failure.
    for id in 600..700 {
        if writeln!(stdin, "{id}\t1\t1\tcopy-restart").is_err() {
            break;
        }
    }
    drop(stdin);
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest);
        rest.len()
    });
    let wait = |child: &mut std::process::Child, what: &str| {
        let begun = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                begun.elapsed() < Duration::from_secs(20),
                "{what} did not end after the restart"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let from_status = wait(&mut from, "COPY FROM");
    let to_status = wait(&mut to, "COPY TO");
    let streamed = reader.join().unwrap();
    assert!(!from_status.success(), "COPY FROM cannot have succeeded");
    assert!(!to_status.success(), "COPY TO cannot have succeeded");
    assert!(
        streamed < 3_000_000 * 1001,
        "the copy was cut short: {streamed} bytes"
    );
    for (child, what) in [(&mut from, "COPY FROM"), (&mut to, "COPY TO")] {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            err.contains("terminating connection")
                || err.contains("server closed the connection")
                || err.contains("cannot reach the upstream"),
            "{what}: {err}"
        );
    }
    assert_eq!(
        q.pg.superuser_sql(
            clsf_tests::postgres::DATABASE,
            "SELECT count(*) FROM orders WHERE status = 'copy-restart'"
        )
        .trim(),
        "0",
        "nothing of the interrupted COPY is stored"
    );
    let events = proxy.audit_events();
    for copy in ["COPY orders", "COPY (SELECT repeat"] {
        assert!(
            events
                .iter()
                .any(|e| e["statement"].as_str().is_some_and(|s| s.starts_with(copy))),
            "{copy} is on the trail"
        );
    }
    let ended = events
        .iter()
        .filter(|e| e["event"] == "disconnect")
        .filter(|e| e["reason"].as_str().is_some_and(|r| r.contains("upstream")))
        .count();
    assert_eq!(ended, 2, "both sessions ended because of the upstream");
    // A COPY reported as completed would be a lie.
    for e in &events {
        for c in e["completed"].as_array().into_iter().flatten() {
            assert_ne!(
                c["outcome"], "ok",
                "nothing completed after the restart: {e}"
            );
        }
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cfg = client::config(proxy.addr.port(), "dba", &q.issuer.dba_token());
        let again = client::connect_within(&cfg, Duration::from_secs(20)).await;
        assert_eq!(again.simple_query("SELECT 1").await.unwrap().len(), 3);
    });
}
