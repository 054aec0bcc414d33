//! Bad bytes on the wire: every malformed input gets a protocol error (or a
//! clean close), never a crash, and the proxy keeps serving.

use std::time::Duration;

use clsf_tests::client;
use clsf_tests::fixture;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;
use clsf_tests::raw::{contains, exchange, message, startup_packet};

/// The message type bytes of a backend byte stream.
fn backend_tags(mut bytes: &[u8]) -> Vec<char> {
    let mut tags = Vec::new();
    while bytes.len() >= 5 {
        let len = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        tags.push(bytes[0] as char);
        bytes = &bytes[(1 + len).min(bytes.len())..];
    }
    tags
}

#[test]
fn malformed_input_is_refused_and_the_proxy_survives() {
    let q = fixture::quickstart(None);
    let issuer = &q.issuer;
    let proxy = Proxy::start(&q.config);
    let addr = proxy.addr;

    // A startup length below its own size, and one above the limit.
    assert!(contains(
        &exchange(addr, &[0, 0, 0, 3, 0, 0, 0, 0]),
        "08P01"
    ));
    assert!(contains(
        &exchange(addr, &[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0]),
        "08P01"
    ));
    // An unknown protocol version.
    let mut v9 = startup_packet(&[("user", "x")]);
    v9[4..8].copy_from_slice(&(9i32 << 16).to_be_bytes());
    assert!(contains(&exchange(addr, &v9), "0A000"));
    // Unterminated parameters.
    let mut bad = startup_packet(&[("user", "x")]);
    let n = bad.len();
    bad.truncate(n - 2);
    bad[0..4].copy_from_slice(&((n - 2) as i32).to_be_bytes());
    assert!(contains(&exchange(addr, &bad), "08P01"));
    // `options` with a switch that is not a setting is refused before any
    // credential is asked for (settings are decided once the identity is
    // known: clients::startup_settings_are_decided_as_set_is).
    let opts = startup_packet(&[("user", "x"), ("database", "shop"), ("options", "-B 100")]);
    assert!(contains(&exchange(addr, &opts), "options"));
    // A non-UTF8 client encoding.
    let enc = startup_packet(&[
        ("user", "x"),
        ("database", "shop"),
        ("client_encoding", "SJIS"),
    ]);
    assert!(contains(&exchange(addr, &enc), "UTF8"));
    // A wrong database.
    let db = startup_packet(&[("user", "x"), ("database", "other")]);
    assert!(contains(&exchange(addr, &db), "3D000"));
    // Data sent before the answer to SSLRequest.
    let mut early = vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    early.extend_from_slice(&startup_packet(&[("user", "x")]));
    let answer = exchange(addr, &early);
    assert!(
        !contains(&answer, "R"),
        "no authentication must start: {answer:?}"
    );
    // Something other than a password after the password request.
    let mut no_pw = startup_packet(&[("user", "x"), ("database", "shop")]);
    no_pw.extend_from_slice(&message(b'Q', b"SELECT 1\0"));
    assert!(contains(&exchange(addr, &no_pw), "08P01"));
    // Garbage after a successful login: an unknown message type and a bad length.
    let token = issuer.ci_token();
    let mut pw = token.into_bytes();
    pw.push(0);
    for tail in [message(b'?', b""), vec![b'Q', 0, 0, 0, 1]] {
        let mut session = startup_packet(&[("user", "x"), ("database", "shop")]);
        session.extend_from_slice(&message(b'p', &pw));
        session.extend_from_slice(&tail);
        let answer = exchange(addr, &session);
        assert!(contains(&answer, "08P01"), "{answer:?}");
    }
    // A query whose text is not UTF-8 is refused and the session goes on.
    let mut session = startup_packet(&[("user", "x"), ("database", "shop")]);
    session.extend_from_slice(&message(b'p', &pw));
    session.extend_from_slice(&message(b'Q', b"SELECT '\xff'\0"));
    session.extend_from_slice(&message(b'Q', b"SELECT 42 AS answer\0"));
    session.extend_from_slice(&message(b'X', b""));
    let answer = exchange(addr, &session);
    assert!(contains(&answer, "22021"), "{answer:?}");
    assert!(contains(&answer, "answer"), "{answer:?}");

    // The extended protocol: a refused Parse gets the refusal in order, the
    // server skips to Sync, and the session goes on; an allowed one runs.
    let mut session = startup_packet(&[("user", "x"), ("database", "shop")]);
    session.extend_from_slice(&message(b'p', &pw));
    session.extend_from_slice(&message(b'P', b"\0SELECT ssn FROM customers\0\0\0"));
    session.extend_from_slice(&message(b'B', b"\0\0\0\0\0\0\0\0"));
    session.extend_from_slice(&message(b'E', b"\0\0\0\0\0"));
    session.extend_from_slice(&message(b'S', b""));
    session.extend_from_slice(&message(b'P', b"\0SELECT 'after-sync'\0\0\0"));
    session.extend_from_slice(&message(b'B', b"\0\0\0\0\0\0\0\0"));
    session.extend_from_slice(&message(b'E', b"\0\0\0\0\0"));
    session.extend_from_slice(&message(b'S', b""));
    session.extend_from_slice(&message(b'X', b""));
    let answer = exchange(addr, &session);
    assert!(
        contains(&answer, "42501") && contains(&answer, "ssn"),
        "{answer:?}"
    );
    assert!(contains(&answer, "after-sync"), "{answer:?}");
    // Exactly the client's own ParseComplete and BindComplete come back.
    let tags = backend_tags(&answer);
    let after_auth: String = tags.iter().skip_while(|t| **t != 'Z').skip(1).collect();
    assert_eq!(after_auth, "EZ12DCZ", "{tags:?}");

    // After all of that, a normal client still works.
    let out = psql::run(
        addr,
        &issuer.dba_token(),
        "SELECT count(*) FROM customers;\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "4");
}

#[test]
fn tokio_postgres_through_both_protocols() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cfg = client::config(proxy.addr.port(), "ci", &q.issuer.ci_token());
        let (mut client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);

        // Simple protocol.
        let rows = client
            .simple_query("SELECT email FROM customers WHERE id = 3")
            .await
            .unwrap();
        let values: Vec<String> = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
        assert_eq!(values, vec!["****@navy.mil".to_owned()]);
        let err = client
            .simple_query("SELECT ssn FROM customers")
            .await
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");

        // Extended protocol: parameters, binary results, masked values.
        let rows = client
            .query(
                "SELECT id, card_number FROM customers WHERE id = $1",
                &[&2i32],
            )
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), 2);
        assert_eq!(rows[0].get::<_, String>(1), "************0004");
        let err = client
            .query("SELECT ssn FROM customers WHERE id = $1", &[&1i32])
            .await
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");
        assert!(
            err.as_db_error()
                .is_some_and(|e| e.message().contains("`ssn`")),
            "{err:?}"
        );
        // A prepared statement runs many times; the session survives refusals.
        let stmt = client
            .prepare("SELECT email FROM customers WHERE id = $1")
            .await
            .unwrap();
        for id in 1..=4i32 {
            let row = client.query_one(&stmt, &[&id]).await.unwrap();
            assert!(row.get::<_, String>(0).starts_with("****@"));
        }

        // Pipelined: three queries in flight, the middle one refused.
        let (a, b, c) = tokio::join!(
            client.query("SELECT 1::int4", &[]),
            client.query("SELECT ssn FROM customers", &[]),
            client.query("SELECT email FROM customers WHERE id = 4", &[]),
        );
        assert_eq!(a.unwrap()[0].get::<_, i32>(0), 1);
        assert_eq!(b.unwrap_err().code().map(|c| c.code()), Some("42501"));
        assert_eq!(c.unwrap()[0].get::<_, String>(0), "****@tue.nl");

        // Inside a transaction a refusal aborts it, as PostgreSQL would.
        let tx = client.transaction().await.unwrap();
        tx.execute("UPDATE orders SET status = 'x' WHERE id = 10", &[])
            .await
            .unwrap();
        assert!(tx.query("SELECT ssn FROM customers", &[]).await.is_err());
        let err = tx.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("25P02"), "{err}");
        tx.rollback().await.unwrap();
        let status: String = client
            .query_one("SELECT status FROM orders WHERE id = 10", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(status, "shipped");
    });
    drop(runtime);
    // Every execution is audited, with the statement it runs.
    let executes: Vec<serde_json::Value> = proxy
        .audit_events()
        .into_iter()
        .filter(|e| {
            e["event"] == "execute" && e["statement"] == "SELECT email FROM customers WHERE id = $1"
        })
        .collect();
    assert_eq!(executes.len(), 4);
    assert!(executes.iter().all(|e| e["decision"] == "mask"));
}

