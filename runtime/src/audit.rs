//! The audit trail: JSON lines, one event per connection, statement and
//! disconnect. Each line carries the SHA-256 of the line before it, so an
//! edited, removed or reordered line breaks the chain (`verify`).
//!
//! A statement's event is written before the statement is forwarded; when it
//! cannot be written, the statement is refused.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The chain value before the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit event (written in this field order, after `seq` and `prev`).
#[derive(Debug, Serialize)]
pub struct Event<'a> {
    /// RFC 3339 UTC time.
    pub time: String,
    /// `connect`, `auth_failed`, `statement`, `execute`, `statement_timeout`,
    /// `cancel`, `reload`, `reload_failed`, `disconnect`; for approvals
    /// `approval_requested`, `approval_vote`, `approval_released`,
    /// `approval_refused` (denied, expired or withdrawn) and
    /// `approval_grant_used` (a session or N-executions approval covered it).
    pub event: &'a str,
    /// Proxy session number.
    pub session: u64,
    /// Client address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The identity's subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// The identity's groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<&'a [String]>,
    /// The statement as the client sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<&'a str>,
    /// `allow`, `mask` or `deny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'a str>,
    /// Cedar policy ids that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policies: Option<&'a [String]>,
    /// Columns read masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked: Option<&'a [String]>,
    /// What observe-only rules would have withheld (recorded, not enforced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<&'a [String]>,
    /// Why (denials, failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// Hash of the plan enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<&'a str>,
    /// Approval request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<&'a str>,
    /// The approver who voted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<&'a str>,
    /// The approver's comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'a str>,
}

impl<'a> Event<'a> {
    /// An event of `kind` for `session` with every optional field empty.
    pub fn new(kind: &'a str, session: u64) -> Event<'a> {
        Event {
            time: now(),
            event: kind,
            session,
            peer: None,
            subject: None,
            groups: None,
            statement: None,
            decision: None,
            policies: None,
            masked: None,
            observed: None,
            reason: None,
            plan: None,
            request: None,
            approver: None,
            comment: None,
        }
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

struct Inner {
    file: File,
    prev: String,
    seq: u64,
}

/// An append-only, hash-chained audit file shared by all sessions.
pub struct AuditLog {
    inner: Mutex<Inner>,
    fsync: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("fsync", &self.fsync)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating if needed) the audit file and continues its chain.
    pub fn open(path: &Path, fsync: bool) -> std::io::Result<AuditLog> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let (prev, seq) = match last_line(&mut file)? {
            Some(line) => {
                let seq = serde_json::from_slice::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
                    .map_or(0, |s| s + 1);
                (hex::encode(Sha256::digest(&line)), seq)
            }
            None => (GENESIS.to_owned(), 0),
        };
        Ok(AuditLog {
            inner: Mutex::new(Inner { file, prev, seq }),
            fsync,
        })
    }

    /// Appends one event. An error means the event is not recorded and the
    /// caller must not proceed with what it describes.
    pub fn append(&self, event: &Event<'_>) -> std::io::Result<()> {
        // Serialized before taking the lock: every session appends, and the
        // lock need only cover the chain (sequence, hash, write).
        let event_json = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // The chain fields go first; they are spliced in front of the event's
        // own fields rather than serialized through a wrapper with
        // `#[serde(flatten)]`, which goes through a map and costs several
        // times more per statement. `prev` is hex, so it needs no escaping.
        let mut bytes =
            format!("{{\"seq\":{},\"prev\":\"{}\",", inner.seq, inner.prev).into_bytes();
        bytes.extend_from_slice(&event_json[1..]);
        let hash = hex::encode(Sha256::digest(&bytes));
        bytes.push(b'\n');
        inner.file.write_all(&bytes)?;
        if self.fsync {
            inner.file.sync_data()?;
        }
        inner.prev = hash;
        inner.seq += 1;
        Ok(())
    }
}

/// The last non-empty line of a file, read backwards from the end.
fn last_line(file: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut window = 4096u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        Read::by_ref(file).take(len - start).read_to_end(&mut buf)?;
        let trimmed = buf.strip_suffix(b"\n").unwrap_or(&buf);
        if let Some(pos) = trimmed.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(trimmed[pos + 1..].to_vec()));
        }
        if start == 0 {
            return Ok((!trimmed.is_empty()).then(|| trimmed.to_vec()));
        }
        window *= 2;
    }
}

/// The SHA-256 of the last line: publishing it elsewhere (a ticket, a log
/// service) anchors the chain, so that even the last line cannot be edited
/// unnoticed.
pub fn head(text: &str) -> String {
    text.lines().last().map_or_else(
        || GENESIS.to_owned(),
        |l| hex::encode(Sha256::digest(l.as_bytes())),
    )
}

/// Checks a whole audit file's chain. Returns the number of events, or the
/// 1-based line number where the chain breaks.
pub fn verify(text: &str) -> Result<usize, usize> {
    let mut prev = GENESIS.to_owned();
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|_| i + 1)?;
        if value.get("prev").and_then(serde_json::Value::as_str) != Some(prev.as_str())
            || value.get("seq").and_then(serde_json::Value::as_u64) != Some(i as u64)
        {
            return Err(i + 1);
        }
        prev = hex::encode(Sha256::digest(line.as_bytes()));
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_survives_reopen_and_detects_edits() {
        let dir = std::env::temp_dir().join(format!("clsf-audit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        {
            let log = AuditLog::open(&path, false).unwrap();
            log.append(&Event::new("connect", 1)).unwrap();
            log.append(&Event::new("statement", 1)).unwrap();
        }
        {
            let log = AuditLog::open(&path, true).unwrap();
            log.append(&Event::new("disconnect", 1)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(verify(&text), Ok(3));
        let edited = text.replacen("\"statement\"", "\"connect\"", 1);
        assert_eq!(verify(&edited), Err(3));
        let dropped: String = text
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        assert_eq!(verify(&dropped), Err(2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
