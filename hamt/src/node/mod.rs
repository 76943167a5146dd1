//! HAMT nodes in py-hamt 3's layout: the one way in to them.
//!
//! A node is a DAG-CBOR list of exactly 256 slots. A slot is one of
//! - an empty map: nothing here,
//! - a map `{key: value-CID}` of at most `max_bucket_size` entries: a bucket,
//! - a one-element list `[CID]`: a link to a child node one level deeper.
//!
//! The rest of the crate sees [`Node`]'s methods and the [`Slot`]s they return: reads by
//! slot index, edits of a slot or of one bucket entry, the dirty children a flush seals, and
//! the encoding. Inside, in reading order:
//!
//! - this file: the node's fields and their invariants, reads and edits;
//! - [`format`](mod@format): the wire form, written by hand for this fixed shape (it is
//!   the hot path of every HAMT operation; tests check it against `serde_ipld_dagcbor`):
//!   encoding, decoding, and re-pointing a flushed node at its own block;
//! - [`bucket`]: a bucket, kept as its canonical CBOR bytes;
//! - the performance machinery, which can be read, or skipped, as one unit: [`cells`] (how
//!   the occupied slots are held) and [`memo`] (children remembered by their parent, with
//!   the cache prefetch hints of [`hint`]). Each sits behind a few calls and changes nothing
//!   a caller can see but time and memory.
//!
//! In memory only occupied slots are kept (a 256-bit bitmap plus their cells), and a child
//! that was changed since the last flush is held inline as a dirty child. Buckets are kept
//! as their canonical CBOR bytes in one buffer per node: a node read from the store shares
//! the block's bytes and costs one allocation (two past 32 slots or 64 KiB) however many
//! keys it holds; a changed bucket is appended to an owned buffer, which is compacted when
//! more than half of it is stale. Encoding copies bucket bytes as they are, and after a flush
//! a node is re-pointed at its own block. A small node keeps its slots' byte ranges in itself
//! ([`Cells::Small`]), so that a lookup or an insert in it reads no other allocation before
//! the bucket bytes.

mod bucket;
mod cells;
mod format;
mod hint;
mod memo;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;

use self::bucket::Place;
pub(crate) use self::bucket::{BucketRef, Entry, Insert, key_order};
use self::cells::{At, Cell, CellRef, Cells};
use self::memo::Memo;
use crate::link::Link;

/// Number of slots in a node (8 bits of the key hash per level).
pub(crate) const WIDTH: usize = 256;

/// Bytes in a key hash; the tree is at most this deep.
pub(crate) const HASH_LEN: usize = 32;

