//! HAMT nodes in py-hamt 3's layout, and their DAG-CBOR encoding.
//!
//! A node is a DAG-CBOR list of exactly 256 slots. A slot is one of
//! - an empty map: nothing here,
//! - a map `{key: value-CID}` of at most `max_bucket_size` entries: a bucket,
//! - a one-element list `[CID]`: a link to a child node one level deeper.
//!
//! In memory only occupied slots are kept (a 256-bit bitmap plus their [`Cells`]),
//! and a child that was changed since the last flush is held inline as a dirty child.
//! Buckets are kept as their canonical CBOR bytes in one buffer per node (see
//! [`bucket`](crate::bucket)): a node read from the store shares the block's bytes and
//! costs one allocation (two past 32 slots or 64 KiB) however many keys it holds; a changed
//! bucket is appended to an owned buffer, which is compacted when more than half of it is
//! stale. Encoding copies bucket bytes as they are, and after a flush a node is re-pointed at
//! its own block.
//! A small node keeps its slots' byte ranges in itself ([`Cells::Small`]), so that a
//! lookup or an insert in it reads no other allocation before the bucket bytes.
//!
//! Encoding and decoding are written by hand for this fixed shape: it is the hot path of
//! every HAMT operation, and the output is checked against `serde_ipld_dagcbor` in tests.

use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use cid::Cid;

pub(crate) use crate::bucket::key_order;
use crate::bucket::{self, BucketRef, Insert, Place, Reader};
use crate::cells::{At, Cell, CellRef, Cells};
use crate::error::{Error, Result};
use crate::hint::{self, LINE};
use crate::link::Link;

/// Number of slots in a node (8 bits of the key hash per level).
pub(crate) const WIDTH: usize = 256;

/// Bytes in a key hash; the tree is at most this deep.
pub(crate) const HASH_LEN: usize = 32;

/// The BLAKE3-256 hash of a key, as py-hamt's `blake3_hashfn` computes it.
pub(crate) fn key_hash(key: &str) -> [u8; HASH_LEN] {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// One key of a bucket and the CID of its value block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: Box<str>,
    pub(crate) value: Link,
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
/// to [`MAX_NODE_BYTES`], keys to [`MAX_KEY_LEN`](crate::node::MAX_KEY_LEN), and stale bytes
/// are compacted away.
fn off(n: usize) -> u32 {
    u32::try_from(n).expect("node buffers stay below 4 GiB")
}

fn range(start: u32, end: u32) -> std::ops::Range<usize> {
    start as usize..end as usize
}

/// The largest node block decoded.
const MAX_NODE_BYTES: usize = 256 << 20;

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
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    bitmap: [u64; 4],
    /// `below[w]`: the bits set in the bitmap's words before word `w`, so that a rank counts
    /// the bits of one word (the build's baseline x86-64 has no popcount instruction).
    below: [u8; 4],
    cells: Cells,
    buf: Buf,
    /// Bytes of an owned buffer no bucket uses any more.
    stale: usize,
    children: Children,
}

/// The children already loaded through a node's links, by cell, so that following a link
/// again skips the cache's lookup. Weak: the node cache alone decides what stays in memory,
/// and a child it dropped is loaded through it again. Emptied whenever a cell is added,
/// removed or replaced (moving bytes within the buffer keeps ranks and kinds, so it stays).
#[derive(Default)]
struct Children(OnceLock<Box<[OnceLock<Known>]>>);

/// A remembered child, and where its bucket bytes lie.
///
/// A lookup reads the child's reference count, then the node's fields (several lines
/// further), then the bytes of one of its buckets: cache misses that each wait on the one
/// before. With the addresses at hand it asks for them all before reading the count, so
/// that the misses overlap (a sixth to a quarter off a lookup in a tree of a million keys).
/// A child's bytes never move while it is alive.
struct Known {
    node: Weak<Node>,
    /// The address of the first cache line of the bytes, plus in its low bits the number
    /// of lines to load.
    bytes: usize,
}

