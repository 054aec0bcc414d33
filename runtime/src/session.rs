//! One client session: startup → token authentication → upstream login →
//! relay. Every simple-protocol query is decided by the statement engine,
//! audited, and then forwarded unchanged, forwarded rewritten, or refused
//! with an ErrorResponse followed by ReadyForQuery, as PostgreSQL does.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clsf_compiler::Engine;
use clsf_compiler::engine::identity::identity_for;
use clsf_compiler::engine::{Denial, Identity, PrincipalAccess, Verdict};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;

use crate::audit::{AuditLog, Event};
use crate::auth::jwt::Verifier;
use crate::extended::{Sent, Tracker};
use crate::tls::ClientStream;
use crate::upstream::{self, Target};
use crate::wire::errors;
use crate::wire::frame::{Frame, MAX_FRAME, split_frame, split_startup};
use crate::wire::messages::{self, Severity, Startup};

/// Startup parameters passed through to the upstream server. Anything else
/// (notably `options`, which could change `search_path`) is refused.
const PASSTHROUGH_PARAMS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
];

/// How long a client has to complete startup and authentication.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// What every session shares.
#[derive(Debug)]
pub struct Shared {
    /// The policy in force; replaced whole by a successful reload.
    pub loaded: RwLock<Arc<Loaded>>,
    /// Token verification.
    pub verifier: Verifier,
    /// The upstream database and its credential.
    pub upstream: Target,
    /// The audit trail.
    pub audit: AuditLog,
    /// Session numbering.
    pub next_session: AtomicU64,
    /// TLS for clients, when configured.
    pub tls: Option<ClientTls>,
    /// Close sessions idle (outside a transaction) for this long.
    pub idle_timeout: Option<Duration>,
    /// Backend keys handed to clients → the session and its upstream key.
    pub cancel_keys: Mutex<HashMap<(i32, i32), CancelTarget>>,
}