/// The BLAKE3-256 hash of a key, as py-hamt's `blake3_hashfn` computes it.
pub(crate) fn key_hash(key: &str) -> [u8; HASH_LEN] {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// An occupied slot, as readers see it.
#[derive(Debug, Clone)]
pub(crate) enum Slot<'a> {
    /// Entries in DAG-CBOR key order; never empty.
    Bucket(BucketRef<'a>),
    /// A child node as stored.
    Link(Link),
    /// A child node changed since the last flush.
    Dirty(&'a Node),
}

/// A position in a node's buffer. Buffers stay far below 4 GiB: decoded blocks are limited
/// to [`format::MAX_NODE_BYTES`], keys to [`MAX_KEY_LEN`], and stale bytes are compacted
/// away.
fn off(n: usize) -> u32 {
    u32::try_from(n).expect("node buffers stay below 4 GiB")
}

fn range(start: u32, end: u32) -> std::ops::Range<usize> {
    start as usize..end as usize
}

/// The longest key a HAMT takes: far beyond any real key, and small enough that a node of
/// full buckets of such keys stays addressable with 32-bit offsets.
pub(crate) const MAX_KEY_LEN: usize = 16 << 10;

/// A node's bucket bytes: the block it was read from, or an owned buffer once changed.
#[derive(Debug, Clone)]
enum Buf {
    Shared(Bytes),
    Owned(Vec<u8>),
}

impl Default for Buf {
    fn default() -> Self {
        Buf::Owned(Vec::new())
    }
}

impl Buf {
    fn as_slice(&self) -> &[u8] {
        match self {
            Buf::Shared(block) => block,
            Buf::Owned(v) => v,
        }
    }
}

/// A HAMT node.
///
/// # Invariants
///
/// - **Slots.** Bit `i` of `bitmap` is set exactly when slot `i` is occupied, and `cells`
///   holds the occupied slots in index order: a slot's rank (how many occupied slots come
///   before it) is its place in `cells`, and `cells.len()` is the number of bits set.
/// - **Popcount cache.** `below[w]` is the number of bits set in `bitmap[..w]`, so that a
///   rank counts the bits of one word (the build's baseline x86-64 has no popcount
///   instruction). Only [`set_bit`](Self::set_bit) writes the bitmap, and it updates `below`
///   with it; [`rank`](Self::rank) checks the cache in debug builds.
/// - **Buffer.** Each bucket cell names the byte range of its canonical encoding in `buf`,
///   each link cell the range of its binary CID; no two cells share bytes. A shared buffer is
///   a block, the node's own encoding (after a decode or a rebase): its other bytes are the
///   list's framing. The first edit makes the buffer owned, copying out only the named
///   ranges; bytes are then only ever appended, never rewritten, so a range stays valid
///   until its cell is replaced or the buffer is compacted.
/// - **Stale bytes.** `stale` is the number of bytes of an owned buffer that no cell names:
///   replacing or removing a bucket or a link adds its length ([`release`](Self::release),
///   [`splice_bucket`](Self::splice_bucket)); a dirty child has no bytes. It is 0 for a
///   shared buffer, whose framing is not counted. Once it reaches [`COMPACT_MIN`] and more
///   than half the buffer, the live ranges are copied into a fresh buffer and it is 0 again:
///   after every edit, the stale bytes are fewer than [`COMPACT_MIN`] or than the live ones.
/// - **Remembered children** (`children`): the children loaded through this node's links,
///   by rank; forgotten whenever a slot is added, removed or replaced
///   ([`edited`](Self::edited)), kept when bytes only move (see [`memo`]).
/// - A node that is shared (an `Arc` in the node cache, or a reader's root) has no dirty
///   children and is never edited: an edit goes to a copy, made with an empty memo.
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    bitmap: [u64; 4],
    below: [u8; 4],
    cells: Cells<Node>,
    buf: Buf,
    stale: usize,
    children: Memo<Node>,
}

/// Compact an owned buffer once this many bytes, and more than half of it, are stale.
const COMPACT_MIN: usize = 512;

impl Node {
    /// The rank of slot `index`: how many occupied slots come before it (where it would be
    /// among them, if it is empty).
    fn rank(&self, index: u8) -> usize {
        let word = usize::from(index / 64);
        let mask = (1u64 << (index % 64)) - 1;
        debug_assert_eq!(
            u32::from(self.below[word]),
            self.bitmap[..word]
                .iter()
                .map(|w| w.count_ones())
                .sum::<u32>()
        );
        usize::from(self.below[word]) + (self.bitmap[word] & mask).count_ones() as usize
    }

    /// Sets or clears the bit of `index`, keeping [`below`](Self::below) in step.
    fn set_bit(&mut self, index: u8, set: bool) {
        let word = usize::from(index / 64);
        let bit = 1u64 << (index % 64);
        if set == (self.bitmap[word] & bit != 0) {
            return;
        }
        self.bitmap[word] ^= bit;
        for below in &mut self.below[word + 1..] {
            // At most 192 bits lie before the last word.
            *below = if set { *below + 1 } else { *below - 1 };
        }
    }

    fn is_set(&self, index: u8) -> bool {
        self.bitmap[usize::from(index / 64)] & (1 << (index % 64)) != 0
    }

    fn view<'a>(&'a self, cell: CellRef<'a, Node>) -> Slot<'a> {
        match cell {
            CellRef::Bucket(start, end) => {
                Slot::Bucket(BucketRef::new(&self.buf.as_slice()[range(start, end)]))
            }
            CellRef::Link(start, end) => Slot::Link(
                Link::from_bytes(&self.buf.as_slice()[range(start, end)])
                    .expect("link bytes are validated when stored"),
            ),
            CellRef::Dirty(child) => Slot::Dirty(child),
        }
    }

    /// The slot at `index`, if occupied.
    pub(crate) fn get(&self, index: u8) -> Option<Slot<'_>> {
        if !self.is_set(index) {
            return None;
        }
        Some(self.view(self.cells.get(self.at(index))))
    }

    /// Where the slot at `index` is. A wide node finds slots by index alone, so its rank is
    /// not counted.
    fn at(&self, index: u8) -> At {
        let rank = match self.cells {
            Cells::Wide(_) => 0,
            _ => self.rank(index),
        };
        At { index, rank }
    }

    /// Forgets the remembered children: a slot is about to be added, removed or replaced.
    fn edited(&mut self) {
        self.children.forget();
    }

    /// An empty node with room for `bytes` bytes of buckets.
    pub(crate) fn with_capacity(bytes: usize) -> Node {
        Node {
            buf: Buf::Owned(Vec::with_capacity(bytes)),
            ..Node::default()
        }
    }

    /// The child behind the link at `index`, if it was loaded through this node before and
    /// is still in memory.
    pub(crate) fn known_child(&self, index: u8) -> Option<Arc<Node>> {
        // An empty slot's rank is its next neighbour's: that child is not this slot's.
        if !self.is_set(index) {
            return None;
        }
        self.children.get(|| self.rank(index))
    }

    /// Remembers `child` as the node behind the link at `index`.
    pub(crate) fn remember_child(&self, index: u8, child: &Arc<Node>) {
        if !self.is_set(index) {
            return;
        }
        let bytes = child.buf.as_slice();
        self.children
            .remember(self.rank(index), self.cells.len(), child, bytes);
    }

    /// The dirty child at `index`, mutably.
    pub(crate) fn child_mut(&mut self, index: u8) -> Option<&mut Node> {
        if !self.is_set(index) {
            return None;
        }
        // A small node holds no dirty child: no need to count the rank.
        if let Cells::Small(_) = self.cells {
            return None;
        }
        let at = self.at(index);
        self.cells.dirty_mut(at)
    }

    /// Puts `cell` at `index`, replacing what was there.
    fn set(&mut self, index: u8, cell: Cell<Node>) {
        self.edited();
        let at = self.at(index);
        let occupied = set_bits(self.bitmap);
        if self.is_set(index) {
            let old = self.cells.replace(at, cell, occupied);
            self.release(&old);
        } else {
            self.set_bit(index, true);
            self.cells.insert(at, cell, occupied);
        }
    }

    /// Accounts for buffer bytes no longer in use.
    fn release(&mut self, cell: &Cell<Node>) {
        if let (Cell::Bucket(start, end) | Cell::Link(start, end), Buf::Owned(_)) =
            (cell, &self.buf)
        {
            self.stale += (end - start) as usize;
        }
    }

    /// Appends `link`'s binary CID to the buffer; returns its range.
    fn push_link(&mut self, link: &Link) -> (u32, u32) {
        let buf = self.owned();
        let start = buf.len();
        link.write_bytes(buf);
        (off(start), off(buf.len()))
    }

    /// Links `index` to a stored child.
    pub(crate) fn set_link(&mut self, index: u8, link: &Link) {
        let (start, end) = self.push_link(link);
        self.set(index, Cell::Link(start, end));
    }

    /// Puts a changed child at `index`.
    pub(crate) fn set_dirty(&mut self, index: u8, child: Node) {
        self.set(index, Cell::Dirty(Box::new(child)));
    }

    /// Puts a bucket of `entries` (any order, distinct keys, at least one) at `index`.
    pub(crate) fn set_bucket(&mut self, index: u8, entries: &mut [Entry]) {
        let buf = self.owned();
        let start = buf.len();
        bucket::write_bucket(buf, entries);
        let end = buf.len();
        self.set(index, Cell::Bucket(off(start), off(end)));
        self.maybe_compact();
    }

    /// Puts a bucket of one entry at `index`.
    pub(crate) fn set_single(&mut self, index: u8, key: &str, value: &Link) {
        let buf = self.owned();
        let start = buf.len();
        bucket::write_header(buf, 1);
        value.with_bytes(|cid| bucket::write_entry(buf, key.as_bytes(), cid));
        let end = buf.len();
        self.set(index, Cell::Bucket(off(start), off(end)));
        self.maybe_compact();
    }

    /// Sets `key` to `value` in the bucket at `index` unless that would take it past `max`
    /// entries. The slot must hold a bucket.
    pub(crate) fn bucket_insert(
        &mut self,
        index: u8,
        key: &str,
        value: &Link,
        max: usize,
    ) -> Insert {
        let slot = self.at(index);
        let Some(Slot::Bucket(old)) = self.get(index) else {
            unreachable!("bucket_insert is only called on buckets")
        };
        let (len, header) = (old.len(), old.header_len());
        let place = old.place(key);
        let (at, after, replaced, new_len) = match place {
            Place::Found { start, end, old } => (start, end, Some(old), len),
            Place::Missing { .. } if len >= max => return Insert::Full,
            Place::Missing { at } => (at, at, None, len + 1),
        };
        self.splice_bucket(slot, header, new_len, at..after, Some((key, value)));
        match replaced {
            Some(old) => Insert::Replaced(old),
            None => Insert::Added,
        }
    }

    /// Rewrites the bucket at `at` (map header `header` bytes long) with `new_len`
    /// entries: `cut`, a span of its entries, replaced by `entry` (or by nothing). The new
    /// bucket is appended to the owned buffer and the old one counted stale.
    fn splice_bucket(
        &mut self,
        at: At,
        header: usize,
        new_len: usize,
        cut: std::ops::Range<usize>,
        entry: Option<(&str, &Link)>,
    ) {
        self.owned();
        // `owned` may have compacted the buffer: find the bucket again.
        let CellRef::Bucket(start, end) = self.cells.get(at) else {
            unreachable!("the cell is a bucket")
        };
        let (start, end) = (start as usize, end as usize);
        let Buf::Owned(buf) = &mut self.buf else {
            unreachable!("owned() made the buffer owned")
        };
        let new_start = buf.len();
        bucket::write_header(buf, new_len);
        buf.extend_from_within(start + header..start + cut.start);
        if let Some((key, value)) = entry {
            value.with_bytes(|cid| bucket::write_entry(buf, key.as_bytes(), cid));
        }
        buf.extend_from_within(start + cut.end..end);
        let new_end = buf.len();
        self.cells.set_range(at, off(new_start), off(new_end));
        self.stale += end - start;
        self.maybe_compact();
    }

    /// Removes `key` from the bucket at `index` (emptying the slot with its last key);
    /// returns its value.
    pub(crate) fn bucket_remove(&mut self, index: u8, key: &str) -> Option<Link> {
        let slot = self.at(index);
        let Some(Slot::Bucket(old)) = self.get(index) else {
            return None;
        };
        let (len, header) = (old.len(), old.header_len());
        let Place::Found {
            start: at,
            end: after,
            old,
        } = old.place(key)
        else {
            return None;
        };
        if len == 1 {
            self.clear(index);
            return Some(old);
        }
        self.splice_bucket(slot, header, len - 1, at..after, None);
        Some(old)
    }

    /// Empties the slot at `index`; true when it was occupied.
    pub(crate) fn clear(&mut self, index: u8) -> bool {
        if !self.is_set(index) {
            return false;
        }
        self.edited();
        let at = self.at(index);
        self.set_bit(index, false);
        let old = self.cells.remove(at);
        self.release(&old);
        true
    }

    /// The buffer, made owned: a shared block is copied, keeping only its buckets.
    fn owned(&mut self) -> &mut Vec<u8> {
        if let Buf::Shared(_) = self.buf {
            self.compact();
        }
        match &mut self.buf {
            Buf::Owned(v) => v,
            Buf::Shared(_) => unreachable!("compact() makes the buffer owned"),
        }
    }

    fn maybe_compact(&mut self) {
        if let Buf::Owned(v) = &self.buf
            && self.stale >= COMPACT_MIN
            && self.stale * 2 > v.len()
        {
            self.compact();
        }
    }

    /// Copies the live buckets into a fresh owned buffer.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.buf);
        let old = old.as_slice();
        let live: usize = self
            .cells
            .iter()
            .map(|c| match c {
                CellRef::Bucket(s, e) | CellRef::Link(s, e) => (e - s) as usize,
                CellRef::Dirty(_) => 0,
            })
            .sum();
        let mut buf = Vec::with_capacity(live + live / 2 + 64);
        for (rank, index) in set_bits(self.bitmap).enumerate() {
            let at = At { index, rank };
            if let CellRef::Bucket(start, end) | CellRef::Link(start, end) = self.cells.get(at) {
                let new_start = off(buf.len());
                buf.extend_from_slice(&old[range(start, end)]);
                self.cells.set_range(at, new_start, off(buf.len()));
            }
        }
        self.buf = Buf::Owned(buf);
        self.stale = 0;
    }

    /// The occupied slots in index order.
    pub(crate) fn slots(&self) -> impl DoubleEndedIterator<Item = Slot<'_>> {
        self.cells.iter().map(|c| self.view(c))
    }

    /// The occupied slots with their indices.
    #[cfg(test)]
    pub(crate) fn indexed_slots(&self) -> impl Iterator<Item = (u8, Slot<'_>)> {
        set_bits(self.bitmap).zip(self.slots())
    }

    /// The dirty children, in index order.
    pub(crate) fn dirty_children(&self) -> impl Iterator<Item = &Node> {
        self.cells.iter().filter_map(|c| match c {
            CellRef::Dirty(child) => Some(child),
            _ => None,
        })
    }

    /// The dirty children with their indices, mutably, in index order.
    pub(crate) fn dirty_children_mut(&mut self) -> Vec<(u8, &mut Node)> {
        self.edited();
        self.cells.dirty_children_mut(set_bits(self.bitmap))
    }

    /// The indices of the dirty children, in order.
    pub(crate) fn dirty_indices(&self) -> Vec<u8> {
        if let Cells::Small(_) = self.cells {
            return Vec::new();
        }
        set_bits(self.bitmap)
            .zip(self.cells.iter())
            .filter(|(_, c)| matches!(c, CellRef::Dirty(_)))
            .map(|(i, _)| i)
            .collect()
    }

    /// Replaces the dirty child at `index` with the link `seal` returns for it.
    pub(crate) fn seal_child(&mut self, index: u8, seal: impl FnOnce(Node) -> Link) {
        if self.is_set(index) {
            self.seal_at(self.at(index), seal);
        }
    }

    /// Replaces every dirty child, in index order, with the link `seal` returns for it.
    pub(crate) fn seal_children(&mut self, mut seal: impl FnMut(Node) -> Link) {
        if let Cells::Small(_) = self.cells {
            return;
        }
        for (rank, index) in set_bits(self.bitmap).enumerate() {
            self.seal_at(At { index, rank }, &mut seal);
        }
    }

    /// Replaces the slot `at`, if it is a dirty child, with the link `seal` returns for it.
    fn seal_at(&mut self, at: At, seal: impl FnOnce(Node) -> Link) {
        // An empty range stands in while the child is sealed.
        let Some(child) = self.cells.take_dirty(at) else {
            return;
        };
        self.edited();
        let link = seal(child);
        let (start, end) = self.push_link(&link);
        self.cells.set_range(at, start, end);
    }

    /// Marks a node without bytes, so that a test can tell it apart among its parent's dirty
    /// children. The mark is kept in `stale`, which such a node does not otherwise use.
    #[cfg(test)]
    pub(crate) fn mark(&mut self, mark: u32) {
        self.stale = mark as usize;
    }

    /// The mark [`mark`](Self::mark) set.
    #[cfg(test)]
    pub(crate) fn mark_of(&self) -> u32 {
        u32::try_from(self.stale).unwrap_or(u32::MAX)
    }

    /// Number of occupied slots: a lower bound on the keys under this node, as each bucket
    /// and each child holds at least one.
    pub(crate) fn occupied(&self) -> usize {
        self.cells.len()
    }

    /// True when no slot is occupied.
    pub(crate) fn is_empty(&self) -> bool {
        self.cells.len() == 0
    }

    /// An estimate of the memory this node takes, for the cache budget.
    pub(crate) fn mem_size(&self) -> usize {
        let buf = match &self.buf {
            Buf::Shared(block) => block.len(),
            Buf::Owned(v) => v.capacity(),
        };
        // The allocator's per-allocation overhead included.
        std::mem::size_of::<Self>() + self.cells.heap_bytes() + buf + 32
    }
}

/// The indices of the bits set in a node's bitmap, in order.
fn set_bits(bitmap: [u64; 4]) -> impl Iterator<Item = u8> {
    (0..4u8).flat_map(move |word| {
        let mut bits = bitmap[usize::from(word)];
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            // Below 64: the lowest set bit of a non-zero word.
            let bit = u8::try_from(bits.trailing_zeros()).unwrap_or(0);
            bits &= bits - 1;
            Some(word * 64 + bit)
        })
    })
}
