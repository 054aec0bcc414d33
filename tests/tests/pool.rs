//! Server connections kept between sessions (`[upstream] pool_size`): a
//! kept connection carries nothing of one session into the next, never
//! passes between an identity given the masking key and one given none,
//! and is not kept when its session ended inside a transaction or when the
//! server closed it meanwhile.

use clsf_tests::fixture;
use clsf_tests::postgres::GATEWAY_ROLE;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql::{self, PsqlRun};

/// The output lines of a run that must have had no error.
fn lines(out: &PsqlRun) -> Vec<String> {
    assert!(
        out.code == 0 && !out.stderr.contains("ERROR"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    out.stdout.lines().map(str::to_owned).collect()
}

/// The server backend a session ran on.
fn backend(proxy: &Proxy, token: &str) -> String {
    lines(&psql::run(proxy.addr, token, "SELECT pg_backend_pid();\n"))[0].clone()
}

/// The quickstart's proxy with `line` added under the config's `section`.
fn started_with(q: &fixture::Quickstart, section: &str, line: &str) -> Proxy {
    let config = std::fs::read_to_string(&q.config)
        .unwrap()
        .replace(section, &format!("{section}{line}"));
    std::fs::write(&q.config, config).unwrap();
    Proxy::start(&q.config)
}

#[test]
fn a_kept_server_connection_carries_nothing_into_the_next_session() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    let ci = q.issuer.ci_token();
    let dba = q.issuer.dba_token();

    // What a session leaves on its server connection: a setting, a
    // prepared statement, a cursor that outlives its transaction, a LISTEN.
    let first = lines(&psql::run(
        proxy.addr,
        &ci,
        "SELECT pg_backend_pid();\nSET timezone = 'Asia/Tokyo';\nPREPARE leftover AS SELECT 1;\n\
         DECLARE kept CURSOR WITH HOLD FOR SELECT id FROM orders;\nLISTEN leftover;\n",
    ));
    let kept = first[0].clone();
    fixture::wait_kept(&q, &kept);
    // The next session runs on the same backend (the login was saved), and
    // finds none of it.
    let next = lines(&psql::run(
        proxy.addr,
        &ci,
        "SELECT pg_backend_pid();\nSHOW timezone;\nSELECT count(*) FROM pg_prepared_statements;\n\
         SELECT count(*) FROM pg_cursors;\nSELECT count(*) FROM pg_listening_channels();\n",
    ));
    assert_eq!(next[0], kept, "the server connection was not kept");
    assert_ne!(next[1], "Asia/Tokyo", "a setting outlived its session");
    assert_eq!(&next[2..], ["0", "0", "0"], "{next:?}");
    fixture::wait_kept(&q, &kept);

    // `dba-bot` reads everything in clear and is given no masking key: it
    // never gets the connection that carries `ci`'s.
    let out = psql::run(
        proxy.addr,
        &dba,
        "SELECT pg_backend_pid();\nSHOW clsf.hash_ipad;\nCREATE TEMP TABLE leftover (x int);\n",
    );
    let dba_backend = out.stdout.lines().next().unwrap_or_default().to_owned();
    assert_ne!(dba_backend, kept, "{}", out.stdout);
    fixture::wait_kept(&q, &dba_backend);
    assert!(
        out.stderr
            .contains("unrecognized configuration parameter \"clsf.hash_ipad\""),
        "{}",
        out.stderr
    );
    let again = lines(&psql::run(
        proxy.addr,
        &dba,
        "SELECT pg_backend_pid();\nSELECT count(*) FROM pg_class WHERE relname = 'leftover';\n",
    ));
    assert_eq!(again, [dba_backend, "0".to_owned()]);
    // And `ci` still gets its own.
    assert_eq!(backend(&proxy, &ci), kept);
    fixture::wait_kept(&q, &kept);

    // A session that ends inside a transaction closes its connection.
    let out = lines(&psql::run(
        proxy.addr,
        &ci,
        "SELECT pg_backend_pid();\nBEGIN;\nSELECT 1;\n",
    ));
    assert_eq!(out[0], kept);
    let fresh = backend(&proxy, &ci);
    assert_ne!(
        fresh, kept,
        "a connection left inside a transaction was kept"
    );
    fixture::wait_kept(&q, &fresh);

    // A kept connection the server closed is not handed out.
    q.pg.superuser_sql("shop", &format!("SELECT pg_terminate_backend({fresh})"));
    let alive = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {fresh}");
    let gone = q.pg.wait_for(std::time::Duration::from_secs(5), |pg| {
        pg.superuser_sql("shop", &alive).trim() == "0"
    });
    assert!(gone, "the backend did not end");
    let after = backend(&proxy, &ci);
    assert_ne!(after, fresh);
}

#[test]
fn with_no_pool_every_session_logs_in_anew() {
    let q = fixture::quickstart(None);
    let proxy = started_with(&q, "[upstream]\n", "pool_size = 0\n");
    let ci = q.issuer.ci_token();
    let first = backend(&proxy, &ci);
    assert_ne!(backend(&proxy, &ci), first);
}

/// Kept connections hold server slots: when the server has no room for a
/// session's login (53300, here the gateway role's connection limit), the
/// kept ones are closed and the login tried again, rather than the client
/// refused while idle connections wait for sessions of another kind.
#[test]
fn a_server_without_room_gets_the_kept_connections_back() {
    let q = fixture::quickstart(None);
    // No comparison of the catalog opens a connection of its own meanwhile.
    let proxy = started_with(&q, "[policy]\n", "schema_check_seconds = 3600\n");
    let (ci, dba) = (q.issuer.ci_token(), q.issuer.dba_token());
    // One kept connection per kind of session: `ci`'s and `dba-bot`'s.
    fixture::wait_kept(&q, &backend(&proxy, &ci));
    fixture::wait_kept(&q, &backend(&proxy, &dba));
    q.pg.superuser_sql(
        "shop",
        &format!("ALTER ROLE {GATEWAY_ROLE} CONNECTION LIMIT 2"),
    );
    // A session whose startup settings match neither needs a login of its
    // own, and the two kept connections fill the role's limit.
    let out = psql::run_conninfo(
        &format!(
            "host={} port={} sslmode=disable options='-c statement_timeout=5000'",
            proxy.addr.ip(),
            proxy.addr.port()
        ),
        &ci,
        "SHOW statement_timeout;\n",
    );
    assert_eq!(lines(&out), ["5s"]);
}

/// A cancel request carrying the key of a session that ended never reaches
/// the statement of the session given its server connection next.
#[test]
fn a_late_cancel_for_an_ended_session_does_not_reach_the_next() {
    let q = fixture::quickstart(None);
    let proxy = Proxy::start(&q.config);
    // `dba-bot` may sleep (a function that holds the backend).
    let dba = q.issuer.dba_token();
    let config = clsf_tests::client::config(proxy.addr.port(), "dba", &dba);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (first, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        let ended = tokio::spawn(conn);
        let row = first
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap();
        let backend: i32 = row.get(0);
        let late = first.cancel_token();
        drop(first);
        ended.await.unwrap().unwrap();
        fixture::wait_kept(&q, &backend.to_string());
        let (next, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let row = next
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), backend, "the connection was not kept");
        let sleeping =
            tokio::spawn(async move { next.simple_query("SELECT pg_sleep(1)").await.map(|_| ()) });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        late.cancel_query(tokio_postgres::NoTls).await.unwrap();
        sleeping
            .await
            .unwrap()
            .expect("the late cancel reached the next session's statement");
    });
}
