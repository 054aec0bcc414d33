//! An event as its JSON object, written straight into the line buffer.
//!
//! Written by hand rather than through `serde_json`: every statement
//! writes one event, and through serde each field goes through a map
//! entry and each string through the escaper one byte at a time. Here a
//! string that needs no escape (nearly every one: statement text, names,
//! labels) is checked in one pass the compiler vectorises and copied
//! whole; a string that does is escaped by `serde_json` itself, as are
//! floating-point numbers and the JSON values (`claims`, `via`), so the
//! bytes are exactly those `serde_json::to_writer` writes for the derived
//! `Serialize` (a test holds the two equal).

use super::{Columns, Completion, Event};

/// Appends `event` as one JSON object: its fields in declaration order,
/// the empty optional ones left out.
pub(super) fn write(event: &Event<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":");
    string(out, &event.time);
    out.extend_from_slice(b",\"event\":");
    string(out, event.event);
    out.extend_from_slice(b",\"session\":");
    number(out, event.session);
    field(out, "peer", event.peer.as_deref(), string);
    field(out, "subject", event.subject, string);
    field(out, "groups", event.groups, list);
    field(out, "statement", event.statement, string);
    field(out, "decision", event.decision, string);
    field(out, "policies", event.policies, list);
    field(out, "masked", event.masked, list);
    field(out, "observed", event.observed, list);
    field(out, "reason", event.reason, string);
    field(out, "plan", event.plan, string);
    field(out, "claims", event.claims, value);
    field(out, "tls", event.tls, string);
    field(out, "rewritten", event.rewritten, string);
    field(out, "rules", event.rules, list);
    field(out, "columns", event.columns, columns);
    field(out, "completed", event.completed, completed);
    field(out, "request", event.request, string);
    field(out, "approver", event.approver, string);
    field(out, "comment", event.comment, string);
    field(out, "via", event.via, value);
    out.push(b'}');
}

/// `,"name":` and the value, when there is one (every field follows
/// `time`, so a comma always comes first).
fn field<T>(out: &mut Vec<u8>, name: &str, v: Option<T>, write: fn(&mut Vec<u8>, T)) {
    if let Some(v) = v {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        write(out, v);
    }
}

fn list(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, item);
    }
    out.push(b']');
}

/// True when `s` goes into a JSON string as it is: no control character,
/// quote or backslash (the only bytes `serde_json` escapes).
fn plain(s: &str) -> bool {
    // Without an early exit (and with `&` for `&&`), so that the loop is
    // vectorised: strings here are short and nearly always plain.
    s.bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'))
}

/// A JSON string.
fn string(out: &mut Vec<u8>, s: &str) {
    if plain(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        value(out, s);
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Anything else, through `serde_json` (writing to a `Vec` cannot fail,
/// and these values serialise without error).
fn value<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Each column as `"schema.table.column (label): access"`.
fn columns(out: &mut Vec<u8>, c: Columns<'_>) {
    out.push(b'[');
    for (i, col) in c.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if plain(&col.column) && plain(&col.label) && plain(&col.access) {
            out.push(b'"');
            out.extend_from_slice(col.column.as_bytes());
            out.extend_from_slice(b" (");
            out.extend_from_slice(col.label.as_bytes());
            out.extend_from_slice(b"): ");
            out.extend_from_slice(col.access.as_bytes());
            out.push(b'"');
        } else {
            value(
                out,
                &format!("{} ({}): {}", col.column, col.label, col.access),
            );
        }
    }
    out.push(b']');
}

fn completed(out: &mut Vec<u8>, list: &[Completion]) {
    out.push(b'[');
    for (i, c) in list.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"statement_seq\":");
        number(out, c.statement_seq);
        out.extend_from_slice(b",\"outcome\":");
        string(out, c.outcome);
        out.extend_from_slice(b",\"rows\":");
        number(out, c.rows);
        out.extend_from_slice(b",\"duration_ms\":");
        value(out, &c.duration_ms);
        out.push(b'}');
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use clsf_engine::ColumnUse;

    fn both(event: &Event<'_>) -> (String, String) {
        let mut mine = Vec::new();
        write(event, &mut mine);
        let serde = serde_json::to_string(event).unwrap();
        (String::from_utf8(mine).unwrap(), serde)
    }

    #[test]
    fn every_field_is_written_as_serde_writes_it() {
        let groups = vec!["a".to_owned(), "b \"q\"".to_owned()];
        let list = vec!["x".to_owned()];
        let claims = serde_json::json!({"sub": "s", "n": 1.5, "ok": [true, null]});
        let via = serde_json::json!({"tool": "query"});
        let column = |column: &str, label: &str, access: &str| ColumnUse {
            column: column.into(),
            label: label.into(),
            access: access.into(),
        };
        let columns = vec![
            column("public.t.c", "internal", "clear"),
            column(
                "public.t.\"odd\\name\"",
                "confidential [pii]",
                "masked (last(4))",
            ),
        ];
        let completed = vec![
            Completion {
                statement_seq: 3,
                outcome: "ok",
                rows: 18_446_744_073_709_551_615,
                duration_ms: 0.1 + 0.2,
            },
            Completion {
                statement_seq: 0,
                outcome: "error",
                rows: 0,
                duration_ms: 1e-7,
            },
        ];
        let mut event = Event::new("statement", 42);
        event.peer = Some("127.0.0.1:5432".into());
        event.subject = Some("ci\u{1}\t\n\u{7f}é\u{2028}");
        event.groups = Some(&groups);
        event.statement = Some("SELECT '\\' AS \"q\", 'ünï' -- \r\n");
        event.decision = Some("mask");
        event.policies = Some(&list);
        event.masked = Some(&list);
        event.observed = Some(&[]);
        event.reason = Some("why");
        event.plan = Some("abc");
        event.claims = Some(&claims);
        event.tls = Some("TLSv1.3");
        event.rewritten = Some("SELECT 1");
        event.rules = Some(&list);
        event.columns = Some(Columns(&columns));
        event.completed = Some(&completed);
        event.request = Some("r-1");
        event.approver = Some("bob");
        event.comment = Some("ok \"then\"");
        event.via = Some(&via);
        let (mine, serde) = both(&event);
        assert_eq!(mine, serde);
    }

    #[test]
    fn empty_fields_are_left_out_as_serde_leaves_them() {
        let (mine, serde) = both(&Event::new("disconnect", 0));
        assert_eq!(mine, serde);
        assert!(!mine.contains("subject"), "{mine}");
    }
}
