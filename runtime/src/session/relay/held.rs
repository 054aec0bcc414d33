//! Statements held for approval: the request, the notice to the client,
//! and what an approval, a denial or an expiry does.

use super::*;

impl Relay<'_> {
    /// Holds a statement for approval: unless an earlier approval still
    /// covers it, files a request, tells the client (a NoticeResponse with
    /// the request id, what is asked, who may approve and where), and stops
    /// reading the client's pipeline until the request is decided.
    pub(super) fn hold(&mut self, text: &str, hash: String, hold: Hold, release: Release) {
        let policies: Vec<String> = hold.needs.iter().map(|n| n.policy_id.clone()).collect();
        let now = tokio::time::Instant::now();
        self.grants
            .retain(|g| g.remaining > 0 && g.until.is_none_or(|u| now < u));
        if let Some(g) = self.grants.iter_mut().find(|g| {
            policies.iter().all(|p| g.policies.contains(p))
                && g.hash.as_ref().is_none_or(|h| *h == hash)
        }) {
            g.remaining -= 1;
            let request = g.request.clone();
            if !self.audit_approval("approval_grant_used", &request, None) {
                self.release_refused(release, &audit_refusal());
                return;
            }
            self.release(release);
            return;
        }
        let Some(url) = self.shared.approval_url.clone() else {
            let denial = refusals::no_approvals(&hold.approvers_text(), policies);
            self.release_refused(release, &denial);
            return;
        };
        let created = approvals::unix_now();
        let request = approvals::Request {
            id: String::new(),
            session: self.session,
            subject: self.identity.subject.clone(),
            groups: self.identity.groups.clone(),
            claims: self.proven.shown_claims(),
            statement: text.to_owned(),
            statement_hash: hash.clone(),
            touches: hold.touches.clone(),
            scope: hold.scope_text(),
            approvers: hold.approvers_text(),
            needs: hold
                .needs
                .iter()
                .map(|n| approvals::NeedState {
                    rule: n.rule.clone(),
                    clause: n.clause.clone(),
                    approvers: n.approvers.clone(),
                    quorum: n.quorum,
                    approved_by: Vec::new(),
                })
                .collect(),
            created,
            expires: created + hold.ttl_seconds,
            state: State::Pending,
            votes: Vec::new(),
        };
        let (id, rx) = self.shared.approvals.submit(request);
        self.shared.metrics.approvals_pending.inc();
        if !self.audit_approval("approval_requested", &id, None) {
            self.shared.approvals.end(
                &id,
                State::Withdrawn {
                    reason: "the audit trail could not be written".to_owned(),
                },
            );
            self.release_refused(release, &audit_refusal());
            return;
        }
        let rules: Vec<&str> = hold.needs.iter().map(|n| n.rule.as_str()).collect();
        let notice = format!(
            "clsf: statement held for approval, request {id}: it reads {} and needs approval by {} (rule {}); one approval releases {}. Approve at {url}/#{id} or with `clsf-proxy approvals approve {id}`. The request expires in {} s; cancel the statement to withdraw it.",
            if hold.touches.is_empty() {
                "what rule approval covers".to_owned()
            } else {
                hold.touches.join(", ")
            },
            hold.approvers_text(),
            rules.join(", "),
            hold.scope_text(),
            hold.ttl_seconds,
        );
        // A NoticeResponse may arrive at any time, so it need not wait for
        // the statements still owed before it.
        self.to_client.extend_from_slice(&messages::error_response(
            Severity::Notice,
            "01000",
            &notice,
            None,
        ));
        self.held = Some(Held {
            id,
            rx,
            until: approvals::deadline(created + hold.ttl_seconds),
            release,
            hold,
            hash,
        });
    }

    /// The held statement's request was decided (or expired): run it, or
    /// refuse it with the reason; either way the session goes on.
    pub(super) fn settle(&mut self, state: State) {
        let Some(h) = self.held.take() else {
            return;
        };
        let m = &self.shared.metrics;
        m.approvals_pending.dec();
        let waited = h.hold.ttl_seconds as f64
            - h.until
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs_f64();
        m.approval_wait_seconds.observe(waited.max(0.0));
        let state = if state == State::Expired {
            // The waiting side decides expiry; the store learns it here.
            self.shared.approvals.end(&h.id, State::Expired);
            // An approval that raced the deadline still wins.
            self.shared
                .approvals
                .get(&h.id)
                .map_or(State::Expired, |r| r.state)
        } else {
            state
        };
        let needs = || h.hold.needs.iter().map(|n| n.policy_id.clone()).collect();
        let denial = match &state {
            State::Approved => {
                let policies = h.hold.needs.iter().map(|n| n.policy_id.clone()).collect();
                match h.hold.scope {
                    clsf_engine::ApprovalScope::Statement => {}
                    clsf_engine::ApprovalScope::Executions(n) => self.grants.push(Grant {
                        policies,
                        hash: Some(h.hash.clone()),
                        remaining: n.saturating_sub(1),
                        until: None,
                        request: h.id.clone(),
                    }),
                    clsf_engine::ApprovalScope::Session(secs) => self.grants.push(Grant {
                        policies,
                        hash: None,
                        remaining: u64::MAX,
                        until: Some(
                            tokio::time::Instant::now() + std::time::Duration::from_secs(secs),
                        ),
                        request: h.id.clone(),
                    }),
                }
                self.shared.metrics.approval("approved");
                if !self.audit_approval("approval_released", &h.id, None) {
                    self.release_refused(h.release, &audit_refusal());
                    return;
                }
                self.release(h.release);
                return;
            }
            State::Denied { by, comment } => refusals::approval_denied(&h.id, by, comment, needs()),
            State::Expired | State::Pending => {
                refusals::approval_expired(&h.id, h.hold.ttl_seconds, needs())
            }
            State::Withdrawn { reason } => refusals::approval_withdrawn(&h.id, reason, needs()),
        };
        self.shared.metrics.approval(state.name());
        let why = format!("{}: {}", state.name(), denial.message);
        // Refused either way: a failed audit write changes nothing here.
        let _ = self.audit_approval("approval_refused", &h.id, Some(&why));
        self.release_refused(h.release, &denial);
    }

    /// Runs a held statement.
    pub(super) fn release(&mut self, release: Release) {
        match release {
            Release::Query(bytes, seqs, limits) => {
                self.started(&seqs, &limits, None);
                self.forward(&bytes);
            }
            Release::Execute(bytes, seq, limit, portal) => {
                self.started(&[seq], &[limit], Some(&portal));
                self.to_upstream.extend_from_slice(&bytes);
            }
        }
    }

    /// Refuses a held statement the way its protocol expects.
    pub(super) fn release_refused(&mut self, release: Release, denial: &Denial) {
        match release {
            Release::Query(..) => self.deny(denial),
            Release::Execute(..) => self.refuse_parse(denial),
        }
    }
}
