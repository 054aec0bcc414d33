//! Approval requests for held statements: created by the session that holds
//! the statement, decided by approvers through the admin API, and watched
//! by the waiting session. A request is approved once every approval clause
//! it needs has its quorum of distinct approvers from the clause's group;
//! one denial ends it. The requester can never approve their own request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum State {
    /// Waiting for approvers.
    Pending,
    /// Every need has its quorum.
    Approved,
    /// An approver refused it.
    Denied {
        /// Who refused.
        by: String,
        /// Their comment.
        comment: String,
    },
    /// Nobody decided within the time to live.
    Expired,
    /// The client cancelled the statement or went away.
    Withdrawn {
        /// Why.
        reason: String,
    },
}

impl State {
    /// The state's name: `pending`, `approved`, `denied`, `expired`, `withdrawn`.
    pub fn name(&self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied { .. } => "denied",
            State::Expired => "expired",
            State::Withdrawn { .. } => "withdrawn",
        }
    }
}

/// One approval clause a request needs, and the approvals it has.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NeedState {
    /// The rule's name.
    pub rule: String,
    /// The clause as written, with its location.
    pub clause: String,
    /// The approver group.
    pub approvers: String,
    /// Distinct approvers needed.
    pub quorum: u64,
    /// Who approved so far (subjects).
    pub approved_by: Vec<String>,
}

/// A vote cast on a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Vote {
    /// The approver's subject.
    pub approver: String,
    /// `approve` or `deny`.
    pub verdict: String,
    /// Their comment.
    pub comment: String,
    /// Unix seconds.
    pub at: u64,
}

/// What a held statement asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Request id (random, URL-safe).
    pub id: String,
    /// The proxy session holding the statement.
    pub session: u64,
    /// The requesting identity's subject.
    pub subject: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// A subset of its verified claims (`iss`, `sub`, `aud` and the claims
    /// its groups look at are enough to tell who asked).
    pub claims: serde_json::Value,
    /// The statement as the client sent it.
    pub statement: String,
    /// SHA-256 of the statement's bytes and bound parameters.
    pub statement_hash: String,
    /// Columns it touches with their labels (`schema.table.column: label`).
    pub touches: Vec<String>,
    /// What one approval releases, in words.
    pub scope: String,
    /// Who must approve, in words.
    pub approvers: String,
    /// The clauses it needs.
    pub needs: Vec<NeedState>,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds after which it expires.
    pub expires: u64,
    /// Where it stands.
    #[serde(flatten)]
    pub state: State,
    /// Every vote, in order.
    pub votes: Vec<Vote>,
}

/// Why an approver's vote was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoteError {
    /// No such request.
    NotFound,
    /// It is no longer pending (`approved`, `denied`, …).
    NotPending(&'static str),
    /// The requester tried to approve their own request.
    OwnRequest,
    /// The approver is in none of the groups that may approve it.
    NotAnApprover(String),
    /// This approver has already approved it.
    AlreadyApproved,
}

impl std::fmt::Display for VoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VoteError::NotFound => write!(f, "no such approval request"),
            VoteError::NotPending(s) => write!(f, "the request is already {s}"),
            VoteError::OwnRequest => write!(f, "nobody may approve their own request"),
            VoteError::NotAnApprover(groups) => {
                write!(f, "only members of {groups} may decide this request")
            }
            VoteError::AlreadyApproved => write!(f, "you have already approved this request"),
        }
    }
}

/// Who is voting: the approver's subject and groups under the policy in force.
#[derive(Debug, Clone)]
pub struct Approver {
    /// Subject (the token's `sub`).
    pub subject: String,
    /// Groups under the policy in force.
    pub groups: Vec<String>,
}

struct Entry {
    request: Request,
    state: watch::Sender<State>,
}

/// Every request this proxy knows, pending and decided (decided ones are
/// kept for an hour so their outcome can still be looked up). With a
/// control plane, requests are also recorded in its database, where any
/// replica's admin API lists and decides them; this proxy learns the
/// decisions on its own requests from there (see `control_plane`).
#[derive(Default)]
pub struct Approvals {
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    control: std::sync::OnceLock<Arc<dyn SharedStore>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals").finish_non_exhaustive()
    }
}

/// How long decided requests stay listed.
const KEEP_DECIDED: u64 = 3600;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random request id: 16 bytes from the operating system, hex-encoded.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}

