//! One HTTP request with bounded waits and a bounded answer: what the
//! command-line clients (`approvals`, the MCP stdio bridge) share.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::auth::jwks::error_chain;

/// The client both callers build (HTTPS, or HTTP where the caller allows).
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Sends `request` to `url` and reads its answer, each within `timeout`
/// and the body at most `max_body` bytes. Errors name the URL, never the
/// request's headers (they carry credentials).
pub async fn exchange(
    client: &HttpClient,
    url: &str,
    request: hyper::Request<Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
) -> Result<(StatusCode, Bytes), String> {
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
        .map_err(|e| format!("{url}: {}", error_chain(&e)))?;
    let status = response.status();
    let bytes = tokio::time::timeout(
        timeout,
        Limited::new(response.into_body(), max_body).collect(),
    )
    .await
    .map_err(|_| format!("{url}: the answer did not finish within {timeout:?}"))?
    .map_err(|e| format!("{url}: {e}"))?
    .to_bytes();
    Ok((status, bytes))
}
