//! JWT verification against an issuer's JWKS: signature (RS256 or ES256),
//! issuer, audience, expiry and not-before; then the issuer's claim
//! mapping. Several issuers can be trusted at once; a token is routed to
//! the one its (not yet verified) `iss` names, and only that issuer's keys
//! and audience can verify it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jwks::Keys;

/// Algorithms accepted. `none` and HMAC are never accepted: a shared secret
/// would let anyone holding the JWKS mint tokens.
const ALLOWED: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256];

/// Claims a mapping may not set: they are what the token was verified on.
const PROTECTED_CLAIMS: &[&str] = &["iss", "aud", "exp", "nbf", "iat"];

/// Verifies tokens of one issuer.
#[derive(Debug)]
pub struct Verifier {
    issuer: String,
    audience: String,
    keys: Keys,
    leeway: u64,
    /// Claim name → the token's claim (dotted path) it is taken from.
    claim_map: BTreeMap<String, String>,
    /// Tokens whose signature was checked, by SHA-256 of the token.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// Verifications answered from `verified` (for tests and metrics).
    hits: AtomicU64,
}

/// A token that passed every check against one key set.
///
/// Why a cache: an ES256 signature check costs about 200 µs of CPU, most
/// of a connection's setup, and a workload reconnecting with the same
/// token (a pool, `pgbench -C`, a CI job's many steps) would pay it each
/// time. Everything but the time checks is a pure function of the token's
/// bytes, the key set and this verifier's settings, so a later use of the
/// same token against the same key set (compared by identity, so a JWKS
/// refresh empties it in effect) repeats only `exp` and `nbf`.
#[derive(Debug)]
struct Verified {
    keys: Arc<JwkSet>,
    claims: Value,
}

/// Entries kept at most; past it, expired ones go, then all.
const VERIFIED_CAPACITY: usize = 4096;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a token was refused. The message names the check, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An issuer's `claims` mapping sets a claim the proxy checks itself
/// (`iss`, `aud`, `exp`, …), which would let a token choose its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the claim mapping may not set `{0}`")]
pub struct ProtectedClaim(pub String);

