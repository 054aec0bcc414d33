//! The refusals a session makes itself, beside the engine's (which decide
//! statements): statements it cannot take as text, objects and portals it
//! cannot vouch for, held statements that are not released, and an audit
//! trail that cannot record. One constructor each, with a fixed SQLSTATE;
//! the snapshot test at the end shows each as a client reads it.

use clsf_engine::{Denial, INSUFFICIENT_PRIVILEGE};

use crate::wire::errors;

fn refusal(sqlstate: &'static str, message: String, hint: Option<&str>) -> Denial {
    Denial {
        sqlstate,
        message,
        hint: hint.map(str::to_owned),
        policies: Vec::new(),
    }
}

/// A statement longer than `max_statement_bytes`.
pub(super) fn too_long(len: usize, max: usize) -> Denial {
    refusal(
        "54000",
        format!("statement text is {len} bytes; the proxy analyses at most {max}"),
        Some("split the statement, or raise max_statement_bytes in the proxy's configuration"),
    )
}

/// Statement text that is not UTF-8.
pub(super) fn not_utf8() -> Denial {
    refusal("22021", "query text is not valid UTF-8".to_owned(), None)
}

/// The audit trail could not record the statement, so it does not run.
pub(super) fn audit_unavailable() -> Denial {
    refusal(
        errors::AUDIT_UNAVAILABLE.0,
        errors::AUDIT_UNAVAILABLE.1.to_owned(),
        None,
    )
}

/// A cursor or prepared statement (`what`) used by SQL name that this
/// session did not make through the proxy.
pub(super) fn unknown_object(what: &str, name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "{what} `{name}` was not made by SQL in this session through clsf, so what it runs is unknown and it is refused"
        ),
        None,
    )
}

/// A SQL-level name that is also a protocol-level one in the session.
pub(super) fn ambiguous_object(what: &str, name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "`{name}` is also a protocol-level name in this session, so which {what} it runs is ambiguous and it is refused"
        ),
        None,
    )
}

/// A cursor or prepared statement made under a policy that now decides its
/// statement differently.
pub(super) fn object_changed(what: &str, name: &str) -> Denial {
    refusal(
        INSUFFICIENT_PRIVILEGE,
        format!(
            "the policy changed since {what} `{name}` was made, and it now decides it differently; make it again"
        ),
        None,
    )
}

/// An Execute of a portal no Bind in this session made.
pub(super) fn unknown_portal() -> Denial {
    refusal(
        "0A000",
        "clsf does not know which statement this portal runs, so it is refused".to_owned(),
        Some("bind the portal from a statement prepared in this session"),
    )
}

/// An Execute of a statement prepared under a policy that now decides it
/// differently.
pub(super) fn prepared_changed() -> Denial {
    refusal(
        "0A000",
        "the policy changed since this statement was prepared; prepare it again".to_owned(),
        None,
    )
}

/// A statement that needs approval on a proxy that takes none.
pub(super) fn no_approvals(approvers: &str, policies: Vec<String>) -> Denial {
    Denial {
        policies,
        ..refusal(
            INSUFFICIENT_PRIVILEGE,
            format!(
                "this statement needs approval by {approvers}, and this proxy takes no approvals (no [admin] listener is configured), so it is refused"
            ),
            None,
        )
    }
}

/// A held statement whose approval request an approver denied.
pub(super) fn approval_denied(id: &str, by: &str, comment: &str, policies: Vec<String>) -> Denial {
    Denial {
        policies,
        ..refusal(
            INSUFFICIENT_PRIVILEGE,
            format!("approval request {id} was denied by {by}: {comment}"),
            None,
        )
    }
}

/// A held statement nobody approved in time.
pub(super) fn approval_expired(id: &str, ttl_seconds: u64, policies: Vec<String>) -> Denial {
    Denial {
        policies,
        ..refusal(
            INSUFFICIENT_PRIVILEGE,
            format!("approval request {id} expired: nobody approved it within {ttl_seconds} s"),
            None,
        )
    }
}

/// A held statement whose request was withdrawn (the client went away,
/// cancelled, or the request could not be recorded).
pub(super) fn approval_withdrawn(id: &str, reason: &str, policies: Vec<String>) -> Denial {
    Denial {
        policies,
        ..refusal(
            "57014",
            format!("canceling statement: approval request {id} was withdrawn ({reason})"),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal() {
        let p = || vec!["agent_reads.3".to_owned()];
        let all = [
            ("too_long", too_long(70_000, 65_536)),
            ("not_utf8", not_utf8()),
            ("audit_unavailable", audit_unavailable()),
            ("unknown_object", unknown_object("cursor", "c1")),
            (
                "ambiguous_object",
                ambiguous_object("prepared statement", "s1"),
            ),
            ("object_changed", object_changed("cursor", "c1")),
            ("unknown_portal", unknown_portal()),
            ("prepared_changed", prepared_changed()),
            ("no_approvals", no_approvals("1 of group `oncall`", p())),
            (
                "approval_denied",
                approval_denied("r-1", "alice", "not today", p()),
            ),
            ("approval_expired", approval_expired("r-1", 300, p())),
            (
                "approval_withdrawn",
                approval_withdrawn("r-1", "the client cancelled", p()),
            ),
        ];
        let text: Vec<String> = all
            .iter()
            .map(|(name, d)| {
                format!(
                    "{name}: ERROR {} {}{}{}",
                    d.sqlstate,
                    d.message,
                    d.hint
                        .as_ref()
                        .map_or(String::new(), |h| format!("\n  HINT: {h}")),
                    if d.policies.is_empty() {
                        String::new()
                    } else {
                        format!("\n  policies: {}", d.policies.join(", "))
                    }
                )
            })
            .collect();
        insta::assert_snapshot!(text.join("\n"));
    }
}
