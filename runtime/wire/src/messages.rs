//! Decoding of the client messages policy needs, and encoding of the backend
//! messages the proxy originates.

use crate::kinds::TransactionStatus;
use bytes::{BufMut, Bytes, BytesMut};

/// Protocol version 3.0.
pub const PROTOCOL_3_0: i32 = 196_608;
/// SSLRequest code.
pub const SSL_REQUEST: i32 = 80_877_103;
/// GSSENCRequest code.
pub const GSSENC_REQUEST: i32 = 80_877_104;
/// CancelRequest code.
pub const CANCEL_REQUEST: i32 = 80_877_102;

/// The first packet a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// A normal startup with its parameters.
    Startup(Vec<(String, String)>),
    /// Asks for TLS.
    SslRequest,
    /// Asks for GSSAPI encryption.
    GssEncRequest,
    /// Asks to cancel the running query of the session with this key.
    Cancel {
        /// Process id of the key.
        pid: i32,
        /// Secret of the key.
        secret: i32,
    },
    /// A protocol version this proxy does not speak.
    UnsupportedVersion(i32),
}

/// Why a message body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Reads a NUL-terminated string at the start of `body`; returns it and the rest.
fn cstr(body: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let nul = body
        .iter()
        .position(|b| *b == 0)
        .ok_or(DecodeError("missing string terminator"))?;
    Ok((&body[..nul], &body[nul + 1..]))
}

/// Decodes a startup packet body (after its length).
pub fn decode_startup(body: &[u8]) -> Result<Startup, DecodeError> {
    if body.len() < 4 {
        return Err(DecodeError("startup packet too short"));
    }
    let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    match code {
        SSL_REQUEST => return Ok(Startup::SslRequest),
        GSSENC_REQUEST => return Ok(Startup::GssEncRequest),
        CANCEL_REQUEST => {
            if body.len() != 12 {
                return Err(DecodeError("CancelRequest has the wrong length"));
            }
            let pid = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
            let secret = i32::from_be_bytes([body[8], body[9], body[10], body[11]]);
            return Ok(Startup::Cancel { pid, secret });
        }
        PROTOCOL_3_0 => {}
        other => return Ok(Startup::UnsupportedVersion(other)),
    }
    let mut rest = &body[4..];
    let mut params = Vec::new();
    loop {
        let (key, after) = cstr(rest)?;
        if key.is_empty() {
            break;
        }
        let (value, after) = cstr(after)?;
        let key = String::from_utf8(key.to_vec())
            .map_err(|_| DecodeError("startup parameter name is not UTF-8"))?;
        let value = String::from_utf8(value.to_vec())
            .map_err(|_| DecodeError("startup parameter value is not UTF-8"))?;
        params.push((key, value));
        rest = after;
    }
    Ok(Startup::Startup(params))
}

/// The string of a PasswordMessage (`p`) or Query (`Q`) body.
pub fn decode_cstring_body(body: &[u8]) -> Result<&[u8], DecodeError> {
    let (s, rest) = cstr(body)?;
    if !rest.is_empty() {
        return Err(DecodeError("trailing bytes after string"));
    }
    Ok(s)
}

/// A decoded `Parse` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Prepared statement name (empty: the unnamed statement).
    pub name: &'a [u8],
    /// The statement text, as sent.
    pub query: &'a [u8],
    /// The parameter type section, kept as bytes.
    pub param_types: &'a [u8],
}

/// Decodes a `Parse` (`P`) body.
pub fn decode_parse(body: &[u8]) -> Result<Parse<'_>, DecodeError> {
    let (name, rest) = cstr(body)?;
    let (query, rest) = cstr(rest)?;
    if rest.len() < 2 {
        return Err(DecodeError("Parse message lacks its parameter count"));
    }
    let n = i16::from_be_bytes([rest[0], rest[1]]);
    if n < 0 || rest.len() != 2 + 4 * n as usize {
        return Err(DecodeError(
            "Parse message has a malformed parameter type list",
        ));
    }
    Ok(Parse {
        name,
        query,
        param_types: rest,
    })
}

/// The portal and statement names at the start of a `Bind` body.
pub fn decode_bind_names(body: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let (portal, rest) = cstr(body)?;
    let (statement, _) = cstr(rest)?;
    Ok((portal, statement))
}

/// `Parse` with the given name, text and parameter type section.
pub fn parse(name: &[u8], query: &str, param_types: &[u8]) -> Bytes {
    message(b'P', |b| {
        b.put_slice(name);
        b.put_u8(0);
        put_cstr(b, query);
        b.put_slice(param_types);
    })
}

/// `Bind` of a statement without parameters to a portal, text results.
pub fn bind_no_params(portal: &str, statement: &str) -> Bytes {
    message(b'B', |b| {
        put_cstr(b, portal);
        put_cstr(b, statement);
        b.put_i16(0);
        b.put_i16(0);
        b.put_i16(0);
    })
}

/// `Execute` of a portal, all rows.
pub fn execute(portal: &str) -> Bytes {
    message(b'E', |b| {
        put_cstr(b, portal);
        b.put_i32(0);
    })
}

