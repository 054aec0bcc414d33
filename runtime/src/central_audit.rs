//! The audit trail's central copy in the control plane
//! (`[control_plane] audit`): every event a replica writes to its own
//! trail is copied, in order, into `clsf_audit_events` under the
//! replica's name, and (with `anchor_key`) the chain's head is signed and
//! written to `clsf_audit_anchors` every few seconds.
//!
//! Back-pressure: the local trail stays the one written before a statement
//! is forwarded; the copy is made afterwards and may lag (`clsf_audit_
//! central_lag`, in events). Lines reach the shipper through a bounded
//! channel that a statement never waits on; when it overflows, or after
//! the control plane was away, the shipper reads the missing events from
//! the local files. Nothing is lost while the local trail survives.
//!
//! The tables are an administrator's: the proxy's role gets `INSERT` and
//! `SELECT` only ([`SETUP`]), so a replica cannot rewrite what it shipped,
//! and an anchor, signed by a key the trail does not hold, shows a local
//! trail rewritten whole (`clsf-proxy audit verify TRAIL --control-plane
//! URL --replica NAME`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clsf_compiler::signing::{PublicKey, SecretKey};
use tokio_postgres::Client;

use crate::audit::{self, GENESIS, Tapped};
use crate::session::Shared;

/// The tables, for an administrator to create (the proxy does not), and
/// the grants the proxy's role needs: insert and read, never update or
/// delete. `PROXY_ROLE` stands for that role.
pub const SETUP: &str = "CREATE TABLE clsf_audit_events (
    replica text NOT NULL,
    seq bigint NOT NULL,
    line text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, seq)
);
CREATE TABLE clsf_audit_anchors (
    replica text NOT NULL,
    seq bigint NOT NULL,
    head text NOT NULL,
    signature text NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (replica, seq)
);
GRANT SELECT, INSERT ON clsf_audit_events, clsf_audit_anchors TO PROXY_ROLE;";

/// Events sent in one statement.
const BATCH: usize = 500;

/// Lines waiting for the shipper before it falls back to the files.
pub const CAPACITY: usize = 8192;

/// How long the shipper waits before connecting again.
const RETRY: Duration = Duration::from_secs(1);

/// What a replica ships, and as whom.
#[derive(Debug)]
pub struct Shipping {
    /// The control plane's URL.
    pub url: String,
    /// Its password, when not in the URL.
    pub password: Option<String>,
    /// This replica's name.
    pub replica: String,
    /// The key anchors are signed with.
    pub anchor_key: Option<SecretKey>,
    /// Time between anchors.
    pub anchor_every: Duration,
}

/// Why shipping stopped for a while (it is tried again).
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The control plane could not be reached or logged into.
    #[error("{0}")]
    Connect(#[from] clsf_catalog::PullError),
    /// A statement failed (a missing table or grant says so here).
    #[error("{}", database(.0))]
    Database(#[from] tokio_postgres::Error),
    /// The local trail could not be read to catch up.
    #[error("{0}")]
    Trail(String),
    /// The control plane holds another chain under this replica's name.
    #[error(
        "the control plane's event {seq} for replica `{replica}` is not this trail's: another trail ships under this name (give this replica a name of its own), or this trail's older files are gone"
    )]
    Conflict {
        /// The replica's name.
        replica: String,
        /// The first event that differs.
        seq: u64,
    },
}

fn database(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(
        || e.to_string(),
        |d| format!("control plane: {}", d.message()),
    )
}

/// The message an anchor signs.
fn anchor_message(replica: &str, seq: u64, head: &str) -> Vec<u8> {
    format!("clsf-audit-anchor/1 {replica} {seq} {head}").into_bytes()
}