/// Children whose bytes span more lines get no prefetch: a leaf of a large tree (about
/// fifteen keys) spans fewer.
const PREFETCH_LINES: usize = 16;

impl Known {
    fn new(child: &Arc<Node>) -> Self {
        let bytes = child.buf.as_slice();
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
    fn get(&self) -> Option<Arc<Node>> {
        // The node, from the reference counts the `Arc` keeps just before it: the upgrade
        // reads them and the lookup then reads the node's fields, several lines further.
        let counts = 2 * size_of::<usize>();
        let node = self.node.as_ptr().addr().wrapping_sub(counts);
        let (first, lines) = hint::lines(node, counts + size_of::<Node>());
        hint::prefetch(first, lines);
        hint::prefetch(self.bytes & !(LINE - 1), self.bytes & (LINE - 1));
        self.node.upgrade()
    }
}

impl Clone for Children {
    /// A copy starts empty: it is about to be edited.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Children")
    }
}

/// Compact an owned buffer once this many bytes, and more than half of it, are stale.
const COMPACT_MIN: usize = 512;

impl Node {
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

    fn view<'a>(&'a self, cell: CellRef<'a>) -> Slot<'a> {
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

    /// Forgets the remembered children.
    fn edited(&mut self) {
        // Only when set: an insert into a dirty node writes no more of it than it must.
        if self.children.0.get().is_some() {
            self.children = Children::default();
        }
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
        let known = self.children.0.get()?;
        known.get(self.rank(index))?.get()?.get()
    }

    /// Remembers `child` as the node behind the link at `index`.
    pub(crate) fn remember_child(&self, index: u8, child: &Arc<Node>) {
        if !self.is_set(index) {
            return;
        }
        let known = self
            .children
            .0
            .get_or_init(|| (0..self.cells.len()).map(|_| OnceLock::new()).collect());
        if let Some(slot) = known.get(self.rank(index)) {
            // A slot whose child was dropped stays empty of it: later loads go to the cache.
            let _ = slot.set(Known::new(child));
        }
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
    fn set(&mut self, index: u8, cell: Cell) {
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
    fn release(&mut self, cell: &Cell) {
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
    #[cfg(test)]
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
        bucket::write_header(buf, 5, 1);
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
        bucket::write_header(buf, 5, new_len as u64);
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

    /// Points a node without dirty children at `block`, its own encoding, dropping the
    /// owned buffer: the node then shares the block's memory with whoever else holds it.
    pub(crate) fn rebase(&mut self, block: Bytes) {
        let mut pos = 3;
        let mut next = 0;
        for (rank, index) in set_bits(self.bitmap).enumerate() {
            // The empty slots before this one: `{}`, a byte each.
            pos += usize::from(index) - next;
            next = usize::from(index) + 1;
            let at = At { index, rank };
            match self.cells.get(at) {
                CellRef::Bucket(start, end) => {
                    let len = (end - start) as usize;
                    self.cells.set_range(at, off(pos), off(pos + len));
                    pos += len;
                }
                CellRef::Link(start, end) => {
                    // [ tag-42 bytes(0x00 ‖ CID) ]
                    let len = (end - start) as usize;
                    pos += 3 + bucket::header_len(len as u64 + 1) + 1;
                    self.cells.set_range(at, off(pos), off(pos + len));
                    pos += len;
                }
                CellRef::Dirty(_) => unreachable!("rebase is only called on clean nodes"),
            }
        }
        pos += WIDTH - next;
        debug_assert_eq!(pos, block.len(), "the block is this node's encoding");
        self.buf = Buf::Shared(block);
        self.stale = 0;
        self.cells.shrink();
    }

    /// Marks a node so that tests of its parent's cells can tell it apart.
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

    /// Encodes the node as DAG-CBOR. `child_cid` gives the CID of each inline (dirty) child;
    /// it is only called for dirty slots.
    pub(crate) fn encode_with(&self, child_cid: impl FnMut(&Node) -> Link) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out, child_cid);
        out
    }

    /// The length of the encoding, exact when dirty children get 36-byte CIDs (BLAKE3 or
    /// SHA2-256 version-1 CIDs, what this crate writes).
    pub(crate) fn encoded_len(&self) -> usize {
        let empty = WIDTH - self.cells.len();
        let cells: usize = self
            .cells
            .iter()
            .map(|c| match c {
                CellRef::Bucket(start, end) => (end - start) as usize,
                CellRef::Link(start, end) => {
                    let len = (end - start) as usize;
                    3 + bucket::header_len(len as u64 + 1) + 1 + len
                }
                CellRef::Dirty(_) => 3 + 2 + 1 + 36,
            })
            .sum();
        3 + empty + cells
    }

    /// Appends the encoding to `out`; see [`encode_with`](Self::encode_with).
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>, mut child_cid: impl FnMut(&Node) -> Link) {
        let data = self.buf.as_slice();
        out.extend_from_slice(&[0x99, 0x01, 0x00]); // array(256)
        let mut next = 0;
        for (index, cell) in set_bits(self.bitmap).zip(self.cells.iter()) {
            // The empty slots before this one: `{}`, a byte each.
            out.resize(out.len() + usize::from(index) - next, 0xa0);
            next = usize::from(index) + 1;
            match cell {
                CellRef::Bucket(start, end) => out.extend_from_slice(&data[range(start, end)]),
                CellRef::Link(start, end) => {
                    out.push(0x81);
                    write_cid(out, &data[range(start, end)]);
                }
                CellRef::Dirty(child) => {
                    out.push(0x81);
                    write_link(out, &child_cid(child));
                }
            }
        }
        out.resize(out.len() + WIDTH - next, 0xa0);
    }

    /// Encodes a node that has no dirty children.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        self.encode_with(|_| unreachable!("encode() is only called on clean nodes"))
    }

