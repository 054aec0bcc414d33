//! The quickstart as a test fixture: a cluster with the demo data, its
//! schema pulled by the real `clsfc`, a token issuer, and a proxy config
//! enforcing the quickstart policy.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bins::{bin, repo_root};
use crate::identity::Issuer;
use crate::postgres::Postgres;
use crate::proxy::{Proxy, write_config};

/// Everything a quickstart-based test needs, removed on drop.
#[derive(Debug)]
pub struct Quickstart {
    /// The cluster with the demo data.
    pub pg: Postgres,
    /// The trusted issuer.
    pub issuer: Issuer,
    /// Working directory (lock, config, keys, audit).
    pub dir: tempfile::TempDir,
    /// The pulled schema lock.
    pub lock: PathBuf,
    /// `proxy.toml`.
    pub config: PathBuf,
}

/// Pulls the schema of `pg` into `out` with the real `clsfc`.
pub fn pull_lock(pg: &Postgres, out: &Path) {
    pull_lock_from(&pg.gateway_url(), out);
}

/// Pulls the schema of the database at `url` into `out` with the real `clsfc`.
pub fn pull_lock_from(url: &str, out: &Path) {
    let run = Command::new(bin("clsfc"))
        .args(["schema", "pull", "--database-url", url, "-o"])
        .arg(out)
        .output()
        .expect("run clsfc");
    assert!(
        run.status.success(),
        "clsfc schema pull: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The quickstart policy directory.
pub fn quickstart_policy() -> PathBuf {
    repo_root().join("examples/quickstart/policy")
}

/// Sets up the quickstart; `audit` overrides the audit file's path.
pub fn quickstart(audit: Option<PathBuf>) -> Quickstart {
    quickstart_with(Issuer::new("test-key"), audit)
}

/// Sets up the quickstart with a given issuer.
pub fn quickstart_with(issuer: Issuer, audit: Option<PathBuf>) -> Quickstart {
    let pg = Postgres::start();
    pg.load_fixture(&repo_root().join("examples/quickstart/schema.sql"));
    let dir = tempfile::tempdir().expect("temp dir");
    let lock = dir.path().join("schema.lock.json");
    pull_lock(&pg, &lock);
    let audit = audit.unwrap_or_else(|| dir.path().join("audit.jsonl"));
    let config = write_config(
        dir.path(),
        &pg,
        &issuer,
        &quickstart_policy(),
        &lock,
        &audit,
    );
    Quickstart {
        pg,
        issuer,
        dir,
        lock,
        config,
    }
}

/// Writes a test CA and the proxy's certificate into `q`'s directory and
/// turns on client TLS (required) in its config.
pub fn enable_client_tls(q: &Quickstart) {
    crate::certs::write_test_ca(q.dir.path());
    let mut config = std::fs::read_to_string(&q.config).expect("read proxy.toml");
    config.push_str("\n[tls]\ncert_file = \"server.pem\"\nkey_file = \"server.key\"\n");
    std::fs::write(&q.config, config).expect("write proxy.toml");
}

/// Pulls the lock again (after a test changed the schema) and starts a
/// proxy enforcing `policy` (the text of one `.clsf` file) over `q`.
pub fn proxy_with_policy(q: &Quickstart, policy: &str) -> Proxy {
    Proxy::start(&config_with_policy(q, policy))
}

/// Like [`proxy_with_policy`], but only writes the config (to be extended
/// by the test) and returns its path.
pub fn config_with_policy(q: &Quickstart, policy: &str) -> PathBuf {
    pull_lock(&q.pg, &q.lock);
    let dir = q.dir.path().join("policy");
    std::fs::create_dir(&dir).expect("policy dir");
    std::fs::write(dir.join("p.clsf"), policy).expect("write policy");
    let audit = q.dir.path().join("audit.jsonl");
    write_config(q.dir.path(), &q.pg, &q.issuer, &dir, &q.lock, &audit)
}

/// Waits (bounded) until the server shows `backend` idle after the
/// proxy's `DISCARD ALL`: its session's connection is then kept. The reset
/// runs after the client has gone, so the next session could otherwise
/// come first.
pub fn wait_kept(q: &Quickstart, backend: &str) {
    let last = format!("SELECT state || ' ' || query FROM pg_stat_activity WHERE pid = {backend}");
    let kept = q.pg.wait_for(std::time::Duration::from_secs(10), |pg| {
        pg.superuser_sql("shop", &last).trim() == "idle DISCARD ALL"
    });
    assert!(kept, "the connection of backend {backend} was not reset");
}
