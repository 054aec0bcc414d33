//! The bypass suite: attacks on masking through every path the statement
//! engine must see, run with psql through the real proxy as a principal who
//! may read `people.email` only masked and `people.ssn`, `tokens.secret`
//! and `audit_log.ssn` not at all. Every protected value contains the
//! canary `CANARY`; the test fails if any form of it (as is, lower case,
//! reversed, hex) or an oracle's hit marker appears in anything the client
//! receives: rows, errors, notices, notifications.
//!
//! Each attack is also run directly against PostgreSQL as a superuser, to
//! prove it reads a protected value when nothing stands in between: at
//! least 90 % must.
//!
//! Attack texts never contain the canary themselves (they build it with
//! `'CAN' || 'ARY'`), so an error that echoes a statement cannot fake a leak.

use clsf_tests::bins::repo_root;
use clsf_tests::fixture;
use clsf_tests::postgres::Postgres;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql::{self, PsqlRun};
use serde_json::json;

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted report none

group ci { claim team == "ci" }

table public.people: internal {
  email: confidential mask email
  ssn:   restricted
}
table public.tokens: internal {
  secret: restricted
}
table public.audit_log: internal {
  ssn: restricted
}
table public.customers: internal {
  email:       confidential mask email
  card_number: confidential mask last(4)
  ssn:         restricted
}
table public.orders: internal

rule ci_reads for ci {
  allow read, write <= internal
  mask  confidential
}

// May match people on their ssn (join, filter) but never read it.
group linker { claim team == "linker" }
rule linker_reads for linker {
  allow read <= internal
  mask  confidential
  allow join, filter column public.people.ssn
  allow write table public.orders
}
"#;

/// The oracle marker: printed only when a predicate on a protected value
/// holds; built by concatenation so that no statement text contains it.
const HIT: &str = "ORACLE_HIT";
const HIT_SQL: &str = "'ORACLE' || '_HIT'";

/// Everything a leak could look like in a response.
fn leaked(text: &str) -> Option<&'static str> {
    let forms: [(&str, &'static str); 5] = [
        ("CANARY", "the canary"),
        ("canary", "the canary in lower case"),
        ("YRANAC", "the canary reversed"),
        ("43414e415259", "the canary in hex"),
        (HIT, "an oracle hit"),
    ];
    forms
        .iter()
        .find(|(needle, _)| {
            text.contains(needle)
                || text
                    .to_ascii_uppercase()
                    .contains(&needle.to_ascii_uppercase())
        })
        .map(|(_, what)| *what)
}

