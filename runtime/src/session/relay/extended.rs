//! The extended query protocol: a `Parse` is decided (and a refusal
//! audited) once; its `Execute`s are audited and run what was decided.

use super::*;

impl Relay<'_> {
    /// A `Parse`: the statement is decided (and audited) here, once; its
    /// Binds and Executes then run what was decided.
    pub(super) fn parse(&mut self, frame: &Frame) -> Result<()> {
        if self.refused_until_sync {
            // The server is skipping to Sync after our refusal.
            self.to_upstream.extend_from_slice(&frame.raw);
            self.tracker.sent(Sent::ClientParse);
            return Ok(());
        }
        let Ok(parse) = messages::decode_parse(frame.body()) else {
            self.to_client
                .extend_from_slice(&errors::protocol_violation("malformed Parse message"));
            return Err(end("malformed Parse"));
        };
        let Ok(text) = std::str::from_utf8(parse.query) else {
            self.refuse_parse(&not_utf8());
            return Ok(());
        };
        self.refresh()?;
        let generation = self.loaded.generation;
        // The same text parsed again under the same name and policy is
        // decided as before: the plan, the access table and the claims a
        // decision depends on are those of this generation and session.
        let reused = self
            .statements
            .get(parse.name)
            .filter(|p| p.generation == generation && p.text.as_bytes() == parse.query)
            .map(|p| Arc::clone(&p.decided));
        let decided = match reused {
            Some(decided) => decided,
            None => {
                let decision = self.decide(text);
                if let Verdict::Deny(denial) = &decision.verdict {
                    // A refusal is recorded now; anything else with its
                    // first Execute (or at the Sync), before it runs.
                    let denial = match self.audit(text, &decision) {
                        Some(_) => denial.clone(),
                        None => audit_refusal(),
                    };
                    // The server keeps a named statement it already had (it
                    // never sees this Parse); its unnamed one becomes ours.
                    if parse.name.is_empty() {
                        self.statements.remove(parse.name);
                    }
                    self.refuse_parse(&denial);
                    return Ok(());
                }
                Arc::new(Decided::new(text, decision, generation))
            }
        };
        if let Some(report) = decided.report().filter(|r| r.object.is_some())
            && let Err(denial) = self.session_objects(std::slice::from_ref(report))
        {
            let decision = refused(
                Decision {
                    verdict: Verdict::Forward,
                    statements: vec![report.clone()],
                },
                denial.clone(),
            );
            let denial = match self.audit(text, &decision) {
                Some(_) => denial,
                None => audit_refusal(),
            };
            if parse.name.is_empty() {
                self.statements.remove(parse.name);
            }
            self.refuse_parse(&denial);
            return Ok(());
        }
        // Preparing a held statement is harmless: what it would read is
        // held at Execute, where the bound values are known. Denials never
        // get here (they are not kept).
        match rewritten(decided.verdict()) {
            Some(new_text) => {
                let raw = messages::parse(parse.name, new_text, parse.param_types);
                self.to_upstream.extend_from_slice(&raw);
            }
            None => self.to_upstream.extend_from_slice(&frame.raw),
        }
        let prepared = Arc::new(Prepared {
            decided,
            recorded: AtomicBool::new(false),
        });
        if self.unrecorded.len() >= MAX_UNRECORDED {
            // A client that never sends Sync must not grow this list.
            self.record_prepared();
        }
        self.unrecorded.push(prepared.clone());
        match self.statements.get_mut(parse.name) {
            Some(slot) => *slot = prepared,
            None => {
                self.statements.insert(parse.name.to_vec(), prepared);
            }
        }
        self.tracker.sent(Sent::ClientParse);
        Ok(())
    }

    /// An `Execute`: audited (with the statement decided at its Parse)
    /// before it is forwarded.
    pub(super) fn execute(&mut self, frame: &Frame) -> Result<()> {
        if self.refused_until_sync {
            self.to_upstream.extend_from_slice(&frame.raw);
            return Ok(());
        }
        self.refresh()?;
        let portal_name = frame.body().split(|b| *b == 0).next().unwrap_or_default();
        let portal = self.portals.get(portal_name);
        let params = portal.and_then(|p| p.params);
        let delivered = portal.map_or(0, |p| p.delivered);
        let Some(prepared) = portal.and_then(|p| p.prepared.clone()) else {
            // Every Parse and Bind passes through here, so this cannot
            // name a statement the proxy decided: refused, not guessed.
            self.refuse_parse(&refusals::unknown_portal());
            return Ok(());
        };
        let prepared = Some(&*prepared);
        // A statement prepared under an earlier policy runs only if the
        // policy in force decides it the same way.
        if let Some(p) = prepared
            && p.generation != self.loaded.generation
            && self.decide(&p.text).verdict != *p.verdict()
        {
            self.refuse_parse(&refusals::prepared_changed());
            return Ok(());
        }
        // A FETCH or EXECUTE is checked again when it runs: a portal of the
        // same name may have been bound since its Parse.
        if let Some(report) = prepared
            .and_then(|p| p.report())
            .filter(|r| r.object.is_some())
            && let Err(denial) = self.session_objects(std::slice::from_ref(report))
        {
            let text = report.text.clone();
            let decision = refused(
                Decision {
                    verdict: Verdict::Forward,
                    statements: vec![report.clone()],
                },
                denial.clone(),
            );
            let denial = match self.audit(&text, &decision) {
                Some(_) => denial,
                None => audit_refusal(),
            };
            self.refuse_parse(&denial);
            return Ok(());
        }
        // The statement's own event stands for its first execution.
        let seq = match prepared {
            Some(p) if !p.recorded.load(Ordering::Relaxed) => self.record(p),
            _ => {
                let mut event = Event::new("execute", self.session);
                event.subject = Some(&self.identity.subject);
                event.groups = Some(&self.identity.groups);
                event.statement = prepared.map(|p| p.text.as_str());
                event.decision = prepared.map(|p| p.decision);
                event.completed = (!self.completions.is_empty()).then_some(&self.completions[..]);
                let seq = self.shared.audit.append(&event).ok();
                if seq.is_some() {
                    self.completions.clear();
                }
                seq
            }
        };
        let Some(seq) = seq else {
            self.refuse_parse(&audit_refusal());
            return Ok(());
        };
        // A row limit counts what the portal already delivered.
        let limit = prepared
            .and_then(|p| p.row_limit.clone())
            .map(|(rows, rule)| (rows.saturating_sub(delivered), rule));
        let portal_name = portal_name.to_vec();
        if let Some(p) = prepared
            && let Verdict::Hold(hold) = p.verdict()
        {
            let mut hasher = Sha256::new();
            hasher.update(p.text.as_bytes());
            hasher.update([0]);
            hasher.update(params.unwrap_or_default());
            let hash = hex::encode(hasher.finalize());
            let (text, hold) = (p.text.clone(), (**hold).clone());
            self.hold(
                &text,
                hash,
                hold,
                Release::Execute(frame.raw.clone(), seq, limit, portal_name),
            );
            return Ok(());
        }
        self.started(&[seq], &[limit], Some(&portal_name));
        self.to_upstream.extend_from_slice(&frame.raw);
        Ok(())
    }

    /// Refuses a `Parse` by having the server raise the refusal in its place,
    /// so the error arrives in order and the server skips to `Sync` (and
    /// fails a transaction) exactly as after an error of its own.
    pub(super) fn refuse_parse(&mut self, denial: &Denial) {
        const PORTAL: &str = "__clsf_refusal";
        let raise = raise_statement(denial);
        self.to_upstream
            .extend_from_slice(&messages::parse(b"", &raise, &[0, 0]));
        self.to_upstream
            .extend_from_slice(&messages::bind_no_params(PORTAL, ""));
        self.to_upstream
            .extend_from_slice(&messages::execute(PORTAL));
        self.tracker.sent(Sent::OwnParse);
        self.tracker.sent(Sent::OwnBind);
        self.refused_until_sync = true;
    }
}

/// Statements prepared without a `Sync` after which their events are
/// written anyway (they are written at the `Sync` otherwise).
pub(super) const MAX_UNRECORDED: usize = 64;
