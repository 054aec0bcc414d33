//! Workload identities beyond one token issuer: several issuers at once
//! (one JWKS from a file, one fetched over HTTPS with a claim mapping and
//! key rotation, refetched at a bounded rate), a static service account
//! with SCRAM-SHA-256 (psql's libpq checks the server's proof too), a
//! client certificate as the identity (mutual TLS, on the wire protocol
//! and on the MCP listener), and a session closed when its token expires.

use std::time::Duration;

use clsf_tests::certs::{write_client_cert, write_test_ca};
use clsf_tests::fixture::{self, Quickstart};
use clsf_tests::https::DocumentServer;
use clsf_tests::identity::{AUDIENCE, Issuer};
use clsf_tests::postgres::DATABASE;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;
use serde_json::json;

const GITLAB: &str = "https://gitlab.clsf.example";
const PASSWORD: &str = "correct horse battery staple";

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group ci {
  issuer "https://issuer.clsf.example"
  audience "clsf-proxy"
  claim repository == "acme/shop"
}
// GitLab names the repository `project_path`; the proxy maps it.
group gitlab-ci {
  issuer "https://gitlab.clsf.example"
  claim repository == "acme/shop"
}
group reporting { account "reporting" }
group reporter-host { certificate san "reporter.clsf.test" }
group pipelines = ci or gitlab-ci or reporter-host

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential mask last(4)
  ssn:         restricted
}
table public.orders: internal { }

rule pipelines for pipelines {
  allow <= internal
  mask  confidential
}
rule reports for reporting {
  allow <= confidential
}
"#;

struct Setup {
    q: Quickstart,
    gitlab: Issuer,
    jwks_server: DocumentServer,
}

fn setup(tls_required: bool) -> (Setup, Proxy) {
    setup_with(tls_required, "")
}

