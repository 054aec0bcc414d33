//! OpenTelemetry export (`[otel]`) against a collector stand-in on
//! loopback that records the OTLP/HTTP requests it receives: every audit
//! event arrives as a log record whose body is the trail's line, and every
//! statement as a span of its session's trace with its decision as
//! attributes. A collector that is not there changes nothing for clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clsf_tests::fixture;
use clsf_tests::proxy::Proxy;
use clsf_tests::psql;
use serde_json::Value;

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// Accepts at most 500 connections within 60 s, answering each request
/// with 200 and `{}` and keeping its path and JSON body.
fn collector() -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let received: Received = Arc::default();
    let kept = Arc::clone(&received);
    std::thread::spawn(move || {
        let begun = Instant::now();
        let mut served = 0;
        while served < 500 && begun.elapsed() < Duration::from_secs(60) {
            match listener.accept() {
                Ok((stream, _)) => {
                    served += 1;
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let kept = Arc::clone(&kept);
                    std::thread::spawn(move || serve(stream, &kept));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (addr, received)
}

/// One request per connection (the answer closes it).
fn serve(mut stream: std::net::TcpStream, kept: &Received) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    if let Ok(value) = serde_json::from_slice(&body) {
        kept.lock().unwrap().push((path, value));
    }
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
    );
}

fn with_otel(q: &fixture::Quickstart, endpoint: &str) -> Proxy {
    let mut config = std::fs::read_to_string(&q.config).unwrap();
    config.push_str(&format!(
        "\n[otel]\nendpoint = \"{endpoint}\"\nservice_name = \"clsf-under-test\"\n"
    ));
    std::fs::write(&q.config, config).unwrap();
    Proxy::start(&q.config)
}

fn attribute<'a>(attributes: &'a Value, key: &str) -> Option<&'a Value> {
    attributes
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[test]
fn audit_events_reach_a_collector_as_logs_and_statements_as_spans() {
    let q = fixture::quickstart(None);
    let (addr, received) = collector();
    let proxy = with_otel(&q, &format!("http://{addr}"));
    let out = psql::run(
        proxy.addr,
        &q.issuer.ci_token(),
        "SELECT name, email FROM customers WHERE id = 1;\nSELECT * FROM customers;\nSELECT 1;\n",
    );
    assert!(out.stdout.contains("****@example.com"), "{}", out.stdout);

    // Wait (at most 10 s) for the three statements' spans.
    let begun = Instant::now();
    let spans = loop {
        let spans: Vec<Value> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path == "/v1/traces")
            .flat_map(|(_, body)| {
                body["resourceSpans"][0]["scopeSpans"][0]["spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        if spans.len() >= 3 {
            break spans;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "spans received: {spans:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let decision =
        |s: &Value| attribute(&s["attributes"], "clsf.decision").unwrap()["stringValue"].clone();
    let decisions: Vec<Value> = spans.iter().map(decision).collect();
    assert_eq!(decisions, ["mask", "deny", "allow"], "{spans:#?}");
    assert!(
        spans
            .iter()
            .all(|s| s["name"] == "clsf.statement" && s["traceId"] == spans[0]["traceId"])
    );
    let masked = attribute(&spans[0]["attributes"], "clsf.masked")
        .unwrap()
        .to_string();
    assert!(masked.contains("public.customers.email"), "{masked}");
    assert_eq!(spans[1]["status"]["code"], 2);
    assert!(attribute(&spans[1]["attributes"], "clsf.reason").is_some());

    // Every event of the trail so far is a log record whose body is its line.
    let trail = proxy.audit_events();
    let records: Vec<Value> = received
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path == "/v1/logs")
        .flat_map(|(_, body)| {
            let resource = &body["resourceLogs"][0]["resource"]["attributes"];
            assert_eq!(
                attribute(resource, "service.name").unwrap()["stringValue"],
                "clsf-under-test"
            );
            body["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    for event in trail
        .iter()
        .filter(|e| e["event"] == "connect" || e["event"] == "statement")
    {
        let seq = event["seq"].as_u64().unwrap().to_string();
        let record = records
            .iter()
            .find(|r| {
                attribute(&r["attributes"], "clsf.seq")
                    .is_some_and(|v| v["intValue"] == seq.as_str())
            })
            .unwrap_or_else(|| panic!("no record for event {seq}: {records:#?}"));
        let body: Value =
            serde_json::from_str(record["body"]["stringValue"].as_str().unwrap()).unwrap();
        assert_eq!(&body, event);
    }
}

#[test]
fn a_collector_that_is_not_there_changes_nothing_for_clients() {
    let q = fixture::quickstart(None);
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = with_otel(&q, &format!("http://{closed}"));
    for _ in 0..3 {
        let out = psql::run(
            proxy.addr,
            &q.issuer.ci_token(),
            "SELECT name FROM customers WHERE id = 1;\n",
        );
        assert_eq!(out.stdout.trim(), "Ada Lovelace", "{}", out.stderr);
    }
    assert!(
        proxy
            .audit_events()
            .iter()
            .filter(|e| e["event"] == "statement")
            .count()
            >= 3
    );
}
