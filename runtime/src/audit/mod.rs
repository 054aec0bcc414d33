//! The audit trail: JSON lines, one event per connection, statement and
//! disconnect. Each line carries the SHA-256 of the line before it, so an
//! edited, removed or reordered line breaks the chain (`verify`).
//!
//! A statement's event is written before the statement is forwarded; when it
//! cannot be written, the statement is refused.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod clock;
mod json_line;
mod writer;

pub use writer::Mode;
use writer::Writer;

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
    /// What the identity presented: token claims without timestamps, or
    /// the certificate or account (connect events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<&'a serde_json::Value>,
    /// The client connection's TLS version, or `none` (connect events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'a str>,
    /// The statement as forwarded, when the proxy rewrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewritten: Option<&'a str>,
    /// The rules that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<&'a [String]>,
    /// The columns read, as `schema.table.column (label): access`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Columns<'a>>,
    /// The session's statements that completed since its last event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<&'a [Completion]>,
    /// Approval request id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<&'a str>,
    /// The approver who voted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<&'a str>,
    /// The approver's comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'a str>,
    /// How a session came in when not as a PostgreSQL client: `mcp`, with
    /// the tool and the call's id (on its `connect` event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<&'a serde_json::Value>,
}

impl<'a> Event<'a> {
    /// Appends the event's JSON object (without the chain's `seq` and
    /// `prev`): the bytes `serde_json` writes for it, written faster.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        json_line::write(self, out);
    }

    /// An event of `kind` for `session` with every optional field empty.
    pub fn new(kind: &'a str, session: u64) -> Event<'a> {
        Event {
            time: clock::now(),
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
            claims: None,
            tls: None,
            rewritten: None,
            rules: None,
            columns: None,
            completed: None,
            via: None,
        }
    }
}

/// The columns a statement read, serialized as strings
/// `schema.table.column (label): access` straight into the event's line
/// (no string per column is built first: this is on every statement).
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a>(pub &'a [clsf_engine::ColumnUse]);

impl Serialize for Columns<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        struct Shown<'c>(&'c clsf_engine::ColumnUse);
        impl std::fmt::Display for Shown<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} ({}): {}", self.0.column, self.0.label, self.0.access)
            }
        }
        impl Serialize for Shown<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for column in self.0 {
            seq.serialize_element(&Shown(column))?;
        }
        seq.end()
    }
}

/// How a forwarded statement ended, recorded on the session's next event
/// (its own event was written before it ran).
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    /// The `seq` of its `statement` or `execute` event.
    pub statement_seq: u64,
    /// `ok`, `error` or `suspended` (a portal's row limit was reached).
    pub outcome: &'static str,
    /// Rows returned or changed.
    pub rows: u64,
    /// Milliseconds from forwarding to completion.
    pub duration_ms: f64,
}

struct Inner {
    writer: Writer,
    prev: String,
    seq: u64,
    /// Bytes in the current file.
    len: u64,
    /// `seq` of the current file's first event.
    first_seq: u64,
}

/// An append-only, hash-chained audit trail shared by all sessions: the
/// file at `path`, and with rotation the files `path.NNNNNNNNNNNN` before
/// it (named by the `seq` of their first event). The chain runs across
/// files: a new file's first event carries the hash of the last one of the
/// file before.
pub struct AuditLog {
    inner: Mutex<Inner>,
    /// Whether the last append failed (so the log says so once per outage).
    failing: std::sync::atomic::AtomicBool,
    path: PathBuf,
    options: Options,
    /// Where each written event's line is also offered (the central copy,
    /// the OpenTelemetry export): set once, before sessions start.
    taps: std::sync::OnceLock<Vec<Tap>>,
}

/// The lines offered to a reader beside the file: never waited for, so a
/// slow reader cannot slow statements; when it falls behind, `overflowed`
/// tells it to read the file instead.
#[derive(Debug)]
struct Tap {
    lines: tokio::sync::mpsc::Sender<(u64, String)>,
    overflowed: Arc<std::sync::atomic::AtomicBool>,
}

