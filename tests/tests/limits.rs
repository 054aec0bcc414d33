//! Row limits (`limit N rows`) through the real proxy: a statement's result
//! is cut to N rows with a notice, across the Executes of one portal too;
//! writes and COPY that would carry a limited relation's rows elsewhere are
//! refused; a transaction goes on after a cut.

use clsf_tests::fixture;
use clsf_tests::psql;
use serde_json::json;

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group sampler { claim team == "sampler" }

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential mask last(4)
  ssn:         restricted
}
table public.orders: internal

rule sampler_reads for sampler {
  allow read, write, export <= internal
  mask  confidential
  limit 2 rows table public.orders
}
"#;

#[test]
fn results_are_cut_to_the_limit_and_copies_elsewhere_refused() {
    let q = fixture::quickstart(None);
    let proxy = fixture::proxy_with_policy(&q, POLICY);
    let token = q
        .issuer
        .sign(&q.issuer.claims("sampler-1", json!({ "team": "sampler" })));

    let out = psql::run(
        proxy.addr,
        &token,
        "SELECT id FROM orders ORDER BY id;\n\
         SELECT count(*) FROM orders;\n\
         SELECT id FROM customers ORDER BY id;\n\
         BEGIN;\n\
         SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id;\n\
         SELECT 'in transaction';\n\
         COMMIT;\n",
    );
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            "10",
            "11", // cut to 2 of 4
            "4",  // one row: an aggregate over all of them
            "1",
            "2",
            "3",
            "4", // customers are not limited
            "BEGIN",
            "10",
            "11",
            "in transaction",
            "COMMIT"
        ],
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr
            .matches("cut to 2 rows per statement by rule `sampler_reads`")
            .count(),
        2,
        "{}",
        out.stderr
    );

    // Carrying the rows elsewhere would lift the limit: refused.
    let out = psql::run(
        proxy.addr,
        &token,
        "INSERT INTO orders SELECT id + 100, customer_id, total_cents, status FROM orders;\n\
         COPY (SELECT id FROM orders) TO STDOUT;\n",
    );
    assert!(
        out.stderr.contains("reading it is limited to 2 rows")
            && out.stderr.contains("COPY of relations limited to 2 rows"),
        "{}",
        out.stderr
    );
    assert_eq!(
        q.pg.superuser_sql(
            clsf_tests::postgres::DATABASE,
            "SELECT count(*) FROM orders"
        )
        .trim(),
        "4"
    );

    // One portal fetched a row at a time: 2 rows in all, then it ends.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows = runtime.block_on(async {
        let (mut client, connection) =
            clsf_tests::client::config(proxy.addr.port(), "sampler", &token)
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        let tx = client.transaction().await.unwrap();
        let stmt = tx
            .prepare("SELECT id FROM orders ORDER BY id")
            .await
            .unwrap();
        let portal = tx.bind(&stmt, &[]).await.unwrap();
        let mut all = Vec::new();
        for _ in 0..10 {
            let batch = tx.query_portal(&portal, 1).await.unwrap();
            if batch.is_empty() {
                break;
            }
            all.extend(batch.iter().map(|r| r.get::<_, i32>(0)));
        }
        tx.commit().await.unwrap();
        all
    });
    assert_eq!(rows, [10, 11]);
}
