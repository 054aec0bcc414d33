//! Raw protocol bytes, for tests that send what no client library would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A StartupMessage (protocol 3.0) with the given parameters.
pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608i32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// One frontend message: type byte, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A session's opening: startup as `user` of `database`, then `token` as
/// the password.
pub fn login(user: &str, database: &str, token: &str) -> Vec<u8> {
    let mut out = startup_packet(&[("user", user), ("database", database)]);
    let mut pw = token.as_bytes().to_vec();
    pw.push(0);
    out.extend_from_slice(&message(b'p', &pw));
    out
}

/// Sends `bytes`, reads until the proxy closes (bounded: 64 reads, 10 s
/// each), returns what came back.
pub fn exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..64 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// True when `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
