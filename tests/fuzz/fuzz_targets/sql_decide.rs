//! Any statement text: the engine decides without panicking, and every
//! rewrite of a statement sqlparser parses parses again. The identity is the quickstart's `ci`
//! with a usage grant added, so the scope resolver and the grant path run
//! on every statement that touches `customers`, and a row filter on
//! `orders`, so the barrier's copied conditions run on every statement
//! that touches it.
#![no_main]

use std::sync::OnceLock;

use clsf_compiler::Engine;
use clsf_compiler::engine::{Identity, PrincipalAccess, Verdict};
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::resolve;
use clsf_compiler::schema;
use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn setup() -> &'static (Engine, std::sync::Arc<PrincipalAccess>) {
    static CELL: OnceLock<(Engine, std::sync::Arc<PrincipalAccess>)> = OnceLock::new();
    CELL.get_or_init(|| {
        let schema = schema::lock::from_str(include_str!("../../../examples/quickstart/schema.lock.json")).expect("lock");
        let mut parsed = Parsed::default();
        policy::add_source(&mut parsed, "q.clsf", include_str!("../../../examples/quickstart/policy/quickstart.clsf"));
        policy::add_source(
            &mut parsed,
            "grant.clsf",
            "rule ci_match for ci {\n  allow join, filter, aggregate column public.customers.ssn\n  \
             filter table public.orders where \"customer_id = {claim.customer}\"\n}\n",
        );
        let (plan, _) = resolve::compile(&parsed, &schema);
        let engine = Engine::new(plan.expect("quickstart compiles")).expect("cedar");
        let access = engine.access_for(&Identity { subject: "f".into(), groups: vec!["ci".into()] });
        (engine, access)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    let (engine, access) = setup();
    let claims = serde_json::json!({ "customer": 1 });
    if let Verdict::Rewrite(out) = engine.decide_with_claims(access, Some(&claims), sql).verdict {
        // A form sqlparser does not parse (`FOR NO KEY UPDATE`, …) is
        // decided as one it does and forwarded in the client's own form,
        // which the rewrite keeps: only rewrites of parsed text must parse.
        if Parser::parse_sql(&PostgreSqlDialect {}, sql).is_ok() {
            assert!(Parser::parse_sql(&PostgreSqlDialect {}, &out).is_ok(), "rewrite does not parse: {out}");
        }
    }
});
