//! Statement kinds and database-wide actions (`ddl`, `admin`): the
//! kind's name for messages and whether the identity's rules permit it.

use super::*;

pub(super) fn first_keyword(stmt: &sql::Statement) -> String {
    statement_kind(stmt)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// Schema changes: permitted by the `ddl` action.
pub(super) fn is_ddl(stmt: &sql::Statement) -> bool {
    matches!(
        first_keyword(stmt).as_str(),
        "CREATE" | "ALTER" | "DROP" | "COMMENT"
    ) && !matches!(
        stmt,
        sql::Statement::CreateFunction { .. } | sql::Statement::CreateRole { .. }
    )
}

/// Administrative statements: permitted by the `admin` action.
pub(super) fn is_admin(stmt: &sql::Statement) -> bool {
    matches!(
        first_keyword(stmt).as_str(),
        "GRANT" | "REVOKE" | "VACUUM" | "ANALYZE" | "CLUSTER" | "REINDEX"
    ) || matches!(stmt, sql::Statement::CreateRole { .. })
}

/// The rule that decided a database-wide action, for messages.
pub(super) fn rules_text(plan: &Plan, ids: &[String]) -> String {
    ids.iter()
        .map(|id| match plan.clause_by_policy(id) {
            Some((rule, clause)) => format!(
                "rule `{}` (`{}` at {})",
                rule.name, clause.text, clause.location
            ),
            None => format!("policy `{id}`"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn perm_denial(plan: &Plan, perm: &Perm, action: &str, what: &str) -> Option<Denial> {
    match perm {
        Perm::Allowed => None,
        Perm::Approval {
            approvers,
            policies,
        } => Some(denials::action_needs_approval(
            what,
            action,
            approvers,
            policies.clone(),
        )),
        Perm::Denied(ids) if !ids.is_empty() => Some(denials::action_denied(
            what,
            &rules_text(plan, ids),
            ids.clone(),
        )),
        Perm::Denied(_) => Some(denials::action_not_allowed(what, action)),
    }
}

pub(super) fn action_permitted(
    plan: &Plan,
    perm: &Perm,
    action: &str,
    stmt: &sql::Statement,
) -> Result<Outcome, Denial> {
    match perm_denial(
        plan,
        perm,
        action,
        &format!("statement `{}`", statement_kind(stmt)),
    ) {
        None => Ok(Outcome::pass()),
        Some(d) => Err(d),
    }
}

/// The leading keywords of a statement, for messages (never its values).
pub(super) fn statement_kind(stmt: &sql::Statement) -> String {
    let printed = stmt.to_string();
    printed
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic() || c == '_'))
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
