//! Shared state for several proxy replicas: approval requests and their
//! decisions in a PostgreSQL database (`[control_plane]`), so that an
//! approval given through one replica's admin API releases a statement
//! held on another. Each replica records the requests it holds, polls the
//! database for decisions on them, and writes back the ones it decides
//! itself (expired, withdrawn). Votes change a request with optimistic
//! concurrency (a version column), so two approvers voting at once on two
//! replicas cannot lose either vote.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

use crate::approvals::{self, Approvals, Approver, Request, State, StoreError, VoteError};

/// How often a replica asks for decisions on the requests it holds.
const POLL: Duration = Duration::from_millis(200);
/// Attempts at a vote that keeps meeting concurrent votes.
const VOTE_ATTEMPTS: usize = 20;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS clsf_approval_requests (
    id       text PRIMARY KEY,
    state    text NOT NULL,
    version  bigint NOT NULL DEFAULT 0,
    created  bigint NOT NULL,
    expires  bigint NOT NULL,
    request  jsonb NOT NULL
)";

/// A connection to the control plane's database, opened again when it
/// breaks (the database restarted or failed over): a replica must not need
/// a restart of its own to use the control plane once it is back.
pub struct ControlPlane {
    url: String,
    password: Option<String>,
    /// `None` until the first connection succeeds.
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").finish_non_exhaustive()
    }
}

/// Connects and creates the table if it is missing.
async fn open(url: &str, password: Option<&str>) -> Result<Client, StoreError> {
    let client = clsf_catalog::connect::connect_with(url, password)
        .await
        .map_err(|e| StoreError::Connect(e.0))?;
    client
        .batch_execute(SCHEMA)
        .await
        .map_err(StoreError::Database)?;
    Ok(client)
}

fn parse(text: &str) -> Result<Request, StoreError> {
    serde_json::from_str(text).map_err(StoreError::Json)
}

/// A pending request past its time is shown as expired (the replica that
/// holds it records that soon after).
fn as_seen(mut r: Request) -> Request {
    if r.state == State::Pending && approvals::unix_now() >= r.expires {
        r.state = State::Expired;
    }
    r
}

impl ControlPlane {
    /// Connects (TLS as the URL's `sslmode`/`sslrootcert` say) and creates
    /// the table if it is missing.
    pub async fn connect(url: &str, password: Option<&str>) -> Result<ControlPlane, StoreError> {
        let client = open(url, password).await?;
        Ok(ControlPlane {
            url: url.to_owned(),
            password: password.map(str::to_owned),
            client: tokio::sync::Mutex::new(Some(Arc::new(client))),
        })
    }