/// Copies the trail's events to the control plane for as long as the proxy
/// runs.
pub async fn ship(shared: Arc<Shared>, mut tapped: Tapped, shipping: Shipping) {
    let mut reported: Option<String> = None;
    loop {
        match session(&shared, &mut tapped, &shipping).await {
            Ok(()) => return,
            Err(e) => {
                let text = e.to_string();
                if reported.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "central audit: events stay in the local trail until the control plane takes them");
                    reported = Some(text);
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The shipper's position: the last event the control plane holds.
struct Position {
    /// Its sequence number (`None`: nothing shipped yet).
    seq: Option<u64>,
    /// Its line's hash (what an anchor signs).
    head: String,
}

impl Position {
    fn next(&self) -> u64 {
        self.seq.map_or(0, |s| s + 1)
    }
}

/// One connection's worth of shipping; `Ok` only when the proxy stops.
async fn session(
    shared: &Shared,
    tapped: &mut Tapped,
    shipping: &Shipping,
) -> Result<(), ShipError> {
    let client =
        clsf_catalog::connect::connect_with(&shipping.url, shipping.password.as_deref()).await?;
    let replica = shipping.replica.as_str();
    let row = client
        .query_opt(
            "SELECT seq, line FROM clsf_audit_events WHERE replica = $1 ORDER BY seq DESC LIMIT 1",
            &[&replica],
        )
        .await?;
    let mut at = match row {
        Some(row) => Position {
            seq: Some(row.get::<_, i64>(0) as u64),
            head: audit::line_hash(row.get::<_, &str>(1)),
        },
        None => Position {
            seq: None,
            head: GENESIS.to_owned(),
        },
    };
    let mut anchored: Option<u64> = client
        .query_one(
            "SELECT max(seq) FROM clsf_audit_anchors WHERE replica = $1",
            &[&replica],
        )
        .await?
        .get::<_, Option<i64>>(0)
        .map(|s| s as u64);
    let mut last_anchor = Instant::now();
    tracing::info!(
        replica,
        "central audit: shipping events to the control plane"
    );
    // Everything written before this connection, from the files.
    tapped.overflowed.store(false, Ordering::Relaxed);
    catch_up(shared, &client, replica, &mut at).await?;
    loop {
        let mut batch = Vec::new();
        match tokio::time::timeout(Duration::from_millis(500), tapped.lines.recv()).await {
            Ok(Some(line)) => batch.push(line),
            Ok(None) => return Ok(()),
            Err(_) => {}
        }
        while batch.len() < BATCH {
            match tapped.lines.try_recv() {
                Ok(line) => batch.push(line),
                Err(_) => break,
            }
        }
        batch.retain(|(seq, _)| *seq >= at.next());
        let behind = tapped.overflowed.swap(false, Ordering::Relaxed)
            || batch.first().is_some_and(|(seq, _)| *seq > at.next());
        if behind {
            catch_up(shared, &client, replica, &mut at).await?;
            batch.retain(|(seq, _)| *seq >= at.next());
        }
        insert(&client, replica, &batch, &mut at).await?;
        let written = shared.audit.next_seq();
        shared
            .metrics
            .audit_central_lag
            .set(i64::try_from(written.saturating_sub(at.next())).unwrap_or(i64::MAX));
        if let (Some(key), Some(seq)) = (&shipping.anchor_key, at.seq)
            && anchored.is_none_or(|a| a < seq)
            && last_anchor.elapsed() >= shipping.anchor_every
        {
            let signature = key.sign(&anchor_message(replica, seq, &at.head));
            client
                .execute(
                    "INSERT INTO clsf_audit_anchors (replica, seq, head, signature) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&replica, &(seq as i64), &at.head, &signature],
                )
                .await?;
            anchored = Some(seq);
            last_anchor = Instant::now();
        }
    }
}

/// Ships the events of the local trail after `at`, read from its files.
async fn catch_up(
    shared: &Shared,
    client: &Client,
    replica: &str,
    at: &mut Position,
) -> Result<(), ShipError> {
    let path = shared.audit.path().to_owned();
    let files = audit::trail_paths(&path).map_err(|e| ShipError::Trail(e.to_string()))?;
    // The last event the control plane holds must be this trail's own:
    // else another trail ships under the name, and going on after it would
    // splice two chains.
    let held = at.seq.map(|seq| (seq, at.head.clone()));
    let mut held_found = held.is_none();
    let mut batch = Vec::new();
    for file in files {
        let text = audit::read_text(&file)
            .map_err(|e| ShipError::Trail(format!("{}: {e}", file.display())))?;
        for line in text.lines() {
            let seq = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64));
            let Some(seq) = seq else { continue };
            if let Some((held_seq, held_head)) = &held
                && *held_seq == seq
            {
                if audit::line_hash(line) != *held_head {
                    return Err(ShipError::Conflict {
                        replica: replica.to_owned(),
                        seq,
                    });
                }
                held_found = true;
            }
            if seq >= at.next() {
                batch.push((seq, line.to_owned()));
                if batch.len() == BATCH {
                    insert(client, replica, &batch, at).await?;
                    batch.clear();
                }
            }
        }
    }
    if let Some((seq, _)) = held
        && !held_found
    {
        return Err(ShipError::Conflict {
            replica: replica.to_owned(),
            seq,
        });
    }
    insert(client, replica, &batch, at).await
}

/// Inserts `batch` (consecutive events after `at`); an event already there
/// must be the same line.
async fn insert(
    client: &Client,
    replica: &str,
    batch: &[(u64, String)],
    at: &mut Position,
) -> Result<(), ShipError> {
    let Some((last_seq, last_line)) = batch.last() else {
        return Ok(());
    };
    let seqs: Vec<i64> = batch.iter().map(|(s, _)| *s as i64).collect();
    let lines: Vec<&str> = batch.iter().map(|(_, l)| l.as_str()).collect();
    let inserted = client
        .execute(
            "INSERT INTO clsf_audit_events (replica, seq, line) \
             SELECT $1, s, l FROM unnest($2::bigint[], $3::text[]) AS t(s, l) ON CONFLICT DO NOTHING",
            &[&replica, &seqs, &lines],
        )
        .await?;
    if inserted < batch.len() as u64 {
        // Some were there already (sent before a reconnection): the same
        // lines, or another trail under this name.
        let rows = client
            .query(
                "SELECT seq, line FROM clsf_audit_events WHERE replica = $1 AND seq = ANY($2)",
                &[&replica, &seqs],
            )
            .await?;
        let ours: BTreeMap<u64, &str> = batch.iter().map(|(s, l)| (*s, l.as_str())).collect();
        for row in rows {
            let seq = row.get::<_, i64>(0) as u64;
            if ours.get(&seq) != Some(&row.get::<_, &str>(1)) {
                return Err(ShipError::Conflict {
                    replica: replica.to_owned(),
                    seq,
                });
            }
        }
    }
    at.seq = Some(*last_seq);
    at.head = audit::line_hash(last_line);
    Ok(())
}

/// What `audit verify --control-plane` found for one replica.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    /// The replica's name.
    pub replica: String,
    /// Events held.
    pub events: u64,
    /// The hash of its last event.
    pub head: String,
    /// Ranges of events missing (first, last).
    pub gaps: Vec<(u64, u64)>,
    /// Events that do not carry the hash of the event before them.
    pub breaks: Vec<u64>,
    /// Anchors that matched and verified.
    pub anchors: usize,
    /// Anchors that did not, and why.
    pub anchor_failures: Vec<String>,
}

