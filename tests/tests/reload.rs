//! Hot reload: a changed policy takes effect on open connections without
//! reconnecting; an invalid one never replaces the policy in force.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clsf_tests::client;
use clsf_tests::fixture;
use clsf_tests::proxy::{Proxy, write_config};

fn wait_for_event(proxy: &Proxy, kind: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if proxy
            .audit_events()
            .iter()
            .filter(|e| e["event"] == kind)
            .count()
            >= count
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no `{kind}` audit event within 20 s");
}

async fn email(client: &tokio_postgres::Client) -> String {
    let rows = client
        .simple_query("SELECT email FROM customers WHERE id = 1")
        .await
        .unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap()
}

/// A proxy enforcing a copy of the quickstart policy that the test may
/// edit; returns the proxy, the copied file and its original text.
fn proxy_with_editable_policy(q: &fixture::Quickstart) -> (Proxy, PathBuf, String) {
    let policy = q.dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    let original =
        std::fs::read_to_string(fixture::quickstart_policy().join("quickstart.clsf")).unwrap();
    let policy_file = policy.join("quickstart.clsf");
    std::fs::write(&policy_file, &original).unwrap();
    let config = write_config(
        q.dir.path(),
        &q.pg,
        &q.issuer,
        &policy,
        &q.lock,
        &q.dir.path().join("audit.jsonl"),
    );
    (Proxy::start(&config), policy_file, original)
}

#[test]
fn a_changed_policy_applies_to_open_connections_and_a_broken_one_is_refused() {
    let q = fixture::quickstart(None);
    let (proxy, policy_file, original) = proxy_with_editable_policy(&q);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let cfg = client::config(proxy.addr.port(), "ci", &q.issuer.ci_token());
        let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        let conn = tokio::spawn(conn);
        assert_eq!(email(&client).await, "****@example.com");
        // The unnamed statement, parsed again for every query (its
        // decision is reused while the policy stays).
        let unnamed = || async {
            client
                .query_typed(
                    "SELECT email FROM customers WHERE id = $1",
                    &[(&1i32, tokio_postgres::types::Type::INT4)],
                )
                .await
                .unwrap()[0]
                .get::<_, String>(0)
        };
        assert_eq!(unnamed().await, "****@example.com");
        assert_eq!(unnamed().await, "****@example.com");
        let stmt = client
            .prepare("SELECT email FROM customers WHERE id = $1")
            .await
            .unwrap();

        // Unmask e-mail addresses for ci.
        let unmasked = original.replace("mask  confidential", "allow confidential");
        assert_ne!(unmasked, original);
        std::fs::write(&policy_file, &unmasked).unwrap();
        wait_for_event(&proxy, "reload", 1);
        assert_eq!(email(&client).await, "ada@example.com");
        // The same text parsed again under the new policy is decided again.
        assert_eq!(unnamed().await, "ada@example.com");
        // A statement prepared under the old policy, which the new one
        // decides differently, must be prepared again.
        let err = client.query_one(&stmt, &[&1i32]).await.unwrap_err();
        assert!(format!("{err:?}").contains("policy changed"), "{err:?}");
        let again = client
            .prepare("SELECT email FROM customers WHERE id = $1")
            .await
            .unwrap();
        assert_eq!(
            client
                .query_one(&again, &[&1i32])
                .await
                .unwrap()
                .get::<_, String>(0),
            "ada@example.com"
        );

        // A broken policy is not loaded; the one in force stays.
        std::fs::write(
            &policy_file,
            unmasked.replace("rule ci_reads", "rule ci_reads {"),
        )
        .unwrap();
        wait_for_event(&proxy, "reload_failed", 1);
        assert_eq!(email(&client).await, "ada@example.com");
        let ssn = client
            .simple_query("SELECT ssn FROM customers")
            .await
            .unwrap_err();
        assert_eq!(ssn.code().map(|c| c.code()), Some("42501"));
        assert!(!conn.is_finished(), "the connection must survive reloads");
    });
    let reloads = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "reload")
        .count();
    assert_eq!(reloads, 1, "the broken policy must not have been loaded");
}

