//! Routes of the admin listener. Every `/api` route needs a verified token
//! of a member of some approver group of the policy in force; the page
//! itself is static and holds no data until its script presents a token.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::approvals::{Approver, VoteError};
use crate::audit::Event;
use crate::auth::Proven;
use crate::session::Shared;

/// The approver's page: plain HTML and a small script, no framework.
const PAGE: &str = include_str!("page.html");

pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/approvals", get(list))
        .route("/api/approvals/{id}", get(show))
        .route("/api/approvals/{id}/{verdict}", post(decide))
        .route("/api/sessions/{session}", get(session))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

type Shared_ = State<Arc<Shared>>;

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page runs only its own inline script and talks only to
            // this listener.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
            ),
        ],
        Html(PAGE),
    )
}

/// An error as JSON with its status.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The caller, from its bearer token; must be in some approver group.
async fn approver(shared: &Shared, headers: &HeaderMap) -> Result<Approver, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "an approver's OIDC token is needed: Authorization: Bearer TOKEN",
            )
        })?;
    let claims = shared
        .issuers
        .verify(token)
        .await
        .map_err(|e| error(StatusCode::UNAUTHORIZED, format!("token refused: {}", e.0)))?;
    let loaded = shared.current();
    let identity = Proven::Token(claims).identity(loaded.engine.plan());
    let approver_groups = loaded.engine.plan().approver_groups();
    if !identity.groups.iter().any(|g| approver_groups.contains(g)) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "only members of an approver group of the policy may see or decide approval requests",
        ));
    }
    Ok(Approver {
        subject: identity.subject,
        groups: identity.groups,
    })
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: bool,
}

async fn list(State(shared): Shared_, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    if let Err(r) = approver(&shared, &headers).await {
        return r;
    }
    match shared.approvals.store().list(q.all).await {
        Ok(requests) => Json(json!({ "requests": requests })).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn show(State(shared): Shared_, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = approver(&shared, &headers).await {
        return r;
    }
    match shared.approvals.store().get(&id).await {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, VoteError::NotFound.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn session(State(shared): Shared_, headers: HeaderMap, Path(session): Path<u64>) -> Response {
    if let Err(r) = approver(&shared, &headers).await {
        return r;
    }
    // Session numbers are per replica: with a control plane this lists the
    // requests of sessions with that number on every replica.
    match shared.approvals.store().list(true).await {
        Ok(all) => {
            let requests: Vec<_> = all.into_iter().filter(|r| r.session == session).collect();
            Json(json!({ "session": session, "requests": requests })).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Deserialize, Default)]
struct VoteBody {
    #[serde(default)]
    comment: String,
}

/// `POST /api/approvals/{id}/approve` or `…/deny`.
async fn decide(
    State(shared): Shared_,
    headers: HeaderMap,
    Path((id, verdict)): Path<(String, String)>,
    body: Option<Json<VoteBody>>,
) -> Response {
    let approve = match verdict.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return error(StatusCode::NOT_FOUND, "POST …/approve or …/deny"),
    };
    let body = body.map(|b| b.0).unwrap_or_default();
    vote(shared, headers, id, body, approve).await
}

/// Longest comment kept (the audit trail stores it).
const MAX_COMMENT: usize = 1000;

async fn vote(
    shared: Arc<Shared>,
    headers: HeaderMap,
    id: String,
    body: VoteBody,
    approve: bool,
) -> Response {
    let who = match approver(&shared, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let comment: String = body.comment.chars().take(MAX_COMMENT).collect();
    let before = match shared.approvals.store().get(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return error(StatusCode::NOT_FOUND, VoteError::NotFound.to_string()),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    // The vote is recorded before it takes effect; if it cannot be, it is
    // not taken. A vote the store then refuses is recorded as refused.
    let verdict = if approve { "approve" } else { "deny" };
    let mut event = Event::new("approval_vote", before.session);
    event.subject = Some(&before.subject);
    event.request = Some(&id);
    event.approver = Some(&who.subject);
    event.decision = Some(verdict);
    event.comment = Some(&comment);
    if shared.audit.append(&event).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail cannot be written, so the vote is not taken",
        );
    }
    let result = match shared
        .approvals
        .store()
        .vote(&id, &who, &comment, approve)
        .await
    {
        Ok(r) => r,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    match result {
        Ok(request) => Json(request).into_response(),
        Err(e) => {
            let status = match e {
                VoteError::NotFound => StatusCode::NOT_FOUND,
                VoteError::OwnRequest | VoteError::NotAnApprover(_) => StatusCode::FORBIDDEN,
                VoteError::NotPending(_) | VoteError::AlreadyApproved => StatusCode::CONFLICT,
            };
            let why = e.to_string();
            let mut refused = Event::new("approval_vote_refused", before.session);
            refused.request = Some(&id);
            refused.approver = Some(&who.subject);
            refused.reason = Some(&why);
            let _ = shared.audit.append(&refused);
            error(status, why)
        }
    }
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the upstream database takes the gateway's login now (the
/// probe logs in and out). Unauthenticated, as load balancers and
/// Kubernetes probe, so it says only ready or not; the reason is logged.
async fn readyz(State(shared): Shared_) -> Response {
    use tokio::io::AsyncWriteExt;
    let login = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        crate::upstream::connect(&shared.upstream, &[]),
    )
    .await;
    match login {
        Ok(Ok(mut connected)) => {
            // Terminate, so the server logs a clean end, not a lost client.
            let _ = connected
                .stream
                .write_all(&crate::wire::messages::TERMINATE)
                .await;
            let _ = connected.stream.shutdown().await;
            (StatusCode::OK, "ready\n").into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the upstream login failed");
            not_ready()
        }
        Err(_) => {
            tracing::warn!("not ready: the upstream login took over 5 s");
            not_ready()
        }
    }
}

fn not_ready() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "not ready: the upstream database does not take the gateway's login\n",
    )
        .into_response()
}

async fn metrics(State(shared): Shared_) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}
