//! Hot reload: the policy directory and the schema lock are watched; after
//! a change settles, the policy is compiled again and, only if it compiles,
//! swapped in whole. Sessions pick it up at their next statement without
//! reconnecting. An invalid policy never replaces a valid one: the old one
//! stays in force and the failure is logged and audited.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::audit::Event;
use crate::config::{Config, PolicySource};
use crate::session::Shared;
use crate::start;

/// How long the files must be quiet before a reload: editors and `git
/// checkout` write several files in a burst.
const SETTLE: Duration = Duration::from_millis(100);
/// Longest a reload waits for quiet after the first change, so a directory
/// that never stays quiet cannot postpone it forever.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// Keeps the policy watched; reloading stops when it is dropped.
pub struct PolicyWatcher {
    _watcher: notify::RecommendedWatcher,
    _lock: Option<LockWatch>,
}

impl std::fmt::Debug for PolicyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyWatcher")
    }
}

/// Why the policy or its schema lock cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The file-system watcher refused (the policy tree, or elsewhere than
    /// Linux the lock's directory).
    #[error("cannot watch {}: {source}", path.display())]
    Notify {
        /// What was to be watched.
        path: PathBuf,
        /// What notify said.
        source: notify::Error,
    },
    /// inotify refused the lock's directory.
    #[error("cannot watch {}: {source}", path.display())]
    Inotify {
        /// The lock's directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// Watches the policy directory and the schema lock.
pub fn watch(shared: Arc<Shared>, config: Config) -> Result<PolicyWatcher, WatchError> {
    let (tree, lock) = match config.policy.source() {
        PolicySource::Sources { dir, lock } => (dir.to_path_buf(), Some(lock.to_path_buf())),
        // A bundle is replaced file by file, manifest last; a reload that
        // sees a half-written bundle fails its digests and keeps the old one.
        PolicySource::Bundle(dir) => (dir.to_path_buf(), None),
    };
    let (tx, rx) = mpsc::channel::<()>();
    let watched_tree = tree.clone();
    let tree_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = event.is_ok_and(|e| {
            !e.kind.is_access() && e.paths.iter().any(|p| p.starts_with(&watched_tree))
        });
        if relevant {
            let _ = tree_tx.send(());
        }
    })
    .map_err(|source| WatchError::Notify {
        path: tree.clone(),
        source,
    })?;
    watcher
        .watch(&tree, RecursiveMode::Recursive)
        .map_err(|source| WatchError::Notify {
            path: tree.clone(),
            source,
        })?;
    let lock_watch = match &lock {
        Some(lock) => Some(LockWatch::start(lock, tx)?),
        None => None,
    };
    std::thread::spawn(move || {
        while rx.recv().is_ok() {
            // Wait for the burst of changes to end; a dropped watcher means
            // the proxy is stopping, and nothing is reloaded.
            let first = std::time::Instant::now();
            while first.elapsed() < MAX_WAIT {
                match rx.recv_timeout(SETTLE) {
                    Ok(()) => {}
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            reload(&shared, &config);
        }
    });
    Ok(PolicyWatcher {
        _watcher: watcher,
        _lock: lock_watch,
    })
}

/// The directory holding `lock` (`.` for a bare file name).
fn lock_dir(lock: &std::path::Path) -> PathBuf {
    lock.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// The schema lock's directory, watched (not the file: tools replace files
/// by renaming, which a watch on the old file would miss) for the events
/// that can give the lock new contents: a write closed, a file created,
/// moved in or out, or deleted — under the lock's name, or `..data` (a
/// Kubernetes ConfigMap swaps its files by renaming that symlink). Not for
/// plain writes: the directory may hold the audit trail, appended to for
/// every statement, and waking a watcher thread for each cost the proxy
/// about a tenth of its CPU under pgbench.
#[cfg(target_os = "linux")]
struct LockWatch {
    watches: inotify::Watches,
    wd: inotify::WatchDescriptor,
}

#[cfg(target_os = "linux")]
impl LockWatch {
    fn start(lock: &std::path::Path, tx: mpsc::Sender<()>) -> Result<LockWatch, WatchError> {
        use inotify::{Inotify, WatchMask};
        let dir = lock_dir(lock);
        let name = lock.file_name().map(std::ffi::OsStr::to_owned);
        let cannot = |source: std::io::Error| WatchError::Inotify {
            path: dir.clone(),
            source,
        };
        let mut inotify = Inotify::init().map_err(cannot)?;
        let mut watches = inotify.watches();
        let wd = watches
            .add(
                &dir,
                WatchMask::CLOSE_WRITE
                    | WatchMask::CREATE
                    | WatchMask::MOVED_TO
                    | WatchMask::MOVED_FROM
                    | WatchMask::DELETE
                    | WatchMask::ATTRIB,
            )
            .map_err(cannot)?;
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let Ok(events) = inotify.read_events_blocking(&mut buffer) else {
                    return;
                };
                let mut relevant = false;
                for event in events {
                    // The watch was removed (the watcher dropped) or the
                    // directory is gone: nothing more will come.
                    if event.mask.contains(inotify::EventMask::IGNORED) {
                        return;
                    }
                    relevant |= event.name.is_some_and(|n| {
                        name.as_deref() == Some(n) || n == std::ffi::OsStr::new("..data")
                    });
                }
                if relevant && tx.send(()).is_err() {
                    return;
                }
            }
        });
        Ok(LockWatch { watches, wd })
    }
}

