//! The upstream side: a connection to PostgreSQL authenticated with the
//! gateway-held credential (SCRAM-SHA-256), which clients never see.

use bytes::{Bytes, BytesMut};
use postgres_protocol::authentication::sasl::SCRAM_SHA_256;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::{MaybeTls, UpstreamStream};

pub mod pool;
pub(crate) mod scram;

pub use pool::Pool;
pub use scram::SaltedCache;
use scram::ScramClient;

use crate::wire::frame::{Frame, MAX_FRAME, split_frame};
use crate::wire::kinds::Backend;
use crate::wire::messages::error_fields;

/// Where and as whom to connect.
#[derive(Clone)]
pub struct Target {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// Role.
    pub user: String,
    /// The role's password.
    pub password: String,
    /// TLS to the server, when configured.
    pub tls: Option<UpstreamTls>,
    /// The salted password of earlier logins (see `scram`).
    pub salted: std::sync::Arc<SaltedCache>,
    /// Server connections kept between sessions (see `pool`).
    pub pool: std::sync::Arc<Pool>,
}

/// Never prints the password.
impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// TLS towards the upstream server: how its certificate is checked and the
/// name it must carry.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The rustls connector (certificate checks per `sslmode`).
    pub connector: tokio_rustls::TlsConnector,
    /// The name checked against the certificate (`verify-full`).
    pub server_name: rustls_pki_types::ServerName<'static>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// An authenticated upstream connection, ready for queries.
#[derive(Debug)]
pub struct Connected {
    /// The socket.
    pub stream: UpstreamStream,
    /// ParameterStatus frames received during startup, to relay to the client.
    pub parameter_status: Vec<Bytes>,
    /// Bytes read past the first ReadyForQuery.
    pub leftover: BytesMut,
    /// The server's BackendKeyData (pid, secret), for cancel requests.
    pub key: Option<(i32, i32)>,
}

