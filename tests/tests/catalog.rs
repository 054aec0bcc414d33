//! `std::postgres-catalog` against a real PostgreSQL: the catalog model
//! matches the server's columns and types, and through the proxy a masked
//! identity reads planner statistics' shape but never their values.

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
