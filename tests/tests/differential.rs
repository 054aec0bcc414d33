//! The engine's column resolution checked against PostgreSQL's own: for a
//! corpus of statements, the base columns the scope resolver says a
//! statement touches (any usage) are compared with the columns PostgreSQL
//! resolved for the same text. PostgreSQL's answer is read from the
//! dependencies it records for a view over the statement
//! (`information_schema.view_column_usage`): every column reference in the
//! parsed query tree, wherever it appears. (`EXPLAIN VERBOSE` was the first
//! idea, but its scan outputs list whole physical rows and drop the prefix
//! when one relation is involved, so it over- and under-reports.)
//!
//! A column PostgreSQL resolves and the engine does not would be a
//! resolution bug that could leak: the test fails on any. The engine may
//! over-approximate (count a column it cannot rule out); each such case is
//! listed with the statement, so a change in either direction is noticed.

use std::collections::BTreeSet;

use clsf_compiler::engine::scope;
use clsf_compiler::schema::Schema;
use clsf_tests::fixture;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

const CORPUS: &[&str] = &[
    "SELECT email FROM customers WHERE id = 1",
    "SELECT c.email, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id",
    "SELECT id, status FROM orders o JOIN customers c USING (id)",
    "SELECT name FROM customers NATURAL JOIN (SELECT id, status FROM orders) o",
    "SELECT * FROM orders",
    "SELECT o.*, c.name FROM orders o LEFT JOIN customers c ON c.id = o.customer_id",
    "SELECT x.e FROM (SELECT email AS e, id FROM customers) x WHERE x.id > 2",
    "WITH big AS (SELECT customer_id, total_cents FROM orders WHERE total_cents > 2000) SELECT c.name FROM customers c JOIN big b ON b.customer_id = c.id",
    "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = 'shipped')",
    "SELECT name, (SELECT max(total_cents) FROM orders o WHERE o.customer_id = c.id) FROM customers c",
    "SELECT c.name, l.total_cents FROM customers c CROSS JOIN LATERAL (SELECT total_cents FROM orders o WHERE o.customer_id = c.id ORDER BY total_cents DESC LIMIT 1) l",
    "SELECT email FROM customers UNION SELECT status FROM orders",
    "SELECT customer_id, sum(total_cents) FROM orders GROUP BY customer_id HAVING count(*) > 1",
    "SELECT name FROM customers ORDER BY created_at DESC",
    "SELECT count(*) FROM customers",
    "SELECT \"email\" FROM \"customers\" WHERE \"id\" IS NULL OR ID = 2",
    "SELECT upper(name) || '!' FROM public.customers WHERE lower(email) LIKE '%@example.com'",
    "SELECT a.name, b.name FROM customers a JOIN customers b ON a.id = b.id + 1",
    "SELECT status, count(DISTINCT customer_id) FROM orders GROUP BY status ORDER BY 2 DESC",
    "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE status <> 'cancelled')",
    "SELECT card_number FROM customers WHERE ssn = '123-45-6789'",
    "SELECT o.id FROM orders o WHERE o.total_cents > (SELECT avg(total_cents) FROM orders)",
    "SELECT CASE WHEN total_cents > 5000 THEN 'big' ELSE status END FROM orders",
    "SELECT name FROM customers c WHERE c.id = ANY (ARRAY[1, 2]) AND c.card_number <> ''",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) SELECT c.email FROM customers c JOIN n ON n.i = c.id",
    "SELECT DISTINCT ON (customer_id) customer_id, total_cents FROM orders ORDER BY customer_id, total_cents DESC",
    "SELECT name FROM customers INTERSECT SELECT status FROM orders",
    "SELECT e FROM (VALUES (1)) v(k) JOIN (SELECT id, email AS e FROM customers) c ON c.id = v.k",
    "SELECT string_agg(email, ',' ORDER BY name) FROM customers",
];

/// The columns PostgreSQL records a view over `sql` as depending on. The
/// view selects a constant from the statement as a subquery, so duplicate
/// output names do not matter; the stored query tree keeps every reference.
fn postgres_columns(q: &fixture::Quickstart, n: usize, sql: &str) -> BTreeSet<String> {
    let view = format!("clsf_diff_{n}");
    q.pg.superuser_sql(
        "shop",
        &format!("CREATE VIEW {view} AS SELECT 1 AS one FROM ({sql}) AS s"),
    );
    let out = q.pg.superuser_sql(
        "shop",
        &format!(
            "SELECT table_schema || '.' || table_name || '.' || column_name \
             FROM information_schema.view_column_usage WHERE view_name = '{view}'"
        ),
    );
    q.pg.superuser_sql("shop", &format!("DROP VIEW {view}"));
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn engine_columns(sql: &str, schema: &Schema) -> BTreeSet<String> {
    let stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
    let usages = scope::statement_usages(&stmts[0], schema, &["pg_catalog", "public"])
        .unwrap_or_else(|e| panic!("{sql}: the resolver gave up: {e}"));
    usages
        .keys()
        .map(|&(ri, ci)| {
            let r = schema.relation(ri);
            format!("{}.{}", r.qualified(), r.columns[ci].name)
        })
        .collect()
}

/// Differences that are not resolution errors, with why:
/// (statement, columns only PostgreSQL counts, columns only the engine counts).
const KNOWN: &[(&str, &[&str], &[&str])] = &[(
    // PostgreSQL records every column a subquery selects; the engine counts
    // only those the outer query reads (`status` never leaves the subquery).
    "SELECT name FROM customers NATURAL JOIN (SELECT id, status FROM orders) o",
    &["public.orders.status"],
    &[],
)];

#[test]
fn resolved_columns_match_the_columns_postgres_resolves() {
    let q = fixture::quickstart(None);
    let schema = clsf_compiler::schema::lock::from_str(&std::fs::read_to_string(&q.lock).unwrap())
        .expect("lock");
    let mut differences = Vec::new();
    for (n, sql) in CORPUS.iter().enumerate() {
        let pg = postgres_columns(&q, n, sql);
        let ours = engine_columns(sql, &schema);
        let pg_only: Vec<&str> = pg.difference(&ours).map(String::as_str).collect();
        let ours_only: Vec<&str> = ours.difference(&pg).map(String::as_str).collect();
        let known = KNOWN
            .iter()
            .find(|(k, _, _)| k == sql)
            .map(|(_, p, o)| (p.to_vec(), o.to_vec()));
        if known.unwrap_or_default() != (pg_only, ours_only) {
            differences.push(format!(
                "{sql}\n  postgres only: {:?}\n  engine only:   {:?}",
                pg.difference(&ours).collect::<Vec<_>>(),
                ours.difference(&pg).collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} statements resolve differently:\n{}",
        differences.len(),
        CORPUS.len(),
        differences.join("\n")
    );
}
