//! Any statement text: the engine decides without panicking, and every
//! rewrite of a statement sqlparser parses parses again. The identity is
//! `ci` of the quickstart policy plus `tests/fuzz/sql_decide.clsf` (a usage
//! grant and a row filter). The target loads that policy compiled, as a
//! bundle's `engine-plan.json`, so the fuzz build needs the engine only,
//! not the compiler; compiler/tests/bundle.rs checks the file is what the
//! compiler makes of the sources today. Inputs whose last byte is odd are
//! decided as before any comparison of the live catalog with the lock.
#![no_main]

use std::sync::{Arc, OnceLock};

use clsf_engine::{Drift, Engine, Identity, PrincipalAccess, Verdict};
use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

type Decider = (Engine, Arc<PrincipalAccess>);

/// The engine as the proxy runs it once the live catalog agrees with the
/// lock, and the same engine before any comparison (`Drift::Unknown`:
/// every relation is read through the lock's columns and writes may not
/// take one whole), each with `ci`'s access.
fn setup() -> &'static [Decider; 2] {
    static CELL: OnceLock<[Decider; 2]> = OnceLock::new();
    CELL.get_or_init(|| {
        let plan =
            clsf_engine::plan_file::from_json(include_str!("../sql_decide.engine-plan.json"))
                .expect("engine plan");
        let engine = Engine::new(plan).expect("cedar");
        let drifted = engine.with_drift(Drift::Unknown);
        let ci = Identity {
            subject: "f".into(),
            groups: vec!["ci".into()],
        };
        let access = engine.access_for(&ci);
        let drifted_access = drifted.access_for(&ci);
        [(engine, access), (drifted, drifted_access)]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    // The input's last byte picks the engine, so the corpus keeps both.
    let (engine, access) = &setup()[usize::from(data.last().is_some_and(|b| b & 1 == 1))];
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
