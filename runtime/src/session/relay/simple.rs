//! The simple query protocol: a `Query` is decided, audited, then
//! forwarded, rewritten, refused or held.

use super::*;

impl Relay<'_> {
    pub(super) fn query(&mut self, frame: &Frame) -> Result<()> {
        let Ok(raw_text) = messages::decode_cstring_body(frame.body()) else {
            self.to_client
                .extend_from_slice(&errors::protocol_violation("malformed Query message"));
            return Err(end("malformed query"));
        };
        let Ok(text) = std::str::from_utf8(raw_text) else {
            self.deny(&not_utf8());
            return Ok(());
        };
        self.refresh()?;
        let mut decision = self.decide(text);
        if !matches!(decision.verdict, Verdict::Deny(_))
            && let Err(denial) = self.session_objects(&decision.statements)
        {
            decision = Arc::new(refused(Arc::unwrap_or_clone(decision), denial));
        }
        let Some(seqs) = self.audit(text, &decision) else {
            self.local_error(errors::audit_unavailable());
            return Ok(());
        };
        match &decision.verdict {
            Verdict::Forward => {
                self.started(&seqs, &limits(&decision), None);
                self.forward(&frame.raw);
            }
            Verdict::Rewrite(new_text) => {
                self.started(&seqs, &limits(&decision), None);
                self.forward(&messages::query(new_text));
            }
            Verdict::Deny(denial) => self.deny(denial),
            Verdict::Hold(hold) => {
                let release = match &hold.then {
                    Verdict::Rewrite(new_text) => messages::query(new_text),
                    _ => frame.raw.clone(),
                };
                let hash = hex::encode(Sha256::digest(text.as_bytes()));
                let limits = limits(&decision);
                self.hold(
                    text,
                    hash,
                    (**hold).clone(),
                    Release::Query(release, seqs, limits),
                );
            }
        }
        Ok(())
    }

    /// Refuses a statement. Inside a transaction (or behind statements still
    /// running) the refusal is raised by the server itself, so the
    /// transaction fails there exactly as it would in PostgreSQL; otherwise
    /// the proxy answers directly.
    pub(super) fn deny(&mut self, denial: &Denial) {
        if self.pending.is_empty() && self.status != TransactionStatus::InTransaction {
            self.local_error(messages::error_response(
                Severity::Error,
                denial.sqlstate,
                &denial.message,
                denial.hint.as_deref(),
            ));
            return;
        }
        let raise = raise_statement(denial);
        self.forward(&messages::query(&raise));
    }
}

/// Each statement's row limit, in order (one entry for an empty string).
pub(super) fn limits(decision: &Decision) -> Vec<RowLimit> {
    if decision.statements.is_empty() {
        return vec![None];
    }
    decision
        .statements
        .iter()
        .map(|s| s.row_limit.clone())
        .collect()
}

/// `decision` refused for `denial`, with every statement's report saying so.
pub(super) fn refused(mut decision: Decision, denial: Denial) -> Decision {
    for r in &mut decision.statements {
        let f = r.findings_mut();
        f.decision = "deny";
        f.reason = Some(denial.message.clone());
    }
    decision.verdict = Verdict::Deny(denial);
    decision
}

/// The refusal of a statement text longer than `max_statement_bytes`,
/// recorded with the text's first 200 characters (the audit trail is not
/// a place for megabytes of one statement).
pub(super) fn too_long(text: &str, max: usize) -> Decision {
    let denial = refusals::too_long(text.len(), max);
    let head: String = text.chars().take(200).collect();
    Decision {
        statements: vec![clsf_engine::StatementReport::new(
            format!("{head}…"),
            clsf_engine::Findings {
                decision: "deny",
                reason: Some(denial.message.clone()),
                ..Default::default()
            },
        )],
        verdict: Verdict::Deny(denial),
    }
}

/// A statement that makes the server raise the denial. The texts travel
/// hex-encoded, so nothing in them (names come from the client's statement)
/// can escape the literal they are in.
pub(super) fn raise_statement(denial: &Denial) -> String {
    let hex = |s: &str| -> String { s.bytes().map(|b| format!("{b:02x}")).collect() };
    let text = |s: &str| format!("convert_from(decode('{}', 'hex'), 'UTF8')", hex(s));
    let sqlstate: String = denial
        .sqlstate
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let mut using = format!(
        "ERRCODE = '{sqlstate}', MESSAGE = {}",
        text(&denial.message)
    );
    if let Some(h) = &denial.hint {
        using.push_str(&format!(", HINT = {}", text(h)));
    }
    format!("DO $clsf$ BEGIN RAISE EXCEPTION USING {using}; END $clsf$")
}