/// The client-side TLS settings.
#[derive(Clone)]
pub struct ClientTls {
    /// The rustls acceptor.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Refuse plaintext clients.
    pub required: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// One compiled policy, as enforced.
#[derive(Debug)]
pub struct Loaded {
    /// The engine.
    pub engine: Engine,
    /// Hash identifying the plan, logged with each connection and reload.
    pub plan_hash: String,
    /// Increases with every successful reload.
    pub generation: u64,
}

impl Shared {
    /// The policy in force now.
    pub fn current(&self) -> Arc<Loaded> {
        Arc::clone(&self.loaded.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Where a cancel request for one client-visible key goes.
#[derive(Debug, Clone)]
pub struct CancelTarget {
    /// The session it belongs to.
    pub session: u64,
    /// The upstream backend's key.
    pub upstream_key: (i32, i32),
}

/// Removes a session's cancel key when the session ends, however it ends.
struct CancelKeyGuard<'a> {
    keys: &'a Mutex<HashMap<(i32, i32), CancelTarget>>,
    key: (i32, i32),
}

impl Drop for CancelKeyGuard<'_> {
    fn drop(&mut self) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// Why a session ended early; logged by the server.
#[derive(Debug)]
pub struct SessionEnd(pub String);

type Result<T> = std::result::Result<T, SessionEnd>;

fn end(what: impl Into<String>) -> SessionEnd {
    SessionEnd(what.into())
}

async fn send(client: &mut ClientStream, bytes: &[u8]) -> Result<()> {
    client
        .write_all(bytes)
        .await
        .map_err(|e| end(format!("client write: {e}")))
}

/// Runs one client connection to completion.
pub async fn run(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: broadcast::Receiver<()>,
) -> Result<()> {
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let _ = tcp.set_nodelay(true);
    let mut client = ClientStream::Plain(tcp);
    let mut buf = BytesMut::with_capacity(8192);
    let started = tokio::time::timeout(
        STARTUP_TIMEOUT,
        startup(&shared, &mut client, &mut buf, session, peer),
    )
    .await;
    let ready = match started {
        Ok(Ok(Some(ready))) => ready,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            let _ = send(
                &mut client,
                &errors::protocol_violation("startup took too long"),
            )
            .await;
            return Err(end("startup timed out"));
        }
    };
    let _cancel_guard = CancelKeyGuard {
        keys: &shared.cancel_keys,
        key: ready.cancel_key,
    };
    let subject = ready.identity.subject.clone();
    let groups = ready.identity.groups.clone();
    let result = relay(&shared, client, buf, ready, session, shutdown).await;
    let mut event = Event::new("disconnect", session);
    event.subject = Some(&subject);
    event.groups = Some(&groups);
    let reason = result.as_ref().err().map(|e| e.0.clone());
    event.reason = reason.as_deref();
    let _ = shared.audit.append(&event);
    result
}

struct Ready {
    cancel_key: (i32, i32),
    claims: serde_json::Value,
    loaded: Arc<Loaded>,
    identity: Identity,
    access: Arc<PrincipalAccess>,
    upstream: TcpStream,
    upstream_buf: BytesMut,
}

async fn read_more(client: &mut ClientStream, buf: &mut BytesMut) -> Result<bool> {
    let n = client
        .read_buf(buf)
        .await
        .map_err(|e| end(format!("client read: {e}")))?;
    Ok(n > 0)
}

/// Startup and authentication. `None` when the client went away or only
/// wanted something we answer without a session (cancel).
async fn startup(
    shared: &Shared,
    client: &mut ClientStream,
    buf: &mut BytesMut,
    session: u64,
    peer: SocketAddr,
) -> Result<Option<Ready>> {
    let params = loop {
        let packet = match split_startup(buf) {
            Ok(Some(p)) => p,
            Ok(None) => {
                if !read_more(client, buf).await? {
                    return Ok(None);
                }
                continue;
            }
            Err(e) => {
                send(client, &errors::protocol_violation(&e.to_string())).await?;
                return Err(end(format!("bad startup packet: {e}")));
            }
        };
        match messages::decode_startup(&packet) {
            Ok(Startup::Startup(params)) => {
                if let Some(tls) = &shared.tls
                    && tls.required
                    && !client.is_tls()
                {
                    send(client, &errors::tls_required()).await?;
                    return Err(end("plaintext client refused: TLS is required"));
                }
                break params;
            }
            Ok(Startup::SslRequest) => {
                // Bytes sent before our answer would be read as if they came
                // through TLS: refuse them (CVE-2021-23222 in libpq's terms).
                if !buf.is_empty() {
                    return Err(end("client sent data before the encryption answer"));
                }
                match (&shared.tls, client.is_tls()) {
                    (Some(tls), false) => {
                        send(client, b"S").await?;
                        let ClientStream::Plain(tcp) =
                            std::mem::replace(client, ClientStream::Upgrading)
                        else {
                            return Err(end("TLS upgrade of a stream that is not plain"));
                        };
                        match tls.acceptor.accept(tcp).await {
                            Ok(stream) => *client = ClientStream::Tls(Box::new(stream)),
                            Err(e) => return Err(end(format!("TLS handshake failed: {e}"))),
                        }
                    }
                    (Some(_), true) => {
                        send(client, &errors::protocol_violation("SSLRequest inside TLS")).await?;
                        return Err(end("SSLRequest inside TLS"));
                    }
                    // No TLS configured: 'N' tells libpq to continue in
                    // plaintext or give up, as its sslmode says.
                    (None, _) => send(client, b"N").await?,
                }
            }
            Ok(Startup::GssEncRequest) => {
                if !buf.is_empty() {
                    return Err(end("client sent data before the encryption answer"));
                }
                send(client, b"N").await?;
            }
            Ok(Startup::Cancel { pid, secret }) => {
                // Only the client that received this random key can know it;
                // an unknown key is ignored, as PostgreSQL ignores it.
                let target = shared
                    .cancel_keys
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&(pid, secret))
                    .cloned();
                if let Some(target) = target {
                    let mut event = Event::new("cancel", target.session);
                    event.peer = Some(peer.to_string());
                    let _ = shared.audit.append(&event);
                    upstream::cancel(&shared.upstream, target.upstream_key).await;
                }
                return Ok(None);
            }
            Ok(Startup::UnsupportedVersion(v)) => {
                send(
                    client,
                    &errors::unsupported_fatal(&format!(
                        "unsupported frontend protocol {}.{}",
                        v >> 16,
                        v & 0xffff
                    )),
                )
                .await?;
                return Err(end("unsupported protocol version"));
            }
            Err(e) => {
                send(client, &errors::protocol_violation(&e.to_string())).await?;
                return Err(end(format!("bad startup packet: {e}")));
            }
        }
    };

    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let user = get("user").unwrap_or("");
    let database = get("database").filter(|d| !d.is_empty()).unwrap_or(user);
    if database != shared.upstream.database {
        send(client, &errors::wrong_database(database)).await?;
        return Err(end("wrong database"));
    }
    // Pinned for the engine's sake: names resolve in `public`, and the
    // server reads statement text as the engine's parser does (UTF-8,
    // standard-conforming strings). Startup values are also what `RESET`
    // and `DISCARD ALL` return to.
    let mut passthrough = vec![
        ("search_path".to_owned(), "public".to_owned()),
        ("client_encoding".to_owned(), "UTF8".to_owned()),
        ("standard_conforming_strings".to_owned(), "on".to_owned()),
    ];
    for (key, value) in &params {
        if key == "user" || key == "database" {
            continue;
        }
        if !PASSTHROUGH_PARAMS.contains(&key.as_str()) {
            send(
                client,
                &errors::unsupported_fatal(&format!(
                    "startup parameter `{key}` is not allowed through the clsf proxy"
                )),
            )
            .await?;
            return Err(end(format!("refused startup parameter {key}")));
        }
        if key == "client_encoding" && !is_utf8(value) {
            send(
                client,
                &errors::unsupported_fatal("the clsf proxy supports client_encoding UTF8 only"),
            )
            .await?;
            return Err(end("non-UTF8 client encoding"));
        }
        if key == "client_encoding" {
            // Already pinned to UTF8 above.
            continue;
        }
        passthrough.push((key.clone(), value.clone()));
    }

