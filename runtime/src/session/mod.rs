//! One client session: startup → token authentication → upstream login →
//! relay. `startup` negotiates TLS, verifies the token and logs in upstream;
//! `relay` decides every query and `Parse` with the statement engine,
//! audits it, and forwards it unchanged, rewritten, or refused with an
//! ErrorResponse followed by ReadyForQuery, as PostgreSQL does.

mod objects;
mod refusals;
mod relay;
mod settings;
mod startup;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use clsf_engine::Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::approvals::Approvals;
use crate::audit::{AuditLog, Event};
use crate::auth::jwt::Issuers;
use crate::auth::scram::ScramVerifier;
use crate::config::OnExpiry;
use crate::tls::ClientStream;
use crate::upstream::Target;
use crate::wire::errors;

use self::relay::relay;
pub use self::startup::Local;
use self::startup::startup;

/// How long a refused client has to read its refusal and go.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// What every session shares.
#[derive(Debug)]
pub struct Shared {
    /// The policy in force; replaced whole by a successful reload.
    pub loaded: RwLock<Arc<Loaded>>,
    /// Token verification, per issuer.
    pub issuers: Issuers,
    /// Static service accounts by name.
    pub accounts: HashMap<String, ScramVerifier>,
    /// Failed authentications per peer and per account.
    pub throttle: crate::auth::limits::Throttle,
    /// Open sessions per identity.
    pub per_identity: crate::auth::limits::SessionCounts,
    /// What happens when a session's token expires.
    pub on_token_expiry: OnExpiry,
    /// Longest session, whatever the credential.
    pub max_session: Option<Duration>,
    /// The upstream database and its credential.
    pub upstream: Target,
    /// When the live catalog is compared with the schema lock.
    pub schema_check: Schedule,
    /// The audit trail.
    pub audit: AuditLog,
    /// Session numbering.
    pub next_session: AtomicU64,
    /// TLS for clients, when configured.
    pub tls: Option<ClientTls>,
    /// How long a client has to complete startup and authentication.
    pub startup_timeout: Duration,
    /// Close sessions idle (outside a transaction) for this long.
    pub idle_timeout: Option<Duration>,
    /// Cancel statements running longer than this.
    pub statement_timeout: Option<Duration>,
    /// Longest statement text analysed; longer ones are refused.
    pub max_statement_bytes: usize,
    /// Backend keys handed to clients → the session and its upstream key.
    pub cancel_keys: Mutex<HashMap<(i32, i32), CancelTarget>>,
    /// Requests for held statements.
    pub approvals: Arc<Approvals>,
    /// Where approvers decide (the admin listener's page); without an
    /// admin listener, statements that need approval are refused.
    pub approval_url: Option<String>,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Record each statement's completion (rows, duration) on the session's
    /// next event.
    pub audit_completions: bool,
}

/// The client-side TLS settings.
#[derive(Clone)]
pub struct ClientTls {
    /// The rustls acceptor.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Refuse plaintext clients.
    pub required: bool,
    /// Client certificates (verified against the client CA) are identities.
    pub certificates: bool,
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
    /// The bundle's version, when the policy is a bundle.
    pub bundle_version: Option<u64>,
}

/// When the live catalog is compared with the schema lock (the `drift` module),
/// and how a new policy asks for a comparison at once.
#[derive(Debug)]
pub struct Schedule {
    /// Time between comparisons.
    pub every: Duration,
    /// Woken when a policy comes into force.
    wake: tokio::sync::Notify,
}

