//! Matching the server's responses to what the proxy sent in the extended
//! query protocol. When the engine refuses a `Parse`, the proxy sends the
//! server its own `Parse`/`Bind`/`Execute` of a statement that raises the
//! refusal, so the error arrives in order and the server skips to `Sync`
//! exactly as it would after its own error. The client never sent those
//! messages, so their `ParseComplete` and `BindComplete` are dropped here.

use std::collections::VecDeque;

use crate::wire::kinds::Backend;

/// A message forwarded upstream whose completion reply must be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The client's `Parse` (reply: `ParseComplete`, forwarded).
    ClientParse,
    /// The proxy's own `Parse` (reply dropped).
    OwnParse,
    /// The client's `Bind` (reply: `BindComplete`, forwarded).
    ClientBind,
    /// The proxy's own `Bind` (reply dropped).
    OwnBind,
}

/// Sent messages grouped by the `Sync` (or simple `Query`) that ends them:
/// the server answers segments in order, each ending in ReadyForQuery.
#[derive(Debug, Default)]
pub struct Tracker {
    closed: VecDeque<VecDeque<Sent>>,
    open: VecDeque<Sent>,
}

impl Tracker {
    /// Records a forwarded message.
    pub fn sent(&mut self, sent: Sent) {
        self.open.push_back(sent);
    }

    /// Records a forwarded `Sync` or `Query`: the open segment is complete.
    pub fn close(&mut self) {
        let segment = std::mem::take(&mut self.open);
        self.closed.push_back(segment);
    }

    fn current(&mut self) -> &mut VecDeque<Sent> {
        match self.closed.front_mut() {
            Some(segment) => segment,
            None => &mut self.open,
        }
    }

    /// Accounts for one server message; `false` means it answers one of the
    /// proxy's own messages and must not reach the client.
    pub fn response(&mut self, kind: Backend) -> bool {
        let (mine, theirs) = match kind {
            Backend::ParseComplete => (Sent::OwnParse, Sent::ClientParse),
            Backend::BindComplete => (Sent::OwnBind, Sent::ClientBind),
            Backend::Error => {
                // The server skips everything up to the next Sync.
                self.current().clear();
                return true;
            }
            Backend::ReadyForQuery => {
                if self.closed.pop_front().is_none() {
                    self.open.clear();
                }
                return true;
            }
            _ => return true,
        };
        let segment = self.current();
        while let Some(front) = segment.pop_front() {
            if front == mine {
                return false;
            }
            if front == theirs {
                return true;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_completions_are_dropped_in_order() {
        let mut t = Tracker::default();
        t.sent(Sent::ClientParse);
        t.sent(Sent::ClientBind);
        t.sent(Sent::OwnParse);
        t.sent(Sent::OwnBind);
        t.close();
        assert!(t.response(Backend::of(b'1')));
        assert!(t.response(Backend::of(b'2')));
        assert!(t.response(Backend::of(b'D')));
        assert!(t.response(Backend::of(b'C')));
        assert!(!t.response(Backend::of(b'1')));
        assert!(!t.response(Backend::of(b'2')));
        assert!(t.response(Backend::of(b'E')));
        assert!(t.response(Backend::of(b'Z')));
    }

    #[test]
    fn a_server_error_before_ours_cancels_the_drop() {
        let mut t = Tracker::default();
        t.sent(Sent::ClientParse);
        t.sent(Sent::OwnParse);
        t.sent(Sent::OwnBind);
        t.close();
        // The client's own Parse fails: the server skips ours.
        assert!(t.response(Backend::of(b'E')));
        assert!(t.response(Backend::of(b'Z')));
        // The next segment is unaffected.
        t.sent(Sent::ClientParse);
        t.close();
        assert!(t.response(Backend::of(b'1')));
        assert!(t.response(Backend::of(b'Z')));
    }

    #[test]
    fn pipelined_segments_are_matched_separately() {
        let mut t = Tracker::default();
        t.sent(Sent::ClientParse);
        t.close();
        t.sent(Sent::OwnParse);
        t.sent(Sent::OwnBind);
        t.close();
        assert!(t.response(Backend::of(b'1')));
        assert!(t.response(Backend::of(b'Z')));
        assert!(!t.response(Backend::of(b'1')));
        assert!(!t.response(Backend::of(b'2')));
        assert!(t.response(Backend::of(b'E')));
        assert!(t.response(Backend::of(b'Z')));
    }
}
