//! Session statements: cursors (`DECLARE`), prepared statements
//! (`PREPARE`), and settings (`SET`, `current_setting`, `set_config`), whose
//! names the proxy guards.

use super::*;

/// The cursor or prepared statement a session statement names.
pub(super) fn session_object(stmt: &sql::Statement) -> Option<SessionObject> {
    match stmt {
        sql::Statement::Declare { stmts, .. } => stmts
            .first()
            .and_then(|d| d.names.first())
            .map(|n| SessionObject::DeclareCursor(analyze::fold(n))),
        sql::Statement::Fetch { name, .. } => Some(SessionObject::UseCursor(analyze::fold(name))),
        sql::Statement::Close { cursor } => Some(match cursor {
            sql::CloseCursor::All => SessionObject::CloseAllCursors,
            sql::CloseCursor::Specific { name } => SessionObject::CloseCursor(analyze::fold(name)),
        }),
        sql::Statement::Prepare { name, .. } => Some(SessionObject::Prepare(analyze::fold(name))),
        sql::Statement::Execute {
            name: Some(name), ..
        } => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|n| SessionObject::Execute(analyze::fold(n))),
        sql::Statement::Deallocate { name, .. } => Some(
            if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                SessionObject::DeallocateAll
            } else {
                SessionObject::Deallocate(analyze::fold(name))
            },
        ),
        sql::Statement::Discard {
            object_type: sql::DiscardObject::ALL,
        } => Some(SessionObject::DiscardAll),
        sql::Statement::Explain { statement, .. } => session_object(statement),
        _ => None,
    }
}

/// `DECLARE … CURSOR FOR query`: decided and rewritten like the query. A
/// cursor's rows leave in several `FETCH`es, so a row limit (enforced per
/// statement) cannot hold and such a cursor is refused.
pub(super) fn declare(cx: Cx<'_>, stmts: &[sql::Declare], text: &str) -> Result<Outcome, Denial> {
    let [d] = stmts else {
        return Err(denials::internal("DECLARE of several names"));
    };
    let (Some(name), Some(query)) = (d.names.first(), &d.for_query) else {
        return Err(denials::cursor_form());
    };
    let inner = sql::Statement::Query(query.clone());
    let out = decide_statement(cx, &inner, text)?;
    if let Some((rows, rule)) = &out.row_limit {
        return Err(denials::limited_cursor(*rows, rule));
    }
    Ok(out.with_object(SessionObject::DeclareCursor(analyze::fold(name))))
}

/// `PREPARE name AS statement`: decided and rewritten like the statement.
/// Its `EXECUTE`s run what was decided here, any number of times, so a
/// statement that needs an approval (granted per execution) or is under a
/// row limit (enforced per statement) cannot be prepared this way.
pub(super) fn prepare(
    cx: Cx<'_>,
    name: &sql::Ident,
    statement: &sql::Statement,
    text: &str,
) -> Result<Outcome, Denial> {
    if !matches!(
        statement,
        sql::Statement::Query(_)
            | sql::Statement::Insert(_)
            | sql::Statement::Update(_)
            | sql::Statement::Delete(_)
            | sql::Statement::Merge(_)
    ) {
        return Err(not_analysed(
            statement,
            "only queries, INSERT, UPDATE, DELETE and MERGE can be prepared",
        ));
    }
    let out = match decide_statement(cx, statement, text) {
        Ok(out) => out,
        Err(mut d) if !d.policies.is_empty() && d.message.contains("needs approval") => {
            // Not holdable: an approval releases executions, and EXECUTE
            // would repeat this one without asking.
            d.message = format!(
                "{}; a statement that needs approval cannot be prepared with PREPARE (send it directly, or through the extended protocol)",
                d.message
            );
            d.policies.clear();
            return Err(d);
        }
        Err(d) => return Err(d),
    };
    if let Some((rows, rule)) = &out.row_limit {
        return Err(denials::limited_prepare(*rows, rule));
    }
    Ok(out.with_object(SessionObject::Prepare(analyze::fold(name))))
}

