//! The accept loop: a connection limit, one task per client, and graceful
//! shutdown when the given future completes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;
use tokio::net::TcpListener;

use tokio::sync::{Semaphore, oneshot};

use crate::session::{self, Shared};

/// Connections beyond the limit being answered at once, at most.
const MAX_REFUSALS: usize = 1024;

/// Accepts clients until `shutdown` completes, then stops accepting, lets
/// every session finish what it has in flight (up to `grace`), and returns.
/// `limit` holds `max_connections` permits, shared by every accept loop of
/// the proxy; a session holds one while it runs.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    max_connections: usize,
    grace: Duration,
    shutdown: impl Future,
) {
    // Every session holds a receiver; a send to each tells them to wind down.
    let notices = Arc::new(Notices::default());
    tokio::pin!(shutdown);
    // Refusals beyond the limit are short, but a storm must not turn them
    // into unbounded work: past this many at once, accepting pauses until
    // one is done, and later clients wait in the listen backlog for their
    // answer instead of being cut off without one.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let shared = Arc::clone(&shared);
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            let slot = tokio::select! {
                slot = Arc::clone(&refusals).acquire_owned() => slot,
                _ = &mut shutdown => break,
            };
            let Ok(slot) = slot else { continue };
            tokio::spawn(async move {
                session::refuse_over_limit(shared, socket, peer).await;
                drop(slot);
            });
            continue;
        };
        let (id, rx) = notices.subscribe();
        let notices = Arc::clone(&notices);
        // The session's span is made for its one event, how it ended, not
        // entered around every poll of its task (`Instrument`): with an
        // `EnvFilter`, each enter and exit takes the filter's lock, about
        // 1 % of the proxy's CPU under pgbench, and making a span for every
        // session was a visible part of a connection's cost under `pgbench
        // -C` (docs/performance.md). What the session's task logs besides
        // is the process's (the audit trail, the JWKS, the control plane),
        // not one session's.
        tokio::spawn(async move {
            if let Err(e) = session::run(shared, socket, peer, rx).await {
                tracing::info_span!("session", %peer)
                    .in_scope(|| tracing::info!(reason = %e.0, "session ended"));
            }
            notices.forget(id);
            drop(permit);
        });
    }
    drop(listener);
    notices.send();
    // Every session holds a permit until it ends: having them all back means
    // every session is done (those of the other accept loops too).
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, limit.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "sessions still busy after the grace period; stopping anyway"
        );
    }
}

/// The shutdown signals of one accept loop's sessions, by session.
#[derive(Debug, Default)]
struct Notices {
    senders: Mutex<(u64, HashMap<u64, oneshot::Sender<()>>)>,
}

impl Notices {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<u64, oneshot::Sender<()>>)> {
        self.senders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session's signal, and its number to forget it by.
    fn subscribe(&self) -> (u64, session::Shutdown) {
        let (tx, rx) = oneshot::channel();
        let mut guard = self.lock();
        let (next, senders) = &mut *guard;
        let id = *next;
        *next += 1;
        senders.insert(id, tx);
        (id, rx)
    }

    /// Forgets an ended session's signal.
    fn forget(&self, id: u64) {
        self.lock().1.remove(&id);
    }

    /// Tells every session still running.
    fn send(&self) {
        for (_, tx) in self.lock().1.drain() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    #[test]
    fn a_shutdown_reaches_every_running_session_and_ended_ones_are_forgotten() {
        let notices = Notices::default();
        let (first, mut first_rx) = notices.subscribe();
        let (_, mut second_rx) = notices.subscribe();
        assert_eq!(first_rx.try_recv(), Err(TryRecvError::Empty));
        // An ended session's sender is dropped, not kept until shutdown.
        notices.forget(first);
        assert_eq!(first_rx.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(notices.lock().1.len(), 1);
        notices.send();
        assert_eq!(second_rx.try_recv(), Ok(()));
        assert!(notices.lock().1.is_empty());
    }
}