impl Approvals {
    /// Files a request; returns its id and a receiver that sees its state change.
    pub fn submit(&self, mut request: Request) -> (String, watch::Receiver<State>) {
        request.id = new_id();
        request.state = State::Pending;
        let (tx, rx) = watch::channel(State::Pending);
        let id = request.id.clone();
        let mut entries = self.lock();
        let now = unix_now();
        entries.retain(|_, e| {
            e.request.state == State::Pending || e.request.expires + KEEP_DECIDED > now
        });
        let copy = self
            .control
            .get()
            .map(|cp| (Arc::clone(cp), request.clone()));
        entries.insert(id.clone(), Entry { request, state: tx });
        drop(entries);
        if let Some((cp, request)) = copy {
            // Recorded off the statement's path; if the control plane cannot
            // take it, no other replica could ever approve it: withdrawn.
            let entries = Arc::clone(&self.entries);
            tokio::spawn(async move {
                if let Err(e) = cp.insert(&request).await {
                    tracing::warn!(error = %e, "control plane");
                    let mut map = entries.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(entry) = map.get_mut(&request.id)
                        && entry.request.state == State::Pending
                    {
                        set(
                            entry,
                            State::Withdrawn {
                                reason: "the control plane could not record the request".to_owned(),
                            },
                        );
                    }
                }
            });
        }
        (id, rx)
    }

    /// Records requests in a store shared by replicas (the control plane's
    /// database) from now on.
    pub fn attach(&self, cp: Arc<dyn SharedStore>) {
        let _ = self.control.set(cp);
    }

    /// Ids of this proxy's pending requests.
    pub fn pending_ids(&self) -> Vec<String> {
        self.lock()
            .values()
            .filter(|e| e.request.state == State::Pending)
            .map(|e| e.request.id.clone())
            .collect()
    }

    /// Takes a decision made elsewhere (another replica's admin API) for
    /// one of this proxy's pending requests.
    pub fn learn(&self, decided: Request) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(&decided.id)
            && entry.request.state == State::Pending
            && decided.state != State::Pending
        {
            let state = decided.state.clone();
            entry.request = decided;
            set(entry, state);
        }
    }

    /// Where requests are listed and decided: the control plane's
    /// database when one is attached (every replica's requests), else
    /// this proxy's memory.
    pub fn store(&self) -> &dyn ApprovalStore {
        match self.control.get() {
            Some(cp) => cp.as_ref() as &dyn ApprovalStore,
            None => self,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Requests, newest first; only pending ones unless `all`.
    pub fn list(&self, all: bool) -> Vec<Request> {
        self.expire_due();
        let entries = self.lock();
        let mut out: Vec<Request> = entries
            .values()
            .filter(|e| all || e.request.state == State::Pending)
            .map(|e| e.request.clone())
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        out
    }

    /// One request.
    pub fn get(&self, id: &str) -> Option<Request> {
        self.expire_due();
        self.lock().get(id).map(|e| e.request.clone())
    }

    /// Marks pending requests past their time as expired.
    fn expire_due(&self) {
        let now = unix_now();
        let mut entries = self.lock();
        for e in entries.values_mut() {
            if e.request.state == State::Pending && now >= e.request.expires {
                set(e, State::Expired);
            }
        }
    }

    /// A vote on one of this proxy's requests (`approve` false: a denial,
    /// which ends it); approved once every need has its quorum.
    pub fn vote(
        &self,
        id: &str,
        approver: &Approver,
        comment: &str,
        approve: bool,
    ) -> Result<Request, VoteError> {
        self.expire_due();
        let mut entries = self.lock();
        let entry = entries.get_mut(id).ok_or(VoteError::NotFound)?;
        let next = apply_vote(&mut entry.request, approver, comment, approve)?;
        set(entry, next);
        Ok(entry.request.clone())
    }

    /// Ends a pending request because its statement is no longer waiting
    /// (expired, cancelled, or the client went away). Returns false when it
    /// had already been decided.
    pub fn end(&self, id: &str, state: State) -> bool {
        let mut entries = self.lock();
        match entries.get_mut(id) {
            Some(e) if e.request.state == State::Pending => {
                set(e, state.clone());
                if let Some(cp) = self.control.get() {
                    let (cp, id) = (Arc::clone(cp), id.to_owned());
                    tokio::spawn(async move {
                        if let Err(e) = cp.end(&id, &state).await {
                            tracing::warn!(error = %e, "control plane");
                        }
                    });
                }
                true
            }
            _ => false,
        }
    }

    /// Withdraws the pending request of a session (its client sent a cancel).
    pub fn withdraw_session(&self, session: u64, reason: &str) -> Option<String> {
        let mut entries = self.lock();
        let entry = entries
            .values_mut()
            .find(|e| e.request.session == session && e.request.state == State::Pending)?;
        set(
            entry,
            State::Withdrawn {
                reason: reason.to_owned(),
            },
        );
        Some(entry.request.id.clone())
    }
}

/// Why a store itself failed (its database did not answer, or holds
/// something unreadable); never a refused vote, which is a [`VoteError`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The control plane's database could not be reached or logged into.
    #[error("control plane: {0}")]
    Connect(String),
    /// A query failed (the connection broke, or the database refused it).
    #[error("control plane: {}", database_message(.0))]
    Database(#[source] tokio_postgres::Error),
    /// A stored request does not decode, or one could not be encoded.
    #[error("control plane: a stored request is unreadable: {0}")]
    Json(#[source] serde_json::Error),
    /// Concurrent votes kept changing the request under this one.
    #[error("control plane: the request kept changing; vote again")]
    Contended,
}

/// PostgreSQL's own message when it sent one (not the client library's
/// wrapping of it).
fn database_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => d.message().to_owned(),
        None => e.to_string(),
    }
}