impl ReplicaReport {
    /// True when nothing is missing, broken or unproved.
    pub fn intact(&self) -> bool {
        self.gaps.is_empty() && self.breaks.is_empty() && self.anchor_failures.is_empty()
    }
}

impl std::fmt::Display for ReplicaReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replica {}: {} events, {} anchors verified",
            self.replica, self.events, self.anchors
        )?;
        if self.intact() {
            return write!(f, ", chain intact, head {}", self.head);
        }
        for (from, to) in &self.gaps {
            if from == to {
                write!(f, "; event {from} is missing")?;
            } else {
                write!(f, "; events {from}–{to} are missing")?;
            }
        }
        for seq in &self.breaks {
            write!(
                f,
                "; event {seq} does not carry the hash of the event before it"
            )?;
        }
        for failure in &self.anchor_failures {
            write!(f, "; {failure}")?;
        }
        Ok(())
    }
}

/// An anchor as stored.
struct Anchor {
    seq: u64,
    head: String,
    signature: String,
}

async fn anchors(client: &Client, replica: &str) -> Result<Vec<Anchor>, tokio_postgres::Error> {
    Ok(client
        .query(
            "SELECT seq, head, signature FROM clsf_audit_anchors WHERE replica = $1 ORDER BY seq",
            &[&replica],
        )
        .await?
        .into_iter()
        .map(|r| Anchor {
            seq: r.get::<_, i64>(0) as u64,
            head: r.get(1),
            signature: r.get(2),
        })
        .collect())
}

