//! The throughput and memory comparison behind the performance
//! figures of docs/performance.md. One throwaway PostgreSQL (pgbench tables, scale 10), and
//! `pgbench -S` with 8 clients in simple, extended and prepared modes over
//! four paths, interleaved mode by mode:
//!   (a) PostgreSQL directly,
//!   (b) pgbouncer (Debian's package) in session mode,
//!   (c) clsf-proxy as `reporter`, whose policy masks a column of another
//!       table (each statement is parsed, decided, audited, forwarded as is),
//!   (d) clsf-proxy as `ci`, whose statement reads a masked column
//!       (rewritten to a masking subquery).
//! Then the proxy's memory: resident size after the runs, peak while a
//! 1 GB result streams through it, and with 1 000 idle connections
//! (`CLSF_BENCH_IDLE=N` for another count).
//!
//! The proxy runs as its own process (the release `clsf-proxy` next to
//! this binary). Run with:
//!   cargo build --release --workspace --bins
//!   ./target/release/clsf-bench [SECONDS] [CLIENTS] [ROUNDS]
//! `CLSF_BENCH_AUDIT=/dev/null` sends the audit trail nowhere, to see its share;
//! `CLSF_BENCH_COMPLETIONS=0` turns off the per-statement `completed` events;
//! `CLSF_BENCH_BASELINE=PATH` runs another `clsf-proxy` build as path (e),
//! like (c), interleaved with the others (to compare two builds on a
//! machine whose speed drifts between runs);
//! `CLSF_BENCH_BASELINE_THREADS=N` gives (e) `worker_threads = N`.
//! `CLSF_BENCH_TIMEOUTS=1` gives (c), (d) and (e) the idle and statement
//! timeouts of `examples/proxy.toml`;
//! `CLSF_BENCH_CONNECT=1` runs pgbench with `-C` (a connection per transaction).
//! `CLSF_BENCH_COUNT=1` then counts, per transaction, the system calls
//! (`strace -c -f`, in runs of their own: tracing slows the process) and
//! context switches (every thread's `/proc/PID/task/TID/status`) of
//! pgbouncer and of the proxy, path by path and mode by mode.

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

/// Starts a clsf-proxy binary and returns it with the address it listens on.
fn start_proxy(binary: &std::path::Path, config: &std::path::Path) -> (Killed, SocketAddr) {
    let mut command = Command::new(binary);
    command.arg("--config").arg(config);
    let (child, addr, _log) = spawn_binary(command);
    (child, addr)
}

/// Starts pgbouncer in session mode in front of `pg`, as the cluster's
/// owner (pgbouncer refuses to run as root).
fn start_pgbouncer(pg: &Postgres, dir: &std::path::Path) -> (Bouncer, u16) {
    start_pgbouncer_with(pg, dir, "")
}

/// Starts pgbouncer with `extra` lines in its `[pgbouncer]` section.
fn start_pgbouncer_with(pg: &Postgres, dir: &std::path::Path, extra: &str) -> (Bouncer, u16) {
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
             default_pool_size = 300\nlogfile = {}\npidfile = {}\n{extra}",
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
    let bouncer = Bouncer {
        pid: bouncer_pid(dir),
        _runner: Killed(child),
    };
    (bouncer, port)
}

/// A running pgbouncer, stopped on drop. It runs under `runuser`, which
/// does not pass a kill on to it: killing only the child the bench spawned
/// left pgbouncer running after the bench had ended, so it is stopped by
/// the process id it wrote.
pub(crate) struct Bouncer {
    pid: Option<u32>,
    _runner: Killed,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

/// What one pgbench run did: transactions per second, and the CPU time
/// the process in front of PostgreSQL spent per transaction.
struct Run {
    tps: f64,
    cpu_us: f64,
}

/// User plus system CPU time of a process, in microseconds
/// (`/proc/PID/stat` fields 14 and 15, in clock ticks).
pub(crate) fn cpu_us(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count from after it.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let hz = *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / hz * 1e6,
        _ => f64::NAN,
    }
}

