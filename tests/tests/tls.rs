//! TLS between clients and the proxy, with libpq (psql) as the client:
//! sslmode=verify-full against a certificate from a test CA, sslmode=require,
//! plaintext refused when TLS is required, and a client trusting another CA
//! refusing the proxy.

use clsf_tests::certs::write_test_ca;
use clsf_tests::fixture;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;

#[test]
fn verify_full_clients_work_and_plaintext_ones_are_refused() {
    let q = fixture::quickstart(None);
    let d = q.dir.path();
    write_test_ca(d);
    let mut config = std::fs::read_to_string(&q.config).unwrap();
    config.push_str("\n[tls]\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n");
    std::fs::write(&q.config, config).unwrap();
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
