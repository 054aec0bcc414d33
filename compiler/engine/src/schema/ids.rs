//! Typed positions of relations and columns in a [`Schema`](super::Schema):
//! a relation's place in `Schema::relations` and a column's place in its
//! relation's `columns`. Every table of the plan and of an access table is
//! laid out the same way (`classes[rel][col]`, `columns[rel][col]`), so the
//! two positions index them all; as distinct types they cannot be swapped.
//!
//! Written by hand rather than with an index-vector crate: the tables stay
//! plain `Vec`s (serialised as they always were), and two `Index` impls are
//! all the typing needs.

use std::ops::{Index, IndexMut};

use serde::{Deserialize, Serialize};

/// A relation's position in `Schema::relations`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct RelId(pub usize);

/// A column's position in its relation's `columns` (attribute order).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct ColId(pub usize);

impl RelId {
    /// The position as a plain index.
    pub fn index(self) -> usize {
        self.0
    }
}

impl ColId {
    /// The position as a plain index.
    pub fn index(self) -> usize {
        self.0
    }

    /// The columns `0..count` of a relation.
    pub fn all(count: usize) -> impl DoubleEndedIterator<Item = ColId> + ExactSizeIterator {
        (0..count).map(ColId)
    }
}

impl std::fmt::Display for RelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "relation #{}", self.0)
    }
}

impl std::fmt::Display for ColId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column #{}", self.0)
    }
}

impl<T> Index<RelId> for Vec<T> {
    type Output = T;
    fn index(&self, id: RelId) -> &T {
        &self[id.0]
    }
}

impl<T> IndexMut<RelId> for Vec<T> {
    fn index_mut(&mut self, id: RelId) -> &mut T {
        &mut self[id.0]
    }
}

impl<T> Index<ColId> for Vec<T> {
    type Output = T;
    fn index(&self, id: ColId) -> &T {
        &self[id.0]
    }
}

impl<T> IndexMut<ColId> for Vec<T> {
    fn index_mut(&mut self, id: ColId) -> &mut T {
        &mut self[id.0]
    }
}

impl<T> Index<ColId> for [T] {
    type Output = T;
    fn index(&self, id: ColId) -> &T {
        &self[id.0]
    }
}

impl<T> Index<RelId> for [T] {
    type Output = T;
    fn index(&self, id: RelId) -> &T {
        &self[id.0]
    }
}

impl<T> IndexMut<ColId> for [T] {
    fn index_mut(&mut self, id: ColId) -> &mut T {
        &mut self[id.0]
    }
}

impl<T> IndexMut<RelId> for [T] {
    fn index_mut(&mut self, id: RelId) -> &mut T {
        &mut self[id.0]
    }
}
