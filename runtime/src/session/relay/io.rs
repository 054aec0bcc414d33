//! The session's I/O loop: reads both sockets, feeds the state machine
//! frame by frame, writes what it queued (upstream first), and applies the
//! session's timers (idle, statement timeout, credential expiry), shutdown
//! and the wait for a held statement's approval.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Relay;
use crate::approvals;
use crate::audit::{Completion, Event};
use crate::session::startup::Ready;
use crate::session::{Result, Shared, end, send};
use crate::tls::{ClientStream, UpstreamStream};
use crate::upstream;
use crate::wire::errors;
use crate::wire::frame::{FrameError, MAX_FRAME, split_frame};
use crate::wire::kinds::TransactionStatus;
use bytes::BytesMut;

pub(in crate::session) async fn relay(
    shared: &Shared,
    mut client: ClientStream,
    mut cbuf: BytesMut,
    ready: Ready,
    session: u64,
    shutdown: crate::session::Shutdown,
) -> (Result<()>, Vec<Completion>) {
    let Ready {
        cancel_key,
        proven,
        upstream_key,
        deadline,
        loaded,
        identity,
        access,
        mut upstream,
        upstream_buf: mut ubuf,
        kept,
        // Taken by `session::run`, which holds it for the whole session.
        slot: _,
    } = ready;
    let mut terminating = false;
    let mut draining = false;
    // When the statement now at the head of the pipeline started, and
    // whether its cancel was already sent.
    let mut busy: Option<(tokio::time::Instant, bool)> = None;
    let mut owed = 0;
    // Since when the session has been idle (nothing in flight, no open
    // transaction) with nothing read from either side.
    let mut idle_since: Option<tokio::time::Instant> = None;
    // The idle and statement timeouts each have one timer for the whole
    // session, set lazily: a deadline only moves later as the session goes
    // on, so a timer left at an earlier deadline fires early, finds the time
    // not yet up and is set again. A timer made (or reset) per statement
    // would register and clear a timer entry twice per statement.
    let idle_timer = tokio::time::sleep_until(far_future());
    tokio::pin!(idle_timer);
    let statement_timer = tokio::time::sleep_until(far_future());
    tokio::pin!(statement_timer);
    let mut r = Relay::new(shared, proven, loaded, identity, access, session);
    // One timer for the whole session: a sleep created per loop turn
    // registers and clears a timer entry twice per statement.
    let expiry = async {
        match deadline {
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expiry);
    // One receive for the whole session, like the expiry. A closed channel
    // (whatever started the session is gone) ends it the same way.
    let shutdown = async {
        let _ = shutdown.await;
    };
    tokio::pin!(shutdown);
    let outcome = async {
        loop {
            // Handle everything already buffered before reading more; nothing
            // while a statement waits for approval.
            while !terminating && r.held.is_none() {
                match split_frame(&mut cbuf, MAX_FRAME) {
                    Ok(Some(frame)) => match r.client_frame(frame) {
                        Ok(true) => {}
                        Ok(false) => {
                            // Terminate: answer what is still owed, then close.
                            terminating = true;
                            break;
                        }
                        Err(e) => {
                            // The error response is already queued for the client.
                            let _ = flush(&mut r, &mut client, &mut upstream).await;
                            let _ = upstream.write_all(&crate::wire::messages::TERMINATE).await;
                            return Err(e);
                        }
                    },
                    Ok(None) => break,
                    Err(e) => {
                        let answer = match e {
                            FrameError::TooLarge { len, max } => {
                                errors::message_too_large(len, max)
                            }
                            FrameError::BadLength(_) => errors::protocol_violation(&e.to_string()),
                        };
                        r.to_client.extend_from_slice(&answer);
                        flush(&mut r, &mut client, &mut upstream).await?;
                        return Err(end(format!("client sent {e}")));
                    }
                }
            }
            loop {
                match split_frame(&mut ubuf, usize::MAX >> 1) {
                    Ok(Some(frame)) => r.upstream_frame(frame),
                    Ok(None) => break,
                    Err(e) => return Err(end(format!("upstream sent {e}"))),
                }
            }
            flush(&mut r, &mut client, &mut upstream).await?;
            if terminating && r.pending.is_empty() {
                // Ended cleanly: the connection may be kept (below).
                return Ok(true);
            }
            if draining && r.pending.is_empty() {
                // Shutting down and nothing in flight: end the session cleanly.
                let _ = send(&mut client, &errors::shutting_down()).await;
                let _ = upstream.write_all(&crate::wire::messages::TERMINATE).await;
                return Ok(false);
            }

            // A shorter queue means a statement finished: the next one's clock
            // starts. Tracked only when a timeout is configured (hot path).
            if shared.statement_timeout.is_some() {
                if r.pending.is_empty() {
                    busy = None;
                } else if busy.is_none() || r.pending.len() < owed {
                    busy = Some((tokio::time::Instant::now(), false));
                }
                owed = r.pending.len();
            }
            let overdue = match (shared.statement_timeout, busy) {
                (Some(limit), Some((since, false))) => Some(since + limit),
                _ => None,
            };
            let idle = r.pending.is_empty()
                && r.status == TransactionStatus::Idle
                && r.held.is_none()
                && !terminating
                && !draining;
            let waiting = r.held.as_ref().map(|h| (h.rx.clone(), h.until));
            let idle_deadline = match shared.idle_timeout {
                Some(t) if idle => {
                    let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                    Some(since + t)
                }
                _ => {
                    idle_since = None;
                    None
                }
            };
            arm(idle_timer.as_mut(), idle_deadline);
            arm(statement_timer.as_mut(), overdue);
            tokio::select! {
                // An idle session (no statement in flight, no open transaction)
                // that sends nothing for the configured time is closed.
                () = &mut idle_timer, if idle_deadline.is_some() => {
                    if let Some(at) = idle_deadline.filter(|&at| tokio::time::Instant::now() < at) {
                        idle_timer.as_mut().reset(at);
                        continue;
                    }
                    let _ = send(&mut client, &errors::idle_timeout()).await;
                    let _ = upstream.write_all(&crate::wire::messages::TERMINATE).await;
                    return Err(end("idle timeout"));
                }
                // While draining, nothing new is read: what is in flight finishes.
                n = client.read_buf(&mut cbuf), if !terminating && !draining => {
                    // Anything read starts the idle time again.
                    idle_since = None;
                    if n.map_err(|e| end(format!("client read: {e}")))? == 0 {
                        if r.pending.is_empty() {
                            return Ok(true);
                        }
                        let _ = upstream.write_all(&crate::wire::messages::TERMINATE).await;
                        return Ok(false);
                    }
                }
                n = upstream.read_buf(&mut ubuf) => {
                    idle_since = None;
                    if n.map_err(|e| {
                        shared.metrics.upstream_errors.inc();
                        end(format!("upstream read: {e}"))
                    })? == 0 {
                        shared.metrics.upstream_errors.inc();
                        let _ = send(&mut client, &errors::upstream_unavailable()).await;
                        return Err(end("upstream closed the connection"));
                    }
                }
                // A statement ran past the statement timeout: the server cancels
                // it (the client gets 57014) and the session goes on.
                () = &mut statement_timer, if overdue.is_some() => {
                    if let Some(at) = overdue.filter(|&at| tokio::time::Instant::now() < at) {
                        statement_timer.as_mut().reset(at);
                        continue;
                    }
                    if let Some(key) = upstream_key {
                        let mut event = Event::new("statement_timeout", session);
                        event.subject = Some(&r.identity.subject);
                        let _ = shared.audit.append(&event);
                        upstream::cancel(&shared.upstream, key).await;
                    }
                    busy = busy.map(|(since, _)| (since, true));
                }
                // The credential's time is up (token expiry, longest session).
                () = &mut expiry => {
                    let why = deadline.map_or("", |(_, why)| why);
                    let _ = send(&mut client, &errors::session_expired(why)).await;
                    let _ = upstream.write_all(&crate::wire::messages::TERMINATE).await;
                    return Err(end(why));
                }
                // Polled only until it fires once: it sets `draining` for good.
                () = &mut shutdown, if !draining => {
                    draining = true;
                }
                // The held statement was decided (or its time ran out).
                state = async {
                    match waiting {
                        Some((mut rx, until)) => approvals::wait(&mut rx, until).await,
                        None => std::future::pending().await,
                    }
                }, if r.held.is_some() => {
                    r.settle(state);
                }
            }
        }
    }
    .await;
    let clean = matches!(outcome, Ok(true));
    let outcome = outcome.map(|_| ());
    // However the loop ended, a session the server ended says so.
    let outcome = match (outcome, r.upstream_fatal.take()) {
        (Ok(()), Some(code)) => Err(end(format!("upstream ended the session (SQLSTATE {code})"))),
        (Err(e), Some(code)) => Err(end(format!(
            "{}; upstream ended the session (SQLSTATE {code})",
            e.0
        ))),
        (outcome, None) => outcome,
    };
    // The session ended with statements still running upstream (the client
    // vanished mid-result, its credential expired): the server is told to
    // stop them, so no backend goes on working, holding locks, for nobody.
    if !r.pending.is_empty()
        && let Some(key) = upstream_key
    {
        let mut event = Event::new("cancel", session);
        event.subject = Some(&r.identity.subject);
        event.reason = Some("the session ended with a statement running");
        let _ = shared.audit.append(&event);
        upstream::cancel(&shared.upstream, key).await;
    }
    if clean {
        // The client left outside a transaction with nothing in flight:
        // the server connection is reset and kept for a later session
        // (`upstream::pool`), or ended.
        let pool = &shared.upstream.pool;
        // The session's cancel key goes first: a cancel for it must not
        // reach the statement of the session given the connection next.
        shared
            .cancel_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&cancel_key);
        if outcome.is_ok()
            && pool.enabled()
            && r.pending.is_empty()
            && r.status == TransactionStatus::Idle
            && r.held.is_none()
            && ubuf.is_empty()
            && upstream::pool::reset(&mut upstream).await
        {
            pool.put(
                kept.clear,
                kept.params,
                upstream::Connected {
                    stream: upstream,
                    parameter_status: kept.parameter_status,
                    // The next session reads the server into it: as large
                    // as a login's, or every response would take several
                    // reads while it grew.
                    leftover: BytesMut::with_capacity(8192),
                    key: upstream_key,
                },
            );
        } else {
            let _ = upstream.write_all(&crate::wire::messages::TERMINATE).await;
        }
    }
    (outcome, r.finish())
}

/// A deadline no session reaches (about 30 years on): a timer at it is
/// unset.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

/// Moves a lazily set timer to `deadline` when it would fire later than
/// that (it was unset, or set for a later deadline); an earlier one is
/// left to fire and be set again.
fn arm(timer: std::pin::Pin<&mut tokio::time::Sleep>, deadline: Option<tokio::time::Instant>) {
    if let Some(at) = deadline
        && timer.deadline() > at
    {
        timer.reset(at);
    }
}

async fn flush(
    r: &mut Relay<'_>,
    client: &mut ClientStream,
    upstream: &mut UpstreamStream,
) -> Result<()> {
    if !r.to_upstream.is_empty() {
        let bytes = r.to_upstream.split();
        upstream
            .write_all(&bytes)
            .await
            .map_err(|e| end(format!("upstream write: {e}")))?;
    }
    if !r.to_client.is_empty() {
        let bytes = r.to_client.split();
        send(client, &bytes).await?;
    }
    Ok(())
}
