//! The throughput and memory comparison behind the README's performance
//! figures. One throwaway PostgreSQL (pgbench tables, scale 10), and
//! `pgbench -S` with 8 clients in simple, extended and prepared modes over
//! four paths, interleaved mode by mode:
//!   (a) PostgreSQL directly,
//!   (b) pgbouncer (Debian's package) in session mode,
//!   (c) clsf-proxy as `reporter`, whose policy masks a column of another
//!       table (each statement is parsed, decided, audited, forwarded as is),
//!   (d) clsf-proxy as `ci`, whose statement reads a masked column
//!       (rewritten to a masking subquery).
//! Then the proxy's memory: resident size after the runs, peak while a
//! 1 GB result streams through it, and with 500 idle connections.
//!
//! The proxy runs as its own process (the release `clsf-proxy` next to
//! this binary). Run with:
//!   cargo build --release --workspace --bins
//!   ./target/release/clsf-bench [SECONDS] [CLIENTS] [ROUNDS]
//! `CLSF_BENCH_AUDIT=/dev/null` sends the audit trail nowhere, to see its share;
//! `CLSF_BENCH_COMPLETIONS=0` turns off the per-statement `completed` events.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clsf_tests::bins::{bin, repo_root};
use clsf_tests::fixture;
use clsf_tests::identity::Issuer;
use clsf_tests::postgres::{DATABASE, GATEWAY_ROLE, Postgres};
use clsf_tests::proxy::{Killed, spawn_binary, write_config};
use serde_json::json;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts clsf-proxy and returns it with the address it listens on.
fn start_proxy(config: &std::path::Path) -> (Killed, SocketAddr) {
    let mut command = Command::new(bin("clsf-proxy"));
    command.arg("--config").arg(config);
    let (child, addr, _log) = spawn_binary(command);
    (child, addr)
}

/// Starts pgbouncer in session mode in front of `pg`, as the cluster's
/// owner (pgbouncer refuses to run as root).
fn start_pgbouncer(pg: &Postgres, dir: &std::path::Path) -> (Killed, u16) {
    let port = free_port();
    std::fs::write(
        dir.join("userlist.txt"),
        format!("\"{GATEWAY_ROLE}\" \"\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("pgbouncer.ini"),
        format!(
            "[databases]\n{DATABASE} = host=127.0.0.1 port={} dbname={DATABASE} user={GATEWAY_ROLE} password={}\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {}\npool_mode = session\nmax_client_conn = 1000\n\
             default_pool_size = 64\nlogfile = {}\npidfile = {}\n",
            pg.port,
            pg.gateway_password,
            dir.join("userlist.txt").display(),
            dir.join("pgbouncer.log").display(),
            dir.join("pgbouncer.pid").display(),
        ),
    )
    .unwrap();
    if let Some(owner) = pg.owner() {
        let _ = Command::new("chown").args(["-R", owner]).arg(dir).output();
    }
    let child = pg
        .command_as_owner(std::path::Path::new("/usr/sbin/pgbouncer"))
        .arg(dir.join("pgbouncer.ini"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pgbouncer (Debian package pgbouncer)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pgbouncer did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), port)
}

/// One pgbench run; returns transactions per second.
fn pgbench(
    pg: &Postgres,
    mode: &str,
    clients: u32,
    seconds: u32,
    port: u16,
    user: &str,
    password: &str,
) -> f64 {
    let out = Command::new(pg.program("pgbench"))
        .args([
            "-S",
            "-n",
            "-M",
            mode,
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
        ])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            DATABASE,
        ])
        .env("PGPASSWORD", password)
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("number of failed transactions: 0 "),
        "pgbench on port {port} as {user}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("pgbench prints tps")
}

