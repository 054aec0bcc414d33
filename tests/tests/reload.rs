//! Hot reload: a changed policy takes effect on open connections without
//! reconnecting; an invalid one never replaces the policy in force.

use std::time::{Duration, Instant};

use clsf_tests::fixture;
use clsf_tests::proxy::{Proxy, write_config};

fn wait_for_event(proxy: &Proxy, kind: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if proxy
            .audit_events()
            .iter()
            .filter(|e| e["event"] == kind)
            .count()
            >= count
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no `{kind}` audit event within 20 s");
}

async fn email(client: &tokio_postgres::Client) -> String {
    let rows = client
        .simple_query("SELECT email FROM customers WHERE id = 1")
        .await
        .unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap()
}

#[test]
fn a_changed_policy_applies_to_open_connections_and_a_broken_one_is_refused() {
    let q = fixture::quickstart(None);
    let policy = q.dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    let original =
        std::fs::read_to_string(fixture::quickstart_policy().join("quickstart.clsf")).unwrap();
    std::fs::write(policy.join("quickstart.clsf"), &original).unwrap();
    let config = write_config(
        q.dir.path(),
        &q.pg,
        &q.issuer,
        &policy,
        &q.lock,
        &q.dir.path().join("audit.jsonl"),
    );
    let proxy = Proxy::start(&config);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(proxy.addr.port())
            .user("ci")
            .dbname("shop")
            .password(q.issuer.ci_token())
            .connect_timeout(Duration::from_secs(10));
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        let conn = tokio::spawn(conn);
        assert_eq!(email(&client).await, "****@example.com");
        let stmt = client
            .prepare("SELECT email FROM customers WHERE id = $1")
            .await
            .unwrap();

        // Unmask e-mail addresses for ci.
        let unmasked = original.replace("mask  confidential", "allow confidential");
        assert_ne!(unmasked, original);
        std::fs::write(policy.join("quickstart.clsf"), &unmasked).unwrap();
        wait_for_event(&proxy, "reload", 1);
        assert_eq!(email(&client).await, "ada@example.com");
        // A statement prepared under the old policy, which the new one
        // decides differently, must be prepared again.
        let err = client.query_one(&stmt, &[&1i32]).await.unwrap_err();
        assert!(format!("{err:?}").contains("policy changed"), "{err:?}");
        let again = client
            .prepare("SELECT email FROM customers WHERE id = $1")
            .await
            .unwrap();
        assert_eq!(
            client
                .query_one(&again, &[&1i32])
                .await
                .unwrap()
                .get::<_, String>(0),
            "ada@example.com"
        );

        // A broken policy is not loaded; the one in force stays.
        std::fs::write(
            policy.join("quickstart.clsf"),
            unmasked.replace("rule ci_reads", "rule ci_reads {"),
        )
        .unwrap();
        wait_for_event(&proxy, "reload_failed", 1);
        assert_eq!(email(&client).await, "ada@example.com");
        let ssn = client
            .simple_query("SELECT ssn FROM customers")
            .await
            .unwrap_err();
        assert_eq!(ssn.code().map(|c| c.code()), Some("42501"));
        assert!(!conn.is_finished(), "the connection must survive reloads");
    });
    let reloads = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "reload")
        .count();
    assert_eq!(reloads, 1, "the broken policy must not have been loaded");
}