/// (name, statements). Statements are sent as psql sends a script: one
/// query per statement, except where `\;` joins several into one query.
fn attacks() -> Vec<(&'static str, String)> {
    let hit = HIT_SQL;
    let mut a: Vec<(&'static str, String)> = vec![
        // Projection, directly and through names.
        ("column", "SELECT ssn FROM people;".into()),
        ("star", "SELECT * FROM people;".into()),
        // The shapes of statements with no rows by their text (let through
        // with ssn as a NULL), with literals that return rows or a filter
        // on ssn.
        ("star with a limit", "SELECT * FROM people LIMIT 1;".into()),
        ("star with a true condition", "SELECT * FROM people WHERE 1=1;".into()),
        ("star with no rows but a filter on ssn", "SELECT * FROM people WHERE ssn LIKE '1%' LIMIT 0;".into()),
        ("qualified star", "SELECT p.* FROM people p;".into()),
        ("qualified column", "SELECT people.ssn FROM people;".into()),
        ("schema-qualified", "SELECT public.people.ssn FROM public.people;".into()),
        ("database-qualified", "SELECT ssn FROM shop.public.people;".into()),
        ("quoted identifiers", "SELECT \"ssn\" FROM \"people\";".into()),
        ("upper case", "SELECT SSN FROM PEOPLE;".into()),
        ("alias column list", "SELECT d FROM people AS p(a, b, c, d);".into()),
        ("whole row", "SELECT p FROM people p;".into()),
        ("whole row by table name", "SELECT people FROM people;".into()),
        ("row to json", "SELECT row_to_json(p) FROM people p;".into()),
        ("to_jsonb star", "SELECT to_jsonb(p.*) FROM people p;".into()),
        ("row constructor", "SELECT ROW(p.*)::text FROM people p;".into()),
        ("row cast to text", "SELECT p::text FROM people p;".into()),
        ("field of whole row", "SELECT (p).ssn FROM people p;".into()),
        ("json_agg", "SELECT json_agg(p) FROM people p;".into()),
        ("array_agg row", "SELECT array_agg(p) FROM people p;".into()),
        ("hstore-like concat", "SELECT concat_ws(',', p.*) FROM people p;".into()),
        ("jsonb path", "SELECT jsonb_path_query(to_jsonb(p), '$.ssn') FROM people p;".into()),
        // Expressions and casts around the column.
        ("concat", "SELECT ssn || '' FROM people;".into()),
        ("variadic", "SELECT format('%s', VARIADIC ARRAY[ssn]) FROM people;".into()),
        ("window frame exclusion", "SELECT string_agg(ssn, ',') OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW EXCLUDE NO OTHERS) FROM people;".into()),
        ("upper", "SELECT upper(ssn) FROM people;".into()),
        ("lower", "SELECT lower(ssn) FROM people;".into()),
        ("reverse", "SELECT reverse(ssn) FROM people;".into()),
        ("substring", "SELECT substr(ssn, 1, 6) FROM people;".into()),
        ("to bytea", "SELECT ssn::bytea FROM people;".into()),
        ("hex", "SELECT encode(ssn::bytea, 'hex') FROM people;".into()),
        ("format", "SELECT format('%s', ssn) FROM people;".into()),
        ("coalesce", "SELECT coalesce(ssn, '') FROM people;".into()),
        ("case", "SELECT CASE WHEN true THEN ssn END FROM people;".into()),
        ("array", "SELECT ARRAY[ssn] FROM people;".into()),
        ("xmlelement", "SELECT xmlelement(name x, ssn) FROM people;".into()),
        ("qualified function", "SELECT pg_catalog.upper(ssn) FROM people;".into()),
        ("left of masked column", "SELECT left(email, 12) FROM people;".into()),
        ("split masked column", "SELECT split_part(email, '@', 1) FROM people;".into()),
        ("cast error echo", "SELECT ssn::int FROM people;".into()),
        ("cast error echo of masked", "SELECT email::int FROM people;".into()),
        ("date cast error", "SELECT ssn::date FROM people;".into()),
        // Aggregates and grouping.
        ("min", "SELECT min(ssn) FROM people;".into()),
        ("max", "SELECT max(ssn) FROM people;".into()),
        ("string_agg", "SELECT string_agg(ssn, ',') FROM people;".into()),
        ("json_object_agg", "SELECT json_object_agg(id, ssn) FROM people;".into()),
        ("mode", "SELECT mode() WITHIN GROUP (ORDER BY ssn) FROM people;".into()),
        ("percentile_disc", "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY ssn) FROM people;".into()),
        ("group by", "SELECT ssn, count(*) FROM people GROUP BY ssn;".into()),
        ("grouping sets", "SELECT ssn FROM people GROUP BY GROUPING SETS ((ssn), ());".into()),
        ("window", "SELECT first_value(ssn) OVER (ORDER BY id) FROM people;".into()),
        ("distinct on", "SELECT DISTINCT ON (ssn) ssn FROM people;".into()),
        // Predicates and ordering as oracles.
        ("where like oracle", format!("SELECT {hit} FROM people WHERE ssn LIKE 'CAN' || '%';")),
        ("where equality oracle", format!("SELECT {hit} FROM people WHERE ssn = 'CAN' || 'ARY-111-11';")),
        ("where on masked column", format!("SELECT {hit} FROM people WHERE email LIKE '%' || 'CAN' || 'ARY%';")),
        ("having oracle", format!("SELECT {hit} FROM people GROUP BY id HAVING max(ssn) > 'C';")),
        ("filter oracle", format!("SELECT CASE WHEN count(*) FILTER (WHERE ssn LIKE 'CAN%') > 0 THEN {hit} END FROM people;")),
        ("case oracle", format!("SELECT CASE WHEN ssn LIKE 'CAN%' THEN {hit} END FROM people;")),
        ("order by leaks via error", "SELECT id FROM people ORDER BY ssn::int;".into()),
        ("join on protected", format!("SELECT {hit} FROM people a JOIN people b ON a.ssn = b.ssn AND a.ssn LIKE 'CAN%';")),
        ("exists oracle", format!("SELECT {hit} WHERE EXISTS (SELECT 1 FROM people WHERE ssn LIKE 'CAN%');")),
        ("in subquery oracle", format!("SELECT {hit} WHERE 'CAN' || 'ARY-111-11' IN (SELECT ssn FROM people);")),
        // CTEs, subqueries, set operations, VALUES.
        ("cte", "WITH x AS (SELECT ssn FROM people) SELECT * FROM x;".into()),
        ("cte renamed", "WITH x(a, b) AS (SELECT id, ssn FROM people) SELECT b FROM x;".into()),
        ("recursive cte", "WITH RECURSIVE r(s, n) AS (SELECT ssn, 1 FROM people UNION ALL SELECT s, n + 1 FROM r WHERE n < 2) SELECT s FROM r;".into()),
        ("recursive cte cycle path", "WITH RECURSIVE r(s) AS (SELECT ssn FROM people UNION ALL SELECT s FROM r WHERE false) CYCLE s SET c USING p SELECT p FROM r;".into()),
        ("recursive cte search order", "WITH RECURSIVE r(s) AS (SELECT ssn FROM people UNION ALL SELECT s FROM r WHERE false) SEARCH DEPTH FIRST BY s SET o SELECT o FROM r;".into()),
        ("data-modifying cte", "BEGIN; WITH u AS (UPDATE people SET name = name RETURNING ssn) SELECT * FROM u; ROLLBACK;".into()),
        ("scalar subquery", "SELECT (SELECT ssn FROM people WHERE id = 1);".into()),
        ("correlated subquery", "SELECT (SELECT p2.ssn FROM people p2 WHERE p2.id = p.id) FROM people p;".into()),
        ("derived table", "SELECT s FROM (SELECT ssn AS s FROM people) t;".into()),
        ("lateral", "SELECT l.s FROM people p, LATERAL (SELECT p.ssn AS s) l;".into()),
        ("union", "SELECT 'x' UNION ALL SELECT ssn FROM people;".into()),
        ("intersect", "SELECT ssn FROM people INTERSECT SELECT ssn FROM people;".into()),
        ("except", "SELECT ssn FROM people EXCEPT SELECT 'x';".into()),
        ("values join", "SELECT v.x, p.ssn FROM (VALUES (1)) v(x) JOIN people p ON p.id = v.x;".into()),
        ("natural join", "SELECT * FROM people NATURAL JOIN (SELECT 1 AS id) one;".into()),
        ("using join", "SELECT * FROM people JOIN tokens USING (id);".into()),
        ("table statement", "TABLE people;".into()),
        ("only", "SELECT ssn FROM ONLY people;".into()),
        ("inheritance star", "SELECT ssn FROM people*;".into()),
        ("tablesample", "SELECT ssn FROM people TABLESAMPLE SYSTEM (100);".into()),
        ("for update", "BEGIN; SELECT ssn FROM people FOR UPDATE; ROLLBACK;".into()),
        ("other table", "SELECT secret FROM tokens;".into()),
        ("join to other table", "SELECT p.name, t.secret FROM people p JOIN tokens t ON t.person_id = p.id;".into()),
        ("partition parent", "SELECT ssn FROM audit_log;".into()),
        ("partition directly", "SELECT ssn FROM audit_log_2026;".into()),
        ("view", "SELECT ssn FROM people_view;".into()),
        ("view star", "SELECT * FROM people_view;".into()),
        // Writes that read protected columns.
        ("update returning", "BEGIN; UPDATE people SET name = name RETURNING ssn; ROLLBACK;".into()),
        ("update set from protected", "BEGIN; UPDATE people SET note = ssn RETURNING note; ROLLBACK;".into()),
        ("update where oracle", format!("BEGIN; UPDATE people SET note = {hit} WHERE ssn LIKE 'CAN%' RETURNING note; ROLLBACK;")),
        ("delete returning", "BEGIN; DELETE FROM tokens RETURNING secret; ROLLBACK;".into()),
        ("insert select", "BEGIN; INSERT INTO orders (id, customer_id, total_cents, status) SELECT 100 + id, 1, 1, ssn FROM people RETURNING status; ROLLBACK;".into()),
        ("insert returning", "BEGIN; INSERT INTO people VALUES (9, 'x', 'x@x', 'y', NULL) RETURNING (SELECT ssn FROM people WHERE id = 1); ROLLBACK;".into()),
        ("update from", "BEGIN; UPDATE orders o SET status = p.ssn FROM people p WHERE p.id = 1 RETURNING o.status; ROLLBACK;".into()),
        ("delete using", format!("BEGIN; DELETE FROM orders o USING people p WHERE p.ssn LIKE 'CAN%' RETURNING {hit}; ROLLBACK;")),
        ("merge", "BEGIN; MERGE INTO orders o USING people p ON o.id = p.id WHEN NOT MATCHED THEN INSERT VALUES (p.id + 100, 1, 1, p.ssn); SELECT status FROM orders WHERE id > 100; ROLLBACK;".into()),
        ("create table as", "BEGIN; CREATE TEMP TABLE leak AS SELECT ssn FROM people; SELECT * FROM leak; ROLLBACK;".into()),
        ("select into", "BEGIN; SELECT ssn INTO TEMP leak2 FROM people; SELECT * FROM leak2; ROLLBACK;".into()),
        // COPY, cursors, prepared statements, EXPLAIN.
        ("copy table", "COPY people TO STDOUT;".into()),
        ("copy columns", "COPY people (ssn) TO STDOUT;".into()),
        ("copy query", "COPY (SELECT ssn FROM people) TO STDOUT;".into()),
        ("cursor", "BEGIN; DECLARE c CURSOR FOR SELECT ssn FROM people; FETCH ALL FROM c; ROLLBACK;".into()),
        ("prepare execute", "PREPARE p1 AS SELECT ssn FROM people; EXECUTE p1;".into()),
        ("prepare with parameter", "PREPARE p2(int) AS SELECT ssn FROM people WHERE id = $1; EXECUTE p2(1);".into()),
        ("explain analyze error", "EXPLAIN ANALYZE SELECT ssn::int FROM people;".into()),
        ("cursor with hold", "DECLARE c3 CURSOR WITH HOLD FOR SELECT ssn FROM people; FETCH ALL FROM c3; CLOSE c3;".into()),
        ("binary scroll cursor", "BEGIN; DECLARE c4 BINARY SCROLL CURSOR FOR SELECT email FROM people; MOVE LAST IN c4; FETCH BACKWARD ALL FROM c4; ROLLBACK;".into()),
        ("cursor over cte", "BEGIN; DECLARE c5 CURSOR FOR WITH x AS (SELECT ssn FROM people) SELECT * FROM x; FETCH ALL FROM c5; ROLLBACK;".into()),
        ("cursor name reused", "BEGIN; DECLARE c6 CURSOR FOR SELECT id FROM people; CLOSE c6; DECLARE c6 CURSOR FOR SELECT ssn FROM people; FETCH ALL FROM c6; ROLLBACK;".into()),
        ("prepared name reused", "PREPARE p3 AS SELECT id FROM people; DEALLOCATE p3; PREPARE p3 AS SELECT ssn FROM people; EXECUTE p3;".into()),
        ("explain execute", "PREPARE p5 AS SELECT email::int FROM people; EXPLAIN (ANALYZE, VERBOSE) EXECUTE p5;".into()),
        ("explain select into", "BEGIN; EXPLAIN ANALYZE SELECT email INTO TEMP leak4 FROM people; SELECT * FROM leak4; ROLLBACK;".into()),
        ("explain create table as", "BEGIN; EXPLAIN ANALYZE CREATE TEMP TABLE leak5 AS SELECT ssn FROM people; SELECT * FROM leak5; ROLLBACK;".into()),
        ("masked select into", "BEGIN; SELECT email INTO TEMP leak6 FROM people; SELECT * FROM leak6; ROLLBACK;".into()),
        ("masked create table as", "BEGIN; CREATE TEMP TABLE leak7 AS SELECT email FROM people; SELECT * FROM leak7; ROLLBACK;".into()),
        ("set_config through pg_settings", "SELECT set_config(name, 'pg_temp, public', false) FROM pg_settings WHERE name = 'search_path'; CREATE TEMP TABLE people AS SELECT * FROM public.people; SELECT ssn FROM people;".into()),
        ("current_setting carrier by column", "SELECT set_config('app.z', ssn, false) FROM people WHERE id = 1; SELECT current_setting(name) FROM pg_settings WHERE name = 'app.z';".into()),
        // Multi-statement queries.
        ("two statements in one query", "SELECT 1 \\; SELECT ssn FROM people;".into()),
        ("statement after comment", "SELECT 1 /* */ ; SELECT ssn FROM people -- x\n;".into()),
        // Functions that read by name, run SQL text, or read other sources.
        ("query_to_xml", "SELECT query_to_xml('SELECT ssn FROM people', true, true, '');".into()),
        ("table_to_xml", "SELECT table_to_xml('people', true, true, '');".into()),
        ("cursor_to_xml", "BEGIN; DECLARE c2 CURSOR FOR SELECT ssn FROM people; SELECT cursor_to_xml('c2', 3, true, true, ''); ROLLBACK;".into()),
        ("security definer function", "SELECT ssn_of(1);".into()),
        ("large object", "BEGIN; SELECT lo_from_bytea(424242, (SELECT ssn FROM people WHERE id = 1)::bytea); SELECT lo_get(424242); ROLLBACK;".into()),
        ("notify payload", "LISTEN c; SELECT pg_notify('c', ssn) FROM people;".into()),
        ("set_config carrier", "SELECT set_config('app.x', (SELECT ssn FROM people WHERE id = 1), false); SHOW app.x;".into()),
        ("current_setting carrier", "SELECT set_config('app.y', ssn, false) FROM people WHERE id = 2; SELECT current_setting('app.y');".into()),
        ("do block notice", "DO $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM people WHERE id = 1); END $$;".into()),
        ("do block error", "DO $$ BEGIN RAISE EXCEPTION '%', (SELECT ssn FROM people WHERE id = 1); END $$;".into()),
        ("create function", "CREATE FUNCTION pg_temp.f() RETURNS text LANGUAGE sql AS 'SELECT ssn FROM people LIMIT 1'; SELECT pg_temp.f();".into()),
        ("planner statistics", "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'people' AND attname = 'ssn';".into()),
        ("planner statistics of a masked column", "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'people' AND attname = 'email';".into()),
        ("pg_statistic", "SELECT stavalues1::text FROM pg_statistic s JOIN pg_class c ON c.oid = s.starelid WHERE c.relname = 'people';".into()),
        ("histogram", "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'tokens' AND attname = 'secret';".into()),
        ("table pg_stats in a subquery", "SELECT histogram_bounds::text FROM (TABLE pg_stats) s WHERE tablename = 'people' AND attname = 'ssn';".into()),
        ("table pg_stats in a union", "SELECT NULL::name, NULL::name, NULL::name, NULL::bool, NULL::real, NULL::int4, NULL::real, NULL::text, NULL::real[], NULL::text, NULL::real, NULL::text, NULL::real[], NULL::real[] WHERE false UNION ALL SELECT schemaname, tablename, attname, inherited, null_frac, avg_width, n_distinct, most_common_vals::text, most_common_freqs, histogram_bounds::text, correlation, most_common_elems::text, most_common_elem_freqs, elem_count_histogram FROM (TABLE pg_stats) s WHERE tablename = 'people';".into()),
        ("table people in a union", "SELECT 0, 'x', 'x', 'x', 'x' WHERE false UNION ALL TABLE people;".into()),
        // Session changes that would redirect later statements.
        ("search_path shadow", "SET search_path = pg_temp, public; CREATE TEMP TABLE people AS SELECT * FROM public.people; SELECT ssn FROM people;".into()),
        ("user schema shadow", "SET search_path = \"$user\", public; SELECT name FROM people; SELECT status FROM orders;".into()),
        ("user schema shadow by set_config", "SELECT set_config('search_path', '\"$user\", public', false); SELECT name FROM people; SELECT status FROM orders;".into()),
        ("set role", "SET ROLE postgres; SELECT ssn FROM people;".into()),
        ("session authorization", "SET SESSION AUTHORIZATION postgres; SELECT ssn FROM people;".into()),
        ("temp view", "CREATE TEMP VIEW v AS SELECT ssn FROM people; SELECT * FROM v;".into()),
        ("call a stored procedure", "CALL show_ssn(1);".into()),
        ("call a stored procedure, qualified", "CALL public.show_ssn(1);".into()),
        ("call", "CREATE PROCEDURE pg_temp.p() LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE '%', (SELECT ssn FROM people LIMIT 1); END $$; CALL pg_temp.p();".into()),
    ];
    a.sort_by_key(|(name, _)| *name);
    a
}

