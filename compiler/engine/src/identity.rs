//! From verified credentials to group membership. Credentials arrive already
//! verified by the runtime (token signature, issuer, audience and expiry; a
//! client certificate's chain; a service account's password); this is pure
//! matching against the groups the policy defines.

use serde_json::Value;

use crate::plan::{ClaimMatch, GroupCondition, GroupExpr, Membership, Plan};

/// A connected workload identity.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The token's `sub`, or another stable name for the identity.
    pub subject: String,
    /// Groups it belongs to, sorted.
    pub groups: Vec<String>,
}

/// What an identity proved when it connected.
#[derive(Clone, Copy, Debug, Default)]
pub struct Credentials<'a> {
    /// Verified token claims.
    pub claims: Option<&'a Value>,
    /// Verified client certificate: subject DN (RFC 4514).
    pub cert_subject: Option<&'a str>,
    /// Verified client certificate: subject alternative names.
    pub cert_sans: &'a [String],
    /// Authenticated static service account.
    pub account: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    /// Credentials that consist of a verified token.
    pub fn token(claims: &'a Value) -> Credentials<'a> {
        Credentials {
            claims: Some(claims),
            ..Credentials::default()
        }
    }
}

/// The groups of `plan` that verified `claims` are a member of.
pub fn groups_for(plan: &Plan, claims: &Value) -> Vec<String> {
    groups_for_credentials(plan, &Credentials::token(claims))
}

/// The groups of `plan` the credentials are a member of, sorted. A group
/// with no conditions matches nobody: membership must be stated, never
/// implied.
pub fn groups_for_credentials(plan: &Plan, creds: &Credentials<'_>) -> Vec<String> {
    let mut memo: Vec<Option<bool>> = vec![None; plan.groups.len()];
    let mut groups: Vec<String> = (0..plan.groups.len())
        .filter(|&i| member(plan, i, creds, &mut memo, 0))
        .map(|i| plan.groups[i].name.clone())
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

/// Composition depth beyond which membership is refused. The compiler
/// rejects cycles; this bound keeps a hand-edited plan from recursing forever.
const MAX_DEPTH: usize = 64;

fn member(
    plan: &Plan,
    i: usize,
    creds: &Credentials<'_>,
    memo: &mut Vec<Option<bool>>,
    depth: usize,
) -> bool {
    if let Some(known) = memo[i] {
        return known;
    }
    if depth > MAX_DEPTH {
        return false;
    }
    let result = match &plan.groups[i].membership {
        Membership::Conditions(conds) => !conds.is_empty() && conds.iter().all(|c| holds(c, creds)),
        Membership::Expr(e) => eval(plan, e, creds, memo, depth + 1),
    };
    memo[i] = Some(result);
    result
}

fn eval(
    plan: &Plan,
    e: &GroupExpr,
    creds: &Credentials<'_>,
    memo: &mut Vec<Option<bool>>,
    depth: usize,
) -> bool {
    match e {
        GroupExpr::Group(i) => member(plan, *i, creds, memo, depth),
        GroupExpr::Not(inner) => !eval(plan, inner, creds, memo, depth),
        GroupExpr::And(terms) => terms.iter().all(|t| eval(plan, t, creds, memo, depth)),
        GroupExpr::Or(terms) => terms.iter().any(|t| eval(plan, t, creds, memo, depth)),
    }
}

fn claim<'v>(claims: Option<&'v Value>, path: &[String]) -> Option<&'v Value> {
    let mut v = claims?;
    for segment in path {
        v = v.get(segment)?;
    }
    Some(v)
}

fn holds(condition: &GroupCondition, creds: &Credentials<'_>) -> bool {
    let string_claim = |name: &str| {
        creds
            .claims
            .and_then(|c| c.get(name))
            .and_then(Value::as_str)
    };
    match condition {
        GroupCondition::Issuer(m) => string_claim("iss").is_some_and(|v| m.matches(v)),
        GroupCondition::Subject(m) => string_claim("sub").is_some_and(|v| m.matches(v)),
        GroupCondition::Audience(aud) => contains(creds.claims.and_then(|c| c.get("aud")), aud),
        GroupCondition::Claim { path, test } => {
            let value = claim(creds.claims, path);
            match test {
                ClaimMatch::Str(m) => value.and_then(Value::as_str).is_some_and(|v| m.matches(v)),
                ClaimMatch::Contains(v) => contains(value, v),
            }
        }
        GroupCondition::CertSubject(m) => creds.cert_subject.is_some_and(|s| m.matches(s)),
        GroupCondition::CertSan(m) => creds.cert_sans.iter().any(|s| m.matches(s)),
        GroupCondition::Account(name) => creds.account == Some(name.as_str()),
    }
}

fn contains(claim: Option<&Value>, value: &str) -> bool {
    match claim {
        Some(Value::String(s)) => s == value,
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(value)),
        _ => false,
    }
}