    /// Decodes a node from DAG-CBOR, sharing `data`. `cid` names the block in errors.
    pub(crate) fn decode(data: Bytes, cid: Option<Cid>) -> Result<Node> {
        let err = |reason: &str| Error::decode("HAMT node", cid, reason);
        if data.len() > MAX_NODE_BYTES {
            return Err(err("a node block over 256 MiB"));
        }
        // Nothing has read the block yet: ask for all of it (up to 4 KiB) at once rather
        // than miss line after line.
        let (first, lines) = hint::lines(data.as_ptr().addr(), data.len());
        hint::prefetch(first, lines.min(64));
        let mut r = Reader {
            data: &data[..],
            pos: 0,
        };
        let (major, len, _) = r.header().map_err(err)?;
        if major != 4 || len != WIDTH as u64 {
            return Err(err("not a list of 256 slots"));
        }
        let mut node = Node::default();
        let mut fix = Vec::new();
        for index in 0..=255u8 {
            // Most slots of a sparse node are empty maps: one byte.
            if r.data.get(r.pos) == Some(&0xa0) {
                r.pos += 1;
                continue;
            }
            let start = r.pos;
            let (major, len, _) = r.header().map_err(err)?;
            let cell = match major {
                5 if len == 0 => continue,
                5 => {
                    if !r.bucket(len).map_err(err)? {
                        fix.push(index);
                    }
                    Cell::Bucket(off(start), off(r.pos))
                }
                4 if len == 1 => {
                    let (cid, _) = r.cid().map_err(err)?;
                    Cell::Link(off(r.pos - cid.len()), off(r.pos))
                }
                _ => return Err(err("a slot is neither a bucket nor a link")),
            };
            node.set_bit(index, true);
            node.cells.push(cell);
        }
        if r.remaining() != 0 {
            return Err(err("trailing bytes after the node"));
        }
        node.buf = Buf::Shared(data);
        // Buckets another writer left out of DAG-CBOR order are rewritten in order, so this
        // node encodes canonically once changed.
        for index in fix {
            let Some(Slot::Bucket(b)) = node.get(index) else {
                continue;
            };
            let mut bytes = Vec::new();
            bucket::canonicalize(&mut bytes, b).map_err(err)?;
            let buf = node.owned();
            let start = buf.len();
            buf.extend_from_slice(&bytes);
            let end = buf.len();
            node.set(index, Cell::Bucket(off(start), off(end)));
        }
        Ok(node)
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

fn write_link(out: &mut Vec<u8>, link: &Link) {
    link.with_bytes(|cid| write_cid(out, cid));
}

fn write_cid(out: &mut Vec<u8>, cid: &[u8]) {
    out.extend_from_slice(&[0xd8, 0x2a]); // tag 42
    bucket::write_header(out, 2, cid.len() as u64 + 1);
    out.push(0x00); // multibase identity prefix
    out.extend_from_slice(cid);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ipld_core::ipld::Ipld;

    use super::*;
    use crate::block::{Codec, HashAlg};

    fn dec(bytes: &[u8]) -> Result<Node> {
        Node::decode(Bytes::copy_from_slice(bytes), None)
    }

    fn cid(n: u8) -> Link {
        Link::from_cid(&HashAlg::Blake3.cid(Codec::Raw, &[n]))
    }

    /// The node as an IPLD value, built the way py-hamt builds it.
    fn as_ipld(node: &Node) -> Ipld {
        let mut list = vec![Ipld::Map(BTreeMap::new()); WIDTH];
        for (i, slot) in node.indexed_slots() {
            list[usize::from(i)] = match slot {
                Slot::Bucket(bucket) => Ipld::Map(
                    bucket
                        .entries()
                        .map(|e| (e.key.to_string(), Ipld::Link(e.value.to_cid())))
                        .collect(),
                ),
                Slot::Link(c) => Ipld::List(vec![Ipld::Link(c.to_cid())]),
                Slot::Dirty(_) => unreachable!(),
            };
        }
        Ipld::List(list)
    }

    fn sample() -> Node {
        let mut node = Node::default();
        let mut keys = [
            "b",
            "aa",
            "a",
            "a-much-longer-key-than-the-others-123456789",
        ];
        keys.sort_by(|a, b| key_order(a, b));
        let mut entries: Vec<Entry> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Entry {
                key: (*k).into(),
                value: cid(u8::try_from(i).unwrap()),
            })
            .collect();
        node.set_bucket(3, &mut entries);
        node.set_link(0, &cid(9));
        node.set_link(255, &cid(10));
        node.set_single(128, "é", &cid(11));
        node
    }

    #[test]
    fn encoding_matches_serde_ipld_dagcbor() {
        let node = sample();
        let ours = node.encode();
        let theirs = serde_ipld_dagcbor::to_vec(&as_ipld(&node)).unwrap();
        assert_eq!(ours, theirs);
        let empty = Node::default().encode();
        assert_eq!(
            empty,
            serde_ipld_dagcbor::to_vec(&as_ipld(&Node::default())).unwrap()
        );
    }

    #[test]
    fn rebase_points_buckets_and_links_at_the_block() {
        let mut node = sample();
        let bytes = node.encode();
        node.rebase(Bytes::from(bytes.clone()));
        assert!(matches!(node.buf, Buf::Shared(_)));
        assert_eq!(node.encode(), bytes);
        assert!(matches!(node.get(255), Some(Slot::Link(c)) if c == cid(10)));
        assert_eq!(
            node.get(128)
                .map(|s| matches!(s, Slot::Bucket(b) if b.find("é") == Some(cid(11)))),
            Some(true)
        );
        // Editing after a rebase copies the live bytes out and leaves the block alone.
        node.set_single(7, "new", &cid(12));
        node.set_link(9, &cid(13));
        assert!(node.clear(0));
        let mut expect = sample();
        expect.set_single(7, "new", &cid(12));
        expect.set_link(9, &cid(13));
        expect.clear(0);
        assert_eq!(node.encode(), expect.encode());
    }

    #[test]
    fn decode_round_trips() {
        let node = sample();
        let bytes = node.encode();
        let back = dec(&bytes).unwrap();
        assert_eq!(back.encode(), bytes);
        assert!(back.get(1).is_none());
        assert!(matches!(back.get(0), Some(Slot::Link(_))));
    }

    #[test]
    fn bad_nodes_are_decode_errors() {
        let good = sample().encode();
        for cut in [0, 1, 3, 10, good.len() - 1] {
            assert!(matches!(dec(&good[..cut]), Err(Error::Decode { .. })));
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(dec(&trailing).is_err());
        // A list of 255 slots, a map, an integer.
        assert!(dec(&[0x98, 0xff]).is_err());
        assert!(dec(&[0xa0]).is_err());
        assert!(dec(&[0x01]).is_err());
        // A huge claimed bucket length must not allocate.
        let mut huge = vec![0x99, 0x01, 0x00, 0xbb];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(dec(&huge).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Corrupted blocks decode to an error or to a node that reads, edits and encodes
        /// without panicking, whether its slots are kept small or in a vector.
        #[test]
        fn corrupted_blocks_never_panic(
            edits in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>(), 0u8..5), 1..4),
            large in proptest::prelude::any::<bool>(),
        ) {
            let mut seed = sample();
            if large {
                // Past 32 slots: the slots are kept in a vector.
                for i in 0..36u8 {
                    seed.set_single(i + 4, &format!("s{i}"), &cid(i));
                }
            }
            let mut bytes = seed.encode();
            for (at, byte, kind) in edits {
                let at = at % (bytes.len() + 1);
                // Mostly substitutions, which often leave a decodable block.
                match kind {
                    0..=2 if at < bytes.len() => bytes[at] = byte,
                    3 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            if let Ok(mut node) = dec(&bytes) {
                for index in 0..=255u8 {
                    match node.get(index) {
                        Some(Slot::Bucket(b)) => {
                            let keys: Vec<&str> = b.iter().map(|e| e.key()).collect();
                            for key in keys {
                                proptest::prop_assert!(b.find_cid(key).is_some());
                            }
                        }
                        Some(Slot::Link(link)) => {
                            let _ = link.to_cid();
                        }
                        Some(Slot::Dirty(_)) | None => {}
                    }
                }
                let encoded = node.encode();
                node.set_single(7, "x", &cid(1));
                let edited = dec(&node.encode()).expect("an edited node decodes");
                proptest::prop_assert!(
                    matches!(edited.get(7), Some(Slot::Bucket(b)) if b.find("x") == Some(cid(1)))
                );
                proptest::prop_assert!(dec(&encoded).is_ok());
            }
        }
    }

    #[test]
    fn slot_bitmap_operations() {
        let mut node = Node::default();
        for i in [200u8, 3, 64, 63, 0, 255] {
            node.set_link(i, &cid(i));
        }
        let idx: Vec<u8> = node.indexed_slots().map(|(i, _)| i).collect();
        assert_eq!(idx, vec![0, 3, 63, 64, 200, 255]);
        assert!(node.clear(64));
        assert!(!node.clear(64));
        assert!(matches!(node.get(200), Some(Slot::Link(c)) if c == cid(200)));
    }

    /// A node built from scratch with the model's entries, one bucket per slot.
    fn from_model(model: &BTreeMap<u8, BTreeMap<String, u8>>) -> Node {
        let mut node = Node::default();
        for (index, bucket) in model {
            let mut entries: Vec<Entry> = bucket
                .iter()
                .map(|(k, v)| Entry {
                    key: k.as_str().into(),
                    value: cid(*v),
                })
                .collect();
            node.set_bucket(*index, &mut entries);
        }
        node
    }

    #[test]
    fn edits_on_shared_and_owned_buffers_match_a_fresh_build() {
        // 7 slots stay in the node itself; 45 need a vector (a rebase keeps them there).
        for (slots, spread) in [(7, 37), (45, 5)] {
            edit_against_the_model(slots, spread);
        }
    }

    fn edit_against_the_model(slots: u64, spread: u8) {
        let mut model: BTreeMap<u8, BTreeMap<String, u8>> = BTreeMap::new();
        let mut node = Node::default();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for step in 0..4000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let index = u8::try_from(state % slots).unwrap() * spread;
            let key = format!("k{}", (state >> 8) % 23);
            let value = u8::try_from((state >> 16) % 200).unwrap();
            let slot = model.entry(index).or_default();
            if (state >> 24).is_multiple_of(3) {
                let expect = slot.remove(&key).map(cid);
                if slot.is_empty() {
                    model.remove(&index);
                }
                assert_eq!(node.bucket_remove(index, &key), expect);
            } else if slot.is_empty() {
                slot.insert(key.clone(), value);
                node.set_single(index, &key, &cid(value));
            } else {
                let had = slot.insert(key.clone(), value).map(cid);
                match node.bucket_insert(index, &key, &cid(value), 255) {
                    Insert::Replaced(old) => assert_eq!(Some(old), had),
                    Insert::Added => assert_eq!(had, None),
                    Insert::Full => unreachable!(),
                }
            }
            let expect = from_model(&model).encode();
            assert_eq!(node.encode(), expect, "step {step}");
            // Every so often, go through the store's path: decode (shared), or rebase.
            match step % 97 {
                0 => node = dec(&expect).unwrap(),
                1 => node.rebase(Bytes::from(expect.clone())),
                _ => {}
            }
            assert_eq!(node.encode(), expect, "step {step}");
            // Reads see the same, from an owned buffer or a block.
            for (&index, keys) in &model {
                let Some(Slot::Bucket(bucket)) = node.get(index) else {
                    panic!("step {step}: slot {index} is not a bucket");
                };
                for (key, value) in keys {
                    assert_eq!(bucket.find(key), Some(cid(*value)), "step {step}");
                }
            }
        }
        let live = node.encode().len();
        assert!(
            node.mem_size() < 3 * live + 4096,
            "stale bytes are compacted away: {} for {live}",
            node.mem_size()
        );
    }

    /// A node that gains many dirty children holds them in place (wide) and reads, edits,
    /// clears and seals them as any node does; sealed, it encodes as a node that had links.
    #[test]
    fn a_node_with_many_dirty_children_holds_them_in_place() {
        let mut node = Node::default();
        let mut plain = Node::default();
        for i in 0..100u8 {
            let index = i * 2 + 1;
            if i % 3 == 0 {
                node.set_single(index, &format!("k{i}"), &cid(i));
                plain.set_single(index, &format!("k{i}"), &cid(i));
            } else {
                let mut child = Node::default();
                child.set_single(0, &format!("c{i}"), &cid(i));
                child.mark(u32::from(i));
                node.set_dirty(index, child);
            }
        }
        assert!(matches!(node.cells, Cells::Wide(_)));
        for i in 0..100u8 {
            let index = i * 2 + 1;
            assert!(node.get(index - 1).is_none());
            match node.get(index) {
                Some(Slot::Bucket(b)) if i % 3 == 0 => {
                    assert_eq!(b.find(&format!("k{i}")), Some(cid(i)));
                }
                Some(Slot::Dirty(child)) if i % 3 != 0 => {
                    assert_eq!(child.mark_of(), u32::from(i));
                }
                _ => panic!("slot {index}"),
            }
        }
        node.child_mut(3)
            .expect("a dirty child")
            .set_single(9, "more", &cid(200));
        assert!(node.child_mut(7).is_none(), "slot 7 holds a bucket");
        assert!(node.clear(5));
        assert!(node.clear(1));
        assert!(plain.clear(1));
        node.seal_children(|child| cid(u8::try_from(child.mark_of()).unwrap()));
        for i in (0..100u8).filter(|i| i % 3 != 0 && *i != 2) {
            plain.set_link(i * 2 + 1, &cid(i));
        }
        assert_eq!(node.encode(), plain.encode());
        let bytes = node.encode();
        node.rebase(Bytes::from(bytes.clone()));
        assert!(matches!(node.cells, Cells::Large(_)));
        assert_eq!(node.encode(), bytes);
        assert!(matches!(node.get(15), Some(Slot::Link(l)) if l == cid(7)));
    }

    #[test]
    fn an_empty_slot_has_no_remembered_child() {
        let mut node = Node::default();
        node.set_link(7, &cid(1));
        let child = Arc::new(sample());
        node.remember_child(7, &child);
        assert!(node.known_child(7).is_some());
        // Slot 5 is empty and ranks where slot 7 does.
        assert!(node.known_child(5).is_none());
        node.remember_child(5, &child);
        assert!(node.known_child(5).is_none());
    }

    #[test]
    fn a_remembered_child_records_the_lines_of_its_bytes() {
        let small = Arc::new(dec(&sample().encode()).unwrap());
        let bytes = small.buf.as_slice();
        let known = Known::new(&small);
        let first = known.bytes & !(LINE - 1);
        let lines = known.bytes & (LINE - 1);
        assert!(first <= bytes.as_ptr().addr() && bytes.as_ptr().addr() < first + LINE);
        assert!(first + lines * LINE >= bytes.as_ptr().addr() + bytes.len());
        assert!(lines <= PREFETCH_LINES);
        assert!(Arc::ptr_eq(&known.get().unwrap(), &small));

        // A branch of 256 links spans more lines than that: no prefetch.
        let mut branch = Node::default();
        for i in 0..=255 {
            branch.set_link(i, &cid(i));
        }
        let branch = Arc::new(dec(&branch.encode()).unwrap());
        assert_eq!(Known::new(&branch).bytes & (LINE - 1), 0);

        // A dropped child is gone, and the hint reads nothing of it.
        drop(small);
        assert!(known.get().is_none());
    }

    #[test]
    fn reads_of_a_decoded_node_follow_its_edits() {
        let bytes = sample().encode();
        let mut node = dec(&bytes).unwrap();
        assert!(
            matches!(node.cells, Cells::Small(_)),
            "a small decoded node keeps its slots in itself"
        );
        assert!(matches!(node.get(0), Some(Slot::Link(l)) if l == cid(9)));
        node.set_dirty(0, sample());
        assert!(matches!(node.get(0), Some(Slot::Dirty(_))));
        assert!(matches!(node.get(255), Some(Slot::Link(l)) if l == cid(10)));
        node.seal_child(0, |_| cid(12));
        assert!(matches!(node.get(0), Some(Slot::Link(l)) if l == cid(12)));
        assert!(node.clear(255));
        assert!(node.get(255).is_none());
        let Some(Slot::Bucket(b)) = node.get(128) else {
            panic!("slot 128 holds a bucket");
        };
        assert_eq!(b.find("é"), Some(cid(11)));
        // Rebased onto its new encoding, the node is small and clean again.
        let bytes = node.encode();
        node.rebase(Bytes::from(bytes));
        assert!(matches!(node.buf, Buf::Shared(_)));
        assert!(matches!(node.cells, Cells::Small(_)));
        assert!(matches!(node.get(0), Some(Slot::Link(l)) if l == cid(12)));
    }

    #[test]
    fn out_of_order_buckets_are_read_and_rewritten_in_order() {
        let mut bytes = vec![0x99, 0x01, 0x00, 0xa2];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        cid(1).write_bytes(&mut a);
        cid(2).write_bytes(&mut b);
        bucket::write_entry(&mut bytes, b"b", &a);
        bucket::write_entry(&mut bytes, b"a", &b);
        bytes.extend(std::iter::repeat_n(0xa0, 255));
        let node = dec(&bytes).unwrap();
        let mut sorted = Node::default();
        sorted.set_bucket(
            0,
            &mut [
                Entry {
                    key: "b".into(),
                    value: cid(1),
                },
                Entry {
                    key: "a".into(),
                    value: cid(2),
                },
            ],
        );
        assert_eq!(node.encode(), sorted.encode());
    }
}
