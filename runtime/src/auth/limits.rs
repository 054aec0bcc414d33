//! Limits on who may try and how often: failed authentications per peer
//! address and per service account (password guessing), and open sessions
//! per identity.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most keys a failure table keeps; past it, windows that are over go.
const MAX_TRACKED: usize = 65_536;

/// Failures of one key in the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failures per key in fixed windows that start at a key's first
/// failure.
#[derive(Debug)]
struct Failures<K> {
    by_key: Mutex<HashMap<K, Window>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    fn new() -> Self {
        Failures {
            by_key: Mutex::new(HashMap::new()),
        }
    }

    /// How long `key` must still wait, if it has used up `limit` failures.
    fn blocked(&self, key: &K, limit: u32, window: Duration, now: Instant) -> Option<Duration> {
        let map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let w = map.get(key)?;
        let over = w.started + window;
        (w.failures >= limit && now < over).then(|| over - now)
    }

    fn fail(&self, key: &K, window: Duration, now: Instant) {
        let mut map = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(key) {
            map.retain(|_, w| now < w.started + window);
        }
        let w = map.entry(key.clone()).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now >= w.started + window {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    fn clear(&self, key: &K) {
        self.by_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Why an attempt is refused before its credential is even looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Throttled {
    /// Too many failures from this address.
    #[error("too many failed authentications from this address; retry in {0} s")]
    Peer(u64),
    /// Too many failures for this service account, from anywhere.
    #[error("too many failed authentications for this account; retry in {0} s")]
    Account(u64),
}

/// Failed authentications per peer address and per service account: once
/// `limit` failures fall in one window, further attempts from that address
/// or for that account are refused without being checked until the window
/// ends. A success clears its account's count but not its address's, so a
/// client holding one good credential cannot reset its guessing budget.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    peers: Failures<IpAddr>,
    accounts: Failures<String>,
}

impl Throttle {
    /// `limit` failures per `window` (a limit of 0: no throttling).
    pub fn new(limit: u32, window: Duration) -> Self {
        Throttle {
            limit,
            window,
            peers: Failures::new(),
            accounts: Failures::new(),
        }
    }

    /// Whether an attempt from `peer`, for the service account `account`
    /// when it names one, may go ahead.
    pub fn check(&self, peer: IpAddr, account: Option<&str>) -> Result<(), Throttled> {
        self.check_at(peer, account, Instant::now())
    }

    fn check_at(&self, peer: IpAddr, account: Option<&str>, now: Instant) -> Result<(), Throttled> {
        if self.limit == 0 {
            return Ok(());
        }
        let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        if let Some(wait) = self.peers.blocked(&peer, self.limit, self.window, now) {
            return Err(Throttled::Peer(secs(wait)));
        }
        if let Some(account) = account
            && let Some(wait) =
                self.accounts
                    .blocked(&account.to_owned(), self.limit, self.window, now)
        {
            return Err(Throttled::Account(secs(wait)));
        }
        Ok(())
    }

    /// Counts a failed authentication.
    pub fn failed(&self, peer: IpAddr, account: Option<&str>) {
        self.failed_at(peer, account, Instant::now());
    }

    fn failed_at(&self, peer: IpAddr, account: Option<&str>, now: Instant) {
        if self.limit == 0 {
            return;
        }
        self.peers.fail(&peer, self.window, now);
        if let Some(account) = account {
            self.accounts.fail(&account.to_owned(), self.window, now);
        }
    }

    /// A successful login for `account` clears that account's count.
    pub fn succeeded(&self, account: Option<&str>) {
        if let Some(account) = account {
            self.accounts.clear(&account.to_owned());
        }
    }
}

/// Open sessions per identity (subject), against a limit.
#[derive(Debug, Default)]
pub struct SessionCounts {
    limit: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open session of a subject; dropping it frees the place.
#[derive(Debug)]
pub struct SessionSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    subject: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.subject) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.subject);
            }
        }
    }
}

impl SessionCounts {
    /// At most `limit` open sessions per subject (0: no limit).
    pub fn new(limit: usize) -> Self {
        SessionCounts {
            limit,
            open: Arc::default(),
        }
    }

    /// Takes a place for `subject`, or `None` when it has `limit` open.
    pub fn take(&self, subject: &str) -> Option<SessionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(subject.to_owned()).or_insert(0);
        if self.limit > 0 && *n >= self.limit {
            if *n == 0 {
                open.remove(subject);
            }
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            open: Arc::clone(&self.open),
            subject: subject.to_owned(),
        })
    }

    /// The most sessions a subject may have open (0: no limit).
    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn an_address_is_held_back_after_its_failures_until_the_window_ends() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.check_at(A, None, t0), Ok(()));
            t.failed_at(A, None, t0);
        }
        assert_eq!(t.check_at(A, None, t0), Err(Throttled::Peer(60)));
        // Another address is not affected.
        assert_eq!(t.check_at(B, None, t0), Ok(()));
        let later = t0 + Duration::from_secs(59);
        assert_eq!(t.check_at(A, None, later), Err(Throttled::Peer(1)));
        let over = t0 + Duration::from_secs(60);
        assert_eq!(t.check_at(A, None, over), Ok(()));
        // A new window starts with the next failure.
        t.failed_at(A, None, over);
        assert_eq!(t.check_at(A, None, over), Ok(()));
    }

    #[test]
    fn guessing_one_account_from_many_addresses_is_held_back_too() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3u8 {
            let peer = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, i));
            t.failed_at(peer, Some("etl"), t0);
        }
        let fresh = IpAddr::V4(std::net::Ipv4Addr::new(10, 2, 0, 1));
        assert_eq!(
            t.check_at(fresh, Some("etl"), t0),
            Err(Throttled::Account(60))
        );
        assert_eq!(t.check_at(fresh, Some("other"), t0), Ok(()));
        assert_eq!(t.check_at(fresh, None, t0), Ok(()));
    }

    #[test]
    fn a_success_clears_its_account_but_not_its_address() {
        let t = Throttle::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        t.failed_at(A, Some("etl"), t0);
        t.failed_at(A, Some("etl"), t0);
        t.succeeded(Some("etl"));
        assert_eq!(t.check_at(B, Some("etl"), t0), Ok(()));
        assert_eq!(t.check_at(A, Some("etl"), t0), Err(Throttled::Peer(60)));
    }

    #[test]
    fn a_limit_of_zero_turns_throttling_off() {
        let t = Throttle::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            t.failed(A, Some("etl"));
        }
        assert_eq!(t.check(A, Some("etl")), Ok(()));
    }

    #[test]
    fn sessions_per_subject_are_counted_and_freed() {
        let counts = SessionCounts::new(2);
        let a = counts.take("ci").unwrap();
        let _b = counts.take("ci").unwrap();
        assert!(counts.take("ci").is_none());
        assert!(counts.take("other").is_some());
        drop(a);
        assert!(counts.take("ci").is_some());
        let unlimited = SessionCounts::new(0);
        let held: Vec<_> = (0..100).map(|_| unlimited.take("ci").unwrap()).collect();
        assert_eq!(held.len(), 100);
    }
}