/// pgbouncer's process id, from its pid file.
fn bouncer_pid(dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("pgbouncer.pid"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Paths (a) to (d): PostgreSQL, pgbouncer (port, pid), and the proxy
/// (port, pid) as `reporter` (nothing protected read) and as `ci` (a
/// masked column read).
fn paths<'a>(
    pg: &'a Postgres,
    (bouncer_port, bouncer_pid): (u16, Option<u32>),
    (proxy_port, proxy_pid): (u16, u32),
    reporter: &'a str,
    ci: &'a str,
) -> [Target<'a>; 4] {
    [
        Target {
            port: pg.port,
            user: GATEWAY_ROLE,
            password: &pg.gateway_password,
            pid: None,
        },
        Target {
            port: bouncer_port,
            user: GATEWAY_ROLE,
            password: "",
            pid: bouncer_pid,
        },
        Target {
            port: proxy_port,
            user: "reporter",
            password: reporter,
            pid: Some(proxy_pid),
        },
        Target {
            port: proxy_port,
            user: "ci",
            password: ci,
            pid: Some(proxy_pid),
        },
    ]
}

/// One path to PostgreSQL: where pgbench connects, as whom, and the
/// process in front of PostgreSQL (none for the direct path).
#[derive(Clone, Copy)]
struct Target<'a> {
    port: u16,
    user: &'a str,
    password: &'a str,
    pid: Option<u32>,
}

/// One pgbench run over `target`, with the CPU time of its process per
/// transaction.
fn measured(pg: &Postgres, mode: &str, clients: u32, seconds: u32, target: &Target<'_>) -> Run {
    let Target {
        port,
        user,
        password,
        pid,
    } = *target;
    let before = pid.map(cpu_us);
    let (tps, transactions) = pgbench(pg, mode, clients, seconds, port, user, password);
    let cpu = match (pid, before) {
        (Some(pid), Some(before)) => (cpu_us(pid) - before) / transactions,
        _ => f64::NAN,
    };
    Run { tps, cpu_us: cpu }
}

/// One pgbench run; returns transactions per second and transactions.
fn pgbench(
    pg: &Postgres,
    mode: &str,
    clients: u32,
    seconds: u32,
    port: u16,
    user: &str,
    password: &str,
) -> (f64, f64) {
    pgbench_with(
        pg,
        mode,
        clients,
        seconds,
        (port, user, password),
        &Extra::default(),
    )
}

/// `CLSF_BENCH_CONNECT=1`: pgbench `-C`, a new connection per
/// transaction, so the figures are the cost of connecting (TLS,
/// authentication, the upstream login) more than of relaying.
fn connect_per_transaction() -> bool {
    std::env::var("CLSF_BENCH_CONNECT").as_deref() == Ok("1")
}

/// What a pgbench run may add: TLS, and a per-transaction log.
#[derive(Default)]
struct Extra<'a> {
    /// `sslmode=require` instead of `disable`.
    tls: bool,
    /// `--log` with this prefix, sampled at this rate.
    log: Option<(&'a std::path::Path, f64)>,
}

/// One pgbench run with `extra`; returns transactions per second and
/// transactions.
fn pgbench_with(
    pg: &Postgres,
    mode: &str,
    clients: u32,
    seconds: u32,
    (port, user, password): (u16, &str, &str),
    extra: &Extra<'_>,
) -> (f64, f64) {
    let mut command = Command::new(pg.program("pgbench"));
    command
        .args([
            "-S",
            "-n",
            "-M",
            mode,
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &seconds.to_string(),
        ])
        .args(connect_per_transaction().then_some("-C"))
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
        .env("PGSSLMODE", if extra.tls { "require" } else { "disable" });
    if let Some((prefix, rate)) = extra.log {
        command
            .arg("--log")
            .arg(format!("--log-prefix={}", prefix.display()));
        if rate < 1.0 {
            command.arg(format!("--sampling-rate={rate}"));
        }
    }
    let out = command.output().expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("number of failed transactions: 0 "),
        "pgbench on port {port} as {user}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number = |prefix: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("pgbench prints `{prefix}`: {text}"))
    };
    (
        number("tps = "),
        number("number of transactions actually processed: "),
    )
}

/// Context switches so far, voluntary and involuntary, of every thread
/// of a process.
fn context_switches(pid: u32) -> (f64, f64) {
    let mut total = (0.0, 0.0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (f64::NAN, f64::NAN);
    };
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let field = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        total.0 += field("voluntary_ctxt_switches:");
        total.1 += field("nonvoluntary_ctxt_switches:");
    }
    total
}

