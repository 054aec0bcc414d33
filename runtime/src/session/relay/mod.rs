//! The relay: a session after login. `Relay` is the session's state
//! machine: it takes one client or upstream frame at a time
//! ([`Relay::client_frame`], [`Relay::upstream_frame`]), decides and audits
//! what it must, and queues bytes for either side (`to_client`,
//! `to_upstream`). It does no I/O of its own: `io` reads the sockets,
//! feeds it frames and writes what it queued. The audit event of a
//! statement is appended while its frame is handled, so it is on the trail
//! before the loop writes the statement to the server.
//!
//! One file per protocol concern: `simple` (Query), `extended` (Parse,
//! Bind, Execute), `held` (approvals), `records` (audit events),
//! `results` (what the server answers: completions and row limits).

mod extended;
mod held;
mod io;
mod records;
mod results;
mod simple;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::{Bytes, BytesMut};
use clsf_engine::{Decision, Denial, Hold, Identity, PrincipalAccess, StatementReport, Verdict};
use sha2::{Digest, Sha256};

use crate::approvals::{self, State};
use crate::audit::{Columns, Completion, Event};
use crate::auth::Proven;
use crate::extended::{Sent, Tracker};
use crate::wire::errors;
use crate::wire::frame::Frame;
use crate::wire::kinds::{Backend, Frontend, Target, TransactionStatus};
use crate::wire::messages::{self, Severity};

use super::objects::{self, SqlObjects};
use super::refusals::{self, not_utf8};
use super::{Loaded, Result, Shared, end};

pub(super) use io::relay;
use records::{audit_refusal, rewritten};
use simple::{raise_statement, refused};

/// What the proxy decided for a statement text at a `Parse`.
struct Decided {
    text: String,
    decision: &'static str,
    /// The most rows one statement may return, and the rule.
    row_limit: RowLimit,
    /// The engine's decision (shared with its cache): what is forwarded,
    /// and the report for its `statement` event.
    decided: Arc<Decision>,
    /// The policy generation it was decided under.
    generation: u64,
}

impl Decided {
    fn new(text: &str, decided: Arc<Decision>, generation: u64) -> Decided {
        let report = decided.statements.first();
        Decided {
            text: text.to_owned(),
            decision: report.map_or("allow", |r| r.decision),
            row_limit: report.and_then(|r| r.row_limit.clone()),
            decided,
            generation,
        }
    }

    /// What is forwarded.
    fn verdict(&self) -> &Verdict {
        &self.decided.verdict
    }

    /// The engine's report (`None` for an empty statement).
    fn report(&self) -> Option<&StatementReport> {
        self.decided.statements.first()
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
    /// Only where its statement is held for approval.
    params: Option<[u8; 32]>,
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
    /// Statements of this session ran unanalysed: its identity had nothing
    /// withheld (`full_clear`) when they were decided. Once a reload
    /// withholds something, what they left behind (a search path, a
    /// temporary view shadowing a table) could read around the engine, so
    /// the session ends instead.
    unanalysed: bool,
    /// Transaction status from the last ReadyForQuery.
    status: TransactionStatus,
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
    /// The server completed a statement that may have changed the schema
    /// (its tag), not yet known to be committed: at the next idle
    /// ReadyForQuery the live catalog is compared with the lock at once.
    schema_changed: bool,
    /// Completions not yet recorded: they go on the session's next event
    /// (one line per statement instead of two).
    completions: Vec<Completion>,
    /// The SQLSTATE of a FATAL error the server sent (it ends the session
    /// from its side: shutdown, restart, terminated backend), for the
    /// disconnect event.
    upstream_fatal: Option<String>,
    to_client: BytesMut,
    to_upstream: BytesMut,
}
impl<'a> Relay<'a> {
    /// The state of a session that just logged in.
    fn new(
        shared: &'a Shared,
        proven: Proven,
        loaded: Arc<Loaded>,
        identity: Identity,
        access: Arc<PrincipalAccess>,
        session: u64,
    ) -> Relay<'a> {
        Relay {
            shared,
            proven,
            loaded,
            access,
            identity,
            session,
            unanalysed: false,
            status: TransactionStatus::Idle,
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
            schema_changed: false,
            completions: Vec::new(),
            upstream_fatal: None,
            to_client: BytesMut::new(),
            to_upstream: BytesMut::new(),
        }
    }

