//! An issuer's signing keys: a JWKS read from a file or fetched over HTTPS.
//! Fetched sets are cached; a token signed with a key id the cache does not
//! know triggers a refetch (issuers rotate keys by publishing the new one
//! first), at most once per `min_refresh` so that tokens with made-up key
//! ids cannot turn the proxy into a load generator against the issuer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;

/// Largest JWKS document accepted (real ones are a few KiB).
const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an issuer's keys could not be had. Names the file or URL and the
/// reason; never carries a key.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The JWKS file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The issuer's certificate anchors could not be loaded, or none exist.
    #[error(transparent)]
    Anchors(#[from] ConnectorError),
    /// The URL did not answer in time.
    #[error("{url}: no answer within {after:?}")]
    Timeout {
        /// The JWKS URL.
        url: String,
        /// The limit.
        after: Duration,
    },
    /// The URL answered with a failure (connection, TLS, status, body).
    #[error("{url}: {reason}")]
    Fetch {
        /// The JWKS URL.
        url: String,
        /// Why, with the error's causes.
        reason: String,
    },
    /// The document is not a JWKS, or holds no keys.
    #[error("{origin}: {reason}")]
    Invalid {
        /// The file or URL.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS file, read at start.
    File(PathBuf),
    /// A JWKS URL (https only).
    Url {
        /// The document's address.
        url: hyper::Uri,
        /// Trust anchors for the issuer's certificate; `None`: the
        /// system's roots.
        ca_file: Option<PathBuf>,
    },
}

/// One issuer's keys, with the refetch bookkeeping.
#[derive(Debug)]
pub struct Keys {
    source: KeySource,
    set: RwLock<Arc<JwkSet>>,
    min_refresh: Duration,
    /// When the set was last fetched; also the refetch lock.
    fetched: tokio::sync::Mutex<Instant>,
    client: Option<HttpsClient>,
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
>;

impl Keys {
    /// Loads the keys once (reading the file or fetching the URL); an
    /// issuer whose keys cannot be had stops the proxy from starting.
    pub async fn load(source: KeySource, min_refresh: Duration) -> Result<Keys, JwksError> {
        let client = match &source {
            KeySource::File(_) => None,
            KeySource::Url { ca_file, .. } => Some(https_client(ca_file.as_deref())?),
        };
        let set = fetch(&source, client.as_ref()).await?;
        Ok(Keys {
            source,
            set: RwLock::new(Arc::new(set)),
            min_refresh,
            fetched: tokio::sync::Mutex::new(Instant::now()),
            client,
        })
    }

    /// The keys as cached now.
    pub fn current(&self) -> Arc<JwkSet> {
        Arc::clone(&self.set.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Refetches a URL source because a token named key `kid` the cache
    /// does not hold, unless the last fetch is more recent than the minimum
    /// interval. Returns the set to use; a failed fetch keeps the old one.
    pub async fn refresh_for(&self, kid: &str) -> Arc<JwkSet> {
        if matches!(self.source, KeySource::File(_)) {
            return self.current();
        }
        let mut fetched = self.fetched.lock().await;
        // Another session may have fetched it while this one waited.
        let current = self.current();
        if current.find(kid).is_some() || fetched.elapsed() < self.min_refresh {
            return current;
        }
        *fetched = Instant::now();
        match fetch(&self.source, self.client.as_ref()).await {
            Ok(set) => {
                let set = Arc::new(set);
                *self.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&set);
                set
            }
            Err(e) => {
                tracing::warn!(error = %e, "refreshing the JWKS failed, keeping the cached keys");
                current
            }
        }
    }
}

fn https_client(ca_file: Option<&Path>) -> Result<HttpsClient, JwksError> {
    Ok(Client::builder(TokioExecutor::new())
        .build(https_connector(ca_file).map_err(JwksError::Anchors)?))
}

/// Why an HTTPS client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The CA file cannot be used.
    #[error(transparent)]
    Anchors(#[from] clsf_catalog::connect::RootStoreError),
    /// Neither a CA file nor any system root.
    #[error("no trust anchors to verify the server with")]
    NoAnchors,
    /// The client certificate or key cannot be read.
    #[error(transparent)]
    Identity(#[from] crate::tls::PemError),
    /// The client certificate and key do not belong together.
    #[error("the client certificate and key do not match: {0}")]
    Mismatch(rustls::Error),
}

/// Trust anchors: the PEM ones in `ca_file`, or the system's roots.
fn client_tls(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ConnectorError> {
    Ok(client_tls_builder(ca_file)?.with_no_client_auth())
}

/// A client certificate chain and its private key (PEM files), presented
/// for mutual TLS.
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentity<'a> {
    /// The certificate chain, the client's own first.
    pub cert_file: &'a Path,
    /// Its private key.
    pub key_file: &'a Path,
}

fn client_tls_builder(
    ca_file: Option<&Path>,
) -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    ConnectorError,
> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let roots = match ca_file {
        Some(path) => clsf_catalog::connect::root_store(path)?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            roots
        }
    };
    if roots.is_empty() {
        return Err(ConnectorError::NoAnchors);
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots))
}

/// A connector for HTTPS and plain HTTP (the caller decides which URLs
/// may be plain), HTTPS verified as `client_tls` says.
/// With `identity`, HTTPS servers that ask for a client certificate get it.
pub fn http_or_https_connector(
    ca_file: Option<&Path>,
    identity: Option<ClientIdentity<'_>>,
) -> Result<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    ConnectorError,
> {
    let builder = client_tls_builder(ca_file)?;
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let (chain, key) = crate::tls::read_identity(id.cert_file, id.key_file)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(ConnectorError::Mismatch)?
        }
    };
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build())
}

