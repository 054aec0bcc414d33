//! The MCP listener, driven by the official MCP SDK's client (TypeScript,
//! streamable HTTP) as an agent whose token puts it in a group with masks,
//! a denied column, a row filter and a row limit: it is offered the tools,
//! reads its effective policy, lists and describes tables, queries (masked
//! values, filtered rows, the row cap), is refused with words it can act
//! on, and cannot escape the one-read-statement rule.

use clsf_tests::fixture;
use clsf_tests::programs;
use clsf_tests::proxy::Proxy;
use serde_json::{Value, json};

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group agent {
  issuer "https://issuer.clsf.example"
  claim team == "agent"
}

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential mask last(4)
  ssn:         restricted
}
table public.orders: internal { status: public }
table public.secrets: restricted

rule agent_reads for agent {
  allow <= internal
  mask  confidential
  deny  restricted
  filter table public.orders where "customer_id = {claim.customer}"
  limit 3 rows table public.customers
}

group reporting { account "reporting" }
rule reporting_reads for reporting {
  allow <= internal
  mask  confidential
}

group writer {
  issuer "https://issuer.clsf.example"
  claim team == "writer"
}
rule writer_rule for writer {
  allow <= internal
  mask  confidential
  deny  restricted
  allow write table public.orders
}
"#;

fn agent(url: &str, token: &str, calls: &Value, bridge: bool) -> Value {
    programs::mcp_agent(url, token, calls, bridge)
}

