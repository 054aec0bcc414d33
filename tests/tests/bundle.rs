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

fn clsfc(args: &[&std::ffi::OsStr]) -> String {
    let run = Command::new(bin("clsfc")).args(args).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stderr).into_owned()
}

fn build_signed(
    policy: &std::path::Path,
    lock: &std::path::Path,
    out: &std::path::Path,
    key: Option<&std::path::Path>,
    version: u64,
) {
    let version = version.to_string();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "build".as_ref(),
        policy.as_os_str(),
        "--schema".as_ref(),
        lock.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--bundle-version".as_ref(),
        version.as_ref(),
    ];
    if let Some(k) = key {
        args.extend(["--sign".as_ref(), k.as_os_str()]);
    }
    clsfc(&args);
}

/// `[policy] trusted_keys`: the proxy runs only a bundle signed by a
/// trusted key whose files match its manifest, at start and at reload, and
/// refuses an older bundle than the one in force unless told to.
#[test]
fn signed_bundles_are_required_verified_and_never_replayed() {
    let q = fixture::quickstart(None);
    let dir = q.dir.path();
    let policy = dir.join("policy");
    std::fs::create_dir(&policy).unwrap();
    let original =
        std::fs::read_to_string(fixture::quickstart_policy().join("quickstart.clsf")).unwrap();
    std::fs::write(policy.join("quickstart.clsf"), &original).unwrap();
    let out = clsfc(&["keygen".as_ref(), dir.join("ci").as_os_str()]);
    assert!(out.contains("trusted_keys = [\"ed25519:"), "{out}");
    clsfc(&["keygen".as_ref(), dir.join("other").as_os_str()]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("ci.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let trusted = std::fs::read_to_string(dir.join("ci.pub")).unwrap();
    let bundle = dir.join("bundle");
    let unmasking = original.replace(
        "  deny  restricted\n",
        "  deny  restricted\n  allow column public.customers.email override because \"receipts\"\n",
    );

    let base = write_config(
        dir,
        &q.pg,
        &q.issuer,
        &policy,
        &q.lock,
        &dir.join("audit.jsonl"),
    );
    let text = std::fs::read_to_string(&base).unwrap();
    let start = text.find("dir = ").unwrap();
    let end = text[start..].find("[[identity").unwrap() + start;
    let config_with = |extra: &str| {
        let path = dir.join("proxy.toml");
        std::fs::write(
            &path,
            format!(
                "{}bundle = \"{}\"\ntrusted_keys = [\"{}\"]\n{extra}\n{}",
                &text[..start],
                bundle.display(),
                trusted.trim(),
                &text[end..]
            ),
        )
        .unwrap();
        path
    };
    let refused = |why: &str| {
        let Err(e) = Proxy::try_start(&config_with("")) else {
            panic!("the proxy started")
        };
        assert!(e.contains(why), "{e}");
    };

    // At start: unsigned, signed by another key, a file changed, the
    // manifest changed after signing.
    build_signed(&policy, &q.lock, &bundle, None, 10);
    refused("the bundle is unsigned");
    build_signed(&policy, &q.lock, &bundle, Some(&dir.join("other.key")), 10);
    refused("is not among [policy] trusted_keys");
    build_signed(&policy, &q.lock, &bundle, Some(&dir.join("ci.key")), 10);
    let cedar = std::fs::read_to_string(bundle.join("policies.cedar")).unwrap();
    std::fs::write(
        bundle.join("policies.cedar"),
        cedar.replace("forbid", "permit"),
    )
    .unwrap();
    refused("bundle file policies.cedar does not match its digest");
    build_signed(&policy, &q.lock, &bundle, Some(&dir.join("ci.key")), 10);
    let manifest = std::fs::read_to_string(bundle.join("manifest.json")).unwrap();
    std::fs::write(
        bundle.join("manifest.json"),
        manifest.replace("\"bundle_version\": 10", "\"bundle_version\": 11"),
    )
    .unwrap();
    refused("does not verify: manifest.json was changed after it was signed");

    // Signed by the trusted key: it runs.
    build_signed(&policy, &q.lock, &bundle, Some(&dir.join("ci.key")), 10);
    let proxy = Proxy::start(&config_with(""));
    let token = q.issuer.ci_token();
    assert_eq!(email(&proxy, &token), "****@example.com");

    // Version 12 unmasks e-mail: picked up. Then a replay of version 10
    // (the old bundle, validly signed) is refused and 12 stays in force.
    let v10 = dir.join("bundle-v10");
    std::fs::create_dir(&v10).unwrap();
    for f in std::fs::read_dir(&bundle).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, v10.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(policy.join("quickstart.clsf"), &unmasking).unwrap();
    build_signed(&policy, &q.lock, &bundle, Some(&dir.join("ci.key")), 12);
    wait_for_email(&proxy, &token, "ada@example.com");
    for f in std::fs::read_dir(&v10).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, bundle.join(f.file_name().unwrap())).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = loop {
        if let Some(e) = proxy
            .audit_events()
            .into_iter()
            .find(|e| e["event"] == "reload_failed")
        {
            break e;
        }
        assert!(Instant::now() < deadline, "no reload_failed event");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or("")
            .contains("older than the version in force (12)"),
        "{failed}"
    );
    assert_eq!(email(&proxy, &token), "ada@example.com");
    drop(proxy);

    // A deliberate roll-back is accepted when allowed.
    build_signed(&policy, &q.lock, &bundle, Some(&dir.join("ci.key")), 12);
    let proxy = Proxy::start(&config_with("allow_downgrade = true"));
    assert_eq!(email(&proxy, &token), "ada@example.com");
    for f in std::fs::read_dir(&v10).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, bundle.join(f.file_name().unwrap())).unwrap();
    }
    wait_for_email(&proxy, &token, "****@example.com");
    drop(proxy);

    // A key that is not one is a config error naming the entry.
    std::fs::write(
        dir.join("bad.toml"),
        std::fs::read_to_string(config_with(""))
            .unwrap()
            .replace(trusted.trim(), "ed25519:AAAA"),
    )
    .unwrap();
    let Err(e) = Proxy::try_start(&dir.join("bad.toml")) else {
        panic!("the proxy started with a bad key")
    };
    assert!(
        e.contains("trusted_keys[0]") && e.contains("is not an ed25519 public key"),
        "{e}"
    );
}
