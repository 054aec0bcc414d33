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

/// Why an exchange failed. Each names the URL, never the request's headers
/// (they carry credentials).
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// No response head within the time allowed.
    #[error("{url}: no answer within {after:?}")]
    NoAnswer {
        /// The URL.
        url: String,
        /// The limit.
        after: Duration,
    },
    /// The request could not be built, or the connection, TLS or HTTP
    /// failed (with the error's causes).
    #[error("{url}: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The body did not end within the time allowed.
    #[error("{url}: the answer did not finish within {after:?}")]
    SlowBody {
        /// The URL.
        url: String,
        /// The limit.
        after: Duration,
    },
    /// The body failed or was larger than allowed.
    #[error("{url}: {reason}")]
    Body {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Sends the request `head` (method, URI `url`, headers) with `body` and
/// reads its answer, each within `timeout` and the body at most `max_body`
/// bytes. A head that does not make a request (an invalid URL or header)
/// is a `Request` error naming the URL.
pub async fn exchange(
    client: &HttpClient,
    url: &str,
    head: hyper::http::request::Builder,
    body: Bytes,
    timeout: Duration,
    max_body: usize,
) -> Result<(StatusCode, Bytes), ExchangeError> {
    let request = head
        .body(Full::new(body))
        .map_err(|e| ExchangeError::Request {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
    let response = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| ExchangeError::NoAnswer {
            url: url.to_owned(),
            after: timeout,
        })?
        .map_err(|e| ExchangeError::Request {
            url: url.to_owned(),
            reason: error_chain(&e),
        })?;
    let status = response.status();
    let bytes = tokio::time::timeout(
        timeout,
        Limited::new(response.into_body(), max_body).collect(),
    )
    .await
    .map_err(|_| ExchangeError::SlowBody {
        url: url.to_owned(),
        after: timeout,
    })?
    .map_err(|e| ExchangeError::Body {
        url: url.to_owned(),
        reason: e.to_string(),
    })?
    .to_bytes();
    Ok((status, bytes))
}
