//! The proxy enforcing a bundle built by `clsfc build` (what CI reviewed),
//! reloading a rebuilt one, and refusing a tampered one while keeping the
//! bundle in force.

use std::process::Command;
use std::time::{Duration, Instant};

use clsf_tests::bins::bin;
use clsf_tests::fixture;
use clsf_tests::proxy::{Proxy, write_config};
use clsf_tests::psql;

fn build(policy: &std::path::Path, lock: &std::path::Path, out: &std::path::Path) {
    let run = Command::new(bin("clsfc"))
        .arg("build")
        .arg(policy)
        .arg("--schema")
        .arg(lock)
        .arg("-o")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

fn email(proxy: &Proxy, token: &str) -> String {
    let out = psql::run(
        proxy.addr,
        token,
        "SELECT email FROM customers WHERE id = 1;",
    );
    out.stdout.trim().to_owned()
}

fn wait_for_email(proxy: &Proxy, token: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if email(proxy, token) == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("e-mail never became {want}");
}

#[test]
fn the_proxy_runs_a_built_bundle_reloads_it_and_refuses_a_tampered_one() {
    let q = fixture::quickstart(None);
    let policy = q.dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    let original =
        std::fs::read_to_string(fixture::quickstart_policy().join("quickstart.clsf")).unwrap();
    std::fs::write(policy.join("quickstart.clsf"), &original).unwrap();
    let bundle = q.dir.path().join("bundle");
    build(&policy, &q.lock, &bundle);

    let config = write_config(
        q.dir.path(),
        &q.pg,
        &q.issuer,
        &policy,
        &q.lock,
        &q.dir.path().join("audit.jsonl"),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("dir = ").unwrap();
    let end = text[start..].find("[[identity").unwrap() + start;
    let text = format!(
        "{}bundle = \"{}\"\n\n{}",
        &text[..start],
        bundle.display(),
        &text[end..]
    );
    std::fs::write(&config, text).unwrap();
    let proxy = Proxy::start(&config);
    let token = q.issuer.ci_token();
    assert_eq!(email(&proxy, &token), "****@example.com");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap())
            .unwrap();
    let connect = proxy
        .audit_events()
        .into_iter()
        .find(|e| e["event"] == "connect")
        .unwrap();
    assert_eq!(
        connect["plan"], manifest["content_hash"],
        "the proxy logs the bundle's hash"
    );

    // CI builds a new bundle over the old one: the proxy picks it up.
    std::fs::write(
        policy.join("quickstart.clsf"),
        original.replace(
            "  deny  restricted\n",
            "  deny  restricted\n  allow column public.customers.email override because \"receipts\"\n",
        ),
    )
    .unwrap();
    build(&policy, &q.lock, &bundle);
    wait_for_email(&proxy, &token, "ada@example.com");

    // A tampered bundle fails its digests: the one in force stays.
    let policies = bundle.join("policies.cedar");
    let cedar = std::fs::read_to_string(&policies).unwrap();
    std::fs::write(&policies, cedar.replace("forbid", "permit")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !proxy
            .audit_events()
            .iter()
            .any(|e| e["event"] == "reload_failed")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed = proxy
        .audit_events()
        .into_iter()
        .find(|e| e["event"] == "reload_failed")
        .expect("a reload_failed event");
    assert!(
        failed["reason"].as_str().unwrap_or("").contains("digest"),
        "{failed}"
    );
    assert_eq!(email(&proxy, &token), "ada@example.com");
}
