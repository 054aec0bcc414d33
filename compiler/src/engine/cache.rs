//! Repeated statements skip analysis: decisions per query text, kept per
//! group set (in its access table, so a reload, which builds new tables,
//! starts empty). Bounded: when full it is cleared, which costs one
//! re-analysis per statement and never a wrong answer.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::engine::Decision;

/// Entries kept per group set before the cache starts over.
const CAPACITY: usize = 4096;
/// Longer texts are not cached (they are rarely repeated verbatim, and the
/// key would cost memory).
const MAX_TEXT: usize = 8192;

/// Decisions by exact query text.
#[derive(Debug, Default)]
pub struct DecisionCache {
    map: Mutex<HashMap<String, Decision>>,
}

impl DecisionCache {
    /// The decision made before for `text`, if any.
    pub fn get(&self, text: &str) -> Option<Decision> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(text).cloned()
    }

    /// Remembers a decision.
    pub fn insert(&self, text: &str, decision: &Decision) {
        if text.len() > MAX_TEXT {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(text.to_owned(), decision.clone());
    }

    /// Number of entries (for tests).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
