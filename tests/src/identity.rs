//! A test token issuer with a real key pair, minting real signed JWTs.

use std::path::Path;

use clsf_runtime::keys::{self, KeyAlg};
use serde_json::{Value, json};

/// The issuer the quickstart policy trusts.
pub const ISSUER: &str = "https://issuer.clsf.example";
/// The audience the quickstart proxy expects.
pub const AUDIENCE: &str = "clsf-proxy";

/// A key pair and its JWKS.
#[derive(Debug)]
pub struct Issuer {
    alg: KeyAlg,
    kid: String,
    private_pem: String,
    /// The JWKS document.
    pub jwks: Value,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

impl Issuer {
    /// A fresh ES256 issuer.
    pub fn new(kid: &str) -> Issuer {
        Issuer::with_alg(KeyAlg::Es256, kid)
    }

    /// A fresh issuer with the given algorithm.
    pub fn with_alg(alg: KeyAlg, kid: &str) -> Issuer {
        let pair = keys::generate(alg, kid).expect("key generation");
        Issuer {
            alg,
            kid: kid.to_owned(),
            private_pem: pair.private_pem,
            jwks: pair.jwks,
        }
    }

    /// Writes the JWKS to `path`.
    pub fn write_jwks(&self, path: &Path) {
        std::fs::write(path, self.jwks.to_string()).expect("write jwks");
    }

    /// Signs arbitrary claims.
    pub fn sign(&self, claims: &Value) -> String {
        keys::sign(self.alg, &self.private_pem, &self.kid, claims).expect("signing")
    }

    /// Standard claims for `sub`, valid for an hour, plus `extra`.
    pub fn claims(&self, sub: &str, extra: Value) -> Value {
        let mut c = json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 3600 });
        if let Value::Object(map) = extra {
            for (k, v) in map {
                c[k] = v;
            }
        }
        c
    }

    /// A token of the quickstart `ci` group.
    pub fn ci_token(&self) -> String {
        self.sign(&self.claims(
            "repo:acme/shop:ref:refs/heads/main",
            json!({ "repository": "acme/shop" }),
        ))
    }

    /// A token of the quickstart `dba-bot` group.
    pub fn dba_token(&self) -> String {
        self.sign(&self.claims("dba-bot", json!({ "groups": ["ops", "dba"] })))
    }
}