/// `identity` holds extra keys of the `[identity]` table.
fn setup_with(tls_required: bool, identity: &str) -> (Setup, Proxy) {
    let q = fixture::quickstart(None);
    let d = q.dir.path();
    write_test_ca(d);
    write_client_cert(d, "reporter", "reporter", "reporter.clsf.test");
    write_client_cert(d, "stranger", "reporter", "reporter.clsf.test");
    let gitlab = Issuer::new("gitlab-1");
    let jwks_server = DocumentServer::start(d, gitlab.jwks.to_string());
    let verifier = {
        let out = std::process::Command::new(clsf_tests::bins::bin("clsf-proxy"))
            .arg("scram-verifier")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(PASSWORD.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let path = fixture::config_with_policy(&q, POLICY);
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!(
        r#"
[identity]
{identity}

[[identity.issuer]]
issuer = "{GITLAB}"
audience = "{AUDIENCE}"
jwks_url = "https://localhost:{port}/oauth/discovery/keys"
jwks_ca_file = "ca.pem"
jwks_min_refresh_seconds = 2
claims = {{ repository = "project_path" }}

[[identity.account]]
name = "reporting"
scram_verifier = "{verifier}"

[tls]
cert_file = "server.pem"
key_file = "server.key"
client_ca_file = "reporter-ca.pem"
required = {tls_required}

[mcp]
listen = "127.0.0.1:0"
"#,
        port = jwks_server.addr.port()
    ));
    std::fs::write(&path, config).unwrap();
    let proxy = Proxy::start(&path);
    (
        Setup {
            q,
            gitlab,
            jwks_server,
        },
        proxy,
    )
}

fn tls_conninfo(s: &Setup, proxy: &Proxy) -> String {
    format!(
        "host=localhost hostaddr=127.0.0.1 port={} sslmode=verify-full sslrootcert={}",
        proxy.addr.port(),
        s.q.dir.path().join("ca.pem").display()
    )
}

const READ: &str = "SELECT email FROM customers WHERE id = 1;\n";

#[test]
fn issuers_accounts_and_certificates_each_get_their_groups() {
    let (s, proxy) = setup(true);
    let tls = tls_conninfo(&s, &proxy);

    // Issuer 1 (JWKS file).
    let out = psql::run_conninfo(&tls, &s.q.issuer.ci_token(), READ);
    assert_eq!(out.stdout.trim(), "****@example.com", "{}", out.stderr);

    // Issuer 2 (JWKS over HTTPS); `repository` comes from `project_path`.
    let gitlab_token = |issuer: &Issuer| {
        issuer.sign(&issuer.claims(
            "project_path:acme/shop:ref_type:branch:ref:main",
            json!({ "iss": GITLAB, "project_path": "acme/shop" }),
        ))
    };
    let out = psql::run_conninfo(&tls, &gitlab_token(&s.gitlab), READ);
    assert_eq!(out.stdout.trim(), "****@example.com", "{}", out.stderr);
    assert_eq!(s.jwks_server.requests(), 1, "fetched once at start");

    // A token naming issuer 2 but signed with issuer 1's key is refused.
    let forged = s.q.issuer.sign(
        &s.q.issuer
            .claims("x", json!({ "iss": GITLAB, "project_path": "acme/shop" })),
    );
    let out = psql::run_conninfo(&tls, &forged, READ);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no trusted key with id"),
        "{}",
        out.stderr
    );
    // An issuer nobody configured.
    let stranger = s.q.issuer.sign(
        &s.q.issuer
            .claims("x", json!({ "iss": "https://evil.example" })),
    );
    let out = psql::run_conninfo(&tls, &stranger, READ);
    assert!(
        out.stderr.contains("token issuer is not trusted"),
        "{}",
        out.stderr
    );

    // Key rotation: the issuer publishes a second key and signs with it.
    let rotated = Issuer::new("gitlab-2");
    let mut both = s.gitlab.jwks.clone();
    both["keys"]
        .as_array_mut()
        .unwrap()
        .extend(rotated.jwks["keys"].as_array().unwrap().iter().cloned());
    s.jwks_server.set_body(both.to_string());
    std::thread::sleep(Duration::from_millis(2100));
    let out = psql::run_conninfo(&tls, &gitlab_token(&rotated), READ);
    assert_eq!(out.stdout.trim(), "****@example.com", "{}", out.stderr);
    assert_eq!(s.jwks_server.requests(), 2, "refetched for the new key id");
    // Tokens with made-up key ids do not make the proxy hammer the issuer.
    for i in 0..5 {
        let bogus = Issuer::new(&format!("bogus-{i}"));
        let out = psql::run_conninfo(&tls, &gitlab_token(&bogus), READ);
        assert_eq!(out.code, 2, "{}", out.stdout);
    }
    assert_eq!(
        s.jwks_server.requests(),
        2,
        "no refetch within the minimum interval"
    );

    // A service account with SCRAM-SHA-256: reads in clear.
    let account = |password: &str| {
        clsf_tests::postgres::psql()
            .arg(format!(
                "{tls} user=reporting dbname={DATABASE} connect_timeout=10"
            ))
            .args(["-X", "-A", "-t", "-c", READ.trim()])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    };
    let out = account(PASSWORD);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ada@example.com",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = account("wrong password");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("password authentication failed for account reporting"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong password"),
        "the attempt is not echoed: {stderr}"
    );

    // A client certificate from the client CA is the identity: no password.
    let d = s.q.dir.path();
    let with_cert = |name: &str| {
        clsf_tests::postgres::psql()
            .arg(format!(
                "{tls} sslcert={} sslkey={} user=anyone dbname={DATABASE} connect_timeout=10",
                d.join(format!("{name}.pem")).display(),
                d.join(format!("{name}.key")).display()
            ))
            .args(["-X", "-A", "-t", "-w", "-c", READ.trim()])
            .env_remove("PGPASSWORD")
            .output()
            .unwrap()
    };
    let out = with_cert("reporter");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "****@example.com",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same names, signed by a CA the proxy does not trust: no handshake.
    let out = with_cert("stranger");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SSL"), "{stderr}");

    let connects: Vec<String> = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "connect")
        .map(|e| format!("{} {}", e["subject"].as_str().unwrap(), e["groups"]))
        .collect();
    assert!(
        connects.contains(&"account:reporting [\"reporting\"]".to_owned()),
        "{connects:?}"
    );
    assert!(
        connects.contains(&"CN=reporter [\"pipelines\",\"reporter-host\"]".to_owned()),
        "{connects:?}"
    );
}