/// Why the upstream connection failed: the reason for the log, and, when
/// the server refused a setting the client asked for, its error for the
/// client.
#[derive(Debug)]
pub struct UpstreamError {
    /// For the proxy's log; never sent to clients.
    pub reason: String,
    /// The server's FATAL about a setting (an unknown parameter, a bad
    /// value, one that cannot be set now or by this role), which names
    /// only what the client gave: the client sees it instead of "cannot
    /// reach the upstream".
    pub for_client: Option<bytes::Bytes>,
    /// The server had no room for another connection (53300).
    pub server_full: bool,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

fn err(what: impl Into<String>) -> UpstreamError {
    UpstreamError {
        reason: what.into(),
        for_client: None,
        server_full: false,
    }
}

/// SQLSTATEs of the server's refusals of a startup setting: undefined
/// parameter, invalid value, cannot be changed now, permission denied.
const SETTING_ERRORS: &[&str] = &["42704", "22023", "55P02", "42501"];

async fn read_frame(
    stream: &mut UpstreamStream,
    buf: &mut BytesMut,
) -> Result<Frame, UpstreamError> {
    loop {
        if let Some(frame) =
            split_frame(buf, MAX_FRAME).map_err(|e| err(format!("upstream sent {e}")))?
        {
            return Ok(frame);
        }
        let n = stream
            .read_buf(buf)
            .await
            .map_err(|e| err(format!("upstream read: {e}")))?;
        if n == 0 {
            return Err(err("upstream closed the connection during startup"));
        }
    }
}

fn server_error(frame: &Frame) -> UpstreamError {
    let fields = error_fields(frame.body());
    let get = |code: u8| {
        fields
            .iter()
            .find(|(c, _)| *c == code)
            .map_or("", |(_, v)| v.as_str())
    };
    let mut e = err(format!("upstream refused: {} ({})", get(b'M'), get(b'C')));
    e.server_full = get(b'C') == "53300";
    // Only errors about a parameter, and never one naming the proxy's own
    // settings (whose values are the masking key's pads).
    let message = get(b'M');
    if SETTING_ERRORS.contains(&get(b'C'))
        && message.contains("parameter \"")
        && !message.contains(clsf_engine::PROXY_SETTING_PREFIX)
    {
        e.for_client = Some(crate::wire::messages::error_response(
            crate::wire::messages::Severity::Fatal,
            get(b'C'),
            message,
            Some("a setting the client gave at startup (a startup parameter or `options`)"),
        ));
    }
    e
}

/// Asks the server to cancel the query running on the backend with `key`.
/// Errors are ignored, as a client's own cancel request would be.
pub async fn cancel(target: &Target, key: (i32, i32)) {
    if let Ok(mut stream) = open(target).await {
        let _ = stream
            .write_all(&crate::wire::messages::cancel_request(key.0, key.1))
            .await;
        let _ = stream.shutdown().await;
    }
}

/// Connects, authenticates with SCRAM-SHA-256, and waits for ReadyForQuery.
/// `extra` are startup parameters passed through from the client.
pub async fn connect(
    target: &Target,
    extra: &[(String, String)],
) -> Result<Connected, UpstreamError> {
    let mut stream = open(target).await?;
    let mut out = BytesMut::new();
    let mut params: Vec<(&str, &str)> =
        vec![("user", &target.user), ("database", &target.database)];
    params.extend(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    frontend::startup_message(params, &mut out).map_err(|e| err(e.to_string()))?;
    stream
        .write_all(&out)
        .await
        .map_err(|e| err(e.to_string()))?;

    let mut buf = BytesMut::with_capacity(8192);
    let mut scram: Option<ScramClient<'_>> = None;
    let mut parameter_status = Vec::new();
    let mut key = None;
    loop {
        let frame = read_frame(&mut stream, &mut buf).await?;
        match frame.backend() {
            Backend::Authentication => {
                let body = frame.body();
                if body.len() < 4 {
                    return Err(err("short authentication message"));
                }
                let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let data = &body[4..];
                let mut out = BytesMut::new();
                match code {
                    0 => {}
                    10 => {
                        let offers_scram = data
                            .split(|b| *b == 0)
                            .any(|m| m == SCRAM_SHA_256.as_bytes());
                        if !offers_scram {
                            return Err(err("upstream does not offer SCRAM-SHA-256"));
                        }
                        let s = ScramClient::new(&target.password, &target.salted);
                        frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                            .map_err(|e| err(e.to_string()))?;
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| err("SASL continue before SASL start"))?;
                        s.update(data).map_err(|e| err(format!("SCRAM: {e}")))?;
                        frontend::sasl_response(s.message(), &mut out)
                            .map_err(|e| err(e.to_string()))?;
                    }
                    12 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| err("SASL final before SASL start"))?;
                        s.finish(data).map_err(|e| err(format!("SCRAM: {e}")))?;
                    }
                    other => {
                        // Cleartext, MD5 and others would expose or weaken the
                        // gateway credential: only SCRAM is spoken.
                        return Err(err(format!(
                            "upstream asks for authentication method {other}; only SCRAM-SHA-256 is supported"
                        )));
                    }
                }
                if !out.is_empty() {
                    stream
                        .write_all(&out)
                        .await
                        .map_err(|e| err(e.to_string()))?;
                }
            }
            Backend::ParameterStatus => parameter_status.push(frame.raw),
            Backend::BackendKeyData => {
                let b = frame.body();
                if b.len() == 8 {
                    key = Some((
                        i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                        i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                    ));
                }
            }
            Backend::Notice => {}
            Backend::Error => return Err(server_error(&frame)),
            Backend::ReadyForQuery => {
                if scram.is_none() {
                    // Trust authentication upstream: the credential was never
                    // checked. Refuse, so a misconfigured pg_hba fails closed.
                    return Err(err(
                        "upstream accepted the connection without SCRAM authentication",
                    ));
                }
                return Ok(Connected {
                    stream,
                    parameter_status,
                    leftover: buf,
                    key,
                });
            }
            _ => {
                return Err(err(format!(
                    "unexpected upstream message `{}` during startup",
                    frame.tag as char
                )));
            }
        }
    }
}

/// Opens a connection to the server, negotiating TLS when configured. A
/// server that declines TLS is refused: the configuration asked for it.
pub(crate) async fn open(target: &Target) -> Result<UpstreamStream, UpstreamError> {
    let mut tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| err(format!("connect to {}:{}: {e}", target.host, target.port)))?;
    tcp.set_nodelay(true).map_err(|e| err(e.to_string()))?;
    let Some(tls) = &target.tls else {
        return Ok(MaybeTls::Plain(tcp));
    };
    tcp.write_all(&crate::wire::messages::ssl_request())
        .await
        .map_err(|e| err(format!("upstream write: {e}")))?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer)
        .await
        .map_err(|e| err(format!("upstream read: {e}")))?;
    if answer[0] != b'S' {
        return Err(err(
            "the upstream server does not accept TLS, which [upstream] sslmode requires",
        ));
    }
    let stream = tls
        .connector
        .connect(tls.server_name.clone(), tcp)
        .await
        .map_err(|e| err(format!("TLS with the upstream server: {e}")))?;
    Ok(MaybeTls::Tls(Box::new(stream)))
}
