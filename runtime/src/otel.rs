//! OpenTelemetry export (`[otel]`): every audit event as an OTLP log record
//! (its line as the body, its main fields as attributes) and every
//! statement as a span (its decision, rules, policies and masked columns as
//! attributes), sent in batches over OTLP/HTTP with the JSON encoding.
//!
//! The export is a copy for dashboards and SIEMs, never the record: events
//! come from the audit trail after they are written, through a bounded
//! queue a statement never waits on. When the collector is slow or away,
//! what does not fit is dropped and counted (`clsf_otel_dropped`), and a
//! failed request is counted (`clsf_otel_failures`) and logged once per
//! outage; the trail has every event either way.
//!
//! Written by hand rather than with the `opentelemetry` crates: those
//! export the process's own telemetry through a global pipeline, while
//! what is exported here is the audit trail's events, whose OTLP/JSON form
//! is a few objects.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit::Tapped;
use crate::config::Otel;
use crate::http_client::{HttpClient, exchange};
use crate::session::Shared;

/// Events waiting for the exporter before newer ones are dropped.
pub const CAPACITY: usize = 4096;

/// Events sent in one request.
const BATCH: usize = 512;

/// The longest a request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the exporter cannot start.
#[derive(Debug, thiserror::Error)]
#[error("[otel] {0}")]
pub struct OtelError(#[from] crate::auth::jwks::ConnectorError);

/// The exporter, ready to run.
#[derive(Debug)]
pub struct Exporter {
    client: HttpClient,
    config: Otel,
    /// Identifies this process's traces (one trace per session).
    instance: String,
}

impl Exporter {
    /// Builds the HTTP client (verifying the collector as `ca_file` says).
    pub fn new(config: Otel) -> Result<Exporter, OtelError> {
        let connector =
            crate::auth::jwks::http_or_https_connector(config.ca_file.as_deref(), None)?;
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        Ok(Exporter {
            client: Client::builder(TokioExecutor::new()).build(connector),
            config,
            instance: hex::encode(nonce),
        })
    }

    /// Exports events until the proxy stops.
    pub async fn run(self, shared: Arc<Shared>, mut tapped: Tapped) {
        let mut failing = false;
        loop {
            let Some(first) = tapped.lines.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match tapped.lines.try_recv() {
                    Ok(line) => batch.push(line),
                    Err(_) => break,
                }
            }
            if tapped.overflowed.swap(false, Ordering::Relaxed) {
                shared.metrics.otel_dropped.inc();
            }
            let events: Vec<(u64, String, Value)> = batch
                .into_iter()
                .filter_map(|(seq, line)| {
                    let value = serde_json::from_str(&line).ok()?;
                    Some((seq, line, value))
                })
                .collect();
            let mut ok = true;
            if self.config.logs {
                ok &= self.send(&shared, "/v1/logs", &self.logs(&events)).await;
            }
            if self.config.traces {
                let spans = self.traces(&events);
                if let Some(spans) = spans {
                    ok &= self.send(&shared, "/v1/traces", &spans).await;
                }
            }
            // Said when the export starts failing and when it works again.
            if failing == ok {
                failing = !ok;
                if failing {
                    tracing::warn!(endpoint = %self.config.endpoint, "OpenTelemetry export failing; events stay in the audit trail");
                } else {
                    tracing::info!(endpoint = %self.config.endpoint, "OpenTelemetry export working again");
                }
            }
        }
    }

    async fn send(&self, shared: &Shared, path: &str, body: &Value) -> bool {
        let url = format!("{}{path}", self.config.endpoint.trim_end_matches('/'));
        let request = hyper::Request::post(&url).header("content-type", "application/json");
        let body = Bytes::from(body.to_string());
        match exchange(&self.client, &url, request, body, TIMEOUT, 1 << 20).await {
            Ok((status, _)) if status.is_success() => true,
            Ok((status, _)) => {
                tracing::debug!(%url, %status, "OpenTelemetry collector refused a batch");
                shared.metrics.otel_failures.inc();
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "OpenTelemetry export");
                shared.metrics.otel_failures.inc();
                false
            }
        }
    }

    fn resource(&self) -> Value {
        json!({ "attributes": [
            string("service.name", &self.config.service_name),
            string("service.instance.id", &self.instance),
        ]})
    }

    /// `ExportLogsServiceRequest`: one record per event.
    fn logs(&self, events: &[(u64, String, Value)]) -> Value {
        let records: Vec<Value> = events
            .iter()
            .map(|(seq, line, event)| {
                let time = unix_nanos(event);
                let mut attributes = vec![int("clsf.seq", *seq)];
                attributes.extend(common_attributes(event));
                let severity = match event.get("decision").and_then(Value::as_str) {
                    Some("deny") => (13, "WARN"),
                    _ if event.get("event").and_then(Value::as_str) == Some("auth_failed") => {
                        (13, "WARN")
                    }
                    _ => (9, "INFO"),
                };
                json!({
                    "timeUnixNano": time,
                    "observedTimeUnixNano": time,
                    "severityNumber": severity.0,
                    "severityText": severity.1,
                    "body": { "stringValue": line },
                    "attributes": attributes,
                })
            })
            .collect();
        json!({ "resourceLogs": [{
            "resource": self.resource(),
            "scopeLogs": [{ "scope": { "name": "clsf-proxy.audit" }, "logRecords": records }],
        }]})
    }

    /// `ExportTraceServiceRequest`: one span per statement, one trace per
    /// session; `None` when the batch has no statement.
    fn traces(&self, events: &[(u64, String, Value)]) -> Option<Value> {
        let spans: Vec<Value> = events
            .iter()
            .filter(|(_, _, e)| e.get("event").and_then(Value::as_str) == Some("statement"))
            .map(|(seq, _, event)| {
                let session = event.get("session").and_then(Value::as_u64).unwrap_or(0);
                let time = unix_nanos(event);
                let mut attributes = vec![int("clsf.seq", *seq), string("db.system", "postgresql")];
                attributes.extend(common_attributes(event));
                for key in ["policies", "rules", "masked"] {
                    if let Some(list) = event.get(key).and_then(Value::as_array) {
                        let values: Vec<Value> = list
                            .iter()
                            .filter_map(Value::as_str)
                            .map(|s| json!({ "stringValue": s }))
                            .collect();
                        attributes.push(json!({
                            "key": format!("clsf.{key}"),
                            "value": { "arrayValue": { "values": values } },
                        }));
                    }
                }
                let denied = event.get("decision").and_then(Value::as_str) == Some("deny");
                json!({
                    "traceId": self.id(&format!("session {session}"), 16),
                    "spanId": self.id(&format!("event {seq}"), 8),
                    "name": "clsf.statement",
                    "kind": 2,
                    "startTimeUnixNano": time,
                    "endTimeUnixNano": time,
                    "attributes": attributes,
                    "status": if denied { json!({ "code": 2, "message": "refused by policy" }) } else { json!({ "code": 1 }) },
                })
            })
            .collect();
        if spans.is_empty() {
            return None;
        }
        Some(json!({ "resourceSpans": [{
            "resource": self.resource(),
            "scopeSpans": [{ "scope": { "name": "clsf-proxy.audit" }, "spans": spans }],
        }]}))
    }

    /// A hex id of `bytes` bytes, fixed for this process and `what`.
    fn id(&self, what: &str, bytes: usize) -> String {
        let digest = Sha256::digest(format!("{} {what}", self.instance).as_bytes());
        hex::encode(&digest[..bytes])
    }
}

