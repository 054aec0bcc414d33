//! From verified token claims to group membership. Claims arrive already
//! verified (signature, issuer, audience, expiry) by the runtime; this is
//! pure matching against the groups the policy defines.

use serde_json::Value;

use crate::plan::{GroupCondition, Plan};

/// A connected workload identity.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The token's `sub`, or another stable name for the identity.
    pub subject: String,
    /// Groups it belongs to, sorted.
    pub groups: Vec<String>,
}

/// The groups of `plan` whose conditions all hold for `claims`. A group with
/// no conditions matches nobody: membership must be stated, never implied.
pub fn groups_for(plan: &Plan, claims: &Value) -> Vec<String> {
    let mut groups: Vec<String> = plan
        .groups
        .iter()
        .filter(|g| !g.conditions.is_empty() && g.conditions.iter().all(|c| holds(c, claims)))
        .map(|g| g.name.clone())
        .collect();
    groups.sort();
    groups
}

/// The identity for verified `claims`.
pub fn identity_for(plan: &Plan, claims: &Value) -> Identity {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Identity {
        subject,
        groups: groups_for(plan, claims),
    }
}

fn holds(condition: &GroupCondition, claims: &Value) -> bool {
    match condition {
        GroupCondition::Issuer(iss) => {
            claims.get("iss").and_then(Value::as_str) == Some(iss.as_str())
        }
        GroupCondition::Audience(aud) => contains(claims.get("aud"), aud),
        GroupCondition::ClaimEquals(name, value) => {
            claims.get(name).and_then(Value::as_str) == Some(value.as_str())
        }
        GroupCondition::ClaimContains(name, value) => contains(claims.get(name), value),
    }
}

fn contains(claim: Option<&Value>, value: &str) -> bool {
    match claim {
        Some(Value::String(s)) => s == value,
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(value)),
        _ => false,
    }
}