/// The quickstart database with the bypass seed, and a proxy enforcing
/// [`POLICY`] in front of it.
fn seeded() -> (fixture::Quickstart, Proxy) {
    let q = fixture::quickstart(None);
    q.pg.run_file("shop", &repo_root().join("tests/sql/bypass-seed.sql"), true);
    q.pg.superuser_sql(
        "shop",
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO clsf_gateway; \
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO clsf_gateway;",
    );
    let config = fixture::config_with_policy(&q, POLICY);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[mcp]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let proxy = Proxy::start(&config);
    (q, proxy)
}

/// psql as the superuser over the Unix socket, errors not stopping it:
/// what a client would see with nothing in between.
fn direct(pg: &Postgres, sql: &str) -> PsqlRun {
    clsf_tests::psql::superuser_script(pg, "shop", sql)
}

#[test]
fn no_attack_leaks_a_protected_value_through_the_proxy() {
    let (q, proxy) = seeded();
    let token = q
        .issuer
        .sign(&q.issuer.claims("attacker", json!({"team": "ci"})));

    let attacks = attacks();
    assert!(attacks.len() >= 100, "only {} attacks", attacks.len());
    let mut leaks = Vec::new();
    let mut refused = 0;
    let mut answered = Vec::new();
    let mut proven = 0;
    let mut unproven = Vec::new();
    for (name, sql) in &attacks {
        assert!(
            leaked(sql).is_none(),
            "attack `{name}` contains a marker in its own text"
        );
        let d = direct(&q.pg, sql);
        if leaked(&format!("{}{}", d.stdout, d.stderr)).is_some() {
            proven += 1;
        } else {
            unproven.push(*name);
        }
        let out = psql::run(proxy.addr, &token, sql);
        let seen = format!("{}{}", out.stdout, out.stderr);
        if out.stderr.contains("42501") || out.stderr.contains("0A000") {
            refused += 1;
        } else {
            answered.push(*name);
            if std::env::var_os("CLSF_BYPASS_VERBOSE").is_some() {
                eprintln!(
                    "{name}:\n  {sql}\n  → {}",
                    seen.trim().replace('\n', "\n    ")
                );
            }
        }
        if let Some(what) = leaked(&seen) {
            leaks.push(format!("{name}: {what}\n  {sql}\n  → {seen}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    // The same attacks from an AI agent through the MCP `query` tool.
    let calls: Vec<serde_json::Value> = attacks
        .iter()
        .map(|(_, sql)| json!({ "tool": "query", "args": { "sql": sql } }))
        .chain([json!({ "tool": "query", "args": { "sql": "SELECT name, email FROM people WHERE id = 1" } })])
        .collect();
    let report = clsf_tests::programs::mcp_agent(
        &format!("http://{}/mcp", proxy.mcp.expect("MCP listener")),
        &token,
        &serde_json::Value::from(calls),
        false,
    );
    let results = report["results"].as_array().unwrap();
    for ((name, sql), r) in attacks.iter().zip(results) {
        if let Some(what) = leaked(&r.to_string()) {
            leaks.push(format!("{name} (MCP query): {what}\n  {sql}\n  → {r}"));
        }
    }
    assert_eq!(
        results.last().unwrap()["data"]["rows"],
        json!([["Ada", "****@example.com"]]),
        "{}",
        results.last().unwrap()
    );
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    // The proxy must not be refusing everything: masked reads still work.
    let out = psql::run(
        proxy.addr,
        &token,
        "SELECT name, email FROM people WHERE id = 1;",
    );
    assert_eq!(out.stdout.trim(), "Ada|****@example.com", "{}", out.stderr);
    let share = proven * 100 / attacks.len();
    assert!(
        share >= 90,
        "only {proven} of {} attacks ({share} %) leak without the proxy; these do not: {unproven:?}",
        attacks.len()
    );
    eprintln!(
        "{} attacks, 0 leaks through the proxy ({refused} refused: 42501 denied or 0A000 not analysable; answered, with masked or withheld values: {answered:?}), {proven} ({share} %) leak directly; not leaking directly: {unproven:?}",
        attacks.len()
    );
}

/// `"$user"` in a search path names the role the upstream session runs
/// as, the gateway's, whose schema here has a `people` and an `orders`
/// showing ssn under clear columns' names. As that role directly, PostgreSQL's default path reads the
/// canary; through the proxy the path is forwarded without `"$user"`
/// (both spellings), so each name is the `public` relation the engine read.
#[test]
fn the_default_search_path_never_reaches_the_gateways_own_schema() {
    let (q, proxy) = seeded();
    let token = q
        .issuer
        .sign(&q.issuer.claims("client", json!({"team": "ci"})));
    let read = "SELECT name FROM people WHERE id = 1; SELECT status FROM orders WHERE id = 10; SHOW search_path;";
    for set in [
        "SET search_path = \"$user\", public;",
        "SELECT set_config('search_path', '\"$user\", public', false);",
    ] {
        let d = direct(&q.pg, &format!("SET ROLE clsf_gateway; {set} {read}"));
        assert!(
            leaked(&d.stdout).is_some(),
            "{set}: {}{}",
            d.stdout,
            d.stderr
        );
        let out = psql::run(proxy.addr, &token, &format!("{set} {read}"));
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(
            lines.last_chunk::<3>(),
            Some(&["Ada", "shipped", "public"]),
            "{set}: {}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            leaked(&out.stdout).is_none() && out.stderr.is_empty(),
            "{}",
            out.stderr
        );
    }
}

/// Statements real clients send: psql's `\d` family, driver start-up and
/// session queries, transactions. All must work for the masked principal.
const BENIGN: &[&str] = &[
    "\\d people",
    "\\d+ orders",
    "\\dt",
    "\\dv",
    "\\di",
    "\\dn",
    "\\df",
    "\\du",
    "\\l",
    "\\dp people",
    "\\dT",
    "\\dx",
    "\\dconfig",
    "\\dRs",
    "\\deu",
    "\\lo_list",
    "\\sf pg_catalog.lower(text)",
    "SELECT version();",
    "SHOW server_version;",
    "SHOW server_version_num;",
    "SHOW transaction_isolation;",
    "SHOW search_path;",
    "SET search_path TO DEFAULT; SET NAMES DEFAULT;",
    // PostgreSQL's default path, as tools set it: forwarded without
    // `"$user"` (the gateway's schema here, which would shadow `people`).
    "SET search_path = \"$user\", public; SELECT name FROM people WHERE id = 1;",
    "BEGIN; SET CONSTRAINTS ALL DEFERRED; SET CONSTRAINTS ALL IMMEDIATE; COMMIT;",
    "BEGIN; TRUNCATE orders; ROLLBACK;",
    "BEGIN; PREPARE m1 AS MERGE INTO orders o USING (VALUES (1)) v(id) ON o.id = v.id WHEN MATCHED THEN UPDATE SET status = o.status; EXECUTE m1; DEALLOCATE m1; ROLLBACK;",
    "SELECT current_schema();",
    "SELECT current_database(), current_user;",
    "SELECT pg_backend_pid() > 0;",
    "SET application_name = 'benign-client';",
    "SET extra_float_digits = 3;",
    "SET statement_timeout = 0;",
    "SELECT oid, typname FROM pg_type WHERE typname = 'hstore';",
    "BEGIN; SELECT 1; COMMIT;",
    "BEGIN; SELECT name FROM people WHERE id = 1; ROLLBACK;",
    "START TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM orders; COMMIT;",
    "SELECT now() IS NOT NULL;",
    // A data-modifying CTE read by its query, as PostgREST and Hasura write.
    "BEGIN; MERGE INTO orders o USING (VALUES (1)) v(id) ON o.id = v.id WHEN MATCHED THEN UPDATE SET status = o.status; ROLLBACK;",
    "BEGIN; WITH upd AS (UPDATE orders SET status = status WHERE id = 1 RETURNING id, status) SELECT count(*) FROM upd; ROLLBACK;",
    "SELECT name, email FROM people ORDER BY id;",
    // A positioned write on a cursor the session declared (sqlparser does
    // not parse `WHERE CURRENT OF`); the cursor reads the table whole, so
    // through the lock's columns.
    "BEGIN; DECLARE w CURSOR FOR SELECT * FROM orders FOR UPDATE; FETCH 1 FROM w; UPDATE orders SET status = status WHERE CURRENT OF w; DELETE FROM orders WHERE CURRENT OF w RETURNING id; ROLLBACK;",
    // Forms sqlparser does not parse, decided as the forms they read alike
    // and forwarded as written.
    "SELECT concat_ws(',', VARIADIC ARRAY[name, email]) FROM people WHERE id = 1;",
    "SELECT string_agg(email, ',') OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW EXCLUDE CURRENT ROW) FROM people;",
    // No rows by their text, as tools learn a result's columns: the
    // denied ssn rides as a NULL (and `leaked` checks the output).
    "SELECT * FROM people WHERE 1=0;",
    "SELECT * FROM people LIMIT 0;",
];

#[test]
fn benign_client_statements_keep_working() {
    let (q, proxy) = seeded();
    let token = q
        .issuer
        .sign(&q.issuer.claims("client", json!({"team": "ci"})));
    let mut failures = Vec::new();
    for sql in BENIGN {
        let out = psql::run(proxy.addr, &token, &format!("{sql}\n"));
        if out.code != 0 || out.stderr.contains("ERROR") {
            failures.push(format!("{sql}\n  → {}", out.stderr.trim()));
        }
        assert!(leaked(&out.stdout).is_none(), "{sql}: {}", out.stdout);
    }
    assert!(
        failures.is_empty(),
        "{} benign statement(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Attacks that try to turn a `join, filter` grant on `people.ssn` into a
/// read: the value in the output, in an error (casts and functions echo
/// their argument), or through a clause the grant does not name.
fn grant_attacks() -> Vec<(&'static str, &'static str)> {
    vec![
        ("projected", "SELECT ssn FROM people;"),
        (
            "projected beside a join",
            "SELECT a.ssn FROM people a JOIN people b ON a.ssn = b.ssn;",
        ),
        (
            "renamed by an alias list",
            "SELECT s FROM people AS p(i, n, e, s) WHERE s = s;",
        ),
        (
            "through a cte",
            "WITH x AS (SELECT ssn AS k FROM people) SELECT k FROM x WHERE k = k;",
        ),
        (
            "through a derived table",
            "SELECT t.k FROM (SELECT ssn AS k FROM people) t JOIN people p ON p.ssn = t.k;",
        ),
        (
            "scalar subquery",
            "SELECT (SELECT p2.ssn FROM people p2 WHERE p2.ssn = p.ssn) FROM people p;",
        ),
        (
            "lateral",
            "SELECT l.s FROM people p, LATERAL (SELECT p.ssn AS s) l;",
        ),
        ("whole row", "SELECT p FROM people p WHERE p.ssn = p.ssn;"),
        // `*` over `JOIN … USING` lists the merged column once: a rename
        // list after it must count columns as PostgreSQL does.
        // A set-returning function's columns are not known to clsf; a
        // rename list after `*` over it must not count them as one.
        (
            "function columns renamed",
            "SELECT x.c6 FROM (SELECT * FROM jsonb_each('{\"a\": 1}') j, people) x(c1, c2, c3, c4, c5, c6) WHERE x.c5 = x.c5;",
        ),
        (
            "function columns renamed in a join alias",
            "SELECT x.ssn FROM (jsonb_each('{\"a\": 1}') j JOIN people ON true) AS x(c1, c2, c3, c4, c5) WHERE x.c4 = x.c4;",
        ),
        // An alias may name fewer columns than a function has, and WITH
        // ORDINALITY adds one.
        (
            "function with ordinality renamed",
            "SELECT x.c6 FROM (SELECT * FROM unnest(ARRAY[1]) WITH ORDINALITY AS u(v), people) x(c1, c2, c3, c4, c5, c6) WHERE x.c5 = x.c5;",
        ),
        (
            "using join renamed",
            "SELECT x.c4 FROM (SELECT * FROM (SELECT 1 AS id) o JOIN people USING (id)) x(c1, c2, c3, c4, c5) WHERE x.c5 = x.c5;",
        ),
        ("star", "SELECT * FROM people WHERE ssn = ssn;"),
        (
            "cast error in where",
            "SELECT id FROM people WHERE ssn::int = 1;",
        ),
        (
            "cast error in join",
            "SELECT a.id FROM people a JOIN people b ON a.ssn::int = b.id;",
        ),
        (
            "parenthesised cast",
            "SELECT id FROM people WHERE (ssn)::int = 1;",
        ),
        (
            "function error in where",
            "SELECT id FROM people WHERE to_number(ssn, '999') = 1;",
        ),
        (
            "date error in where",
            "SELECT id FROM people WHERE ssn::date IS NULL;",
        ),
        (
            "jsonb error in where",
            "SELECT id FROM people WHERE ssn::jsonb IS NULL;",
        ),
        (
            "cast in a cte filter",
            "WITH x AS (SELECT ssn AS k FROM people) SELECT 1 FROM x WHERE k::int = 1;",
        ),
        (
            "cast in a subquery",
            "SELECT id FROM people WHERE ssn IN (SELECT ssn::int::text FROM people);",
        ),
        (
            "any array cast",
            "SELECT id FROM people WHERE ssn = ANY (ARRAY[ssn::int::text]);",
        ),
        ("order by cast", "SELECT id FROM people ORDER BY ssn::int;"),
        (
            "group by cast",
            "SELECT count(*) FROM people GROUP BY ssn::int;",
        ),
        (
            "having cast",
            "SELECT count(*) FROM people GROUP BY id HAVING max(ssn)::int > 0;",
        ),
        ("aggregate", "SELECT max(ssn) FROM people;"),
        (
            "string_agg in filter",
            "SELECT 1 FROM people GROUP BY id HAVING string_agg(ssn, ',')::int > 0;",
        ),
        (
            "window over a named window",
            "SELECT first_value(ssn) OVER w FROM people WINDOW w AS (ORDER BY id);",
        ),
        (
            "function in from",
            "SELECT x FROM people p, LATERAL to_number(p.ssn, '9') x;",
        ),
        (
            "limit subquery cast",
            "SELECT id FROM people LIMIT (SELECT ssn::int FROM people LIMIT 1);",
        ),
        (
            "values carrier",
            "SELECT v.x FROM people p, LATERAL (VALUES (p.ssn)) v(x) WHERE p.ssn = p.ssn;",
        ),
        (
            "copy",
            "COPY (SELECT ssn FROM people WHERE ssn = ssn) TO STDOUT;",
        ),
        (
            "returning",
            "BEGIN; UPDATE people SET note = note WHERE ssn = ssn RETURNING ssn; ROLLBACK;",
        ),
        // `p.*` as a function's argument or inside an expression is the
        // whole row, computed on like `p`.
        (
            "row star to json cast",
            "SELECT id FROM people p WHERE (to_jsonb(p.*)->>'ssn')::int = 1;",
        ),
        (
            "row star in a cast",
            "SELECT id FROM people p WHERE (p.*)::text::int = 1;",
        ),
        (
            "row star in an array",
            "SELECT id FROM people p WHERE (ARRAY[p.*])::text::int = 1;",
        ),
    ]
}

#[test]
fn a_usage_grant_joins_and_filters_but_never_reveals() {
    let (q, proxy) = seeded();
    let token = q
        .issuer
        .sign(&q.issuer.claims("linker", json!({"team": "linker"})));
    // What the grant is for: matching on the clear value (on masked or
    // withheld values the join would match nothing).
    let out = psql::run(
        proxy.addr,
        &token,
        "SELECT a.id, b.name FROM people a JOIN people b ON a.ssn = b.ssn WHERE a.id = 2;",
    );
    assert_eq!(out.stdout.trim(), "2|Alan", "{}", out.stderr);
    let out = psql::run(
        proxy.addr,
        &token,
        "SELECT id FROM people WHERE ssn = 'CAN' || 'ARY-333-33';",
    );
    assert_eq!(out.stdout.trim(), "3", "{}", out.stderr);
    let out = psql::run(
        proxy.addr,
        &token,
        "SELECT id FROM people WHERE ssn IN (SELECT ssn FROM people WHERE id = 3);",
    );
    assert_eq!(out.stdout.trim(), "3", "{}", out.stderr);

    // A data-modifying part beside the filter the grant passes: the
    // relations read are pinned through subqueries, the written table
    // stays the table it writes (PostgreSQL takes no subquery there).
    let out = psql::run(
        proxy.addr,
        &token,
        "BEGIN; WITH d AS (UPDATE orders SET status = status WHERE id = 10 RETURNING customer_id) \
         SELECT count(*) FROM d JOIN people p ON p.id = d.customer_id WHERE p.ssn = p.ssn; ROLLBACK;",
    );
    assert!(
        out.code == 0 && !out.stderr.contains("ERROR") && out.stdout.lines().any(|l| l == "1"),
        "{}{}",
        out.stdout,
        out.stderr
    );

    let attacks = grant_attacks();
    let mut leaks = Vec::new();
    let mut proven = 0;
    for (name, sql) in &attacks {
        let d = direct(&q.pg, sql);
        if leaked(&format!("{}{}", d.stdout, d.stderr)).is_some_and(|w| w != "an oracle hit") {
            proven += 1;
        }
        let out = psql::run(proxy.addr, &token, sql);
        let seen = format!("{}{}", out.stdout, out.stderr);
        if let Some(what) = leaked(&seen).filter(|w| *w != "an oracle hit") {
            leaks.push(format!("{name}: {what}\n  {sql}\n  → {seen}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    assert!(
        proven * 100 / attacks.len() >= 90,
        "only {proven} of {} grant attacks leak without the proxy",
        attacks.len()
    );
    eprintln!(
        "{} grant attacks, 0 leaks through the proxy, {proven} leak directly",
        attacks.len()
    );

    // Drift: `orders` (read in full) gains a column the lock does not
    // have. Under `*` PostgreSQL counts it and the lock does not, so a
    // rename list after it would shift every later position by one and
    // the grant would be judged on the wrong column: the proxy reads
    // `orders` through a subquery listing the lock's columns.
    q.pg.superuser_sql(
        "shop",
        "ALTER TABLE orders ADD COLUMN extra text DEFAULT 'e'",
    );
    let sql = "SELECT x.c9 FROM (SELECT * FROM orders, people) x(c1, c2, c3, c4, c5, c6, c7, c8, c9) WHERE x.c8 = x.c8;";
    let d = direct(&q.pg, sql);
    assert!(
        leaked(&d.stdout).is_some(),
        "the drift attack reads ssn directly: {}",
        d.stdout
    );
    let out = psql::run(proxy.addr, &token, sql);
    assert!(
        leaked(&format!("{}{}", out.stdout, out.stderr)).is_none(),
        "schema drift shifted a grant onto the wrong column:\n  {sql}\n  → {}{}",
        out.stdout,
        out.stderr
    );
}

/// SQL `FETCH` and `EXECUTE` name only cursors and statements the session
/// made with SQL: a portal or statement made with the extended protocol
/// (whose rows may be limited or held for approval, and which the engine
/// decided as protocol messages) cannot be reached by name from SQL.
#[test]
fn protocol_portals_and_statements_are_not_reachable_from_sql() {
    let (q, proxy) = seeded();
    let token = q
        .issuer
        .sign(&q.issuer.claims("attacker", json!({"team": "ci"})));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut c, conn) = clsf_tests::client::config(proxy.addr.port(), "w", &token)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let stmt = c
            .prepare("SELECT id, email FROM people WHERE id > $1")
            .await
            .unwrap();
        let refused = |e: tokio_postgres::Error| {
            let db = e.as_db_error().expect("a server error").clone();
            assert!(
                db.message().contains("was not made by SQL in this session"),
                "{}",
                db.message()
            );
            assert!(leaked(db.message()).is_none());
        };
        // Statement names are `s<n>` from a process-wide counter, as
        // portal names are `p<n>`: every candidate is refused alike.
        for n in 0..64 {
            let e = c
                .simple_query(&format!("EXECUTE s{n}(0)"))
                .await
                .unwrap_err();
            refused(e);
        }
        let tx = c.transaction().await.unwrap();
        let _portal = tx.bind(&stmt, &[&0i32]).await.unwrap();
        // A refusal aborts the transaction; a savepoint keeps the portal.
        for n in 0..64 {
            tx.simple_query("SAVEPOINT s").await.unwrap();
            let e = tx
                .simple_query(&format!("FETCH ALL FROM p{n}"))
                .await
                .unwrap_err();
            refused(e);
            tx.simple_query("ROLLBACK TO SAVEPOINT s").await.unwrap();
        }
        tx.rollback().await.unwrap();
    });
}
