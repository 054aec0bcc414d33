//! The session's audit events: one per statement (with the completions
//! of earlier ones), per execution and per approval step.

use super::*;

impl Relay<'_> {
    /// An approval event of this session; false if it could not be written.
    pub(super) fn audit_approval(&self, kind: &str, request: &str, reason: Option<&str>) -> bool {
        let mut event = Event::new(kind, self.session);
        event.subject = Some(&self.identity.subject);
        event.request = Some(request);
        event.reason = reason;
        self.shared.audit.append(&event).is_ok()
    }

    /// Records every statement of a query string; their events' `seq`s,
    /// or `None` if that failed.
    pub(super) fn audit(
        &mut self,
        text: &str,
        decision: &clsf_engine::Decision,
    ) -> Option<Vec<u64>> {
        let done = std::mem::take(&mut self.completions);
        let seqs = self.audit_with(text, decision, &done);
        if seqs.is_none() {
            // Not recorded: they go on the next event instead.
            self.completions = done;
        }
        seqs
    }

    pub(super) fn audit_with(
        &self,
        text: &str,
        decision: &clsf_engine::Decision,
        done: &[Completion],
    ) -> Option<Vec<u64>> {
        let completed = (!done.is_empty()).then_some(done);
        for s in &decision.statements {
            self.shared.metrics.statement(s.decision);
        }
        if decision.statements.is_empty() {
            self.shared.metrics.statement("allow");
            let event = self.empty_event(text, completed);
            return self.shared.audit.append(&event).ok().map(|seq| vec![seq]);
        }
        // The text forwarded in place of the whole string, on its first
        // statement's event.
        let rewritten = rewritten(&decision.verdict);
        let mut seqs = Vec::with_capacity(decision.statements.len());
        for (i, s) in decision.statements.iter().enumerate() {
            let event = if i == 0 {
                self.report_event(s, rewritten, completed)
            } else {
                self.report_event(s, None, None)
            };
            seqs.push(self.shared.audit.append(&event).ok()?);
        }
        Some(seqs)
    }

    /// The `statement` event of a text without statements (allowed).
    pub(super) fn empty_event<'e>(
        &'e self,
        text: &'e str,
        completed: Option<&'e [Completion]>,
    ) -> Event<'e> {
        let mut event = Event::new("statement", self.session);
        event.subject = Some(&self.identity.subject);
        event.groups = Some(&self.identity.groups);
        event.statement = Some(text);
        event.decision = Some("allow");
        event.completed = completed;
        event
    }

    /// The `statement` event of one statement the engine reported on.
    pub(super) fn report_event<'e>(
        &'e self,
        s: &'e StatementReport,
        rewritten: Option<&'e str>,
        completed: Option<&'e [Completion]>,
    ) -> Event<'e> {
        let mut event = Event::new("statement", self.session);
        event.subject = Some(&self.identity.subject);
        event.groups = Some(&self.identity.groups);
        event.statement = Some(&s.text);
        event.decision = Some(s.decision);
        event.policies = Some(&s.policies);
        event.rules = (!s.rules.is_empty()).then_some(&s.rules[..]);
        event.columns = (!s.columns.is_empty()).then_some(Columns(&s.columns));
        event.masked = (!s.masked.is_empty()).then_some(&s.masked[..]);
        event.observed = (!s.observed.is_empty()).then_some(&s.observed[..]);
        event.reason = s.reason.as_deref();
        event.rewritten = rewritten;
        event.completed = completed;
        event
    }

    /// Writes a prepared statement's `statement` event (decided at its
    /// Parse) with what completed since the last event; its `seq`, or
    /// `None` if it could not be written (it stays unrecorded).
    pub(super) fn record(&mut self, p: &Prepared) -> Option<u64> {
        let rewritten = rewritten(p.verdict());
        let completed = (!self.completions.is_empty()).then_some(&self.completions[..]);
        let seq = match p.report() {
            Some(report) => {
                self.shared.metrics.statement(report.decision);
                self.shared
                    .audit
                    .append(&self.report_event(report, rewritten, completed))
            }
            None => {
                self.shared.metrics.statement("allow");
                self.shared
                    .audit
                    .append(&self.empty_event(&p.text, completed))
            }
        }
        .ok()?;
        self.completions.clear();
        p.recorded.store(true, Ordering::Relaxed);
        Some(seq)
    }

    /// Records the statements prepared since the last `Sync` that no
    /// `Execute` recorded (prepared and described, or never run). Nothing
    /// of theirs has run, so a failed write only leaves them to be
    /// recorded at their first `Execute`, which is refused without it.
    pub(super) fn record_prepared(&mut self) {
        for p in std::mem::take(&mut self.unrecorded) {
            if !p.recorded.load(Ordering::Relaxed) {
                let _ = self.record(&p);
            }
        }
    }
}

/// The text forwarded in place of the client's, when a verdict rewrote it.
pub(super) fn rewritten(verdict: &Verdict) -> Option<&str> {
    match verdict {
        Verdict::Rewrite(t) => Some(t.as_str()),
        Verdict::Hold(h) => match &h.then {
            Verdict::Rewrite(t) => Some(t.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// The refusal of a statement whose audit event could not be written.
pub(super) fn audit_refusal() -> Denial {
    refusals::audit_unavailable()
}
