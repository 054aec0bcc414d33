//! `clsf-proxy mcp-stdio`: a bridge for MCP clients that only start local
//! servers over stdio. Each JSON-RPC line read on standard input is POSTed
//! to the proxy's MCP listener with the agent's token; each answer is
//! written as one line on standard output. The agent's process holds a
//! workload token, never a database password.

use std::path::Path;
use std::time::Duration;

use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::auth::jwks::ClientIdentity;
use crate::http_client::{HttpClient, exchange};

/// A tool call may wait on the database; this bounds one round trip.
const TIMEOUT: Duration = Duration::from_secs(300);
const MAX_BODY: usize = 64 << 20;

/// Why the bridge could not start or stopped. A failed round trip is not
/// one: it becomes a JSON-RPC error for the agent.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// Neither a token nor a client certificate was given.
    #[error(
        "give a token (--token-file or CLSF_TOKEN) or a client certificate (--cert-file and --key-file)"
    )]
    NoCredential,
    /// The URL does not parse.
    #[error("{url}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Plain http beyond loopback: the credential would travel in clear.
    #[error(
        "{0}: use https (plain http only to a loopback address): the token would cross the network in clear"
    )]
    Cleartext(String),
    /// A client certificate over plain http.
    #[error("{0}: a client certificate needs https")]
    CertificateNeedsHttps(String),
    /// The trust anchors or the client certificate could not be loaded.
    #[error(transparent)]
    Connector(#[from] crate::auth::jwks::ConnectorError),
    /// Standard input or output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Bridges standard input and output to the MCP listener at `url` until
/// standard input ends. The agent proves itself with `token` (sent as a
/// bearer token), or with `identity`'s client certificate when `token` is
/// `None`.
pub async fn bridge(
    url: &str,
    token: Option<&str>,
    ca_file: Option<&Path>,
    identity: Option<ClientIdentity<'_>>,
) -> Result<(), BridgeError> {
    if token.is_none() && identity.is_none() {
        return Err(BridgeError::NoCredential);
    }
    let uri: hyper::Uri =
        url.parse()
            .map_err(|e: hyper::http::uri::InvalidUri| BridgeError::Url {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
    let loopback = uri.host().is_some_and(|h| {
        h == "localhost"
            || h.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => {
            return Err(BridgeError::Cleartext(url.to_owned()));
        }
    }
    if identity.is_some() && uri.scheme_str() != Some("https") {
        return Err(BridgeError::CertificateNeedsHttps(url.to_owned()));
    }
    let connector = crate::auth::jwks::http_or_https_connector(ca_file, identity)
        .map_err(BridgeError::Connector)?;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let id = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("id").cloned());
        let answer = match post(&client, url, token, line).await {
            Ok(Some(body)) => Some(body),
            Ok(None) => None,
            Err(e) => id.map(|id| {
                json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32000, "message": e.to_string() } })
                    .to_string()
            }),
        };
        if let Some(mut body) = answer {
            // One message per line: the answer is compact JSON already.
            body.retain(|c| c != '\n');
            body.push('\n');
            stdout.write_all(body.as_bytes()).await?;
            stdout.flush().await?;
        }
    }
    Ok(())
}

/// One message; the answer's body, or `None` for an acknowledged
/// notification.
async fn post(
    client: &HttpClient,
    url: &str,
    token: Option<&str>,
    line: String,
) -> Result<Option<String>, ExchangeFailed> {
    let mut request = hyper::Request::post(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    let (status, bytes) =
        exchange(client, url, request, Bytes::from(line), TIMEOUT, MAX_BODY).await?;
    if bytes.is_empty() {
        return if status.is_success() {
            Ok(None)
        } else {
            Err(ExchangeFailed::Status {
                url: url.to_owned(),
                status,
            })
        };
    }
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| ExchangeFailed::NotUtf8(url.to_owned()))
}

/// Why one message got no answer from the listener (told to the agent as
/// a JSON-RPC error).
#[derive(Debug, thiserror::Error)]
enum ExchangeFailed {
    /// The connection, TLS or HTTP exchange failed.
    #[error(transparent)]
    Exchange(#[from] crate::http_client::ExchangeError),
    /// An empty answer with an error status.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The listener's URL.
        url: String,
        /// The status.
        status: hyper::StatusCode,
    },
    /// An answer that is not UTF-8.
    #[error("{0}: the answer is not UTF-8")]
    NotUtf8(String),
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_token_is_never_sent_in_clear_beyond_loopback() {
        for url in [
            "http://example.com/mcp",
            "http://10.0.0.1:6490/mcp",
            "ftp://127.0.0.1/",
        ] {
            let err = super::bridge(url, Some("secret-token"), None, None)
                .await
                .unwrap_err();
            assert!(
                matches!(err, super::BridgeError::Cleartext(_)),
                "{url}: {err}"
            );
            let err = err.to_string();
            assert!(err.contains("in clear"), "{url}: {err}");
            assert!(!err.contains("secret-token"), "{err}");
        }
    }
}
