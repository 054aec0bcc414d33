//! `clsf-bench matrix`: the benchmark in the shape poolers publish it.
//! Clients 1, 8, 64 and 256; simple, extended and prepared; TLS off and
//! on; four paths — (a) PostgreSQL directly, (b) pgbouncer in session
//! mode, (c) the proxy on a statement that touches nothing protected,
//! (d) the proxy on a statement it rewrites — interleaved path by path,
//! several rounds, medians. Per run: TPS, p50 and p99 latency (from
//! `pgbench --log`) and the CPU time per transaction of the process in
//! front of PostgreSQL. Writes every run to `runs.csv` and the medians to
//! `matrix.csv` in the output directory; `tests/bench/charts.py` draws
//! them.
//!
//! ```sh
//! ./target/release/clsf-bench matrix [SECONDS] [ROUNDS] [OUT_DIR]
//! ```
//! `CLSF_BENCH_CLIENTS=1,8` and `CLSF_BENCH_TLS=off` narrow the matrix.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clsf_tests::bins::{bin, repo_root};
use clsf_tests::fixture;
use clsf_tests::identity::Issuer;
use clsf_tests::postgres::Postgres;
use clsf_tests::proxy::write_config;
use serde_json::json;

use super::{
    Extra, Target, bouncer_pid, cpu_us, paths, pgbench_with, start_pgbouncer_with, start_proxy,
};

const MODES: [&str; 3] = ["simple", "extended", "prepared"];
const PATHS: [&str; 4] = ["direct", "pgbouncer", "proxy", "proxy-masked"];

/// One pgbench run's figures.
#[derive(Clone, Copy)]
struct Figures {
    tps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
}

/// The measured cell: mode, TLS, clients, path.
type Cell = (&'static str, bool, u32, &'static str);

pub(super) fn run(args: &[String]) {
    let seconds: u32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let rounds: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let out_dir = args
        .get(2)
        .map_or_else(|| repo_root().join("docs/bench"), PathBuf::from);
    let clients: Vec<u32> = std::env::var("CLSF_BENCH_CLIENTS")
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 8, 64, 256]);
    let tls: Vec<bool> = match std::env::var("CLSF_BENCH_TLS").as_deref() {
        Ok("off") => vec![false],
        Ok("on") => vec![true],
        _ => vec![false, true],
    };
    std::fs::create_dir_all(&out_dir).expect("output directory");

    let pg = Postgres::start();
    pg.restart_with("max_connections = 700\nlog_statement = none\nlog_connections = off");
    pg.pgbench_init(10);
    let dir = tempfile::tempdir().expect("temp dir");
    clsf_tests::certs::write_test_ca(dir.path());
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    pg.enable_tls(&cert, &key);

    let lock = dir.path().join("schema.lock.json");
    fixture::pull_lock(&pg, &lock);
    let issuer = Issuer::new("bench");
    let config = write_config(
        dir.path(),
        &pg,
        &issuer,
        &repo_root().join("tests/bench/policy"),
        &lock,
        &dir.path().join("audit.jsonl"),
    );
    // Plain and TLS clients on one listener, and room for 256 of them.
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replacen(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nmax_connections = 1000\n",
        1,
    ) + &format!(
        "\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nrequired = false\n",
        cert.display(),
        key.display()
    );
    std::fs::write(&config, text).expect("config");
    let (proxy, addr) = start_proxy(&bin("clsf-proxy"), &config);

    let bouncer_dir = tempfile::tempdir().expect("temp dir");
    for file in ["server.pem", "server.key"] {
        std::fs::copy(dir.path().join(file), bouncer_dir.path().join(file)).expect("copy");
    }
    let (_bouncer, bouncer_port) = start_pgbouncer_with(
        &pg,
        bouncer_dir.path(),
        &format!(
            "client_tls_sslmode = allow\nclient_tls_cert_file = {}\nclient_tls_key_file = {}\n",
            bouncer_dir.path().join("server.pem").display(),
            bouncer_dir.path().join("server.key").display()
        ),
    );
    let reporter = issuer.sign(&issuer.claims("reporter", json!({ "groups": ["report"] })));
    let ci = issuer.sign(&issuer.claims("ci", json!({ "repository": "acme/shop" })));
    let targets = paths(
        &pg,
        (bouncer_port, bouncer_pid(bouncer_dir.path())),
        (addr.port(), proxy.0.id()),
        &reporter,
        &ci,
    );

    println!(
        "clsf-bench matrix: pgbench -S -T {seconds}, scale 10, {rounds} round(s), clients {clients:?}, TLS {tls:?}"
    );
    let mut runs = String::from("round,mode,tls,clients,path,tps,p50_us,p99_us,cpu_us_per_txn\n");
    let mut cells: BTreeMap<(usize, bool, u32, usize), Vec<Figures>> = BTreeMap::new();
    let logs = tempfile::tempdir().expect("temp dir");
    for round in 1..=rounds {
        for &tls in &tls {
            for &n in &clients {
                for (m, mode) in MODES.iter().enumerate() {
                    for (p, target) in targets.iter().enumerate() {
                        let f = measure(&pg, logs.path(), mode, tls, n, seconds, target);
                        let _ = writeln!(
                            runs,
                            "{round},{mode},{},{n},{},{:.0},{:.0},{:.0},{:.2}",
                            if tls { "on" } else { "off" },
                            PATHS[p],
                            f.tps,
                            f.p50_us,
                            f.p99_us,
                            f.cpu_us
                        );
                        cells.entry((m, tls, n, p)).or_default().push(f);
                    }
                    eprintln!("round {round}: TLS {tls}, {n} clients, {mode} done");
                }
            }
        }
        std::fs::write(out_dir.join("runs.csv"), &runs).expect("write runs.csv");
    }
    let medians: BTreeMap<Cell, Figures> = cells
        .into_iter()
        .map(|((m, tls, n, p), figures)| ((MODES[m], tls, n, PATHS[p]), median(&figures)))
        .collect();
    let mut table = String::from("mode,tls,clients,path,tps,p50_us,p99_us,cpu_us_per_txn\n");
    for ((mode, tls, n, path), f) in &medians {
        let _ = writeln!(
            table,
            "{mode},{},{n},{path},{:.0},{:.0},{:.0},{:.2}",
            if *tls { "on" } else { "off" },
            f.tps,
            f.p50_us,
            f.p99_us,
            f.cpu_us
        );
    }
    std::fs::write(out_dir.join("matrix.csv"), &table).expect("write matrix.csv");
    print_summary(&medians);
    println!("\nwrote {}", out_dir.display());
}

