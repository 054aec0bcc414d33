//! `clsf-proxy approvals …`: the approvals API from the command line.

use std::path::Path;
use std::time::Duration;

use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::auth::jwks::https_connector;
use crate::http_client::{HttpClient, exchange};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 4 << 20;

/// Why a call to the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The trust anchors could not be loaded.
    #[error(transparent)]
    Connector(#[from] crate::auth::jwks::ConnectorError),
    /// The round trip failed.
    #[error(transparent)]
    Exchange(#[from] crate::http_client::ExchangeError),
    /// The answer is not JSON.
    #[error("{url}: HTTP {status}, and the answer is not JSON")]
    NotJson {
        /// The URL.
        url: String,
        /// The answer's status.
        status: hyper::StatusCode,
    },
    /// The API refused, with its reason.
    #[error("HTTP {status}: {message}")]
    Refused {
        /// The status code.
        status: u16,
        /// The API's `error`.
        message: String,
    },
}

/// Calls the admin API: `GET` without a body, `POST` with one. Returns the
/// JSON answer, or the API's error message.
pub async fn call(
    base: &str,
    token: &str,
    ca_file: Option<&Path>,
    path: &str,
    body: Option<Value>,
) -> Result<Value, CallError> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .build(https_connector(ca_file).map_err(CallError::Connector)?);
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut request = hyper::Request::builder()
        .uri(&url)
        .header("authorization", format!("Bearer {token}"));
    let payload = match body {
        Some(b) => {
            request = request
                .method("POST")
                .header("content-type", "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    let (status, bytes) = exchange(&client, &url, request, payload, TIMEOUT, MAX_BODY).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| CallError::NotJson {
        url: url.clone(),
        status,
    })?;
    if !status.is_success() {
        return Err(CallError::Refused {
            status: status.as_u16(),
            message: value["error"]
                .as_str()
                .unwrap_or("no reason given")
                .to_owned(),
        });
    }
    Ok(value)
}

/// One request as a few readable lines.
pub fn describe(r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
    format!(
        "{} [{}] session {} by {}\n  statement: {}\n  reads: {}\n  needs: {}; releases {}\n",
        s("id"),
        s("state"),
        r["session"],
        s("subject"),
        s("statement"),
        r["touches"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        s("approvers"),
        s("scope"),
    )
}
