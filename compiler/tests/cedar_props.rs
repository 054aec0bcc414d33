//! Property: every policy the generator can write that compiles yields Cedar
//! policies that pass the validator in strict mode (Engine::new validates),
//! and deciding statements with them never panics.

use clsf_compiler::engine::Identity;
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::schema;
use clsf_compiler::{Engine, resolve};
use proptest::prelude::*;

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        prop_oneof![Just("<="), Just(">="), Just("<"), Just(">"), Just("")].prop_flat_map(|c| {
            prop_oneof![
                Just("public"),
                Just("internal"),
                Just("confidential"),
                Just("restricted")
            ]
            .prop_map(move |l| format!(" {c} {l}"))
        }),
        Just(" [pii]".to_owned()),
        Just(" [pci, secrets]".to_owned()),
        Just(" table public.orders".to_owned()),
        Just(" column public.customers.email".to_owned()),
    ]
}

fn clause() -> impl Strategy<Value = String> {
    prop_oneof![
        (target()).prop_map(|t| format!("allow{t}")),
        (target()).prop_map(|t| format!("mask{t}")),
        (target()).prop_map(|t| format!("deny{t}")),
        (target()).prop_map(|t| format!("mask{t} with redact")),
        (target()).prop_map(|t| format!("allow write, export{t}")),
        (target()).prop_map(|t| format!("deny write{t}")),
        Just("allow ddl, admin".to_owned()),
        Just("deny admin".to_owned()),
        Just("allow function md5, lower".to_owned()),
        Just("deny function pg_sleep".to_owned()),
        (target()).prop_map(|t| format!("require approval{t} by g1 ttl 5m")),
        (target()).prop_map(|t| format!("require approval write{t} by g2 scope session 1h")),
        (target()).prop_map(|t| format!("allow{t} override because \"reviewed\"")),
        Just("filter table public.orders where \"customer_id = {claim.c}\"".to_owned()),
        (target()).prop_map(|t| format!("limit 10 rows{t}")),
    ]
}

fn policy() -> impl Strategy<Value = String> {
    prop::collection::vec((0usize..3, any::<bool>(), prop::collection::vec(clause(), 0..6)), 0..5).prop_map(
        |rules| {
            let mut p = String::from(
                "use std::pii\nuse std::secrets\ngroup g0 { claim sub == \"0\" }\ngroup g1 { claim sub == \"1\" }\ngroup g2 = g0 or not g1\n",
            );
            for (i, (g, observe, clauses)) in rules.into_iter().enumerate() {
                let observe = if observe { " observe" } else { "" };
                p.push_str(&format!("rule r{i} for g{g}{observe} {{\n"));
                for c in clauses {
                    p.push_str(&format!("  {c}\n"));
                }
                p.push_str("}\n");
            }
            p
        },
    )
}

const STATEMENTS: &[&str] = &[
    "SELECT * FROM customers",
    "SELECT email, name FROM customers WHERE id = 1",
    "SELECT o.status FROM orders o JOIN customers c ON c.id = o.customer_id",
    "UPDATE orders SET status = 'x'",
    "CREATE TABLE t (x int)",
    "SELECT md5(name), pg_sleep(0) FROM customers",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn generated_cedar_validates_strictly(text in policy()) {
        let schema = schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json")).unwrap();
        let mut parsed = Parsed::default();
        policy::add_source(&mut parsed, "p.clsf", &text);
        policy::resolve_imports(&mut parsed);
        let (plan, diags) = resolve::compile(&parsed, &schema);
        // Some generated combinations are rightly rejected (ambiguous masks,
        // ddl on a column…); those say so with an error.
        let Some(plan) = plan else {
            prop_assert!(diags.iter().any(|d| d.is_error()));
            return Ok(());
        };
        let engine = Engine::new(plan);
        prop_assert!(engine.is_ok(), "{}\n{:?}", text, engine.err());
        let engine = engine.unwrap();
        for groups in [vec![], vec!["g0".to_owned()], vec!["g1".to_owned(), "g2".to_owned()]] {
            let access = engine.access_for(&Identity { subject: "p".into(), groups });
            for sql in STATEMENTS {
                let _ = engine.decide(&access, sql);
            }
        }
    }
}
