//! The engine's per-statement cost: parse, analyse, decide and (for masked
//! identities) rewrite, on the quickstart policy. Run with
//! `cargo bench -p clsf-compiler --bench decide`.

use std::hint::black_box;

use clsf_compiler::engine::Identity;
use clsf_compiler::policy::{self, Parsed};
use clsf_compiler::resolve;
use clsf_compiler::schema;
use clsf_compiler::{Engine, cedar};
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
    // Repeated texts hit the per-group-set decision cache; a counter in a
    // literal makes every text new but keeps its shape (the shape cache);
    // a counter in an alias makes every shape new (the full analysis).
    c.bench_function("decide/clear identity/point query/repeated", |b| {
        b.iter(|| e.decide_shared(&dba, None, black_box(point)))
    });
    c.bench_function(
        "decide/masked identity/unprotected point query/repeated",
        |b| b.iter(|| e.decide_shared(&ci, None, black_box(point))),
    );
    let mut n = 0u64;
    c.bench_function(
        "decide/masked identity/unprotected point query/same shape",
        |b| {
            b.iter(|| {
                n += 1;
                e.decide_shared(
                    &ci,
                    None,
                    &format!("SELECT status, total_cents FROM orders WHERE id = {n}"),
                )
            })
        },
    );
    c.bench_function("decide/masked identity/unprotected point query/new", |b| {
        b.iter(|| {
            n += 1;
            e.decide_shared(&ci, None, &new_point(n))
        })
    });
    c.bench_function("decide/masked identity/join rewritten/same shape", |b| {
        b.iter(|| {
            n += 1;
            e.decide_shared(&ci, None, &format!("{join} OFFSET {n}"))
        })
    });
    c.bench_function("decide/masked identity/join rewritten/new", |b| {
        b.iter(|| {
            n += 1;
            e.decide_shared(&ci, None, &new_join(n))
        })
    });
    percentiles(&e, &ci, point, join);
    // What a policy reload costs after the compile: the Cedar policies
    // generated, parsed and validated, and the entities built.
    let plan = e.plan().clone();
    c.bench_function("engine/new (quickstart)", |b| {
        b.iter_batched(
            || plan.clone(),
            |plan| Engine::new(plan).expect("cedar"),
            BatchSize::SmallInput,
        )
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

/// A point query no text or shape before it had (a fresh alias).
fn new_point(n: u64) -> String {
    format!("SELECT o{n}.status, o{n}.total_cents FROM orders o{n} WHERE o{n}.id = 10")
}

/// A masked join no text or shape before it had.
fn new_join(n: u64) -> String {
    format!(
        "SELECT c{n}.name, c{n}.email, o.total_cents FROM customers c{n} JOIN orders o ON o.customer_id = c{n}.id WHERE o.status = 'shipped' ORDER BY o.id LIMIT 10"
    )
}

/// p50 and p99 of single calls (criterion reports means and medians of
/// batches): one Cedar authorization request, and the engine's decision for
/// a repeated and for a new statement.
fn percentiles(e: &Engine, ci: &clsf_compiler::engine::PrincipalAccess, point: &str, join: &str) {
    use cedar_policy::{Authorizer, Context, Entity, Request};
    const N: usize = 20_000;
    let report = |name: &str, mut samples: Vec<std::time::Duration>| {
        samples.sort();
        println!(
            "percentiles/{name}: p50 {:.2} us, p99 {:.2} us ({N} calls)",
            samples[N / 2].as_secs_f64() * 1e6,
            samples[N * 99 / 100].as_secs_f64() * 1e6
        );
    };
    let time = |f: &mut dyn FnMut(usize)| -> Vec<std::time::Duration> {
        (0..N)
            .map(|i| {
                let t = std::time::Instant::now();
                f(i);
                t.elapsed()
            })
            .collect()
    };
    let principal = cedar::uid("Identity", "session");
    let identity = Entity::new_no_attrs(
        principal.clone(),
        [cedar::uid("Group", "ci")].into_iter().collect(),
    );
    let entities = e
        .entities()
        .clone()
        .add_entities([identity], None)
        .expect("entities");
    let authorizer = Authorizer::new();
    let request = Request::new(
        principal,
        cedar::uid("Action", cedar::ACTION_READ),
        cedar::column_uid("public.customers", "email"),
        Context::empty(),
        None,
    )
    .expect("request");
    report(
        "cedar/one authorization request",
        time(&mut |_| {
            black_box(authorizer.is_authorized(&request, e.policy_set(), &entities));
        }),
    );
    report(
        "decide/point query/repeated",
        time(&mut |_| {
            black_box(e.decide_shared(ci, None, point));
        }),
    );
    report(
        "decide/point query/same shape, new literal",
        time(&mut |i| {
            black_box(e.decide_shared(
                ci,
                None,
                &format!(
                    "SELECT status, total_cents FROM orders WHERE id = {}",
                    i + 1_000_000
                ),
            ));
        }),
    );
    report(
        "decide/point query/new shape",
        time(&mut |i| {
            black_box(e.decide_shared(ci, None, &new_point(i as u64 + 1_000_000)));
        }),
    );
    report(
        "decide/join rewritten/same shape, new literal",
        time(&mut |i| {
            black_box(e.decide_shared(ci, None, &format!("{join} OFFSET {}", i + 1_000_000)));
        }),
    );
    report(
        "decide/join rewritten/new shape",
        time(&mut |i| {
            black_box(e.decide_shared(ci, None, &new_join(i as u64 + 1_000_000)));
        }),
    );
}

/// Every benchmark of this file (what `criterion_group!` would generate,
/// written out so it can carry a doc comment).
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}
criterion_main!(benches);
