//! The client side of SCRAM-SHA-256 (RFC 5802, RFC 7677) towards the
//! upstream server, with the salted password kept between logins.
//!
//! Written here rather than taken from postgres-protocol's `ScramSha256`
//! because that type derives the salted password (PBKDF2, 4 096 HMAC
//! rounds by default) on every login and offers no way to reuse it. The
//! salt and iteration count belong to the role's stored verifier, so they
//! are the same at every login until the password changes: deriving once
//! takes the proxy's dearest step off every upstream connection (about a
//! millisecond of CPU each, which dominated connection-per-transaction
//! workloads and many-client starts).

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::scram::{hi, hmac, normalize};

type HmacSha256 = Hmac<Sha256>;

/// The most iterations the proxy accepts from a server: a PBKDF2 count
/// beyond this would stall a session thread for seconds.
const MAX_ITERATIONS: u32 = 1_000_000;

/// Why a SCRAM exchange with the server failed. Never carries the
/// password or a key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramClientError {
    /// The server-first message could not be read.
    #[error("malformed server-first message: {0}")]
    ServerFirst(&'static str),
    /// The server's nonce does not extend ours.
    #[error("the server's nonce does not extend the client's")]
    Nonce,
    /// The server asked for more PBKDF2 iterations than the proxy allows.
    #[error("the server asks for {0} iterations, more than the proxy's limit of {MAX_ITERATIONS}")]
    Iterations(u32),
    /// The server reported an error in its final message.
    #[error("the server refused the proof: {0}")]
    Refused(String),
    /// The server-final message could not be read.
    #[error("malformed server-final message")]
    ServerFinal,
    /// The server's signature is wrong: it does not know the password.
    #[error("the server's signature does not match (not the expected server)")]
    Signature,
    /// A message arrived in the wrong state.
    #[error("SCRAM message out of order")]
    Order,
}

/// Salted passwords from earlier logins, shared by every connection to one
/// upstream. One entry: a role has one verifier at a time.
#[derive(Default)]
pub struct SaltedCache(Mutex<Option<Salted>>);

impl std::fmt::Debug for SaltedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaltedCache")
    }
}

struct Salted {
    /// The normalised password it was derived from, so a changed password
    /// never reuses an old derivation.
    password: Vec<u8>,
    salt: Vec<u8>,
    iterations: u32,
    salted: [u8; 32],
}

impl SaltedCache {
    /// The salted password for this password, salt and count: from an
    /// earlier login when they match, derived (and kept) otherwise.
    fn get(&self, password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
        let cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cached.as_ref()
            && s.iterations == iterations
            && s.salt == salt
            && s.password == password
        {
            return s.salted;
        }
        drop(cached);
        let salted = hi(password, salt, iterations);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Salted {
            password: password.to_vec(),
            salt: salt.to_vec(),
            iterations,
            salted,
        });
        salted
    }

    /// True when a derivation is kept (for tests).
    pub fn is_filled(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

enum State {
    /// The client-first message was sent; waiting for the server-first.
    Started,
    /// The proof was sent; waiting for the server's signature.
    Proved {
        salted: [u8; 32],
        auth_message: String,
    },
    Done,
}

/// One login's exchange, from the client's side, without channel binding.
pub struct ScramClient<'a> {
    password: Vec<u8>,
    cache: &'a SaltedCache,
    nonce: String,
    message: String,
    state: State,
}

impl std::fmt::Debug for ScramClient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient").finish_non_exhaustive()
    }
}

impl<'a> ScramClient<'a> {
    /// Starts an exchange for `password`, reusing derivations in `cache`.
    pub fn new(password: &str, cache: &'a SaltedCache) -> Self {
        Self::with_nonce(password, cache, crate::scram::nonce())
    }

    fn with_nonce(password: &str, cache: &'a SaltedCache, nonce: String) -> Self {
        ScramClient {
            password: normalize(password),
            cache,
            message: format!("n,,n=,r={nonce}"),
            nonce,
            state: State::Started,
        }
    }

    /// The message to send next (client-first, then client-final).
    pub fn message(&self) -> &[u8] {
        self.message.as_bytes()
    }

    /// Reads the server-first message and prepares the client-final one.
    pub fn update(&mut self, server_first: &[u8]) -> Result<(), ScramClientError> {
        if !matches!(self.state, State::Started) {
            return Err(ScramClientError::Order);
        }
        self.state = State::Done;
        let text = std::str::from_utf8(server_first)
            .map_err(|_| ScramClientError::ServerFirst("not UTF-8"))?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(v),
                Some(("i=", v)) => iterations = Some(v),
                Some(("m=", _)) => {
                    return Err(ScramClientError::ServerFirst("mandatory extension"));
                }
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramClientError::ServerFirst("no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramClientError::Nonce);
        }
        let salt = B64
            .decode(salt.ok_or(ScramClientError::ServerFirst("no salt"))?)
            .map_err(|_| ScramClientError::ServerFirst("the salt is not base64"))?;
        let iterations: u32 = iterations
            .ok_or(ScramClientError::ServerFirst("no iteration count"))?
            .parse()
            .map_err(|_| ScramClientError::ServerFirst("bad iteration count"))?;
        if iterations == 0 {
            return Err(ScramClientError::ServerFirst("zero iterations"));
        }
        if iterations > MAX_ITERATIONS {
            return Err(ScramClientError::Iterations(iterations));
        }
        let salted = self.cache.get(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        // "biws" is base64 of the GS2 header "n,,": no channel binding.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("n=,r={},{text},{without_proof}", self.nonce);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(signature) {
            *p ^= s;
        }
        self.message = format!("{without_proof},p={}", B64.encode(proof));
        self.state = State::Proved {
            salted,
            auth_message,
        };
        Ok(())
    }

