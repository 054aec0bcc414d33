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
}

impl std::fmt::Debug for PolicyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyWatcher")
    }
}

/// Watches the policy directory and the schema lock.
pub fn watch(shared: Arc<Shared>, config: Config) -> Result<PolicyWatcher, String> {
    let (tree, lock) = match config.policy.source() {
        PolicySource::Sources { dir, lock } => (dir.to_path_buf(), Some(lock.to_path_buf())),
        // A bundle is replaced file by file, manifest last; a reload that
        // sees a half-written bundle fails its digests and keeps the old one.
        PolicySource::Bundle(dir) => (dir.to_path_buf(), None),
    };
    let (tx, rx) = mpsc::channel::<()>();
    let (watched_tree, watched_lock) = (tree.clone(), lock.clone());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only changes to the policy or to the lock file count: the lock's
        // directory may hold busy files (the audit trail, written for every
        // statement), whose changes would keep the reload from settling.
        let relevant = event.is_ok_and(|e| {
            !e.kind.is_access()
                && e.paths.iter().any(|p| {
                    p.starts_with(&watched_tree) || watched_lock.as_deref() == Some(p.as_path())
                })
        });
        if relevant {
            let _ = tx.send(());
        }
    })
    .map_err(|e| format!("cannot watch the policy: {e}"))?;
    // Watch the lock file's directory, not the file: tools replace files by
    // renaming, which a watch on the old file would miss.
    let lock_dir = lock.as_ref().map(|lock| {
        lock.parent()
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    });
    watcher
        .watch(&tree, RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e}", tree.display()))?;
    if let Some(lock_dir) = lock_dir {
        watcher
            .watch(&lock_dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", lock_dir.display()))?;
    }
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
    Ok(PolicyWatcher { _watcher: watcher })
}

/// Compiles the policy again and swaps it in if it compiles and differs.
pub fn reload(shared: &Shared, config: &Config) {
    let current = shared.current();
    match start::compile_policy(config, current.generation + 1) {
        Ok(next) if next.plan_hash == current.plan_hash => {}
        Ok(next) => {
            let mut event = Event::new("reload", 0);
            event.plan = Some(&next.plan_hash);
            let _ = shared.audit.append(&event);
            eprintln!(
                "clsf-proxy: policy reloaded, enforcing plan {}",
                next.plan_hash
            );
            shared
                .metrics
                .reload_generation
                .set(i64::try_from(next.generation).unwrap_or(i64::MAX));
            *shared.loaded.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        }
        Err(message) => {
            shared.metrics.reload_failures.inc();
            let mut event = Event::new("reload_failed", 0);
            event.plan = Some(&current.plan_hash);
            let first = message.lines().take(3).collect::<Vec<_>>().join(" ");
            event.reason = Some(&first);
            let _ = shared.audit.append(&event);
            eprintln!(
                "clsf-proxy: the changed policy was not loaded; plan {} stays in force:\n{message}",
                current.plan_hash
            );
        }
    }
}
