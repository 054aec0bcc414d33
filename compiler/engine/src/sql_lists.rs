//! Fixed lists the engine consults for identities that have anything
//! withheld: catalog relations that expose values and settings a session
//! may not change or read. (Functions are classified from the real catalog:
//! `engine::functions`.)

/// Catalog relations whose rows expose stored values or other sessions'
/// statement text; refused for identities with anything withheld.
pub const PROTECTED_CATALOGS: &[&str] = &[
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_statistic",
    "pg_statistic_ext_data",
    "pg_stat_activity",
    "pg_stat_statements",
    "pg_stat_statements_info",
    "pg_largeobject",
    // Password hashes: PostgreSQL shows them to superusers only, and a
    // gateway role should not be one; refused here all the same. (The
    // views with connection strings, `pg_user_mappings` and
    // `pg_subscription`, stay readable: pg_dump counts and lists them, and
    // PostgreSQL hides their secrets from everyone but owners.)
    "pg_authid",
    "pg_shadow",
    "pg_user_mapping",
    // The server's configuration files, as written (the functions behind
    // these views are value-exposing).
    "pg_file_settings",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
];

/// The prefix of the settings the proxy sets at upstream login for its own
/// use (the `hash` mask's key): no client of an identity with anything
/// withheld may read, change or reset them.
pub const PROXY_SETTING_PREFIX: &str = "clsf.";

/// True for a setting (lower-cased) that only the proxy may touch.
pub fn is_proxy_setting(name: &str) -> bool {
    name.starts_with(PROXY_SETTING_PREFIX)
}

/// True when `value` (a `search_path` as written) only narrows the pinned
/// path: empty, or `pg_catalog` alone. Names then resolve to a subset of
/// what the engine assumes (`pg_dump` sets it empty and qualifies every
/// name), never to another relation or function.
pub fn narrows_search_path(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '\'' || c == '"').trim();
    v.is_empty() || v.eq_ignore_ascii_case("pg_catalog")
}

/// True when setting protected setting `name` to `value` (as written,
/// quotes and all) leaves the session as the proxy pins it at upstream
/// login: `search_path` only narrowed (see [`narrows_search_path`]) or set
/// to the pinned `public` (`pg_catalog` is searched first either way),
/// `standard_conforming_strings` on, `client_encoding` UTF-8. Frameworks
/// set these on every connection (Rails sends `SET
/// standard_conforming_strings = on` and its `search_path`), and setting
/// what is already in force changes nothing the engine relies on.
pub fn keeps_pinned(name: &str, value: &str) -> bool {
    let v = value
        .trim()
        .trim_matches(|c| c == '\'' || c == '"')
        .trim()
        .to_ascii_lowercase();
    match name {
        "search_path" => {
            let schemas: Vec<String> = path_elements(value).map(|(read, _)| read).collect();
            // `pg_catalog` is searched first unless it is listed later:
            // `public, pg_catalog` would let `public` shadow the catalogs.
            let rest = match schemas.split_first() {
                Some((first, rest)) if first == "pg_catalog" => rest,
                _ => &schemas[..],
            };
            narrows_search_path(value) || rest == [crate::schema::DEFAULT_SCHEMA]
        }
        "standard_conforming_strings" => matches!(v.as_str(), "on" | "true" | "yes" | "1"),
        "client_encoding" => matches!(v.replace(['-', '_'], "").as_str(), "utf8" | "unicode"),
        _ => false,
    }
}

/// A `search_path` as written, element by element: each as the server
/// reads it (quoted ones exactly, others folded to lower case) and as
/// written.
fn path_elements(value: &str) -> impl Iterator<Item = (String, &str)> {
    value.trim().trim_matches('\'').split(',').map(|written| {
        let s = written.trim();
        let read = match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(exact) => exact.to_owned(),
            None => s.to_ascii_lowercase(),
        };
        (read, s)
    })
}

/// `search_path` as written (see [`keeps_pinned`]) without its `$user`
/// elements, when it has any and the rest keeps the pinned path: the
/// elements left, as written. `$user` names the schema called as the
/// session's role, which upstream is the proxy's gateway role, not the
/// identity. Where no such schema exists PostgreSQL skips it, and where
/// one does (made after the lock was pulled, perhaps) names would resolve
/// in it before `public`, which the engine does not assume; forwarding
/// the path without it keeps the engine's reading true either way. This
/// is `"$user", public`, PostgreSQL's default path, which tools set to
/// restore the default.
pub fn search_path_without_user(value: &str) -> Option<Vec<&str>> {
    let mut has_user = false;
    let rest: Vec<&str> = path_elements(value)
        .filter(|(read, _)| {
            let user = read == "$user";
            has_user |= user;
            !user
        })
        .map(|(_, written)| written)
        .collect();
    (has_user && keeps_pinned("search_path", &rest.join(","))).then_some(rest)
}

/// Settings that change how names resolve, who the session is, or how the
/// server reads statement text (an encoding or string-literal rule the
/// engine's parser does not share would let text hide from the analysis);
/// refused for identities with anything withheld. The proxy pins them at
/// upstream login, so `RESET` and `DISCARD ALL` return to the pinned values.
pub const PROTECTED_SETTINGS: &[&str] = &[
    "search_path",
    "role",
    "session_authorization",
    "client_encoding",
    "standard_conforming_strings",
    "backslash_quote",
];

/// Aggregates that summarise their inputs and never return one as it is
/// (as `min`, `max`, `string_agg` or `array_agg` do): a `use` grant's
/// `aggregated` class covers only these.
pub const SUMMARY_AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
];

/// Aggregate functions, for usage classes (a column inside one is
/// `aggregated`). Being listed here does not make a function safe: that is
/// its class (`engine::functions`).
pub const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "corr",
    "covar_pop",
    "covar_samp",
];

/// Schemas that hold PostgreSQL's own catalogs.
pub const CATALOG_SCHEMAS: &[&str] = &["pg_catalog", "information_schema"];

/// The relation's name when a written name (folded parts) is one of
/// PostgreSQL's catalogs: qualified by a catalog schema, or unqualified
/// with the `pg_` prefix (found in `pg_catalog`, searched first). Used
/// where the schema does not carry the relation.
pub fn catalog_name(parts: &[String]) -> Option<&str> {
    match parts {
        [name] if name.starts_with("pg_") => Some(name),
        [schema, name] | [_, schema, name] if CATALOG_SCHEMAS.contains(&schema.as_str()) => {
            Some(name)
        }
        _ => None,
    }
}
