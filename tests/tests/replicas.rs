//! Three proxy replicas behind HAProxy (Debian's package, TCP mode), as a
//! team runs them: one upstream PostgreSQL, one control-plane PostgreSQL
//! for the approvals they share and the policy bundles CI publishes there,
//! each replica with its own copy of the signed bundle on disk. pgbench
//! runs through the load balancer while
//!   (a) a new signed bundle is published with `clsfc publish`: every
//!       replica verifies and enforces it within a second and no
//!       transaction fails; one signed by an untrusted key is refused by
//!       every replica (the plan in force stays), and an older version is
//!       refused by `clsfc publish`;
//!   (b) a replica is killed with SIGKILL while a statement is held on it:
//!       its client gets an error, the approval given through another
//!       replica releases nothing, and the client's retry through the load
//!       balancer is held, approved and released exactly once;
//!   (c) the control plane goes down: the replicas keep serving, the killed
//!       replica starts again without it and runs the last bundle it
//!       verified, a statement that needs an approval meanwhile fails
//!       clearly, and approvals work across replicas once it is back.
//! Afterwards every replica's audit trail verifies, the killed one's too,
//! and so does each replica's copy in the control plane (`audit verify
//! --control-plane`, with signed anchors); the proxies' role cannot update
//! the copy, an event deleted from it is reported missing, and a local
//! trail rewritten whole fails against its replica's anchors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clsf_tests::admin::{admin_address, approvals, team_token as token};
use clsf_tests::bins::bin;
use clsf_tests::fixture::{self, Quickstart};
use clsf_tests::pgbench::assert_no_failed_transaction as no_transaction_failed;
use clsf_tests::postgres::{GATEWAY_ROLE, Postgres, free_port};
use clsf_tests::proxy::{Killed, spawn_binary};
use clsf_tests::psql::{self, PsqlRun};
use serde_json::Value;

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group agent  { claim team == "agent" }
group oncall { claim team == "oncall" }
group loader { claim team == "loader" }

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential
  ssn:         restricted
}
table public.orders: internal
table public.pgbench_accounts: internal

rule agent_reads for agent {
  allow <= internal
  mask  confidential
  require approval column public.customers.ssn by oncall ttl 60s
}

rule load for loader {
  allow <= internal
}
"#;

const ADMIN: &str =
    "\n[admin]\nlisten = \"127.0.0.1:0\"\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n";

struct Replica {
    process: Killed,
    addr: SocketAddr,
    admin: SocketAddr,
}

