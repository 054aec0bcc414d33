//! The session state machine driven by scripted frames, without sockets or
//! PostgreSQL: what reaches the server, what reaches the client, and what
//! the audit trail holds, for the sequences where the proxy's own state
//! matters (refusals inside a transaction, prepared statements across a
//! reload, row limits across Executes, holds and approvals).

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, RwLock};

use bytes::BufMut;
use serde_json::{Value, json};

use super::*;
use crate::approvals::{Approvals, Approver};
use crate::audit::AuditLog;
use crate::auth::jwt::Issuers;
use crate::config::OnExpiry;
use crate::upstream::Target;
use crate::wire::frame::{MAX_FRAME, split_frame};
use crate::wire::kinds::TransactionStatus;

const POLICY: &str = r#"
labels public < internal < confidential < restricted
unclassified restricted

group agent { claim team == "agent" }
group oncall { claim team == "oncall" }

table public.customers: internal {
  email:       confidential mask email
  card_number: confidential
  ssn:         restricted
}
table public.orders: internal

group admin { claim team == "admin" }

rule admin_all for admin {
  allow read, write, export <= restricted
  allow ddl, admin
}

rule agent_reads for agent {
  allow <= internal
  mask  confidential
  require approval column public.customers.ssn by oncall ttl 60s
  limit 2 rows table public.orders
}
"#;

/// The same policy, after an edit that withholds `orders.status`.
fn edited() -> String {
    POLICY.replace(
        "limit 2 rows table public.orders",
        "limit 2 rows table public.orders\n  deny column public.orders.status",
    )
}

fn compile(dir: &Path, text: &str, generation: u64) -> Loaded {
    std::fs::write(dir.join("policy.clsf"), text).unwrap();
    let lock =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart/schema.lock.json");
    let compiled = clsf_compiler::load::compile_dir(dir, &lock).unwrap();
    let plan = compiled.plan.expect("the test policy compiles");
    Loaded {
        engine: clsf_compiler::Engine::new(plan).unwrap(),
        plan_hash: format!("test-{generation}"),
        generation,
        bundle_version: None,
    }
}

/// A session's surroundings: the policy, an audit trail in a temporary
/// folder, the approval store.
struct Harness {
    dir: tempfile::TempDir,
    shared: Shared,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy");
        std::fs::create_dir(&policy).unwrap();
        let loaded = compile(&policy, POLICY, 0);
        let shared = Shared {
            loaded: RwLock::new(Arc::new(loaded)),
            issuers: Issuers(Vec::new()),
            accounts: HashMap::new(),
            throttle: crate::auth::limits::Throttle::new(0, std::time::Duration::ZERO),
            per_identity: crate::auth::limits::SessionCounts::new(0),
            on_token_expiry: OnExpiry::Close,
            max_session: None,
            schema_check: crate::session::Schedule::new(std::time::Duration::from_secs(10)),
            upstream: Target {
                host: "127.0.0.1".to_owned(),
                port: 9,
                database: "shop".to_owned(),
                user: "gateway".to_owned(),
                password: "unused".to_owned(),
                tls: None,
                salted: Default::default(),
                pool: Default::default(),
            },
            audit: AuditLog::open(&dir.path().join("audit.jsonl"), Default::default()).unwrap(),
            next_session: AtomicU64::new(1),
            tls: None,
            startup_timeout: std::time::Duration::from_secs(30),
            idle_timeout: None,
            statement_timeout: None,
            max_statement_bytes: 1024,
            cancel_keys: Mutex::new(HashMap::new()),
            approvals: Arc::new(Approvals::default()),
            approval_url: Some("https://admin.test".to_owned()),
            metrics: crate::metrics::Metrics::default(),
            audit_completions: true,
        };
        Harness { dir, shared }
    }

    /// A session of the `agent` group.
    fn session(&self) -> Relay<'_> {
        self.session_of("agent")
    }

    /// A session of group `team`.
    fn session_of(&self, team: &str) -> Relay<'_> {
        let proven = Proven::Token(json!({"sub": format!("{team}-1"), "team": team}));
        let loaded = self.shared.current();
        let identity = proven.identity(loaded.engine.plan());
        assert_eq!(identity.groups, [team]);
        let access = loaded.engine.access_for(&identity);
        Relay::new(&self.shared, proven, loaded, identity, access, 1)
    }

    /// Replaces the policy in force, as a reload does.
    fn reload(&self, text: &str) {
        let generation = self.shared.current().generation + 1;
        let next = compile(&self.dir.path().join("policy"), text, generation);
        *self.shared.loaded.write().unwrap() = Arc::new(next);
    }

    fn events(&self) -> Vec<Value> {
        crate::audit::read_text(&self.dir.path().join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A message as (tag, body).
type Message = (u8, Vec<u8>);

fn messages_in(mut bytes: BytesMut) -> Vec<Message> {
    let mut out = Vec::new();
    while let Some(frame) = split_frame(&mut bytes, MAX_FRAME).unwrap() {
        out.push((frame.tag, frame.body().to_vec()));
    }
    assert!(bytes.is_empty(), "whole frames only");
    out
}

/// Feeds client bytes frame by frame; true while the client goes on.
fn client(r: &mut Relay<'_>, bytes: &[&[u8]]) {
    let mut buf = BytesMut::new();
    for b in bytes {
        buf.extend_from_slice(b);
    }
    while let Some(frame) = split_frame(&mut buf, MAX_FRAME).unwrap() {
        assert!(r.client_frame(frame).unwrap());
    }
}

fn server(r: &mut Relay<'_>, bytes: &[&[u8]]) {
    let mut buf = BytesMut::new();
    for b in bytes {
        buf.extend_from_slice(b);
    }
    while let Some(frame) = split_frame(&mut buf, MAX_FRAME).unwrap() {
        r.upstream_frame(frame);
    }
}

/// What the state machine queued for the server and for the client since
/// the last call.
fn sent(r: &mut Relay<'_>) -> (Vec<Message>, Vec<Message>) {
    (
        messages_in(r.to_upstream.split()),
        messages_in(r.to_client.split()),
    )
}

fn raw(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(tag);
    b.put_i32(i32::try_from(body.len() + 4).unwrap());
    b.put_slice(body);
    b.to_vec()
}

fn data_row(value: &str) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_i16(1);
    body.put_i32(i32::try_from(value.len()).unwrap());
    body.put_slice(value.as_bytes());
    raw(b'D', &body)
}

fn execute_max(portal: &str, rows: i32) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_slice(portal.as_bytes());
    body.put_u8(0);
    body.put_i32(rows);
    raw(b'E', &body)
}

