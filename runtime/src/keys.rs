//! Demo and test token issuing: key pairs with their JWKS, and signed
//! tokens. A real deployment trusts its CI's or cluster's issuer instead.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
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

/// Generates a key pair with key id `kid`, from the operating system's
/// random source (aws-lc-rs, the cryptography rustls already uses).
pub fn generate(alg: KeyAlg, kid: &str) -> Result<KeyPair, KeyError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    let failed = |what: &str| KeyError::Generate(what.to_owned());
    let (pkcs8, mut jwk) = match alg {
        KeyAlg::Es256 => {
            let key = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            )
            .map_err(|_| failed("P-256 key generation failed"))?;
            let pkcs8 = key
                .to_pkcs8v1()
                .map_err(|_| failed("P-256 key encoding failed"))?;
            // The uncompressed point: 0x04, then x and y (32 bytes each).
            let point = key.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err(failed("unexpected P-256 public key encoding"));
            }
            let jwk = json!({
                "kty": "EC",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            });
            (pkcs8.as_ref().to_vec(), jwk)
        }
        KeyAlg::Rs256 => {
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| failed("RSA key generation failed"))?;
            let pkcs8 = key
                .as_der()
                .map_err(|_| failed("RSA key encoding failed"))?;
            let public = key.public_key();
            let jwk = json!({
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            });
            (pkcs8.as_ref().to_vec(), jwk)
        }
    };
    let private_pem = pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", pkcs8),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
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
