//! The proxy running in-process on a loopback port chosen by the OS, with a
//! config written next to the policy, stopped on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clsf_runtime::config::{self, Config};
use clsf_runtime::{reload, server, start};

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
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _watcher: reload::PolicyWatcher,
    thread: Option<std::thread::JoinHandle<()>>,
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

    /// Starts a proxy from a config file.
    pub fn try_start(config_path: &Path) -> Result<Proxy, String> {
        let mut config: Config = config::load(config_path).map_err(|e| e.to_string())?;
        // The admin listener's port is chosen now, so the URL held clients
        // are told names it.
        let admin = match &mut config.admin {
            Some(a) => {
                let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                a.listen = l.local_addr().map_err(|e| e.to_string())?.to_string();
                let (cert, key) = a.tls_files(config.tls.as_ref()).ok_or("no admin cert")?;
                let acceptor =
                    clsf_runtime::tls::acceptor(cert, key, None, &[clsf_runtime::tls::HTTP_ALPN])?;
                Some((l, acceptor))
            }
            None => None,
        };
        let admin_addr = admin.as_ref().and_then(|(l, _)| l.local_addr().ok());
        let shared = Arc::new(start::shared_state(&config)?);
        let watcher = reload::watch(Arc::clone(&shared), config.clone())?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel::<Result<(), String>>();
        let control = config.control_plane.clone();
        let audit_path = config.audit.path.clone();
        let max = config.max_connections;
        let grace = std::time::Duration::from_secs(config.shutdown_grace_seconds);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                if let Some(cp) = control {
                    let attached = match cp.password() {
                        Ok(pw) => {
                            clsf_runtime::control_plane::attach(
                                Arc::clone(&shared),
                                &cp.url,
                                pw.as_deref(),
                            )
                            .await
                        }
                        Err(e) => Err(e),
                    };
                    if let Err(e) = attached {
                        let _ = ready.send(Err(e));
                        return;
                    }
                }
                let _ = ready.send(Ok(()));
                if let Some((l, acceptor)) = admin {
                    let l = tokio::net::TcpListener::from_std(l).expect("tokio listener");
                    tokio::spawn(clsf_runtime::admin::serve(l, acceptor, Arc::clone(&shared)));
                }
                server::run(listener, shared, max, grace, async {
                    let _ = stopped.await;
                })
                .await;
            });
        });
        started
            .recv_timeout(std::time::Duration::from_secs(30))
            .map_err(|_| "the proxy did not start within 30 s".to_owned())??;
        Ok(Proxy {
            addr,
            audit_path,
            admin: admin_addr,
            stop: Some(stop),
            _watcher: watcher,
            thread: Some(thread),
        })
    }

    /// The audit file's lines, parsed.
    pub fn audit_events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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