const SYNC: &[u8] = &[b'S', 0, 0, 0, 4];

fn text_of(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

/// The SQLSTATE field of an ErrorResponse or NoticeResponse body.
fn sqlstate(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"C"))
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .unwrap_or_default()
}

fn tags(messages: &[Message]) -> String {
    messages.iter().map(|(t, _)| *t as char).collect()
}

#[test]
fn a_masked_query_is_audited_then_forwarded_rewritten() {
    let h = Harness::new();
    let mut r = h.session();
    client(&mut r, &[&messages::query("SELECT email FROM customers")]);
    // The event is on the trail before anything is queued for the server.
    let events = h.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "statement");
    assert_eq!(events[0]["decision"], "mask");
    let (up, down) = sent(&mut r);
    assert_eq!(tags(&up), "Q");
    let forwarded = text_of(&up[0].1);
    assert_ne!(forwarded, "SELECT email FROM customers\0");
    assert_eq!(
        Some(forwarded.trim_end_matches('\0')),
        events[0]["rewritten"].as_str()
    );
    assert!(down.is_empty());
    server(
        &mut r,
        &[
            &data_row("****@example.com"),
            &messages::command_complete("SELECT 1"),
            &messages::ready_for_query(TransactionStatus::Idle),
        ],
    );
    let (_, down) = sent(&mut r);
    assert_eq!(tags(&down), "DCZ");
    // Its completion rides on the session's next event.
    client(&mut r, &[&messages::query("SELECT 1")]);
    let events = h.events();
    assert_eq!(events[1]["completed"][0]["rows"], 1);
    assert_eq!(events[1]["completed"][0]["statement_seq"], events[0]["seq"]);
}