#[test]
fn an_agent_proves_itself_to_the_mcp_listener_with_a_client_certificate() {
    let (s, proxy) = setup(false);
    let d = s.q.dir.path();
    // The listener serves HTTPS with [tls]'s certificate and asks for
    // client certificates from [tls]'s client CA.
    let url = format!(
        "https://localhost:{}/mcp",
        proxy.mcp.expect("MCP listener").port()
    );
    let calls = json!([
        { "tool": "describe_table", "args": { "table": "customers" } },
        { "tool": "query", "args": { "sql": READ.trim() } },
    ]);
    let with_cert = |name: &str| {
        clsf_tests::programs::mcp_agent_with_certificate(
            &url,
            &calls,
            &d.join("ca.pem"),
            &d.join(format!("{name}.pem")),
            &d.join(format!("{name}.key")),
        )
    };
    // No token anywhere: the certificate's SAN puts the agent in
    // `reporter-host`, whose rule masks `email`.
    let report = with_cert("reporter").expect("the reporter's certificate is accepted");
    let r = &report["results"];
    assert!(!r[1]["isError"].as_bool().unwrap(), "{}", r[1]);
    assert_eq!(
        r[1]["data"]["rows"],
        json!([["****@example.com"]]),
        "{}",
        r[1]
    );
    let email = r[0]["data"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "email")
        .map(|c| c["access"].clone());
    assert_eq!(email, Some(json!("masked (email)")), "{}", r[0]);

    // The same names signed by a CA the proxy does not trust: the
    // handshake fails and no tool runs (the audit below holds one query
    // only). In TLS 1.3 the client's side of the handshake is done once it
    // has sent its certificate, so the listener's refusal reaches it either
    // as the alert or, when it was already sending its request, as the
    // connection closing under it.
    let err = with_cert("stranger").expect_err("an untrusted certificate is refused");
    let lower = err.to_lowercase();
    assert!(
        lower.contains("certificate")
            || lower.contains("alert")
            || lower.contains("connection was not ready")
            || lower.contains("connection closed"),
        "{err}"
    );

    // The query's session is audited with the certificate's subject and
    // groups, and the tool that opened it.
    let events = proxy.audit_events();
    let connects: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "connect" && e["via"]["mcp"]["tool"] == "query")
        .collect();
    assert_eq!(connects.len(), 1, "{events:#?}");
    assert_eq!(connects[0]["subject"], "CN=reporter");
    assert_eq!(connects[0]["groups"], json!(["pipelines", "reporter-host"]));
}

#[test]
fn a_session_ends_when_its_token_expires() {
    let (s, proxy) = setup(false);
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3;
    let token = s.q.issuer.sign(&s.q.issuer.claims(
        "short-lived",
        json!({ "repository": "acme/shop", "exp": exp }),
    ));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut cfg = clsf_tests::client::config(proxy.addr.port(), "w", &token);
        cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.simple_query("SELECT 1").await.unwrap();
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(client.simple_query("SELECT 1").await.is_err());
    });
    let ends: Vec<_> = proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["event"] == "disconnect")
        .collect();
    assert!(
        ends.iter()
            .any(|e| e["reason"] == "the session's token expired"),
        "{ends:?}"
    );
}

/// An issuer whose JWKS URL cannot be fetched at start stops the proxy
/// from starting, with an error naming the issuer: it could verify none of
/// that issuer's tokens, and a proxy that starts anyway would look ready.
#[test]
fn an_unreachable_jwks_url_at_start_is_a_clear_start_error() {
    let q = fixture::quickstart(None);
    clsf_tests::certs::write_test_ca(q.dir.path());
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let path = fixture::config_with_policy(&q, POLICY);
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(&format!(
        r#"
[[identity.issuer]]
issuer = "{GITLAB}"
audience = "{AUDIENCE}"
jwks_url = "https://localhost:{closed}/oauth/discovery/keys"
jwks_ca_file = "ca.pem"
"#
    ));
    std::fs::write(&path, config).unwrap();
    let err = Proxy::try_start(&path).expect_err("does not start");
    assert!(err.contains(GITLAB), "{err}");
    assert!(
        !err.contains("BEGIN"),
        "no key material in the error: {err}"
    );
}