fn clsfc(args: &[&std::ffi::OsStr]) {
    let run = Command::new(bin("clsfc")).args(args).output().unwrap();
    assert!(
        run.status.success(),
        "clsfc: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `clsfc build --sign`: what CI publishes.
fn publish(policy: &Path, lock: &Path, bundle: &Path, key: &Path, version: u64) {
    let version = version.to_string();
    clsfc(&[
        "build".as_ref(),
        policy.as_os_str(),
        "--schema".as_ref(),
        lock.as_os_str(),
        "-o".as_ref(),
        bundle.as_os_str(),
        "--bundle-version".as_ref(),
        version.as_ref(),
        "--sign".as_ref(),
        key.as_os_str(),
    ]);
}

fn start_replica(config: &Path) -> Replica {
    let mut command = Command::new(bin("clsf-proxy"));
    command.arg("--config").arg(config);
    let (process, addr, log) = spawn_binary(command);
    let admin = admin_address(&log);
    Replica {
        process,
        addr,
        admin,
    }
}

/// `clsfc publish BUNDLE --control-plane URL --password-file F`.
fn clsfc_publish(bundle: &Path, url: &str, password_file: &Path) -> Output {
    Command::new(bin("clsfc"))
        .arg("publish")
        .arg(bundle)
        .args(["--control-plane", url])
        .arg("--password-file")
        .arg(password_file)
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// HAProxy in TCP mode over `servers`, checking each every 200 ms and
/// sending a connection whose server refuses it to another.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn haproxy(dir: &Path, servers: &[SocketAddr]) -> Haproxy {
    let port = free_port();
    let mut cfg = format!(
        "global\n    maxconn 512\n\ndefaults\n    mode tcp\n    retries 3\n    option redispatch\n    \
         timeout connect 2s\n    timeout client 120s\n    timeout server 120s\n\n\
         frontend postgres\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\n\
         backend replicas\n    balance roundrobin\n"
    );
    for (i, s) in servers.iter().enumerate() {
        cfg.push_str(&format!(
            "    server r{i} {s} check inter 200ms fall 1 rise 2\n"
        ));
    }
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy is installed (Debian package haproxy; tests/ensure-deps.sh)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let begun = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "haproxy does not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Haproxy { child, addr }
}

/// Waits (at most 20 s) for a pending request other than `except`.
fn pending(q: &Quickstart, admin: SocketAddr, except: &[String]) -> Value {
    let begun = Instant::now();
    loop {
        if let Ok(list) = approvals(q, admin, "bob", "oncall", &["list"])
            && let Some(r) = list["requests"].as_array().and_then(|a| {
                a.iter()
                    .find(|r| !except.iter().any(|e| r["id"] == e.as_str()))
            })
        {
            return r.clone();
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "no request became pending"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events(path: &Path) -> Vec<Value> {
    clsf_runtime::audit::read_text(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// How many replicas released request `id` (its `approval_released`
/// events, over every trail).
fn releases(replicas: &[&Path], id: &str) -> usize {
    replicas
        .iter()
        .flat_map(|p| events(p))
        .filter(|e| e["event"] == "approval_released" && e["request"] == id)
        .count()
}

fn email(addr: SocketAddr, token: &str) -> PsqlRun {
    psql::run(addr, token, "SELECT email FROM customers WHERE id = 1;\n")
}

#[test]
fn three_replicas_behind_haproxy_take_a_new_bundle_a_killed_replica_and_a_control_plane_restart() {
    let q = fixture::quickstart(None);
    let dir = q.dir.path().to_path_buf();
    clsf_tests::certs::write_test_ca(&dir);
    q.pg.pgbench_init(1);
    let control = Postgres::start();
    control.superuser_sql(
        "postgres",
        &format!("CREATE DATABASE clsf_control OWNER {GATEWAY_ROLE}"),
    );
    std::fs::write(
        dir.join("control.pw"),
        format!("{}\n", control.gateway_password),
    )
    .unwrap();

    // The policy, signed: what every replica runs.
    let base = fixture::config_with_policy(&q, POLICY);
    let policy = dir.join("policy");
    let key = dir.join("ci");
    clsfc(&["keygen".as_ref(), key.as_os_str()]);
    let trusted = std::fs::read_to_string(dir.join("ci.pub")).unwrap();
    let signing_key = dir.join("ci.key");
    let bundle = dir.join("bundle");
    publish(&policy, &q.lock, &bundle, &signing_key, 1);

    // The central audit's tables are the administrator's: the proxies'
    // role may insert and read, not change or delete.
    control.superuser_sql(
        "clsf_control",
        &clsf_runtime::central_audit::SETUP.replace("PROXY_ROLE", GATEWAY_ROLE),
    );
    let control_url = format!(
        "postgres://{GATEWAY_ROLE}@127.0.0.1:{}/clsf_control?sslmode=disable",
        control.port
    );
    let text = std::fs::read_to_string(&base).unwrap();
    let start = text.find("dir = ").unwrap();
    let end = text[start..].find("[[identity").unwrap() + start;
    // Each replica: its own port (a restarted one comes back on it), its
    // own copy of the bundle, its own trail.
    let replica_config = |name: &str| {
        let audit = dir.join(format!("audit-{name}.jsonl"));
        let own_bundle = dir.join(format!("bundle-{name}"));
        copy_dir(&bundle, &own_bundle);
        clsfc(&[
            "keygen".as_ref(),
            dir.join(format!("anchor-{name}")).as_os_str(),
        ]);
        let config = format!(
            "{}bundle = \"{}\"\ntrusted_keys = [\"{}\"]\n\n{}{ADMIN}\n[control_plane]\n\
             url = \"{control_url}\"\npassword_file = \"control.pw\"\nfollow_bundles = true\n\
             audit = true\nreplica = \"{name}\"\nanchor_key = \"anchor-{name}.key\"\nanchor_every_seconds = 1\n",
            &text[..start],
            own_bundle.display(),
            trusted.trim(),
            &text[end..],
        )
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{}\"", free_port()),
            1,
        )
        .replace(
            &dir.join("audit.jsonl").display().to_string(),
            &audit.display().to_string(),
        );
        let path = dir.join(format!("proxy-{name}.toml"));
        std::fs::write(&path, config).unwrap();
        (path, audit)
    };
    let (configs, trails): (Vec<PathBuf>, Vec<PathBuf>) = ["a", "b", "c"]
        .iter()
        .map(|name| replica_config(name))
        .unzip();
    let mut replicas: Vec<Replica> = configs.iter().map(|c| start_replica(c)).collect();
    let trail_refs: Vec<&Path> = trails.iter().map(PathBuf::as_path).collect();
    let lb = haproxy(&dir, &replicas.iter().map(|r| r.addr).collect::<Vec<_>>());
    let agent = token(&q, "agent-1", "agent");
    for r in &replicas {
        assert_eq!(email(r.addr, &agent).stdout.trim(), "****@example.com");
    }

    // (a) Version 2 shows the agent e-mail addresses: published while
    // pgbench runs through the load balancer.
    let load = clsf_tests::pgbench::select_only(
        q.pg.program("pgbench"),
        lb.addr,
        "loader",
        token(&q, "loader-1", "loader"),
        3,
        4,
    );
    std::thread::sleep(Duration::from_millis(1000));
    std::fs::write(
        policy.join("p.clsf"),
        POLICY.replace(
            "  mask  confidential\n",
            "  mask  confidential\n  allow column public.customers.email override because \"receipts\"\n",
        ),
    )
    .unwrap();
    publish(&policy, &q.lock, &bundle, &signing_key, 2);
    let out = clsfc_publish(&bundle, &control_url, &dir.join("control.pw"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let published = Instant::now();
    let published_at = time::OffsetDateTime::now_utc();
    let seen: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let watchers: Vec<_> = replicas
        .iter()
        .map(|r| {
            let (addr, agent, seen) = (r.addr, agent.clone(), Arc::clone(&seen));
            std::thread::spawn(move || {
                while published.elapsed() < Duration::from_secs(10) {
                    if email(addr, &agent).stdout.trim() == "ada@example.com" {
                        seen.lock().unwrap().push(published.elapsed());
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    for w in watchers {
        w.join().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "not every replica took bundle 2: {seen:?}");
    // When each replica swapped its plan (its `reload` event), after the
    // publication; a client's next statement runs on the new plan.
    let swapped: Vec<f64> = trails
        .iter()
        .map(|t| {
            let reload = events(t)
                .into_iter()
                .rev()
                .find(|e| e["event"] == "reload")
                .unwrap_or_else(|| panic!("{}: no reload event", t.display()));
            let at = time::OffsetDateTime::parse(
                reload["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            (at - published_at).as_seconds_f64()
        })
        .collect();
    eprintln!(
        "bundle 2 in force on the replicas {swapped:.3?} s after its publication; first served to a polling client after {seen:?}"
    );
    // Well under the replicas' 5 s poll, so the notification brought it
    // (about 0.3–1 s in a debug build, more on a loaded 2-core CI host).
    assert!(swapped.iter().all(|s| *s < 2.5), "{swapped:?}");
    no_transaction_failed(&load.join().unwrap());

    // Version 3, signed by a key no replica trusts, masks e-mail again:
    // published, and refused by every replica; version 2 stays in force.
    clsfc(&["keygen".as_ref(), dir.join("rogue").as_os_str()]);
    std::fs::write(policy.join("p.clsf"), POLICY).unwrap();
    let rogue = dir.join("bundle-rogue");
    publish(&policy, &q.lock, &rogue, &dir.join("rogue.key"), 3);
    let out = clsfc_publish(&rogue, &control_url, &dir.join("control.pw"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let begun = Instant::now();
    while !trails.iter().all(|t| {
        events(t).iter().any(|e| {
            e["event"] == "bundle_refused"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("version 3"))
        })
    }) {
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "not every replica refused bundle 3"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for r in &replicas {
        assert_eq!(email(r.addr, &agent).stdout.trim(), "ada@example.com");
        // The refusal is in each replica's metrics too.
        let (status, metrics) = clsf_tests::https::get(r.admin, &dir.join("ca.pem"), "/metrics");
        assert!(status.contains("200"), "{status}");
        assert!(
            metrics.contains("clsf_bundles_refused_total 1"),
            "{metrics}"
        );
        assert!(metrics.contains("clsf_bundle_published 3"), "{metrics}");
    }
    // An older version than the newest published: refused at publication.
    publish(&policy, &q.lock, &rogue, &signing_key, 1);
    let out = clsfc_publish(&rogue, &control_url, &dir.join("control.pw"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("version 3 is already published"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // (b) Held on C, then C is killed.
    let (a, c_addr) = (replicas[0].admin, replicas[2].addr);
    let agent_c = agent.clone();
    let held = std::thread::spawn(move || {
        psql::run(
            c_addr,
            &agent_c,
            "SELECT ssn FROM customers WHERE id = 2;\n",
        )
    });
    let first = pending(&q, a, &[]);
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(
        first["statement"],
        "SELECT ssn FROM customers WHERE id = 2;"
    );
    {
        let c = &mut replicas[2].process.0;
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let out = held.join().unwrap();
    assert_ne!(
        out.code, 0,
        "the killed replica's client got no error: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("987-65-4321"), "{}", out.stdout);
    // Approved through A: the request is decided, and nothing runs it.
    let approved = approvals(&q, a, "bob", "oncall", &["approve", &first_id]).unwrap();
    assert_eq!(approved["state"], "approved");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(releases(&trail_refs, &first_id), 0);
    // The client comes back through the load balancer, which no longer
    // sends anyone to C: held on A or B, approved through A, released once.
    let (lb_addr, agent_retry) = (lb.addr, agent.clone());
    let retry = std::thread::spawn(move || {
        psql::run(
            lb_addr,
            &agent_retry,
            "SELECT ssn FROM customers WHERE id = 2;\n",
        )
    });
    let second = pending(&q, a, std::slice::from_ref(&first_id));
    let second_id = second["id"].as_str().unwrap().to_owned();
    let approved = approvals(&q, a, "bob", "oncall", &["approve", &second_id]).unwrap();
    assert_eq!(approved["state"], "approved");
    let out = retry.join().unwrap();
    assert_eq!(out.stdout.trim(), "987-65-4321", "{}", out.stderr);
    assert_eq!(releases(&trail_refs, &second_id), 1);
    assert_eq!(releases(&trail_refs, &first_id), 0);

    // (c) The control plane goes down under load: the replicas keep
    // serving, and C starts again without it, on the bundle it verified.
    let load = clsf_tests::pgbench::select_only(
        q.pg.program("pgbench"),
        lb.addr,
        "loader",
        token(&q, "loader-1", "loader"),
        3,
        6,
    );
    std::thread::sleep(Duration::from_millis(1000));
    control.stop();
    replicas[2] = start_replica(&configs[2]);
    assert_eq!(
        email(replicas[2].addr, &agent).stdout.trim(),
        "ada@example.com"
    );
    // Meanwhile a statement that needs an approval fails clearly: no other
    // replica could see the request, so it is withdrawn at once.
    let out = psql::run(
        replicas[1].addr,
        &agent,
        "SELECT ssn FROM customers WHERE id = 4;\n",
    );
    assert!(
        out.stderr
            .contains("was withdrawn (the control plane could not record the request)"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    control.start_again();
    no_transaction_failed(&load.join().unwrap());
    // Approvals work across replicas again once it is back.
    let c_addr = replicas[2].addr;
    let agent_c = agent.clone();
    let held = std::thread::spawn(move || {
        psql::run(
            c_addr,
            &agent_c,
            "SELECT ssn FROM customers WHERE id = 3;\n",
        )
    });
    let third = pending(&q, a, &[first_id.clone(), second_id.clone()]);
    let third_id = third["id"].as_str().unwrap().to_owned();
    assert_eq!(
        third["statement"],
        "SELECT ssn FROM customers WHERE id = 3;"
    );
    let approved = approvals(&q, a, "bob", "oncall", &["approve", &third_id]).unwrap();
    assert_eq!(approved["state"], "approved");
    let out = held.join().unwrap();
    assert_eq!(out.stdout.trim(), "555-12-3456", "{}", out.stderr);
    assert_eq!(releases(&trail_refs, &third_id), 1);

    // Every replica's trail verifies, the one killed mid-run included, and
    // so does its copy in the control plane, once it has caught up.
    let local_events = |t: &Path| events(t).len() as i64;
    let begun = Instant::now();
    loop {
        let counts = control.superuser_sql(
            "clsf_control",
            "SELECT string_agg(replica || '=' || n, ',' ORDER BY replica) FROM (SELECT replica, count(*) AS n FROM clsf_audit_events GROUP BY replica) c",
        );
        let want = format!(
            "a={},b={},c={}",
            local_events(&trails[0]),
            local_events(&trails[1]),
            local_events(&trails[2])
        );
        if counts.trim() == want {
            break;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "the central copy did not catch up: {counts} against {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // An anchor is written at most a second after the events it covers.
    std::thread::sleep(Duration::from_millis(1500));
    drop(lb);
    for r in replicas.iter_mut() {
        let _ = r.process.0.kill();
        let _ = r.process.0.wait();
    }
    for trail in &trails {
        let out = Command::new(bin("clsf-proxy"))
            .args(["audit", "verify"])
            .arg(trail)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}{}",
            trail.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let anchor_keys: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            std::fs::read_to_string(dir.join(format!("anchor-{n}.pub")))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect();
    let central = |extra: &[&std::ffi::OsStr]| {
        let mut command = Command::new(bin("clsf-proxy"));
        command
            .args(["audit", "verify"])
            .args(extra)
            .args(["--control-plane", &control_url])
            .arg("--password-file")
            .arg(dir.join("control.pw"));
        for k in &anchor_keys {
            command.args(["--trusted-key", k]);
        }
        command.output().unwrap()
    };
    let out = central(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["a", "b", "c"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("ok: replica {name}: ")))
            .unwrap_or_else(|| panic!("no report for {name}: {stdout}"));
        assert!(line.contains("chain intact"), "{line}");
        assert!(!line.contains(" 0 anchors verified"), "{line}");
    }
    // Each local trail matches its replica's anchors.
    for (name, trail) in ["a", "b", "c"].iter().zip(&trails) {
        let out = central(&[trail.as_os_str(), "--replica".as_ref(), name.as_ref()]);
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The proxies' role cannot change what they shipped.
    let psql_bin = q.pg.program("psql");
    let update = Command::new(psql_bin)
        .arg(format!(
            "postgres://{GATEWAY_ROLE}:{}@127.0.0.1:{}/clsf_control",
            control.gateway_password, control.port
        ))
        .args([
            "-X",
            "-c",
            "UPDATE clsf_audit_events SET line = line WHERE replica = 'a'",
        ])
        .output()
        .unwrap();
    assert!(!update.status.success());
    assert!(
        String::from_utf8_lossy(&update.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&update.stderr)
    );
    // A local trail rewritten whole (one event changed, the chain rebuilt
    // after it) verifies on its own, and not against the anchors.
    let original = clsf_runtime::audit::read_text(&trails[0]).unwrap();
    let mut rewritten = String::new();
    let mut prev = clsf_runtime::audit::GENESIS.to_owned();
    for (i, line) in original.lines().enumerate() {
        let mut line = line.replacen(
            &line[line.find("\"prev\":\"").unwrap()..line.find("\"prev\":\"").unwrap() + 72],
            &format!("\"prev\":\"{prev}"),
            1,
        );
        if i == 1 {
            line = line.replacen("\"event\":\"", "\"event\":\"x", 1);
        }
        prev = clsf_runtime::audit::line_hash(&line);
        rewritten.push_str(&line);
        rewritten.push('\n');
    }
    let forged = dir.join("forged");
    std::fs::create_dir(&forged).unwrap();
    std::fs::write(forged.join("audit-a.jsonl"), rewritten).unwrap();
    let alone = Command::new(bin("clsf-proxy"))
        .args(["audit", "verify"])
        .arg(forged.join("audit-a.jsonl"))
        .output()
        .unwrap();
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );
    let out = central(&[
        forged.join("audit-a.jsonl").as_os_str(),
        "--replica".as_ref(),
        "a".as_ref(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the trail was rewritten"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An event deleted from the central copy (by someone with more rights
    // than the proxies) is reported as missing.
    control.superuser_sql(
        "clsf_control",
        "DELETE FROM clsf_audit_events WHERE replica = 'b' AND seq = 3",
    );
    let out = central(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("BROKEN: replica b") && stdout.contains("event 3 is missing"),
        "{stdout}"
    );
}

/// Two trails under one replica name: the second proxy's copy stops at the
/// first event that differs, says why, and leaves the first trail's events
/// as they were.
#[test]
fn a_second_trail_under_a_taken_replica_name_is_not_copied() {
    let q = fixture::quickstart(None);
    let dir = q.dir.path().to_path_buf();
    q.pg.superuser_sql(
        "postgres",
        &format!("CREATE DATABASE clsf_control OWNER {GATEWAY_ROLE}"),
    );
    q.pg.superuser_sql(
        "clsf_control",
        &clsf_runtime::central_audit::SETUP.replace("PROXY_ROLE", GATEWAY_ROLE),
    );
    // Another trail's first event, already copied under the name.
    q.pg.superuser_sql(
        "clsf_control",
        "INSERT INTO clsf_audit_events (replica, seq, line) VALUES ('p', 0, '{\"seq\":0,\"prev\":\"0\",\"event\":\"connect\"}')",
    );
    let mut config = std::fs::read_to_string(&q.config).unwrap();
    config.push_str(&format!(
        "\n[control_plane]\nurl = \"postgres://{GATEWAY_ROLE}@127.0.0.1:{}/clsf_control?sslmode=disable\"\n\
         password_file = \"upstream.pw\"\naudit = true\nreplica = \"p\"\n",
        q.pg.port
    ));
    let path = dir.join("proxy-p.toml");
    std::fs::write(&path, config).unwrap();
    let mut command = Command::new(bin("clsf-proxy"));
    command.arg("--config").arg(&path);
    let (_proxy, addr, log) = spawn_binary(command);
    let out = psql::run(addr, &q.issuer.ci_token(), "SELECT 1;\n");
    assert_eq!(out.stdout.trim(), "1", "{}", out.stderr);
    let begun = Instant::now();
    while !log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("another trail ships under this name"))
    {
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "no conflict reported: {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let held = q.pg.superuser_sql(
        "clsf_control",
        "SELECT count(*) || ' ' || min(line) FROM clsf_audit_events WHERE replica = 'p'",
    );
    assert_eq!(
        held.trim(),
        "1 {\"seq\":0,\"prev\":\"0\",\"event\":\"connect\"}"
    );
}
