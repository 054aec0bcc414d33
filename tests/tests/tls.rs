//! TLS between clients and the proxy, with libpq (psql) as the client:
//! sslmode=verify-full against a certificate from a test CA, sslmode=require,
//! plaintext refused when TLS is required, and a client trusting another CA
//! refusing the proxy; PostgreSQL 17's direct TLS with libpq 18 (psycopg's
//! bundled one).

use clsf_tests::certs::write_test_ca;
use clsf_tests::fixture;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;

#[test]
fn verify_full_clients_work_and_plaintext_ones_are_refused() {
    let q = fixture::quickstart(None);
    let d = q.dir.path();
    fixture::enable_client_tls(&q);
    let proxy = Proxy::start(&q.config);
    let port = proxy.addr.port();
    let token = q.issuer.ci_token();

    let verified = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={}",
        d.join("ca.pem").display()
    );
    let out = psql::run_conninfo(
        &verified,
        &token,
        "SELECT email FROM customers WHERE id = 1;\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().next(),
        Some("****@example.com"),
        "{}",
        out.stdout
    );

    let required = format!("host=127.0.0.1 port={port} sslmode=require");
    let out = psql::run_conninfo(&required, &token, "SELECT 1;\n");
    assert_eq!(out.code, 0, "{}", out.stderr);

    // A client that does not ask for TLS never gets to send its token.
    let plain = format!("host=127.0.0.1 port={port} sslmode=disable");
    let out = psql::run_conninfo(&plain, &token, "SELECT 1;\n");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("requires TLS"), "{}", out.stderr);

    // A client that verifies against another CA refuses the proxy.
    let other = tempfile::tempdir().unwrap();
    write_test_ca(other.path());
    let wrong_ca = format!(
        "host=localhost hostaddr=127.0.0.1 port={port} sslmode=verify-full sslrootcert={}",
        other.path().join("ca.pem").display()
    );
    let out = psql::run_conninfo(&wrong_ca, &token, "SELECT 1;\n");
    assert_eq!(out.code, 2);
    // OpenSSL finds the other CA by its (equal) name and fails on the
    // signature ("EVP lib") or on the chain ("certificate verify failed").
    assert!(
        out.stderr.contains("SSL error") || out.stderr.contains("certificate verify failed"),
        "{}",
        out.stderr
    );
}

/// The proxy's own connection to the database over TLS with `verify-full`:
/// the gateway's backend reports TLS in `pg_stat_ssl`; a server whose
/// certificate does not carry the expected name, or does not chain to the
/// configured CA, is refused (the client gets FATAL 08006 "cannot reach
/// the upstream database", and nothing goes in clear).
#[test]
fn the_upstream_connection_is_verified_tls() {
    let q = fixture::quickstart(None);
    let d = q.dir.path();
    write_test_ca(d);
    q.pg.enable_tls(&d.join("server.pem"), &d.join("server.key"));
    let base = std::fs::read_to_string(&q.config).unwrap();
    let with_upstream_tls = |extra: &str| {
        let text = base.replace(
            "password_file = \"upstream.pw\"",
            &format!("password_file = \"upstream.pw\"\nsslmode = \"verify-full\"\nsslrootcert = \"ca.pem\"\n{extra}"),
        );
        assert_ne!(text, base);
        std::fs::write(&q.config, text).unwrap();
        Proxy::start(&q.config)
    };

    let proxy = with_upstream_tls("");
    let token = q.issuer.ci_token();
    let refused = |proxy: &Proxy| {
        let out = psql::run(proxy.addr, &token, "SELECT 1;\n");
        assert_eq!(out.code, 2, "{}", out.stdout);
        assert!(
            out.stderr.contains("cannot reach the upstream database"),
            "{}",
            out.stderr
        );
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (client, conn) = clsf_tests::client::config(proxy.addr.port(), "w", &token)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows = client
            .simple_query("SELECT email FROM customers WHERE id = 1")
            .await
            .unwrap();
        let email = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        });
        assert_eq!(email.as_deref(), Some("****@example.com"));
        // While the session is open, the server sees its backend on TLS.
        let on_tls = q.pg.superuser_sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE usename = 'clsf_gateway' AND ssl",
        );
        assert_eq!(on_tls.trim(), "1", "the gateway's backend is on TLS");
    });
    // A session's TLS connection is kept, and the next session with the
    // same startup parameters runs on it, still on TLS.
    let on_tls = "SELECT pg_backend_pid(), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n";
    let first = psql::run(proxy.addr, &token, on_tls);
    let backend = first.stdout.trim().trim_end_matches("|t").to_owned();
    assert_eq!(
        first.stdout.trim(),
        format!("{backend}|t"),
        "{}",
        first.stderr
    );
    fixture::wait_kept(&q, &backend);
    let next = psql::run(proxy.addr, &token, on_tls);
    assert_eq!(next.stdout.trim(), first.stdout.trim(), "{}", next.stderr);
    drop(proxy);

    // The certificate names localhost and 127.0.0.1, not this.
    let proxy = with_upstream_tls("tls_server_name = \"db.elsewhere.example\"");
    refused(&proxy);
    drop(proxy);

    // Another CA.
    let other = tempfile::tempdir().unwrap();
    write_test_ca(other.path());
    std::fs::copy(other.path().join("ca.pem"), d.join("other-ca.pem")).unwrap();
    let text = base.replace(
        "password_file = \"upstream.pw\"",
        "password_file = \"upstream.pw\"\nsslmode = \"verify-full\"\nsslrootcert = \"other-ca.pem\"",
    );
    std::fs::write(&q.config, text).unwrap();
    let proxy = Proxy::start(&q.config);
    refused(&proxy);
}