/// TCP segments this host has sent so far (`/proc/net/snmp`'s
/// `OutSegs`): on loopback, every segment of pgbench, the process in front
/// and PostgreSQL, pure ACKs included, each one a trip through the stack.
fn tcp_segments_sent() -> f64 {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut rows = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (rows.next(), rows.next()) else {
        return f64::NAN;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find_map(|(n, v)| (n == "OutSegs").then(|| v.parse().ok()).flatten())
        .unwrap_or(f64::NAN)
}

/// Per-transaction counts of one path in one mode.
struct Counts {
    voluntary: f64,
    involuntary: f64,
    /// TCP segments sent on the host (`tcp_segments_sent`).
    segments: f64,
    /// System calls per transaction, most frequent first.
    syscalls: Vec<(String, f64)>,
}

/// Counts context switches over one pgbench run, then system calls over
/// another with `strace -c -f` attached (its summary goes to a file).
fn counted(pg: &Postgres, mode: &str, clients: u32, seconds: u32, target: &Target<'_>) -> Counts {
    let pid = target.pid.expect("a process in front of PostgreSQL");
    let run = || {
        pgbench(
            pg,
            mode,
            clients,
            seconds,
            target.port,
            target.user,
            target.password,
        )
        .1
    };
    let before = context_switches(pid);
    let segments_before = tcp_segments_sent();
    let transactions = run();
    let after = context_switches(pid);
    let segments = (tcp_segments_sent() - segments_before) / transactions;
    let summary = tempfile::NamedTempFile::new().expect("temp file");
    let mut strace = Command::new("strace")
        .args(["-c", "-f", "-q", "-o"])
        .arg(summary.path())
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace (Debian package strace)");
    std::thread::sleep(Duration::from_millis(500));
    let traced = run();
    // SIGINT detaches strace, which then writes its summary.
    let _ = Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status();
    let _ = strace.wait();
    let text = std::fs::read_to_string(summary.path()).unwrap_or_default();
    // Rows: % time, seconds, usecs/call, calls, [errors,] syscall.
    let mut syscalls: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = (*f.last()?).to_owned();
            let calls: f64 = f.get(3)?.parse().ok()?;
            (name != "total" && f.len() >= 5).then(|| (name, calls / traced))
        })
        .collect();
    syscalls.sort_by(|a, b| b.1.total_cmp(&a.1));
    Counts {
        voluntary: (after.0 - before.0) / transactions,
        involuntary: (after.1 - before.1) / transactions,
        segments,
        syscalls,
    }
}

