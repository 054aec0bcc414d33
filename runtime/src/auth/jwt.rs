//! JWT verification against an issuer's JWKS: signature (RS256 or ES256),
//! issuer, audience, expiry and not-before; then the issuer's claim
//! mapping. Several issuers can be trusted at once; a token is routed to
//! the one its (not yet verified) `iss` names, and only that issuer's keys
//! and audience can verify it.

use std::collections::BTreeMap;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

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
}

/// Why a token was refused. The message names the check, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Verifier {
    /// A verifier for `issuer` and `audience` with `keys`; `claim_map`
    /// adds claims taken from others (e.g. `repository` ← `project_path`).
    pub fn new(
        issuer: &str,
        audience: &str,
        keys: Keys,
        leeway: u64,
        claim_map: BTreeMap<String, String>,
    ) -> Result<Verifier, String> {
        if let Some(bad) = claim_map
            .keys()
            .find(|k| PROTECTED_CLAIMS.contains(&k.as_str()))
        {
            return Err(format!(
                "issuer {issuer}: the claim mapping may not set `{bad}`"
            ));
        }
        Ok(Verifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys,
            leeway,
            claim_map,
        })
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