/// The receiving end of [`AuditLog::tap`].
#[derive(Debug)]
pub struct Tapped {
    /// Each event's sequence number and line (without its newline), in
    /// order, after it was written.
    pub lines: tokio::sync::mpsc::Receiver<(u64, String)>,
    /// Set when lines were dropped because the reader was behind; the
    /// reader clears it and reads the file.
    pub overflowed: Arc<std::sync::atomic::AtomicBool>,
}

/// How a trail is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Make every event durable before it counts as written.
    pub fsync: bool,
    /// Rotate the file once it holds this many bytes (0: never).
    pub max_file_bytes: u64,
    /// How events reach the file.
    pub mode: Mode,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        inner.writer.finish(inner.len);
    }
}

impl AuditLog {
    /// Offers every event written from now on to `count` receivers as well
    /// (each with at most `capacity` waiting); `None` if taps are set
    /// already.
    pub fn taps(&self, count: usize, capacity: usize) -> Option<Vec<Tapped>> {
        let mut taps = Vec::with_capacity(count);
        let mut tapped = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
            let overflowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
            taps.push(Tap {
                lines: tx,
                overflowed: Arc::clone(&overflowed),
            });
            tapped.push(Tapped {
                lines: rx,
                overflowed,
            });
        }
        self.taps.set(taps).ok()?;
        Some(tapped)
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).seq
    }

    /// The trail's current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives back the room reserved past the last event, as a clean stop
    /// must: the log is shared by tasks that may outlive the stop, so its
    /// drop cannot be relied on. Appending afterwards still works (it
    /// reserves again).
    pub fn close(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let len = inner.len;
        inner.writer.finish(len);
    }
}

/// The chain position after `line` (the last event written).
fn after(line: &[u8], origin: &Path) -> std::io::Result<(String, u64)> {
    let seq = serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
        .ok_or_else(|| {
            std::io::Error::other(format!(
                "{} ends with an incomplete or foreign line; check it with `clsf-proxy audit verify` before the proxy appends to it",
                origin.display()
            ))
        })?;
    Ok((hex::encode(Sha256::digest(line)), seq + 1))
}