    /// A control plane not reached yet: the first use connects.
    pub fn unconnected(url: &str, password: Option<&str>) -> ControlPlane {
        ControlPlane {
            url: url.to_owned(),
            password: password.map(str::to_owned),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection, opened again if it broke. One caller reconnects at
    /// a time; the others wait for its result.
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut current = self.client.lock().await;
        match current.as_ref() {
            Some(client) if !client.is_closed() => Ok(Arc::clone(client)),
            _ => {
                let client = Arc::new(open(&self.url, self.password.as_deref()).await?);
                tracing::info!("control plane: connected");
                *current = Some(Arc::clone(&client));
                Ok(client)
            }
        }
    }

    /// Records a new request.
    pub async fn insert(&self, r: &Request) -> Result<(), StoreError> {
        let json = serde_json::to_string(r).map_err(StoreError::Json)?;
        self.client()
            .await?
            .execute(
                "INSERT INTO clsf_approval_requests (id, state, created, expires, request) \
                 VALUES ($1, $2, $3, $4, CAST($5 AS text)::jsonb)",
                &[
                    &r.id,
                    &r.state.name(),
                    &(r.created as i64),
                    &(r.expires as i64),
                    &json,
                ],
            )
            .await
            .map_err(StoreError::Database)?;
        Ok(())
    }

    /// Pending (or all) requests of every replica, newest first.
    pub async fn list(&self, all: bool) -> Result<Vec<Request>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT request::text FROM clsf_approval_requests \
                 WHERE $1 OR (state = 'pending' AND expires > $2) \
                 ORDER BY created DESC, id LIMIT 1000",
                &[&all, &(approvals::unix_now() as i64)],
            )
            .await
            .map_err(StoreError::Database)?;
        rows.iter()
            .map(|row| parse(row.get(0)).map(as_seen))
            .collect()
    }

    /// One request.
    pub async fn get(&self, id: &str) -> Result<Option<Request>, StoreError> {
        Ok(self.get_versioned(id).await?.map(|(r, _)| as_seen(r)))
    }

    async fn get_versioned(&self, id: &str) -> Result<Option<(Request, i64)>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT request::text, version FROM clsf_approval_requests WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(StoreError::Database)?;
        match row {
            Some(row) => Ok(Some((parse(row.get(0))?, row.get(1)))),
            None => Ok(None),
        }
    }

    /// Writes `r` if nobody changed it since `version` was read.
    async fn replace(&self, r: &Request, version: i64) -> Result<bool, StoreError> {
        let json = serde_json::to_string(r).map_err(StoreError::Json)?;
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE clsf_approval_requests \
                 SET request = CAST($1 AS text)::jsonb, state = $2, version = version + 1 \
                 WHERE id = $3 AND version = $4",
                &[&json, &r.state.name(), &r.id, &version],
            )
            .await
            .map_err(StoreError::Database)?;
        Ok(n == 1)
    }

    /// A vote on any replica's request.
    pub async fn vote(
        &self,
        id: &str,
        approver: &Approver,
        comment: &str,
        approve: bool,
    ) -> Result<Result<Request, VoteError>, StoreError> {
        for _ in 0..VOTE_ATTEMPTS {
            let Some((mut r, version)) = self.get_versioned(id).await? else {
                return Ok(Err(VoteError::NotFound));
            };
            if let Err(e) = approvals::apply_vote(&mut r, approver, comment, approve) {
                return Ok(Err(e));
            }
            if self.replace(&r, version).await? {
                return Ok(Ok(r));
            }
        }
        Err(StoreError::Contended)
    }

    /// Records that a pending request ended here (expired or withdrawn).
    pub async fn end(&self, id: &str, state: &State) -> Result<(), StoreError> {
        for _ in 0..VOTE_ATTEMPTS {
            let Some((mut r, version)) = self.get_versioned(id).await? else {
                return Ok(());
            };
            if r.state != State::Pending {
                return Ok(());
            }
            r.state = state.clone();
            if self.replace(&r, version).await? {
                return Ok(());
            }
        }
        Err(StoreError::Contended)
    }

    /// The decided ones among `ids`.
    async fn decided(&self, ids: &[String]) -> Result<Vec<Request>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT request::text FROM clsf_approval_requests \
                 WHERE id = ANY($1) AND state <> 'pending'",
                &[&ids],
            )
            .await
            .map_err(StoreError::Database)?;
        rows.iter().map(|row| parse(row.get(0))).collect()
    }
}

/// Every replica's requests, in the control plane's database.
impl approvals::SharedStore for ControlPlane {
    fn insert<'a>(&'a self, request: &'a Request) -> approvals::StoreFuture<'a, ()> {
        Box::pin(ControlPlane::insert(self, request))
    }

    fn end<'a>(&'a self, id: &'a str, state: &'a State) -> approvals::StoreFuture<'a, ()> {
        Box::pin(ControlPlane::end(self, id, state))
    }
}

impl approvals::ApprovalStore for ControlPlane {
    fn list(&self, all: bool) -> approvals::StoreFuture<'_, Vec<Request>> {
        Box::pin(ControlPlane::list(self, all))
    }

    fn get<'a>(&'a self, id: &'a str) -> approvals::StoreFuture<'a, Option<Request>> {
        Box::pin(ControlPlane::get(self, id))
    }

    fn vote<'a>(
        &'a self,
        id: &'a str,
        approver: &'a Approver,
        comment: &'a str,
        approve: bool,
    ) -> approvals::StoreFuture<'a, Result<Request, VoteError>> {
        Box::pin(ControlPlane::vote(self, id, approver, comment, approve))
    }
}

/// Connects the proxy's approvals to the control plane and keeps this
/// replica's held statements informed of decisions made anywhere.
pub async fn attach(
    approvals: Arc<Approvals>,
    url: &str,
    password: Option<&str>,
) -> Result<(), StoreError> {
    // A replica starts while the control plane is down (it runs the policy
    // on its disk); requests it files meanwhile are withdrawn, said so.
    let cp = match ControlPlane::connect(url, password).await {
        Ok(cp) => Arc::new(cp),
        Err(e) => {
            tracing::error!(error = %e, "control plane unreachable at start; held statements are withdrawn until it answers");
            Arc::new(ControlPlane::unconnected(url, password))
        }
    };
    approvals.attach(Arc::clone(&cp) as Arc<dyn approvals::SharedStore>);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::time::sleep(POLL).await;
            let ids = approvals.pending_ids();
            if ids.is_empty() {
                continue;
            }
            match cp.decided(&ids).await {
                Ok(decided) => {
                    failing = false;
                    for r in decided {
                        approvals.learn(r);
                    }
                }
                // Held statements keep waiting (and expire on time).
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "control plane unreachable; held statements wait for it to answer");
                }
                Err(_) => {}
            }
        }
    });
    Ok(())
}