    // The password field carries the workload token.
    send(client, &messages::auth_cleartext()).await?;
    let frame = loop {
        match split_frame(buf, MAX_FRAME) {
            Ok(Some(f)) => break f,
            Ok(None) => {
                if !read_more(client, buf).await? {
                    return Ok(None);
                }
            }
            Err(e) => {
                send(client, &errors::protocol_violation(&e.to_string())).await?;
                return Err(end(e.to_string()));
            }
        }
    };
    if frame.tag != b'p' {
        send(
            client,
            &errors::protocol_violation("expected a password message"),
        )
        .await?;
        return Err(end("expected password message"));
    }
    let token = messages::decode_cstring_body(frame.body())
        .ok()
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or("");
    let claims = match shared.verifier.verify(token) {
        Ok(c) => c,
        Err(rejected) => {
            let mut event = Event::new("auth_failed", session);
            event.peer = Some(peer.to_string());
            event.reason = Some(&rejected.0);
            let _ = shared.audit.append(&event);
            send(client, &errors::auth_failed(&rejected.0)).await?;
            return Err(end(format!("authentication failed: {rejected}")));
        }
    };
    let loaded = shared.current();
    let identity = identity_for(loaded.engine.plan(), &claims);
    let access = loaded.engine.access_for(&identity);

    let mut event = Event::new("connect", session);
    event.peer = Some(peer.to_string());
    event.subject = Some(&identity.subject);
    event.groups = Some(&identity.groups);
    event.plan = Some(&loaded.plan_hash);
    if shared.audit.append(&event).is_err() {
        send(
            client,
            &messages::error_response(
                Severity::Fatal,
                "58030",
                "the audit trail cannot be written",
                None,
            ),
        )
        .await?;
        return Err(end("audit trail unavailable at connect"));
    }

