//! Demo and test token issuing: key pairs with their JWKS, and signed
//! tokens. A real deployment trusts its CI's or cluster's issuer instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

/// A signing algorithm for generated keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlg {
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256 (2048-bit keys).
    Rs256,
}

impl KeyAlg {
    fn jwt(self) -> Algorithm {
        match self {
            KeyAlg::Es256 => Algorithm::ES256,
            KeyAlg::Rs256 => Algorithm::RS256,
        }
    }

    fn name(self) -> &'static str {
        match self {
            KeyAlg::Es256 => "ES256",
            KeyAlg::Rs256 => "RS256",
        }
    }
}

/// A generated key pair: private key as PKCS#8 PEM, public key as a JWKS.
#[derive(Debug)]
pub struct KeyPair {
    /// PKCS#8 PEM.
    pub private_pem: String,
    /// A JWKS document with the one public key.
    pub jwks: Value,
}

/// Why a key could not be made, loaded or used. Never carries key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Generating or encoding a new key failed.
    #[error("cannot generate the key: {0}")]
    Generate(String),
    /// The private key is not a PKCS#8 PEM key of the algorithm.
    #[error("cannot load the private key: {0}")]
    Load(jsonwebtoken::errors::Error),
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// Generates a key pair with key id `kid`.
pub fn generate(alg: KeyAlg, kid: &str) -> Result<KeyPair, KeyError> {
    let failed = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
    let mut rng = rand_core::OsRng;
    let (private_pem, mut jwk) = match alg {
        KeyAlg::Es256 => {
            let secret = p256::SecretKey::random(&mut rng);
            let pem = secret
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| failed(&e))?;
            let jwk: Value = serde_json::from_str(&secret.public_key().to_jwk_string())
                .map_err(|e| failed(&e))?;
            (pem.to_string(), jwk)
        }
        KeyAlg::Rs256 => {
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| failed(&e))?;
            let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, rsa::pkcs8::LineEnding::LF)
                .map_err(|e| failed(&e))?;
            let jwk = json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            });
            (pem.to_string(), jwk)
        }
    };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.name());
    jwk["use"] = json!("sig");
    Ok(KeyPair {
        private_pem,
        jwks: json!({ "keys": [jwk] }),
    })
}

/// Signs `claims` with a PKCS#8 PEM private key.
pub fn sign(alg: KeyAlg, private_pem: &str, kid: &str, claims: &Value) -> Result<String, KeyError> {
    let key = match alg {
        KeyAlg::Es256 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
        KeyAlg::Rs256 => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
    }
    .map_err(KeyError::Load)?;
    let mut header = Header::new(alg.jwt());
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &key).map_err(KeyError::Sign)
}

/// Parses `ES256`/`RS256` (any case).
pub fn parse_alg(s: &str) -> Option<KeyAlg> {
    match s.to_ascii_uppercase().as_str() {
        "ES256" => Some(KeyAlg::Es256),
        "RS256" => Some(KeyAlg::Rs256),
        _ => None,
    }
}