    /// Checks the server-final message: the server proves it knows the
    /// password too. Authentication succeeded only when this is `Ok`.
    pub fn finish(&mut self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let State::Proved {
            salted,
            auth_message,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(ScramClientError::Order);
        };
        let text = std::str::from_utf8(server_final).map_err(|_| ScramClientError::ServerFinal)?;
        let first = text.split(',').next().unwrap_or("");
        if let Some(e) = first.strip_prefix("e=") {
            return Err(ScramClientError::Refused(e.chars().take(64).collect()));
        }
        let verifier = first
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or(ScramClientError::ServerFinal)?;
        let server_key = hmac(&salted, b"Server Key");
        let mut mac = HmacSha256::new_from_slice(&server_key).expect("any key length");
        mac.update(auth_message.as_bytes());
        // Constant time: the comparison must not tell how much matched.
        mac.verify_slice(&verifier)
            .map_err(|_| ScramClientError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::{Exchange, ScramVerifier, make_verifier};

    /// Runs our client against the proxy's own server side (which checks
    /// against a verifier made by postgres-protocol, as PostgreSQL makes
    /// them) and returns whether both sides agreed.
    fn login(verifier: &str, password: &str, cache: &SaltedCache) -> Result<(), ScramClientError> {
        let verifier: ScramVerifier = verifier.parse().unwrap();
        let mut client = ScramClient::new(password, cache);
        let first = client.message().to_vec();
        let exchange = Exchange::start(&verifier, &first, &crate::scram::nonce()).unwrap();
        client.update(exchange.server_first().as_bytes())?;
        let server_final = exchange
            .finish(&verifier, client.message())
            .map_err(|_| ScramClientError::Refused("wrong proof".into()))?;
        client.finish(server_final.as_bytes())
    }

    #[test]
    fn logs_in_and_reuses_the_derivation() {
        let verifier = make_verifier("s3cret-ü");
        let cache = SaltedCache::default();
        assert!(!cache.is_filled());
        login(&verifier, "s3cret-ü", &cache).unwrap();
        assert!(cache.is_filled());
        // The second login takes the salted password from the cache and
        // must still produce a proof the server accepts.
        login(&verifier, "s3cret-ü", &cache).unwrap();
        // Proof that the second login used the cache: spoil the kept
        // derivation and the next login fails.
        cache.0.lock().unwrap().as_mut().unwrap().salted[0] ^= 1;
        assert!(login(&verifier, "s3cret-ü", &cache).is_err());
    }

    #[test]
    fn a_changed_password_or_salt_is_never_served_from_the_cache() {
        let cache = SaltedCache::default();
        login(&make_verifier("old"), "old", &cache).unwrap();
        // Same cache, the server now holds a verifier for another password:
        // the old derivation must not be used (it would fail the proof).
        login(&make_verifier("new"), "new", &cache).unwrap();
        // A wrong password with a warm cache is still refused.
        assert!(login(&make_verifier("new"), "old", &cache).is_err());
    }

    #[test]
    fn refuses_a_server_that_does_not_know_the_password() {
        let cache = SaltedCache::default();
        let mut client = ScramClient::with_nonce("pw", &cache, "abc".into());
        client.update(b"r=abcdef,s=c2FsdA==,i=4096").unwrap();
        let wrong = B64.encode([0u8; 32]);
        assert_eq!(
            client.finish(format!("v={wrong}").as_bytes()),
            Err(ScramClientError::Signature)
        );
    }

    #[test]
    fn refuses_malformed_and_hostile_server_messages() {
        let cache = SaltedCache::default();
        let cases: [(&[u8], ScramClientError); 5] = [
            (b"r=xyz,s=c2FsdA==,i=4096", ScramClientError::Nonce),
            (b"r=abc,s=c2FsdA==,i=4096", ScramClientError::Nonce),
            (
                b"r=abcd,s=!!,i=4096",
                ScramClientError::ServerFirst("the salt is not base64"),
            ),
            (
                b"r=abcd,s=c2FsdA==,i=0",
                ScramClientError::ServerFirst("zero iterations"),
            ),
            (
                b"r=abcd,s=c2FsdA==,i=99999999",
                ScramClientError::Iterations(99_999_999),
            ),
        ];
        for (message, expected) in cases {
            let mut client = ScramClient::with_nonce("pw", &cache, "abc".into());
            assert_eq!(client.update(message), Err(expected));
        }
        let mut client = ScramClient::with_nonce("pw", &cache, "abc".into());
        assert_eq!(client.finish(b"v=AAAA"), Err(ScramClientError::Order));
        assert!(!cache.is_filled());
    }
}