#[test]
fn direct_tls_with_alpn_works_and_without_alpn_is_refused() {
    let q = fixture::quickstart(None);
    let d = q.dir.path();
    fixture::enable_client_tls(&q);
    let proxy = Proxy::start(&q.config);
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=shop user=ci sslmode=verify-full sslrootcert={} sslnegotiation=direct",
        proxy.addr.port(),
        d.join("ca.pem").display()
    );
    // libpq 18 (bundled with psycopg's binary wheel) starts TLS at once and
    // offers ALPN `postgresql`.
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, psycopg\n\
             with psycopg.connect(sys.argv[1], password=sys.argv[2]) as c:\n\
             \x20   print(c.execute('SELECT email FROM customers WHERE id = 1').fetchone()[0])\n\
             \x20   print(c.pgconn.ssl_in_use)",
        )
        .arg(&conninfo)
        .arg(q.issuer.ci_token())
        .env(
            "PYTHONPATH",
            clsf_tests::bins::repo_root().join("tests/.deps/python"),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>(),
        ["****@example.com", "True"]
    );

    // A TLS handshake straight away without ALPN: closed after the
    // handshake, never a session.
    let config = clsf_tests::https::client_config(&d.join("ca.pem"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answer = runtime.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0ci\0database\0shop\0\0");
        let len = (startup.len() as u32).to_be_bytes();
        startup[..4].copy_from_slice(&len);
        let _ = tls.write_all(&startup).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tls.read_to_end(&mut out),
        )
        .await;
        out
    });
    assert!(
        !answer.contains(&b'R'),
        "no authentication may start: {answer:?}"
    );
}

/// Beyond `max_connections`, a client that asks for TLS gets the 53300
/// refusal inside TLS, where libpq shows it (an error in reply to its
/// SSLRequest it would not show), also when it verifies the proxy.
#[test]
fn beyond_the_limit_tls_clients_read_the_refusal() {
    let q = fixture::quickstart(None);
    fixture::enable_client_tls(&q);
    let config = std::fs::read_to_string(&q.config).unwrap();
    std::fs::write(
        &q.config,
        config.replacen(
            "listen = \"127.0.0.1:0\"\n",
            "listen = \"127.0.0.1:0\"\nmax_connections = 1\n",
            1,
        ),
    )
    .unwrap();
    let proxy = Proxy::start(&q.config);
    // A connection that has sent nothing yet holds the one slot (until
    // the startup timeout).
    let _slot = std::net::TcpStream::connect(proxy.addr).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let verified = format!(
        "host=localhost hostaddr=127.0.0.1 port={} sslmode=verify-full sslrootcert={}",
        proxy.addr.port(),
        q.dir.path().join("ca.pem").display()
    );
    let out = psql::run_conninfo(&verified, &q.issuer.ci_token(), "SELECT 1;\n");
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("too many clients"), "{}", out.stderr);
}
