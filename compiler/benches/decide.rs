//! The engine's per-statement cost: parse, analyse, decide and (for masked
//! identities) rewrite, on the quickstart policy. Run with
//! `cargo bench -p clsf-compiler --bench decide`.

use std::hint::black_box;

use clsf_compiler::Engine;
use clsf_compiler::engine::Identity;
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::resolve;
use clsf_compiler::schema;
use criterion::{BatchSize, Criterion, criterion_main};

fn engine() -> Engine {
    let schema = schema::lock::from_str(include_str!("../../examples/quickstart/schema.lock.json"))
        .expect("lock");
    let mut parsed = Parsed::default();
    policy::add_source(
        &mut parsed,
        "q.clsf",
        include_str!("../../examples/quickstart/policy/quickstart.clsf"),
    );
    let (plan, _) = resolve::compile(&parsed, &schema);
    Engine::new(plan.expect("quickstart compiles")).expect("cedar")
}

fn bench(c: &mut Criterion) {
    let e = engine();
    let ci = e.access_for(&Identity {
        subject: "ci".into(),
        groups: vec!["ci".into()],
    });
    let dba = e.access_for(&Identity {
        subject: "dba".into(),
        groups: vec!["dba-bot".into()],
    });
    let point = "SELECT status, total_cents FROM orders WHERE id = 10";
    let join = "SELECT c.name, c.email, o.total_cents FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.status = 'shipped' ORDER BY o.id LIMIT 10";
    c.bench_function("decide/clear identity/point query", |b| {
        b.iter(|| e.decide(&dba, black_box(point)))
    });
    c.bench_function("decide/masked identity/unprotected point query", |b| {
        b.iter(|| e.decide(&ci, black_box(point)))
    });
    c.bench_function("decide/masked identity/join rewritten", |b| {
        b.iter(|| e.decide(&ci, black_box(join)))
    });
    // A fresh engine per iteration, so the cached table is never reused;
    // only the Cedar evaluation over every column is timed.
    c.bench_function("access table/new group set", |b| {
        b.iter_batched(
            engine,
            |fresh| {
                fresh.access_for(&Identity {
                    subject: "ci".into(),
                    groups: vec!["ci".into()],
                })
            },
            BatchSize::SmallInput,
        )
    });
}

/// Every benchmark of this file (what `criterion_group!` would generate,
/// written out so it can carry a doc comment).
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}
criterion_main!(benches);
