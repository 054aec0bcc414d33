//! Prometheus metrics, served by the admin listener at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// The decisions a statement can have.
const DECISIONS: [&str; 4] = ["allow", "mask", "deny", "hold"];

/// Every metric the proxy keeps.
pub struct Metrics {
    registry: Registry,
    /// Client sessions open now.
    pub sessions_open: Gauge,
    /// Client sessions accepted since start.
    pub sessions: Counter,
    /// Connections refused because `max_connections` was reached.
    pub connections_refused: Counter,
    /// Authentication attempts refused unchecked after too many failures.
    pub auth_throttled: Counter,
    /// Sessions refused because their identity had its most sessions open.
    pub identity_limit_refused: Counter,
    /// Statements by decision (`allow`, `mask`, `deny`, `hold`).
    statements: Family<Labels, Counter>,
    /// The family's counters for the decisions the engine makes, looked
    /// up once: `get_or_create` allocates and hashes a label set, which
    /// showed in profiles of the per-statement path.
    decided: [(&'static str, Counter); 4],
    /// Approval requests waiting now.
    pub approvals_pending: Gauge,
    /// Approval requests by outcome.
    approvals: Family<Labels, Counter>,
    /// Seconds a held statement waited for its outcome.
    pub approval_wait_seconds: Histogram,
    /// Policy generation in force.
    pub reload_generation: Gauge,
    /// Reloads refused (the old policy stayed).
    pub reload_failures: Counter,
    /// Relations the live database has columns of that the schema lock
    /// lacks (-1: not compared yet, or the comparison failed).
    pub schema_drift_relations: Gauge,
    /// Comparisons of the live catalog with the lock that failed.
    pub schema_check_failures: Counter,
    /// Bundles from the control plane refused (the plan in force stayed).
    pub bundles_refused: Counter,
    /// The newest bundle version published to the control plane that this
    /// replica has seen (in force, or refused).
    pub bundle_published: Gauge,
    /// Events written to the local trail and not yet in the control plane.
    pub audit_central_lag: Gauge,
    /// Batches of audit events the OpenTelemetry exporter lost to a full queue.
    pub otel_dropped: Counter,
    /// OpenTelemetry export requests that failed.
    pub otel_failures: Counter,
    /// Upstream connections that failed or broke.
    pub upstream_errors: Counter,
    /// Sessions given a kept server connection instead of a new login.
    pub upstream_reused: Counter,
    /// Seconds to decide one query string or Parse.
    pub decision_seconds: Histogram,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Registers each `field: help` of `m` in `registry` under the field's
/// name (the metrics are of different types, so a list of them cannot be
/// iterated).
macro_rules! register {
    ($registry:ident, $m:ident { $($field:ident: $help:literal),+ $(,)? }) => {
        $($registry.register(stringify!($field), $help, $m.$field.clone());)+
    };
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("clsf");
        let m = Metrics {
            sessions_open: Gauge::default(),
            sessions: Counter::default(),
            connections_refused: Counter::default(),
            auth_throttled: Counter::default(),
            identity_limit_refused: Counter::default(),
            statements: Family::default(),
            decided: Default::default(),
            approvals_pending: Gauge::default(),
            approvals: Family::default(),
            // 1 s … ~4.5 h
            approval_wait_seconds: Histogram::new(exponential_buckets(1.0, 2.0, 15)),
            reload_generation: Gauge::default(),
            reload_failures: Counter::default(),
            schema_drift_relations: Gauge::default(),
            schema_check_failures: Counter::default(),
            bundles_refused: Counter::default(),
            bundle_published: Gauge::default(),
            audit_central_lag: Gauge::default(),
            otel_dropped: Counter::default(),
            otel_failures: Counter::default(),
            upstream_errors: Counter::default(),
            upstream_reused: Counter::default(),
            // 1 µs … ~16 ms
            decision_seconds: Histogram::new(exponential_buckets(1e-6, 2.0, 15)),
            registry: Registry::default(),
        };
        // Each metric under its field's name, with its help text.
        register!(
            registry,
            m {
                sessions_open: "Client sessions open",
                sessions: "Client sessions accepted",
                connections_refused: "Connections refused because max_connections was reached",
                auth_throttled: "Authentication attempts refused unchecked after too many failures",
                identity_limit_refused: "Sessions refused because their identity had max_sessions_per_identity open",
                statements: "Statements by decision",
                approvals_pending: "Approval requests waiting",
                approvals: "Approval requests by outcome",
                approval_wait_seconds: "Time a held statement waited for its outcome",
                reload_generation: "Policy generation in force",
                reload_failures: "Reloads refused; the previous policy stayed in force",
                schema_drift_relations: "Relations whose live columns include some the schema lock lacks, read through the lock's columns (-1: not compared yet)",
                schema_check_failures: "Comparisons of the live catalog with the schema lock that failed",
                bundles_refused: "Bundles from the control plane refused (unsigned, signed by an untrusted key, altered, older); the plan in force stayed",
                bundle_published: "Newest bundle version seen in the control plane",
                audit_central_lag: "Audit events in the local trail not yet copied to the control plane",
                otel_dropped: "Times OpenTelemetry export fell behind and events were not exported (the audit trail has them)",
                otel_failures: "OpenTelemetry export requests that failed",
                upstream_errors: "Upstream connections that failed or broke",
                upstream_reused: "Sessions given a kept server connection (reset with DISCARD ALL) instead of a new login",
                decision_seconds: "Time to decide one query string or Parse",
            }
        );
        let decided = DECISIONS.map(|d| {
            (
                d,
                m.statements.get_or_create(&vec![("decision", d)]).clone(),
            )
        });
        Metrics {
            registry,
            decided,
            ..m
        }
    }
}

impl Metrics {
    /// Counts a statement decided `decision`.
    pub fn statement(&self, decision: &'static str) {
        match self.decided.iter().find(|(d, _)| *d == decision) {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                self.statements
                    .get_or_create(&vec![("decision", decision)])
                    .inc();
            }
        }
    }

    /// Counts an approval request's outcome (`approved`, `denied`, …).
    pub fn approval(&self, outcome: &'static str) {
        self.approvals
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_in_the_exposition() {
        let m = Metrics::default();
        m.statement("mask");
        m.statement("mask");
        m.approval("approved");
        m.sessions_open.inc();
        let text = m.render();
        assert!(
            text.contains("clsf_statements_total{decision=\"mask\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("clsf_approvals_total{outcome=\"approved\"} 1"),
            "{text}"
        );
        // The other decisions show from the start, at zero.
        assert!(
            text.contains("clsf_statements_total{decision=\"deny\"} 0"),
            "{text}"
        );
        assert!(text.contains("clsf_sessions_open 1"), "{text}");
    }
}