/// Prints the counts of pgbouncer and of the proxy side by side.
fn print_counts(pg: &Postgres, clients: u32, seconds: u32, paths: &[(&str, Target<'_>)]) {
    println!(
        "\nPer transaction: system calls (strace -c -f, a run of its own), context switches \
         and TCP segments sent on the host"
    );
    println!(
        "{:<9} {:<18} {:>9} {:>9} {:>8} {:>9}   most frequent calls",
        "mode", "path", "syscalls", "vol. cs", "invol.", "segments"
    );
    for mode in ["simple", "extended", "prepared"] {
        for (name, target) in paths {
            let c = counted(pg, mode, clients, seconds, target);
            let total: f64 = c.syscalls.iter().map(|(_, n)| n).sum();
            let top: Vec<String> = c
                .syscalls
                .iter()
                .take(5)
                .map(|(n, per)| format!("{n} {per:.2}"))
                .collect();
            println!(
                "{mode:<9} {name:<18} {total:>9.2} {:>9.2} {:>8.2} {:>9.2}   {}",
                c.voluntary,
                c.involuntary,
                c.segments,
                top.join(", ")
            );
        }
    }
}

/// A `/proc/PID/status` field in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

mod matrix;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("matrix") {
        matrix::run(&args[2..]);
        return;
    }
    let seconds: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let clients: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let rounds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);

    let idle_sessions = idle_sessions();
    let pg = Postgres::start();
    // Room for the idle sessions (one upstream connection each) and no
    // per-statement logging, which the test clusters have.
    pg.restart_with(&format!(
        "max_connections = {}\nlog_statement = none\nlog_connections = off",
        idle_sessions + 100
    ));
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
    // Room for the idle connections.
    let mut text = std::fs::read_to_string(&config).expect("config");
    if std::env::var("CLSF_BENCH_COMPLETIONS").as_deref() == Ok("0") {
        text = text.replacen("[audit]\n", "[audit]\ncompletions = false\n", 1);
    }
    if std::env::var("CLSF_BENCH_TIMEOUTS").as_deref() == Ok("1") {
        text = text.replacen(
            "listen = ",
            "idle_timeout_seconds = 600\nstatement_timeout_seconds = 300\nlisten = ",
            1,
        );
    }
    std::fs::write(
        &config,
        text.replacen(
            "listen = \"127.0.0.1:0\"\n",
            &format!(
                "listen = \"127.0.0.1:0\"\nmax_connections = {}\n",
                idle_sessions + 100
            ),
            1,
        ),
    )
    .expect("config");
    let (proxy, addr) = start_proxy(&bin("clsf-proxy"), &config);
    // A second build to compare against, run as path (e) with the same
    // policy and identity as (c); its own audit trail.
    let baseline = std::env::var_os("CLSF_BENCH_BASELINE").map(|binary| {
        let text = std::fs::read_to_string(&config).expect("config");
        let other = dir.path().join("baseline.toml");
        let audit = dir.path().join("audit.jsonl").display().to_string();
        let trail = dir
            .path()
            .join("baseline-audit.jsonl")
            .display()
            .to_string();
        let mut text = text.replace(&audit, &trail);
        if let Ok(threads) = std::env::var("CLSF_BENCH_BASELINE_THREADS") {
            text = text.replacen(
                "listen = ",
                &format!("worker_threads = {threads}\nlisten = "),
                1,
            );
        }
        std::fs::write(&other, text).expect("config");
        start_proxy(std::path::Path::new(&binary), &other)
    });
    let bouncer_dir = tempfile::tempdir().expect("temp dir");
    let (bouncer, bouncer_port) = start_pgbouncer(&pg, bouncer_dir.path());
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
    let proxy_pid = proxy.0.id();
    // The paths in the order they run: (a) to (d), then (e) if given.
    let mut targets = paths(
        &pg,
        (bouncer_port, bouncer_pid(bouncer_dir.path())),
        (addr.port(), proxy_pid),
        &reporter,
        &ci,
    )
    .to_vec();
    if let Some((child, other)) = &baseline {
        targets.push(Target {
            port: other.port(),
            user: "reporter",
            password: &reporter,
            pid: Some(child.0.id()),
        });
    }
    let mut cpu = Vec::new();
    let mut baselines = Vec::new();
    for mode in ["simple", "extended", "prepared"] {
        let mut tps = [0.0f64; 5];
        let mut us = [0.0f64; 5];
        for _ in 0..rounds {
            for (i, target) in targets.iter().enumerate() {
                let run = measured(&pg, mode, clients, seconds, target);
                tps[i] += run.tps;
                us[i] += run.cpu_us;
            }
        }
        let [a, b, c, d, e] = tps.map(|s| s / f64::from(rounds));
        if baseline.is_some() {
            let n = f64::from(rounds);
            baselines.push((mode, e, us[4] / n, c, us[2] / n));
        }
        println!(
            "{mode:<9} {a:>10.0} {b:>13.0} {c:>14.0} {d:>12.0}   {:>7.2} {:>7.2} {:>7.2} {:>7.2}",
            c / a,
            c / b,
            d / a,
            d / b
        );
        cpu.push((mode, us.map(|s| s / f64::from(rounds))));
    }
    println!("\nCPU time per transaction of the process in front of PostgreSQL (µs)");
    println!(
        "{:<9} {:>13} {:>14} {:>12}   (c)/(b) (d)/(b)",
        "mode", "(b) pgbouncer", "(c) mask other", "(d) masked"
    );
    for (mode, [_, b, c, d, _]) in cpu.iter().copied() {
        println!(
            "{mode:<9} {b:>13.1} {c:>14.1} {d:>12.1}   {:>7.2} {:>7.2}",
            c / b,
            d / b
        );
    }
    if !baselines.is_empty() {
        println!("\n(e) CLSF_BENCH_BASELINE as in (c), against (c)");
        println!(
            "{:<9} {:>10} {:>10} {:>12} {:>12}",
            "mode", "(e) TPS", "(c)/(e)", "(e) CPU µs", "(c)/(e) CPU"
        );
        for (mode, e, e_us, c, c_us) in baselines {
            println!(
                "{mode:<9} {e:>10.0} {:>10.2} {e_us:>12.1} {:>12.2}",
                c / e,
                c_us / e_us
            );
        }
    }

    if std::env::var("CLSF_BENCH_COUNT").as_deref() == Ok("1") {
        print_counts(
            &pg,
            clients,
            seconds,
            &[
                ("(b) pgbouncer", targets[1]),
                ("(c) mask other", targets[2]),
                ("(d) masked", targets[3]),
            ],
        );
    }

    let pid = proxy_pid;
    // pgbouncer keeps a server connection per client it served; with many
    // clients those would leave no room for the idle sessions below.
    drop(bouncer);
    println!("\nclsf-proxy memory (pid {pid})");
    println!(
        "after the pgbench runs: RSS {:.1} MiB",
        status_mib(pid, "VmRSS:")
    );
    // 1 GB through the proxy: 1,000,000 rows of 1,000 bytes, to /dev/null.
    let before = status_mib(pid, "VmHWM:");
    let started = Instant::now();
    let out = clsf_tests::postgres::psql()
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
        for _ in 0..idle_sessions {
            // PostgreSQL may still be closing the backends of the many-client
            // runs: a refusal is reported with the count reached, not fatal.
            match clsf_tests::client::config(addr.port(), "reporter", &reporter)
                .connect(tokio_postgres::NoTls)
                .await
            {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    held.push(client);
                }
                Err(e) => {
                    println!("idle connection {} refused: {e}", held.len() + 1);
                    break;
                }
            }
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
    drop(proxy);
    storm(&config, dir.path(), &reporter);
}