/// Why an anchor does not vouch for the trail it was checked against.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// Its signature is not one of the trusted keys'.
    #[error("the anchor at event {seq}: {source}")]
    Signature {
        /// The anchored event.
        seq: u64,
        /// Why the signature was refused.
        source: clsf_compiler::signing::SigningError,
    },
    /// The anchored event is there with another hash.
    #[error("event {seq} of {within} is not the one anchored: the trail was rewritten")]
    Rewritten {
        /// The anchored event.
        seq: u64,
        /// The trail checked.
        within: String,
    },
    /// The anchored event is not there.
    #[error("event {seq} of {within}, which an anchor signed, is missing")]
    Missing {
        /// The anchored event.
        seq: u64,
        /// The trail checked.
        within: String,
    },
}

/// Checks one anchor's signature (when keys are given) and that `hash`
/// (the hash of event `seq` where it was looked up) is what it signed.
fn check_anchor(
    replica: &str,
    anchor: &Anchor,
    hash: Option<&String>,
    trusted: &[PublicKey],
    within: &str,
) -> Result<(), AnchorError> {
    if !trusted.is_empty() {
        clsf_compiler::signing::verify(
            &anchor_message(replica, anchor.seq, &anchor.head),
            Some(&anchor.signature),
            trusted,
        )
        .map_err(|source| AnchorError::Signature {
            seq: anchor.seq,
            source,
        })?;
    }
    match hash {
        Some(h) if *h == anchor.head => Ok(()),
        Some(_) => Err(AnchorError::Rewritten {
            seq: anchor.seq,
            within: within.to_owned(),
        }),
        None => Err(AnchorError::Missing {
            seq: anchor.seq,
            within: within.to_owned(),
        }),
    }
}

