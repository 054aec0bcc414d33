//! The relay: one loop per session over client and upstream frames, with
//! every query and `Parse` decided, audited and then forwarded, rewritten or
//! refused.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use clsf_compiler::engine::{
    Decision, Denial, Hold, Identity, PrincipalAccess, StatementReport, Verdict,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::sync::broadcast;

use crate::approvals::{self, State};
use crate::audit::{Columns, Completion, Event};
use crate::auth::Proven;
use crate::extended::{Sent, Tracker};
use crate::tls::{ClientStream, UpstreamStream};
use crate::upstream;
use crate::wire::errors;
use crate::wire::frame::{Frame, MAX_FRAME, split_frame};
use crate::wire::messages::{self, Severity};
use sha2::{Digest, Sha256};

use super::objects::{self, SqlObjects};
use super::startup::Ready;
use super::{Loaded, Result, Shared, end, send};

/// What the proxy decided for a statement text at a `Parse`.
struct Decided {
    text: String,
    decision: &'static str,
    /// The most rows one statement may return, and the rule.
    row_limit: RowLimit,
    /// What was forwarded, and under which policy generation.
    verdict: Verdict,
    generation: u64,
    /// The engine's report for its `statement` event (`None` for an empty
    /// statement).
    report: Option<StatementReport>,
}

impl Decided {
    fn new(text: &str, decision: Decision, generation: u64) -> Decided {
        let Decision {
            verdict,
            statements,
        } = decision;
        let report = statements.into_iter().next();
        Decided {
            text: text.to_owned(),
            decision: report.as_ref().map_or("allow", |r| r.decision),
            row_limit: report.as_ref().and_then(|r| r.row_limit.clone()),
            verdict,
            generation,
            report,
        }
    }
}

/// A prepared statement as the proxy knows it: one `Parse` of a decided
/// text.
struct Prepared {
    /// Shared by the `Parse`s of the same text under the same name and
    /// policy generation (drivers parse their unnamed statement again for
    /// every query).
    decided: Arc<Decided>,
    /// Whether its `statement` event is written. An allowed `Parse` is
    /// recorded with its first `Execute` (one line per execution instead
    /// of two), or at the `Sync` after it when it is not executed before.
    recorded: AtomicBool,
}

impl std::ops::Deref for Prepared {
    type Target = Decided;
    fn deref(&self) -> &Decided {
        &self.decided
    }
}

/// A portal: what its statement was when it was bound (a later Parse of
/// the same unnamed statement does not change what the portal runs), and
/// the hash of the bound parameters (an approval covers the statement
/// with these values only).
struct Portal {
    prepared: Option<Arc<Prepared>>,
    params: [u8; 32],
    /// Rows delivered from it so far (a row limit counts across Executes).
    delivered: u64,
}

/// A row limit: rows, and the rule that set it.
type RowLimit = Option<(u64, String)>;

/// What a held statement becomes once approved.
enum Release {
    /// A simple query string (original or rewritten) to forward, with its
    /// statements' audit events' `seq`s and row limits.
    Query(Bytes, Vec<u64>, Vec<RowLimit>),
    /// The client's `Execute`, forwarded as sent, its event's `seq`, its
    /// row limit and its portal.
    Execute(Bytes, u64, RowLimit, Vec<u8>),
}

/// A forwarded statement whose completion is still to come, for the
/// `completed` record on the session's next event (rows and duration).
struct Inflight {
    /// The Sync/Query segment it belongs to.
    segment: u64,
    /// Its `statement` or `execute` event.
    seq: u64,
    started: std::time::Instant,
    /// Rows it may still deliver, and the rule that says so.
    limit: RowLimit,
    /// The portal it executes (extended protocol).
    portal: Option<Vec<u8>>,
}

/// A statement waiting for approval. While one waits, the session reads
/// nothing more of the client's pipeline (PostgreSQL too runs a session's
/// statements one after another).
struct Held {
    id: String,
    rx: tokio::sync::watch::Receiver<State>,
    until: tokio::time::Instant,
    release: Release,
    hold: Hold,
    hash: String,
}

/// What an approval with a wider scope than one statement still covers.
struct Grant {
    /// The approval clauses approved.
    policies: Vec<String>,
    /// Only this statement (N executions), or any covered one (session).
    hash: Option<String>,
    remaining: u64,
    until: Option<tokio::time::Instant>,
    request: String,
}

/// What the client is owed, in order: the response to a forwarded message
/// (ending in upstream's ReadyForQuery) or bytes the proxy produced itself.
enum Pending {
    Upstream,
    Local(Bytes),
}

struct Relay<'a> {
    shared: &'a Shared,
    /// What the client proved, to recompute groups when the policy is reloaded.
    proven: Proven,
    /// The policy this session last decided with.
    loaded: Arc<Loaded>,
    access: Arc<PrincipalAccess>,
    identity: Identity,
    session: u64,
    /// Transaction status from the last ReadyForQuery.
    status: u8,
    pending: VecDeque<Pending>,
    /// After a refused `Parse`, the server skips to `Sync`; so does the
    /// proxy's analysis (what follows is forwarded and ignored upstream).
    refused_until_sync: bool,
    /// Matches extended-protocol replies to what was sent.
    tracker: Tracker,
    /// Prepared statements by name: their text and the decision at Parse,
    /// so every execution is audited.
    statements: HashMap<Vec<u8>, Arc<Prepared>>,
    /// Portals by name.
    portals: HashMap<Vec<u8>, Portal>,
    /// Cursors and prepared statements made by SQL (`DECLARE`, `PREPARE`).
    objects: SqlObjects,
    /// Statements prepared since the last `Sync` whose event may still be
    /// unwritten (written at the `Sync` unless an `Execute` did).
    unrecorded: Vec<Arc<Prepared>>,
    /// The statement waiting for approval, if any.
    held: Option<Held>,
    /// Approvals that still cover statements of this session.
    grants: Vec<Grant>,
    /// Forwarded statements not yet complete, in order.
    inflight: VecDeque<Inflight>,
    /// Segments (`Query`, or messages up to `Sync`) forwarded and answered.
    segments_sent: u64,
    segments_done: u64,
    /// DataRows delivered since the last completion.
    rows_seen: u64,
    /// Whether rows beyond a row limit were dropped since the last completion.
    cut: bool,
    /// Completions not yet recorded: they go on the session's next event
    /// (one line per statement instead of two).
    completions: Vec<Completion>,
    to_client: BytesMut,
    to_upstream: BytesMut,
}