/// How many idle sessions the memory measurement holds open
/// (`CLSF_BENCH_IDLE`, default 1 000: issue 18's target).
fn idle_sessions() -> usize {
    std::env::var("CLSF_BENCH_IDLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// A connection storm: 2 000 clients connect at once to a proxy whose
/// `max_connections` is 256 and hold their session for a moment. Reports
/// how many were let in and how many refused with 53300 (and any other
/// outcome), with the proxy's peak resident memory and open descriptors.
fn storm(config: &std::path::Path, dir: &std::path::Path, token: &str) {
    const ATTEMPTS: usize = 2000;
    let text = std::fs::read_to_string(config).expect("config");
    let audit = dir.join("audit.jsonl").display().to_string();
    let limit = format!("max_connections = {}\n", idle_sessions() + 100);
    assert!(text.contains(&limit), "the bench's config sets {limit}");
    let text = text
        .replace(&audit, &dir.join("storm-audit.jsonl").display().to_string())
        .replacen(
            &limit,
            "max_connections = 256\nstartup_timeout_seconds = 3\n",
            1,
        );
    let storm_config = dir.join("storm.toml");
    std::fs::write(&storm_config, text).expect("config");
    let (proxy, addr) = start_proxy(&bin("clsf-proxy"), &storm_config);
    let pid = proxy.0.id();
    let fds = move || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let before = (status_mib(pid, "VmRSS:"), fds());
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = std::sync::Arc::clone(&sampling);
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(fds());
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let outcomes = runtime.block_on(async {
        let tasks: Vec<_> = (0..ATTEMPTS)
            .map(|_| {
                let config = clsf_tests::client::config(addr.port(), "reporter", token);
                tokio::spawn(async move {
                    match config.connect(tokio_postgres::NoTls).await {
                        Ok((client, conn)) => {
                            tokio::spawn(conn);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            drop(client);
                            "accepted".to_owned()
                        }
                        Err(e) => e
                            .as_db_error()
                            .map_or_else(|| format!("other: {e}"), |d| d.code().code().to_owned()),
                    }
                })
            })
            .collect();
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for t in tasks {
            *counts.entry(t.await.expect("task")).or_default() += 1;
        }
        counts
    });
    let took = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak_fds = sampler.join().expect("sampler");
    println!(
        "connection storm: {ATTEMPTS} clients at once, max_connections 256, {:.1} s: {outcomes:?}; \
         RSS {:.1} MiB before, peak {:.1} MiB; open descriptors {} before, peak {peak_fds}",
        took.as_secs_f64(),
        before.0,
        status_mib(pid, "VmHWM:"),
        before.1
    );

    // Stalled clients: 1 000 connections that send half a startup packet
    // and nothing more. They hold the session slots until the startup
    // timeout (3 s here) cuts them off; a real client meanwhile is refused
    // (53300) and afterwards let in.
    let stalled: Vec<std::net::TcpStream> = (0..1000)
        .filter_map(|_| {
            let mut s = std::net::TcpStream::connect(addr).ok()?;
            std::io::Write::write_all(&mut s, &[0, 0, 0]).ok()?;
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = (status_mib(pid, "VmRSS:"), fds());
    let real = |runtime: &tokio::runtime::Runtime| {
        runtime.block_on(async {
            match clsf_tests::client::config(addr.port(), "reporter", token)
                .connect(tokio_postgres::NoTls)
                .await
            {
                Ok(_) => "accepted".to_owned(),
                Err(e) => e
                    .as_db_error()
                    .map_or_else(|| format!("other: {e}"), |d| d.code().code().to_owned()),
            }
        })
    };
    let while_stalled = real(&runtime);
    std::thread::sleep(Duration::from_millis(4000));
    let after = (status_mib(pid, "VmRSS:"), fds());
    let afterwards = real(&runtime);
    drop(stalled);
    println!(
        "stalled clients: {} connections sending half a startup packet, startup_timeout 3 s: \
         RSS {:.1} MiB and {} descriptors while they stall, {:.1} MiB and {} after the timeout; \
         a real client while they stall: {while_stalled}, after: {afterwards}",
        1000, during.0, during.1, after.0, after.1
    );
}
