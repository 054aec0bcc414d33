//! A tiny HTTPS server on loopback serving one document whose content the
//! test can change, counting requests — a JWKS endpoint for the proxy to
//! fetch, with a certificate from the test CA.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running document server, stopped when the test process ends.
#[derive(Debug, Clone)]
pub struct DocumentServer {
    /// Where it listens.
    pub addr: SocketAddr,
    body: Arc<Mutex<String>>,
    requests: Arc<AtomicUsize>,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl DocumentServer {
    /// Serves `body` over TLS with `server.pem`/`server.key` from `dir`
    /// (see `certs::write_test_ca`).
    pub fn start(dir: &Path, body: String) -> DocumentServer {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("server.pem"))
                .expect("server.pem")
                .collect::<Result<_, _>>()
                .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let server = DocumentServer {
            addr: listener.local_addr().expect("addr"),
            body: Arc::new(Mutex::new(body)),
            requests: Arc::new(AtomicUsize::new(0)),
            down: Arc::default(),
        };
        let (body, requests) = (Arc::clone(&server.body), Arc::clone(&server.requests));
        let down = Arc::clone(&server.down);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    if down.load(Ordering::SeqCst) {
                        // An outage: the connection is dropped unanswered.
                        drop(tcp);
                        continue;
                    }
                    let (acceptor, body, requests) =
                        (acceptor.clone(), Arc::clone(&body), Arc::clone(&requests));
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        // One request per connection; read until the blank line.
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                            if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        requests.fetch_add(1, Ordering::SeqCst);
                        let doc = body.lock().unwrap().clone();
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                            doc.len()
                        );
                        let _ = tls.write_all(response.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        server
    }

    /// Replaces the document served.
    pub fn set_body(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }

    /// Simulates an outage (connections dropped unanswered) or ends it.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// `GET path` over TLS from `addr`, verified against `ca` (PEM) for the
/// name `localhost`; returns the status line and body. Bounded to 10 s.
pub fn get(addr: SocketAddr, ca: &Path, path: &str) -> (String, String) {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(ca)));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = runtime.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            tls.write_all(request.as_bytes()).await.expect("write");
            let mut out = Vec::new();
            // The server closes after the answer; a TLS close without
            // close_notify is fine here.
            let _ = tls.read_to_end(&mut out).await;
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .expect("answer within 10 s")
    });
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, body.to_owned())
}

/// A TLS client configuration trusting only the PEM CA `ca` (no ALPN).
pub fn client_config(ca: &Path) -> rustls::ClientConfig {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("ca.pem") {
        roots.add(cert.expect("CA certificate")).expect("add CA");
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}