pub(super) async fn relay(
    shared: &Shared,
    mut client: ClientStream,
    mut cbuf: BytesMut,
    ready: Ready,
    session: u64,
    mut shutdown: broadcast::Receiver<()>,
) -> (Result<()>, Vec<Completion>) {
    let Ready {
        cancel_key: _,
        proven,
        upstream_key,
        deadline,
        loaded,
        identity,
        access,
        mut upstream,
        upstream_buf: mut ubuf,
    } = ready;
    let mut terminating = false;
    let mut draining = false;
    // When the statement now at the head of the pipeline started, and
    // whether its cancel was already sent.
    let mut busy: Option<(tokio::time::Instant, bool)> = None;
    let mut owed = 0;
    let mut r = Relay {
        shared,
        proven,
        loaded,
        access,
        identity,
        session,
        status: b'I',
        pending: VecDeque::new(),
        refused_until_sync: false,
        tracker: Tracker::default(),
        statements: HashMap::new(),
        portals: HashMap::new(),
        objects: SqlObjects::default(),
        unrecorded: Vec::new(),
        held: None,
        grants: Vec::new(),
        inflight: VecDeque::new(),
        segments_sent: 0,
        segments_done: 0,
        rows_seen: 0,
        cut: false,
        completions: Vec::new(),
        to_client: BytesMut::new(),
        to_upstream: BytesMut::new(),
    };
    // One timer for the whole session: a sleep created per loop turn
    // registers and clears a timer entry twice per statement.
    let expiry = async {
        match deadline {
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    let outcome = async {
        loop {
            // Handle everything already buffered before reading more; nothing
            // while a statement waits for approval.
            while !terminating && r.held.is_none() {
                match split_frame(&mut cbuf, MAX_FRAME) {
                    Ok(Some(frame)) => match r.client_frame(frame) {
                        Ok(true) => {}
                        Ok(false) => {
                            // Terminate: answer what is still owed, then close.
                            terminating = true;
                            break;
                        }
                        Err(e) => {
                            // The error response is already queued for the client.
                            let _ = flush(&mut r, &mut client, &mut upstream).await;
                            let _ = upstream.write_all(&[b'X', 0, 0, 0, 4]).await;
                            return Err(e);
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        r.to_client
                            .extend_from_slice(&errors::protocol_violation(&e.to_string()));
                        flush(&mut r, &mut client, &mut upstream).await?;
                        return Err(end(format!("client sent {e}")));
                    }
                }
            }
            loop {
                match split_frame(&mut ubuf, usize::MAX >> 1) {
                    Ok(Some(frame)) => r.upstream_frame(frame),
                    Ok(None) => break,
                    Err(e) => return Err(end(format!("upstream sent {e}"))),
                }
            }
            flush(&mut r, &mut client, &mut upstream).await?;
            if terminating && r.pending.is_empty() {
                let _ = upstream.write_all(&[b'X', 0, 0, 0, 4]).await;
                return Ok(());
            }
            if draining && r.pending.is_empty() {
                // Shutting down and nothing in flight: end the session cleanly.
                let _ = send(&mut client, &errors::shutting_down()).await;
                let _ = upstream.write_all(&[b'X', 0, 0, 0, 4]).await;
                return Ok(());
            }

            // A shorter queue means a statement finished: the next one's clock
            // starts. Tracked only when a timeout is configured (hot path).
            if shared.statement_timeout.is_some() {
                if r.pending.is_empty() {
                    busy = None;
                } else if busy.is_none() || r.pending.len() < owed {
                    busy = Some((tokio::time::Instant::now(), false));
                }
                owed = r.pending.len();
            }
            let overdue = match (shared.statement_timeout, busy) {
                (Some(limit), Some((since, false))) => Some(since + limit),
                _ => None,
            };
            let idle = r.pending.is_empty()
                && r.status == b'I'
                && r.held.is_none()
                && !terminating
                && !draining;
            let waiting = r.held.as_ref().map(|h| (h.rx.clone(), h.until));
            let idle_deadline = shared.idle_timeout.map(|t| tokio::time::Instant::now() + t);
            tokio::select! {
                // An idle session (no statement in flight, no open transaction)
                // that sends nothing for the configured time is closed.
                () = async {
                    match idle_deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                }, if idle => {
                    let _ = send(&mut client, &errors::idle_timeout()).await;
                    let _ = upstream.write_all(&[b'X', 0, 0, 0, 4]).await;
                    return Err(end("idle timeout"));
                }
                // While draining, nothing new is read: what is in flight finishes.
                n = client.read_buf(&mut cbuf), if !terminating && !draining => {
                    if n.map_err(|e| end(format!("client read: {e}")))? == 0 {
                        let _ = upstream.write_all(&[b'X', 0, 0, 0, 4]).await;
                        return Ok(());
                    }
                }
                n = upstream.read_buf(&mut ubuf) => {
                    if n.map_err(|e| {
                        shared.metrics.upstream_errors.inc();
                        end(format!("upstream read: {e}"))
                    })? == 0 {
                        shared.metrics.upstream_errors.inc();
                        let _ = send(&mut client, &errors::upstream_unavailable()).await;
                        return Err(end("upstream closed the connection"));
                    }
                }
                // A statement ran past the statement timeout: the server cancels
                // it (the client gets 57014) and the session goes on.
                () = async {
                    match overdue {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                }, if overdue.is_some() => {
                    if let Some(key) = upstream_key {
                        let mut event = Event::new("statement_timeout", session);
                        event.subject = Some(&r.identity.subject);
                        let _ = shared.audit.append(&event);
                        upstream::cancel(&shared.upstream, key).await;
                    }
                    busy = busy.map(|(since, _)| (since, true));
                }
                // The credential's time is up (token expiry, longest session).
                () = &mut expiry => {
                    let why = deadline.map_or("", |(_, why)| why);
                    let _ = send(&mut client, &errors::session_expired(why)).await;
                    let _ = upstream.write_all(&[b'X', 0, 0, 0, 4]).await;
                    return Err(end(why));
                }
                _ = shutdown.recv(), if !draining => {
                    draining = true;
                }
                // The held statement was decided (or its time ran out).
                state = async {
                    match waiting {
                        Some((mut rx, until)) => approvals::wait(&mut rx, until).await,
                        None => std::future::pending().await,
                    }
                }, if r.held.is_some() => {
                    r.settle(state);
                }
            }
        }
    }
    .await;
    // However the session ends, a statement still waiting is withdrawn.
    if let Some(h) = r.held.take() {
        r.shared.metrics.approvals_pending.dec();
        r.shared.metrics.approval("withdrawn");
        r.shared.approvals.end(
            &h.id,
            State::Withdrawn {
                reason: "the session ended".to_owned(),
            },
        );
        r.audit_approval(
            "approval_refused",
            &h.id,
            Some("withdrawn: the session ended"),
        );
    }
    // Statements prepared and never executed or synced are recorded too.
    r.record_prepared();
    // What completed since the last event goes on the disconnect event.
    (outcome, std::mem::take(&mut r.completions))
}

async fn flush(
    r: &mut Relay<'_>,
    client: &mut ClientStream,
    upstream: &mut UpstreamStream,
) -> Result<()> {
    if !r.to_upstream.is_empty() {
        let bytes = r.to_upstream.split();
        upstream
            .write_all(&bytes)
            .await
            .map_err(|e| end(format!("upstream write: {e}")))?;
    }
    if !r.to_client.is_empty() {
        let bytes = r.to_client.split();
        send(client, &bytes).await?;
    }
    Ok(())
}

impl Relay<'_> {
    /// Decides a query string for this session with the plan in force.
    fn decide(&self, text: &str) -> Decision {
        let started = std::time::Instant::now();
        let decision =
            self.loaded
                .engine
                .decide_with_claims(&self.access, self.proven.claims(), text);
        self.shared
            .metrics
            .decision_seconds
            .observe(started.elapsed().as_secs_f64());
        decision
    }

    /// Checks the cursors and prepared statements the statements use, and
    /// records those they make (`objects`).
    fn session_objects(
        &mut self,
        reports: &[clsf_compiler::engine::StatementReport],
    ) -> std::result::Result<(), Denial> {
        if reports.iter().all(|r| r.object.is_none()) {
            return Ok(());
        }
        let mut objects = std::mem::take(&mut self.objects);
        let result = {
            let this = &*self;
            let is_portal = |n: &str| this.portals.contains_key(n.as_bytes());
            let is_statement = |n: &str| this.statements.contains_key(n.as_bytes());
            let mut redecide = |t: &str| this.decide(t).statements.into_iter().next();
            objects.apply(
                reports,
                &mut objects::Context {
                    generation: this.loaded.generation,
                    is_portal: &is_portal,
                    is_statement: &is_statement,
                    redecide: &mut redecide,
                },
            )
        };
        self.objects = objects;
        result
    }

    /// Picks up a reloaded policy: groups are recomputed from the session's
    /// verified claims, and the access table comes from the new plan.
    fn refresh(&mut self) {
        let current = self.shared.current();
        if current.generation == self.loaded.generation {
            return;
        }
        self.identity = self.proven.identity(current.engine.plan());
        self.access = current.engine.access_for(&self.identity);
        self.loaded = current;
    }

    /// Queues bytes for the client behind whatever is still owed.
    fn local(&mut self, bytes: Bytes) {
        if self.pending.is_empty() {
            self.to_client.extend_from_slice(&bytes);
        } else {
            self.pending.push_back(Pending::Local(bytes));
        }
    }

    /// An error and ReadyForQuery produced by the proxy.
    fn local_error(&mut self, error: Bytes) {
        let mut bytes = BytesMut::from(&error[..]);
        bytes.extend_from_slice(&messages::ready_for_query(self.status));
        self.local(bytes.freeze());
    }

    /// Forwards a message the server answers with ReadyForQuery (`Query`, `Sync`).
    fn forward(&mut self, raw: &[u8]) {
        self.to_upstream.extend_from_slice(raw);
        self.pending.push_back(Pending::Upstream);
        self.tracker.close();
        self.segments_sent += 1;
    }

    /// Notes forwarded statements (by their events' `seq`) whose completion
    /// is to be audited; they belong to the segment now open.
    fn started(&mut self, seqs: &[u64], limits: &[RowLimit], portal: Option<&[u8]>) {
        // Every forwarded statement is tracked, so completions pair up with
        // statements in order even when only some have a row limit.
        let now = std::time::Instant::now();
        for (i, &seq) in seqs.iter().enumerate() {
            self.inflight.push_back(Inflight {
                segment: self.segments_sent,
                seq,
                started: now,
                limit: limits.get(i).cloned().flatten(),
                portal: portal.map(<[u8]>::to_vec),
            });
        }
    }

    /// The statement at the head of the current segment completed.
    fn completed(&mut self, outcome: &'static str, rows: Option<u64>) {
        let seen = std::mem::take(&mut self.rows_seen);
        let Some(front) = self.inflight.front() else {
            return;
        };
        if front.segment != self.segments_done {
            return;
        }
        let Some(done) = self.inflight.pop_front() else {
            return;
        };
        self.cut = false;
        if let Some(p) = done.portal.as_ref().and_then(|p| self.portals.get_mut(p)) {
            p.delivered += seen;
        }
        if !self.shared.audit_completions {
            return;
        }
        self.completions.push(Completion {
            statement_seq: done.seq,
            outcome,
            rows: rows.unwrap_or(seen),
            duration_ms: (done.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        });
    }

    /// Handles one client frame; `false` when the client terminates.
    fn client_frame(&mut self, frame: Frame) -> Result<bool> {
        match frame.tag {
            b'Q' => self.query(&frame)?,
            b'X' => return Ok(false),
            // COPY FROM STDIN data follows a COPY the engine already allowed.
            b'd' | b'c' | b'f' => self.to_upstream.extend_from_slice(&frame.raw),
            b'P' => self.parse(&frame)?,
            b'B' => {
                if let Ok((portal, statement)) = messages::decode_bind_names(frame.body()) {
                    let rest = &frame.body()[portal.len() + statement.len() + 2..];
                    let params: [u8; 32] = Sha256::digest(rest).into();
                    let prepared = self.statements.get(statement).cloned();
                    self.portals.insert(
                        portal.to_vec(),
                        Portal {
                            prepared,
                            params,
                            delivered: 0,
                        },
                    );
                }
                self.to_upstream.extend_from_slice(&frame.raw);
                self.tracker.sent(Sent::ClientBind);
            }
            b'E' => self.execute(&frame),
            b'C' => {
                if let Some((kind, name)) = frame.body().split_first()
                    && let Ok(name) = messages::decode_cstring_body(name)
                {
                    if *kind == b'S' {
                        self.statements.remove(name);
                    } else {
                        self.portals.remove(name);
                    }
                }
                self.to_upstream.extend_from_slice(&frame.raw);
            }
            // Describe and Flush act on statements and portals whose text was
            // decided at Parse.
            b'D' | b'H' => self.to_upstream.extend_from_slice(&frame.raw),
            b'S' => {
                self.refused_until_sync = false;
                self.record_prepared();
                self.forward(&frame.raw);
            }
            b'F' => self.local_error(errors::unsupported(
                "the fast-path function call interface is not allowed through the clsf proxy",
            )),
            other => {
                self.to_client
                    .extend_from_slice(&errors::protocol_violation(&format!(
                        "unexpected message type `{}`",
                        other.escape_ascii()
                    )));
                return Err(end("unexpected client message"));
            }
        }
        Ok(true)
    }

    /// A `Parse`: the statement is decided (and audited) here, once; its
    /// Binds and Executes then run what was decided.
    fn parse(&mut self, frame: &Frame) -> Result<()> {
        if self.refused_until_sync {
            // The server is skipping to Sync after our refusal.
            self.to_upstream.extend_from_slice(&frame.raw);
            self.tracker.sent(Sent::ClientParse);
            return Ok(());
        }
        let Ok(parse) = messages::decode_parse(frame.body()) else {
            self.to_client
                .extend_from_slice(&errors::protocol_violation("malformed Parse message"));
            return Err(end("malformed Parse"));
        };
        let Ok(text) = std::str::from_utf8(parse.query) else {
            self.refuse_parse(&not_utf8());
            return Ok(());
        };
        self.refresh();
        let generation = self.loaded.generation;
        // The same text parsed again under the same name and policy is
        // decided as before: the plan, the access table and the claims a
        // decision depends on are those of this generation and session.
        let reused = self
            .statements
            .get(parse.name)
            .filter(|p| p.generation == generation && p.text.as_bytes() == parse.query)
            .map(|p| Arc::clone(&p.decided));
        let decided = match reused {
            Some(decided) => decided,
            None => {
                let decision = self.decide(text);
                if let Verdict::Deny(denial) = &decision.verdict {
                    // A refusal is recorded now; anything else with its
                    // first Execute (or at the Sync), before it runs.
                    let denial = match self.audit(text, &decision) {
                        Some(_) => denial.clone(),
                        None => audit_refusal(),
                    };
                    // The server keeps a named statement it already had (it
                    // never sees this Parse); its unnamed one becomes ours.
                    if parse.name.is_empty() {
                        self.statements.remove(parse.name);
                    }
                    self.refuse_parse(&denial);
                    return Ok(());
                }
                Arc::new(Decided::new(text, decision, generation))
            }
        };
        if let Some(report) = decided.report.as_ref().filter(|r| r.object.is_some())
            && let Err(denial) = self.session_objects(std::slice::from_ref(report))
        {
            let decision = refused(
                Decision {
                    verdict: Verdict::Forward,
                    statements: vec![report.clone()],
                },
                denial.clone(),
            );
            let denial = match self.audit(text, &decision) {
                Some(_) => denial,
                None => audit_refusal(),
            };
            if parse.name.is_empty() {
                self.statements.remove(parse.name);
            }
            self.refuse_parse(&denial);
            return Ok(());
        }
        // Preparing a held statement is harmless: what it would read is
        // held at Execute, where the bound values are known. Denials never
        // get here (they are not kept).
        match rewritten(&decided.verdict) {
            Some(new_text) => {
                let raw = messages::parse(parse.name, new_text, parse.param_types);
                self.to_upstream.extend_from_slice(&raw);
            }
            None => self.to_upstream.extend_from_slice(&frame.raw),
        }
        let prepared = Arc::new(Prepared {
            decided,
            recorded: AtomicBool::new(false),
        });
        if self.unrecorded.len() >= MAX_UNRECORDED {
            // A client that never sends Sync must not grow this list.
            self.record_prepared();
        }
        self.unrecorded.push(prepared.clone());
        match self.statements.get_mut(parse.name) {
            Some(slot) => *slot = prepared,
            None => {
                self.statements.insert(parse.name.to_vec(), prepared);
            }
        }
        self.tracker.sent(Sent::ClientParse);
        Ok(())
    }

    /// An `Execute`: audited (with the statement decided at its Parse)
    /// before it is forwarded.
    fn execute(&mut self, frame: &Frame) {
        if self.refused_until_sync {
            self.to_upstream.extend_from_slice(&frame.raw);
            return;
        }
        self.refresh();
        let portal_name = frame.body().split(|b| *b == 0).next().unwrap_or_default();
        let portal = self.portals.get(portal_name);
        let params = portal.map(|p| p.params);
        let delivered = portal.map_or(0, |p| p.delivered);
        let Some(prepared) = portal.and_then(|p| p.prepared.clone()) else {
            // Every Parse and Bind passes through here, so this cannot
            // name a statement the proxy decided: refused, not guessed.
            self.refuse_parse(&Denial {
                sqlstate: "0A000",
                message: "clsf does not know which statement this portal runs, so it is refused"
                    .to_owned(),
                hint: Some("bind the portal from a statement prepared in this session".to_owned()),
                policies: Vec::new(),
            });
            return;
        };
        let prepared = Some(&*prepared);
        // A statement prepared under an earlier policy runs only if the
        // policy in force decides it the same way.
        if let Some(p) = prepared
            && p.generation != self.loaded.generation
            && self.decide(&p.text).verdict != p.verdict
        {
            self.refuse_parse(&Denial {
                sqlstate: "0A000",
                message: "the policy changed since this statement was prepared; prepare it again"
                    .to_owned(),
                hint: None,
                policies: Vec::new(),
            });
            return;
        }
        // A FETCH or EXECUTE is checked again when it runs: a portal of the
        // same name may have been bound since its Parse.
        if let Some(report) = prepared
            .and_then(|p| p.report.as_ref())
            .filter(|r| r.object.is_some())
            && let Err(denial) = self.session_objects(std::slice::from_ref(report))
        {
            let text = report.text.clone();
            let decision = refused(
                Decision {
                    verdict: Verdict::Forward,
                    statements: vec![report.clone()],
                },
                denial.clone(),
            );
            let denial = match self.audit(&text, &decision) {
                Some(_) => denial,
                None => audit_refusal(),
            };
            self.refuse_parse(&denial);
            return;
        }
        // The statement's own event stands for its first execution.
        let seq = match prepared {
            Some(p) if !p.recorded.load(Ordering::Relaxed) => self.record(p),
            _ => {
                let mut event = Event::new("execute", self.session);
                event.subject = Some(&self.identity.subject);
                event.groups = Some(&self.identity.groups);
                event.statement = prepared.map(|p| p.text.as_str());
                event.decision = prepared.map(|p| p.decision);
                event.completed = (!self.completions.is_empty()).then_some(&self.completions[..]);
                let seq = self.shared.audit.append(&event).ok();
                if seq.is_some() {
                    self.completions.clear();
                }
                seq
            }
        };
        let Some(seq) = seq else {
            self.refuse_parse(&audit_refusal());
            return;
        };
        // A row limit counts what the portal already delivered.
        let limit = prepared
            .and_then(|p| p.row_limit.clone())
            .map(|(rows, rule)| (rows.saturating_sub(delivered), rule));
        let portal_name = portal_name.to_vec();
        if let Some(p) = prepared
            && let Verdict::Hold(hold) = &p.verdict
        {
            let mut hasher = Sha256::new();
            hasher.update(p.text.as_bytes());
            hasher.update([0]);
            hasher.update(params.unwrap_or_default());
            let hash = hex::encode(hasher.finalize());
            let (text, hold) = (p.text.clone(), (**hold).clone());
            self.hold(
                &text,
                hash,
                hold,
                Release::Execute(frame.raw.clone(), seq, limit, portal_name),
            );
            return;
        }
        self.started(&[seq], &[limit], Some(&portal_name));
        self.to_upstream.extend_from_slice(&frame.raw);
    }

    /// Refuses a `Parse` by having the server raise the refusal in its place,
    /// so the error arrives in order and the server skips to `Sync` (and
    /// fails a transaction) exactly as after an error of its own.
    fn refuse_parse(&mut self, denial: &Denial) {
        const PORTAL: &str = "__clsf_refusal";
        let raise = raise_statement(denial);
        self.to_upstream
            .extend_from_slice(&messages::parse(b"", &raise, &[0, 0]));
        self.to_upstream
            .extend_from_slice(&messages::bind_no_params(PORTAL, ""));
        self.to_upstream
            .extend_from_slice(&messages::execute(PORTAL));
        self.tracker.sent(Sent::OwnParse);
        self.tracker.sent(Sent::OwnBind);
        self.refused_until_sync = true;
    }

    fn query(&mut self, frame: &Frame) -> Result<()> {
        let Ok(raw_text) = messages::decode_cstring_body(frame.body()) else {
            self.to_client
                .extend_from_slice(&errors::protocol_violation("malformed Query message"));
            return Err(end("malformed query"));
        };
        let Ok(text) = std::str::from_utf8(raw_text) else {
            self.deny(&not_utf8());
            return Ok(());
        };
        self.refresh();
        let mut decision = self.decide(text);
        if !matches!(decision.verdict, Verdict::Deny(_))
            && let Err(denial) = self.session_objects(&decision.statements)
        {
            decision = refused(decision, denial);
        }
        let Some(seqs) = self.audit(text, &decision) else {
            self.local_error(errors::audit_unavailable());
            return Ok(());
        };
        match &decision.verdict {
            Verdict::Forward => {
                self.started(&seqs, &limits(&decision), None);
                self.forward(&frame.raw);
            }
            Verdict::Rewrite(new_text) => {
                self.started(&seqs, &limits(&decision), None);
                self.forward(&messages::query(new_text));
            }
            Verdict::Deny(denial) => self.deny(denial),
            Verdict::Hold(hold) => {
                let release = match &hold.then {
                    Verdict::Rewrite(new_text) => messages::query(new_text),
                    _ => frame.raw.clone(),
                };
                let hash = hex::encode(Sha256::digest(text.as_bytes()));
                let limits = limits(&decision);
                self.hold(
                    text,
                    hash,
                    (**hold).clone(),
                    Release::Query(release, seqs, limits),
                );
            }
        }
        Ok(())
    }

    /// Holds a statement for approval: unless an earlier approval still
    /// covers it, files a request, tells the client (a NoticeResponse with
    /// the request id, what is asked, who may approve and where), and stops
    /// reading the client's pipeline until the request is decided.
    fn hold(&mut self, text: &str, hash: String, hold: Hold, release: Release) {
        let policies: Vec<String> = hold.needs.iter().map(|n| n.policy_id.clone()).collect();
        let now = tokio::time::Instant::now();
        self.grants
            .retain(|g| g.remaining > 0 && g.until.is_none_or(|u| now < u));
        if let Some(g) = self.grants.iter_mut().find(|g| {
            policies.iter().all(|p| g.policies.contains(p))
                && g.hash.as_ref().is_none_or(|h| *h == hash)
        }) {
            g.remaining -= 1;
            let request = g.request.clone();
            if !self.audit_approval("approval_grant_used", &request, None) {
                self.release_refused(release, &audit_refusal());
                return;
            }
            self.release(release);
            return;
        }
        let Some(url) = self.shared.approval_url.clone() else {
            let denial = Denial {
                sqlstate: clsf_compiler::engine::decide::INSUFFICIENT_PRIVILEGE,
                message: format!(
                    "this statement needs approval by {}, and this proxy takes no approvals (no [admin] listener is configured), so it is refused",
                    hold.approvers_text()
                ),
                hint: None,
                policies,
            };
            self.release_refused(release, &denial);
            return;
        };
        let created = approvals::unix_now();
        let request = approvals::Request {
            id: String::new(),
            session: self.session,
            subject: self.identity.subject.clone(),
            groups: self.identity.groups.clone(),
            claims: self.proven.shown_claims(),
            statement: text.to_owned(),
            statement_hash: hash.clone(),
            touches: hold.touches.clone(),
            scope: hold.scope_text(),
            approvers: hold.approvers_text(),
            needs: hold
                .needs
                .iter()
                .map(|n| approvals::NeedState {
                    rule: n.rule.clone(),
                    clause: n.clause.clone(),
                    approvers: n.approvers.clone(),
                    quorum: n.quorum,
                    approved_by: Vec::new(),
                })
                .collect(),
            created,
            expires: created + hold.ttl_seconds,
            state: State::Pending,
            votes: Vec::new(),
        };
        let (id, rx) = self.shared.approvals.submit(request);
        self.shared.metrics.approvals_pending.inc();
        if !self.audit_approval("approval_requested", &id, None) {
            self.shared.approvals.end(
                &id,
                State::Withdrawn {
                    reason: "the audit trail could not be written".to_owned(),
                },
            );
            self.release_refused(release, &audit_refusal());
            return;
        }
        let rules: Vec<&str> = hold.needs.iter().map(|n| n.rule.as_str()).collect();
        let notice = format!(
            "clsf: statement held for approval, request {id}: it reads {} and needs approval by {} (rule {}); one approval releases {}. Approve at {url}/#{id} or with `clsf-proxy approvals approve {id}`. The request expires in {} s; cancel the statement to withdraw it.",
            if hold.touches.is_empty() {
                "what rule approval covers".to_owned()
            } else {
                hold.touches.join(", ")
            },
            hold.approvers_text(),
            rules.join(", "),
            hold.scope_text(),
            hold.ttl_seconds,
        );
        // A NoticeResponse may arrive at any time, so it need not wait for
        // the statements still owed before it.
        self.to_client.extend_from_slice(&messages::error_response(
            Severity::Notice,
            "01000",
            &notice,
            None,
        ));
        self.held = Some(Held {
            id,
            rx,
            until: approvals::deadline(created + hold.ttl_seconds),
            release,
            hold,
            hash,
        });
    }

    /// The held statement's request was decided (or expired): run it, or
    /// refuse it with the reason; either way the session goes on.
    fn settle(&mut self, state: State) {
        let Some(h) = self.held.take() else {
            return;
        };
        let m = &self.shared.metrics;
        m.approvals_pending.dec();
        let waited = h.hold.ttl_seconds as f64
            - h.until
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs_f64();
        m.approval_wait_seconds.observe(waited.max(0.0));
        let state = if state == State::Expired {
            // The waiting side decides expiry; the store learns it here.
            self.shared.approvals.end(&h.id, State::Expired);
            // An approval that raced the deadline still wins.
            self.shared
                .approvals
                .get(&h.id)
                .map_or(State::Expired, |r| r.state)
        } else {
            state
        };
        let refusal = |sqlstate: &'static str, message: String| Denial {
            sqlstate,
            message,
            hint: None,
            policies: h.hold.needs.iter().map(|n| n.policy_id.clone()).collect(),
        };
        let denial = match &state {
            State::Approved => {
                let policies = h.hold.needs.iter().map(|n| n.policy_id.clone()).collect();
                match h.hold.scope {
                    clsf_compiler::plan::ApprovalScope::Statement => {}
                    clsf_compiler::plan::ApprovalScope::Executions(n) => self.grants.push(Grant {
                        policies,
                        hash: Some(h.hash.clone()),
                        remaining: n.saturating_sub(1),
                        until: None,
                        request: h.id.clone(),
                    }),
                    clsf_compiler::plan::ApprovalScope::Session(secs) => self.grants.push(Grant {
                        policies,
                        hash: None,
                        remaining: u64::MAX,
                        until: Some(
                            tokio::time::Instant::now() + std::time::Duration::from_secs(secs),
                        ),
                        request: h.id.clone(),
                    }),
                }
                self.shared.metrics.approval("approved");
                if !self.audit_approval("approval_released", &h.id, None) {
                    self.release_refused(h.release, &audit_refusal());
                    return;
                }
                self.release(h.release);
                return;
            }
            State::Denied { by, comment } => refusal(
                clsf_compiler::engine::decide::INSUFFICIENT_PRIVILEGE,
                format!("approval request {} was denied by {by}: {comment}", h.id),
            ),
            State::Expired | State::Pending => refusal(
                clsf_compiler::engine::decide::INSUFFICIENT_PRIVILEGE,
                format!(
                    "approval request {} expired: nobody approved it within {} s",
                    h.id, h.hold.ttl_seconds
                ),
            ),
            State::Withdrawn { reason } => refusal(
                "57014",
                format!(
                    "canceling statement: approval request {} was withdrawn ({reason})",
                    h.id
                ),
            ),
        };
        self.shared.metrics.approval(state.name());
        let why = format!("{}: {}", state.name(), denial.message);
        // Refused either way: a failed audit write changes nothing here.
        let _ = self.audit_approval("approval_refused", &h.id, Some(&why));
        self.release_refused(h.release, &denial);
    }

    /// Runs a held statement.
    fn release(&mut self, release: Release) {
        match release {
            Release::Query(bytes, seqs, limits) => {
                self.started(&seqs, &limits, None);
                self.forward(&bytes);
            }
            Release::Execute(bytes, seq, limit, portal) => {
                self.started(&[seq], &[limit], Some(&portal));
                self.to_upstream.extend_from_slice(&bytes);
            }
        }
    }

    /// Refuses a held statement the way its protocol expects.
    fn release_refused(&mut self, release: Release, denial: &Denial) {
        match release {
            Release::Query(..) => self.deny(denial),
            Release::Execute(..) => self.refuse_parse(denial),
        }
    }

    /// An approval event of this session; false if it could not be written.
    fn audit_approval(&self, kind: &str, request: &str, reason: Option<&str>) -> bool {
        let mut event = Event::new(kind, self.session);
        event.subject = Some(&self.identity.subject);
        event.request = Some(request);
        event.reason = reason;
        self.shared.audit.append(&event).is_ok()
    }

    /// Records every statement of a query string; their events' `seq`s,
    /// or `None` if that failed.
    fn audit(
        &mut self,
        text: &str,
        decision: &clsf_compiler::engine::Decision,
    ) -> Option<Vec<u64>> {
        let done = std::mem::take(&mut self.completions);
        let seqs = self.audit_with(text, decision, &done);
        if seqs.is_none() {
            // Not recorded: they go on the next event instead.
            self.completions = done;
        }
        seqs
    }

    fn audit_with(
        &self,
        text: &str,
        decision: &clsf_compiler::engine::Decision,
        done: &[Completion],
    ) -> Option<Vec<u64>> {
        let completed = (!done.is_empty()).then_some(done);
        for s in &decision.statements {
            self.shared.metrics.statement(s.decision);
        }
        if decision.statements.is_empty() {
            self.shared.metrics.statement("allow");
            let event = self.empty_event(text, completed);
            return self.shared.audit.append(&event).ok().map(|seq| vec![seq]);
        }
        // The text forwarded in place of the whole string, on its first
        // statement's event.
        let rewritten = rewritten(&decision.verdict);
        let mut seqs = Vec::with_capacity(decision.statements.len());
        for (i, s) in decision.statements.iter().enumerate() {
            let event = if i == 0 {
                self.report_event(s, rewritten, completed)
            } else {
                self.report_event(s, None, None)
            };
            seqs.push(self.shared.audit.append(&event).ok()?);
        }
        Some(seqs)
    }

    /// The `statement` event of a text without statements (allowed).
    fn empty_event<'e>(&'e self, text: &'e str, completed: Option<&'e [Completion]>) -> Event<'e> {
        let mut event = Event::new("statement", self.session);
        event.subject = Some(&self.identity.subject);
        event.groups = Some(&self.identity.groups);
        event.statement = Some(text);
        event.decision = Some("allow");
        event.completed = completed;
        event
    }

    /// The `statement` event of one statement the engine reported on.
    fn report_event<'e>(
        &'e self,
        s: &'e StatementReport,
        rewritten: Option<&'e str>,
        completed: Option<&'e [Completion]>,
    ) -> Event<'e> {
        let mut event = Event::new("statement", self.session);
        event.subject = Some(&self.identity.subject);
        event.groups = Some(&self.identity.groups);
        event.statement = Some(&s.text);
        event.decision = Some(s.decision);
        event.policies = Some(&s.policies);
        event.rules = (!s.rules.is_empty()).then_some(&s.rules[..]);
        event.columns = (!s.columns.is_empty()).then_some(Columns(&s.columns));
        event.masked = (!s.masked.is_empty()).then_some(&s.masked[..]);
        event.observed = (!s.observed.is_empty()).then_some(&s.observed[..]);
        event.reason = s.reason.as_deref();
        event.rewritten = rewritten;
        event.completed = completed;
        event
    }

    /// Writes a prepared statement's `statement` event (decided at its
    /// Parse) with what completed since the last event; its `seq`, or
    /// `None` if it could not be written (it stays unrecorded).
    fn record(&mut self, p: &Prepared) -> Option<u64> {
        let rewritten = rewritten(&p.verdict);
        let completed = (!self.completions.is_empty()).then_some(&self.completions[..]);
        let seq = match &p.report {
            Some(report) => {
                self.shared.metrics.statement(report.decision);
                self.shared
                    .audit
                    .append(&self.report_event(report, rewritten, completed))
            }
            None => {
                self.shared.metrics.statement("allow");
                self.shared
                    .audit
                    .append(&self.empty_event(&p.text, completed))
            }
        }
        .ok()?;
        self.completions.clear();
        p.recorded.store(true, Ordering::Relaxed);
        Some(seq)
    }

    /// Records the statements prepared since the last `Sync` that no
    /// `Execute` recorded (prepared and described, or never run). Nothing
    /// of theirs has run, so a failed write only leaves them to be
    /// recorded at their first `Execute`, which is refused without it.
    fn record_prepared(&mut self) {
        for p in std::mem::take(&mut self.unrecorded) {
            if !p.recorded.load(Ordering::Relaxed) {
                let _ = self.record(&p);
            }
        }
    }

    /// Refuses a statement. Inside a transaction (or behind statements still
    /// running) the refusal is raised by the server itself, so the
    /// transaction fails there exactly as it would in PostgreSQL; otherwise
    /// the proxy answers directly.
    fn deny(&mut self, denial: &Denial) {
        if self.pending.is_empty() && self.status != b'T' {
            self.local_error(messages::error_response(
                Severity::Error,
                denial.sqlstate,
                &denial.message,
                denial.hint.as_deref(),
            ));
            return;
        }
        let raise = raise_statement(denial);
        self.forward(&messages::query(&raise));
    }

    fn upstream_frame(&mut self, frame: Frame) {
        if !self.tracker.response(frame.tag) {
            return;
        }
        if !self.inflight.is_empty() {
            // The row limit of the statement now answering, if any.
            let limit = self
                .inflight
                .front()
                .filter(|f| f.segment == self.segments_done)
                .and_then(|f| f.limit.clone());
            match frame.tag {
                b'D' => {
                    if let Some((rows, _)) = &limit
                        && self.rows_seen >= *rows
                    {
                        // Beyond the limit: dropped; the server finishes
                        // the statement (cancelling it would fail the
                        // client's transaction).
                        self.cut = true;
                        return;
                    }
                    self.rows_seen += 1;
                }
                b'C' | b's' if self.cut => {
                    // Say so, and end the result (a suspended portal too:
                    // it has nothing more to give) with the rows delivered.
                    let (rows, rule) = limit.unwrap_or_default();
                    let delivered = self.rows_seen;
                    self.to_client.extend_from_slice(&messages::error_response(
                        Severity::Notice,
                        "01000",
                        &format!(
                            "clsf: the result was cut to {rows} rows per statement by rule `{rule}`; {delivered} delivered"
                        ),
                        None,
                    ));
                    self.to_client
                        .extend_from_slice(&messages::command_complete(&format!(
                            "SELECT {delivered}"
                        )));
                    self.completed("ok", Some(delivered));
                    return;
                }
                b'C' => {
                    let rows = messages::decode_cstring_body(frame.body())
                        .ok()
                        .and_then(|tag| tag.rsplit(|b| *b == b' ').next())
                        .and_then(|n| std::str::from_utf8(n).ok())
                        .and_then(|n| n.parse().ok());
                    self.completed("ok", rows);
                }
                b'E' => self.completed("error", None),
                b's' => self.completed("suspended", None),
                b'I' => self.completed("ok", Some(0)),
                _ => {}
            }
        }
        if frame.tag == b'Z' {
            self.segments_done += 1;
            // What the server skipped after an error never completes.
            while self
                .inflight
                .front()
                .is_some_and(|f| f.segment < self.segments_done)
            {
                self.inflight.pop_front();
            }
            self.rows_seen = 0;
        }
        self.to_client.extend_from_slice(&frame.raw);
        if frame.tag == b'Z' {
            if let Some(&status) = frame.body().first() {
                self.status = status;
            }
            if matches!(self.pending.front(), Some(Pending::Upstream)) {
                self.pending.pop_front();
            }
            while let Some(Pending::Local(_)) = self.pending.front() {
                if let Some(Pending::Local(bytes)) = self.pending.pop_front() {
                    self.to_client.extend_from_slice(&bytes);
                }
            }
        }
    }
}

