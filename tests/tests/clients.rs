//! The client matrix: psycopg 3, node-postgres and pgJDBC, each through the
//! real proxy with TLS required (sslmode=verify-full against the test CA)
//! and a masked identity. Every client runs the same checks — masked values
//! over the extended protocol, binary results, named prepared statements,
//! pipelining, a denial with SQLSTATE 42501 followed by a usable connection
//! (outside and inside a transaction) — and a clear read for an identity
//! allowed to see the values. psql and tokio-postgres are covered by the
//! other suites.

use std::process::Command;

use clsf_tests::fixture::{self, Quickstart};
use clsf_tests::postgres::DATABASE;
use clsf_tests::programs;
use clsf_tests::proxy::Proxy;

/// What every client must print (the JDBC program prints `batch` instead
/// of `pipeline`, see `jdbc`).
const EXPECTED: &[&str] = &[
    "masked ****@example.com ************1111",
    "binary 2 ****@turing.org",
    "prepared ****@example.com ****@turing.org ****@navy.mil",
    "pipeline 2 ****@tue.nl",
    "denied 42501",
    "after_denial 42",
    "in_tx 42501",
    "after_rollback 4",
    "clear ada@example.com 4111111111111111",
];

fn setup() -> (Quickstart, Proxy) {
    let q = fixture::quickstart(None);
    fixture::enable_client_tls(&q);
    let proxy = Proxy::start(&q.config);
    (q, proxy)
}

/// Runs a client program with the common arguments and returns its lines.
fn run(mut cmd: Command, q: &Quickstart, proxy: &Proxy) -> Vec<String> {
    let out = cmd
        .args([
            "localhost",
            &proxy.addr.port().to_string(),
            DATABASE,
            &q.dir.path().join("ca.pem").display().to_string(),
            &q.issuer.ci_token(),
            &q.issuer.dba_token(),
        ])
        .output()
        .expect("start the client program");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "client failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// Every statement the clients sent was audited with its decision.
fn assert_audited(proxy: &Proxy) {
    let events = proxy.audit_events();
    let denied = events
        .iter()
        .filter(|e| {
            e["decision"] == "deny" && e["statement"].as_str().is_some_and(|s| s.contains("ssn"))
        })
        .count();
    assert!(denied >= 2, "both denials audited: {events:#?}");
    assert!(
        events.iter().any(|e| e["decision"] == "mask"),
        "masked reads audited"
    );
}

#[test]
fn psycopg3() {
    let (q, proxy) = setup();
    assert_eq!(
        run(programs::python("psycopg_check.py"), &q, &proxy),
        EXPECTED
    );
    assert_audited(&proxy);
}

#[test]
fn node_postgres() {
    let (q, proxy) = setup();
    assert_eq!(
        run(programs::node("node_pg_check.js"), &q, &proxy),
        EXPECTED
    );
    assert_audited(&proxy);
}

#[test]
fn pgjdbc() {
    let (q, proxy) = setup();
    let cmd = programs::java("JdbcCheck", &q.dir.path().join("classes"));
    let expected: Vec<&str> = EXPECTED
        .iter()
        .map(|l| {
            if l.starts_with("pipeline") {
                "batch 1 1 1"
            } else {
                l
            }
        })
        .collect();
    assert_eq!(run(cmd, &q, &proxy), expected);
    assert_audited(&proxy);
}

/// pgbench in its three query modes, over TLS as the masked identity, with
/// a script that reads a masked column: every transaction succeeds.
#[test]
fn pgbench_simple_extended_prepared() {
    let (q, proxy) = setup();
    let script = q.dir.path().join("masked.sql");
    std::fs::write(
        &script,
        "\\set id random(1, 4)\nSELECT email, card_number FROM customers WHERE id = :id;\n",
    )
    .unwrap();
    for mode in ["simple", "extended", "prepared"] {
        let out = Command::new(q.pg.program("pgbench"))
            .args(["-n", "-c", "2", "-j", "1", "-t", "200", "-M", mode, "-f"])
            .arg(&script)
            .args(["-h", "127.0.0.1", "-p", &proxy.addr.port().to_string()])
            .args(["-U", "workload", DATABASE])
            .env("PGPASSWORD", q.issuer.ci_token())
            .env("PGSSLMODE", "require")
            .output()
            .expect("run pgbench");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("number of transactions actually processed: 400/400"),
            "{mode}: {stdout}"
        );
        assert!(
            stdout.contains("number of failed transactions: 0 "),
            "{mode}: {stdout}"
        );
    }
    let masked = proxy
        .audit_events()
        .iter()
        .filter(|e| e["decision"] == "mask")
        .count();
    // Prepared mode parses once per connection and audits every execution.
    assert!(masked >= 1200, "{masked} masked statements audited");
}