impl Schedule {
    /// Comparisons every `every`.
    pub fn new(every: Duration) -> Schedule {
        Schedule {
            every,
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Asks for a comparison now (a new policy came into force).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Completes when a comparison is asked for.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
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

/// How long a finished connection waits for its TLS close to be sent.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Answers a connection beyond `max_connections`: a CancelRequest is still
/// carried out (a client at the limit must be able to stop its own
/// statement); anything else gets FATAL 53300, as PostgreSQL answers when
/// it has no room, also in reply to an SSLRequest, where libpq shows it.
/// Bounded in time: a client that sends nothing is dropped.
pub async fn refuse_over_limit(shared: Arc<Shared>, mut tcp: TcpStream, peer: SocketAddr) {
    use crate::wire::messages::{Startup, decode_startup};
    let _ = tcp.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(512);
    // At most a GSSENCRequest, then an SSLRequest, before the startup packet.
    for _ in 0..3 {
        let packet = match read_startup(&mut tcp, &mut buf).await {
            None => return,
            Some(Ok(packet)) => packet,
            Some(Err(())) => {
                shared.metrics.connections_refused.inc();
                refuse_and_drain(&mut tcp).await;
                return;
            }
        };
        match decode_startup(&packet) {
            Ok(Startup::Cancel { pid, secret }) => {
                startup::cancel(&shared, pid, secret, peer).await;
                return;
            }
            Ok(Startup::GssEncRequest) => {
                if tcp.write_all(b"N").await.is_err() {
                    return;
                }
            }
            Ok(Startup::SslRequest) => {
                // The refusal travels inside TLS when the proxy has TLS:
                // libpq does not show an error sent in reply to its
                // SSLRequest, and a client that requires TLS would read a
                // plain "N" as the wrong failure. Without TLS, the "N" is
                // answered with the startup packet, refused next (libpq
                // treats bytes after the "N" as a broken server).
                let Some(tls) = &shared.tls else {
                    if tcp.write_all(b"N").await.is_err() {
                        return;
                    }
                    continue;
                };
                shared.metrics.connections_refused.inc();
                if tcp.write_all(b"S").await.is_err() {
                    return;
                }
                let accepted =
                    tokio::time::timeout(REFUSAL_TIMEOUT, tls.acceptor.accept(tcp)).await;
                if let Ok(Ok(mut stream)) = accepted {
                    refuse_and_drain(&mut stream).await;
                }
                return;
            }
            _ => {
                shared.metrics.connections_refused.inc();
                refuse_and_drain(&mut tcp).await;
                return;
            }
        }
    }
}

/// The next startup-phase packet of a refused client, through the same
/// framing as a session's: `None` when it sends nothing in time or goes,
/// `Err` when its length is not that of a startup packet.
async fn read_startup(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
) -> Option<std::result::Result<bytes::Bytes, ()>> {
    use tokio::io::AsyncReadExt;
    tokio::time::timeout(REFUSAL_TIMEOUT, async {
        loop {
            match crate::wire::frame::split_startup(buf) {
                Ok(Some(packet)) => return Some(Ok(packet)),
                Ok(None) => {}
                Err(_) => return Some(Err(())),
            }
            if tcp.read_buf(buf).await.ok()? == 0 {
                return None;
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Sends 53300, then reads what the client still sends until it closes, so
/// closing does not reset the connection before the refusal is read.
async fn refuse_and_drain<S>(stream: &mut S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt;
    let _ = stream.write_all(&errors::too_many_connections()).await;
    let _ = stream.flush().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let _ = stream.shutdown().await;
}

/// What tells a session that the proxy is shutting down (or that what
/// started it is gone): a one-shot receive, polled on every turn of the
/// session's loop without taking a lock, which tokio's broadcast receive
/// takes on every poll (0.6 % of the proxy's CPU under pgbench,
/// docs/performance.md).
pub type Shutdown = tokio::sync::oneshot::Receiver<()>;

/// Runs one client connection to completion.
pub async fn run(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    shutdown: Shutdown,
) -> Result<()> {
    let _ = tcp.set_nodelay(true);
    serve(shared, ClientStream::Plain(tcp), peer, None, shutdown).await
}

/// Runs one in-process client to completion: a PostgreSQL client on the
/// other end of `stream`, whose identity was proved where it came from
/// (the MCP listener). Everything after the login is a session like any
/// other: the same engine, audit trail, approvals and limits.
pub async fn run_local(
    shared: Arc<Shared>,
    stream: tokio::io::DuplexStream,
    peer: SocketAddr,
    local: Local,
    shutdown: Shutdown,
) -> Result<()> {
    serve(
        shared,
        ClientStream::Local(stream),
        peer,
        Some(&local),
        shutdown,
    )
    .await
}

async fn serve(
    shared: Arc<Shared>,
    mut client: ClientStream,
    peer: SocketAddr,
    local: Option<&Local>,
    shutdown: Shutdown,
) -> Result<()> {
    let session = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let mut buf = BytesMut::with_capacity(8192);
    let started = tokio::time::timeout(
        shared.startup_timeout,
        startup(&shared, &mut client, &mut buf, session, peer, local),
    )
    .await;
    let mut ready = match started {
        Ok(Ok(Some(ready))) => ready,
        Ok(Ok(None)) => {
            // A cancel request (inside TLS since libpq 17) is answered by
            // closing the connection; over TLS that is a close_notify first,
            // or OpenSSL 3 clients report "unexpected eof while reading"
            // and count the cancel as failed. Bounded: a client that stopped
            // reading does not hold the task.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, client.shutdown()).await;
            return Ok(());
        }
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
    // Held until the session ends: frees the identity's place.
    let _slot = ready.slot.take();
    let _cancel_guard = CancelKeyGuard {
        keys: &shared.cancel_keys,
        key: ready.cancel_key,
    };
    shared.metrics.sessions.inc();
    shared.metrics.sessions_open.inc();
    let subject = ready.identity.subject.clone();
    let groups = ready.identity.groups.clone();
    let (result, completed) = relay(&shared, client, buf, ready, session, shutdown).await;
    shared.metrics.sessions_open.dec();
    let mut event = Event::new("disconnect", session);
    event.subject = Some(&subject);
    event.groups = Some(&groups);
    let reason = result.as_ref().err().map(|e| e.0.clone());
    event.reason = reason.as_deref();
    event.completed = (!completed.is_empty()).then_some(&completed[..]);
    let _ = shared.audit.append(&event);
    result
}
