//! Checks of an audit trail left by a proxy that was stopped or killed
//! under a load of inserts.

use std::path::Path;
use std::process::Command;

use crate::postgres::{DATABASE, Postgres};

/// Asserts that `trail` verifies (`clsf-proxy audit verify`) and holds the
/// INSERT event of every row of `orders` whose status is `status`, the
/// rows written as `INSERT INTO orders VALUES (<id>, 1, 1, '<status>')`;
/// and that at least `acknowledged` such rows exist.
pub fn assert_every_insert_is_on_the_trail(
    pg: &Postgres,
    trail: &Path,
    status: &str,
    acknowledged: usize,
) {
    let verify = Command::new(crate::bins::bin("clsf-proxy"))
        .args(["audit", "verify"])
        .arg(trail)
        .output()
        .expect("clsf-proxy audit verify");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let text = clsf_runtime::audit::read_text(trail).expect("the trail");
    let ran = pg.superuser_sql(
        DATABASE,
        &format!("SELECT string_agg(id::text, ',') FROM orders WHERE status = '{status}'"),
    );
    let ran: Vec<&str> = ran.trim().split(',').filter(|s| !s.is_empty()).collect();
    assert!(
        ran.len() >= acknowledged,
        "{} rows, {acknowledged} acknowledged",
        ran.len()
    );
    for id in ran {
        let sql = format!("INSERT INTO orders VALUES ({id}, 1, 1, '{status}')");
        assert!(text.contains(&sql), "{sql} ran but is not on the trail");
    }
}