#[test]
fn a_refused_parse_inside_a_transaction_fails_it_at_the_server() {
    let h = Harness::new();
    let mut r = h.session();
    client(&mut r, &[&messages::query("BEGIN")]);
    server(
        &mut r,
        &[
            &messages::command_complete("BEGIN"),
            &messages::ready_for_query(TransactionStatus::InTransaction),
        ],
    );
    sent(&mut r);
    client(
        &mut r,
        &[
            &messages::parse(b"", "SELECT ssn, secret_column FROM nowhere", &[0, 0]),
            &messages::bind_no_params("", ""),
            &messages::execute(""),
            SYNC,
        ],
    );
    let (up, down) = sent(&mut r);
    // In place of the client's Parse the server gets one that raises the
    // refusal; the client's Bind and Execute follow (the server skips them
    // after the error), then Sync.
    assert_eq!(tags(&up), "PBEBES");
    let raise = text_of(&up[0].1);
    assert!(raise.contains("RAISE EXCEPTION"), "{raise}");
    assert!(
        !raise.contains("nowhere"),
        "names travel hex-encoded: {raise}"
    );
    assert!(
        down.is_empty(),
        "the refusal comes from the server, in order"
    );
    // The server answers our Parse and Bind, then fails; the client sees
    // only the error and the failed transaction.
    server(
        &mut r,
        &[
            &raw(b'1', &[]),
            &raw(b'2', &[]),
            &messages::error_response(Severity::Error, "42P01", "refused", None),
            &messages::ready_for_query(TransactionStatus::Failed),
        ],
    );
    let (_, down) = sent(&mut r);
    assert_eq!(tags(&down), "EZ");
    assert_eq!(down[1].1, b"E");
    let events = h.events();
    assert_eq!(events.last().unwrap()["decision"], "deny");
    // The next Parse after the Sync is decided again.
    client(
        &mut r,
        &[&messages::parse(b"", "SELECT id FROM orders", &[0, 0])],
    );
    let (up, _) = sent(&mut r);
    assert_eq!(tags(&up), "P");
    assert!(text_of(&up[0].1).contains("SELECT id FROM orders"));
}

#[test]
fn a_prepared_statement_runs_after_a_reload_only_if_decided_the_same() {
    let h = Harness::new();
    let mut r = h.session();
    client(
        &mut r,
        &[
            &messages::parse(b"s1", "SELECT status FROM orders", &[0, 0]),
            &messages::parse(b"s2", "SELECT name FROM customers", &[0, 0]),
            SYNC,
        ],
    );
    let (up, _) = sent(&mut r);
    assert_eq!(tags(&up), "PPS");
    server(
        &mut r,
        &[
            &raw(b'1', &[]),
            &raw(b'1', &[]),
            &messages::ready_for_query(TransactionStatus::Idle),
        ],
    );
    assert_eq!(tags(&sent(&mut r).1), "11Z");

    h.reload(&edited());
    // `s2` is decided the same under the new policy: it runs.
    client(
        &mut r,
        &[
            &messages::bind_no_params("", "s2"),
            &messages::execute(""),
            SYNC,
        ],
    );
    let (up, _) = sent(&mut r);
    assert_eq!(tags(&up), "BES");
    server(
        &mut r,
        &[
            &raw(b'2', &[]),
            &messages::command_complete("SELECT 0"),
            &messages::ready_for_query(TransactionStatus::Idle),
        ],
    );
    sent(&mut r);
    // `s1` now reads a denied column: its Execute is refused, not run.
    client(
        &mut r,
        &[
            &messages::bind_no_params("", "s1"),
            &messages::execute(""),
            SYNC,
        ],
    );
    let (up, _) = sent(&mut r);
    assert_eq!(tags(&up), "BPBES", "the client's Execute is replaced");
    let raise = text_of(&up[1].1);
    let hex: String = "the policy changed"
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(raise.contains(&hex), "{raise}");
    // Parsed again, it is decided under the new policy and refused.
    server(
        &mut r,
        &[
            &raw(b'2', &[]),
            &raw(b'1', &[]),
            &raw(b'2', &[]),
            &messages::error_response(Severity::Error, "0A000", "refused", None),
            &messages::ready_for_query(TransactionStatus::Idle),
        ],
    );
    assert_eq!(tags(&sent(&mut r).1), "2EZ");
    client(
        &mut r,
        &[&messages::parse(
            b"s1",
            "SELECT status FROM orders",
            &[0, 0],
        )],
    );
    let (up, _) = sent(&mut r);
    assert!(text_of(&up[0].1).contains("RAISE EXCEPTION"));
    assert_eq!(h.events().last().unwrap()["decision"], "deny");
}

