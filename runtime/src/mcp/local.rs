//! Statements of MCP tools, run as sessions of the proxy itself: a
//! PostgreSQL client (tokio-postgres) on one end of an in-process stream,
//! `session::run_local` on the other, so every statement is decided,
//! rewritten, limited and audited exactly as a network client's would be.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

use crate::auth::Proven;
use crate::session::{Local, Shared};

/// Rows of a read, as PostgreSQL's text forms.
pub(super) struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// More rows were there than were asked for.
    pub truncated: bool,
    /// Notices the session sent (a row limit's cut, for one).
    pub notices: Vec<String>,
}

/// A statement the database or the proxy refused.
pub(super) struct Failure {
    pub sqlstate: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    fn from(e: &tokio_postgres::Error) -> Failure {
        match e.as_db_error() {
            Some(db) => Failure {
                sqlstate: db.code().code().to_owned(),
                message: db.message().to_owned(),
                hint: db.hint().map(str::to_owned),
            },
            None => Failure {
                sqlstate: "08006".to_owned(),
                message: format!("the proxy session failed: {e}"),
                hint: None,
            },
        }
    }
}

/// A session of the proxy for this call.
struct Session {
    client: tokio_postgres::Client,
    notices: Arc<Mutex<Vec<String>>>,
    // Dropped with the session: nothing listens for shutdown here.
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Called with the request id when the session's statement is held for
/// approval (from the proxy's notice).
pub(super) type OnHeld = Box<dyn FnOnce(String) + Send>;

async fn open(
    shared: &Arc<Shared>,
    proven: &Proven,
    peer: SocketAddr,
    via: Value,
    mut on_held: Option<OnHeld>,
) -> Result<Session, Failure> {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (shutdown, listen) = tokio::sync::oneshot::channel();
    let local = Local {
        proven: proven.clone(),
        via,
    };
    tokio::spawn(crate::session::run_local(
        Arc::clone(shared),
        theirs,
        peer,
        local,
        listen,
    ));
    let mut config = tokio_postgres::Config::new();
    config
        .user("mcp")
        .dbname(&shared.upstream.database)
        .application_name("clsf-mcp")
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    let (client, mut connection) = config
        .connect_raw(ours, NoTls)
        .await
        .map_err(|e| Failure::from(&e))?;
    let notices = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&notices);
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notice(n) = message {
                let text = n.message();
                if let Some(id) = held_request(text)
                    && let Some(f) = on_held.take()
                {
                    f(id);
                }
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(text.to_owned());
            }
        }
    });
    Ok(Session {
        client,
        notices,
        _shutdown: shutdown,
    })
}

/// The request id of the proxy's "held for approval" notice.
fn held_request(notice: &str) -> Option<String> {
    let rest = notice.strip_prefix("clsf: statement held for approval, request ")?;
    let id = rest.split(':').next()?;
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric())
        .then(|| id.to_owned())
}

/// Runs one statement, held for approval: `on_held` gets the request id
/// when the proxy holds it; the answer comes once it was decided (for a
/// read, `Some(cap)`: at most `cap` rows, in a read-only transaction; for
/// a write, what it did).
pub(super) async fn held(
    shared: &Arc<Shared>,
    proven: &Proven,
    peer: SocketAddr,
    via: Value,
    sql: &str,
    read: Option<u64>,
    on_held: OnHeld,
) -> Result<Written, Failure> {
    let session = open(shared, proven, peer, via, Some(on_held)).await?;
    let client = &session.client;
    if read.is_some() {
        client
            .batch_execute("BEGIN READ ONLY")
            .await
            .map_err(|e| Failure::from(&e))?;
    }
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| Failure::from(&e))?;
    let mut out = collect(messages);
    if let Some(cap) = read {
        let _ = client.batch_execute("ROLLBACK").await;
        out.rows
            .truncate(usize::try_from(cap).unwrap_or(usize::MAX));
    }
    Ok(out)
}

/// Runs one read statement in a read-only transaction, fetching at most
/// `cap + 1` rows (one more tells that there were more): through a cursor,
/// or, under a policy row limit (which refuses cursors, since FETCHes
/// together could pass it), as it is, the proxy cutting it at the limit.
pub(super) async fn read(
    shared: &Arc<Shared>,
    proven: &Proven,
    peer: SocketAddr,
    via: Value,
    sql: &str,
    cap: u64,
    limited: bool,
) -> Result<Rows, Failure> {
    let session = open(shared, proven, peer, via, None).await?;
    let client = &session.client;
    client
        .batch_execute("BEGIN READ ONLY")
        .await
        .map_err(|e| Failure::from(&e))?;
    let messages = if limited {
        client.simple_query(sql).await
    } else {
        // The statement was parsed as exactly one query; a newline ends a
        // trailing line comment before the cursor's end.
        match client
            .batch_execute(&format!("DECLARE clsf_mcp NO SCROLL CURSOR FOR {sql}\n"))
            .await
        {
            Ok(()) => {
                client
                    .simple_query(&format!("FETCH FORWARD {} FROM clsf_mcp", cap + 1))
                    .await
            }
            Err(e) => Err(e),
        }
    }
    .map_err(|e| Failure::from(&e))?;
    let _ = client.batch_execute("ROLLBACK").await;
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                columns = cols.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
            _ => {}
        }
    }
    let truncated = rows.len() as u64 > cap;
    rows.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
    let notices = session
        .notices
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Ok(Rows {
        columns,
        rows,
        truncated,
        notices,
    })
}

/// What a statement did, as a write sees it.
pub(super) struct Written {
    /// Rows inserted, updated, deleted or returned.
    pub affected: u64,
    pub columns: Vec<String>,
    /// What `RETURNING` returned.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Runs one write statement as it is (in its own transaction, committed
/// when it succeeds).
pub(super) async fn write(
    shared: &Arc<Shared>,
    proven: &Proven,
    peer: SocketAddr,
    via: Value,
    sql: &str,
) -> Result<Written, Failure> {
    let session = open(shared, proven, peer, via, None).await?;
    let messages = session
        .client
        .simple_query(sql)
        .await
        .map_err(|e| Failure::from(&e))?;
    Ok(collect(messages))
}

fn collect(messages: Vec<SimpleQueryMessage>) -> Written {
    let mut out = Written {
        affected: 0,
        columns: Vec::new(),
        rows: Vec::new(),
    };
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                out.columns = cols.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                out.rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(n) => out.affected = n,
            _ => {}
        }
    }
    out
}