#[test]
fn an_agent_sees_what_the_policy_lets_it_see_through_mcp() {
    let q = fixture::quickstart(None);
    q.pg.superuser_sql(
        "shop",
        "CREATE TABLE secrets (token text); INSERT INTO secrets VALUES ('CANARY-TOKEN'); \
         GRANT SELECT ON secrets TO PUBLIC;",
    );
    let config = fixture::config_with_policy(&q, POLICY);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[[identity.account]]\nname = \"reporting\"\nscram_verifier = \"{}\"\n\n[mcp]\nlisten = \"127.0.0.1:0\"\nmax_rows = 50\n",
            clsf_runtime::auth::scram::make_verifier("report-pw")
        ),
    )
    .unwrap();
    let proxy = Proxy::start(&config);
    let url = format!("http://{}/mcp", proxy.mcp.expect("MCP listener"));
    let token = q.issuer.sign(
        &q.issuer
            .claims("agent-7", json!({ "team": "agent", "customer": 1 })),
    );

    let calls = json!([
        { "tool": "list_tables" },
        { "tool": "describe_table", "args": { "table": "customers" } },
        { "tool": "query", "args": { "sql": "SELECT id, email, card_number FROM customers ORDER BY id" } },
        { "tool": "query", "args": { "sql": "SELECT id, status FROM orders ORDER BY id" } },
        { "tool": "query", "args": { "sql": "SELECT ssn FROM customers" } },
        { "tool": "query", "args": { "sql": "COMMIT; DELETE FROM orders" } },
        { "tool": "query", "args": { "sql": "/* read */ DELETE FROM orders" } },
        { "tool": "query", "args": { "sql": "WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d" } },
        { "tool": "query", "args": { "sql": "SELECT id FROM orders; SELECT ssn FROM customers" } },
        { "tool": "query", "args": { "sql": "SELECT g FROM generate_series(1, 500) g", "max_rows": 5 } },
        { "tool": "explain", "args": { "sql": "SELECT email, ssn FROM customers" } },
        { "tool": "describe_table", "args": { "table": "public.secrets" } },
        { "tool": "query", "args": { "sql": "SELECT token FROM secrets" } },
    ]);
    let report = agent(&url, &token, &calls, false);
    let r = &report["results"];

    let tools: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tools, ["list_tables", "describe_table", "query", "explain"]);
    assert_eq!(report["resources"], json!(["clsf://policy"]));
    let policy = report["policy"].as_str().unwrap();
    assert!(
        policy.contains("`email` (text): masked (email)"),
        "{policy}"
    );
    assert!(policy.contains("`ssn` (character(11)): denied"), "{policy}");
    assert!(
        policy.contains("customer_id = {claim.customer}"),
        "{policy}"
    );
    assert!(policy.contains("at most 3 rows"), "{policy}");
    assert!(!policy.contains("secrets"), "{policy}");

    // Denied-only tables are not listed.
    let listed: Vec<&str> = r[0]["data"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["public.customers", "public.orders"], "{}", r[0]);
    let columns = &r[1]["data"]["columns"];
    let access = |name: &str| {
        columns
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["access"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(access("name"), "clear");
    assert_eq!(access("email"), "masked (email)");
    assert_eq!(access("card_number"), "masked (last(4))");
    assert_eq!(access("ssn"), "denied");
    assert_eq!(r[1]["data"]["row_limit"]["rows"], 3);

    // Masked values, and the policy's row limit (3) under the call's cap.
    assert!(!r[2]["isError"].as_bool().unwrap(), "{}", r[2]);
    assert_eq!(
        r[2]["data"]["rows"],
        json!([
            ["1", "****@example.com", "************1111"],
            ["2", "****@turing.org", "************0004"],
            ["3", "****@navy.mil", "***********0009"]
        ])
    );
    assert!(
        r[2]["data"]["notices"][0]
            .as_str()
            .unwrap()
            .contains("cut to 3 rows"),
        "{}",
        r[2]
    );
    // Only customer 1's orders.
    assert_eq!(
        r[3]["data"]["rows"],
        json!([["10", "shipped"], ["11", "pending"]])
    );
    // A refusal names the rule's effect and what the agent may do.
    assert!(r[4]["isError"].as_bool().unwrap());
    let refusal = r[4]["text"].as_str().unwrap();
    assert!(
        refusal.contains("42501") && refusal.contains("ssn"),
        "{refusal}"
    );
    assert!(
        refusal.contains("`customers.email` is masked (email) for you"),
        "{refusal}"
    );
    // No escape from one read statement.
    for (i, what) in [
        (5, "2 statements"),
        (6, "one read statement"),
        (7, "one read statement"),
        (8, "2 statements"),
    ] {
        assert!(r[i]["isError"].as_bool().unwrap(), "{}", r[i]);
        assert!(r[i]["text"].as_str().unwrap().contains(what), "{}", r[i]);
    }
    // The call's row cap, with truncation said.
    assert_eq!(r[9]["data"]["row_count"], 5);
    assert_eq!(r[9]["data"]["truncated"], true);
    // explain: refused, and why, without running.
    assert_eq!(r[10]["data"]["verdict"], "refused", "{}", r[10]);
    assert!(
        r[10]["data"]["detail"]["message"]
            .as_str()
            .unwrap()
            .contains("ssn")
    );
    // A denied-only table is as unknown to describe and refused to query.
    assert!(r[11]["isError"].as_bool().unwrap());
    assert!(r[12]["isError"].as_bool().unwrap());

    // Nothing protected in any answer, and the orders are all still there.
    let all = report.to_string();
    for secret in [
        "ada@example.com",
        "123-45-6789",
        "4111111111111111",
        "CANARY",
        "cancelled",
    ] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    assert_eq!(
        q.pg.superuser_sql("shop", "SELECT count(*) FROM orders")
            .trim(),
        "4"
    );

    // Each query ran as a session of the agent, recorded with its tool and
    // call id before it ran.
    let events = proxy.audit_events();
    let connects: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "connect" && e["via"]["mcp"]["tool"] == "query")
        .collect();
    // The three that passed the engine: customers, orders, the series.
    assert_eq!(connects.len(), 3, "{events:#?}");
    assert!(connects.iter().all(|e| e["subject"] == "agent-7"));
    assert!(connects.iter().all(|e| e["via"]["mcp"]["call"].is_number()));
    assert!(events.iter().any(|e| {
        e["event"] == "statement"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("SELECT id, status FROM orders"))
    }));

    // The same agent over stdio, through the bridge: the same answers.
    let bridged = agent(&url, &token, &json!([calls[1], calls[3], calls[4]]), true);
    assert_eq!(bridged["tools"], report["tools"]);
    assert_eq!(bridged["results"][0], r[1]);
    assert_eq!(bridged["results"][1], r[3]);
    assert_eq!(bridged["results"][2], r[4]);

    // Writes only through `execute`, only for an identity a rule lets
    // write, one write statement per call.
    let writer = q
        .issuer
        .sign(&q.issuer.claims("writer-1", json!({ "team": "writer" })));
    let w = agent(
        &url,
        &writer,
        &json!([
            { "tool": "execute", "args": { "sql": "UPDATE orders SET status = 'late' WHERE id = 10 RETURNING id, status" } },
            { "tool": "execute", "args": { "sql": "COMMIT; DELETE FROM orders" } },
            { "tool": "execute", "args": { "sql": "SELECT id FROM orders" } },
            { "tool": "execute", "args": { "sql": "UPDATE customers SET name = 'x'" } },
            { "tool": "query", "args": { "sql": "SELECT status FROM orders WHERE id = 10" } },
        ]),
        false,
    );
    assert!(
        w["tools"].as_array().unwrap().contains(&json!("execute")),
        "{}",
        w["tools"]
    );
    let wr = &w["results"];
    assert_eq!(wr[0]["data"]["affected"], 1, "{}", wr[0]);
    assert_eq!(wr[0]["data"]["returning"], json!([["10", "late"]]));
    assert!(
        wr[1]["text"].as_str().unwrap().contains("2 statements"),
        "{}",
        wr[1]
    );
    assert!(
        wr[2]["text"].as_str().unwrap().contains("use `query`"),
        "{}",
        wr[2]
    );
    assert!(wr[3]["isError"].as_bool().unwrap(), "{}", wr[3]);
    assert!(
        wr[3]["text"].as_str().unwrap().contains("42501"),
        "{}",
        wr[3]
    );
    assert_eq!(wr[4]["data"]["rows"], json!([["late"]]));
    assert_eq!(
        q.pg.superuser_sql("shop", "SELECT count(*) FROM orders")
            .trim(),
        "4"
    );
    assert!(proxy.audit_events().iter().any(|e| e["event"] == "connect"
        && e["subject"] == "writer-1"
        && e["via"]["mcp"]["tool"] == "execute"));

    // A service account with its password (Basic), checked against its
    // SCRAM verifier; a wrong password is refused and audited.
    use base64::Engine;
    let basic = |pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("reporting:{pw}"))
        )
    };
    let report = agent(
        &url,
        &basic("report-pw"),
        &json!([{ "tool": "query", "args": { "sql": "SELECT email FROM customers WHERE id = 1" } }]),
        false,
    );
    assert_eq!(
        report["results"][0]["data"]["rows"],
        json!([["****@example.com"]])
    );
    let out = programs::node("mcp_agent.js")
        .args([url.as_str(), basic("wrong").as_str()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(proxy.audit_events().iter().any(|e| {
        e["event"] == "auth_failed"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("account reporting"))
    }));

    // Without a valid token: refused before any protocol runs, audited.
    let out = programs::node("mcp_agent.js")
        .args([url.as_str(), "not-a-token"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        proxy
            .audit_events()
            .iter()
            .any(|e| e["event"] == "auth_failed" && e["via"]["mcp"].is_object())
    );
}
