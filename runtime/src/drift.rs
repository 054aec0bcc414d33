//! The live catalog against the schema lock. A migration that adds a
//! column after the lock was pulled gives a relation a column the policy in
//! force has not classified; the engine reads such a relation through the
//! lock's columns once it knows (`clsf_engine::Drift`). This module tells
//! it: one catalog query when a policy comes into force (started, reloaded,
//! a bundle followed), when a session's schema statement commits
//! (`Schedule::wake`, at most every `MIN_GAP`), and every `[policy]
//! schema_check_seconds`.
//!
//! Until a comparison has succeeded for the policy in force, the engine
//! counts every relation as drifted (`Drift::Unknown`): every relation read
//! is rewritten, which costs time but leaks nothing. A failed comparison
//! keeps what was known.

use std::sync::Arc;
use std::time::Duration;

use clsf_engine::Drift;

use crate::audit::Event;
use crate::session::{Loaded, Shared};
use crate::upstream::Target;

/// How long a comparison may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How soon a comparison is tried again while nothing is known.
const RETRY_UNKNOWN: Duration = Duration::from_secs(1);
/// The least time between two comparisons asked for by sessions.
const MIN_GAP: Duration = Duration::from_millis(200);

/// Every column of the live relations in the given schemas. Dropped
/// columns and system columns are not columns a statement can name by
/// `*`; sequences' columns are fixed.
const LIVE_COLUMNS: &str = "SELECT n.nspname::text, c.relname::text, a.attname::text \
     FROM pg_catalog.pg_attribute a \
     JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE a.attnum > 0 AND NOT a.attisdropped \
     AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname = ANY($1)";

/// Why the live catalog could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Connecting or authenticating to the upstream server.
    #[error("cannot reach the upstream server: {0}")]
    Upstream(String),
    /// The catalog query.
    #[error("the catalog query failed: {0}")]
    Query(String),
    /// It took longer than the timeout.
    #[error("the comparison took longer than {} s", TIMEOUT.as_secs())]
    Timeout,
}

/// What the live database has against the lock of `loaded`'s plan.
async fn compare(target: &Target, loaded: &Loaded) -> Result<Drift, CheckError> {
    let stream = crate::upstream::open(target)
        .await
        .map_err(|e| CheckError::Upstream(e.reason))?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(&target.user)
        .password(&target.password)
        .dbname(&target.database)
        .application_name("clsf-schema-check");
    // The stream is already TLS when the upstream is configured so.
    let (client, connection) = config
        .connect_raw(stream, tokio_postgres::NoTls)
        .await
        .map_err(|e| CheckError::Upstream(e.to_string()))?;
    let connection = tokio::spawn(connection);
    let schema = &loaded.engine.plan().schema;
    let schemas = Drift::schemas(schema);
    let rows = client
        .query(LIVE_COLUMNS, &[&schemas])
        .await
        .map_err(|e| CheckError::Query(e.to_string()));
    drop(client);
    let _ = connection.await;
    let rows = rows?;
    let live: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    Ok(Drift::compare(
        schema,
        live.iter()
            .map(|(s, r, c)| (s.as_str(), r.as_str(), c.as_str())),
    ))
}

/// `next`, a policy about to come into force, with its engine told what
/// the live catalog has against its lock, so that it does not start by
/// counting every relation as drifted. For threads without a runtime (the
/// reload watcher's); elsewhere, or when the comparison fails, `next` is
/// returned as it is and the watcher compares once it is in force.
pub fn compared(shared: &Shared, mut next: Loaded) -> Loaded {
    if tokio::runtime::Handle::try_current().is_ok() {
        return next;
    }
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return next;
    };
    // The timer is made inside the runtime, which it needs.
    if let Ok(drift) = runtime.block_on(within_time(shared, &next)) {
        next.engine = next.engine.with_drift(drift);
    }
    next
}