impl AuditLog {
    /// Opens (creating if needed) the audit file and continues its chain,
    /// from the newest rotated file when the current one is empty. What a
    /// mapped trail reserved beyond its events is cut off first, and so is
    /// an event a crash left half-copied there (its statement never ran).
    pub fn open(path: &Path, options: Options) -> std::io::Result<AuditLog> {
        if let Some(torn) = trim(path)? {
            tracing::warn!(
                path = %path.display(),
                bytes = torn,
                "cut an audit event the proxy was writing when it stopped; its statement was not run"
            );
        }
        let mut file = File::open(path).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                File::open(path)
            }
            _ => Err(e),
        })?;
        let len = file.seek(SeekFrom::End(0))?;
        let (prev, seq) = match last_line(&mut file)? {
            Some(line) => after(&line, path)?,
            None => match trail_files(path)?.into_iter().rev().find(|f| f != path) {
                Some(rotated) => {
                    let mut f = File::open(&rotated)?;
                    match last_line(&mut f)? {
                        Some(line) => after(&line, &rotated)?,
                        None => (GENESIS.to_owned(), 0),
                    }
                }
                None => (GENESIS.to_owned(), 0),
            },
        };
        let first_seq = match first_line(path)? {
            Some(line) => serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
                .unwrap_or(seq),
            None => seq,
        };
        let writer = Writer::open(path, options.mode)?;
        Ok(AuditLog {
            inner: Mutex::new(Inner {
                writer,
                prev,
                seq,
                len,
                first_seq,
            }),
            path: path.to_owned(),
            options,
            failing: std::sync::atomic::AtomicBool::new(false),
            taps: std::sync::OnceLock::new(),
        })
    }

    /// Appends one event. An error means the event is not recorded (a
    /// partly written line is cut off again) and the caller must not
    /// proceed with what it describes.
    /// Returns the event's `seq`.
    pub fn append(&self, event: &Event<'_>) -> std::io::Result<u64> {
        use std::sync::atomic::Ordering;
        let result = self.write_event(event);
        // Said once when the trail stops taking events and once when it
        // takes them again, not once per refused statement.
        let failed = result.is_err();
        if self.failing.swap(failed, Ordering::Relaxed) != failed {
            match &result {
                Err(e) => tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    "the audit trail cannot be written; statements are refused until it can"
                ),
                Ok(_) => {
                    tracing::info!(path = %self.path.display(), "the audit trail is written again")
                }
            }
        }
        result
    }

    fn write_event(&self, event: &Event<'_>) -> std::io::Result<u64> {
        thread_local! {
            /// Each session thread's line buffer, reused: no allocation per
            /// event once it has grown to a usual event's size.
            static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUFFER.with_borrow_mut(|buffer| {
            // Room in front for the chain fields, so the line is built in place.
            buffer.clear();
            buffer.resize(CHAIN_ROOM, b' ');
            let written = self.write_line(event, buffer);
            // An exceptional event (a huge statement) does not pin its
            // size for the thread's life.
            if buffer.capacity() > 64 * 1024 {
                *buffer = Vec::new();
            }
            written
        })
    }

    fn write_line(&self, event: &Event<'_>, buffer: &mut Vec<u8>) -> std::io::Result<u64> {
        // Serialized before taking the lock: every session appends, and the
        // lock need only cover the chain (sequence, hash, write).
        json_line::write(event, buffer);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (line, hash) = chain_line(&inner, buffer);
        // The chain advances only once the line is written.
        let at = inner.len;
        inner.writer.write(at, line)?;
        if self.options.fsync {
            inner.writer.sync(at, line.len() as u64)?;
        }
        let seq = inner.seq;
        // Taps are set (perhaps to none) once at start; with none, nothing
        // per event: checking the line as UTF-8 for no reader cost 1.4 % of
        // the proxy's CPU under pgbench.
        if let Some(taps) = self.taps.get().filter(|taps| !taps.is_empty()) {
            offer(taps, seq, line);
        }
        inner.prev.clear();
        inner
            .prev
            .push_str(std::str::from_utf8(&hash).expect("hex digits"));
        inner.seq += 1;
        inner.len += line.len() as u64;
        if self.options.max_file_bytes > 0 && inner.len >= self.options.max_file_bytes {
            // The event is recorded; a failed rotation only means the file
            // grows on and rotation is tried again after the next event.
            if let Err(e) = self.rotate(&mut inner) {
                tracing::warn!(path = %self.path.display(), error = %e, "rotating the audit trail failed");
            }
        }
        Ok(seq)
    }

    fn rotate(&self, inner: &mut Inner) -> std::io::Result<()> {
        let rotated = rotated_name(&self.path, inner.first_seq);
        inner.writer.finish(inner.len);
        std::fs::rename(&self.path, &rotated)?;
        inner.writer = Writer::open(&self.path, self.options.mode)?;
        if self.options.fsync
            && let Some(dir) = self.path.parent()
        {
            // Make the rename and the new file durable too.
            File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })?
            .sync_all()?;
        }
        inner.len = 0;
        inner.first_seq = inner.seq;
        Ok(())
    }
}

