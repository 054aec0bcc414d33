//! Client authentication. Workload identities present a JWT as their
//! password (`jwt`, with keys from `jwks`); static service accounts use
//! SCRAM-SHA-256 against verifiers in the config (`scram`); a verified
//! client certificate can be the identity on its own (`cert`).

pub mod cert;
pub mod jwks;
pub mod jwt;
pub mod limits;
pub mod scram;

use serde_json::Value;

/// What a client proved when it connected.
#[derive(Debug, Clone)]
pub enum Proven {
    /// A verified token's claims (after the issuer's claim mapping).
    Token(Value),
    /// A client certificate verified against the configured client CA.
    Certificate {
        /// Subject distinguished name (RFC 4514 form).
        subject: String,
        /// DNS names, e-mail addresses, URIs and IP addresses it names.
        sans: Vec<String>,
    },
    /// A static service account that passed SCRAM-SHA-256.
    Account(String),
}

impl Proven {
    /// The matcher input for group membership.
    pub fn credentials(&self) -> clsf_engine::Credentials<'_> {
        use clsf_engine::Credentials;
        match self {
            Proven::Token(claims) => Credentials::token(claims),
            Proven::Certificate { subject, sans } => Credentials {
                cert_subject: Some(subject),
                cert_sans: sans,
                ..Credentials::default()
            },
            Proven::Account(name) => Credentials {
                account: Some(name),
                ..Credentials::default()
            },
        }
    }

    /// A stable name for the audit trail: the token's `sub`, the
    /// certificate's subject, or `account:NAME`.
    pub fn subject(&self) -> String {
        match self {
            Proven::Token(claims) => claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            Proven::Certificate { subject, .. } => subject.clone(),
            Proven::Account(name) => format!("account:{name}"),
        }
    }

    /// The claims row filters bind (`{claim.x}` in a filter); only tokens
    /// carry claims, so a filter naming a claim refuses other identities.
    pub fn claims(&self) -> Option<&Value> {
        match self {
            Proven::Token(c) => Some(c),
            _ => None,
        }
    }

    /// What an approver is shown of the requester: the token's claims
    /// without its timestamps and id, or the certificate or account name.
    pub fn shown_claims(&self) -> Value {
        match self {
            Proven::Token(claims) => {
                let mut shown = claims.clone();
                if let Some(map) = shown.as_object_mut() {
                    for k in ["exp", "iat", "nbf", "jti"] {
                        map.remove(k);
                    }
                }
                shown
            }
            Proven::Certificate { subject, sans } => {
                serde_json::json!({ "certificate_subject": subject, "certificate_sans": sans })
            }
            Proven::Account(name) => serde_json::json!({ "account": name }),
        }
    }

    /// The group membership and subject under `plan`.
    pub fn identity(&self, plan: &clsf_engine::Plan) -> clsf_engine::Identity {
        clsf_engine::Identity {
            subject: self.subject(),
            groups: clsf_engine::groups_for_credentials(plan, &self.credentials()),
        }
    }
}
