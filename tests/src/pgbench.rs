//! pgbench as the load beside a test: select-only transactions through a
//! proxy, and the check that none of them failed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Transactions per second the load is held to, across its clients.
///
/// A steady load rather than saturation: what the tests check is that no
/// transaction fails across a reload, a restart or a failover, and at this
/// rate each client of the debug build is still inside a transaction much
/// of the time. Unthrottled, the load took both cores of a CI machine for
/// the 15 seconds the tests run it, away from the rest of the suite.
pub const RATE: u32 = 1000;

/// Runs `pgbench -S -n` with `clients` clients for `seconds` at [`RATE`]
/// against `addr` as `user` with `token` as the password, in a thread;
/// `program` is the cluster's pgbench.
pub fn select_only(
    program: PathBuf,
    addr: SocketAddr,
    user: &str,
    token: String,
    clients: u32,
    seconds: u32,
) -> std::thread::JoinHandle<Output> {
    let (user, clients, seconds) = (user.to_owned(), clients.to_string(), seconds.to_string());
    std::thread::spawn(move || {
        Command::new(program)
            .args(["-S", "-n", "-c", &clients, "-j", "1", "-T", &seconds])
            .args(["-R", &RATE.to_string()])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &addr.port().to_string(),
                "-U",
                &user,
            ])
            .arg(crate::postgres::DATABASE)
            .env("PGPASSWORD", token)
            .output()
            .expect("run pgbench")
    })
}

/// pgbench ended well, with no failed transaction and more than 100
/// processed.
pub fn assert_no_failed_transaction(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("number of failed transactions: 0 "),
        "{stdout}"
    );
    let processed: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(processed > 100, "{stdout}");
}
