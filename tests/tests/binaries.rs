//! The shipped binaries as users run them: `clsf-proxy keygen` and
//! `mint-token`, `clsfc build`, `clsf-proxy --config` in its own process,
//! and `clsf-proxy verify-audit`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clsf_tests::bins::{bin, repo_root};
use clsf_tests::postgres::{DATABASE, GATEWAY_ROLE, Postgres};
use clsf_tests::psql;

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn keygen_mint_build_serve_and_verify_with_the_real_binaries() {
    let pg = Postgres::start();
    pg.load_fixture(&repo_root().join("examples/quickstart/schema.sql"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let proxy_bin = bin("clsf-proxy");
    let clsfc = bin("clsfc");

    ok(Command::new(&clsfc)
        .args(["schema", "pull", "--database-url", &pg.gateway_url(), "-o"])
        .arg(d.join("schema.lock.json")));
    let policy = repo_root().join("examples/quickstart/policy");
    ok(Command::new(&clsfc)
        .arg("build")
        .arg(&policy)
        .arg("--schema")
        .arg(d.join("schema.lock.json"))
        .arg("-o")
        .arg(d.join("build")));
    for file in [
        "schema.cedarschema",
        "policies.cedar",
        "entities.json",
        "plan.json",
        "manifest.json",
    ] {
        assert!(d.join("build").join(file).exists(), "{file} missing");
    }
    let policies = std::fs::read_to_string(d.join("build/policies.cedar")).unwrap();
    assert!(
        policies.contains("@id(\"ci_reads.2\")") && policies.contains("forbid ("),
        "{policies}"
    );
    let plan = std::fs::read_to_string(d.join("build/plan.json")).unwrap();
    assert!(plan.contains("right(\\\"card_number\\\", 4)"), "{plan}");

    ok(Command::new(&proxy_bin)
        .args(["keygen", "--alg", "ES256", "--kid", "demo", "--private-key"])
        .arg(d.join("key.pem"))
        .arg("--jwks")
        .arg(d.join("jwks.json")));
    let mint = |extra: &[&str]| {
        let mut c = Command::new(&proxy_bin);
        c.args(["mint-token", "--kid", "demo", "--private-key"])
            .arg(d.join("key.pem"))
            .args([
                "--issuer",
                "https://issuer.clsf.example",
                "--audience",
                "clsf-proxy",
            ])
            .args(extra);
        ok(&mut c).trim().to_owned()
    };
    let ci = mint(&["--subject", "ci-job", "--claim", "repository=acme/shop"]);
    let expired = mint(&[
        "--subject",
        "ci-job",
        "--claim",
        "repository=acme/shop",
        "--ttl",
        "-600",
    ]);

    std::fs::write(d.join("upstream.pw"), format!("{}\n", pg.gateway_password)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // An unusual thread count, so the default (one per core) cannot pass
    // for it.
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\nworker_threads = 7\n[upstream]\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"{DATABASE}\"\nuser = \"{GATEWAY_ROLE}\"\npassword_env = \"CLSF_E2E_UPSTREAM_PW\"\n\
         [policy]\ndir = \"{}\"\nschema_lock = \"schema.lock.json\"\n[[identity.issuer]]\nissuer = \"https://issuer.clsf.example\"\naudience = \"clsf-proxy\"\njwks_file = \"jwks.json\"\n[audit]\npath = \"audit.jsonl\"\n",
        pg.port,
        policy.display()
    );
    std::fs::write(d.join("proxy.toml"), &config).unwrap();

    // An invalid policy stops the proxy from starting, with the diagnostic.
    let bad_policy = d.join("bad");
    std::fs::create_dir(&bad_policy).unwrap();
    std::fs::write(
        bad_policy.join("p.clsf"),
        "labels a < b\ntable public.customers { nope: a }\n",
    )
    .unwrap();
    std::fs::write(
        d.join("bad.toml"),
        config.replace(
            &policy.display().to_string(),
            &bad_policy.display().to_string(),
        ),
    )
    .unwrap();
    let refused = Command::new(&proxy_bin)
        .arg("--config")
        .arg(d.join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("CLSF0102") && stderr.contains("nope"),
        "{stderr}"
    );

    // check-config validates without starting anything; the upstream
    // password comes from the environment here.
    let unset = Command::new(&proxy_bin)
        .arg("check-config")
        .arg(d.join("proxy.toml"))
        .env_remove("CLSF_E2E_UPSTREAM_PW")
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&unset.stderr)
            .contains("the upstream password variable CLSF_E2E_UPSTREAM_PW is not set"),
        "{}",
        String::from_utf8_lossy(&unset.stderr)
    );
    let checked = ok(Command::new(&proxy_bin)
        .arg("check-config")
        .arg(d.join("proxy.toml"))
        .env("CLSF_E2E_UPSTREAM_PW", &pg.gateway_password));
    assert!(checked.starts_with("ok: "), "{checked}");
    let bad_check = Command::new(&proxy_bin)
        .arg("check-config")
        .arg(d.join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(bad_check.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_check.stderr).contains("CLSF0102"));
    assert!(
        !d.join("audit.jsonl").exists(),
        "check-config must not create the audit trail"
    );

    let mut child = Command::new(&proxy_bin)
        .arg("--config")
        .arg(d.join("proxy.toml"))
        .env("CLSF_E2E_UPSTREAM_PW", &pg.gateway_password)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("listening on"), "{first}");
    // `worker_threads` sets the session threads, one runtime and one
    // listening socket each.
    let count_workers = || {
        std::fs::read_dir(format!("/proc/{}/task", child.id()))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|name| name.starts_with("clsf-sessions-"))
            })
            .count()
    };
    let mut workers = count_workers();
    for _ in 0..100 {
        if workers >= 7 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        workers = count_workers();
    }
    assert_eq!(workers, 7);
    // The session threads share the port among themselves only: a second
    // proxy on the same address is refused, not handed half the clients.
    let second = Command::new(&proxy_bin)
        .arg("--config")
        .arg(d.join("proxy.toml"))
        .env("CLSF_E2E_UPSTREAM_PW", &pg.gateway_password)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{said}");
    assert!(
        said.contains("cannot listen on") && said.contains("in use"),
        "{said}"
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let out = psql::run(
        addr,
        &ci,
        "SELECT card_number FROM customers WHERE id = 2;\n",
    );
    assert_eq!(out.stdout.trim(), "************0004", "{}", out.stderr);
    let out = psql::run(addr, &expired, "SELECT 1;\n");
    assert!(out.stderr.contains("token has expired"), "{}", out.stderr);

    // SIGHUP asks for a reload (the policy is unchanged, so nothing is
    // swapped); without a handler it would kill the process.
    ok(Command::new("kill").args(["-HUP", &child.id().to_string()]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the proxy"
    );
    let out = psql::run(addr, &ci, "SELECT 1;\n");
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Ctrl-C stops it.
    ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());

    let verified = ok(Command::new(&proxy_bin)
        .arg("verify-audit")
        .arg(d.join("audit.jsonl")));
    assert!(verified.starts_with("ok: "), "{verified}");
    let audit = clsf_runtime::audit::read_text(&d.join("audit.jsonl")).unwrap();
    std::fs::write(
        d.join("tampered.jsonl"),
        audit.replacen("ci-job", "someone-else", 1),
    )
    .unwrap();
    let tampered = Command::new(&proxy_bin)
        .arg("verify-audit")
        .arg(d.join("tampered.jsonl"))
        .output()
        .unwrap();
    assert_eq!(tampered.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("breaks at line"));
}

