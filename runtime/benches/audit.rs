//! The audit trail's cost per statement: an event made (with its time) and
//! appended to a mapped trail (serialised, chained, hashed, copied).
//! `cargo bench -p clsf-runtime --bench audit`.

use std::hint::black_box;

use clsf_engine::ColumnUse;
use clsf_runtime::audit::{AuditLog, Columns, Completion, Event, Options};
use criterion::{Criterion, criterion_main};

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.jsonl"), Options::default()).unwrap();
    c.bench_function("a statement event made and appended (mapped)", |b| {
        b.iter(|| {
            let mut event = Event::new("statement", 7);
            event.statement = Some("SELECT name, email FROM customers WHERE id = 1");
            event.decision = Some("mask");
            black_box(log.append(&event).unwrap())
        })
    });
    // What the proxy writes for `pgbench -S` through a token identity:
    // subject, groups, the decision's policies, rules and columns, and the
    // session's last statement's completion (records.rs).
    let groups = vec!["reporter".to_owned()];
    let policies = vec!["reports.0".to_owned(), "reports.1".to_owned()];
    let rules = vec!["reports".to_owned()];
    let column = |name: &str| ColumnUse {
        column: format!("public.pgbench_accounts.{name}"),
        label: "internal".to_owned(),
        access: "clear".to_owned(),
    };
    let columns = vec![column("aid"), column("abalance")];
    let completed = vec![Completion {
        statement_seq: 41,
        outcome: "ok",
        rows: 1,
        duration_ms: 0.184,
    }];
    let pgbench_event = || {
        let mut event = Event::new("statement", 7);
        event.subject = Some("reporter-7");
        event.groups = Some(&groups);
        event.statement = Some("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;");
        event.decision = Some("allow");
        event.policies = Some(&policies);
        event.rules = Some(&rules);
        event.columns = Some(Columns(&columns));
        event.completed = Some(&completed);
        event
    };
    c.bench_function(
        "a pgbench statement event made and appended (mapped)",
        |b| b.iter(|| black_box(log.append(&pgbench_event()).unwrap())),
    );
    // The same event's JSON alone, as the trail writes it and through
    // serde_json's derived serializer (what it wrote before), interleaved.
    let event = pgbench_event();
    let mut out = Vec::with_capacity(1024);
    let mut group = c.benchmark_group("a pgbench statement event's JSON");
    group.bench_function("written by the trail", |b| {
        b.iter(|| {
            out.clear();
            black_box(&event).write_json(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("through serde_json", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&event)).unwrap();
            black_box(out.len())
        })
    });
    group.finish();
}

/// Every benchmark of this file (what `criterion_group!` would generate,
/// written out so it can carry a doc comment).
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    append(&mut c);
}
criterion_main!(benches);
