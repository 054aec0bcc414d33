//! Static service accounts authenticated with SCRAM-SHA-256 (RFC 5802,
//! RFC 7677) against verifiers in the config, in the format PostgreSQL
//! stores in `pg_authid` (`SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`),
//! so a password never needs to be in the config. The server side of the
//! exchange is written here because the crates we use (postgres-protocol)
//! only implement the client side; it is a few HMACs over the messages.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::scram::hmac;
use subtle::ConstantTimeEq;

/// A stored SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for ScramVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramVerifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// What a SCRAM-SHA-256 verifier of a service account gets wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    /// It does not start with `SCRAM-SHA-256$`.
    #[error("not a SCRAM-SHA-256 verifier: {FORMAT}")]
    NotScram,
    /// A separator is missing.
    #[error("{FORMAT}")]
    Malformed,
    /// The iteration count is not a number of at least 4096.
    #[error("the iteration count must be a number of at least 4096")]
    Iterations,
    /// The salt is not base64.
    #[error("the salt is not base64")]
    Salt,
    /// A key (`StoredKey` or `ServerKey`) is not 32 bytes of base64.
    #[error("the {0} is not 32 bytes of base64")]
    Key(&'static str),
}

/// The verifier's form, for messages.
const FORMAT: &str = "expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> \
     (what `clsf-proxy scram-verifier` prints, or PostgreSQL's pg_authid.rolpassword)";

impl std::str::FromStr for ScramVerifier {
    type Err = VerifierError;

    fn from_str(s: &str) -> Result<ScramVerifier, VerifierError> {
        let rest = s
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(VerifierError::NotScram)?;
        let (params, keys) = rest.split_once('$').ok_or(VerifierError::Malformed)?;
        let (iterations, salt) = params.split_once(':').ok_or(VerifierError::Malformed)?;
        let (stored, server) = keys.split_once(':').ok_or(VerifierError::Malformed)?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|&i| i >= 4096)
            .ok_or(VerifierError::Iterations)?;
        let salt = B64.decode(salt).map_err(|_| VerifierError::Salt)?;
        let key = |k: &str, what: &'static str| -> Result<[u8; 32], VerifierError> {
            B64.decode(k)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or(VerifierError::Key(what))
        };
        Ok(ScramVerifier {
            iterations,
            salt,
            stored_key: key(stored, "StoredKey")?,
            server_key: key(server, "ServerKey")?,
        })
    }
}

impl ScramVerifier {
    /// True when `password` is the one this verifier was made from (for
    /// credentials sent whole over TLS, as the MCP listener's `Basic`
    /// authorization; compared in constant time).
    pub fn accepts_password(&self, password: &str) -> bool {
        let salted = crate::scram::hi(
            &crate::scram::normalize(password),
            &self.salt,
            self.iterations,
        );
        let client_key = hmac(&salted, b"Client Key");
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        bool::from(stored.ct_eq(&self.stored_key))
    }
}

/// Makes a verifier for `password` with a random salt (for
/// `clsf-proxy scram-verifier`); the same derivation as PostgreSQL's.
pub fn make_verifier(password: &str) -> String {
    postgres_protocol::password::scram_sha_256(password.as_bytes())
}

