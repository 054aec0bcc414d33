//! `clsf-proxy audit show`: an audit trail replayed as readable session
//! timelines, filtered by session, identity and time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Which events to show.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this proxy session.
    pub session: Option<u64>,
    /// Only sessions of this subject.
    pub identity: Option<String>,
    /// Only events at or after this time (RFC 3339, or a prefix of one such
    /// as `2026-11-30` or `2026-11-30T10:15`).
    pub since: Option<String>,
}

/// Why a trail cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// The trail's files could not be found.
    #[error("{0}")]
    Trail(#[from] crate::audit::TrailError),
    /// A file of the trail could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A line that is not a JSON event.
    #[error("{} line {line} is not an audit event (run `clsf-proxy audit verify`)", path.display())]
    NotAnEvent {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
}

/// Reads every file of the trail at `path` and renders the timelines.
pub fn show(path: &Path, filter: &Filter) -> Result<String, ShowError> {
    let files = crate::audit::trail_paths(path)?;
    let mut events = Vec::new();
    for file in &files {
        let text = crate::audit::read_text(file).map_err(|source| ShowError::Read {
            path: file.clone(),
            source,
        })?;
        for (i, line) in text.lines().enumerate() {
            let value: Value = serde_json::from_str(line).map_err(|_| ShowError::NotAnEvent {
                path: file.clone(),
                line: i + 1,
            })?;
            events.push(value);
        }
    }
    Ok(render(&events, filter))
}

/// The timelines of `events` (in trail order), one block per session in
/// order of first appearance; proxy-wide events (reloads) under `proxy`.
pub fn render(events: &[Value], filter: &Filter) -> String {
    let str_of = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    // A session's subject is known from its connect event onward.
    let mut subjects: BTreeMap<u64, String> = BTreeMap::new();
    for e in events {
        if let (Some(s), Some(sub)) = (
            e.get("session").and_then(Value::as_u64),
            e.get("subject").and_then(Value::as_str),
        ) {
            subjects.entry(s).or_insert_with(|| sub.to_owned());
        }
    }
    let mut order: Vec<u64> = Vec::new();
    let mut blocks: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for e in events {
        let session = e.get("session").and_then(Value::as_u64).unwrap_or(0);
        let time = str_of(e, "time");
        if filter.session.is_some_and(|s| s != session) {
            continue;
        }
        if let Some(who) = &filter.identity
            && subjects.get(&session) != Some(who)
        {
            continue;
        }
        if let Some(since) = &filter.since
            && time.as_str() < since.as_str()
        {
            continue;
        }
        if !blocks.contains_key(&session) {
            order.push(session);
        }
        blocks.entry(session).or_default().push(line(e));
    }
    let mut out = String::new();
    for session in order {
        if session == 0 {
            out.push_str("proxy\n");
        } else {
            out.push_str(&format!(
                "session {session} ({})\n",
                subjects
                    .get(&session)
                    .map_or("unknown identity", String::as_str)
            ));
        }
        for l in &blocks[&session] {
            out.push_str(l);
        }
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("no events match\n");
    }
    out
}

/// One event as an indented line (plus detail lines).
fn line(e: &Value) -> String {
    let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
    let list = |k: &str| -> String {
        e.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let kind = s("event");
    let what = match kind {
        "connect" => format!(
            "connect from {} as {} (groups: {}), plan {}",
            s("peer"),
            s("subject"),
            list("groups"),
            s("plan")
        ),
        "statement" | "execute" => format!("{kind} [{}] {}", s("decision"), s("statement")),
        "approval_vote" => format!(
            "{} votes {} on request {}: {}",
            s("approver"),
            s("decision"),
            s("request"),
            s("comment")
        ),
        k if k.starts_with("approval") => {
            let mut t = format!("{k} request {}", s("request"));
            if !s("reason").is_empty() {
                t.push_str(&format!(": {}", s("reason")));
            }
            t
        }
        "reload" | "reload_failed" => format!("{kind}, plan {}", s("plan")),
        _ => {
            let mut t = kind.to_owned();
            if !s("reason").is_empty() {
                t.push_str(&format!(": {}", s("reason")));
            }
            t
        }
    };
    let mut out = format!("  {} #{} {what}\n", s("time"), e["seq"]);
    for (key, label) in [("masked", "masked"), ("observed", "observed")] {
        let v = list(key);
        if !v.is_empty() {
            out.push_str(&format!("      {label}: {v}\n"));
        }
    }
    if matches!(kind, "statement" | "execute") && !s("reason").is_empty() {
        out.push_str(&format!("      reason: {}\n", s("reason")));
    }
    for c in e
        .get("completed")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "      (#{} completed: {}, {} row(s) in {} ms)\n",
            c["statement_seq"],
            c["outcome"].as_str().unwrap_or(""),
            c["rows"],
            c["duration_ms"]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sessions_are_grouped_and_filtered() {
        let events = vec![
            json!({"seq":0,"time":"2026-11-30T10:00:00Z","event":"connect","session":1,"subject":"a","groups":["g"],"peer":"127.0.0.1:1","plan":"p"}),
            json!({"seq":1,"time":"2026-11-30T10:00:01Z","event":"connect","session":2,"subject":"b","groups":[],"peer":"127.0.0.1:2","plan":"p"}),
            json!({"seq":2,"time":"2026-11-30T10:00:02Z","event":"statement","session":1,"subject":"a","statement":"SELECT email FROM customers","decision":"mask","masked":["public.customers.email"]}),
            json!({"seq":3,"time":"2026-11-30T10:05:00Z","event":"statement","session":2,"subject":"b","statement":"SELECT ssn FROM customers","decision":"deny","reason":"denied"}),
        ];
        let all = render(&events, &Filter::default());
        assert!(all.starts_with("session 1 (a)\n"), "{all}");
        assert!(
            all.contains(
                "statement [mask] SELECT email FROM customers\n      masked: public.customers.email"
            ),
            "{all}"
        );
        let b = render(
            &events,
            &Filter {
                identity: Some("b".into()),
                ..Filter::default()
            },
        );
        assert!(!b.contains("session 1"), "{b}");
        assert!(b.contains("reason: denied"), "{b}");
        let late = render(
            &events,
            &Filter {
                since: Some("2026-11-30T10:01".into()),
                ..Filter::default()
            },
        );
        assert_eq!(late.matches('#').count(), 1, "{late}");
        assert_eq!(
            render(
                &events,
                &Filter {
                    session: Some(9),
                    ..Filter::default()
                }
            ),
            "no events match\n"
        );
    }
}
