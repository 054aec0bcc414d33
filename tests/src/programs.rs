//! The client check programs in `tests/clients/` and the drivers
//! `tests/ensure-deps.sh` installs for them into `tests/.deps/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bins::repo_root;

/// `tests/.deps`: pinned drivers from PyPI and npm.
pub fn deps() -> PathBuf {
    repo_root().join("tests/.deps")
}

/// `tests/clients`: the check programs.
pub fn clients_dir() -> PathBuf {
    repo_root().join("tests/clients")
}

/// Debian's pgJDBC jar.
pub const PGJDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// Compiles `tests/clients/<class>.java` against pgJDBC into `out` and
/// returns the `java` command that runs it.
pub fn java(class: &str, out: &Path) -> Command {
    let jar = Path::new(PGJDBC_JAR);
    let javac = Command::new("javac")
        .arg("-d")
        .arg(out)
        .arg("-cp")
        .arg(jar)
        .arg(clients_dir().join(format!("{class}.java")))
        .output()
        .expect("javac (Java 17)");
    assert!(
        javac.status.success(),
        "{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(format!("{}:{}", out.display(), jar.display()))
        .arg(class);
    cmd
}

/// A Python check program with the installed drivers on its path.
pub fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(clients_dir().join(script))
        .env("PYTHONPATH", deps().join("python"));
    cmd
}

/// A Node check program with the installed packages on its path.
pub fn node(script: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(clients_dir().join(script))
        .env("NODE_PATH", deps().join("node/node_modules"));
    cmd
}

/// Runs the MCP test agent (`clients/mcp_agent.js`, the official MCP SDK's
/// client) against the MCP listener at `url` with these tool calls, over
/// streamable HTTP, or over stdio through `clsf-proxy mcp-stdio` when
/// `bridge`; returns its report (tools offered, the policy resource, each
/// call's result). Panics if the agent fails.
pub fn mcp_agent(
    url: &str,
    token: &str,
    calls: &serde_json::Value,
    bridge: bool,
) -> serde_json::Value {
    mcp_agent_trusting(url, token, calls, bridge, None)
}

/// [`mcp_agent`] for an HTTPS listener whose certificate `ca` signed.
pub fn mcp_agent_trusting(
    url: &str,
    token: &str,
    calls: &serde_json::Value,
    bridge: bool,
    ca: Option<&Path>,
) -> serde_json::Value {
    mcp_agent_run(url, Some(token), calls, bridge, ca, None)
        .unwrap_or_else(|stderr| panic!("agent failed: {stderr}"))
}

/// Runs the MCP test agent through the stdio bridge, proving itself with
/// the client certificate `cert` and its `key` (mutual TLS, no token) to
/// the HTTPS listener whose certificate `ca` signed; its report, or its
/// standard error if it failed.
pub fn mcp_agent_with_certificate(
    url: &str,
    calls: &serde_json::Value,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<serde_json::Value, String> {
    mcp_agent_run(url, None, calls, true, Some(ca), Some((cert, key)))
}

fn mcp_agent_run(
    url: &str,
    token: Option<&str>,
    calls: &serde_json::Value,
    bridge: bool,
    ca: Option<&Path>,
    certificate: Option<(&Path, &Path)>,
) -> Result<serde_json::Value, String> {
    use std::io::Write;
    let mut command = node("mcp_agent.js");
    command.args([url, token.unwrap_or("")]);
    if bridge {
        command.arg(crate::bins::bin("clsf-proxy"));
    }
    if let Some(ca) = ca {
        // Node's HTTPS and, through CLSF_MCP_CA, the bridge's.
        command
            .env("NODE_EXTRA_CA_CERTS", ca)
            .env("CLSF_MCP_CA", ca);
    }
    if let Some((cert, key)) = certificate {
        command.env("CLSF_MCP_CERT", cert).env("CLSF_MCP_KEY", key);
    }
    let mut child = command
        .env_remove("CLSF_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(calls.to_string().as_bytes())
        .expect("write calls");
    let out = child.wait_with_output().expect("agent output");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("the agent prints JSON"))
}
