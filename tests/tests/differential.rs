//! The engine's column resolution checked against PostgreSQL's own: for a
//! corpus of statements, the base columns the scope resolver says a
//! statement touches (any usage) must equal the columns PostgreSQL's plan
//! references (`EXPLAIN (VERBOSE, FORMAT JSON)`: every `alias.column` in
//! scan outputs, filters, join and sort keys, mapped through the scans'
//! aliases to their relations). A resolution bug — a column attributed to
//! the wrong relation, or missed — shows up here as a difference instead
//! of as a leak.

use std::collections::{BTreeSet, HashMap};

use clsf_compiler::engine::scope;
use clsf_compiler::schema::Schema;
use clsf_tests::fixture;
use serde_json::Value;
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
    "TABLE orders",
    "SELECT e FROM (VALUES (1)) v(k) JOIN (SELECT id, email AS e FROM customers) c ON c.id = v.k",
    "SELECT string_agg(email, ',' ORDER BY name) FROM customers",
];

/// `alias.column` (either part possibly quoted) in PostgreSQL's deparsed
/// expressions.
fn column_ref() -> regex::Regex {
    regex::Regex::new(
        r#"("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\.("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*|\*)"#,
    )
    .unwrap()
}

fn unquote(s: &str) -> String {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .map_or_else(|| s.to_owned(), |s| s.replace("\"\"", "\""))
}

/// Scan nodes: alias → schema.relation.
fn aliases(node: &Value, out: &mut HashMap<String, String>) {
    if let (Some(rel), Some(alias)) = (node["Relation Name"].as_str(), node["Alias"].as_str()) {
        let schema = node["Schema"].as_str().unwrap_or("public");
        out.insert(alias.to_owned(), format!("{schema}.{rel}"));
    }
    if let Some(children) = node["Plans"].as_array() {
        for c in children {
            aliases(c, out);
        }
    }
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "Relation Name" | "Alias" | "Schema" | "Node Type"
                )
            })
            .for_each(|(_, v)| strings(v, out)),
        _ => {}
    }
}

fn postgres_columns(plan_json: &str, schema: &Schema) -> BTreeSet<String> {
    let doc: Value = serde_json::from_str(plan_json.trim()).expect("EXPLAIN JSON");
    let plan = &doc[0]["Plan"];
    let mut by_alias = HashMap::new();
    aliases(plan, &mut by_alias);
    let mut texts = Vec::new();
    strings(plan, &mut texts);
    let re = column_ref();
    let mut cols = BTreeSet::new();
    for text in texts {
        for cap in re.captures_iter(text) {
            let Some(rel) = by_alias.get(&unquote(&cap[1])) else {
                continue;
            };
            let column = unquote(&cap[2]);
            let (sch, name) = rel.split_once('.').unwrap();
            let ri = schema.find(sch, name).expect("relation in the lock");
            let r = schema.relation(ri);
            if column == "*" {
                cols.extend(r.columns.iter().map(|c| format!("{rel}.{}", c.name)));
            } else if r.columns.iter().any(|c| c.name == column) {
                cols.insert(format!("{rel}.{column}"));
            }
        }
    }
    cols
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

#[test]
fn resolved_columns_match_postgres_explain_verbose() {
    let q = fixture::quickstart(None);
    let schema = clsf_compiler::schema::lock::from_str(&std::fs::read_to_string(&q.lock).unwrap())
        .expect("lock");
    let mut differences = Vec::new();
    for sql in CORPUS {
        let explained =
            q.pg.superuser_sql("shop", &format!("EXPLAIN (VERBOSE, FORMAT JSON) {sql}"));
        let pg = postgres_columns(&explained, &schema);
        let ours = engine_columns(sql, &schema);
        if pg != ours {
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