/// A boxed future of a store operation; `Err` when the store itself
/// failed, never for a refused vote.
pub type StoreFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where approval requests are listed and voted on: this proxy's memory
/// (`Approvals`) or the control plane's database shared by replicas
/// (`ControlPlane`). The admin API uses one through [`Approvals::store`]
/// and does not know which.
pub trait ApprovalStore: Send + Sync {
    /// Pending (or all) requests, newest first.
    fn list(&self, all: bool) -> StoreFuture<'_, Vec<Request>>;
    /// One request.
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Request>>;
    /// A vote (`approve` false: a denial); the rules of [`apply_vote`].
    fn vote<'a>(
        &'a self,
        id: &'a str,
        approver: &'a Approver,
        comment: &'a str,
        approve: bool,
    ) -> StoreFuture<'a, Result<Request, VoteError>>;
}

/// A store shared by replicas (the control plane's database): besides
/// listing and voting, it records each replica's requests and how they
/// ended, so that any replica can decide them.
pub trait SharedStore: ApprovalStore {
    /// Records a new pending request.
    fn insert<'a>(&'a self, request: &'a Request) -> StoreFuture<'a, ()>;
    /// Ends a pending request whose statement no longer waits.
    fn end<'a>(&'a self, id: &'a str, state: &'a State) -> StoreFuture<'a, ()>;
}

/// This proxy's own requests, in memory.
impl ApprovalStore for Approvals {
    fn list(&self, all: bool) -> StoreFuture<'_, Vec<Request>> {
        let out = Approvals::list(self, all);
        Box::pin(async move { Ok(out) })
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Request>> {
        let out = Approvals::get(self, id);
        Box::pin(async move { Ok(out) })
    }

    fn vote<'a>(
        &'a self,
        id: &'a str,
        approver: &'a Approver,
        comment: &'a str,
        approve: bool,
    ) -> StoreFuture<'a, Result<Request, VoteError>> {
        let out = Approvals::vote(self, id, approver, comment, approve);
        Box::pin(async move { Ok(out) })
    }
}

/// Applies a vote to a pending request and returns its next state: the
/// rules (no self-approval, only the needed groups, distinct approvers per
/// quorum, one denial ends it) in one place for both stores.
pub fn apply_vote(
    r: &mut Request,
    approver: &Approver,
    comment: &str,
    approve: bool,
) -> Result<State, VoteError> {
    if r.state == State::Pending && unix_now() >= r.expires {
        r.state = State::Expired;
    }
    if r.state != State::Pending {
        return Err(VoteError::NotPending(r.state.name()));
    }
    if approver.subject == r.subject {
        return Err(VoteError::OwnRequest);
    }
    let mine: Vec<usize> = (0..r.needs.len())
        .filter(|&i| approver.groups.contains(&r.needs[i].approvers))
        .collect();
    if mine.is_empty() {
        let mut groups: Vec<String> = r
            .needs
            .iter()
            .map(|n| format!("`{}`", n.approvers))
            .collect();
        groups.dedup();
        return Err(VoteError::NotAnApprover(groups.join(" or ")));
    }
    if approve
        && mine
            .iter()
            .all(|&i| r.needs[i].approved_by.contains(&approver.subject))
    {
        return Err(VoteError::AlreadyApproved);
    }
    r.votes.push(Vote {
        approver: approver.subject.clone(),
        verdict: if approve { "approve" } else { "deny" }.to_owned(),
        comment: comment.to_owned(),
        at: unix_now(),
    });
    let next = if approve {
        for &i in &mine {
            if !r.needs[i].approved_by.contains(&approver.subject) {
                r.needs[i].approved_by.push(approver.subject.clone());
            }
        }
        let done = r
            .needs
            .iter()
            .all(|n| n.approved_by.len() as u64 >= n.quorum);
        if done {
            State::Approved
        } else {
            State::Pending
        }
    } else {
        State::Denied {
            by: approver.subject.clone(),
            comment: comment.to_owned(),
        }
    };
    r.state = next.clone();
    Ok(next)
}

