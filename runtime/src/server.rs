//! The accept loop: a connection limit, one task per client, and graceful
//! shutdown when the given future completes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast};

use crate::session::{self, Shared};

/// Accepts clients until `shutdown` completes, then stops accepting, lets
/// every session finish what it has in flight (up to `grace`), and returns.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    grace: Duration,
    shutdown: impl Future,
) {
    let limit = Arc::new(Semaphore::new(max_connections));
    // Every session holds a receiver; a send tells them all to wind down.
    let (notify, _) = broadcast::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    eprintln!("clsf-proxy: accept failed: {e}");
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let shared = Arc::clone(&shared);
        let rx = notify.subscribe();
        tokio::spawn(async move {
            if let Err(e) = session::run(shared, socket, peer, rx).await {
                eprintln!("clsf-proxy: session from {peer} ended: {}", e.0);
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = notify.send(());
    // Every session holds a permit until it ends: having them all back means
    // every session is done.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, limit.acquire_many(all))
        .await
        .is_err()
    {
        eprintln!(
            "clsf-proxy: sessions still busy after {} s; stopping anyway",
            grace.as_secs()
        );
    }
}
