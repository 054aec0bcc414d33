//! Startup: TLS negotiation, the startup packet, token authentication,
//! group membership, the audit `connect` event and the upstream login.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use clsf_engine::{Identity, PrincipalAccess, StartupSetting};
use tokio::io::AsyncReadExt;

use crate::audit::Event;
use crate::auth::limits::SessionSlot;
use crate::auth::scram::{Exchange, server_nonce};
use crate::auth::{Proven, cert};
use crate::config::OnExpiry;
use crate::tls::{ClientStream, UpstreamStream};
use crate::upstream::{self};
use crate::wire::errors;
use crate::wire::frame::{Frame, MAX_FRAME, split_frame, split_startup};
use crate::wire::kinds::{Frontend, TransactionStatus};
use crate::wire::messages::{self, Severity, Startup};

use super::{CancelTarget, Loaded, Result, SessionEnd, Shared, end, send, settings};

pub(super) struct Ready {
    pub(super) cancel_key: (i32, i32),
    pub(super) proven: Proven,
    /// The upstream backend's key, to cancel a statement that runs too long.
    pub(super) upstream_key: Option<(i32, i32)>,
    /// When the session must end (token expiry or the longest session).
    pub(super) deadline: Option<(tokio::time::Instant, &'static str)>,
    pub(super) loaded: Arc<Loaded>,
    pub(super) identity: Identity,
    pub(super) access: Arc<PrincipalAccess>,
    pub(super) upstream: UpstreamStream,
    pub(super) upstream_buf: BytesMut,
    /// What keeps the server connection for a later session.
    pub(super) kept: Kept,
    /// The identity's place among its open sessions.
    pub(super) slot: Option<SessionSlot>,
}

/// How a session's server connection was made, which a later session
/// must ask for to be given it once this one ends (`upstream::pool`).
pub(super) struct Kept {
    /// For an identity that reads everything in clear.
    pub(super) clear: bool,
    /// The startup parameters it was made with.
    pub(super) params: upstream::pool::Params,
    /// What the server reported at its login, told to the next client.
    pub(super) parameter_status: Vec<bytes::Bytes>,
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
pub(super) async fn startup(
    shared: &Shared,
    client: &mut ClientStream,
    buf: &mut BytesMut,
    session: u64,
    peer: SocketAddr,
    local: Option<&Local>,
) -> Result<Option<Ready>> {
    // PostgreSQL 17's direct TLS: the client starts the TLS handshake at
    // once (a TLS record starts with 0x16, which no startup packet length
    // does) and must agree on ALPN `postgresql`.
    if let (Some(tls), ClientStream::Plain(tcp)) = (&shared.tls, &*client) {
        let mut first = [0u8; 1];
        let n = tcp
            .peek(&mut first)
            .await
            .map_err(|e| end(format!("client read: {e}")))?;
        if n == 1 && first[0] == 0x16 {
            let ClientStream::Plain(tcp) = std::mem::replace(client, ClientStream::Upgrading)
            else {
                return Err(end("TLS upgrade of a stream that is not plain"));
            };
            match tls.acceptor.accept(tcp).await {
                Ok(stream) => *client = ClientStream::Tls(Box::new(stream)),
                Err(e) => return Err(end(format!("direct TLS handshake failed: {e}"))),
            }
            if client.alpn() != Some(crate::tls::POSTGRESQL_ALPN) {
                return Err(end(
                    "direct TLS without ALPN `postgresql` is refused, as PostgreSQL refuses it",
                ));
            }
        }
    }
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
                    && !client.is_local()
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
                cancel(shared, pid, secret, peer).await;
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
    // Read now, decided once the identity is known: a malformed or
    // unsupported one ends the session before any credential is asked for.
    let settings = match settings::client_settings(&params) {
        Ok(s) => s,
        Err(settings::Unsupported(why)) => {
            send(client, &errors::unsupported_fatal(&why)).await?;
            return Err(end(format!("refused startup settings: {why}")));
        }
    };

    let proven = match local {
        Some(local) => local.proven.clone(),
        None => match login(shared, client, buf, session, peer, user).await? {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let deadline = session_deadline(shared, &proven);
    let loaded = shared.current();
    let identity = proven.identity(loaded.engine.plan());
    let access = loaded.engine.access_for(&identity);
    for (name, value) in settings {
        let value = match clsf_engine::startup_setting(&access, &name, &value) {
            Ok(StartupSetting::Forward) => value,
            Ok(StartupSetting::Replace(value)) => value,
            Err(d) => {
                let reason = format!("startup setting `{name}`: {}", d.message);
                audit_refused(shared, session, peer, &identity, local, &reason);
                send(
                    client,
                    &messages::error_response(
                        Severity::Fatal,
                        d.sqlstate,
                        &format!("{} (a startup setting)", d.message),
                        d.hint.as_deref(),
                    ),
                )
                .await?;
                return Err(end(reason));
            }
        };
        settings::merge(&mut passthrough, name, value);
    }

    let Some(slot) = shared.per_identity.take(&identity.subject) else {
        shared.metrics.identity_limit_refused.inc();
        let reason = format!(
            "identity has {} sessions open, the proxy's max_sessions_per_identity",
            shared.per_identity.limit()
        );
        audit_refused(shared, session, peer, &identity, local, &reason);
        send(
            client,
            &errors::too_many_sessions_for_identity(&identity.subject),
        )
        .await?;
        return Err(end(reason));
    };

    let mut event = Event::new("connect", session);
    event.via = local.map(|l| &l.via);
    event.peer = Some(peer.to_string());
    event.subject = Some(&identity.subject);
    event.groups = Some(&identity.groups);
    event.plan = Some(&loaded.plan_hash);
    let claims = proven.shown_claims();
    event.claims = Some(&claims);
    let tls = client.tls_version();
    event.tls = Some(&tls);
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

    // The `hash` mask's key reaches the server as session settings given at
    // startup, never in statement text (and so never in the server's
    // statement log, `pg_stat_activity` or a plan); the engine refuses every
    // client read or change of them. An identity that sees everything in
    // clear is given no key at all: should a reload mask something for it,
    // its hashed reads fail instead of hashing under a missing key.
    if !access.full_clear {
        for (name, value) in loaded.engine.hash_settings() {
            passthrough.push((name.to_owned(), value));
        }
    }
    let pool = &shared.upstream.pool;
    let clear = access.full_clear;
    let kept = pool.take(clear, &passthrough);
    if kept.is_some() {
        shared.metrics.upstream_reused.inc();
    }
    let connected = match kept {
        Some(c) => Ok(c),
        None => match upstream::connect(&shared.upstream, &passthrough).await {
            // Kept connections of other sessions' kinds hold the server's
            // last slots: they are closed, and the login tried again while
            // the server lets their backends go (50 ms, then twice as long
            // each time, 1.5 s in all at most).
            Err(e) if e.server_full && !pool.is_empty() => {
                pool.clear();
                let mut wait = std::time::Duration::from_millis(50);
                loop {
                    tokio::time::sleep(wait).await;
                    match upstream::connect(&shared.upstream, &passthrough).await {
                        Err(e) if e.server_full && wait < std::time::Duration::from_millis(800) => {
                            wait *= 2;
                        }
                        other => break other,
                    }
                }
            }
            other => other,
        },
    };
    let connected = match connected {
        Ok(c) => c,
        Err(e) => {
            match &e.for_client {
                Some(refusal) => send(client, refusal).await?,
                None => {
                    shared.metrics.upstream_errors.inc();
                    send(client, &errors::upstream_unavailable()).await?;
                }
            }
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
    out.extend_from_slice(&messages::ready_for_query(TransactionStatus::Idle));
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
        proven,
        upstream_key: connected.key,
        deadline,
        loaded,
        identity,
        access,
        upstream: connected.stream,
        upstream_buf: connected.leftover,
        kept: Kept {
            clear,
            params: passthrough,
            parameter_status: connected.parameter_status,
        },
        slot: Some(slot),
    }))
}

/// A session that came in from outside the proxy's listener: who it is
/// (proved where it came from) and how it came (recorded on its `connect`
/// event).
#[derive(Debug, Clone)]
pub struct Local {
    /// The identity, already proved.
    pub proven: Proven,
    /// How it came in, e.g. `{"mcp": {"tool": "query", "call": 7}}`.
    pub via: serde_json::Value,
}

/// The login of a network client: throttled per address and account,
/// every failure audited. `None` when the client went away mid-way.
async fn login(
    shared: &Shared,
    client: &mut ClientStream,
    buf: &mut BytesMut,
    session: u64,
    peer: SocketAddr,
    user: &str,
) -> Result<Option<Proven>> {
    // Only a configured service account has a password to guess; any
    // other user name is free text and would only spread the count.
    let account = shared.accounts.contains_key(user).then_some(user);
    if let Err(throttled) = shared.throttle.check(peer.ip(), account) {
        shared.metrics.auth_throttled.inc();
        let reason = throttled.to_string();
        let mut event = Event::new("auth_failed", session);
        event.peer = Some(peer.to_string());
        event.reason = Some(&reason);
        let _ = shared.audit.append(&event);
        send(client, &errors::auth_failed(&reason)).await?;
        return Err(end(format!("authentication throttled: {reason}")));
    }
    match authenticate(shared, client, buf, user).await {
        Ok(Some(p)) => {
            shared.throttle.succeeded(account);
            Ok(Some(p))
        }
        Ok(None) => Ok(None),
        Err(Refused {
            reason,
            protocol: protocol_error,
        }) => {
            shared.throttle.failed(peer.ip(), account);
            let mut event = Event::new("auth_failed", session);
            event.peer = Some(peer.to_string());
            event.reason = Some(&reason);
            let _ = shared.audit.append(&event);
            let answer = if protocol_error {
                errors::protocol_violation(&reason)
            } else {
                errors::auth_failed(&reason)
            };
            send(client, &answer).await?;
            Err(end(format!("authentication failed: {reason}")))
        }
    }
}

/// Records a `connect_refused` event for an identity refused after it
/// authenticated (best effort: the connection is refused either way).
fn audit_refused(
    shared: &Shared,
    session: u64,
    peer: SocketAddr,
    identity: &Identity,
    local: Option<&Local>,
    reason: &str,
) {
    let mut event = Event::new("connect_refused", session);
    event.peer = Some(peer.to_string());
    event.subject = Some(&identity.subject);
    event.groups = Some(&identity.groups);
    event.reason = Some(reason);
    event.via = local.map(|l| &l.via);
    let _ = shared.audit.append(&event);
}

fn random_key() -> (i32, i32) {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    let pid = i32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]);
    let secret = i32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    (pid, secret)
}

/// Why authentication failed, as told to the client and the audit trail:
/// a credential refused (28000) or a client that broke the protocol (08P01).
struct Refused {
    reason: String,
    protocol: bool,
}

fn refused(reason: impl Into<String>) -> Refused {
    Refused {
        reason: reason.into(),
        protocol: false,
    }
}

fn protocol(reason: impl Into<String>) -> Refused {
    Refused {
        reason: reason.into(),
        protocol: true,
    }
}

impl From<SessionEnd> for Refused {
    fn from(e: SessionEnd) -> Refused {
        protocol(e.0)
    }
}

/// Reads the next frame of the authentication exchange; `None` if the
/// client went away.
async fn next_frame(
    client: &mut ClientStream,
    buf: &mut BytesMut,
) -> std::result::Result<Option<Frame>, Refused> {
    loop {
        match split_frame(buf, MAX_FRAME) {
            Ok(Some(f)) if f.frontend() == Frontend::Authentication => return Ok(Some(f)),
            Ok(Some(_)) => return Err(protocol("expected a password message")),
            Ok(None) => {
                if !read_more(client, buf).await? {
                    return Ok(None);
                }
            }
            Err(e) => return Err(protocol(e.to_string())),
        }
    }
}

/// Establishes who the client is: a verified client certificate, a
/// service account's SCRAM exchange, or a token in the password field, in
/// that order. `None` when the client went away mid-way.
async fn authenticate(
    shared: &Shared,
    client: &mut ClientStream,
    buf: &mut BytesMut,
    user: &str,
) -> std::result::Result<Option<Proven>, Refused> {
    // rustls verified the chain against the client CA during the handshake.
    if shared.tls.as_ref().is_some_and(|t| t.certificates)
        && let Some(der) = client.peer_certificate()
    {
        return cert::identity(&der)
            .map(Some)
            .map_err(|e| refused(e.to_string()));
    }
    if let Some(verifier) = shared.accounts.get(user) {
        send(client, &messages::auth_sasl_scram()).await?;
        let Some(frame) = next_frame(client, buf).await? else {
            return Ok(None);
        };
        let (mechanism, first) =
            messages::decode_sasl_initial(frame.body()).map_err(|e| protocol(e.to_string()))?;
        if mechanism != b"SCRAM-SHA-256" {
            return Err(protocol("only SCRAM-SHA-256 is offered"));
        }
        let exchange = Exchange::start(verifier, first, &server_nonce())
            .map_err(|e| protocol(format!("SCRAM: {}", e.0)))?;
        send(
            client,
            &messages::auth_sasl_data(false, exchange.server_first().as_bytes()),
        )
        .await?;
        let Some(frame) = next_frame(client, buf).await? else {
            return Ok(None);
        };
        // A wrong password and a malformed proof read the same to the client.
        let server_final = exchange
            .finish(verifier, frame.body())
            .map_err(|_| refused(format!("password authentication failed for account {user}")))?;
        send(
            client,
            &messages::auth_sasl_data(true, server_final.as_bytes()),
        )
        .await?;
        return Ok(Some(Proven::Account(user.to_owned())));
    }
    // The password field carries the workload token.
    send(client, &messages::auth_cleartext()).await?;
    let Some(frame) = next_frame(client, buf).await? else {
        return Ok(None);
    };
    let token = messages::decode_cstring_body(frame.body())
        .ok()
        .and_then(|t| std::str::from_utf8(t).ok())
        .unwrap_or("");
    let claims = shared
        .issuers
        .verify(token)
        .await
        .map_err(|rejected| refused(rejected.0))?;
    Ok(Some(Proven::Token(claims)))
}

/// When a session with these credentials must end, and why.
fn session_deadline(
    shared: &Shared,
    proven: &Proven,
) -> Option<(tokio::time::Instant, &'static str)> {
    let now = tokio::time::Instant::now();
    let max = shared
        .max_session
        .map(|d| (now + d, "the session reached its maximum duration"));
    let expiry = match (proven, shared.on_token_expiry) {
        (Proven::Token(claims), OnExpiry::Close) => claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .map(|exp| {
                let unix_now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                (
                    now + std::time::Duration::from_secs(exp.saturating_sub(unix_now)),
                    "the session's token expired",
                )
            }),
        _ => None,
    };
    match (max, expiry) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// A CancelRequest: the statement of the session that was handed this key
/// is cancelled upstream (or its held statement withdrawn). Only the
/// client that received this random key can know it; an unknown key is
/// ignored, as PostgreSQL ignores it.
pub(super) async fn cancel(shared: &Shared, pid: i32, secret: i32, peer: SocketAddr) {
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
        // A statement waiting for approval is withdrawn (the session sees
        // it and answers 57014); otherwise the running statement is
        // cancelled upstream.
        if shared
            .approvals
            .withdraw_session(target.session, "the client cancelled the statement")
            .is_none()
        {
            upstream::cancel(&shared.upstream, target.upstream_key).await;
        }
    }
}