/// Offers a written line (with its newline) to every tap, checked as UTF-8
/// once; a tap that is full is told it missed lines.
fn offer(taps: &[Tap], seq: u64, line: &[u8]) {
    let text = String::from_utf8_lossy(&line[..line.len() - 1]);
    for tap in taps {
        if tap
            .lines
            .try_send((seq, text.clone().into_owned()))
            .is_err()
        {
            tap.overflowed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Bytes reserved in front of an event's JSON for the chain fields
/// (`{"seq":N,"prev":"HEX",`: at most 102).
const CHAIN_ROOM: usize = 128;

/// The event's line (with `seq` and `prev` in front and a newline) and
/// its hash, the chain's next `prev`. `buffer` is [`CHAIN_ROOM`] bytes of
/// room and then the event's JSON object.
fn chain_line<'b>(inner: &Inner, buffer: &'b mut Vec<u8>) -> (&'b [u8], [u8; 64]) {
    // The chain fields go first; they are spliced in front of the event's
    // own fields (over its `{`) rather than serialized through a wrapper
    // with `#[serde(flatten)]`, which goes through a map and costs several
    // times more per statement. `prev` is hex, so it needs no escaping.
    let mut prefix = std::io::Cursor::new([0u8; CHAIN_ROOM]);
    write!(
        prefix,
        "{{\"seq\":{},\"prev\":\"{}\",",
        inner.seq, inner.prev
    )
    .expect("the chain fields fit in CHAIN_ROOM");
    let used = usize::try_from(prefix.position()).expect("at most CHAIN_ROOM");
    let start = CHAIN_ROOM + 1 - used;
    buffer[start..=CHAIN_ROOM].copy_from_slice(&prefix.get_ref()[..used]);
    let mut hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(&buffer[start..]), &mut hex)
        .expect("a SHA-256 digest is 64 hex digits");
    buffer.push(b'\n');
    (&buffer[start..], hex)
}

/// `path.NNNNNNNNNNNN`: a rotated file, named by its first event's `seq`.
fn rotated_name(path: &Path, first_seq: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{first_seq:012}"));
    PathBuf::from(name)
}

/// The trail's files in chain order: rotated files by their number, then
/// the current file (when it exists).
pub fn trail_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rotated: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) = name
            .strip_prefix(&base)
            .and_then(|rest| rest.strip_prefix('.'))
            .filter(|n| n.len() == 12 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
        {
            rotated.push((n, entry.path()));
        }
    }
    rotated.sort();
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        out.push(path.to_owned());
    }
    Ok(out)
}

/// Cuts what a mapped trail reserved beyond its events (zero bytes) and,
/// before them, an event a crash left half-copied; returns the length of
/// that torn event, if there was one. A file without reserved room is left
/// as it is (its incomplete last line, if any, is for `open` to refuse).
fn trim(path: &Path) -> std::io::Result<Option<u64>> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() {
        return Ok(None);
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let physical = meta.len();
    let end = rfind(&mut file, physical, |b| b != 0)?.map_or(0, |p| p + 1);
    if end == physical {
        return Ok(None);
    }
    let keep = rfind(&mut file, end, |b| b == b'\n')?.map_or(0, |p| p + 1);
    file.set_len(keep)?;
    Ok((keep < end).then_some(end - keep))
}

