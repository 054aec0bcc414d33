//! Settings a client gives at startup: startup parameters, and the `-c
//! name=value` and `--name=value` switches of `options`, read as
//! PostgreSQL reads them. Drivers send them for a time zone (libpq's
//! `PGTZ` as `timezone`), a schema (pgJDBC's `currentSchema`, Npgsql's
//! `SearchPath`), timeouts (node-postgres' `statement_timeout`), or
//! anything in `options`/`PGOPTIONS`. Each is decided for the identity as
//! `SET` would be (`clsf_engine::startup_setting`) once it is known.

use clsf_engine::keeps_pinned;

/// Why a startup packet's settings cannot be taken (said to the client).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Unsupported(pub(super) String);

/// The settings of a startup packet's `params` (besides `user` and
/// `database`), names in lower case as the server compares them, in the
/// order the server applies them: `options` first, then the others (a
/// later one of a name wins).
pub(super) fn client_settings(
    params: &[(String, String)],
) -> Result<Vec<(String, String)>, Unsupported> {
    let mut out = Vec::new();
    for (key, value) in params {
        if key.eq_ignore_ascii_case("options") {
            out.extend(options(value)?);
        }
    }
    for (key, value) in params {
        let name = key.to_ascii_lowercase();
        match name.as_str() {
            "user" | "database" | "options" => {}
            "replication" => {
                return Err(Unsupported(
                    "replication connections are not supported through the clsf proxy".into(),
                ));
            }
            _ if name.starts_with("_pq_.") => {
                return Err(Unsupported(format!(
                    "protocol option `{key}` is not supported by the clsf proxy"
                )));
            }
            // The encoding the proxy pins, by the engine's rule for `SET`.
            "client_encoding" if !keeps_pinned("client_encoding", value) => {
                return Err(Unsupported(
                    "the clsf proxy supports client_encoding UTF8 only".into(),
                ));
            }
            _ => out.push((name, value.clone())),
        }
    }
    Ok(out)
}

/// `options` as the server splits and reads it (`pg_split_opts`, then its
/// switches): words separated by white space, a backslash taking the next
/// character as it is; `-c name=value` (or `-cname=value`) and
/// `--name=value` set `name`, with `-` in it read as `_`. The server's
/// other switches (`-B`, `-d`, …) are refused: they are not settings a
/// session makes with `SET`.
fn options(text: &str) -> Result<Vec<(String, String)>, Unsupported> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_ascii_whitespace()) {
            match c {
                '\\' => word.extend(chars.next()),
                c => word.push(c),
            }
        }
        words.push(word);
    }
    let mut out = Vec::new();
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let setting = if word == "-c" {
            words.next().ok_or_else(|| {
                Unsupported("`options`: `-c` needs a `name=value` after it".into())
            })?
        } else if let Some(rest) = word.strip_prefix("--").or_else(|| word.strip_prefix("-c")) {
            rest.to_owned()
        } else {
            return Err(Unsupported(format!(
                "`options`: only `-c name=value` and `--name=value` are supported through the clsf proxy, not `{word}`"
            )));
        };
        let Some((name, value)) = setting.split_once('=') else {
            return Err(Unsupported(format!(
                "`options`: `{setting}` has no value (`name=value`)"
            )));
        };
        out.push((
            name.replace('-', "_").to_ascii_lowercase(),
            value.to_owned(),
        ));
    }
    Ok(out)
}

/// Puts `name = value` in the upstream login's settings, in place of the
/// proxy's own value of it if there is one.
pub(super) fn merge(settings: &mut Vec<(String, String)>, name: String, value: String) {
    match settings
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(&name))
    {
        Some(slot) => slot.1 = value,
        None => settings.push((name, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parameters_keep_their_values_and_lose_their_case() {
        let got = client_settings(&params(&[
            ("user", "ci"),
            ("database", "shop"),
            ("TimeZone", "Europe/Paris"),
            ("statement_timeout", "5s"),
            ("client_encoding", "utf-8"),
        ]))
        .unwrap();
        assert_eq!(
            got,
            params(&[
                ("timezone", "Europe/Paris"),
                ("statement_timeout", "5s"),
                ("client_encoding", "utf-8"),
            ])
        );
    }

    #[test]
    fn options_come_first_as_the_server_applies_them() {
        let got = client_settings(&params(&[
            ("application_name", "psql"),
            ("options", "-c application_name=mine -c work_mem=8MB"),
        ]))
        .unwrap();
        assert_eq!(
            got,
            params(&[
                ("application_name", "mine"),
                ("work_mem", "8MB"),
                ("application_name", "psql"),
            ])
        );
    }

    #[test]
    fn options_are_read_as_the_server_reads_them() {
        let got = client_settings(&params(&[(
            "options",
            r"-c search_path=public  -cstatement_timeout=10s --lock-timeout=1s -c application_name=a\ b\\c",
        )]))
        .unwrap();
        assert_eq!(
            got,
            params(&[
                ("search_path", "public"),
                ("statement_timeout", "10s"),
                ("lock_timeout", "1s"),
                ("application_name", r"a b\c"),
            ])
        );
        assert_eq!(client_settings(&params(&[("options", "   ")])).unwrap(), []);
    }

    #[test]
    fn what_is_not_a_setting_is_refused_with_its_reason() {
        for (key, value, says) in [
            ("options", "-B 100", "not `-B`"),
            ("options", "-c", "needs a `name=value`"),
            ("options", "-c search_path", "has no value"),
            ("replication", "database", "replication"),
            ("_pq_.compression", "on", "protocol option"),
            ("client_encoding", "LATIN1", "UTF8 only"),
        ] {
            let Err(Unsupported(message)) = client_settings(&params(&[(key, value)])) else {
                panic!("{key}={value} was taken");
            };
            assert!(message.contains(says), "{key}={value}: {message}");
        }
    }

    #[test]
    fn a_client_value_replaces_the_proxys_own() {
        let mut settings = params(&[("search_path", "public"), ("client_encoding", "UTF8")]);
        merge(&mut settings, "search_path".into(), "".into());
        merge(&mut settings, "timezone".into(), "UTC".into());
        assert_eq!(
            settings,
            params(&[
                ("search_path", ""),
                ("client_encoding", "UTF8"),
                ("timezone", "UTC"),
            ])
        );
    }
}
