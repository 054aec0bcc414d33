//! The pgbench measurement behind the README's performance figures: a
//! throwaway PostgreSQL with pgbench tables, then `pgbench -S` directly and
//! through the proxy as an identity that reads in clear (`dba-bot`) and one
//! whose reads are rewritten to masking subqueries (`ci`).
//!
//! Run with `cargo run --release -p clsf-tests --bin clsf-bench [SECONDS] [CLIENTS] [simple|extended|prepared]`.
//! `CLSF_BENCH_AUDIT=/dev/null` sends the audit trail nowhere, to see its share.

use std::process::Command;

use clsf_tests::bins::repo_root;
use clsf_tests::fixture;
use clsf_tests::identity::Issuer;
use clsf_tests::postgres::{DATABASE, Postgres};
use clsf_tests::proxy::{Proxy, write_config};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(15);
    let clients: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let mode = args.get(3).cloned().unwrap_or_else(|| "simple".to_owned());
    let pg = Postgres::start();
    let pgbench = pg.program("pgbench");
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
    let proxy = Proxy::start(&config);
    let ci = issuer.sign(&issuer.claims("ci", json!({ "repository": "acme/shop" })));
    let dba = issuer.sign(&issuer.claims("dba-bot", json!({ "groups": ["dba"] })));

    let run = |label: &str, port: u16, user: &str, password: &str| {
        let out = Command::new(&pgbench)
            .args([
                "-S",
                "-M",
                "simple",
                "-n",
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
        let tps = text
            .lines()
            .find(|l| l.starts_with("tps"))
            .unwrap_or("tps = ? (failed)")
            .to_owned();
        let latency = text
            .lines()
            .find(|l| l.starts_with("latency average"))
            .unwrap_or("")
            .to_owned();
        assert!(
            out.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{label:<32} {tps}  {latency}");
    };
    println!("pgbench -S -M {mode} -c {clients} -j 2 -T {seconds}, scale 10");
    run("direct", pg.port, "clsf_gateway", &pg.gateway_password);
    run("proxy, dba-bot (clear)", proxy.addr.port(), "dba-bot", &dba);
    run("proxy, ci (abalance masked)", proxy.addr.port(), "ci", &ci);
}
