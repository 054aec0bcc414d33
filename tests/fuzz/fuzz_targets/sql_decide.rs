//! Any statement text: the engine decides without panicking, and every
//! rewrite of a statement sqlparser parses parses again. The identity is
//! `ci` of the quickstart policy plus `tests/fuzz/sql_decide.clsf` (a usage
//! grant and a row filter). The target loads that policy compiled, as a
//! bundle's `engine-plan.json`, so the fuzz build needs the engine only,
//! not the compiler; compiler/tests/bundle.rs checks the file is what the
//! compiler makes of the sources today.
#![no_main]

use std::sync::{Arc, OnceLock};

use clsf_engine::{Engine, Identity, Plan, PrincipalAccess, Verdict};
use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn setup() -> &'static (Engine, Arc<PrincipalAccess>) {
    static CELL: OnceLock<(Engine, Arc<PrincipalAccess>)> = OnceLock::new();
    CELL.get_or_init(|| {
        let plan =
            clsf_engine::plan_file::from_json(include_str!("../sql_decide.engine-plan.json"))
                .expect("engine plan");
        let engine = Engine::new(plan).expect("cedar");
        let access = engine.access_for(&Identity {
            subject: "f".into(),
            groups: vec!["ci".into()],
        });
        (engine, access)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let (engine, access) = setup();
    let claims = serde_json::json!({ "customer": 1 });
    if let Verdict::Rewrite(out) = engine
        .decide_with_claims(access, Some(&claims), sql)
        .verdict
    {
        // A form sqlparser does not parse (`FOR NO KEY UPDATE`, …) is
        // decided as one it does and forwarded in the client's own form,
        // which the rewrite keeps: only rewrites of parsed text must parse.
        if Parser::parse_sql(&PostgreSqlDialect {}, sql).is_ok() {
            assert!(
                Parser::parse_sql(&PostgreSqlDialect {}, &out).is_ok(),
                "rewrite does not parse: {out}"
            );
        }
    }
});
