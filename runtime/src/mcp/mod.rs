//! The MCP listener: the Model Context Protocol over streamable HTTP, for
//! AI agents. Each request carries the agent's OIDC token (`Authorization:
//! Bearer …`) or a service account's password, or its connection a client
//! certificate, verified as the proxy's clients' are, so the
//! agent's groups, rules, masks, filters, limits and audit trail are those
//! of a PostgreSQL client with the same token. Statements run as sessions
//! of the proxy itself (`session::run_local`): the same engine, the same
//! upstream login, the same audit trail.
//!
//! Hand-written JSON-RPC rather than the `rmcp` SDK: the listener must
//! verify the caller before any protocol runs, share the proxy's TLS
//! acceptor and axum stack, and answer every POST with one JSON response
//! (the streamable-HTTP transport allows it); the SDK's session manager
//! and server-sent-event streams would be machinery this stateless
//! endpoint never uses. The protocol surface is small: `initialize`,
//! `ping`, `tools/list`, `tools/call`, `resources/list`, `resources/read`.

mod local;
pub mod stdio;
mod tools;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::audit::Event;
use crate::auth::Proven;
use crate::auth::cert;
use crate::session::Shared;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Protocol versions this endpoint speaks (the tools and resources it uses
/// are the same in each); a client asking for another gets the newest.
const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What the listener's handlers share.
#[derive(Clone)]
struct Mcp {
    shared: Arc<Shared>,
    max_rows: u64,
    /// Statements agents asked approval for, run in the background.
    requests: Arc<tools::Requests>,
}

/// The identity of the connection's verified client certificate, or why
/// its names make none.
#[derive(Clone)]
struct PeerCertificate(Option<Arc<Result<Proven, crate::auth::cert::CertError>>>);

/// Serves MCP on `listener` (HTTPS with `acceptor`, else plain HTTP on a
/// loopback address, as the configuration checked) until the process ends.
pub async fn serve(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    max_rows: u64,
) {
    let router = Router::new()
        .route("/mcp", post(rpc).get(no_stream).delete(no_stream))
        .with_state(Mcp {
            shared,
            max_rows,
            requests: Arc::default(),
        });
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "MCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone().layer(Extension(peer));
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let http = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::warn!(%peer, error = %e, "MCP TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    // rustls verified the chain against the client CA during
                    // the handshake; the certificate is the connection's.
                    let certificate = PeerCertificate(
                        tls.get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| Arc::new(cert::identity(c))),
                    );
                    let service = TowerToHyperService::new(router.layer(Extension(certificate)));
                    let _ = http.serve_connection(TokioIo::new(tls), service).await;
                }
                None => {
                    let service =
                        TowerToHyperService::new(router.layer(Extension(PeerCertificate(None))));
                    let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

/// No server-initiated stream: every answer comes with its request.
async fn no_stream() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST")],
        "this MCP endpoint answers each POST with one JSON response and opens no event stream",
    )
        .into_response()
}

/// A JSON-RPC error object.
fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } })
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn rpc(
    State(mcp): State<Mcp>,
    Extension(peer): Extension<SocketAddr>,
    Extension(certificate): Extension<PeerCertificate>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // A browser page must not drive an agent's endpoint (DNS rebinding):
    // requests that carry an Origin are refused; agents send none.
    if headers.contains_key(header::ORIGIN) {
        return json_response(
            StatusCode::FORBIDDEN,
            &rpc_error(
                &Value::Null,
                -32600,
                "requests from a web origin are refused",
            ),
        );
    }
    let message: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &rpc_error(&Value::Null, -32700, format!("not JSON: {e}")),
            );
        }
    };
    if message.is_array() {
        return json_response(
            StatusCode::BAD_REQUEST,
            &rpc_error(&Value::Null, -32600, "batches are not supported"),
        );
    }
    let id = message.get("id").cloned();
    let proven = match authenticate(&mcp.shared, &headers, peer, &certificate).await {
        Ok(p) => p,
        Err(refused) => {
            let reason = refused.to_string();
            return (
                StatusCode::UNAUTHORIZED,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::WWW_AUTHENTICATE, "Bearer"),
                ],
                rpc_error(id.as_ref().unwrap_or(&Value::Null), -32001, reason).to_string(),
            )
                .into_response();
        }
    };
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // A response or something else from the client: nothing to answer.
        return StatusCode::ACCEPTED.into_response();
    };
    // A notification (no id) is acknowledged without a body.
    let Some(id) = id else {
        return StatusCode::ACCEPTED.into_response();
    };
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let call = Call {
        mcp: &mcp,
        proven,
        peer,
        id: &id,
    };
    let answer = match call.dispatch(method, &params).await {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err((code, message)) => rpc_error(&id, code, message),
    };
    json_response(StatusCode::OK, &answer)
}