    /// Ends the session's state: a statement still waiting for approval is
    /// withdrawn, statements prepared and never executed or synced are
    /// recorded; returns what completed since the last event (for the
    /// disconnect event).
    fn finish(&mut self) -> Vec<Completion> {
        // However the session ends, a statement still waiting is withdrawn.
        if let Some(h) = self.held.take() {
            self.shared.metrics.approvals_pending.dec();
            self.shared.metrics.approval("withdrawn");
            self.shared.approvals.end(
                &h.id,
                State::Withdrawn {
                    reason: "the session ended".to_owned(),
                },
            );
            self.audit_approval(
                "approval_refused",
                &h.id,
                Some("withdrawn: the session ended"),
            );
        }
        // Statements prepared and never executed or synced are recorded too.
        self.record_prepared();
        // What completed since the last event goes on the disconnect event.
        std::mem::take(&mut self.completions)
    }
}

impl Relay<'_> {
    /// Decides a query string for this session with the plan in force.
    fn decide(&self, text: &str) -> Arc<Decision> {
        if text.len() > self.shared.max_statement_bytes {
            return Arc::new(simple::too_long(text, self.shared.max_statement_bytes));
        }
        let started = std::time::Instant::now();
        let decision = self
            .loaded
            .engine
            .decide_shared(&self.access, self.proven.claims(), text);
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
        reports: &[clsf_engine::StatementReport],
    ) -> std::result::Result<(), Denial> {
        if reports.iter().all(|r| r.object.is_none()) {
            return Ok(());
        }
        let mut objects = std::mem::take(&mut self.objects);
        let result = {
            let this = &*self;
            let is_portal = |n: &str| this.portals.contains_key(n.as_bytes());
            let is_statement = |n: &str| this.statements.contains_key(n.as_bytes());
            let mut redecide = |t: &str| this.decide(t).statements.first().cloned();
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
    /// Takes up the policy in force before a statement is decided; ends
    /// the session when statements of it ran unanalysed and the identity
    /// now has something withheld (see `unanalysed`).
    fn refresh(&mut self) -> Result<()> {
        let current = self.shared.current();
        if current.generation != self.loaded.generation {
            self.identity = self.proven.identity(current.engine.plan());
            self.access = current.engine.access_for(&self.identity);
            self.loaded = current;
        }
        if self.access.full_clear {
            self.unanalysed = true;
        } else if self.unanalysed {
            self.to_client.extend_from_slice(&errors::policy_narrowed());
            return Err(end(
                "the policy now withholds data from an identity whose statements ran unanalysed",
            ));
        }
        Ok(())
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

    /// Handles one client frame; `false` when the client terminates.
    fn client_frame(&mut self, frame: Frame) -> Result<bool> {
        match frame.frontend() {
            Frontend::Query => self.query(&frame)?,
            Frontend::Terminate => return Ok(false),
            // COPY FROM STDIN data follows a COPY the engine already allowed.
            Frontend::CopyData | Frontend::CopyDone | Frontend::CopyFail => {
                self.to_upstream.extend_from_slice(&frame.raw)
            }
            Frontend::Parse => self.parse(&frame)?,
            Frontend::Bind => {
                if let Ok((portal, statement)) = messages::decode_bind_names(frame.body()) {
                    let rest = &frame.body()[portal.len() + statement.len() + 2..];
                    let prepared = self.statements.get(statement).cloned();
                    // Hashed for a held statement only, the one use of it.
                    let params = prepared
                        .as_ref()
                        .filter(|p| matches!(p.verdict(), Verdict::Hold(_)))
                        .map(|_| Sha256::digest(rest).into());
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
            Frontend::Execute => self.execute(&frame)?,
            Frontend::Close => {
                if let Some((kind, name)) = frame.body().split_first()
                    && let Ok(name) = messages::decode_cstring_body(name)
                {
                    match Target::of(*kind) {
                        Some(Target::Statement) => {
                            self.statements.remove(name);
                        }
                        // PostgreSQL refuses any other byte; forgetting a
                        // portal of that name is what it leaves behind.
                        _ => {
                            self.portals.remove(name);
                        }
                    }
                }
                self.to_upstream.extend_from_slice(&frame.raw);
            }
            // Describe and Flush act on statements and portals whose text was
            // decided at Parse.
            Frontend::Describe | Frontend::Flush => self.to_upstream.extend_from_slice(&frame.raw),
            Frontend::Sync => {
                self.refused_until_sync = false;
                self.record_prepared();
                self.forward(&frame.raw);
            }
            Frontend::FunctionCall => self.local_error(errors::unsupported(
                "the fast-path function call interface is not allowed through the clsf proxy",
            )),
            Frontend::Authentication | Frontend::Unknown(_) => {
                self.to_client
                    .extend_from_slice(&errors::protocol_violation(&format!(
                        "unexpected message type `{}`",
                        frame.tag.escape_ascii()
                    )));
                return Err(end("unexpected client message"));
            }
        }
        Ok(true)
    }
}
