//! The audit trail's cost per statement: an event made (with its time) and
//! appended to a mapped trail (serialised, chained, hashed, copied).
//! `cargo bench -p clsf-runtime --bench audit`.

use std::hint::black_box;

use clsf_runtime::audit::{AuditLog, Event, Options};
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
}

/// Every benchmark of this file (what `criterion_group!` would generate,
/// written out so it can carry a doc comment).
fn benches() {
    let mut c = Criterion::default().configure_from_args();
    append(&mut c);
}
criterion_main!(benches);