#[cfg(target_os = "linux")]
impl Drop for LockWatch {
    fn drop(&mut self) {
        // Ends the reading thread (it receives IN_IGNORED).
        let _ = self.watches.remove(self.wd.clone());
    }
}

/// Elsewhere, notify watches the lock's directory (every change in it
/// wakes the watcher; only the lock's count).
#[cfg(not(target_os = "linux"))]
struct LockWatch {
    _watcher: notify::RecommendedWatcher,
}

#[cfg(not(target_os = "linux"))]
impl LockWatch {
    fn start(lock: &std::path::Path, tx: mpsc::Sender<()>) -> Result<LockWatch, WatchError> {
        let dir = lock_dir(lock);
        let watched = lock.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access() && e.paths.contains(&watched)) {
                    let _ = tx.send(());
                }
            })
            .map_err(|source| WatchError::Notify {
                path: dir.clone(),
                source,
            })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Notify {
                path: dir.clone(),
                source,
            })?;
        Ok(LockWatch { _watcher: watcher })
    }
}

/// Compiles the policy again and swaps it in if it compiles and differs.
pub fn reload(shared: &Shared, config: &Config) {
    let current = shared.current();
    let next = start::compile_policy(config, current.generation + 1, current.bundle_version);
    // A policy that changes comes into force knowing the live catalog
    // against its lock, not counting every relation as drifted meanwhile.
    let next = match next {
        Ok(next) if next.plan_hash != current.plan_hash => Ok(crate::drift::compared(shared, next)),
        other => other,
    };
    put_in_force(shared, next);
}

/// Swaps `next` in if it differs from the policy in force; a policy that
/// failed to load leaves the one in force, said so in the trail, the log
/// and the metrics.
pub fn put_in_force(shared: &Shared, next: Result<crate::session::Loaded, start::SetupError>) {
    let current = shared.current();
    match next {
        Ok(next)
            if next.plan_hash == current.plan_hash
                && next.bundle_version == current.bundle_version => {}
        Ok(mut next) => {
            let mut event = Event::new("reload", 0);
            event.plan = Some(&next.plan_hash);
            let _ = shared.audit.append(&event);
            tracing::info!(plan = %next.plan_hash, "policy reloaded");
            {
                let mut slot = shared.loaded.write().unwrap_or_else(|e| e.into_inner());
                // Numbered under the lock: a comparison of the live catalog
                // (`crate::drift`) may have put a generation in force since
                // `current` was read, and no two policies may share one.
                next.generation = slot.generation + 1;
                shared
                    .metrics
                    .reload_generation
                    .set(i64::try_from(next.generation).unwrap_or(i64::MAX));
                *slot = Arc::new(next);
            }
            // The new policy's lock is compared with the live catalog now.
            shared.schema_check.wake();
        }
        Err(error) => {
            let message = error.to_string();
            shared.metrics.reload_failures.inc();
            let mut event = Event::new("reload_failed", 0);
            event.plan = Some(&current.plan_hash);
            let first = message.lines().take(3).collect::<Vec<_>>().join(" ");
            event.reason = Some(&first);
            let _ = shared.audit.append(&event);
            tracing::error!(
                plan = %current.plan_hash,
                "the changed policy was not loaded; the current plan stays in force:\n{message}"
            );
        }
    }
}
