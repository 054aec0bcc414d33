//! Client-side TLS with rustls: the acceptor built from PEM files, and the
//! client stream, which starts in plaintext and may be upgraded after an
//! `SSLRequest`.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Why a certificate chain or a private key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The certificate file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: rustls_pki_types::pem::Error,
    },
    /// A block of the certificate file is not a certificate.
    #[error("invalid certificate in {}: {source}", path.display())]
    Certificate {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no certificate", .0.display())]
    Empty(std::path::PathBuf),
    /// The key file holds no usable private key.
    #[error("cannot read a private key from {}: {source}", path.display())]
    Key {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        source: rustls_pki_types::pem::Error,
    },
}

/// A certificate chain (PEM, the leaf first) and its private key.
pub fn read_identity(
    cert_file: &Path,
    key_file: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PemError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|source| PemError::Read {
            path: cert_file.to_owned(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| PemError::Certificate {
            path: cert_file.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PemError::Empty(cert_file.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|source| PemError::Key {
        path: key_file.to_owned(),
        source,
    })?;
    Ok((certs, key))
}

/// Why a TLS acceptor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AcceptorError {
    /// The certificate chain or key could not be read.
    #[error("{0}")]
    Pem(#[from] PemError),
    /// The client CA file could not be read or holds no usable certificate.
    #[error(transparent)]
    ClientCa(#[from] clsf_catalog::connect::RootStoreError),
    /// The client CA makes no certificate verifier.
    #[error("client CA {}: {reason}", path.display())]
    ClientVerifier {
        /// The CA file.
        path: std::path::PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The certificate and key do not belong together.
    #[error("the certificate and key do not make a TLS configuration: {0}")]
    Mismatch(rustls::Error),
}

/// Builds the acceptor from a certificate chain and a private key (PEM),
/// asking clients for a certificate signed by `client_ca` when given (a
/// client without one may still authenticate otherwise; one with a bad
/// certificate fails the handshake). The process-wide crypto provider is
/// installed first, so the build has exactly one (aws-lc-rs) whatever
/// features other crates enable.
pub fn acceptor(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
    alpn: &[&[u8]],
) -> Result<TlsAcceptor, AcceptorError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (certs, key) = read_identity(cert_file, key_file)?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = clsf_catalog::connect::root_store(path).map_err(AcceptorError::ClientCa)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .map_err(|e| AcceptorError::ClientVerifier {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(AcceptorError::Mismatch)?;
    // For clients, PostgreSQL's ALPN name: libpq 17+ offers it, and
    // requires it for direct TLS (`sslnegotiation=direct`); clients that
    // offer none still connect. For the admin listener, HTTP/1.1.
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The ALPN protocol name of PostgreSQL.
pub const POSTGRESQL_ALPN: &[u8] = b"postgresql";
/// The ALPN protocol name of HTTP/1.1 (the admin listener).
pub const HTTP_ALPN: &[u8] = b"http/1.1";

/// A connection that starts in plaintext and may be upgraded to TLS: the
/// client side (`ClientStream`, server-side TLS) and the upstream side
/// (`UpstreamStream`, client-side TLS).
#[derive(Debug)]
pub enum MaybeTls<T> {
    /// Plain TCP (before or without TLS).
    Plain(TcpStream),
    /// After a successful handshake.
    Tls(Box<T>),
    /// During the handshake; any I/O here is an error.
    Upgrading,
    /// An in-process client (the MCP listener's sessions), already
    /// authenticated where it came from.
    Local(tokio::io::DuplexStream),
}

/// A client connection, plaintext or TLS.
pub type ClientStream = MaybeTls<TlsStream<TcpStream>>;

/// A connection to the upstream database, plaintext or TLS.
pub type UpstreamStream = MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;

impl<T> MaybeTls<T> {
    /// True once TLS is established.
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// True for an in-process client (no network between it and us).
    pub fn is_local(&self) -> bool {
        matches!(self, MaybeTls::Local(_))
    }
}

impl ClientStream {
    /// The ALPN protocol agreed in the handshake, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            MaybeTls::Tls(s) => s.get_ref().1.alpn_protocol(),
            _ => None,
        }
    }

    /// The TLS version in use (`TLSv1_3`), or `none`.
    pub fn tls_version(&self) -> String {
        match self {
            MaybeTls::Tls(s) => s
                .get_ref()
                .1
                .protocol_version()
                .map_or_else(|| "unknown".to_owned(), |v| format!("{v:?}")),
            _ => "none".to_owned(),
        }
    }

    /// The client's certificate (DER), verified against the client CA
    /// during the handshake, if it presented one.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            MaybeTls::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec()),
            _ => None,
        }
    }
}

fn upgrading() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection is being upgraded to TLS",
    )
}

impl<T: AsyncRead + Unpin> AsyncRead for MaybeTls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Local(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for MaybeTls<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Local(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Local(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Local(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_certificate_files_are_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (empty, key) = (dir.path().join("empty.pem"), dir.path().join("key.pem"));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            read_identity(&missing, &key),
            Err(PemError::Read { path, .. }) if path == missing
        ));
        let err = read_identity(&empty, &key).unwrap_err();
        assert!(matches!(&err, PemError::Empty(p) if *p == empty), "{err}");
        assert_eq!(
            err.to_string(),
            format!("{} holds no certificate", empty.display())
        );
    }
}
