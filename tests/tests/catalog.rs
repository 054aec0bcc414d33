//! `std::postgres-catalog` against a real PostgreSQL: the catalog model
//! matches the server's columns and types, and through the proxy a masked
//! identity reads planner statistics' shape but never their values.

use clsf_compiler::engine::functions;
use clsf_compiler::schema::catalog;
use clsf_tests::fixture;
use clsf_tests::proxy::{Proxy, write_config};
use clsf_tests::psql;

#[test]
fn the_catalog_model_matches_the_server() {
    let q = fixture::quickstart(None);
    for (relation, columns) in catalog::RELATIONS {
        let out = q.pg.superuser_sql(
            "shop",
            &format!(
                "SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = 'pg_catalog.{relation}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
        );
        let server: Vec<&str> = out.lines().collect();
        let model: Vec<String> = columns.iter().map(|(c, t)| format!("{c} {t}")).collect();
        assert_eq!(server, model, "pg_catalog.{relation}");
    }
}

#[test]
fn planner_statistics_show_their_shape_not_their_values() {
    let q = fixture::quickstart(None);
    // Statistics with values worth stealing: every e-mail is in
    // pg_stats.histogram_bounds after ANALYZE.
    q.pg.superuser_sql("shop", "ANALYZE customers");
    let leaked = q.pg.superuser_sql(
        "shop",
        "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'customers' AND attname = 'email'",
    );
    assert!(leaked.contains("ada@example.com"), "{leaked}");

    let policy = q.dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    let quickstart =
        std::fs::read_to_string(fixture::quickstart_policy().join("quickstart.clsf")).unwrap();
    std::fs::write(policy.join("quickstart.clsf"), &quickstart).unwrap();
    // The module brings its own copy of the standard labels, which the
    // quickstart declares itself: classify the catalog here instead.
    std::fs::write(
        policy.join("catalog.clsf"),
        "table pg_catalog.pg_stats: internal {\n  most_common_vals: restricted\n  histogram_bounds: restricted\n  most_common_elems: restricted\n}\n",
    )
    .unwrap();
    let config = write_config(
        q.dir.path(),
        &q.pg,
        &q.issuer,
        &policy,
        &q.lock,
        &q.dir.path().join("audit.jsonl"),
    );
    let proxy = Proxy::start(&config);
    let token = q.issuer.ci_token();

    let out = psql::run(
        proxy.addr,
        &token,
        "SELECT attname, null_frac, n_distinct, histogram_bounds IS NULL AS hidden FROM pg_stats WHERE tablename = 'customers' ORDER BY attname;",
    );
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("histogram_bounds"),
        "naming a withheld column is refused: {}",
        out.stderr
    );
    let out = psql::run(
        proxy.addr,
        &token,
        "SELECT attname, null_frac, n_distinct FROM pg_stats WHERE tablename = 'customers' ORDER BY attname;",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("email"), "{}", out.stdout);
    let out = psql::run(
        proxy.addr,
        &token,
        "SELECT s.attname FROM pg_stats s WHERE s.tablename = 'customers' AND s.histogram_bounds::text LIKE '%ada%';",
    );
    assert!(out.stderr.contains("42501"), "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("ada@") && !out.stderr.contains("ada@"));
    // Unclassified value-exposing catalogs stay refused whole.
    let out = psql::run(proxy.addr, &token, "SELECT * FROM pg_statistic;");
    assert!(
        out.stderr.contains("42501") && out.stderr.contains("pg_statistic"),
        "{}",
        out.stderr
    );
}

/// Every function of `pg_catalog` and `information_schema` on this server
/// has a class in the engine's table, and the generator, run on this
/// server, writes exactly the checked-in table: a PostgreSQL version with
/// new or changed functions fails here instead of silently widening or
/// narrowing what a masked identity may call.
#[test]
fn every_builtin_function_is_classified() {
    let pg = clsf_tests::postgres::Postgres::start();
    let listed = pg.superuser_sql(
        "postgres",
        "SELECT DISTINCT n.nspname || '.' || p.proname FROM pg_proc p \
         JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname IN ('pg_catalog', 'information_schema') ORDER BY 1",
    );
    let names: Vec<&str> = listed.lines().collect();
    assert!(names.len() > 2000, "pg_proc listed: {}", names.len());
    let unclassified: Vec<&&str> = names
        .iter()
        .filter(|q| {
            let (schema, name) = q.split_once('.').unwrap();
            functions::builtin(name, Some(schema)).is_none()
        })
        .collect();
    assert!(unclassified.is_empty(), "unclassified: {unclassified:?}");
    assert_eq!(functions::all().count(), names.len(), "no stale entries");

    let out = tempfile::NamedTempFile::new().unwrap();
    let run = std::process::Command::new("python3")
        .arg(clsf_tests::bins::repo_root().join("compiler/catalog/classify_functions.py"))
        .arg(out.path())
        .arg(pg.url_for("postgres"))
        .output()
        .expect("python3");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let generated = std::fs::read_to_string(out.path()).unwrap();
    let checked_in = std::fs::read_to_string(
        clsf_tests::bins::repo_root().join("compiler/engine/src/functions/builtin.rs"),
    )
    .unwrap();
    assert!(
        generated == checked_in,
        "compiler/engine/src/functions/builtin.rs differs from what the generator writes for this server: run compiler/catalog/classify_functions.py"
    );
}