    let connected = match upstream::connect(&shared.upstream, &passthrough).await {
        Ok(c) => c,
        Err(e) => {
            send(client, &errors::upstream_unavailable()).await?;
            return Err(end(format!("upstream: {e}")));
        }
    };
    let mut out = BytesMut::new();
    out.extend_from_slice(&messages::auth_ok());
    for ps in &connected.parameter_status {
        out.extend_from_slice(ps);
    }
    // The key handed out is random and never the upstream's: cancel requests
    // come to the proxy, which maps the key to the upstream backend.
    let (pid, secret) = loop {
        let key = random_key();
        let mut keys = shared.cancel_keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.contains_key(&key) {
            continue;
        }
        if let Some(upstream_key) = connected.key {
            keys.insert(
                key,
                CancelTarget {
                    session,
                    upstream_key,
                },
            );
        }
        break key;
    };
    out.extend_from_slice(&messages::backend_key_data(pid, secret));
    out.extend_from_slice(&messages::ready_for_query(b'I'));
    if let Err(e) = send(client, &out).await {
        shared
            .cancel_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(pid, secret));
        return Err(e);
    }
    Ok(Some(Ready {
        cancel_key: (pid, secret),
        claims,
        loaded,
        identity,
        access,
        upstream: connected.stream,
        upstream_buf: connected.leftover,
    }))
}

fn is_utf8(encoding: &str) -> bool {
    let e = encoding
        .trim()
        .trim_matches('\'')
        .to_ascii_lowercase()
        .replace(['-', '_'], "");
    e == "utf8" || e == "unicode"
}

fn random_key() -> (i32, i32) {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let pid = i32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]);
    let secret = i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    (pid, secret)
}

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
    /// The verified claims, to recompute groups when the policy is reloaded.
    claims: serde_json::Value,
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

async fn relay(
    shared: &Shared,
    mut client: ClientStream,
    mut cbuf: BytesMut,
    ready: Ready,
    session: u64,
    mut shutdown: broadcast::Receiver<()>,
) -> Result<()> {
    let Ready {
        cancel_key: _,
        claims,
        loaded,
        identity,
        access,
        mut upstream,
        upstream_buf: mut ubuf,
    } = ready;
    let mut terminating = false;
    let mut draining = false;
    let mut r = Relay {
        shared,
        claims,
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
            _ = shutdown.recv(), if !draining => {
                draining = true;
            }
        }
    }
}

async fn flush(
    r: &mut Relay<'_>,
    client: &mut ClientStream,
    upstream: &mut TcpStream,
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
    /// Picks up a reloaded policy: groups are recomputed from the session's
    /// verified claims, and the access table comes from the new plan.
    fn refresh(&mut self) {
        let current = self.shared.current();
        if current.generation == self.loaded.generation {
            return;
        }
        self.identity = identity_for(current.engine.plan(), &self.claims);
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
            self.refuse_parse(&Denial {
                sqlstate: "22021",
                message: "query text is not valid UTF-8".to_owned(),
                hint: None,
                policies: Vec::new(),
            });
            return Ok(());
        };
        self.refresh();
        let decision = self.loaded.engine.decide(&self.access, text);
        if !self.audit(text, &decision) {
            self.refuse_parse(&Denial {
                sqlstate: "58030",
                message: "the audit trail cannot be written, so the statement is refused"
                    .to_owned(),
                hint: None,
                policies: Vec::new(),
            });
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
            && self.loaded.engine.decide(&self.access, &p.text).verdict != p.verdict
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
            self.refuse_parse(&Denial {
                sqlstate: "58030",
                message: "the audit trail cannot be written, so the statement is refused"
                    .to_owned(),
                hint: None,
                policies: Vec::new(),
            });
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
            self.deny(&Denial {
                sqlstate: "22021",
                message: "query text is not valid UTF-8".to_owned(),
                hint: None,
                policies: Vec::new(),
            });
            return Ok(());
        };
        self.refresh();
        let decision = self.loaded.engine.decide(&self.access, text);
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