fn set(entry: &mut Entry, state: State) {
    entry.request.state = state.clone();
    // Nobody may be waiting any more (the session ended); that is fine.
    let _ = entry.state.send(state);
}

/// Waits until the request leaves `pending` or `until` passes.
pub async fn wait(rx: &mut watch::Receiver<State>, until: tokio::time::Instant) -> State {
    loop {
        let now = rx.borrow().clone();
        if now != State::Pending {
            return now;
        }
        match tokio::time::timeout_at(until, rx.changed()).await {
            Ok(Ok(())) => {}
            // The store dropped the sender: treat as expired (fail closed).
            Ok(Err(_)) | Err(_) => return State::Expired,
        }
    }
}

/// Seconds from now until `expires` (Unix seconds), as a deadline.
pub fn deadline(expires: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(expires.saturating_sub(unix_now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(needs: &[(&str, u64)]) -> Request {
        Request {
            id: String::new(),
            session: 7,
            subject: "agent".into(),
            groups: vec!["agents".into()],
            claims: serde_json::json!({"sub": "agent"}),
            statement: "SELECT ssn FROM customers".into(),
            statement_hash: "h".into(),
            touches: vec![],
            scope: "this statement once".into(),
            approvers: String::new(),
            needs: needs
                .iter()
                .map(|(g, q)| NeedState {
                    rule: "r".into(),
                    clause: "c".into(),
                    approvers: (*g).into(),
                    quorum: *q,
                    approved_by: vec![],
                })
                .collect(),
            created: unix_now(),
            expires: unix_now() + 60,
            state: State::Pending,
            votes: vec![],
        }
    }

    fn who(subject: &str, groups: &[&str]) -> Approver {
        Approver {
            subject: subject.into(),
            groups: groups.iter().map(|g| (*g).into()).collect(),
        }
    }

    #[test]
    fn quorum_needs_distinct_approvers_from_each_group() {
        let a = Approvals::default();
        let (id, rx) = a.submit(request(&[("oncall", 2), ("leads", 1)]));
        let alice = who("alice", &["oncall"]);
        assert_eq!(
            a.vote(&id, &alice, "ok", true).unwrap().state,
            State::Pending
        );
        assert_eq!(
            a.vote(&id, &alice, "again", true).err(),
            Some(VoteError::AlreadyApproved)
        );
        a.vote(&id, &who("bob", &["oncall", "leads"]), "ok", true)
            .unwrap();
        assert_eq!(*rx.borrow(), State::Approved);
        assert_eq!(
            a.vote(&id, &who("carol", &["oncall"]), "", true).err(),
            Some(VoteError::NotPending("approved"))
        );
    }

    #[test]
    fn self_approval_and_outsiders_are_refused() {
        let a = Approvals::default();
        let (id, rx) = a.submit(request(&[("oncall", 1)]));
        assert_eq!(
            a.vote(&id, &who("agent", &["oncall"]), "", true).err(),
            Some(VoteError::OwnRequest)
        );
        assert!(matches!(
            a.vote(&id, &who("eve", &["agents"]), "", true),
            Err(VoteError::NotAnApprover(_))
        ));
        assert_eq!(*rx.borrow(), State::Pending);
        a.vote(&id, &who("bob", &["oncall"]), "not now", false)
            .unwrap();
        assert_eq!(rx.borrow().name(), "denied");
        assert!(
            !a.end(&id, State::Expired),
            "a decided request stays decided"
        );
    }

    #[test]
    fn a_cancel_withdraws_the_sessions_pending_request() {
        let a = Approvals::default();
        let (id, rx) = a.submit(request(&[("oncall", 1)]));
        assert_eq!(a.withdraw_session(7, "cancelled").as_deref(), Some(&id[..]));
        assert_eq!(rx.borrow().name(), "withdrawn");
        assert_eq!(a.withdraw_session(7, "cancelled"), None);
        assert!(a.list(false).is_empty());
        assert_eq!(a.list(true).len(), 1);
    }
}