#[test]
fn the_quickstart_prints_working_psql_lines_and_cleans_up_on_ctrl_c() {
    let mut child = Command::new(bin("clsf-quickstart"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut commands = Vec::new();
    let mut workdir = None;
    let mut mcp = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (commands.len() < 2 || mcp.is_none()) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if line.starts_with("PGPASSWORD=") {
            commands.push(line);
        } else if line.contains(" mcp-stdio --url ") {
            mcp = Some(line);
        } else if let Some(path) = line.strip_prefix("  audit trail:") {
            workdir = std::path::Path::new(path.trim())
                .parent()
                .map(std::path::Path::to_path_buf);
        }
    }
    assert_eq!(
        commands.len(),
        2,
        "the quickstart must print a psql line per identity"
    );
    let run = |command: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "{command} -X -A -t -c 'SELECT email, card_number FROM customers WHERE id = 1'"
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(run(&commands[0]), "****@example.com|************1111");
    assert_eq!(run(&commands[1]), "ada@example.com|4111111111111111");
    // The MCP line it prints works as printed: an agent as `ci` asks for
    // its tools and reads masked values.
    let mcp = mcp.expect("the quickstart prints how to point an MCP client at it");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "printf '%s\\n' '{}' '{}' | {mcp}",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"query","arguments":{"sql":"SELECT email FROM customers WHERE id = 1"}}}"#
        ))
        .output()
        .unwrap();
    let answers = String::from_utf8_lossy(&out.stdout);
    assert!(answers.contains("list_tables"), "{answers}");
    assert!(answers.contains("****@example.com"), "{answers}");
    assert!(!answers.contains("ada@example.com"), "{answers}");

    ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the quickstart did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let workdir = workdir.expect("the quickstart prints its audit trail path");
    assert!(!workdir.exists(), "{} was not removed", workdir.display());
}
