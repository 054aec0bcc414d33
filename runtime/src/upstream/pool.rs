//! Server connections kept between client sessions, as pgbouncer keeps
//! them in session mode. A session that ends cleanly (the client left
//! outside a transaction, nothing in flight) has its server connection
//! reset with `DISCARD ALL` and kept; the next session that would log in
//! with the same startup parameters takes it instead of making PostgreSQL
//! fork a backend and running the SCRAM login again, which is most of what
//! a short session costs (docs/performance.md, "What a new session costs").
//!
//! What a session leaves behind on the server is what `DISCARD ALL` clears:
//! settings made with `SET` (back to the values of the startup packet),
//! the role, prepared statements, cursors, temporary tables, `LISTEN`s,
//! advisory locks, sequences' session state and cached plans. What it
//! cannot clear is the startup packet itself, so connections are kept by
//! their exact startup parameters: the masking key's settings are among
//! them, so an identity that reads everything in clear (given no key) never
//! gets a connection that carried the key, nor the reverse, and a new key
//! never meets a connection made with the old one. A connection is also
//! kept by the thread that made it: each session thread runs its own
//! runtime, whose reactor the socket is registered with.

use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::Connected;
use crate::tls::{MaybeTls, UpstreamStream};
use crate::wire::kinds::{Backend, TransactionStatus};

/// How long a reset may take before the connection is closed instead.
const RESET_TIMEOUT: Duration = Duration::from_secs(2);

/// Startup parameters sent to the server, in order.
pub type Params = Vec<(String, String)>;

/// Idle server connections, ready for a session.
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    /// Most connections kept at once (0: none, every session logs in).
    size: usize,
    /// How long one is kept unused.
    keep: Duration,
}

struct Idle {
    thread: ThreadId,
    clear: bool,
    params: Params,
    conn: Connected,
    since: Instant,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the parameters: the masking key's settings are among them.
        f.debug_struct("Pool")
            .field("size", &self.size)
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl Default for Pool {
    /// Keeps nothing.
    fn default() -> Pool {
        Pool::new(0, Duration::ZERO)
    }
}

impl Pool {
    /// Keeps at most `size` connections, each at most `keep` unused.
    pub fn new(size: usize, keep: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            size,
            keep,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether sessions' connections are kept at all.
    pub fn enabled(&self) -> bool {
        self.size > 0
    }

    /// A kept connection made on this thread with exactly `params`, for
    /// a session of the same class (`clear`: an identity that reads
    /// everything in clear, whose statements pass unanalysed), the most
    /// recently kept first; one the server closed (or sent anything on)
    /// since it was kept is closed instead.
    pub fn take(&self, clear: bool, params: &[(String, String)]) -> Option<Connected> {
        let thread = std::thread::current().id();
        let mut idle = self.lock();
        self.expire(&mut idle);
        while let Some(i) = idle
            .iter()
            .rposition(|c| c.thread == thread && c.clear == clear && c.params == params)
        {
            let c = idle.remove(i);
            if quiet(&c.conn.stream) {
                return Some(c.conn);
            }
        }
        None
    }

    /// Keeps `conn`, already reset, for a later session of class `clear`
    /// with `params`; the longest kept one makes room when the pool is full.
    pub fn put(&self, clear: bool, params: Params, conn: Connected) {
        if self.size == 0 {
            return;
        }
        let mut idle = self.lock();
        self.expire(&mut idle);
        if idle.len() >= self.size {
            idle.remove(0);
        }
        idle.push(Idle {
            thread: std::thread::current().id(),
            clear,
            params,
            conn,
            since: Instant::now(),
        });
    }

    /// Closes every kept connection: the server has no room for a new one.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Closes the connections kept longer than the pool keeps them.
    pub fn sweep(&self) {
        let mut idle = self.lock();
        self.expire(&mut idle);
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn expire(&self, idle: &mut Vec<Idle>) {
        // Dropping a socket closes it from any thread; the server sees the
        // client go while idle, which it does not log above DEBUG1.
        idle.retain(|c| c.since.elapsed() < self.keep);
    }
}

/// Closes what the pool kept too long, every half of its `keep` (at least
/// every second), until `stopped` says the proxy stops: connections left
/// when sessions stop coming do not stay open on the server.
pub async fn sweeping(pool: std::sync::Arc<Pool>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    if !pool.enabled() {
        return;
    }
    let every = (pool.keep / 2).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => pool.sweep(),
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// Whether nothing has arrived on a kept connection: a server that closed
/// it, or sent anything (an error as it shut down, a notification), makes
/// it unfit. Reads at most one byte, and only from a connection about to
/// be closed.
fn quiet(stream: &UpstreamStream) -> bool {
    let tcp = match stream {
        MaybeTls::Plain(tcp) => tcp,
        MaybeTls::Tls(tls) => tls.get_ref().0,
        MaybeTls::Upgrading | MaybeTls::Local(_) => return false,
    };
    let mut byte = [0u8; 1];
    matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Resets a server connection for another session: `DISCARD ALL`, whose
/// answer must be its completion and an idle ReadyForQuery (parameter
/// statuses and notices aside). False when anything else comes back, or
/// nothing in time: the connection is then not kept.
pub async fn reset(stream: &mut UpstreamStream) -> bool {
    let discard = crate::wire::messages::query("DISCARD ALL");
    let answered = async {
        stream.write_all(&discard).await.ok()?;
        let mut buf = BytesMut::with_capacity(512);
        let mut completed = false;
        loop {
            let frame = super::read_frame(stream, &mut buf).await.ok()?;
            match frame.backend() {
                Backend::CommandComplete => {
                    completed = frame.body() == b"DISCARD ALL\0";
                    if !completed {
                        return None;
                    }
                }
                Backend::ParameterStatus | Backend::Notice => {}
                Backend::ReadyForQuery => {
                    let idle = frame
                        .body()
                        .first()
                        .copied()
                        .and_then(TransactionStatus::of)
                        == Some(TransactionStatus::Idle);
                    return (completed && idle && buf.is_empty()).then_some(());
                }
                _ => return None,
            }
        }
    };
    matches!(
        tokio::time::timeout(RESET_TIMEOUT, answered).await,
        Ok(Some(()))
    )
}