/// Compares the live catalog with the lock of the policy in force and, if
/// what the engine knows changed, puts the same policy in force with the
/// new knowledge (a new generation: prepared statements are decided
/// again). Audited and logged when relations drift or stop drifting.
pub async fn check(shared: &Shared) -> Result<(), CheckError> {
    let base = shared.current();
    let drift = within_time(shared, &base).await?;
    apply(shared, &base, drift);
    Ok(())
}

/// [`compare`] within `TIMEOUT`; a failure is counted and logged.
async fn within_time(shared: &Shared, loaded: &Loaded) -> Result<Drift, CheckError> {
    match tokio::time::timeout(TIMEOUT, compare(&shared.upstream, loaded)).await {
        Ok(Ok(drift)) => Ok(drift),
        Ok(Err(e)) => Err(failed(shared, e)),
        Err(_) => Err(failed(shared, CheckError::Timeout)),
    }
}

fn failed(shared: &Shared, e: CheckError) -> CheckError {
    shared.metrics.schema_check_failures.inc();
    tracing::warn!(error = %e, "the live catalog was not compared with the schema lock");
    e
}

/// Puts `base`'s policy in force with `drift`, unless it is what the
/// engine knows already or another policy came into force meanwhile (its
/// own comparison follows).
fn apply(shared: &Shared, base: &Arc<Loaded>, drift: Drift) {
    let relations = match &drift {
        Drift::Added(added) => i64::try_from(added.len()).unwrap_or(i64::MAX),
        Drift::None => 0,
        Drift::Unknown => -1,
    };
    if base.engine.drift() == &drift {
        shared.metrics.schema_drift_relations.set(relations);
        return;
    }
    let described = drift.describe(&base.engine.plan().schema).join("; ");
    let mut slot = shared.loaded.write().unwrap_or_else(|e| e.into_inner());
    if !Arc::ptr_eq(&slot, base) {
        return;
    }
    let mut event = Event::new("schema_drift", 0);
    event.plan = Some(&base.plan_hash);
    let reason = if described.is_empty() {
        "the live relations have no column the schema lock lacks".to_owned()
    } else {
        format!("columns the schema lock lacks, read through the lock's columns: {described}")
    };
    event.reason = Some(&reason);
    let _ = shared.audit.append(&event);
    if described.is_empty() {
        // News only when relations had drifted; after a start or a reload
        // it is what is expected.
        if matches!(base.engine.drift(), Drift::Added(_)) {
            tracing::info!("the live catalog agrees with the schema lock again");
        } else {
            tracing::debug!("the live catalog agrees with the schema lock");
        }
    } else {
        tracing::warn!(
            relations = %described,
            "the live database has columns the schema lock lacks; they are not read until the lock is pulled again and the policy rebuilt"
        );
    }
    let next = Loaded {
        engine: base.engine.with_drift(drift),
        plan_hash: base.plan_hash.clone(),
        generation: base.generation + 1,
        bundle_version: base.bundle_version,
    };
    shared
        .metrics
        .reload_generation
        .set(i64::try_from(next.generation).unwrap_or(i64::MAX));
    shared.metrics.schema_drift_relations.set(relations);
    *slot = Arc::new(next);
}

/// Compares on `shared.schema_check` until `stopped` says the proxy stops:
/// every `every`, at once when a policy comes into force, and every
/// second while nothing is known. The first comparison is the caller's
/// (`serve::start` makes it before the first client).
pub async fn watch(shared: Arc<Shared>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut last = tokio::time::Instant::now();
    loop {
        let wait = if shared.current().engine.drift() == &Drift::Unknown {
            RETRY_UNKNOWN
        } else {
            shared.schema_check.every
        };
        let woken = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = shared.schema_check.woken() => true,
            _ = stopped.wait_for(|s| *s) => return,
        };
        if woken {
            // Sessions that create and drop tables by the hundred
            // (temporary tables of ETL jobs) ask after every commit: one
            // comparison per `MIN_GAP` answers them all.
            tokio::select! {
                () = tokio::time::sleep_until(last + MIN_GAP) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
        let _ = check(&shared).await;
        last = tokio::time::Instant::now();
    }
}
