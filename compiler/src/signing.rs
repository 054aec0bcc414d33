//! Signed policy bundles: ed25519 keys (`clsfc keygen`), the signature of a
//! bundle's manifest (`clsfc build --sign`, written as `manifest.sig`), and
//! the check the proxy makes before it runs a bundle (`[policy]
//! trusted_keys`). The manifest lists every file's SHA-256 and the bundle
//! version, so a signature over its exact bytes covers every file and the
//! version.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How a secret key file starts.
const SECRET_PREFIX: &str = "clsf-ed25519-secret:";
/// How a public key is written.
const PUBLIC_PREFIX: &str = "ed25519:";
/// The signature file beside `manifest.json`.
pub const SIGNATURE_FILE: &str = "manifest.sig";

/// Why a key or a signature was refused. Messages never contain a secret key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    /// A public key that is not `ed25519:` and 32 bytes of base64.
    #[error(
        "`{0}` is not an ed25519 public key (expected `ed25519:` followed by 32 bytes in base64, as `clsfc keygen` writes)"
    )]
    BadPublicKey(String),
    /// A secret key file that is not one.
    #[error("not a clsf secret key (expected a file written by `clsfc keygen`)")]
    BadSecretKey,
    /// No system randomness.
    #[error("no randomness for a key: {0}")]
    Random(String),
    /// The bundle has no signature and signatures are required.
    #[error(
        "the bundle is unsigned ({SIGNATURE_FILE} is missing) and [policy] trusted_keys requires a signature"
    )]
    Unsigned,
    /// The signature file does not parse.
    #[error("{SIGNATURE_FILE} is not a signature file: {0}")]
    BadSignatureFile(String),
    /// Signed by a key that is not trusted.
    #[error("the bundle is signed by key {0}, which is not among [policy] trusted_keys")]
    UntrustedKey(String),
    /// The signature does not match the manifest.
    #[error(
        "the signature of key {0} does not verify: manifest.json was changed after it was signed"
    )]
    BadSignature(String),
}

/// A public key, as `ed25519:BASE64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses `ed25519:BASE64`.
    pub fn parse(text: &str) -> Result<PublicKey, SigningError> {
        let bad = || {
            let t = text.trim();
            SigningError::BadPublicKey(if t.starts_with(SECRET_PREFIX) {
                "a secret key (keep it out of the configuration; give the .pub file's line)"
                    .to_owned()
            } else {
                format!("a text of {} characters", t.chars().count())
            })
        };
        let b64 = text.trim().strip_prefix(PUBLIC_PREFIX).ok_or_else(bad)?;
        let bytes: [u8; 32] = STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| bad())
    }

    /// A short id: the first 16 hex digits of the key's SHA-256.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }
}

impl std::fmt::Display for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }
}

/// A secret key, read from a `clsfc keygen` file.
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.public().id())
    }
}

impl SecretKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SecretKey, SigningError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| SigningError::Random(e.to_string()))?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// Parses the text of a key file.
    pub fn parse(text: &str) -> Result<SecretKey, SigningError> {
        let b64 = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SigningError::BadSecretKey)?;
        let bytes: [u8; 32] = STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(SigningError::BadSecretKey)?;
        Ok(SecretKey(SigningKey::from_bytes(&bytes)))
    }

    /// The text of its key file.
    pub fn to_file_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", STANDARD.encode(self.0.to_bytes()))
    }

    /// Its public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature file for `manifest` (the exact bytes of manifest.json).
    pub fn sign(&self, manifest: &[u8]) -> String {
        let file = SignatureFile {
            algorithm: "ed25519".to_owned(),
            key: self.public().to_string(),
            signature: STANDARD.encode(self.0.sign(manifest).to_bytes()),
        };
        let mut text = serde_json::to_string_pretty(&file).expect("plain strings serialise");
        text.push('\n');
        text
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    algorithm: String,
    key: String,
    signature: String,
}

/// Checks the signature file `signature` (None: absent) over `manifest`
/// against `trusted`; returns the key that signed it.
pub fn verify(
    manifest: &[u8],
    signature: Option<&str>,
    trusted: &[PublicKey],
) -> Result<PublicKey, SigningError> {
    let text = signature.ok_or(SigningError::Unsigned)?;
    let file: SignatureFile =
        serde_json::from_str(text).map_err(|e| SigningError::BadSignatureFile(e.to_string()))?;
    if file.algorithm != "ed25519" {
        return Err(SigningError::BadSignatureFile(format!(
            "algorithm `{}` is not ed25519",
            file.algorithm.chars().take(40).collect::<String>()
        )));
    }
    let key = PublicKey::parse(&file.key)?;
    if !trusted.contains(&key) {
        return Err(SigningError::UntrustedKey(key.id()));
    }
    let bytes: [u8; 64] = STANDARD
        .decode(file.signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            SigningError::BadSignatureFile("the signature is not 64 bytes of base64".into())
        })?;
    key.0
        .verify_strict(manifest, &Signature::from_bytes(&bytes))
        .map_err(|_| SigningError::BadSignature(key.id()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_key_and_its_bytes() {
        let key = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let manifest = b"{\"bundle_version\": 3}\n";
        let sig = key.sign(manifest);
        assert_eq!(
            verify(manifest, Some(&sig), &[key.public()]),
            Ok(key.public())
        );
        // Another key among the trusted ones does not help a changed byte.
        let changed = b"{\"bundle_version\": 4}\n";
        assert_eq!(
            verify(changed, Some(&sig), &[other.public(), key.public()]),
            Err(SigningError::BadSignature(key.public().id()))
        );
        assert_eq!(
            verify(manifest, Some(&sig), &[other.public()]),
            Err(SigningError::UntrustedKey(key.public().id()))
        );
        assert_eq!(
            verify(manifest, None, &[key.public()]),
            Err(SigningError::Unsigned)
        );
        // A signature file that claims the trusted key but was made by another.
        let forged = other
            .sign(manifest)
            .replace(&other.public().to_string(), &key.public().to_string());
        assert_eq!(
            verify(manifest, Some(&forged), &[key.public()]),
            Err(SigningError::BadSignature(key.public().id()))
        );
        assert!(matches!(
            verify(manifest, Some("not json"), &[key.public()]),
            Err(SigningError::BadSignatureFile(_))
        ));
    }

    #[test]
    fn keys_round_trip_and_a_secret_never_shows() {
        let key = SecretKey::generate().unwrap();
        let text = key.to_file_text();
        let again = SecretKey::parse(&text).unwrap();
        assert_eq!(again.public(), key.public());
        assert_eq!(
            PublicKey::parse(&key.public().to_string()),
            Ok(key.public())
        );
        let secret_b64 = text.trim().strip_prefix(SECRET_PREFIX).unwrap();
        assert!(!format!("{key:?}").contains(secret_b64));
        assert_eq!(
            SecretKey::parse(&key.public().to_string()).unwrap_err(),
            SigningError::BadSecretKey
        );
        // The error for a public key given as a secret names no secret.
        let e = PublicKey::parse(&text).unwrap_err().to_string();
        assert!(!e.contains(secret_b64), "{e}");
        assert!(PublicKey::parse("ed25519:AAAA").is_err());
    }
}