/// The position of the last byte before `upto` that `wanted` accepts.
fn rfind(file: &mut File, upto: u64, wanted: impl Fn(u8) -> bool) -> std::io::Result<Option<u64>> {
    const WINDOW: u64 = 64 * 1024;
    let mut end = upto;
    let mut buf = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(WINDOW);
        file.seek(SeekFrom::Start(start))?;
        buf.clear();
        Read::by_ref(file).take(end - start).read_to_end(&mut buf)?;
        if let Some(i) = buf.iter().rposition(|b| wanted(*b)) {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// A trail file's events as text: up to the first zero byte (where a
/// mapped trail's reserved room begins), without an event a crash left
/// half-copied before it. JSON escapes control characters, so no event
/// holds a zero byte.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let mut bytes = std::fs::read(path)?;
    if let Some(zero) = bytes.iter().position(|b| *b == 0) {
        let keep = bytes[..zero]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        bytes.truncate(keep);
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The first line of a file, if any.
fn first_line(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::BufRead;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Bounded by the file's length: a device such as /dev/full reads
    // endlessly.
    let len = file.metadata()?.len();
    let mut line = Vec::new();
    std::io::BufReader::new(file.take(len)).read_until(b'\n', &mut line)?;
    let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
    Ok((!trimmed.is_empty()).then(|| trimmed.to_vec()))
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

/// The hash an event's line (without its newline) is chained by: the
/// `prev` of the event after it, and what an anchor signs.
pub fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// Checks a whole audit file's chain. Returns the number of events, or the
/// 1-based line number where the chain breaks.
pub fn verify(text: &str) -> Result<usize, usize> {
    let mut chain = Chain::default();
    for (i, line) in text.lines().enumerate() {
        chain.next(line).map_err(|_| i + 1)?;
    }
    Ok(chain.events)
}

/// Where a trail's chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file.
    pub file: PathBuf,
    /// 1-based line in it.
    pub line: usize,
    /// The `seq` the chain expected there.
    pub expected_seq: u64,
    /// What is wrong.
    pub why: ChainBreak,
}

/// What breaks a trail's hash chain at one line (or keeps it from being
/// read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The trail's files could not be found or listed.
    #[error("{0}")]
    Trail(TrailError),
    /// A file of the trail could not be read.
    #[error("cannot read it: {0}")]
    Unreadable(String),
    /// The line is not JSON.
    #[error("not a JSON event")]
    NotJson,
    /// A later sequence number than expected: events were removed.
    #[error("event {found} follows event {before}: events are missing")]
    Missing {
        /// The sequence number found.
        found: u64,
        /// The last one verified (-1 before the first).
        before: i64,
    },
    /// An earlier sequence number than expected.
    #[error("event {0} is out of order")]
    OutOfOrder(u64),
    /// The event has no `seq`.
    #[error("it has no sequence number")]
    NoSequence,
    /// `prev` is not the hash of the line before.
    #[error("it does not carry the hash of the event before: that event, or this one, was edited")]
    Edited,
}

/// Why the files of a trail cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrailError {
    /// A directory (or a file's folder) could not be read.
    #[error("cannot read {}: {why}", path.display())]
    Unreadable {
        /// The directory or file.
        path: PathBuf,
        /// What the operating system said.
        why: String,
    },
    /// A directory without a `*.jsonl` file.
    #[error("{} holds no `*.jsonl` audit trail", .0.display())]
    NoTrail(PathBuf),
    /// A directory with several trails: which one is meant is not known.
    #[error("{} holds several trails ({}); name one file", path.display(), names.join(", "))]
    Several {
        /// The directory.
        path: PathBuf,
        /// The trails' file names.
        names: Vec<String>,
    },
    /// The named trail does not exist.
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the chain breaks at {} line {} (event {}): {}",
            self.file.display(),
            self.line,
            self.expected_seq,
            self.why
        )
    }
}

/// A whole trail that verified: how many events and files, and the hash of
/// the last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Events.
    pub events: usize,
    /// Files.
    pub files: usize,
    /// SHA-256 of the last event (the genesis value for an empty trail).
    pub head: String,
}

#[derive(Default)]
struct Chain {
    prev: Option<String>,
    events: usize,
}

impl Chain {
    /// Checks the next line; on success it becomes the chain's head.
    fn next(&mut self, line: &str) -> Result<(), ChainBreak> {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|_| ChainBreak::NotJson)?;
        let prev = self.prev.as_deref().unwrap_or(GENESIS);
        let seq = value.get("seq").and_then(serde_json::Value::as_u64);
        if seq != Some(self.events as u64) {
            return Err(match seq {
                Some(found) if found > self.events as u64 => ChainBreak::Missing {
                    found,
                    before: self.events as i64 - 1,
                },
                Some(s) => ChainBreak::OutOfOrder(s),
                None => ChainBreak::NoSequence,
            });
        }
        if value.get("prev").and_then(serde_json::Value::as_str) != Some(prev) {
            return Err(ChainBreak::Edited);
        }
        self.prev = Some(hex::encode(Sha256::digest(line.as_bytes())));
        self.events += 1;
        Ok(())
    }
}