/// Each statement's row limit, in order (one entry for an empty string).
fn limits(decision: &Decision) -> Vec<RowLimit> {
    if decision.statements.is_empty() {
        return vec![None];
    }
    decision
        .statements
        .iter()
        .map(|s| s.row_limit.clone())
        .collect()
}

/// `decision` refused for `denial`, with every statement's report saying so.
fn refused(mut decision: Decision, denial: Denial) -> Decision {
    for r in &mut decision.statements {
        r.decision = "deny";
        r.reason = Some(denial.message.clone());
    }
    decision.verdict = Verdict::Deny(denial);
    decision
}

/// The refusal of statement text that is not UTF-8.
fn not_utf8() -> Denial {
    Denial {
        sqlstate: "22021",
        message: "query text is not valid UTF-8".to_owned(),
        hint: None,
        policies: Vec::new(),
    }
}

/// Statements prepared without a `Sync` after which their events are
/// written anyway (they are written at the `Sync` otherwise).
const MAX_UNRECORDED: usize = 64;

/// The text forwarded in place of the client's, when a verdict rewrote it.
fn rewritten(verdict: &Verdict) -> Option<&str> {
    match verdict {
        Verdict::Rewrite(t) => Some(t.as_str()),
        Verdict::Hold(h) => match &h.then {
            Verdict::Rewrite(t) => Some(t.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// The refusal of a statement whose audit event could not be written.
fn audit_refusal() -> Denial {
    Denial {
        sqlstate: errors::AUDIT_UNAVAILABLE.0,
        message: errors::AUDIT_UNAVAILABLE.1.to_owned(),
        hint: None,
        policies: Vec::new(),
    }
}

/// A statement that makes the server raise the denial. The texts travel
/// hex-encoded, so nothing in them (names come from the client's statement)
/// can escape the literal they are in.
fn raise_statement(denial: &Denial) -> String {
    let hex = |s: &str| -> String { s.bytes().map(|b| format!("{b:02x}")).collect() };
    let text = |s: &str| format!("convert_from(decode('{}', 'hex'), 'UTF8')", hex(s));
    let sqlstate: String = denial
        .sqlstate
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let mut using = format!(
        "ERRCODE = '{sqlstate}', MESSAGE = {}",
        text(&denial.message)
    );
    if let Some(h) = &denial.hint {
        using.push_str(&format!(", HINT = {}", text(h)));
    }
    format!("DO $clsf$ BEGIN RAISE EXCEPTION USING {using}; END $clsf$")
}
