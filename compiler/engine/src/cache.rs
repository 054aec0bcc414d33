//! Repeated statements skip analysis: decisions per query text and per
//! statement shape (`engine::shape`: the text without its literals), kept
//! per group set (in its access table, so a reload, which builds new tables,
//! starts empty). Bounded: when full it is cleared, which costs one
//! re-analysis per statement and never a wrong answer.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::Decision;
use crate::shape::{Shape, ShapeEntry};

/// Entries kept per group set before the cache starts over.
const CAPACITY: usize = 4096;
/// Longer texts are not cached (they are rarely repeated verbatim, and the
/// key would cost memory).
const MAX_TEXT: usize = 8192;

/// Decisions by exact query text and by shape.
#[derive(Debug, Default)]
pub struct DecisionCache {
    /// Shared, not copied, on a hit: a hit is a reference count and a
    /// read lock, with nothing allocated. Read-write locks, so that the
    /// session threads looking up the same group set do not wait on each
    /// other.
    map: RwLock<HashMap<String, Arc<Decision>>>,
    shapes: RwLock<HashMap<String, ShapeEntry>>,
}

impl DecisionCache {
    /// The decision made before for `text`, if any.
    pub fn get(&self, text: &str) -> Option<Arc<Decision>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(text).cloned()
    }

    /// Remembers a decision.
    pub fn insert(&self, text: &str, decision: &Arc<Decision>) {
        if text.len() > MAX_TEXT {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(text.to_owned(), Arc::clone(decision));
    }

    /// The decision for `text` from the entry remembered for its shape.
    pub fn by_shape(&self, text: &str, shape: &Shape) -> Option<Decision> {
        let map = self.shapes.read().unwrap_or_else(|e| e.into_inner());
        map.get(&shape.key)?.instantiate(text, shape)
    }

    /// Remembers a shape's entry.
    pub fn insert_shape(&self, key: &str, entry: ShapeEntry) {
        let mut map = self.shapes.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key.to_owned(), entry);
    }

    /// Number of remembered shapes (for tests).
    pub fn shapes(&self) -> usize {
        self.shapes.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Number of entries (for tests).
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
