//! Connecting to the database a schema is pulled from: libpq-style URLs with
//! TLS through rustls.
//!
//! tokio-postgres parses the URL but knows only `sslmode=disable|prefer|
//! require`; this module adds `verify-ca`, `verify-full` and `sslrootcert`
//! the way libpq means them. The TLS glue is written here rather than taken
//! from `tokio-postgres-rustls` because that crate brings `ring` and an X.509
//! parser while the workspace uses one crypto provider (aws-lc-rs) and the
//! glue is a few dozen lines.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Client;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::error::PullError;

/// How the server's certificate is checked (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verify {
    /// `prefer`/`require`: encrypted, the certificate is not checked (as in
    /// libpq without a root certificate).
    Nothing,
    /// `verify-ca`: the chain must lead to `sslrootcert`.
    Chain,
    /// `verify-full`: the chain and the host name.
    ChainAndName,
}

/// The URL for tokio-postgres plus what it does not understand.
#[derive(Debug)]
struct Options {
    url: String,
    verify: Verify,
    root_cert: Option<PathBuf>,
}

/// Takes `sslmode=verify-*` and `sslrootcert` out of a URL
/// (`postgres://…?a=b&c=d`) or a key/value string (`host=… sslmode=…`).
fn split_options(url: &str) -> Options {
    let mut verify = Verify::Nothing;
    let mut root_cert = None;
    let mut keep = |key: &str, value: &str| -> Option<String> {
        match (key, value) {
            ("sslmode", "verify-ca") => verify = Verify::Chain,
            ("sslmode", "verify-full") => verify = Verify::ChainAndName,
            ("sslrootcert", path) => root_cert = Some(PathBuf::from(path)),
            _ => return Some(format!("{key}={value}")),
        }
        // tokio-postgres must still insist on TLS.
        (key == "sslmode").then(|| "sslmode=require".to_owned())
    };
    let rewritten = if url.contains("://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .filter_map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        keep(k, v)
                    })
                    .collect();
                if params.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", params.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        url.split_whitespace()
            .filter_map(|p| match p.split_once('=') {
                Some((k, v)) => keep(k, v),
                None => Some(p.to_owned()),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    Options {
        url: rewritten,
        verify,
        root_cert,
    }
}

/// Connects and spawns the connection task; errors never carry the password.
pub async fn connect(url: &str) -> Result<Client, PullError> {
    connect_with(url, None).await
}

/// The password in a file: its first line (a trailing newline or a second
/// line, as editors and secret mounts leave them, are not part of it).
pub fn password_from_file(path: &std::path::Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .next()
        .unwrap_or("")
        .to_owned())
}

/// Like [`connect`], with the password given apart from the URL (read from
/// a file by the caller); without one, the URL's or `PGPASSWORD`.
pub async fn connect_with(url: &str, password: Option<&str>) -> Result<Client, PullError> {
    let (client, connection) = open(url, password).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Like [`connect_with`], for a session that `LISTEN`s: the payloads of the
/// notifications it receives arrive on the returned channel, which closes
/// when the connection ends.
pub async fn connect_listening(
    url: &str,
    password: Option<&str>,
) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<Notification>), PullError> {
    let (client, mut connection) = open(url, password).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Driving the connection by hand is how tokio-postgres hands out
        // notifications; the rest of its messages are only logged by it.
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    Ok((client, rx))
}

/// A notification received on a `LISTEN`ing session.
pub use tokio_postgres::Notification;

type Connection =
    tokio_postgres::Connection<tokio_postgres::Socket, RustlsStream<tokio_postgres::Socket>>;

async fn open(url: &str, password: Option<&str>) -> Result<(Client, Connection), PullError> {
    let options = split_options(url);
    let mut config: tokio_postgres::Config =
        options.url.parse().map_err(|e: tokio_postgres::Error| {
            PullError(format!(
                "invalid database URL: {}",
                redact(&e.to_string(), url)
            ))
        })?;
    if let Some(p) = password {
        config.password(p);
    } else if config.get_password().is_none()
        && let Ok(password) = std::env::var("PGPASSWORD")
    {
        config.password(password);
    }
    let tls = RustlsMakeConnect(Arc::new(client_config(&options)?));
    config.connect(tls).await.map_err(|e| {
        PullError(format!(
            "cannot connect to the database: {}",
            redact(&describe(&e), url)
        ))
    })
}

/// The error with its sources (tokio-postgres puts the TLS reason there).
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// A rustls client configuration checking a PostgreSQL server's
/// certificate the way libpq's `sslmode` says: `require` (encrypted, not
/// checked), `verify-ca` (chain to `root_cert`) or `verify-full` (chain and
/// host name). Shared with the proxy's upstream connections.
pub fn tls_client_config(
    sslmode: &str,
    root_cert: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, TlsConfigError> {
    let verify = match sslmode {
        "require" => Verify::Nothing,
        "verify-ca" => Verify::Chain,
        "verify-full" => Verify::ChainAndName,
        other => return Err(TlsConfigError::SslMode(other.to_owned())),
    };
    client_config(&Options {
        url: String::new(),
        verify,
        root_cert: root_cert.map(std::path::Path::to_path_buf),
    })
    .map_err(TlsConfigError::Setup)
}

/// Why a TLS client configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// An `sslmode` that encrypts nothing or is not libpq's.
    #[error("sslmode `{0}` is not one of require, verify-ca, verify-full")]
    SslMode(String),
    /// The trust anchors or the TLS stack could not be set up.
    #[error("{0}")]
    Setup(PullError),
}