/// Checks a trail: a directory (every `*.jsonl` trail in it, with its
/// rotated files) or one file with the files rotated before it. Names the
/// first event that breaks the chain.
pub fn verify_trail(path: &Path) -> Result<Verified, Broken> {
    let files = trail_paths(path).map_err(|e| Broken {
        file: path.to_owned(),
        line: 0,
        expected_seq: 0,
        why: ChainBreak::Trail(e),
    })?;
    let mut chain = Chain::default();
    for file in &files {
        let text = read_text(file).map_err(|e| Broken {
            file: file.clone(),
            line: 0,
            expected_seq: chain.events as u64,
            why: ChainBreak::Unreadable(e.to_string()),
        })?;
        for (i, line) in text.lines().enumerate() {
            let expected_seq = chain.events as u64;
            chain.next(line).map_err(|why| Broken {
                file: file.clone(),
                line: i + 1,
                expected_seq,
                why,
            })?;
        }
    }
    Ok(Verified {
        events: chain.events,
        files: files.len(),
        head: chain.prev.unwrap_or_else(|| GENESIS.to_owned()),
    })
}

/// The files of the trail at `path` (a directory holding exactly one
/// trail, or the trail's current file), in chain order.
pub fn trail_paths(path: &Path) -> Result<Vec<PathBuf>, TrailError> {
    let current = if path.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| TrailError::Unreadable {
                path: path.to_owned(),
                why: e.to_string(),
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        names.sort();
        match names.as_slice() {
            [one] => one.clone(),
            [] => return Err(TrailError::NoTrail(path.to_owned())),
            _ => {
                return Err(TrailError::Several {
                    path: path.to_owned(),
                    names: names
                        .iter()
                        .filter_map(|n| n.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                        .collect(),
                });
            }
        }
    } else {
        path.to_owned()
    };
    let files = trail_files(&current).map_err(|e| TrailError::Unreadable {
        path: current.clone(),
        why: e.to_string(),
    })?;
    if files.is_empty() {
        return Err(TrailError::Missing(current));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trail at `path` that rotates past `max_file_bytes`.
    fn rotating(path: &Path, max_file_bytes: u64) -> AuditLog {
        AuditLog::open(
            path,
            Options {
                max_file_bytes,
                ..Options::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn chain_survives_reopen_and_detects_edits() {
        let dir = std::env::temp_dir().join(format!("clsf-audit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        {
            let log = AuditLog::open(&path, Options::default()).unwrap();
            log.append(&Event::new("connect", 1)).unwrap();
            log.append(&Event::new("statement", 1)).unwrap();
        }
        {
            let log = AuditLog::open(
                &path,
                Options {
                    fsync: true,
                    ..Options::default()
                },
            )
            .unwrap();
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

    #[test]
    fn rotation_continues_the_chain_and_verify_names_the_broken_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        {
            let log = rotating(&path, 300);
            for i in 0..10 {
                log.append(&Event::new("statement", i)).unwrap();
            }
        }
        {
            // Reopened right after a rotation: continues from the newest
            // rotated file.
            let log = rotating(&path, 300);
            log.append(&Event::new("disconnect", 1)).unwrap();
        }
        let files = trail_files(&path).unwrap();
        assert!(files.len() > 2, "{files:?}");
        let ok = verify_trail(dir.path()).unwrap();
        assert_eq!((ok.events, ok.files), (11, files.len()));
        assert_eq!(verify_trail(&path).unwrap(), ok);

        // One byte edited in the second file: named, with the line after it
        // (whose `prev` no longer matches) or the line itself.
        let second = files[1].clone();
        let original = std::fs::read_to_string(&second).unwrap();
        std::fs::write(&second, original.replacen("statement", "statemenT", 1)).unwrap();
        let broken = verify_trail(dir.path()).unwrap_err();
        assert_eq!(broken.file, second);
        assert_eq!(broken.why, ChainBreak::Edited, "{broken}");
        std::fs::write(&second, &original).unwrap();

        // A line deleted: the next event says events are missing.
        let kept: String = original.lines().skip(1).map(|l| format!("{l}\n")).collect();
        std::fs::write(&second, kept).unwrap();
        let broken = verify_trail(dir.path()).unwrap_err();
        assert_eq!((broken.file.clone(), broken.line), (second.clone(), 1));
        assert!(matches!(broken.why, ChainBreak::Missing { .. }), "{broken}");
        std::fs::write(&second, &original).unwrap();

        // A whole rotated file removed.
        std::fs::remove_file(&files[0]).unwrap();
        assert!(matches!(
            verify_trail(dir.path()).unwrap_err().why,
            ChainBreak::Missing { .. }
        ));
    }

    #[test]
    fn an_incomplete_last_line_stops_the_trail_from_being_continued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        AuditLog::open(&path, Options::default())
            .unwrap()
            .append(&Event::new("connect", 1))
            .unwrap();
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"seq\":1,\"prev");
        std::fs::write(&path, text).unwrap();
        let e = AuditLog::open(&path, Options::default()).unwrap_err();
        assert!(e.to_string().contains("incomplete"), "{e}");
    }

    fn events_in(path: &Path) -> Vec<serde_json::Value> {
        read_text(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_mapped_trail_reserves_room_and_is_trimmed_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Options::default()).unwrap();
        for i in 0..100 {
            log.append(&Event::new("statement", i)).unwrap();
        }
        // Reserved beyond the events, which readers see without the rest.
        let reserved = std::fs::metadata(&path).unwrap().len();
        let text = read_text(&path).unwrap();
        assert!(reserved > text.len() as u64, "{reserved}");
        assert_eq!(verify(&text), Ok(100));
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_mapped_trail_left_by_a_crash_is_continued_and_a_torn_event_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Options::default()).unwrap();
        for i in 0..3 {
            log.append(&Event::new("statement", i)).unwrap();
        }
        // A crash: nothing trims the reserved room.
        std::mem::forget(log);
        let events = read_text(&path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() > events.len() as u64);
        // And a crash in the middle of copying the next event.
        let mut bytes = std::fs::read(&path).unwrap();
        let torn = b"{\"seq\":3,\"prev\":\"ab";
        bytes[events.len()..events.len() + torn.len()].copy_from_slice(torn);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            read_text(&path).unwrap(),
            events,
            "readers skip the torn event"
        );

        let log = AuditLog::open(&path, Options::default()).unwrap();
        assert_eq!(log.append(&Event::new("disconnect", 1)).unwrap(), 3);
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(verify(&text), Ok(4));
        assert!(text.starts_with(&events));
        // Both modes continue each other's trails.
        let log = AuditLog::open(
            &path,
            Options {
                mode: Mode::Append,
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(log.append(&Event::new("connect", 2)).unwrap(), 4);
        drop(log);
        assert_eq!(events_in(&path).len(), 5);
        assert_eq!(verify(&std::fs::read_to_string(&path).unwrap()), Ok(5));
    }

    #[test]
    fn a_mapped_trail_rotates_into_trimmed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = rotating(&path, 400);
        for i in 0..20 {
            log.append(&Event::new("statement", i)).unwrap();
        }
        let files = trail_files(&path).unwrap();
        assert!(files.len() > 3, "{files:?}");
        for rotated in &files[..files.len() - 1] {
            let bytes = std::fs::read(rotated).unwrap();
            assert!(!bytes.contains(&0) && bytes.ends_with(b"\n"), "{rotated:?}");
        }
        assert_eq!(verify_trail(&path).unwrap().events, 20);
    }
}