#[test]
fn a_row_limit_counts_across_executes_of_one_portal() {
    let h = Harness::new();
    let mut r = h.session();
    client(
        &mut r,
        &[
            &messages::parse(b"", "SELECT id FROM orders", &[0, 0]),
            &messages::bind_no_params("p", ""),
            &execute_max("p", 1),
            SYNC,
        ],
    );
    sent(&mut r);
    server(
        &mut r,
        &[
            &raw(b'1', &[]),
            &raw(b'2', &[]),
            &data_row("1"),
            &raw(b's', &[]),
            &messages::ready_for_query(TransactionStatus::InTransaction),
        ],
    );
    assert_eq!(tags(&sent(&mut r).1), "12DsZ");
    // The second Execute may deliver one more row of the limit's two.
    client(&mut r, &[&execute_max("p", 5), SYNC]);
    sent(&mut r);
    server(
        &mut r,
        &[
            &data_row("2"),
            &data_row("3"),
            &data_row("4"),
            &messages::command_complete("SELECT 3"),
            &messages::ready_for_query(TransactionStatus::InTransaction),
        ],
    );
    let (_, down) = sent(&mut r);
    assert_eq!(tags(&down), "DNCZ");
    // The notice names what this Execute could still deliver.
    assert!(
        text_of(&down[1].1).contains("cut to 1 rows"),
        "{}",
        text_of(&down[1].1)
    );
    assert_eq!(text_of(&down[2].1), "SELECT 1\0");
    // Both executions are on the trail with what they delivered.
    client(&mut r, &[&messages::query("SELECT 1")]);
    let done: Vec<u64> = h
        .events()
        .iter()
        .flat_map(|e| e["completed"].as_array().cloned().unwrap_or_default())
        .map(|c| c["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(done, [1, 1]);
}

#[test]
fn a_held_statement_waits_for_an_approver_then_runs() {
    let h = Harness::new();
    let mut r = h.session();
    client(&mut r, &[&messages::query("SELECT ssn FROM customers")]);
    let (up, down) = sent(&mut r);
    assert!(up.is_empty(), "nothing runs before the approval: {down:?}");
    assert_eq!(tags(&down), "N");
    assert!(text_of(&down[0].1).contains("held for approval"));
    let id = r.held.as_ref().unwrap().id.clone();
    // The requester cannot approve; an on-call engineer can.
    let me = Approver {
        subject: "agent-1".to_owned(),
        groups: vec!["oncall".to_owned()],
    };
    assert!(h.shared.approvals.vote(&id, &me, "", true).is_err());
    let bob = Approver {
        subject: "bob".to_owned(),
        groups: vec!["oncall".to_owned()],
    };
    let decided = h.shared.approvals.vote(&id, &bob, "ok", true).unwrap();
    assert_eq!(decided.state, State::Approved);
    r.settle(decided.state);
    let (up, _) = sent(&mut r);
    assert_eq!(tags(&up), "Q");
    assert!(text_of(&up[0].1).contains("ssn"));
    let kinds: Vec<String> = h
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        ["statement", "approval_requested", "approval_released"]
    );
}

#[test]
fn a_denied_hold_is_refused_and_the_session_goes_on() {
    let h = Harness::new();
    let mut r = h.session();
    client(&mut r, &[&messages::query("SELECT ssn FROM customers")]);
    sent(&mut r);
    let id = r.held.as_ref().unwrap().id.clone();
    let bob = Approver {
        subject: "bob".to_owned(),
        groups: vec!["oncall".to_owned()],
    };
    let decided = h
        .shared
        .approvals
        .vote(&id, &bob, "not today", false)
        .unwrap();
    r.settle(decided.state);
    let (up, down) = sent(&mut r);
    assert!(up.is_empty());
    assert_eq!(tags(&down), "EZ");
    assert_eq!(sqlstate(&down[0].1), "42501");
    assert!(text_of(&down[0].1).contains("not today"));
    assert!(r.held.is_none());
    client(&mut r, &[&messages::query("SELECT id FROM orders")]);
    assert_eq!(tags(&sent(&mut r).0), "Q");
}

#[test]
fn a_session_ending_while_held_withdraws_the_request() {
    let h = Harness::new();
    let mut r = h.session();
    client(&mut r, &[&messages::query("SELECT ssn FROM customers")]);
    let id = r.held.as_ref().unwrap().id.clone();
    r.finish();
    let request = h.shared.approvals.get(&id).unwrap();
    assert!(matches!(request.state, State::Withdrawn { .. }));
    assert_eq!(h.events().last().unwrap()["event"], "approval_refused");
}

#[test]
fn a_statement_longer_than_the_limit_is_refused_and_recorded_short() {
    let h = Harness::new();
    let mut r = h.session();
    // 1 024 bytes is this harness's limit; the literal is never analysed.
    let long = format!("SELECT '{}'", "x".repeat(2000));
    client(&mut r, &[&messages::query(&long)]);
    let (up, down) = sent(&mut r);
    assert!(up.is_empty(), "nothing reaches the server");
    assert_eq!(tags(&down), "EZ");
    assert_eq!(sqlstate(&down[0].1), "54000");
    assert!(
        text_of(&down[0].1).contains("2009 bytes"),
        "{}",
        text_of(&down[0].1)
    );
    let events = h.events();
    let event = events.last().unwrap();
    assert_eq!(event["decision"], "deny");
    assert!(event["statement"].as_str().unwrap().len() < 220, "{event}");
    // Through the extended protocol too; the session goes on.
    client(&mut r, &[&messages::parse(b"", &long, &[0, 0]), SYNC]);
    let (up, _) = sent(&mut r);
    // The server raises the refusal in order, in place of the Parse.
    assert_eq!(tags(&up), "PBES");
    assert!(up.iter().all(|(_, body)| !text_of(body).contains("xxxx")));
    assert!(text_of(&up[0].1).contains("54000"), "{}", text_of(&up[0].1));
    server(
        &mut r,
        &[
            &raw(b'1', &[]),
            &raw(b'2', &[]),
            &messages::error_response(Severity::Error, "54000", "too long", None),
            &messages::ready_for_query(TransactionStatus::Idle),
        ],
    );
    let (_, down) = sent(&mut r);
    assert_eq!(tags(&down), "EZ");
    assert_eq!(h.events().last().unwrap()["decision"], "deny");
    client(&mut r, &[&messages::query("SELECT 1")]);
    let (up, _) = sent(&mut r);
    assert_eq!(tags(&up), "Q");
}

/// A session whose identity saw everything ran its statements unanalysed
/// (here a search path the engine does not assume). When a reload then
/// withholds something from it, the session ends before its next
/// statement instead of being decided on assumptions that no longer hold;
/// a session that was never unanalysed goes on.
#[test]
fn a_session_that_ran_unanalysed_ends_when_a_reload_withholds_something() {
    let h = Harness::new();
    let mut admin = h.session_of("admin");
    let mut agent = h.session();
    assert!(admin.access.full_clear);
    client(
        &mut admin,
        &[&messages::query("SET search_path = elsewhere, public")],
    );
    let (up, _) = sent(&mut admin);
    assert_eq!(tags(&up), "Q");
    server(
        &mut admin,
        &[
            &messages::command_complete("SET"),
            &messages::ready_for_query(TransactionStatus::Idle),
        ],
    );
    sent(&mut admin);
    h.reload(&POLICY.replace(
        "  allow ddl, admin\n",
        "  allow ddl, admin\n  mask confidential\n",
    ));
    let mut buf = BytesMut::from(&messages::query("SELECT name FROM customers")[..]);
    let frame = split_frame(&mut buf, MAX_FRAME).unwrap().unwrap();
    assert!(admin.client_frame(frame).is_err(), "the session goes on");
    let (up, down) = sent(&mut admin);
    assert!(up.is_empty(), "{up:?}");
    assert_eq!(tags(&down), "E");
    assert_eq!(sqlstate(&down[0].1), "57P01");
    // The agent's session, decided all along, is not ended by the reload.
    client(&mut agent, &[&messages::query("SELECT id FROM orders")]);
    assert_eq!(tags(&sent(&mut agent).0), "Q");
}

/// Whether a catalog comparison was asked for (and takes the request).
fn comparison_asked(h: &Harness) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_millis(10),
            h.shared.schema_check.woken(),
        )
        .await
        .is_ok()
    })
}