/// An HTTPS-only connector trusting the PEM anchors in `ca_file`, or the
/// system's roots without one (also used by `clsf-proxy approvals`).
pub fn https_connector(
    ca_file: Option<&Path>,
) -> Result<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    ConnectorError,
> {
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_tls(ca_file)?)
        .https_only()
        .enable_http1()
        .build())
}

async fn fetch(source: &KeySource, client: Option<&HttpsClient>) -> Result<JwkSet, JwksError> {
    let (text, origin) = match (source, client) {
        (KeySource::File(path), _) => (
            std::fs::read_to_string(path).map_err(|source| JwksError::Read {
                path: path.clone(),
                source,
            })?,
            path.display().to_string(),
        ),
        (KeySource::Url { url, .. }, Some(client)) => (get(client, url).await?, url.to_string()),
        (KeySource::Url { url, .. }, None) => {
            return Err(JwksError::Fetch {
                url: url.to_string(),
                reason: "no HTTPS client".to_owned(),
            });
        }
    };
    let invalid = |reason: String| JwksError::Invalid {
        origin: origin.clone(),
        reason,
    };
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| invalid(format!("invalid JWKS: {e}")))?;
    if set.keys.is_empty() {
        return Err(invalid("the JWKS holds no keys".to_owned()));
    }
    Ok(set)
}

async fn get(client: &HttpsClient, url: &hyper::Uri) -> Result<String, JwksError> {
    let failed = |reason: String| JwksError::Fetch {
        url: url.to_string(),
        reason,
    };
    let timeout = || JwksError::Timeout {
        url: url.to_string(),
        after: FETCH_TIMEOUT,
    };
    let response = tokio::time::timeout(FETCH_TIMEOUT, client.get(url.clone()))
        .await
        .map_err(|_| timeout())?
        .map_err(|e| failed(error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let body = tokio::time::timeout(
        FETCH_TIMEOUT,
        Limited::new(response.into_body(), MAX_JWKS_BYTES).collect(),
    )
    .await
    .map_err(|_| timeout())?
    .map_err(|e| failed(e.to_string()))?
    .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| failed("the JWKS is not UTF-8".to_owned()))
}

/// hyper's errors say "client error (Connect)"; the cause (a certificate
/// the CA did not sign, a refused connection) is further down the chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
