//! Function calls: each called function's class (pure, metadata,
//! value-exposing, side-effecting) against what the identity may call.

use super::*;

pub(super) fn check_functions(access: &PrincipalAccess, a: &Analysis) -> Result<(), Denial> {
    check_functions_guarded(access, a, None)
}

/// Like [`check_functions`]; with `guards`, a `current_setting` whose name
/// is a parameter or a column is allowed with a guard added to `guards`.
pub(super) fn check_functions_guarded(
    access: &PrincipalAccess,
    a: &Analysis,
    mut guards: Option<(&str, &mut Vec<Edit>)>,
) -> Result<(), Denial> {
    a.functions
        .iter()
        .try_for_each(|(name, schema)| check_function(access, name, schema.as_deref()))?;
    for call in &a.settings {
        if call.setting.is_none()
            && call.function == "current_setting"
            && let (Some((start, end)), Some((text, edits))) = (call.name_at, guards.as_mut())
            && let Some(operand) = text.get(start..end)
        {
            edits.push(Edit {
                start,
                end,
                text: guard_setting_name(operand),
            });
            continue;
        }
        if let (Some(rest), Some((start, end)), Some((_, edits))) = (
            set_config_without_user(call),
            call.value_at,
            guards.as_mut(),
        ) {
            edits.push(Edit {
                start,
                end,
                text: sql_string(&rest.join(", ")),
            });
            continue;
        }
        check_setting_call(call)?;
    }
    Ok(())
}

/// `set_config('search_path', '"$user", public', …)`: the path without
/// `$user` when that keeps the pinned path and the path as written does
/// not (`sql_lists::search_path_without_user`).
fn set_config_without_user(call: &analyze::SettingCall) -> Option<Vec<&str>> {
    let value = call.value.as_deref()?;
    (call.function == "set_config"
        && call.setting.as_deref() == Some("search_path")
        && !sql_lists::keeps_pinned("search_path", value))
    .then(|| sql_lists::search_path_without_user(value))
    .flatten()
}

/// What a rule says of function `name` (by its `qualified` name
/// `schema.name` first): allowed, denied, or nothing.
pub(super) fn function_rule(
    access: &PrincipalAccess,
    name: &str,
    qualified: Option<&str>,
) -> Option<bool> {
    qualified
        .and_then(|q| access.functions.get(q))
        .or_else(|| access.functions.get(name))
        .copied()
}

/// A function a rule names is allowed or denied as the rule says; other
/// functions by their class (`engine::functions`): built-in pure and
/// metadata functions are allowed, the rest refused with the reason.
pub(super) fn check_function(
    access: &PrincipalAccess,
    name: &str,
    schema: Option<&str>,
) -> Result<(), Denial> {
    let qualified = schema.map(|s| format!("{s}.{name}"));
    let shown = qualified.as_deref().unwrap_or(name);
    match function_rule(access, name, qualified.as_deref()) {
        Some(true) => return Ok(()),
        Some(false) => {
            return Err(denials::function_denied(shown));
        }
        None => {}
    }
    match functions::builtin(name, schema) {
        Some(b) if b.class.callable_by_default() => Ok(()),
        // `set_config` is `SET` as a function: its setting decides
        // (`check_setting_call`), as for the statement.
        Some(b) if b.name == "set_config" => Ok(()),
        Some(b) => Err(denials::function_class(
            shown,
            name,
            &b.class.to_string(),
            b.why,
        )),
        None => Err(denials::function_unknown(shown)),
    }
}