/// The exchange after the client's first message, waiting for its final one.
#[derive(Debug)]
pub struct Exchange {
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// Why an exchange failed. Deliberately vague towards the client: a wrong
/// password and a malformed proof get the same answer.
#[derive(Debug, PartialEq, Eq)]
pub struct ScramError(pub &'static str);

impl Exchange {
    /// Reads the client-first message and answers with the server-first
    /// message (to send as AuthenticationSASLContinue).
    pub fn start(
        verifier: &ScramVerifier,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<Exchange, ScramError> {
        let text = std::str::from_utf8(client_first).map_err(|_| ScramError("not UTF-8"))?;
        // gs2-header: channel-binding flag, then an authzid we do not support.
        let (flag, rest) = text.split_once(',').ok_or(ScramError("no GS2 header"))?;
        if flag.starts_with("p=") {
            return Err(ScramError("channel binding was not offered"));
        }
        if flag != "n" && flag != "y" {
            return Err(ScramError("bad channel-binding flag"));
        }
        let (authzid, bare) = rest.split_once(',').ok_or(ScramError("no GS2 header"))?;
        if !authzid.is_empty() {
            return Err(ScramError("authorization identities are not supported"));
        }
        let mut client_nonce = None;
        for attr in bare.split(',') {
            match attr.split_at_checked(2) {
                Some(("n=", _)) => {}
                Some(("r=", nonce)) => client_nonce = Some(nonce),
                Some(("m=", _)) => {
                    return Err(ScramError("mandatory extensions are not supported"));
                }
                _ => return Err(ScramError("malformed client-first message")),
            }
        }
        let client_nonce = client_nonce
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b','))
            .ok_or(ScramError("missing or malformed client nonce"))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        Ok(Exchange {
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
        })
    }

    /// The server-first message.
    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Checks the client-final message's proof; on success returns the
    /// server-final message (to send as AuthenticationSASLFinal), which
    /// proves to the client that the server knows the verifier.
    pub fn finish(
        &self,
        verifier: &ScramVerifier,
        client_final: &[u8],
    ) -> Result<String, ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError("no proof in the client-final message"))?;
        let mut binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_at_checked(2) {
                Some(("c=", v)) => binding = Some(v),
                Some(("r=", v)) => nonce = Some(v),
                _ => return Err(ScramError("malformed client-final message")),
            }
        }
        if binding != Some(B64.encode(&self.gs2_header).as_str()) {
            return Err(ScramError("channel binding does not match"));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(ScramError("nonce does not match"));
        }
        let proof: [u8; 32] = B64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError("malformed proof"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac(&verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
        let stored: [u8; 32] = Sha256::digest(&client_key).into();
        if !bool::from(stored.ct_eq(&verifier.stored_key)) {
            return Err(ScramError("wrong password"));
        }
        let server_signature = hmac(&verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

pub use crate::scram::nonce as server_nonce;

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of RFC 5802 computed independently here from the
    /// password, to drive the server side.
    fn client_final(password: &str, exchange: &Exchange, salt: &[u8], iterations: u32) -> String {
        let mut salted = [0u8; 32];
        // PBKDF2-HMAC-SHA256 by hand (Hi() in RFC 5802) to stay independent
        // of the verifier-making code under test.
        let mut u = hmac(password.as_bytes(), &[salt, &1u32.to_be_bytes()].concat());
        salted.copy_from_slice(&u);
        for _ in 1..iterations {
            u = hmac(password.as_bytes(), &u);
            for (s, b) in salted.iter_mut().zip(u) {
                *s ^= b;
            }
        }
        let client_key = hmac(&salted, b"Client Key");
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={}", exchange.nonce);
        let auth = format!(
            "{},{},{without_proof}",
            exchange.client_first_bare, exchange.server_first
        );
        let sig = hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(k, s)| k ^ s).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn the_right_password_passes_and_a_wrong_one_fails() {
        let v: ScramVerifier = make_verifier("s3cret pass").parse().unwrap();
        let ex = Exchange::start(&v, b"n,,n=,r=clientnonce123", &server_nonce()).unwrap();
        assert!(ex.server_first().starts_with("r=clientnonce123"));
        let good = client_final("s3cret pass", &ex, &v.salt, v.iterations);
        let answer = ex.finish(&v, good.as_bytes()).unwrap();
        assert!(answer.starts_with("v="));
        let bad = client_final("s3cret pasS", &ex, &v.salt, v.iterations);
        assert_eq!(
            ex.finish(&v, bad.as_bytes()),
            Err(ScramError("wrong password"))
        );
    }

    #[test]
    fn malformed_exchanges_are_refused_without_panicking() {
        let v: ScramVerifier = make_verifier("x").parse().unwrap();
        for first in [
            &b""[..],
            b"n",
            b"p=tls-server-end-point,,n=,r=abc",
            b"n,a=admin,n=,r=abc",
            b"n,,n=,r=",
            b"n,,m=ext,r=abc",
            b"\xff\xfe",
        ] {
            assert!(Exchange::start(&v, first, "s").is_err(), "{first:?}");
        }
        let ex = Exchange::start(&v, b"n,,n=,r=abc", "srv").unwrap();
        for fin in [
            &b""[..],
            b"c=biws,r=abcsrv",
            b"c=biws,r=other,p=AAAA",
            b"c=eSws,r=abcsrv,p=AAAA",
            b"c=biws,r=abcsrv,p=!!",
        ] {
            assert!(ex.finish(&v, fin).is_err(), "{fin:?}");
        }
    }

    #[test]
    fn verifiers_are_checked_when_read() {
        let parse = |s: &str| s.parse::<ScramVerifier>().map(|_| ());
        assert_eq!(parse("md5abc"), Err(VerifierError::NotScram));
        assert_eq!(
            parse("SCRAM-SHA-256$4096:c2FsdA=="),
            Err(VerifierError::Malformed)
        );
        assert_eq!(
            parse("SCRAM-SHA-256$10:c2FsdA==$AAAA:BBBB"),
            Err(VerifierError::Iterations)
        );
        assert_eq!(
            parse("SCRAM-SHA-256$4096:!!$AAAA:BBBB"),
            Err(VerifierError::Salt)
        );
        assert_eq!(
            parse("SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB"),
            Err(VerifierError::Key("StoredKey"))
        );
        let made = make_verifier("pw");
        assert!(made.parse::<ScramVerifier>().is_ok(), "{made}");
    }
}
