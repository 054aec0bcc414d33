//! JWT verification against a JWKS: signature (RS256 or ES256), issuer,
//! audience, expiry and not-before. The verified claims are what group
//! membership is decided from.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

/// Algorithms accepted. `none` and HMAC are never accepted: a shared secret
/// would let anyone holding the JWKS mint tokens.
const ALLOWED: &[Algorithm] = &[Algorithm::RS256, Algorithm::ES256];

/// Verifies tokens of one issuer.
#[derive(Debug)]
pub struct Verifier {
    issuer: String,
    audience: String,
    keys: JwkSet,
    leeway: u64,
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
    /// A verifier for `issuer` and `audience` with the keys in `jwks_json`.
    pub fn new(
        issuer: &str,
        audience: &str,
        jwks_json: &str,
        leeway: u64,
    ) -> Result<Verifier, String> {
        let keys: JwkSet =
            serde_json::from_str(jwks_json).map_err(|e| format!("invalid JWKS: {e}"))?;
        if keys.keys.is_empty() {
            return Err("the JWKS holds no keys".to_owned());
        }
        Ok(Verifier {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            keys,
            leeway,
        })
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Value, Rejected> {
        let header = decode_header(token)
            .map_err(|_| Rejected("the password is not a well-formed JWT".into()))?;
        if !ALLOWED.contains(&header.alg) {
            return Err(Rejected(format!(
                "token algorithm {:?} is not accepted (RS256 or ES256)",
                header.alg
            )));
        }
        let jwk = match &header.kid {
            Some(kid) => self
                .keys
                .find(kid)
                .ok_or_else(|| Rejected(format!("no trusted key with id `{kid}`")))?,
            None if self.keys.keys.len() == 1 => &self.keys.keys[0],
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