#[test]
fn cancel_requests_reach_the_right_backend_and_unknown_keys_are_ignored() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let addr = proxy.addr;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cfg = client::config(addr.port(), "dba", &q.issuer.dba_token());
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);

        let cancel = client.cancel_token();
        let canceller = tokio::spawn(async move {
            // First a cancel with a made-up key: it must do nothing.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let bogus = startup_like(&[0x04, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 0, 0, 0, 2]);
            let _ = exchange(addr, &bogus);
            tokio::time::sleep(Duration::from_millis(700)).await;
            // Then the real one, through the proxy.
            cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
        });
        let started = std::time::Instant::now();
        let err = client
            .simple_query("SELECT pg_sleep(20)")
            .await
            .unwrap_err();
        let waited = started.elapsed();
        canceller.await.unwrap();
        assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
        assert!(
            waited >= Duration::from_millis(900),
            "the bogus cancel must not cancel: {waited:?}"
        );
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        // The session is still usable.
        client.simple_query("SELECT 1").await.unwrap();
    });
    assert_eq!(
        proxy
            .audit_events()
            .iter()
            .filter(|e| e["event"] == "cancel")
            .count(),
        1
    );
}

/// A length-prefixed packet without a type byte (startup, cancel).
fn startup_like(body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The extended protocol's statements are recorded once, before they run:
/// an unnamed `Parse`/`Bind`/`Execute`/`Sync` pipeline (what pgbench,
/// psycopg and node-postgres send) writes one `statement` event, at its
/// `Execute`, carrying the decision made at the `Parse`; a statement only
/// prepared is recorded at its `Sync`, and one prepared without a `Sync`
/// when the session ends.
#[test]
fn an_extended_statement_is_recorded_once_before_it_runs() {
    use clsf_tests::postgres::DATABASE;
    use clsf_tests::raw::login;
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let parse = |name: &str, text: &str| {
        let mut body = format!("{name}\0{text}\0").into_bytes();
        body.extend_from_slice(&0i16.to_be_bytes());
        message(b'P', &body)
    };
    let bind = |value: &str| {
        let mut body = b"\0\0".to_vec();
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&(value.len() as i32).to_be_bytes());
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        message(b'B', &body)
    };
    let execute = message(b'E', b"\0\0\0\0\0");
    let sync = message(b'S', b"");
    let point = "SELECT email FROM customers WHERE id = $1";
    let mut bytes = login("ci", DATABASE, &q.issuer.ci_token());
    for id in ["1", "2"] {
        bytes.extend(parse("", point));
        bytes.extend(bind(id));
        bytes.extend_from_slice(&execute);
        bytes.extend_from_slice(&sync);
    }
    bytes.extend(parse(
        "only_prepared",
        "SELECT id FROM customers WHERE id = $1",
    ));
    bytes.extend_from_slice(&sync);
    // More Parses without a Sync than the proxy keeps unrecorded.
    for i in 0..100 {
        bytes.extend(parse("", &format!("SELECT {i} AS burst")));
    }
    bytes.extend_from_slice(&sync);
    bytes.extend(parse("never_synced", "SELECT name FROM customers"));
    bytes.extend(message(b'X', b""));
    let reply = exchange(proxy.addr, &bytes);
    assert!(contains(&reply, "****@example.com"), "{reply:?}");
    assert!(contains(&reply, "****@turing.org"), "{reply:?}");
    assert!(!contains(&reply, "ada@example.com"), "nothing in clear");

    // The disconnect event follows the close the client saw.
    let mut events = proxy.audit_events();
    for _ in 0..100 {
        if events.iter().any(|e| e["event"] == "disconnect") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        events = proxy.audit_events();
    }
    let of = |text: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["statement"] == text).collect()
    };
    let runs = of(point);
    assert_eq!(runs.len(), 2, "one event per execution: {runs:#?}");
    for e in &runs {
        assert_eq!(e["event"], "statement");
        assert_eq!(e["decision"], "mask");
        assert!(
            e["columns"].as_array().is_some_and(|c| !c.is_empty()),
            "{e}"
        );
    }
    // Each execution's rows are recorded on a later event.
    for run in &runs {
        let completed: Vec<&serde_json::Value> = events
            .iter()
            .filter_map(|e| e["completed"].as_array())
            .flatten()
            .filter(|c| c["statement_seq"] == run["seq"])
            .collect();
        assert_eq!(completed.len(), 1, "{events:#?}");
        assert_eq!(completed[0]["rows"], 1);
        assert_eq!(completed[0]["outcome"], "ok");
    }
    let prepared = of("SELECT id FROM customers WHERE id = $1");
    assert_eq!(prepared.len(), 1, "{prepared:#?}");
    assert_eq!(prepared[0]["event"], "statement");
    let burst = events
        .iter()
        .filter(|e| {
            e["event"] == "statement"
                && e["statement"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("AS burst"))
        })
        .count();
    assert_eq!(burst, 100, "each prepared statement recorded once");
    let unsynced = of("SELECT name FROM customers");
    assert_eq!(unsynced.len(), 1, "recorded when the session ended");
    let session = &unsynced[0]["session"];
    let last = events
        .iter()
        .rev()
        .find(|e| &e["session"] == session)
        .unwrap();
    assert_eq!(last["event"], "disconnect", "{events:#?}");
    assert!(last["seq"].as_u64() > unsynced[0]["seq"].as_u64());
    assert!(
        !events.iter().any(|e| e["event"] == "execute"),
        "no second line for a first execution"
    );
}