/// The event's fields most queries filter on.
fn common_attributes(event: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (field, key) in [
        ("event", "clsf.event"),
        ("subject", "enduser.id"),
        ("decision", "clsf.decision"),
        ("reason", "clsf.reason"),
    ] {
        if let Some(v) = event.get(field).and_then(Value::as_str) {
            out.push(string(key, v));
        }
    }
    if let Some(session) = event.get("session").and_then(Value::as_u64) {
        out.push(int("clsf.session", session));
    }
    if let Some(groups) = event.get("groups").and_then(Value::as_array) {
        let values: Vec<Value> = groups
            .iter()
            .filter_map(Value::as_str)
            .map(|g| json!({ "stringValue": g }))
            .collect();
        out.push(json!({ "key": "clsf.groups", "value": { "arrayValue": { "values": values } } }));
    }
    out
}

fn string(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

/// OTLP/JSON carries 64-bit integers as strings.
fn int(key: &str, value: u64) -> Value {
    json!({ "key": key, "value": { "intValue": value.to_string() } })
}

/// The event's time in nanoseconds since the epoch, as OTLP/JSON's string.
fn unix_nanos(event: &Value) -> String {
    event
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or_else(|| "0".to_owned(), |t| t.unix_timestamp_nanos().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter() -> Exporter {
        Exporter::new(Otel {
            endpoint: "http://127.0.0.1:4318".to_owned(),
            ca_file: None,
            service_name: "clsf-proxy".to_owned(),
            logs: true,
            traces: true,
        })
        .unwrap()
    }

    #[test]
    fn statements_become_spans_of_their_session_and_every_event_a_record() {
        let e = exporter();
        let events: Vec<(u64, String, Value)> = [
            r#"{"seq":0,"prev":"0","time":"2026-12-06T10:00:00.5Z","event":"connect","session":1,"subject":"ci"}"#,
            r#"{"seq":1,"prev":"a","time":"2026-12-06T10:00:01Z","event":"statement","session":1,"subject":"ci","groups":["ci"],"decision":"mask","policies":["p.0"],"rules":["r"],"masked":["public.customers.email"]}"#,
            r#"{"seq":2,"prev":"b","time":"2026-12-06T10:00:02Z","event":"statement","session":1,"subject":"ci","decision":"deny","reason":"ssn is restricted"}"#,
        ]
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64, l.to_string(), serde_json::from_str(l).unwrap()))
        .collect();
        let logs = e.logs(&events);
        let records = &logs["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
        assert_eq!(records.as_array().unwrap().len(), 3);
        assert_eq!(records[0]["timeUnixNano"], "1796551200500000000");
        assert_eq!(records[2]["severityText"], "WARN");
        assert_eq!(records[1]["body"]["stringValue"], events[1].1);
        let traces = e.traces(&events).unwrap();
        let spans = traces["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0]["traceId"], spans[1]["traceId"]);
        assert_ne!(spans[0]["spanId"], spans[1]["spanId"]);
        assert_eq!(spans[0]["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(spans[0]["spanId"].as_str().unwrap().len(), 16);
        assert_eq!(spans[1]["status"]["code"], 2);
        let attrs = spans[0]["attributes"].to_string();
        assert!(
            attrs.contains(r#"{"key":"clsf.decision","value":{"stringValue":"mask"}}"#),
            "{attrs}"
        );
        assert!(attrs.contains("public.customers.email"), "{attrs}");
        assert!(e.traces(&events[..1]).is_none());
    }
}
