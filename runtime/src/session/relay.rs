//! The relay: one loop per session over client and upstream frames, with
//! every query and `Parse` decided, audited and then forwarded, rewritten or
//! refused.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use clsf_compiler::engine::{Decision, Denial, Identity, PrincipalAccess, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tokio::sync::broadcast;

use crate::audit::Event;
use crate::auth::Proven;
use crate::extended::{Sent, Tracker};
use crate::tls::{ClientStream, UpstreamStream};
use crate::upstream;
use crate::wire::errors;
use crate::wire::frame::{Frame, MAX_FRAME, split_frame};
use crate::wire::messages::{self, Severity};

use super::startup::Ready;
use super::{Loaded, Result, Shared, end, send};

/// A prepared statement as the proxy knows it.
struct Prepared {
    text: String,
    decision: &'static str,
    /// What was forwarded, and under which policy generation.
    verdict: Verdict,
    generation: u64,
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
    statements: HashMap<Vec<u8>, Prepared>,
    /// Portals by name: the statement each was bound from.
    portals: HashMap<Vec<u8>, Vec<u8>>,
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
) -> Result<()> {
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
        to_client: BytesMut::new(),
        to_upstream: BytesMut::new(),
    };
    loop {
        // Handle everything already buffered before reading more.
        while !terminating {
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
        let idle = r.pending.is_empty() && r.status == b'I' && !terminating && !draining;
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
                if n.map_err(|e| end(format!("upstream read: {e}")))? == 0 {
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
            () = async {
                match deadline {
                    Some((at, _)) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                let why = deadline.map_or("", |(_, why)| why);
                let _ = send(&mut client, &errors::session_expired(why)).await;
                let _ = upstream.write_all(&[b'X', 0, 0, 0, 4]).await;
                return Err(end(why));
            }
            _ = shutdown.recv(), if !draining => {
                draining = true;
            }
        }
    }
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
        self.loaded
            .engine
            .decide_with_claims(&self.access, self.proven.claims(), text)
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
                    self.portals.insert(portal.to_vec(), statement.to_vec());
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
        let decision = self.decide(text);
        if !self.audit(text, &decision) {
            self.refuse_parse(&audit_refusal());
            return Ok(());
        }
        match &decision.verdict {
            Verdict::Forward => self.to_upstream.extend_from_slice(&frame.raw),
            Verdict::Rewrite(new_text) => {
                let raw = messages::parse(parse.name, new_text, parse.param_types);
                self.to_upstream.extend_from_slice(&raw);
            }
            Verdict::Deny(denial) => {
                self.statements.remove(parse.name);
                self.refuse_parse(denial);
                return Ok(());
            }
        }
        let decided = decision.statements.first().map_or("allow", |r| r.decision);
        self.statements.insert(
            parse.name.to_vec(),
            Prepared {
                text: text.to_owned(),
                decision: decided,
                verdict: decision.verdict.clone(),
                generation: self.loaded.generation,
            },
        );
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
        let portal = frame.body().split(|b| *b == 0).next().unwrap_or_default();
        let prepared = self
            .portals
            .get(portal)
            .and_then(|statement| self.statements.get(statement));
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
        let mut event = Event::new("execute", self.session);
        event.subject = Some(&self.identity.subject);
        event.groups = Some(&self.identity.groups);
        // A portal of a statement prepared before the proxy saw it cannot
        // exist: every Parse passes through here.
        event.statement = prepared.map(|p| p.text.as_str());
        event.decision = prepared.map(|p| p.decision);
        if self.shared.audit.append(&event).is_err() {
            self.refuse_parse(&audit_refusal());
            return;
        }
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
        let decision = self.decide(text);
        if !self.audit(text, &decision) {
            self.local_error(errors::audit_unavailable());
            return Ok(());
        }
        match &decision.verdict {
            Verdict::Forward => self.forward(&frame.raw),
            Verdict::Rewrite(new_text) => self.forward(&messages::query(new_text)),
            Verdict::Deny(denial) => self.deny(denial),
        }
        Ok(())
    }

    /// Records every statement of a query string; false if that failed.
    fn audit(&self, text: &str, decision: &clsf_compiler::engine::Decision) -> bool {
        let subject = &self.identity.subject;
        let groups = &self.identity.groups;
        if decision.statements.is_empty() {
            let mut event = Event::new("statement", self.session);
            event.subject = Some(subject);
            event.groups = Some(groups);
            event.statement = Some(text);
            event.decision = Some("allow");
            return self.shared.audit.append(&event).is_ok();
        }
        decision.statements.iter().all(|s| {
            let mut event = Event::new("statement", self.session);
            event.subject = Some(subject);
            event.groups = Some(groups);
            event.statement = Some(&s.text);
            event.decision = Some(s.decision);
            event.policies = Some(&s.policies);
            event.masked = (!s.masked.is_empty()).then_some(&s.masked[..]);
            event.observed = (!s.observed.is_empty()).then_some(&s.observed[..]);
            event.reason = s.reason.as_deref();
            self.shared.audit.append(&event).is_ok()
        })
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

/// The refusal of statement text that is not UTF-8.
fn not_utf8() -> Denial {
    Denial {
        sqlstate: "22021",
        message: "query text is not valid UTF-8".to_owned(),
        hint: None,
        policies: Vec::new(),
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
