//! Driving a proxy's admin listener as approvers do: a token for a member
//! of a team, the real `clsf-proxy approvals` command over the listener's
//! TLS, and the listener's address as a proxy binary announces it.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bins::bin;
use crate::fixture::Quickstart;

/// A token of `q`'s issuer for subject `sub` with claim `team`.
pub fn team_token(q: &Quickstart, sub: &str, team: &str) -> String {
    q.issuer
        .sign(&q.issuer.claims(sub, json!({ "team": team })))
}

/// Runs `clsf-proxy approvals --json ARGS` against the admin listener at
/// `admin` as `sub` of `team`, trusting the test CA in `q`'s folder.
pub fn approvals(
    q: &Quickstart,
    admin: SocketAddr,
    sub: &str,
    team: &str,
    args: &[&str],
) -> Result<Value, String> {
    let token_file = q.dir.path().join(format!("{sub}.token"));
    std::fs::write(&token_file, team_token(q, sub, team)).expect("write token");
    let out = Command::new(bin("clsf-proxy"))
        .arg("approvals")
        .arg("--url")
        .arg(format!("https://{admin}"))
        .arg("--token-file")
        .arg(&token_file)
        .arg("--ca-file")
        .arg(q.dir.path().join("ca.pem"))
        .arg("--json")
        .args(args)
        .output()
        .expect("run clsf-proxy approvals");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON answer"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The admin listener's address in the log of a `clsf-proxy` process
/// (from [`crate::proxy::spawn_binary`]), waiting at most 10 s for it.
pub fn admin_address(log: &Mutex<Vec<String>>) -> SocketAddr {
    let begun = Instant::now();
    loop {
        let found = log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find_map(|l| {
                l.strip_prefix("clsf-proxy: admin listening on ")
                    .and_then(|rest| rest.split(';').next())
                    .and_then(|a| a.parse().ok())
            });
        if let Some(a) = found {
            return a;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "no admin listener"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