pub(super) fn session_setting(set: &sql::Set, text: &str) -> Result<Outcome, Denial> {
    match set {
        sql::Set::SetRole { .. } => Err(denials::protected_setting("role")),
        sql::Set::SetSessionAuthorization(_) => {
            Err(denials::protected_setting("session_authorization"))
        }
        sql::Set::SingleAssignment {
            variable, values, ..
        } => {
            // The whole dotted name: `clsf.hash_ipad` is not `hash_ipad`.
            let name = setting_name(variable);
            if sql_lists::is_proxy_setting(&name) {
                return Err(denials::proxy_setting(&name));
            }
            if sql_lists::PROTECTED_SETTINGS.contains(&name.as_str()) && !is_default(values) {
                // Narrowing `search_path`, or setting what the proxy pins
                // (`standard_conforming_strings = on`), changes nothing the
                // engine relies on.
                let mut written = Vec::new();
                for value in values {
                    written.push(match value {
                        sql::Expr::Value(v) => match &v.value {
                            sql::Value::SingleQuotedString(s) => s.clone(),
                            sql::Value::Boolean(b) => b.to_string(),
                            sql::Value::Number(n, _) => n.to_string(),
                            _ => return Err(denials::protected_setting(&name)),
                        },
                        // Quoted as written: `"Public"` is not `public`.
                        sql::Expr::Identifier(id) if id.quote_style.is_some() => {
                            format!("\"{}\"", id.value)
                        }
                        sql::Expr::Identifier(id) => analyze::fold(id),
                        _ => return Err(denials::protected_setting(&name)),
                    });
                }
                if !sql_lists::keeps_pinned(&name, &written.join(",")) {
                    return match without_user_schema(&name, values, &written, text) {
                        Some(edit) => Ok(Outcome {
                            edits: vec![edit],
                            ..Outcome::pass()
                        }),
                        None => Err(denials::protected_setting(&name)),
                    };
                }
            }
            Ok(Outcome::pass())
        }
        sql::Set::ParenthesizedAssignments { .. } | sql::Set::MultipleAssignments { .. } => {
            Err(denials::protected_setting("several settings at once"))
        }
        sql::Set::SetNames {
            charset_name,
            collation_name: None,
        } if sql_lists::keeps_pinned("client_encoding", &charset_name.value) => Ok(Outcome::pass()),
        // `SET NAMES DEFAULT` is `RESET client_encoding`.
        sql::Set::SetNamesDefault {} => Ok(Outcome::pass()),
        sql::Set::SetNames { .. } => Err(denials::protected_setting("client_encoding")),
        _ => Ok(Outcome::pass()),
    }
}

/// What becomes of a setting a client gives at startup (a startup
/// parameter, or `-c name=value` in `options`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupSetting {
    /// Passed to the upstream login as given (in place of the proxy's
    /// value, for a setting the proxy pins).
    Forward,
    /// Passed with this value instead: a `search_path` without `$user`.
    Replace(String),
}

/// Decides setting `name` (as the server reads it: case aside, `-` for
/// `_` in `options` already undone) to `value` given at startup, as `SET
/// name TO value` would be decided for `access`: the proxy's own settings
/// never; libraries to load (which only take effect at startup) as `LOAD`
/// is, by the `admin` right; a pinned setting only to what keeps the
/// pinned value (that value, or for `search_path` a narrower path or the
/// path without `$user`), for every identity; anything else as given,
/// for the server to check.
pub fn startup_setting(
    access: &PrincipalAccess,
    name: &str,
    value: &str,
) -> Result<StartupSetting, Denial> {
    let name = name.to_ascii_lowercase();
    if sql_lists::is_proxy_setting(&name) {
        return Err(denials::proxy_setting(&name));
    }
    if matches!(
        name.as_str(),
        "local_preload_libraries" | "session_preload_libraries"
    ) && !matches!(access.admin, crate::column_access::Perm::Allowed)
    {
        return Err(denials::startup_library(&name));
    }
    // Pinned settings keep what they pin for every identity, those with
    // nothing withheld included: startup values are what `RESET` returns
    // to, which the engine relies on for a session whose identity a
    // reload leaves with something withheld.
    if !sql_lists::PROTECTED_SETTINGS.contains(&name.as_str())
        || sql_lists::keeps_pinned(&name, value)
    {
        return Ok(StartupSetting::Forward);
    }
    match sql_lists::search_path_without_user(value) {
        Some(rest) if name == "search_path" => Ok(StartupSetting::Replace(rest.join(", "))),
        _ => Err(denials::protected_setting(&name)),
    }
}