/// Beyond `max_connections` a storm of clients is refused at once with
/// 53300 (none hangs, the proxy lives on); a cancel request still reaches
/// its statement at the limit; a freed slot is taken again; a client that
/// stalls halfway through its startup packet is cut off after
/// `startup_timeout_seconds`.
#[test]
fn the_connection_limit_refuses_clearly_and_stalled_startups_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_postgres::error::SqlState;
    let q = fixture::quickstart(None);
    let config = std::fs::read_to_string(&q.config).unwrap();
    std::fs::write(
        &q.config,
        config.replacen(
            "listen = \"127.0.0.1:0\"\n",
            "listen = \"127.0.0.1:0\"\nmax_connections = 3\nstartup_timeout_seconds = 1\n",
            1,
        ),
    )
    .unwrap();
    let proxy = Proxy::start(&q.config);
    let cfg = client::config(proxy.addr.port(), "dba", &q.issuer.dba_token());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..3 {
            let (c, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            held.push(c);
        }
        // A storm of 2 000 connection attempts (each uses a descriptor on
        // both sides, in this one process: fewer under a low limit).
        let fd_limit: usize = std::process::Command::new("sh")
            .args(["-c", "ulimit -n"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(1024);
        let attempts = 2000.min(fd_limit.saturating_sub(256) / 2);
        let started = std::time::Instant::now();
        let storm: Vec<_> = (0..attempts)
            .map(|_| {
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    // Bounded: a refusal that never comes is a failure, not a hang.
                    tokio::time::timeout(
                        Duration::from_secs(10),
                        cfg.connect(tokio_postgres::NoTls),
                    )
                    .await
                    .ok()
                    .and_then(Result::err)
                })
            })
            .collect();
        for attempt in storm {
            let err = attempt.await.unwrap().expect("refused beyond the limit");
            assert_eq!(err.code(), Some(&SqlState::TOO_MANY_CONNECTIONS), "{err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );

        // libpq says why too, with or without asking for TLS first.
        for ssl in ["disable", "prefer"] {
            let conninfo = format!("host=127.0.0.1 port={} sslmode={ssl}", proxy.addr.port());
            let token = q.issuer.dba_token();
            let out = tokio::task::spawn_blocking(move || {
                psql::run_conninfo(&conninfo, &token, "SELECT 1;\n")
            })
            .await
            .unwrap();
            assert!(
                out.stderr.contains("too many clients"),
                "sslmode={ssl}: {}",
                out.stderr
            );
        }

        // At the limit, a client can still stop its own statement.
        let busy = held.pop().unwrap();
        let token = busy.cancel_token();
        let running = tokio::spawn(async move {
            let r = busy.simple_query("SELECT pg_sleep(30)").await;
            (busy, r)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        let (busy, result) = running.await.unwrap();
        let err = result.expect_err("cancelled");
        assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");

        // A slot freed is taken again.
        drop(busy);
        let again = client::connect_within(&cfg, Duration::from_secs(5)).await;
        assert_eq!(again.simple_query("SELECT 1").await.unwrap().len(), 3);

        // With room again, a client that sends half a startup packet and
        // stops is disconnected by the startup timeout.
        drop(again);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut stalled = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        stalled.write_all(&[0, 0, 0, 40, 0, 3]).await.unwrap();
        let cut = std::time::Instant::now();
        let mut rest = Vec::new();
        // Closed (cleanly or by a reset): either ends the read.
        let _ = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest))
            .await
            .expect("the proxy closes a stalled startup");
        assert!(
            cut.elapsed() < Duration::from_secs(4),
            "{:?}",
            cut.elapsed()
        );
    });
    // The proxy still serves.
    let out = psql::run(proxy.addr, &q.issuer.dba_token(), "SELECT 1;\n");
    assert!(out.stdout.contains('1'), "{}", out.stderr);
}

/// A message larger than the proxy holds in memory is refused clearly
/// (54000, naming both sizes) before any of it is buffered, and the
/// statement never reaches the database.
#[test]
fn an_oversized_message_is_refused_with_a_clear_error() {
    use clsf_tests::postgres::DATABASE;
    use clsf_tests::raw::login;
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let mut bytes = login("dba", DATABASE, &q.issuer.dba_token());
    // A Query header announcing about 2 GB, then a little of its body.
    bytes.extend_from_slice(b"Q\x7f\x00\x00\x00SELECT 'oversized'");
    let answer = exchange(proxy.addr, &bytes);
    assert!(
        contains(&answer, "54000"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        contains(&answer, "a message of 2130706432 bytes"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        !proxy.audit_events().iter().any(|e| e["statement"]
            .as_str()
            .is_some_and(|s| s.contains("oversized"))),
        "nothing of it was decided or run"
    );
}