fn message(tag: u8, body: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_u8(tag);
    buf.put_i32(0);
    body(&mut buf);
    let len = i32::try_from(buf.len() - 1).expect("backend messages are small");
    buf[1..5].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

fn put_cstr(buf: &mut BytesMut, s: &str) {
    // A NUL inside would end the field early; no message we build contains one.
    buf.put_slice(s.replace('\0', "").as_bytes());
    buf.put_u8(0);
}

/// A CancelRequest packet for a backend key.
pub fn cancel_request(pid: i32, secret: i32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&16i32.to_be_bytes());
    out[4..8].copy_from_slice(&CANCEL_REQUEST.to_be_bytes());
    out[8..12].copy_from_slice(&pid.to_be_bytes());
    out[12..16].copy_from_slice(&secret.to_be_bytes());
    out
}

/// `Query` (`Q`) with the given text.
pub fn query(text: &str) -> Bytes {
    message(b'Q', |b| put_cstr(b, text))
}

/// AuthenticationCleartextPassword.
pub fn auth_cleartext() -> Bytes {
    message(b'R', |b| b.put_i32(3))
}

/// SSLRequest (sent to the upstream server).
pub fn ssl_request() -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&8i32.to_be_bytes());
    out[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    out
}

/// AuthenticationSASL offering SCRAM-SHA-256 (no channel binding).
pub fn auth_sasl_scram() -> Bytes {
    message(b'R', |b| {
        b.put_i32(10);
        b.put_slice(b"SCRAM-SHA-256\0\0");
    })
}

/// AuthenticationSASLContinue (`final_ = false`) or AuthenticationSASLFinal.
pub fn auth_sasl_data(final_: bool, data: &[u8]) -> Bytes {
    message(b'R', |b| {
        b.put_i32(if final_ { 12 } else { 11 });
        b.put_slice(data);
    })
}

/// A SASLInitialResponse body: the mechanism and the client's first message.
pub fn decode_sasl_initial(body: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let nul = body
        .iter()
        .position(|&b| b == 0)
        .ok_or(DecodeError("SASLInitialResponse without a mechanism"))?;
    let (mechanism, rest) = (&body[..nul], &body[nul + 1..]);
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError("SASLInitialResponse without a length"))?;
    let len = i32::from_be_bytes(len_bytes);
    let data = &rest[4..];
    if len < 0 || len as usize != data.len() {
        return Err(DecodeError(
            "SASLInitialResponse length does not match its data",
        ));
    }
    Ok((mechanism, data))
}

/// AuthenticationOk.
pub fn auth_ok() -> Bytes {
    message(b'R', |b| b.put_i32(0))
}

/// BackendKeyData.
pub fn backend_key_data(pid: i32, secret: i32) -> Bytes {
    message(b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    })
}

/// CommandComplete with a command tag (`SELECT 5`).
pub fn command_complete(tag: &str) -> Bytes {
    message(b'C', |b| put_cstr(b, tag))
}

/// Terminate: what the proxy sends the server when a session ends.
pub const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// ReadyForQuery with a transaction status.
pub fn ready_for_query(status: TransactionStatus) -> Bytes {
    message(b'Z', |b| b.put_u8(status.byte()))
}

/// Severity of an error or notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends.
    Fatal,
    /// Informational.
    Notice,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
            Severity::Notice => "NOTICE",
        }
    }
}

/// ErrorResponse (or NoticeResponse for `Severity::Notice`).
pub fn error_response(
    severity: Severity,
    sqlstate: &str,
    message_text: &str,
    hint: Option<&str>,
) -> Bytes {
    let tag = if severity == Severity::Notice {
        b'N'
    } else {
        b'E'
    };
    message(tag, |b| {
        b.put_u8(b'S');
        put_cstr(b, severity.as_str());
        b.put_u8(b'V');
        put_cstr(b, severity.as_str());
        b.put_u8(b'C');
        put_cstr(b, sqlstate);
        b.put_u8(b'M');
        put_cstr(b, message_text);
        if let Some(h) = hint {
            b.put_u8(b'H');
            put_cstr(b, h);
        }
        b.put_u8(0);
    })
}

/// The fields of an ErrorResponse or NoticeResponse body: (code, value).
pub fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some((&code, after)) = rest.split_first() {
        if code == 0 {
            break;
        }
        let Ok((value, after)) = cstr(after) else {
            break;
        };
        out.push((code, String::from_utf8_lossy(value).into_owned()));
        rest = after;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_round_trip() {
        let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0ci\0database\0shop\0\0");
        assert_eq!(
            decode_startup(&body).unwrap(),
            Startup::Startup(vec![
                ("user".into(), "ci".into()),
                ("database".into(), "shop".into())
            ])
        );
    }

    #[test]
    fn parse_round_trip_keeps_parameter_types() {
        let raw = parse(b"s1", "SELECT $1", &[0, 1, 0, 0, 0, 23]);
        let p = decode_parse(&raw[5..]).unwrap();
        assert_eq!(
            (p.name, p.query, p.param_types),
            (&b"s1"[..], &b"SELECT $1"[..], &[0u8, 1, 0, 0, 0, 23][..])
        );
        assert!(decode_parse(b"s\0q\0\0\x02\0\0").is_err());
    }

    #[test]
    fn unterminated_startup_is_an_error() {
        let mut body = PROTOCOL_3_0.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0ci");
        assert!(decode_startup(&body).is_err());
    }

    #[test]
    fn error_response_fields_decode() {
        let e = error_response(Severity::Error, "42501", "denied", Some("ask"));
        let fields = error_fields(&e[5..]);
        assert!(fields.contains(&(b'C', "42501".into())));
        assert!(fields.contains(&(b'M', "denied".into())));
        assert!(fields.contains(&(b'H', "ask".into())));
    }
}