/// `SET search_path TO "$user", public` forwarded without `"$user"` (see
/// `sql_lists::search_path_without_user`): the edit that drops it, when
/// the path is identifiers (`written`, one per value) and keeps the pinned
/// path without it. A string constant is one schema's name in `SET`, not
/// a list, so it is never read as one here.
fn without_user_schema(
    name: &str,
    values: &[sql::Expr],
    written: &[String],
    text: &str,
) -> Option<Edit> {
    use sqlparser::ast::Spanned;
    if name != "search_path" || !values.iter().all(|v| matches!(v, sql::Expr::Identifier(_))) {
        return None;
    }
    let path = written.join(",");
    let rest = sql_lists::search_path_without_user(&path)?;
    let index = analyze::LineIndex::new(text);
    let start = index.offset(values.first()?.span().start)?;
    let end = index.offset(values.last()?.span().end)?;
    Some(Edit {
        start,
        end,
        // An empty path is written as the empty string: no identifier
        // can be empty.
        text: if rest.is_empty() {
            sql_string("")
        } else {
            rest.join(", ")
        },
    })
}

/// `SET name TO DEFAULT`, which is `RESET name`: the setting goes back to
/// its session default, which for a setting the proxy pins is the pinned
/// value. Only the bare keyword: `"default"` is a name.
fn is_default(values: &[sql::Expr]) -> bool {
    matches!(values, [sql::Expr::Identifier(id)]
        if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}

/// A setting's name as the server reads it: parts folded, joined by dots.
pub(super) fn setting_name(name: &sql::ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(analyze::fold)
        .collect::<Vec<_>>()
        .join(".")
        .to_lowercase()
}

/// `current_setting(name)` with a name known only when the statement runs
/// (a bound parameter, as SQLAlchemy's reflection sends
/// `current_setting($1)`, or a column of `pg_settings`): the name is
/// replaced by one that is NULL when it names a proxy setting, and
/// `current_setting(NULL)` is NULL. The server compares setting names
/// ignoring ASCII case, as `lower` does for the prefix's letters.
pub(super) fn guard_setting_name(operand: &str) -> String {
    format!(
        "CASE WHEN lower(CAST(({operand}) AS text)) LIKE '{}%' THEN NULL ELSE ({operand}) END",
        sql_lists::PROXY_SETTING_PREFIX
    )
}

/// `current_setting` and `set_config` name their setting in an argument:
/// the proxy's own settings are never read, protected ones never changed
/// (beyond narrowing `search_path` or setting a pinned value), and a name
/// the engine cannot read is refused.
pub(super) fn check_setting_call(call: &analyze::SettingCall) -> Result<(), Denial> {
    let Some(setting) = &call.setting else {
        return Err(denials::computed_setting_name(&call.function));
    };
    if sql_lists::is_proxy_setting(setting) {
        return Err(denials::proxy_setting(setting));
    }
    if call.function == "set_config" && sql_lists::PROTECTED_SETTINGS.contains(&setting.as_str()) {
        let keeps = call
            .value
            .as_deref()
            .is_some_and(|v| sql_lists::keeps_pinned(setting, v));
        if !keeps {
            return Err(denials::protected_setting(setting));
        }
    }
    Ok(())
}
