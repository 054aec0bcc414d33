//! SCRAM-SHA-256's computations (RFC 5802, RFC 7677) shared by the proxy's
//! two sides of it: the server side that verifies service accounts
//! (`auth::scram`) and the client side that logs in upstream
//! (`upstream::scram`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};

type HmacSha256 = Hmac<sha2::Sha256>;

/// PostgreSQL runs SASLprep on passwords that are valid UTF-8 and accepts
/// the raw bytes otherwise; the client must do the same to agree.
pub fn normalize(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// PBKDF2-HMAC-SHA-256 with one output block: RFC 5802's `Hi`.
pub fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let key = HmacSha256::new_from_slice(password).expect("HMAC takes keys of any length");
    let mut mac = key.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut prev: [u8; 32] = mac.finalize().into_bytes().into();
    let mut out = prev;
    for _ in 1..iterations {
        // Cloning the keyed state skips re-deriving the HMAC pads each round.
        let mut mac = key.clone();
        mac.update(&prev);
        prev = mac.finalize().into_bytes().into();
        for (o, p) in out.iter_mut().zip(prev) {
            *o ^= p;
        }
    }
    out
}

/// RFC 5802's `HMAC`: HMAC-SHA-256 of `data` under `key`.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A fresh nonce: 18 random bytes from the operating system, base64.
pub fn nonce() -> String {
    let mut bytes = [0u8; 18];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    B64.encode(bytes)
}