/// psql's client-side commands that bypass SQL analysis are refused
/// cleanly and the session goes on: `\copy` (COPY TO STDOUT, refused while
/// COPY output cannot be rewritten) and `\lo_import` (the FunctionCall
/// message, never forwarded).
#[test]
fn psql_copy_and_large_objects_are_refused_cleanly() {
    let (q, proxy) = setup();
    let file = q.dir.path().join("import.txt");
    std::fs::write(&file, "anything").unwrap();
    let conninfo = format!(
        "host=localhost hostaddr=127.0.0.1 port={} sslmode=verify-full sslrootcert={}",
        proxy.addr.port(),
        q.dir.path().join("ca.pem").display()
    );
    let out = clsf_tests::psql::run_conninfo(
        &conninfo,
        &q.issuer.ci_token(),
        &format!(
            "\\copy customers (email) TO STDOUT\n\\lo_import {}\nSELECT 'still here';\n",
            file.display()
        ),
    );
    assert!(!out.stdout.contains('@'), "nothing copied: {}", out.stdout);
    assert!(out.stderr.contains("COPY"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("fast-path function call interface is not allowed"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "still here", "{}", out.stderr);
}

/// tokio-postgres (binary results) reading a masked query through a portal
/// in batches: `Execute` with a row limit gets PortalSuspended until the
/// rows run out, every batch is masked, and each execution is audited.
#[test]
fn portals_with_row_limits() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut c, conn) =
            clsf_tests::client::config(proxy.addr.port(), "w", &q.issuer.ci_token())
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        let tx = c.transaction().await.unwrap();
        let stmt = tx
            .prepare("SELECT id, email FROM customers WHERE id > $1 ORDER BY id")
            .await
            .unwrap();
        let portal = tx.bind(&stmt, &[&0i32]).await.unwrap();
        let mut seen = Vec::new();
        for batch in [3usize, 1, 0] {
            let rows = tx.query_portal(&portal, 3).await.unwrap();
            assert_eq!(rows.len(), batch, "batch sizes 3, 1, then nothing");
            for r in rows {
                seen.push(format!("{} {}", r.get::<_, i32>(0), r.get::<_, String>(1)));
            }
        }
        tx.commit().await.unwrap();
        assert_eq!(
            seen,
            [
                "1 ****@example.com",
                "2 ****@turing.org",
                "3 ****@navy.mil",
                "4 ****@tue.nl"
            ]
        );
    });
    let executes = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "execute" && e["decision"] == "mask")
        .count();
    assert_eq!(executes, 3, "one audited execution per batch");
}

/// Settings drivers give at startup, as libpq sends them for psql: the
/// environment's `PGTZ` and `PGDATESTYLE` (sent as `timezone` and
/// `datestyle`) and `PGOPTIONS` (`options` with `-c` and `--` switches).
/// They are decided as `SET` is: the allowed take effect, `"$user"` leaves
/// the path, and a pinned setting changed by a masked identity, a value
/// the server rejects and a switch that is not a setting each end the
/// connection with their own error, never "cannot reach the upstream".
#[test]
fn startup_settings_are_decided_as_set_is() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let psql = |token: &str, env: &[(&str, &str)], shows: &[&str]| {
        let mut cmd = clsf_tests::postgres::psql();
        cmd.arg(format!(
            "host=127.0.0.1 port={} user=workload dbname={DATABASE} sslmode=disable connect_timeout=10",
            proxy.addr.port()
        ))
        .args(["-X", "-A", "-t"])
        .env("PGPASSWORD", token)
        .envs(env.iter().copied());
        for show in shows {
            cmd.args(["-c", &format!("SHOW {show}")]);
        }
        let out = cmd.output().expect("psql runs");
        (
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ci, dba) = (q.issuer.ci_token(), q.issuer.dba_token());
    let (shown, stderr) = psql(
        &ci,
        &[
            ("PGTZ", "Europe/Paris"),
            ("PGDATESTYLE", "SQL, DMY"),
            (
                "PGOPTIONS",
                r#"-c statement_timeout=4321 --lock-timeout=1s -c search_path="$user",public -c application_name=two\ words"#,
            ),
        ],
        &[
            "TimeZone",
            "DateStyle",
            "statement_timeout",
            "lock_timeout",
            "search_path",
            "application_name",
        ],
    );
    assert_eq!(
        shown,
        [
            "Europe/Paris",
            "SQL, DMY",
            "4321ms",
            "1s",
            "public",
            // libpq's own `application_name` parameter wins over the one
            // in `options`, as the server applies them.
            "psql"
        ],
        "{stderr}"
    );

    for (token, options, says) in [
        (
            &ci,
            "-c search_path=elsewhere",
            "changing `search_path` is not allowed for this identity (a startup setting)",
        ),
        (&ci, "-c role=postgres", "changing `role` is not allowed"),
        (&dba, "-c clsf.hash_ipad=x", "belongs to the proxy"),
        (
            &ci,
            "-c statement_timeout=soon",
            r#"invalid value for parameter "statement_timeout""#,
        ),
        (
            &ci,
            "-c no_such_setting=1",
            r#"unrecognized configuration parameter "no_such_setting""#,
        ),
        (&ci, "-B 64", "only `-c name=value` and `--name=value`"),
    ] {
        let (shown, stderr) = psql(token, &[("PGOPTIONS", options)], &["search_path"]);
        assert!(
            shown.is_empty() && stderr.contains(says),
            "{options}: {shown:?} {stderr}"
        );
        assert!(
            !stderr.contains("cannot reach the upstream"),
            "{options}: {stderr}"
        );
    }
    let refused = proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["event"] == "connect_refused")
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect::<Vec<_>>();
    assert!(
        refused
            .iter()
            .any(|r| r.starts_with("startup setting `search_path`")),
        "{refused:?}"
    );

    // Nothing withheld: the pinned path stays pinned at startup too (it is
    // what RESET returns to, should a reload withhold something).
    let (shown, stderr) = psql(
        &dba,
        &[("PGOPTIONS", "-c search_path=elsewhere")],
        &["search_path"],
    );
    assert!(
        shown.is_empty() && stderr.contains("changing `search_path`"),
        "{shown:?} {stderr}"
    );
}
