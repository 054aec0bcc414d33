//! The accept loop: a connection limit, one task per client, and graceful
//! shutdown when the given future completes.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, broadcast};

use crate::session::{self, Shared};

/// Accepts clients until `shutdown` completes, then tells every session to
/// end and returns.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    shutdown: impl Future,
) {
    let limit = Arc::new(Semaphore::new(max_connections));
    // Every session holds a receiver; a send tells them all to end.
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
    let _ = notify.send(());
}