#[test]
fn password_guessing_is_throttled_and_an_identity_has_a_session_limit() {
    let (s, proxy) = setup_with(
        false,
        "max_auth_failures = 3\nauth_failure_window_seconds = 60\nmax_sessions_per_identity = 2",
    );
    let port = proxy.addr.port();

    // Two sessions of one identity are let in; a third is refused clearly,
    // and gets in once one of the two has gone.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cfg = clsf_tests::client::config(port, "ci", &s.q.issuer.ci_token());
        let mut held = Vec::new();
        for _ in 0..2 {
            let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            held.push(client);
        }
        let Err(err) = cfg.connect(tokio_postgres::NoTls).await else {
            panic!("a third session of the identity was let in");
        };
        let db = err.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "53300");
        assert!(
            db.message().contains("too many connections for identity"),
            "{}",
            db.message()
        );
        // Another identity is not affected.
        let other = clsf_tests::client::config(port, "dba", &s.q.issuer.dba_token());
        let (client, conn) = other.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        drop(client);
        drop(held.pop());
        let again = clsf_tests::client::connect_within(&cfg, Duration::from_secs(10)).await;
        again.simple_query("SELECT 1").await.unwrap();
    });

    // Guessing a service account's password: three failures, then even the
    // right password is refused unchecked, from this address.
    let account = |password: &str| {
        clsf_tests::postgres::psql()
            .arg(format!(
                "host=127.0.0.1 port={port} sslmode=disable user=reporting dbname={DATABASE} connect_timeout=10"
            ))
            .args(["-X", "-A", "-t", "-c", "SELECT 1"])
            .env("PGPASSWORD", password)
            .output()
            .unwrap()
    };
    for guess in ["guess-1", "guess-2", "guess-3"] {
        let out = account(guess);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("password authentication failed for account reporting"),
            "{stderr}"
        );
    }
    let out = account(PASSWORD);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("too many failed authentications from this address"),
        "{stderr}"
    );
    // A token from the same address is held back too: the budget is the
    // address's, whatever it tries next.
    let out = clsf_tests::postgres::psql()
        .arg(format!(
            "host=127.0.0.1 port={port} sslmode=disable user=ci dbname={DATABASE} connect_timeout=10"
        ))
        .args(["-X", "-A", "-t", "-c", "SELECT 1"])
        .env("PGPASSWORD", s.q.issuer.ci_token())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too many failed authentications"));

    // Every refusal is in the audit trail, never with the guessed password.
    let events = proxy.audit_events();
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "auth_failed")
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("password authentication failed"))
            .count(),
        3,
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.contains("too many failed authentications"))
            .count(),
        2,
        "{reasons:?}"
    );
    let trail = clsf_runtime::audit::read_text(&proxy.audit_path).unwrap();
    assert!(!trail.contains("guess-"), "guesses are never recorded");
    let refused: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "connect_refused")
        .collect();
    // The third session's refusal; the reconnect after one of the two
    // went may be refused again, the same way, until the proxy has seen
    // that session end (so at least one, each of them the identity's).
    assert!(!refused.is_empty(), "{events:?}");
    for r in &refused {
        assert!(
            r["subject"].as_str().unwrap().contains("acme/shop")
                && r["reason"]
                    .as_str()
                    .unwrap()
                    .contains("max_sessions_per_identity"),
            "{refused:?}"
        );
    }
}

/// The issuer's JWKS URL failing during a refresh: the proxy keeps the keys
/// it has (tokens signed with them still verify), refuses a token whose key
/// it cannot fetch with a clear reason, and takes the new key once the
/// issuer answers again.
#[test]
fn a_jwks_outage_during_a_refresh_keeps_the_cached_keys() {
    let (s, proxy) = setup(false);
    let conninfo = format!("host=127.0.0.1 port={} sslmode=disable", proxy.addr.port());
    // Each token distinct, so none is answered from the cache of checked
    // signatures: every one goes through the key set.
    let token = |issuer: &Issuer, n: u32| {
        issuer.sign(&issuer.claims(
            "project_path:acme/shop:ref_type:branch:ref:main",
            json!({ "iss": GITLAB, "project_path": "acme/shop", "n": n }),
        ))
    };
    let out = psql::run_conninfo(&conninfo, &token(&s.gitlab, 1), READ);
    assert_eq!(out.stdout.trim(), "****@example.com", "{}", out.stderr);

    s.jwks_server.set_down(true);
    std::thread::sleep(Duration::from_millis(2100)); // past the refetch interval
    let rotated = Issuer::new("gitlab-2");
    let out = psql::run_conninfo(&conninfo, &token(&rotated, 2), READ);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stderr.contains("no trusted key with id `gitlab-2`"),
        "{}",
        out.stderr
    );
    let out = psql::run_conninfo(&conninfo, &token(&s.gitlab, 3), READ);
    assert_eq!(
        out.stdout.trim(),
        "****@example.com",
        "cached keys still verify during the outage: {}",
        out.stderr
    );

    // The issuer is back, now publishing the rotated key too.
    let mut both = s.gitlab.jwks.clone();
    both["keys"]
        .as_array_mut()
        .unwrap()
        .extend(rotated.jwks["keys"].as_array().unwrap().iter().cloned());
    s.jwks_server.set_body(both.to_string());
    s.jwks_server.set_down(false);
    std::thread::sleep(Duration::from_millis(2100));
    let out = psql::run_conninfo(&conninfo, &token(&rotated, 4), READ);
    assert_eq!(out.stdout.trim(), "****@example.com", "{}", out.stderr);
}
