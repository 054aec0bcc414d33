//! The quickstart: a throwaway PostgreSQL with the demo data, the example
//! policy compiled, the proxy running, and a psql command line for each
//! demo identity. Runs until Ctrl-C, then removes everything it created.

use std::process::Command;

use clsf_tests::bins::{bin, repo_root};
use clsf_tests::identity::Issuer;
use clsf_tests::postgres::Postgres;
use clsf_tests::proxy::{Proxy, write_config};
use serde_json::json;

fn main() {
    let root = repo_root();
    let quickstart = root.join("examples/quickstart");
    eprintln!("starting a throwaway PostgreSQL …");
    let pg = Postgres::start();
    pg.load_fixture(&quickstart.join("schema.sql"));
    let dir = tempfile::Builder::new()
        .prefix("clsf-quickstart-")
        .tempdir()
        .expect("temp dir");
    let work = dir.path();

    let lock = work.join("schema.lock.json");
    run(Command::new(bin("clsfc"))
        .args(["schema", "pull", "--database-url", &pg.gateway_url(), "-o"])
        .arg(&lock));
    let policy = quickstart.join("policy");
    run(Command::new(bin("clsfc"))
        .arg("check")
        .arg(&policy)
        .arg("--schema")
        .arg(&lock));
    run(Command::new(bin("clsfc"))
        .arg("build")
        .arg(&policy)
        .arg("--schema")
        .arg(&lock)
        .arg("-o")
        .arg(work.join("build")));

    let issuer = Issuer::new("quickstart");
    let audit = work.join("audit.jsonl");
    let config = write_config(work, &pg, &issuer, &policy, &lock, &audit);
    // The MCP listener for AI agents (plain HTTP: loopback only).
    let text = std::fs::read_to_string(&config).expect("read proxy.toml");
    std::fs::write(
        &config,
        format!("{text}\n[mcp]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("write proxy.toml");
    let proxy = Proxy::start(&config);

    let twelve_hours = json!({ "exp": now() + 12 * 3600 });
    let tokens = [
        (
            "ci",
            issuer.sign(&merge(
                issuer.claims(
                    "repo:acme/shop:ref:refs/heads/main",
                    json!({ "repository": "acme/shop" }),
                ),
                &twelve_hours,
            )),
        ),
        (
            "dba-bot",
            issuer.sign(&merge(
                issuer.claims("dba-bot", json!({ "groups": ["ops", "dba"] })),
                &twelve_hours,
            )),
        ),
    ];
    println!();
    println!("clsf quickstart is running (Ctrl-C stops it and removes everything).");
    println!(
        "  upstream PostgreSQL: 127.0.0.1:{} (credential held by the proxy only)",
        pg.port
    );
    println!("  proxy:               {}", proxy.addr);
    println!("  compiled policy:     {}", work.join("build").display());
    println!("  audit trail:         {}", audit.display());
    println!();
    for (name, token) in &tokens {
        let path = work.join(format!("{name}.token"));
        std::fs::write(&path, token).expect("write token");
        println!("# as `{name}`:");
        println!(
            "PGPASSWORD=\"$(cat {})\" psql \"host={} port={} dbname=shop user={name} sslmode=disable\"",
            path.display(),
            proxy.addr.ip(),
            proxy.addr.port()
        );
        println!();
    }
    println!(
        "Try: SELECT * FROM customers;  SELECT name, email, card_number FROM customers;  SELECT * FROM orders;"
    );
    if let Some(mcp) = proxy.mcp {
        let url = format!("http://{mcp}/mcp");
        println!();
        println!("# AI agents: an MCP client as `ci`, over streamable HTTP at {url}");
        println!(
            "# with the header `Authorization: Bearer <ci.token>`, or over stdio with this command:"
        );
        println!(
            "{} mcp-stdio --url {url} --token-file {}",
            bin("clsf-proxy").display(),
            work.join("ci.token").display()
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    eprintln!("\nstopping …");
    drop(proxy);
    drop(pg);
    drop(dir);
}

fn run(cmd: &mut Command) {
    let status = cmd.status().expect("run command");
    if !status.success() {
        eprintln!("quickstart: {cmd:?} failed");
        std::process::exit(1);
    }
}

fn merge(mut a: serde_json::Value, b: &serde_json::Value) -> serde_json::Value {
    if let (Some(a), Some(b)) = (a.as_object_mut(), b.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
    a
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
