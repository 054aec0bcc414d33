//! Engine table files: `engine_cases/*.sql` hold statements, each decided
//! for the identity named by the `-- as GROUPS` line above it (no groups:
//! an identity in none), on the quickstart policy (or, after `-- policy: ci
//! may also change the schema`, with `allow ddl` for `ci`; after `-- policy:
//! ci sees one customer's orders`, with a row filter on `orders` bound to
//! the claim `customer` = 1). A file that starts with `-- policy: rules`
//! is decided on the policy of `rules.rs` instead, each statement for the
//! identity whose verified claims the `-- claims {json}` line above it
//! gives (its groups follow from them, and row filters bind them). The snapshot of
//! each file holds every whole verdict: the statement forwarded as is, the
//! whole rewritten text, or the refusal with SQLSTATE, message and hint.

use clsf_compiler::engine::identity::groups_for;
use clsf_compiler::engine::{Drift, Identity, Verdict};
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::schema;
use clsf_compiler::{Engine, resolve};

fn engine(ddl: bool, filter: bool) -> Engine {
    let mut text = include_str!("../../examples/quickstart/policy/quickstart.clsf").to_owned();
    if ddl {
        text = text.replace(
            "  allow write table public.orders",
            "  allow write table public.orders\n  allow ddl",
        );
    }
    if filter {
        text = text.replace(
            "  allow write table public.orders",
            "  allow write table public.orders\n  filter table public.orders where \"customer_id = {claim.customer}\"",
        );
    }
    let schema =
        schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json")).unwrap();
    let mut parsed = Parsed::default();
    policy::add_source(&mut parsed, "quickstart.clsf", &text);
    let (plan, diags) = resolve::compile(&parsed, &schema);
    assert!(diags.is_empty(), "{diags:?}");
    Engine::new(plan.unwrap()).unwrap()
}

/// `e` deciding on a live database whose `orders` has a column `extra`
/// that the lock lacks.
fn drifted(e: &Engine) -> Engine {
    let schema = &e.plan().schema;
    let mut live: Vec<(&str, &str, &str)> = schema
        .relations
        .iter()
        .filter(|r| r.schema == "public")
        .flat_map(|r| {
            r.columns
                .iter()
                .map(|c| (r.schema.as_str(), r.name.as_str(), c.name.as_str()))
        })
        .collect();
    live.push(("public", "orders", "extra"));
    let drift = Drift::compare(schema, live);
    assert!(drift.any());
    e.with_drift(drift)
}

fn verdict(v: Verdict) -> String {
    match v {
        Verdict::Forward => "=> forward".to_owned(),
        Verdict::Rewrite(text) => format!("=> rewrite\n{text}"),
        Verdict::Deny(d) => format!(
            "=> deny {}\n{}{}",
            d.sqlstate,
            d.message,
            d.hint.map(|h| format!("\nhint: {h}")).unwrap_or_default()
        ),
        Verdict::Hold(h) => format!("=> hold\n{h:?}"),
    }
}

/// Decides every statement of one file; returns the snapshot text.
fn run(text: &str) -> String {
    if text.starts_with("-- policy: rules") {
        return run_by_claims(text);
    }
    let filter = text.contains("-- policy: ci sees one customer's orders");
    let mut e = engine(
        text.contains("-- policy: ci may also change the schema"),
        filter,
    );
    if text.contains("-- policy: the live orders gained a column") {
        e = drifted(&e);
    }
    let claims = serde_json::json!({ "customer": 1 });
    let mut groups: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut statement = String::new();
    let flush = |statement: &mut String, groups: &[String], out: &mut String| {
        let sql = statement.trim();
        if sql.is_empty() {
            return;
        }
        let identity = Identity {
            subject: "t".into(),
            groups: groups.to_vec(),
        };
        let access = e.access_for(&identity);
        let v = e
            .decide_with_claims(&access, filter.then_some(&claims), sql)
            .verdict;
        out.push_str(&format!(
            "-- as {}\n{sql}\n{}\n\n",
            groups.join(" "),
            verdict(v)
        ));
        statement.clear();
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("-- as") {
            flush(&mut statement, &groups, &mut out);
            groups = rest.split_whitespace().map(str::to_owned).collect();
        } else if line.starts_with("--") {
        } else if line.trim().is_empty() {
            flush(&mut statement, &groups, &mut out);
        } else {
            statement.push_str(line);
            statement.push('\n');
        }
    }
    flush(&mut statement, &groups, &mut out);
    out
}

/// A `-- policy: rules` file: each statement decided for the claims of
/// the `-- claims` line above it, on the policy of `rules.rs`.
fn run_by_claims(text: &str) -> String {
    let e = super::rules::engine();
    let mut claims = serde_json::Value::Null;
    let mut out = String::new();
    let mut statement = String::new();
    let flush = |statement: &mut String, claims: &serde_json::Value, out: &mut String| {
        let sql = statement.trim();
        if sql.is_empty() {
            return;
        }
        let identity = Identity {
            subject: "t".into(),
            groups: groups_for(e.plan(), claims),
        };
        let access = e.access_for(&identity);
        let v = e.decide_with_claims(&access, Some(claims), sql).verdict;
        out.push_str(&format!(
            "-- claims {claims} (groups: {})\n{sql}\n{}\n\n",
            identity.groups.join(" "),
            verdict(v)
        ));
        statement.clear();
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("-- claims") {
            flush(&mut statement, &claims, &mut out);
            claims = serde_json::from_str(rest.trim()).expect("-- claims takes a JSON object");
        } else if line.starts_with("--") {
        } else if line.trim().is_empty() {
            flush(&mut statement, &claims, &mut out);
        } else {
            statement.push_str(line);
            statement.push('\n');
        }
    }
    flush(&mut statement, &claims, &mut out);
    out
}

#[test]
fn engine_table_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine_cases");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        insta::assert_snapshot!(name, run(&text));
    }
}