/// A schema statement through the proxy asks for a comparison of the live
/// catalog with the lock once it is committed, not before (another
/// connection would not see it yet), and other statements never do.
#[test]
fn a_committed_schema_change_asks_for_a_catalog_comparison() {
    let h = Harness::new();
    let mut admin = h.session_of("admin");
    let script = |r: &mut Relay<'_>, sql: &str, tag: &str, status| {
        client(r, &[&messages::query(sql)]);
        server(
            r,
            &[
                &messages::command_complete(tag),
                &messages::ready_for_query(status),
            ],
        );
        sent(r);
    };
    script(&mut admin, "SELECT 1", "SELECT 1", TransactionStatus::Idle);
    assert!(!comparison_asked(&h));
    script(
        &mut admin,
        "BEGIN",
        "BEGIN",
        TransactionStatus::InTransaction,
    );
    script(
        &mut admin,
        "ALTER TABLE orders ADD COLUMN extra text",
        "ALTER TABLE",
        TransactionStatus::InTransaction,
    );
    assert!(!comparison_asked(&h), "not committed yet");
    script(&mut admin, "COMMIT", "COMMIT", TransactionStatus::Idle);
    assert!(comparison_asked(&h));
    script(
        &mut admin,
        "DO $$ BEGIN EXECUTE 'ALTER TABLE orders ADD COLUMN x int'; END $$",
        "DO",
        TransactionStatus::Idle,
    );
    assert!(comparison_asked(&h));
    script(
        &mut admin,
        "UPDATE orders SET id = id",
        "UPDATE 0",
        TransactionStatus::Idle,
    );
    assert!(!comparison_asked(&h));
}