/// Why a PEM file of trust anchors cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RootStoreError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        source: rustls::pki_types::pem::Error,
    },
    /// A PEM section is not a certificate rustls can parse.
    #[error("invalid certificate in {}: {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What parsing said.
        source: rustls::pki_types::pem::Error,
    },
    /// The file holds no certificate.
    #[error("{} holds no certificate", .0.display())]
    Empty(PathBuf),
    /// A certificate cannot be a trust anchor.
    #[error("{}: {source}", path.display())]
    Rejected {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// The certificates of a PEM file as trust anchors (also the proxy's, for
/// client certificates and JWKS servers).
pub fn root_store(path: &std::path::Path) -> Result<rustls::RootCertStore, RootStoreError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|source| RootStoreError::Read {
            path: path.to_owned(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| RootStoreError::Invalid {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(RootStoreError::Empty(path.to_owned()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|source| RootStoreError::Rejected {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

fn client_config(options: &Options) -> Result<rustls::ClientConfig, PullError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| PullError(format!("TLS setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match options.verify {
        Verify::Nothing => Arc::new(Relaxed {
            provider,
            chain: None,
        }),
        verify => {
            let path = options.root_cert.as_ref().ok_or_else(|| {
                PullError(
                    "sslmode=verify-ca and verify-full need sslrootcert=PATH (the CA certificate, PEM)"
                        .to_owned(),
                )
            })?;
            let roots = root_store(path).map_err(|e| PullError(e.to_string()))?;
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| PullError(format!("TLS setup: {e}")))?;
            if verify == Verify::Chain {
                Arc::new(Relaxed {
                    provider,
                    chain: Some(webpki),
                })
            } else {
                webpki
            }
        }
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The libpq modes weaker than `verify-full`, as one verifier: the
/// handshake's signatures are always checked (with the provider's
/// algorithms); `sslmode=require` (`chain: None`) checks no certificate,
/// `sslmode=verify-ca` (`chain: Some`) checks the chain but not the host
/// name. `verify-full` uses rustls' own verifier unchanged.
#[derive(Debug)]
struct Relaxed {
    provider: Arc<rustls::crypto::CryptoProvider>,
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// tokio-postgres' TLS hook backed by rustls.
#[derive(Clone)]
struct RustlsMakeConnect(Arc<rustls::ClientConfig>);

impl<S> MakeTlsConnect<S> for RustlsMakeConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{domain}` is not a valid TLS server name"),
            )
        })?;
        Ok(RustlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.config);
            let tls = connector.connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// A TLS stream to the server. Channel binding is not offered (the pull
/// authenticates with SCRAM without `-PLUS`; `channel_binding=require`
/// fails with tokio-postgres' error).
struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// Removes the password of `url` from a message, in case a driver echoes it.
/// `PGPASSWORD` is removed too.
pub(crate) fn redact(message: &str, url: &str) -> String {
    let mut out = message.to_owned();
    let env = std::env::var("PGPASSWORD").ok();
    for pw in [password_of(url), env].into_iter().flatten() {
        if !pw.is_empty() {
            out = out.replace(&pw, "********");
        }
    }
    out
}

fn password_of(url: &str) -> Option<String> {
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?']).next()?;
        let userinfo = authority.rsplit_once('@')?.0;
        return Some(userinfo.split_once(':')?.1.to_owned());
    }
    url.split_whitespace()
        .find_map(|p| p.strip_prefix("password="))
        .map(|p| p.trim_matches('\'').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_anchor_files_fail_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            root_store(&missing),
            Err(RootStoreError::Read { ref path, .. }) if *path == missing
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no PEM here\n").unwrap();
        let error = root_store(&empty).unwrap_err();
        assert!(matches!(error, RootStoreError::Empty(ref p) if *p == empty));
        assert_eq!(
            error.to_string(),
            format!("{} holds no certificate", empty.display())
        );
    }

    #[test]
    fn password_is_redacted() {
        let url = "postgres://u:s3cret@127.0.0.1:5432/db";
        assert_eq!(redact("failed for s3cret", url), "failed for ********");
        let kv = "host=127.0.0.1 user=u password=s3cret dbname=db";
        assert_eq!(redact("failed for s3cret", kv), "failed for ********");
    }

    #[test]
    fn verify_modes_are_taken_out_of_the_url() {
        let o = split_options(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x",
        );
        assert_eq!(
            o.url,
            "postgres://u@h/db?sslmode=require&application_name=x"
        );
        assert_eq!(o.verify, Verify::ChainAndName);
        assert_eq!(o.root_cert, Some(PathBuf::from("/ca.pem")));
        let o = split_options("host=h sslmode=verify-ca sslrootcert=/ca.pem");
        assert_eq!(o.url, "host=h sslmode=require");
        assert_eq!(o.verify, Verify::Chain);
        let o = split_options("postgres://u@h/db?sslmode=disable");
        assert_eq!(o.url, "postgres://u@h/db?sslmode=disable");
        assert_eq!(o.verify, Verify::Nothing);
    }
}
