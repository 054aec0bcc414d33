//! Bad bytes on the wire: every malformed input gets a protocol error (or a
//! clean close), never a crash, and the proxy keeps serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use clsf_tests::fixture;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;

fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Sends `bytes`, reads until the proxy closes (bounded), returns what came back.
fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
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
    // Options that could change name resolution are refused.
    let opts = startup_packet(&[
        ("user", "x"),
        ("database", "shop"),
        ("options", "-c search_path=evil"),
    ]);
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

    // The extended protocol is refused with 0A000, discarded up to Sync,
    // and the session is still usable afterwards.
    let mut session = startup_packet(&[("user", "x"), ("database", "shop")]);
    session.extend_from_slice(&message(b'p', &pw));
    session.extend_from_slice(&message(b'P', b"\0SELECT 1\0\0\0"));
    session.extend_from_slice(&message(b'B', b"\0\0\0\0\0\0\0\0"));
    session.extend_from_slice(&message(b'E', b"\0\0\0\0\0"));
    session.extend_from_slice(&message(b'S', b""));
    session.extend_from_slice(&message(b'Q', b"SELECT 'after-sync'\0"));
    session.extend_from_slice(&message(b'X', b""));
    let answer = exchange(addr, &session);
    assert!(contains(&answer, "0A000"), "{answer:?}");
    assert!(contains(&answer, "after-sync"), "{answer:?}");

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
fn tokio_postgres_simple_queries_work_and_extended_ones_are_refused_cleanly() {
    let q = fixture::quickstart(None);
    let issuer = &q.issuer;
    let proxy = Proxy::start(&q.config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(proxy.addr.port())
            .user("ci")
            .dbname("shop")
            .password(issuer.ci_token())
            .connect_timeout(Duration::from_secs(10));
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
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
        let err = client.query("SELECT 1", &[]).await.unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("0A000"), "{err}");
        let err = client
            .simple_query("SELECT ssn FROM customers")
            .await
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");
        let again = client.simple_query("SELECT 1").await.unwrap();
        assert!(
            again
                .iter()
                .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
        );
    });
}
