//! The proxy running in-process on a loopback port chosen by the OS, with a
//! config written next to the policy, stopped on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clsf_runtime::config::{self, Config};
use clsf_runtime::serve::{self, Running};

use crate::identity::{AUDIENCE, ISSUER, Issuer};
use crate::postgres::{DATABASE, GATEWAY_ROLE, Postgres};

/// A running proxy.
#[derive(Debug)]
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its audit file.
    pub audit_path: PathBuf,
    /// Where its admin listener is (when the config has `[admin]`).
    pub admin: Option<SocketAddr>,
    /// Where its MCP listener is (when the config has `[mcp]`).
    pub mcp: Option<SocketAddr>,
    running: Option<Running>,
}

/// Writes `proxy.toml` (and the password and JWKS files) into `dir` for a
/// proxy in front of `pg` enforcing the policy in `policy_dir`.
pub fn write_config(
    dir: &Path,
    pg: &Postgres,
    issuer: &Issuer,
    policy_dir: &Path,
    schema_lock: &Path,
    audit_path: &Path,
) -> PathBuf {
    std::fs::write(
        dir.join("upstream.pw"),
        format!("{}\n", pg.gateway_password),
    )
    .expect("write password");
    issuer.write_jwks(&dir.join("jwks.json"));
    let text = format!(
        r#"listen = "127.0.0.1:0"

[upstream]
host = "127.0.0.1"
port = {port}
database = "{DATABASE}"
user = "{GATEWAY_ROLE}"
password_file = "upstream.pw"

[policy]
dir = "{policy}"
schema_lock = "{lock}"

[[identity.issuer]]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
jwks_file = "jwks.json"

[audit]
path = "{audit}"
"#,
        port = pg.port,
        policy = policy_dir.display(),
        lock = schema_lock.display(),
        audit = audit_path.display(),
    );
    let path = dir.join("proxy.toml");
    std::fs::write(&path, text).expect("write proxy.toml");
    path
}

impl Proxy {
    /// Starts a proxy from a config file; panics with the reason if it cannot.
    pub fn start(config_path: &Path) -> Proxy {
        match Proxy::try_start(config_path) {
            Ok(p) => p,
            Err(e) => panic!("proxy did not start: {e}"),
        }
    }

    /// Starts a proxy from a config file, through the same entry point as
    /// the `clsf-proxy` binary.
    pub fn try_start(config_path: &Path) -> Result<Proxy, String> {
        let config: Config = config::load(config_path).map_err(|e| e.to_string())?;
        let audit_path = config.audit.path.clone();
        let running = serve::start(config).map_err(|e| e.to_string())?;
        Ok(Proxy {
            addr: running.addr,
            audit_path,
            admin: running.admin,
            mcp: running.mcp,
            running: Some(running),
        })
    }

    /// The audit file's lines, parsed.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        clsf_runtime::audit::read_text(&self.audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown();
        }
    }
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `clsf-proxy` binary as `command` says (which must run it with
/// `--config`, possibly through a shell that sets limits first) and waits up
/// to 60 s for the address it says it listens on. Its log keeps being
/// drained so it never blocks on a full pipe; lines are also kept.
pub fn spawn_binary(
    mut command: std::process::Command,
) -> (Killed, SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::BufRead;
    let mut child = command
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start clsf-proxy");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.strip_prefix("clsf-proxy: listening on ") {
                let addr = rest.split(',').next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
            kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let child = Killed(child);
    let addr = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the proxy says where it listens")
        .parse()
        .expect("an address");
    (child, addr, log)
}
