//! Named constructors for the errors the proxy sends, each with its fixed
//! SQLSTATE, so codes are chosen in one place.

use bytes::Bytes;

use super::messages::{Severity, error_response};

/// 28000 invalid_authorization_specification: the token was refused.
pub fn auth_failed(reason: &str) -> Bytes {
    error_response(
        Severity::Fatal,
        "28000",
        &format!("authentication failed: {reason}"),
        Some(
            "connect with a valid workload token (JWT) as the password, or as a configured service account",
        ),
    )
}

/// 28000 at the end of a session whose credential ran out.
pub fn session_expired(why: &str) -> Bytes {
    error_response(
        Severity::Fatal,
        "28000",
        why,
        Some("reconnect with a fresh workload token"),
    )
}

/// 57P01 at the end of a session that ran statements unanalysed while its
/// identity had nothing withheld, once a reload withholds something: what
/// those statements left in the session (settings, temporary objects) is
/// out of the engine's sight.
pub fn policy_narrowed() -> Bytes {
    error_response(
        Severity::Fatal,
        "57P01",
        "the policy now withholds data from this identity, and this session ran statements unanalysed before it did",
        Some("reconnect: a new session is decided under the policy in force"),
    )
}

/// 53300 too_many_connections: the proxy's `max_connections` is reached.
pub fn too_many_connections() -> Bytes {
    error_response(
        Severity::Fatal,
        "53300",
        "sorry, too many clients already: the clsf proxy's max_connections is reached",
        Some("retry later, or raise max_connections in the proxy's config"),
    )
}

/// 53300 too_many_connections for one identity (PostgreSQL's "too many
/// connections for role").
pub fn too_many_sessions_for_identity(subject: &str) -> Bytes {
    error_response(
        Severity::Fatal,
        "53300",
        &format!("too many connections for identity \"{subject}\""),
        Some(
            "close another session of this identity, or raise max_sessions_per_identity in the proxy's config",
        ),
    )
}

/// 54000 program_limit_exceeded: a client message larger than the proxy
/// holds (the session ends: the rest of the message cannot be skipped
/// safely without reading it).
pub fn message_too_large(len: usize, max: usize) -> Bytes {
    error_response(
        Severity::Fatal,
        "54000",
        &format!("a message of {len} bytes is more than the clsf proxy accepts ({max} bytes)"),
        Some("send smaller statements, or COPY large data in several messages"),
    )
}

/// 08P01 protocol_violation.
pub fn protocol_violation(what: &str) -> Bytes {
    error_response(
        Severity::Fatal,
        "08P01",
        &format!("protocol violation: {what}"),
        None,
    )
}

/// 0A000 feature_not_supported, fatal (before the session is ready).
pub fn unsupported_fatal(what: &str) -> Bytes {
    error_response(Severity::Fatal, "0A000", what, None)
}

/// 0A000 feature_not_supported for one request; the session goes on.
pub fn unsupported(what: &str) -> Bytes {
    error_response(Severity::Error, "0A000", what, None)
}

/// 3D000 invalid_catalog_name: the client asked for another database.
pub fn wrong_database(asked: &str) -> Bytes {
    error_response(
        Severity::Fatal,
        "3D000",
        &format!("database `{asked}` is not served by this proxy"),
        None,
    )
}

/// 08006 connection_failure: the upstream database is unreachable.
pub fn upstream_unavailable() -> Bytes {
    error_response(
        Severity::Fatal,
        "08006",
        "the proxy cannot reach the upstream database",
        Some("the proxy's log has the reason"),
    )
}

/// SQLSTATE and message of a statement refused because its audit event
/// could not be written (58030 io_error).
pub const AUDIT_UNAVAILABLE: (&str, &str) = (
    "58030",
    "the audit trail cannot be written, so the statement is refused",
);

/// 58030 io_error: the audit trail cannot be written, so nothing runs.
pub fn audit_unavailable() -> Bytes {
    error_response(
        Severity::Error,
        AUDIT_UNAVAILABLE.0,
        AUDIT_UNAVAILABLE.1,
        None,
    )
}

/// 57P01 admin_shutdown.
pub fn shutting_down() -> Bytes {
    error_response(Severity::Fatal, "57P01", "the proxy is shutting down", None)
}

/// 28000: the proxy requires TLS and the client did not ask for it.
pub fn tls_required() -> Bytes {
    error_response(
        Severity::Fatal,
        "28000",
        "this proxy requires TLS",
        Some("connect with sslmode=require (or verify-full)"),
    )
}

/// 57P05 idle_session_timeout.
pub fn idle_timeout() -> Bytes {
    error_response(
        Severity::Fatal,
        "57P05",
        "terminating connection due to idle timeout of the clsf proxy",
        None,
    )
}