/// A `/proc/PID/status` field in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let clients: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let rounds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);

    let pg = Postgres::start();
    // Room for 500 idle sessions (one upstream connection each) and no
    // per-statement logging, which the test clusters have.
    pg.restart_with("max_connections = 600\nlog_statement = none\nlog_connections = off");
    pg.pgbench_init(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = dir.path().join("schema.lock.json");
    fixture::pull_lock(&pg, &lock);
    let issuer = Issuer::new("bench");
    let config = write_config(
        dir.path(),
        &pg,
        &issuer,
        &repo_root().join("tests/bench/policy"),
        &lock,
        &std::env::var_os("CLSF_BENCH_AUDIT")
            .map_or_else(|| dir.path().join("audit.jsonl"), std::path::PathBuf::from),
    );
    // Room for the 500 idle connections.
    let mut text = std::fs::read_to_string(&config).expect("config");
    if std::env::var("CLSF_BENCH_COMPLETIONS").as_deref() == Ok("0") {
        text = text.replacen("[audit]\n", "[audit]\ncompletions = false\n", 1);
    }
    std::fs::write(
        &config,
        text.replacen(
            "listen = \"127.0.0.1:0\"\n",
            "listen = \"127.0.0.1:0\"\nmax_connections = 1000\n",
            1,
        ),
    )
    .expect("config");
    let (proxy, addr) = start_proxy(&config);
    let bouncer_dir = tempfile::tempdir().expect("temp dir");
    let (_bouncer, bouncer_port) = start_pgbouncer(&pg, bouncer_dir.path());
    let ci = issuer.sign(&issuer.claims("ci", json!({ "repository": "acme/shop" })));
    let reporter = issuer.sign(&issuer.claims("reporter", json!({ "groups": ["report"] })));
    let dba = issuer.sign(&issuer.claims("dba-bot", json!({ "groups": ["dba"] })));

    println!(
        "pgbench -S -c {clients} -j 2 -T {seconds}, scale 10, {rounds} round(s), paths interleaved"
    );
    println!(
        "{:<9} {:>10} {:>10} {:>14} {:>12}   (c)/(a) (c)/(b) (d)/(a) (d)/(b)",
        "mode", "(a) direct", "(b) pgbouncer", "(c) mask other", "(d) masked"
    );
    for mode in ["simple", "extended", "prepared"] {
        let mut sums = [0.0f64; 4];
        for _ in 0..rounds {
            sums[0] += pgbench(
                &pg,
                mode,
                clients,
                seconds,
                pg.port,
                GATEWAY_ROLE,
                &pg.gateway_password,
            );
            sums[1] += pgbench(&pg, mode, clients, seconds, bouncer_port, GATEWAY_ROLE, "");
            sums[2] += pgbench(
                &pg,
                mode,
                clients,
                seconds,
                addr.port(),
                "reporter",
                &reporter,
            );
            sums[3] += pgbench(&pg, mode, clients, seconds, addr.port(), "ci", &ci);
        }
        let [a, b, c, d] = sums.map(|s| s / f64::from(rounds));
        println!(
            "{mode:<9} {a:>10.0} {b:>13.0} {c:>14.0} {d:>12.0}   {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            c / a,
            c / b,
            d / a,
            d / b
        );
    }

    let pid = proxy.0.id();
    println!("\nclsf-proxy memory (pid {pid})");
    println!(
        "after the pgbench runs: RSS {:.1} MiB",
        status_mib(pid, "VmRSS:")
    );
    // 1 GB through the proxy: 1,000,000 rows of 1,000 bytes, to /dev/null.
    let before = status_mib(pid, "VmHWM:");
    let started = Instant::now();
    let out = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={} user=dba dbname={DATABASE} sslmode=disable",
            addr.port()
        ))
        .args([
            "-X",
            "-q",
            "-c",
            "COPY (SELECT repeat('x', 1000) FROM generate_series(1, 1000000)) TO STDOUT",
        ])
        .env("PGPASSWORD", &dba)
        .stdout(Stdio::null())
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "streaming 1 GB (COPY to /dev/null, {:.1} s): peak RSS {before:.1} -> {:.1} MiB",
        started.elapsed().as_secs_f64(),
        status_mib(pid, "VmHWM:")
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let idle = runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..500 {
            let (client, conn) = clsf_tests::client::config(addr.port(), "reporter", &reporter)
                .connect(tokio_postgres::NoTls)
                .await
                .expect("idle connection");
            tokio::spawn(conn);
            held.push(client);
        }
        held
    });
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "with {} idle connections: RSS {:.1} MiB",
        idle.len(),
        status_mib(pid, "VmRSS:")
    );
    drop(idle);
    drop(runtime);
}
