//! The children a node remembers: those already loaded through its links, so that following
//! a link again skips the cache's lookup, and asks the CPU for the child's memory early.
//!
//! # Invariants
//!
//! - A memo is indexed by rank (the position among the node's occupied slots) and sized to
//!   the number of occupied slots when the first child is remembered. The node
//!   [`forget`](Memo::forget)s it whenever a slot is added, removed or replaced, as ranks or
//!   links then change; moving bytes within the node's buffer (compaction, a rebase onto the
//!   node's own block) keeps every rank and link, and the memo with them.
//! - A remembered child is held weakly: the node cache alone decides what stays in memory.
//!   A child it dropped is loaded through the cache again, and its place in the memo stays
//!   empty of it (a place is set once) until the memo is forgotten.
//! - A copy of a node starts with an empty memo: copies are made to be edited.

use std::sync::{Arc, OnceLock, Weak};

use super::hint::{self, LINE};

/// The children remembered by rank.
pub(super) struct Memo<T>(OnceLock<Box<[OnceLock<Known<T>>]>>);

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<T> Clone for Memo<T> {
    /// A copy starts empty: it is about to be edited.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<T> std::fmt::Debug for Memo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Children")
    }
}

impl<T> Memo<T> {
    /// The child remembered at the rank `rank` gives, if it is still in memory. The rank is
    /// only counted when some child is remembered.
    #[inline]
    pub(super) fn get(&self, rank: impl FnOnce() -> usize) -> Option<Arc<T>> {
        let known = self.0.get()?;
        known.get(rank())?.get()?.get()
    }

    /// Remembers `child`, whose bytes are `bytes`, at `rank` of a node of `slots` occupied
    /// slots.
    pub(super) fn remember(&self, rank: usize, slots: usize, child: &Arc<T>, bytes: &[u8]) {
        let known = self
            .0
            .get_or_init(|| (0..slots).map(|_| OnceLock::new()).collect());
        if let Some(place) = known.get(rank) {
            // A place whose child was dropped stays empty of it: later loads go to the cache.
            let _ = place.set(Known::new(child, bytes));
        }
    }

    /// Forgets every remembered child.
    #[inline]
    pub(super) fn forget(&mut self) {
        // Only when set: an insert into a dirty node writes no more of it than it must.
        if self.0.get().is_some() {
            *self = Self::default();
        }
    }
}

/// A remembered child, and where its bytes lie.
///
/// A lookup reads the child's reference count, then the node's fields (several lines
/// further), then the bytes of one of its buckets: cache misses that each wait on the one
/// before. With the addresses at hand it asks for them all before reading the count, so
/// that the misses overlap (a sixth to a quarter off a lookup in a tree of a million keys).
/// A child's bytes never move while it is alive.
pub(super) struct Known<T> {
    node: Weak<T>,
    /// The address of the first cache line of the bytes, plus in its low bits the number
    /// of lines to load.
    bytes: usize,
}

/// Children whose bytes span more lines get no prefetch: a leaf of a large tree (about
/// fifteen keys) spans fewer.
pub(super) const PREFETCH_LINES: usize = 16;

impl<T> Known<T> {
    pub(super) fn new(child: &Arc<T>, bytes: &[u8]) -> Self {
        let (first, lines) = hint::lines(bytes.as_ptr().addr(), bytes.len());
        // A larger child is a branch: lookups pass through it to its own remembered
        // children without reading its bytes.
        let lines = if lines > PREFETCH_LINES { 0 } else { lines };
        Self {
            node: Arc::downgrade(child),
            bytes: first | lines,
        }
    }

    /// The child, after asking the CPU to load its node and bytes.
    #[inline]
    pub(super) fn get(&self) -> Option<Arc<T>> {
        // The node, from the reference counts the `Arc` keeps just before it: the upgrade
        // reads them and the lookup then reads the node's fields, several lines further.
        let counts = 2 * size_of::<usize>();
        let node = self.node.as_ptr().addr().wrapping_sub(counts);
        let (first, lines) = hint::lines(node, counts + size_of::<T>());
        hint::prefetch(first, lines);
        hint::prefetch(self.bytes & !(LINE - 1), self.bytes & (LINE - 1));
        self.node.upgrade()
    }

    /// The first cache line of the bytes and how many lines the hint loads.
    #[cfg(test)]
    pub(super) fn lines(&self) -> (usize, usize) {
        (self.bytes & !(LINE - 1), self.bytes & (LINE - 1))
    }
}