/// The caller's identity: its verified client certificate when it
/// presented one (as on the wire protocol, the certificate wins), else its
/// `Authorization` header. Failures are throttled per address (as failed
/// logins are) and audited.
async fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    peer: SocketAddr,
    certificate: &PeerCertificate,
) -> Result<Proven, Refused> {
    if let Err(throttled) = shared.throttle.check(peer.ip(), None) {
        shared.metrics.auth_throttled.inc();
        return Err(Refused::Throttled(throttled.to_string()));
    }
    if let Some(identity) = &certificate.0 {
        return match identity.as_ref() {
            Ok(proven) => Ok(proven.clone()),
            Err(e) => {
                let refused = Refused::Certificate(e.to_string());
                audit_failure(shared, peer, &refused.to_string());
                Err(refused)
            }
        };
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // A service account: `Basic` with its name and password, checked
    // against its SCRAM verifier (the password is never stored).
    if let Some(basic) = authorization.strip_prefix("Basic ") {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let (name, password) = decoded
            .as_deref()
            .and_then(|d| d.split_once(':'))
            .unwrap_or(("", ""));
        let account = shared.accounts.contains_key(name).then_some(name);
        if let Err(throttled) = shared.throttle.check(peer.ip(), account) {
            shared.metrics.auth_throttled.inc();
            return Err(Refused::Throttled(throttled.to_string()));
        }
        let ok = shared
            .accounts
            .get(name)
            .is_some_and(|v| v.accepts_password(password));
        if ok {
            shared.throttle.succeeded(account);
            return Ok(Proven::Account(name.to_owned()));
        }
        shared.throttle.failed(peer.ip(), account);
        let refused = Refused::Password(name.to_owned());
        audit_failure(shared, peer, &refused.to_string());
        return Err(refused);
    }
    let token = authorization
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let result = match token {
        None => Err(Refused::NoCredentials),
        Some(token) => shared
            .issuers
            .verify(token)
            .await
            .map(Proven::Token)
            .map_err(|e| Refused::Token(e.0)),
    };
    if let Err(refused) = &result {
        shared.throttle.failed(peer.ip(), None);
        audit_failure(shared, peer, &refused.to_string());
    }
    result
}

/// Why an agent's request was not authenticated (its text is what the
/// agent and the audit trail are told; never a credential).
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// Too many failures from this address or for this account.
    #[error("{0}")]
    Throttled(String),
    /// The client certificate did not verify or names no identity.
    #[error("client certificate refused: {0}")]
    Certificate(String),
    /// A service account's password did not match.
    #[error("password authentication failed for account {0}")]
    Password(String),
    /// No credential at all.
    #[error(
        "credentials are needed: Authorization: Bearer OIDC_TOKEN, or Basic with a service account"
    )]
    NoCredentials,
    /// The token did not verify.
    #[error("token refused: {0}")]
    Token(String),
}

fn audit_failure(shared: &Shared, peer: SocketAddr, reason: &str) {
    let via = json!({ "mcp": {} });
    let mut event = Event::new("auth_failed", 0);
    event.peer = Some(peer.to_string());
    event.reason = Some(reason);
    event.via = Some(&via);
    let _ = shared.audit.append(&event);
}

/// One JSON-RPC request of an authenticated agent.
struct Call<'a> {
    mcp: &'a Mcp,
    proven: Proven,
    peer: SocketAddr,
    id: &'a Value,
}

type RpcResult = Result<Value, (i64, String)>;

impl Call<'_> {
    async fn dispatch(&self, method: &str, params: &Value) -> RpcResult {
        match method {
            "initialize" => Ok(initialize(params)),
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({ "tools": tools::list(self) })),
            "tools/call" => {
                let name = params
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or((-32602, "tools/call needs a tool `name`".to_owned()))?;
                let args = params.get("arguments").cloned().unwrap_or(json!({}));
                tools::call(self, name, &args).await
            }
            "resources/list" => Ok(json!({ "resources": [tools::policy_resource()] })),
            "resources/read" => {
                let uri = params.get("uri").and_then(Value::as_str).unwrap_or("");
                if uri != tools::POLICY_URI {
                    return Err((-32002, format!("no resource `{uri}`")));
                }
                Ok(json!({ "contents": [{
                    "uri": tools::POLICY_URI,
                    "mimeType": "text/markdown",
                    "text": tools::policy_summary(self),
                }] }))
            }
            other => Err((-32601, format!("method `{other}` is not supported"))),
        }
    }
}

fn initialize(params: &Value) -> Value {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = VERSIONS
        .iter()
        .find(|v| **v == asked)
        .unwrap_or(&VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": { "listChanged": false, "subscribe": false },
        },
        "serverInfo": { "name": "clsf-proxy", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "A database behind the clsf policy proxy. Read the resource clsf://policy (or call list_tables and describe_table) first: it says which columns you may read in clear, which are masked, which are denied and which need approval, and which row filters and limits apply to you. Run one read statement per `query` call; `explain` tells what the proxy would do with a statement without running it.",
    })
}