#[test]
fn reloading_under_pgbench_load_fails_no_transaction() {
    let q = fixture::quickstart(None);
    q.pg.pgbench_init(1);
    fixture::pull_lock(&q.pg, &q.lock);
    let (proxy, policy_file, original) = proxy_with_editable_policy(&q);

    let load = clsf_tests::pgbench::select_only(
        q.pg.program("pgbench"),
        proxy.addr,
        "dba",
        q.issuer.dba_token(),
        2,
        5,
    );
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(
        &policy_file,
        original.replace("mask  confidential", "allow confidential"),
    )
    .unwrap();
    wait_for_event(&proxy, "reload", 1);
    clsf_tests::pgbench::assert_no_failed_transaction(&load.join().unwrap());
    // The new rule is enforced afterwards.
    let after = clsf_tests::psql::run(
        proxy.addr,
        &q.issuer.ci_token(),
        "SELECT email FROM customers WHERE id = 1;\n",
    );
    assert_eq!(after.stdout.trim(), "ada@example.com", "{}", after.stderr);
}

/// Writes `text` the way a Kubernetes ConfigMap volume is updated: a new
/// `..TIMESTAMP` directory, a `..data_tmp` symlink to it renamed over
/// `..data`, the old directory removed. The visible file links through
/// `..data`.
fn configmap_update(dir: &std::path::Path, version: u32, text: &str) {
    let versioned = format!("..2026_11_29_00_00_0{version}.000000000");
    std::fs::create_dir(dir.join(&versioned)).unwrap();
    std::fs::write(dir.join(&versioned).join("quickstart.clsf"), text).unwrap();
    std::os::unix::fs::symlink(&versioned, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if !dir.join("quickstart.clsf").exists() {
        std::os::unix::fs::symlink("..data/quickstart.clsf", dir.join("quickstart.clsf")).unwrap();
    }
    if version > 1 {
        let old = format!("..2026_11_29_00_00_0{}.000000000", version - 1);
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// The two ways files are replaced in practice: a ConfigMap volume's
/// symlink swap, and an editor writing a temporary file and renaming it
/// over the policy. Each is picked up (the ConfigMap's hidden versioned
/// directory is not read as a second copy of the policy). Prints how long
/// each took from the write to enforcement, as seen by a client.
#[test]
fn configmap_swaps_and_rename_over_writes_are_picked_up() {
    let q = fixture::quickstart(None);
    let policy = q.dir.path().join("configmap");
    std::fs::create_dir(&policy).unwrap();
    let original =
        std::fs::read_to_string(fixture::quickstart_policy().join("quickstart.clsf")).unwrap();
    configmap_update(&policy, 1, &original);
    let config = write_config(
        q.dir.path(),
        &q.pg,
        &q.issuer,
        &policy,
        &q.lock,
        &q.dir.path().join("audit.jsonl"),
    );
    let proxy = Proxy::start(&config);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (c, conn) = client::config(proxy.addr.port(), "ci", &q.issuer.ci_token())
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        assert_eq!(email(&c).await, "****@example.com");
        // Polls until the client sees `want`; returns how long it took.
        let proxy = &proxy;
        let until = |want: &'static str| {
            let c = &c;
            async move {
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(20) {
                    if email(c).await == want {
                        return start.elapsed();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                for e in proxy.audit_events() {
                    if e["event"] != "statement" {
                        eprintln!("AUDIT {e}");
                    }
                }
                panic!("`{want}` not seen within 20 s; last `{}`", email(c).await);
            }
        };

        configmap_update(
            &policy,
            2,
            &original.replace("mask  confidential", "allow confidential"),
        );
        let swap = until("ada@example.com").await;

        // vim-style: write a temporary file, rename it over the real one
        // (replacing the symlink, as `kubectl cp` or a hand edit would).
        let tmp = policy.join(".quickstart.clsf.swp");
        std::fs::write(&tmp, &original).unwrap();
        std::fs::rename(&tmp, policy.join("quickstart.clsf")).unwrap();
        let rename = until("****@example.com").await;
        eprintln!(
            "reload latency, write to enforcement: configmap swap {swap:?}, rename-over {rename:?}"
        );
    });
    let failed = proxy
        .audit_events()
        .iter()
        .filter(|e| e["event"] == "reload_failed")
        .count();
    assert_eq!(failed, 0, "no reload read a half-swapped or doubled policy");
}

/// A lock pulled again (written in place) or replaced by a rename is
/// reloaded; the audit trail appended beside it for every statement is not
/// a change.
#[test]
fn a_new_schema_lock_is_reloaded_whether_written_or_renamed_over() {
    let q = fixture::quickstart(None);
    q.pg.superuser_sql(
        "shop",
        "CREATE TABLE shipments (id integer); GRANT ALL ON shipments TO clsf_gateway",
    );
    let (proxy, _, _) = proxy_with_editable_policy(&q);
    assert_eq!(
        q.lock.parent(),
        Some(q.dir.path()),
        "the audit trail shares the lock's directory"
    );
    let ci = q.issuer.ci_token();
    let refused = |expect: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = clsf_tests::psql::run(proxy.addr, &ci, "SELECT id FROM shipments;");
            if out.stderr.contains(expect) {
                return;
            }
            assert!(Instant::now() < deadline, "never: {expect}\n{}", out.stderr);
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    refused("not in the schema clsf was compiled against");
    // Statements write the audit trail beside the lock: no reload.
    for _ in 0..20 {
        clsf_tests::psql::run(proxy.addr, &ci, "SELECT status FROM orders;");
    }
    let reloads = |proxy: &Proxy| {
        proxy
            .audit_events()
            .iter()
            .filter(|e| e["event"] == "reload")
            .count()
    };
    assert_eq!(reloads(&proxy), 0);

    // Pulled again in place: the new table is known (and, unclassified,
    // restricted: denied to ci rather than unknown).
    fixture::pull_lock(&q.pg, &q.lock);
    refused("permission denied for column `id` of relation `public.shipments`");
    wait_for_event(&proxy, "reload", 1);

    // Pulled elsewhere and renamed over the lock, as deployment tools do.
    q.pg.superuser_sql("shop", "DROP TABLE shipments");
    let staged = q.dir.path().join("staged.lock.json");
    fixture::pull_lock(&q.pg, &staged);
    std::fs::rename(&staged, &q.lock).unwrap();
    refused("not in the schema clsf was compiled against");
    wait_for_event(&proxy, "reload", 2);
    assert_eq!(reloads(&proxy), 2);
}

/// The reason of the newest `schema_drift` audit event.
fn last_drift_reason(proxy: &Proxy) -> String {
    proxy
        .audit_events()
        .into_iter()
        .rfind(|e| e["event"] == "schema_drift")
        .and_then(|e| e["reason"].as_str().map(str::to_owned))
        .expect("a schema_drift event with a reason")
}

/// The quickstart behind a proxy that compares the live catalog with the
/// lock every `seconds` (besides before the first client and on commits
/// of schema statements through it).
fn comparing_every(seconds: u64) -> (fixture::Quickstart, Proxy) {
    let q = fixture::quickstart(None);
    let config = std::fs::read_to_string(&q.config).unwrap().replace(
        "[policy]\n",
        &format!("[policy]\nschema_check_seconds = {seconds}\n"),
    );
    std::fs::write(&q.config, config).unwrap();
    let proxy = Proxy::start(&q.config);
    (q, proxy)
}

/// The live catalog is compared with the lock: a column a migration adds
/// after the lock was pulled is never read, by name, `*`, a whole row or
/// `COPY` — `orders` is all clear to `ci`, so without the comparison it
/// would read the column in clear — and once the column is gone again the
/// relation is forwarded as before, without a reconnect. `dba-bot`, which
/// reads everything and holds `ddl` and `admin`, is trusted with the
/// schema and reads it.
#[test]
fn a_column_added_after_the_lock_was_pulled_is_never_read() {
    const CANARY: &str = "CANARY-DRIFT-7";
    let (q, proxy) = comparing_every(1);
    let ci = q.issuer.ci_token();
    let dba = q.issuer.dba_token();
    let agrees = |proxy: &Proxy| {
        proxy
            .audit_events()
            .iter()
            .filter(|e| e["event"] == "schema_drift")
            .count()
    };
    // Compared before the first client: the lock was just pulled.
    let fields = |out: &clsf_tests::psql::PsqlRun| {
        out.stdout
            .lines()
            .next()
            .map_or(0, |row| row.split('|').count())
    };
    let before = clsf_tests::psql::run(proxy.addr, &ci, "SELECT * FROM orders ORDER BY id LIMIT 1");
    assert_eq!(fields(&before), 4, "{before:?}");
    let events = agrees(&proxy);

    q.pg.superuser_sql(
        "shop",
        &format!("ALTER TABLE orders ADD COLUMN extra text DEFAULT '{CANARY}'"),
    );
    // Direct, the canary is there to be read.
    assert!(
        q.pg.superuser_sql("shop", "SELECT * FROM orders LIMIT 1")
            .contains(CANARY)
    );
    wait_for_event(&proxy, "schema_drift", events + 1);
    let reason = last_drift_reason(&proxy);
    assert!(reason.contains("public.orders (extra)"), "{reason}");

    let reads = [
        "SELECT * FROM orders",
        "SELECT o FROM orders o",
        "SELECT row_to_json(o) FROM orders o",
        "TABLE orders",
        "COPY orders TO STDOUT",
        "SELECT extra FROM orders",
        "SELECT o.extra FROM orders o",
        "SELECT upper(extra) FROM orders",
        "UPDATE orders SET status = status WHERE id = 1 RETURNING *",
        "WITH d AS (UPDATE orders SET status = status WHERE id = 1 RETURNING *) SELECT * FROM d",
        "CREATE TEMP TABLE o2 AS SELECT * FROM orders",
    ];
    for token in [&ci] {
        for sql in reads {
            let out = clsf_tests::psql::run(proxy.addr, token, sql);
            let all = format!("{}{}", out.stdout, out.stderr);
            assert!(
                !all.contains(CANARY),
                "the new column was read:\n  {sql}\n  → {all}"
            );
        }
        // The rest of the relation reads as before; naming the column is
        // refused for what it is.
        let out = clsf_tests::psql::run(proxy.addr, token, "SELECT * FROM orders ORDER BY id");
        assert_eq!(fields(&out), 4, "{out:?}");
        let out = clsf_tests::psql::run(proxy.addr, token, "SELECT extra FROM orders");
        assert!(
            out.stderr.contains("gained it after the lock was pulled"),
            "{out:?}"
        );
        let out = clsf_tests::psql::run(
            proxy.addr,
            token,
            "UPDATE orders SET status = status WHERE id = (SELECT min(id) FROM orders) RETURNING id, status",
        );
        assert!(out.code == 0 && out.stdout.contains("UPDATE 1"), "{out:?}");
    }

    let out = clsf_tests::psql::run(proxy.addr, &dba, "SELECT extra FROM orders LIMIT 1");
    assert!(out.stdout.contains(CANARY), "{out:?}");

    // While drifted, even named columns are read through the lock's.
    let named = "SELECT id, status FROM orders ORDER BY id LIMIT 1";
    let rewritten_last = |proxy: &Proxy| {
        proxy
            .audit_events()
            .into_iter()
            .rfind(|e| e["statement"] == named)
            .unwrap()["rewritten"]
            .clone()
    };
    let out = clsf_tests::psql::run(proxy.addr, &ci, named);
    assert_eq!(fields(&out), 2, "{out:?}");
    assert!(
        rewritten_last(&proxy)
            .as_str()
            .is_some_and(|r| r.contains("\"total_cents\"")),
        "read through the lock's columns while drifted"
    );

    // The column goes: the next comparison puts the relation back as it
    // was, and a statement naming its columns is forwarded unchanged.
    q.pg.superuser_sql("shop", "ALTER TABLE orders DROP COLUMN extra");
    wait_for_event(&proxy, "schema_drift", events + 2);
    let out = clsf_tests::psql::run(proxy.addr, &ci, named);
    assert_eq!(fields(&out), 2, "{out:?}");
    assert!(rewritten_last(&proxy).is_null(), "forwarded as written");
}

/// A migration run through the proxy is compared as soon as it commits,
/// whatever the schedule says (here once an hour): the column it adds is
/// never read by an identity the policy has not cleared for it.
#[test]
fn a_migration_through_the_proxy_is_compared_when_it_commits() {
    let (q, proxy) = comparing_every(3600);
    let ci = q.issuer.ci_token();
    let dba = q.issuer.dba_token();
    // The proxy's role owns the table, as it would to run migrations.
    q.pg.superuser_sql(
        "shop",
        &format!(
            "ALTER TABLE orders OWNER TO {}",
            clsf_tests::postgres::GATEWAY_ROLE
        ),
    );
    let migrated = clsf_tests::psql::run(
        proxy.addr,
        &dba,
        "BEGIN; ALTER TABLE orders ADD COLUMN note text DEFAULT 'CANARY-MIGRATED'; COMMIT;",
    );
    assert!(
        migrated.code == 0 && migrated.stderr.is_empty(),
        "{migrated:?}"
    );
    // The first is the comparison before the first client.
    wait_for_event(&proxy, "schema_drift", 2);
    let reason = last_drift_reason(&proxy);
    assert!(reason.contains("public.orders (note)"), "{reason}");
    let out = clsf_tests::psql::run(proxy.addr, &ci, "SELECT * FROM orders");
    assert!(out.code == 0 && !out.stdout.contains("CANARY"), "{out:?}");
}

/// Before any comparison has found a column a migration outside the proxy
/// just added (here none is scheduled for an hour), reads do not reach it:
/// a relation taken whole is read through the lock's columns, a write's
/// `RETURNING *` is written out as them, and a name no relation of the
/// lock has is refused.
#[test]
fn a_column_added_a_moment_ago_is_not_read_before_any_comparison() {
    const CANARY: &str = "CANARY-WINDOW-3";
    let (q, proxy) = comparing_every(3600);
    let ci = q.issuer.ci_token();
    q.pg.superuser_sql(
        "shop",
        &format!("ALTER TABLE orders ADD COLUMN extra text DEFAULT '{CANARY}'"),
    );
    for sql in [
        "SELECT * FROM orders",
        "SELECT o.* FROM orders o",
        "SELECT o FROM orders o",
        "SELECT row_to_json(o) FROM orders o",
        "SELECT o.*, c.email FROM orders o JOIN customers c ON c.id = o.customer_id",
        "TABLE orders",
        "SELECT extra FROM orders",
        "SELECT upper(o.extra) FROM orders o",
        "SELECT id FROM orders WHERE extra LIKE 'CANARY%'",
        "UPDATE orders SET status = extra WHERE id = (SELECT min(id) FROM orders) RETURNING status",
        "UPDATE orders SET status = status WHERE id = (SELECT min(id) FROM orders) RETURNING *",
        "BEGIN; DELETE FROM orders o WHERE o.id = (SELECT min(id) FROM orders) RETURNING o.*; ROLLBACK;",
        "BEGIN; INSERT INTO orders (id, customer_id, total_cents, status) VALUES (9999, 1, 1, 'x') RETURNING *; ROLLBACK;",
    ] {
        let out = clsf_tests::psql::run(proxy.addr, &ci, sql);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            !all.contains("CANARY"),
            "the new column was read:\n  {sql}\n  → {all}"
        );
        // Reads taken whole and writes returning their table run.
        if sql.contains('*') {
            assert!(
                !out.stderr.contains("ERROR") && out.stdout.contains('|'),
                "{sql}: {out:?}"
            );
        }
    }
    // Only the comparison before the first client ran.
    assert_eq!(
        proxy
            .audit_events()
            .iter()
            .filter(|e| e["event"] == "schema_drift")
            .count(),
        1
    );
}
