//! What the server answers: completions for the audit trail, row limits
//! cut at the proxy, and the order in which the client gets its replies.

use super::*;

impl Relay<'_> {
    /// Notes forwarded statements (by their events' `seq`) whose completion
    /// is to be audited; they belong to the segment now open.
    pub(super) fn started(&mut self, seqs: &[u64], limits: &[RowLimit], portal: Option<&[u8]>) {
        // Every forwarded statement is tracked, so completions pair up with
        // statements in order even when only some have a row limit.
        let now = std::time::Instant::now();
        for (i, &seq) in seqs.iter().enumerate() {
            self.inflight.push_back(Inflight {
                segment: self.segments_sent,
                seq,
                started: now,
                limit: limits.get(i).cloned().flatten(),
                portal: portal.map(<[u8]>::to_vec),
            });
        }
    }

    /// The statement at the head of the current segment completed.
    pub(super) fn completed(&mut self, outcome: &'static str, rows: Option<u64>) {
        let seen = std::mem::take(&mut self.rows_seen);
        let Some(front) = self.inflight.front() else {
            return;
        };
        if front.segment != self.segments_done {
            return;
        }
        let Some(done) = self.inflight.pop_front() else {
            return;
        };
        self.cut = false;
        if let Some(p) = done.portal.as_ref().and_then(|p| self.portals.get_mut(p)) {
            p.delivered += seen;
        }
        if !self.shared.audit_completions {
            return;
        }
        self.completions.push(Completion {
            statement_seq: done.seq,
            outcome,
            rows: rows.unwrap_or(seen),
            duration_ms: (done.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        });
    }

    pub(super) fn upstream_frame(&mut self, frame: Frame) {
        let kind = frame.backend();
        if kind == Backend::Error && is_fatal(frame.body()) {
            // Only the code: a server's message is not ours to record.
            self.upstream_fatal = Some(field(frame.body(), b'C').unwrap_or("?").to_owned());
        }
        if !self.tracker.response(kind) {
            return;
        }
        if !self.inflight.is_empty() {
            // The row limit of the statement now answering, if any
            // (borrowed: this runs for every row).
            let limit = self
                .inflight
                .front()
                .filter(|f| f.segment == self.segments_done)
                .and_then(|f| f.limit.as_ref());
            match kind {
                Backend::DataRow => {
                    if let Some((rows, _)) = limit
                        && self.rows_seen >= *rows
                    {
                        // Beyond the limit: dropped; the server finishes
                        // the statement (cancelling it would fail the
                        // client's transaction).
                        self.cut = true;
                        return;
                    }
                    self.rows_seen += 1;
                }
                Backend::CommandComplete | Backend::PortalSuspended if self.cut => {
                    // Say so, and end the result (a suspended portal too:
                    // it has nothing more to give) with the rows delivered.
                    let (rows, rule) = limit.cloned().unwrap_or_default();
                    let delivered = self.rows_seen;
                    self.to_client.extend_from_slice(&messages::error_response(
                        Severity::Notice,
                        "01000",
                        &format!(
                            "clsf: the result was cut to {rows} rows per statement by rule `{rule}`; {delivered} delivered"
                        ),
                        None,
                    ));
                    self.to_client
                        .extend_from_slice(&messages::command_complete(&format!(
                            "SELECT {delivered}"
                        )));
                    self.completed("ok", Some(delivered));
                    return;
                }
                Backend::CommandComplete => {
                    let tag = messages::decode_cstring_body(frame.body()).ok();
                    self.schema_changed |= tag.is_some_and(may_change_schema);
                    let rows = tag
                        .and_then(|tag| tag.rsplit(|b| *b == b' ').next())
                        .and_then(|n| std::str::from_utf8(n).ok())
                        .and_then(|n| n.parse().ok());
                    self.completed("ok", rows);
                }
                Backend::Error => self.completed("error", None),
                Backend::PortalSuspended => self.completed("suspended", None),
                Backend::EmptyQuery => self.completed("ok", Some(0)),
                _ => {}
            }
        }
        if kind == Backend::ReadyForQuery {
            self.segments_done += 1;
            // What the server skipped after an error never completes.
            while self
                .inflight
                .front()
                .is_some_and(|f| f.segment < self.segments_done)
            {
                self.inflight.pop_front();
            }
            self.rows_seen = 0;
        }
        self.to_client.extend_from_slice(&frame.raw);
        if kind == Backend::ReadyForQuery {
            if let Some(status) = frame.body().first().and_then(|b| TransactionStatus::of(*b)) {
                self.status = status;
            }
            // Committed (or rolled back): a column a migration through the
            // proxy added is found now, not at the next scheduled
            // comparison.
            if self.schema_changed && self.status == TransactionStatus::Idle {
                self.schema_changed = false;
                self.shared.schema_check.wake();
            }
            if matches!(self.pending.front(), Some(Pending::Upstream)) {
                self.pending.pop_front();
            }
            while let Some(Pending::Local(_)) = self.pending.front() {
                if let Some(Pending::Local(bytes)) = self.pending.pop_front() {
                    self.to_client.extend_from_slice(&bytes);
                }
            }
        }
    }
}

/// Whether a statement with this command tag may have changed the columns
/// of a relation: schema statements, and code that can run them (`DO`,
/// `CALL`). Others are far more frequent and cannot.
fn may_change_schema(tag: &[u8]) -> bool {
    [
        &b"ALTER "[..],
        b"CREATE ",
        b"DROP ",
        b"IMPORT ",
        b"DO",
        b"CALL",
    ]
    .iter()
    .any(|p| tag.starts_with(p))
}

/// A field of an ErrorResponse body, by its type byte.
fn field(body: &[u8], kind: u8) -> Option<&str> {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(&[kind]))
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Whether an ErrorResponse ends the session (severity FATAL or PANIC).
fn is_fatal(body: &[u8]) -> bool {
    matches!(
        field(body, b'V').or(field(body, b'S')),
        Some("FATAL" | "PANIC")
    )
}