impl Verifier {
    /// A verifier for `issuer` and `audience` with `keys`; `claim_map`
    /// adds claims taken from others (e.g. `repository` ← `project_path`).
    pub fn new(
        issuer: &str,
        audience: &str,
        keys: Keys,
        leeway: u64,
        claim_map: BTreeMap<String, String>,
    ) -> Result<Verifier, ProtectedClaim> {
        if let Some(bad) = claim_map
            .keys()
            .find(|k| PROTECTED_CLAIMS.contains(&k.as_str()))
        {
            return Err(ProtectedClaim(bad.clone()));
        }
        Ok(Verifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys,
            leeway,
            claim_map,
            verified: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
        })
    }

    /// How many verifications were answered from the cache of checked
    /// signatures.
    pub fn cache_hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The time checks jsonwebtoken makes, repeated for a cached token.
    fn still_valid(&self, claims: &Value) -> Result<(), Rejected> {
        let now = unix_now();
        // Numeric dates may be written as floats; jsonwebtoken accepts both.
        let seconds = |v: &Value| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64));
        let exp = claims.get("exp").and_then(seconds).unwrap_or(0);
        if exp.saturating_add(self.leeway) < now {
            return Err(Rejected("token has expired".into()));
        }
        if let Some(nbf) = claims.get("nbf").and_then(seconds)
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(Rejected("token is not valid yet".into()));
        }
        Ok(())
    }

    fn remember(&self, digest: [u8; 32], keys: &Arc<JwkSet>, claims: &Value) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, v| self.still_valid(&v.claims).is_ok());
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(
            digest,
            Verified {
                keys: Arc::clone(keys),
                claims: claims.clone(),
            },
        );
    }

    /// Verifies `token` and returns its claims, mapped.
    pub async fn verify(&self, token: &str) -> Result<Value, Rejected> {
        let header = decode_header(token)
            .map_err(|_| Rejected("the password is not a well-formed JWT".into()))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(Rejected(format!(
                "token algorithm {:?} is not accepted (RS256 or ES256)",
                header.alg
            )));
        }
        let mut keys = self.keys.current();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .filter(|v| Arc::ptr_eq(&v.keys, &keys))
            .map(|v| v.claims.clone());
        if let Some(claims) = cached {
            self.still_valid(&claims)?;
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(claims);
        }
        if let Some(kid) = &header.kid
            && keys.find(kid).is_none()
        {
            keys = self.keys.refresh_for(kid).await;
        }
        let mut claims = self.verify_with(token, &header, &keys)?;
        for (to, from) in &self.claim_map {
            let mut value = Some(&claims);
            for segment in from.split('.') {
                value = value.and_then(|v| v.get(segment));
            }
            if let Some(v) = value.cloned() {
                claims[to.as_str()] = v;
            }
        }
        self.remember(digest, &keys, &claims);
        Ok(claims)
    }

    fn verify_with(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
        keys: &JwkSet,
    ) -> Result<Value, Rejected> {
        let jwk = match &header.kid {
            Some(kid) => keys
                .find(kid)
                .ok_or_else(|| Rejected(format!("no trusted key with id `{kid}`")))?,
            None if keys.keys.len() == 1 => &keys.keys[0],
            None => {
                return Err(Rejected(
                    "token has no key id (kid) and the JWKS holds several keys".into(),
                ));
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|_| Rejected("the trusted key for this token is unusable".into()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        let data = decode::<Value>(token, &key, &validation).map_err(|e| {
            Rejected(
                match e.kind() {
                    ErrorKind::ExpiredSignature => "token has expired",
                    ErrorKind::ImmatureSignature => "token is not valid yet",
                    ErrorKind::InvalidIssuer => "token issuer is not trusted",
                    ErrorKind::InvalidAudience => "token audience is not this proxy",
                    ErrorKind::InvalidSignature => "token signature is invalid",
                    ErrorKind::InvalidAlgorithm => "token algorithm does not match its key",
                    ErrorKind::MissingRequiredClaim(_) => {
                        "token lacks a required claim (exp, iss, aud, sub)"
                    }
                    _ => "token is invalid",
                }
                .to_owned(),
            )
        })?;
        Ok(data.claims)
    }
}

/// Every trusted issuer.
#[derive(Debug)]
pub struct Issuers(pub Vec<Verifier>);

impl Issuers {
    /// Verifies `token` with the issuer its `iss` names. The `iss` read
    /// here is unverified and only picks the verifier, which then checks
    /// the signature with that issuer's keys and the issuer claim again.
    pub async fn verify(&self, token: &str) -> Result<Value, Rejected> {
        let iss = unverified_issuer(token)
            .ok_or_else(|| Rejected("the password is not a well-formed JWT".into()))?;
        let verifier = self
            .0
            .iter()
            .find(|v| v.issuer == iss)
            .ok_or_else(|| Rejected("token issuer is not trusted".into()))?;
        verifier.verify(token).await
    }
}

fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::jwks::KeySource;
    use crate::keys::{self, KeyAlg};
    use serde_json::json;

    async fn verifier(dir: &std::path::Path, jwks: &Value) -> Verifier {
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        let keys = Keys::load(KeySource::File(path), std::time::Duration::from_secs(60))
            .await
            .unwrap();
        Verifier::new("https://issuer.test", "proxy", keys, 0, BTreeMap::new()).unwrap()
    }

    fn claims(exp_in: i64) -> Value {
        let now = unix_now() as i64;
        json!({ "iss": "https://issuer.test", "aud": "proxy", "sub": "job", "exp": now + exp_in })
    }

    #[tokio::test]
    async fn a_token_checked_once_is_answered_from_the_cache_until_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let pair = keys::generate(KeyAlg::Es256, "k1").unwrap();
        let v = verifier(dir.path(), &pair.jwks).await;
        let sign = |c: &Value| keys::sign(KeyAlg::Es256, &pair.private_pem, "k1", c).unwrap();

        let token = sign(&claims(2));
        let first = v.verify(&token).await.unwrap();
        assert_eq!(v.cache_hits(), 0);
        assert_eq!(v.verify(&token).await.unwrap(), first);
        assert_eq!(v.cache_hits(), 1);

        // The cached entry does not outlive the token's expiry.
        std::thread::sleep(std::time::Duration::from_millis(3100));
        assert_eq!(
            v.verify(&token).await,
            Err(Rejected("token has expired".into()))
        );
    }

    #[tokio::test]
    async fn only_the_exact_token_that_passed_is_cached() {
        let dir = tempfile::tempdir().unwrap();
        let pair = keys::generate(KeyAlg::Es256, "k1").unwrap();
        let other = keys::generate(KeyAlg::Es256, "k1").unwrap();
        let v = verifier(dir.path(), &pair.jwks).await;

        let good = keys::sign(KeyAlg::Es256, &pair.private_pem, "k1", &claims(600)).unwrap();
        v.verify(&good).await.unwrap();
        // Same header and claims, signed by a key the issuer does not hold:
        // a different token, so it is checked, and refused.
        let forged = keys::sign(KeyAlg::Es256, &other.private_pem, "k1", &claims(600)).unwrap();
        let body = good.rsplit_once('.').unwrap().0;
        let spliced = format!("{body}.{}", forged.rsplit_once('.').unwrap().1);
        for bad in [forged, spliced] {
            assert_eq!(
                v.verify(&bad).await,
                Err(Rejected("token signature is invalid".into()))
            );
        }
        // A refused token is not remembered either.
        assert_eq!(v.verified.lock().unwrap().len(), 1);
    }
}
