//! `clsfc check` at scale: parse and check a generated policy (the standard
//! library's patterns, 500 table classifications, 20 groups and rules) over
//! a generated 100,000-column schema (1,000 tables × 100 columns with names
//! that personal-data and secret patterns match). Run with
//! `cargo bench -p clsf-compiler --bench check`.

use std::hint::black_box;

use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::resolve;
use clsf_compiler::schema::{Column, Relation, RelationKind, Schema};
use criterion::{Criterion, criterion_main};

const NAMES: &[(&str, &str)] = &[
    ("id", "bigint"),
    ("email", "character varying(255)"),
    ("phone_number", "text"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("created_at", "timestamp with time zone"),
    ("updated_at", "timestamp with time zone"),
    ("encrypted_password", "character varying"),
    ("api_token_digest", "text"),
    ("last_sign_in_ip", "inet"),
    ("birth_date", "date"),
    ("status", "integer"),
    ("description", "text"),
    ("amount", "numeric(12,2)"),
    ("metadata", "jsonb"),
];

fn schema() -> Schema {
    let relations = (0..1000)
        .map(|t| Relation {
            schema: if t % 10 == 0 {
                "audit".into()
            } else {
                "public".into()
            },
            name: format!("table_{t:04}"),
            kind: RelationKind::Table,
            columns: (0..100)
                .map(|c| {
                    let (name, ty) = NAMES[c % NAMES.len()];
                    Column {
                        name: format!("{name}_{c}").replace(&format!("id_{c}"), &format!("id{c}")),
                        type_name: ty.into(),
                        nullable: true,
                        base_type: None,
                    }
                })
                .collect(),
            ..Relation::default()
        })
        .collect();
    Schema::new("15".into(), relations)
}

fn policy() -> String {
    let mut p = String::from("use std::pii\nuse std::secrets\nunclassified restricted\n\n");
    for t in (1..1000).step_by(2) {
        if t % 10 == 0 {
            continue;
        }
        p.push_str(&format!(
            "table public.table_{t:04} {{\n  id0: internal\n  status_11: public\n  description_12: internal mask redact\n}}\n"
        ));
    }
    for g in 0..20 {
        p.push_str(&format!(
            "group g{g} {{\n  issuer \"https://issuer.example\"\n  claim repository == \"acme/repo-{g}\"\n}}\n\
             rule r{g} for g{g} {{\n  allow <= internal\n  mask  confidential\n  mask  [pii] with hash\n  deny  restricted\n  allow write table public.table_{:04}\n}}\n",
            g * 2 + 1
        ));
    }
    p
}

fn bench(c: &mut Criterion) {
    let schema = schema();
    let text = policy();
    let columns: usize = schema.relations.iter().map(|r| r.columns.len()).sum();
    assert_eq!(columns, 100_000);
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    group.bench_function("parse_and_check_100k_columns", |b| {
        b.iter(|| {
            let mut parsed = Parsed::default();
            policy::add_source(&mut parsed, "policy.clsf", black_box(&text));
            policy::resolve_imports(&mut parsed);
            let (plan, diags) = resolve::compile(&parsed, &schema);
            assert!(plan.is_some(), "{diags:?}");
            black_box(plan)
        });
    });
    group.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