/// One pgbench run over `target`, its latency percentiles from the
/// per-transaction log (sampled above one client: the log costs pgbench
/// the same on every path, and a tenth still gives thousands of samples).
fn measure(
    pg: &Postgres,
    logs: &Path,
    mode: &str,
    tls: bool,
    clients: u32,
    seconds: u32,
    target: &Target<'_>,
) -> Figures {
    for entry in std::fs::read_dir(logs).expect("log dir").flatten() {
        let _ = std::fs::remove_file(entry.path());
    }
    let prefix = logs.join("run");
    let rate = if clients == 1 { 1.0 } else { 0.1 };
    let before = target.pid.map(cpu_us);
    let (tps, transactions) = pgbench_with(
        pg,
        mode,
        clients,
        seconds,
        (target.port, target.user, target.password),
        &Extra {
            tls,
            log: Some((&prefix, rate)),
        },
    );
    let cpu = match (target.pid, before) {
        (Some(pid), Some(before)) => (cpu_us(pid) - before) / transactions,
        _ => f64::NAN,
    };
    let mut latencies: Vec<f64> = Vec::new();
    for entry in std::fs::read_dir(logs).expect("log dir").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        // client_id transaction_no time script_no time_epoch time_us
        latencies.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok()),
        );
    }
    latencies.sort_by(f64::total_cmp);
    Figures {
        tps,
        p50_us: percentile(&latencies, 0.50),
        p99_us: percentile(&latencies, 0.99),
        cpu_us: cpu,
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// The median of each figure on its own.
fn median(runs: &[Figures]) -> Figures {
    let of = |get: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(get).collect();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        if v.len().is_multiple_of(2) {
            (v[mid - 1] + v[mid]) / 2.0
        } else {
            v[mid]
        }
    };
    Figures {
        tps: of(|f| f.tps),
        p50_us: of(|f| f.p50_us),
        p99_us: of(|f| f.p99_us),
        cpu_us: of(|f| f.cpu_us),
    }
}

/// The ratios the issue's targets are stated in.
fn print_summary(medians: &BTreeMap<Cell, Figures>) {
    println!(
        "\n{:<9} {:>4} {:>7} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "mode",
        "tls",
        "clients",
        "(a) tps",
        "(b) tps",
        "(c) tps",
        "(d) tps",
        "(c)/(b)",
        "(d)/(b)",
        "cpu c/b",
        "cpu d/b",
        "+p50 b/c",
        "+p99 b/c"
    );
    let keys: Vec<(&str, bool, u32)> = {
        let mut k: Vec<_> = medians.keys().map(|(m, t, n, _)| (*m, *t, *n)).collect();
        k.dedup();
        k
    };
    for (mode, tls, n) in keys {
        let get = |path: &str| medians.get(&(mode, tls, n, path)).copied();
        let (Some(a), Some(b), Some(c), Some(d)) = (
            get("direct"),
            get("pgbouncer"),
            get("proxy"),
            get("proxy-masked"),
        ) else {
            continue;
        };
        println!(
            "{mode:<9} {:>4} {n:>7} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10} {:>10}",
            if tls { "on" } else { "off" },
            a.tps,
            b.tps,
            c.tps,
            d.tps,
            c.tps / b.tps,
            d.tps / b.tps,
            c.cpu_us / b.cpu_us,
            d.cpu_us / b.cpu_us,
            format!("{:.0}/{:.0}", b.p50_us - a.p50_us, c.p50_us - a.p50_us),
            format!("{:.0}/{:.0}", b.p99_us - a.p99_us, c.p99_us - a.p99_us),
        );
    }
    println!(
        "(+p50 b/c: latency pgbouncer and the proxy add over direct, µs; targets at 8 clients: cpu c/b <= 1.15, d/b <= 1.4; (c)/(b) >= 0.95 at 8 and 64; at 1 client the proxy adds <= pgbouncer + 10 µs)"
    );
}