/// Verifies every replica's copy in the control plane: each chain from
/// event 0, its gaps, and its anchors (their signatures against `trusted`
/// when given).
pub async fn verify(
    client: &Client,
    trusted: &[PublicKey],
) -> Result<Vec<ReplicaReport>, tokio_postgres::Error> {
    let replicas: Vec<String> = client
        .query(
            "SELECT DISTINCT replica FROM clsf_audit_events ORDER BY replica",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let mut reports = Vec::new();
    for replica in replicas {
        let anchors = anchors(client, &replica).await?;
        let wanted: HashSet<u64> = anchors.iter().map(|a| a.seq).collect();
        let mut hashes: BTreeMap<u64, String> = BTreeMap::new();
        let mut report = ReplicaReport {
            replica: replica.clone(),
            head: GENESIS.to_owned(),
            ..ReplicaReport::default()
        };
        let mut expected = 0u64;
        let mut prev = GENESIS.to_owned();
        // In pages, so a long trail is never held whole.
        loop {
            let rows = client
                .query(
                    "SELECT seq, line FROM clsf_audit_events WHERE replica = $1 AND seq >= $2 ORDER BY seq LIMIT 10000",
                    &[&replica, &(expected as i64)],
                )
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let seq = row.get::<_, i64>(0) as u64;
                let line: &str = row.get(1);
                let fields = serde_json::from_str::<serde_json::Value>(line).ok();
                let carried_seq = fields
                    .as_ref()
                    .and_then(|v| v.get("seq"))
                    .and_then(serde_json::Value::as_u64);
                let carried_prev = fields
                    .as_ref()
                    .and_then(|v| v.get("prev"))
                    .and_then(serde_json::Value::as_str);
                if seq > expected {
                    report.gaps.push((expected, seq - 1));
                } else if carried_prev != Some(prev.as_str()) {
                    report.breaks.push(seq);
                }
                if carried_seq != Some(seq) && !report.breaks.contains(&seq) {
                    report.breaks.push(seq);
                }
                prev = audit::line_hash(line);
                if wanted.contains(&seq) {
                    hashes.insert(seq, prev.clone());
                }
                report.events += 1;
                expected = seq + 1;
            }
        }
        report.head = prev;
        for anchor in &anchors {
            match check_anchor(
                &replica,
                anchor,
                hashes.get(&anchor.seq),
                trusted,
                "the central copy",
            ) {
                Ok(()) => report.anchors += 1,
                Err(e) => report.anchor_failures.push(e.to_string()),
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Why a local trail could not be checked against its anchors, or failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalVerifyError {
    /// Reading the anchors failed.
    #[error("{}", database(.0))]
    Database(#[from] tokio_postgres::Error),
    /// Nothing to check against.
    #[error("the control plane holds no anchor for replica `{0}`")]
    NoAnchor(String),
    /// The trail's files could not be listed.
    #[error(transparent)]
    Trail(#[from] audit::TrailError),
    /// A file of the trail could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// An anchor does not vouch for the trail.
    #[error(transparent)]
    Anchor(#[from] AnchorError),
}

/// Checks a local trail against the anchors `replica` wrote: every
/// anchored event must be in it, unchanged. Returns how many matched.
pub async fn verify_local(
    client: &Client,
    trail: &std::path::Path,
    replica: &str,
    trusted: &[PublicKey],
) -> Result<usize, LocalVerifyError> {
    let anchors = anchors(client, replica).await?;
    if anchors.is_empty() {
        return Err(LocalVerifyError::NoAnchor(replica.to_owned()));
    }
    let wanted: HashSet<u64> = anchors.iter().map(|a| a.seq).collect();
    let mut hashes: BTreeMap<u64, String> = BTreeMap::new();
    let files = audit::trail_paths(trail)?;
    for file in files {
        let text = audit::read_text(&file).map_err(|source| LocalVerifyError::Read {
            path: file.clone(),
            source,
        })?;
        for line in text.lines() {
            if let Some(seq) = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("seq").and_then(serde_json::Value::as_u64))
                && wanted.contains(&seq)
            {
                hashes.insert(seq, audit::line_hash(line));
            }
        }
    }
    let within = format!("the local trail {}", trail.display());
    for anchor in &anchors {
        check_anchor(replica, anchor, hashes.get(&anchor.seq), trusted, &within)?;
    }
    Ok(anchors.len())
}

/// The anchor key named by `control_plane.anchor_key` is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AnchorKeyError {
    /// The file could not be read.
    #[error("control_plane.anchor_key {}: {source}", path.display())]
    Read {
        /// The key file.
        path: std::path::PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file holds no signing key.
    #[error("control_plane.anchor_key {}: {source}", path.display())]
    Parse {
        /// The key file.
        path: std::path::PathBuf,
        /// What is wrong with it (never the key's bytes).
        source: clsf_compiler::signing::SigningError,
    },
}

/// The shipping settings from the configuration; the anchor key is read
/// here, so a missing or malformed key stops the start.
pub fn shipping(
    cp: &crate::config::ControlPlaneConfig,
    password: Option<String>,
) -> Result<Shipping, AnchorKeyError> {
    let anchor_key = match &cp.anchor_key {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| AnchorKeyError::Read {
                path: path.clone(),
                source,
            })?;
            Some(
                SecretKey::parse(&text).map_err(|source| AnchorKeyError::Parse {
                    path: path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    Ok(Shipping {
        url: cp.url.clone(),
        password,
        replica: cp.replica.clone().unwrap_or_default(),
        anchor_key,
        anchor_every: Duration::from_secs(cp.anchor_every_seconds),
    })
}
