//! The real `psql` binary connected through the proxy.

use std::net::SocketAddr;

use crate::postgres::{DATABASE, Postgres};

/// What psql printed and how it exited.
#[derive(Debug)]
pub struct PsqlRun {
    /// Exit code.
    pub code: i32,
    /// Standard output (unaligned, tuples only).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `sql` (one or more statements, each sent as its own query) with
/// psql through the proxy at `addr`, authenticating with `token`. psql goes
/// on after errors, so one run shows whether the session survives a denial.
pub fn run(addr: SocketAddr, token: &str, sql: &str) -> PsqlRun {
    run_conninfo(
        &format!("host={} port={} sslmode=disable", addr.ip(), addr.port()),
        token,
        sql,
    )
}

/// Like [`run`], with the connection given as libpq key/value pairs (host,
/// port, ssl settings); user, database and timeout are added.
pub fn run_conninfo(conninfo: &str, token: &str, sql: &str) -> PsqlRun {
    let out = crate::postgres::psql()
        .arg(format!(
            "{conninfo} user=workload dbname={DATABASE} connect_timeout=10"
        ))
        .args(["-X", "-A", "-t", "-v", "VERBOSITY=verbose", "-f", "-"])
        .env("PGPASSWORD", token)
        .env("PGAPPNAME", "clsf-e2e")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(sql.as_bytes())?;
            child.wait_with_output()
        })
        .expect("psql is installed (Debian package postgresql-client-15)");
    PsqlRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a script on `pg` as the superuser the way [`run`] runs one through
/// the proxy (unaligned, tuples only, verbose errors), going on after
/// errors: what a client sees with nothing in between.
pub fn superuser_script(pg: &Postgres, database: &str, sql: &str) -> PsqlRun {
    use std::io::Write;
    let mut child = crate::postgres::psql()
        .arg("-h")
        .arg(pg.socket_dir())
        .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", database])
        .args(["-X", "-A", "-t", "-v", "VERBOSITY=verbose", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql is installed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(sql.as_bytes())
        .expect("write script");
    let out = child.wait_with_output().expect("psql runs");
    PsqlRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
