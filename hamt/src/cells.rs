//! A node's occupied slots in index order: byte ranges of buckets and links in the node's
//! buffer, and changed children held inline.
//!
//! Most nodes of a big tree are leaves of a few dozen buckets. Their slots are kept in the
//! node itself, as 16-bit ranges ([`Cells::Small`]): reading or changing a slot of such a
//! node touches no other allocation than its bucket bytes, one cache miss fewer on every
//! cold read and every insert, and a leaf costs one allocation less. A node with more slots,
//! a dirty child or a buffer past 64 KiB keeps a vector ([`Cells::Large`]).

use crate::node::Node;

/// An occupied slot, as held in a vector: 16 bytes.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    /// A bucket: the byte range of its encoding in the node's buffer.
    Bucket(u32, u32),
    /// A link: the byte range of the binary CID in the node's buffer.
    Link(u32, u32),
    /// A child changed since the last flush.
    Dirty(Box<Node>),
}

/// An occupied slot, as read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CellRef<'a> {
    Bucket(u32, u32),
    Link(u32, u32),
    Dirty(&'a Node),
}

/// Slots a node may have to keep them in itself.
const SMALL: usize = 32;

/// Up to [`SMALL`] buckets and links whose ranges end below 64 KiB.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Small {
    len: u8,
    /// Bit `rank` set: that slot is a link, else a bucket.
    links: u32,
    at: [[u16; 2]; SMALL],
}

/// A node's occupied slots, in index order.
#[derive(Debug, Clone)]
pub(crate) enum Cells {
    Small(Small),
    Large(Vec<Cell>),
}

impl Default for Cells {
    fn default() -> Self {
        Cells::Small(Small {
            len: 0,
            links: 0,
            at: [[0; 2]; SMALL],
        })
    }
}

/// `(start, end)` as 16-bit offsets, when both fit.
fn short(start: u32, end: u32) -> Option<[u16; 2]> {
    Some([u16::try_from(start).ok()?, u16::try_from(end).ok()?])
}

/// The bits of `mask` below `rank`.
fn below(rank: usize) -> u32 {
    // `rank` < 32 here: a small node's ranks.
    (1u32 << rank) - 1
}

impl Small {
    fn get(&self, rank: usize) -> CellRef<'static> {
        let [start, end] = self.at[rank];
        if self.links & (1 << rank) == 0 {
            CellRef::Bucket(start.into(), end.into())
        } else {
            CellRef::Link(start.into(), end.into())
        }
    }

    /// The range and kind of `cell`, when it can be kept here.
    fn fits(cell: &Cell) -> Option<([u16; 2], bool)> {
        match *cell {
            Cell::Bucket(start, end) => Some((short(start, end)?, false)),
            Cell::Link(start, end) => Some((short(start, end)?, true)),
            Cell::Dirty(_) => None,
        }
    }

    fn put(&mut self, rank: usize, span: [u16; 2], link: bool) {
        self.at[rank] = span;
        self.links = (self.links & !(1 << rank)) | (u32::from(link) << rank);
    }
}

impl Cells {
    /// Number of occupied slots.
    pub(crate) fn len(&self) -> usize {
        match self {
            Cells::Small(s) => usize::from(s.len),
            Cells::Large(v) => v.len(),
        }
    }

    /// The slot of rank `rank`, which must be below [`len`](Self::len).
    pub(crate) fn get(&self, rank: usize) -> CellRef<'_> {
        match self {
            Cells::Small(s) => {
                debug_assert!(rank < usize::from(s.len));
                s.get(rank)
            }
            Cells::Large(v) => match &v[rank] {
                Cell::Bucket(start, end) => CellRef::Bucket(*start, *end),
                Cell::Link(start, end) => CellRef::Link(*start, *end),
                Cell::Dirty(child) => CellRef::Dirty(child),
            },
        }
    }

    /// The dirty child of rank `rank`, mutably.
    pub(crate) fn dirty_mut(&mut self, rank: usize) -> Option<&mut Node> {
        match self {
            Cells::Small(_) => None,
            Cells::Large(v) => match &mut v[rank] {
                Cell::Dirty(child) => Some(child),
                _ => None,
            },
        }
    }

    /// The slots as a vector, which takes any cell.
    fn large(&mut self) -> &mut Vec<Cell> {
        if let Cells::Small(s) = self {
            let mut v = Vec::with_capacity(2 * SMALL);
            v.extend((0..usize::from(s.len)).map(|rank| match s.get(rank) {
                CellRef::Bucket(start, end) => Cell::Bucket(start, end),
                CellRef::Link(start, end) => Cell::Link(start, end),
                CellRef::Dirty(_) => unreachable!("a small node holds no dirty child"),
            }));
            *self = Cells::Large(v);
        }
        match self {
            Cells::Large(v) => v,
            Cells::Small(_) => unreachable!("made large above"),
        }
    }

    /// Inserts `cell` at `rank`, shifting the slots after it.
    pub(crate) fn insert(&mut self, rank: usize, cell: Cell) {
        if let Cells::Small(s) = self
            && usize::from(s.len) < SMALL
            && let Some((span, link)) = Small::fits(&cell)
        {
            let len = usize::from(s.len);
            s.at.copy_within(rank..len, rank + 1);
            let low = s.links & below(rank);
            s.links = low | ((s.links & !below(rank)) << 1);
            s.put(rank, span, link);
            s.len += 1;
            return;
        }
        self.large().insert(rank, cell);
    }

    /// Appends `cell` after the last slot.
    pub(crate) fn push(&mut self, cell: Cell) {
        self.insert(self.len(), cell);
    }

    /// Replaces the slot of rank `rank` with `cell`; returns the old one.
    pub(crate) fn replace(&mut self, rank: usize, cell: Cell) -> Cell {
        if let Cells::Small(s) = self
            && let Some((span, link)) = Small::fits(&cell)
        {
            let old = match s.get(rank) {
                CellRef::Bucket(start, end) => Cell::Bucket(start, end),
                CellRef::Link(start, end) => Cell::Link(start, end),
                CellRef::Dirty(_) => unreachable!("a small node holds no dirty child"),
            };
            s.put(rank, span, link);
            return old;
        }
        std::mem::replace(&mut self.large()[rank], cell)
    }

    /// Removes the slot of rank `rank`.
    pub(crate) fn remove(&mut self, rank: usize) -> Cell {
        match self {
            Cells::Small(s) => {
                let old = match s.get(rank) {
                    CellRef::Bucket(start, end) => Cell::Bucket(start, end),
                    CellRef::Link(start, end) => Cell::Link(start, end),
                    CellRef::Dirty(_) => unreachable!("a small node holds no dirty child"),
                };
                let len = usize::from(s.len);
                s.at.copy_within(rank + 1..len, rank);
                let low = s.links & below(rank);
                s.links = low | ((s.links >> 1) & !below(rank));
                s.len -= 1;
                old
            }
            Cells::Large(v) => v.remove(rank),
        }
    }

    /// Moves the bucket or link of rank `rank` to `start..end` of the buffer.
    pub(crate) fn set_range(&mut self, rank: usize, start: u32, end: u32) {
        let cell = match self.get(rank) {
            CellRef::Bucket(..) => Cell::Bucket(start, end),
            CellRef::Link(..) => Cell::Link(start, end),
            CellRef::Dirty(_) => unreachable!("set_range is only called on buckets and links"),
        };
        self.replace(rank, cell);
    }

    /// Keeps the slots in the node itself again when they fit: no dirty child, few slots,
    /// ranges below 64 KiB.
    pub(crate) fn shrink(&mut self) {
        let Cells::Large(v) = self else { return };
        if v.len() > SMALL {
            return;
        }
        let mut small = Small {
            len: 0,
            links: 0,
            at: [[0; 2]; SMALL],
        };
        for (rank, cell) in v.iter().enumerate() {
            let Some((span, link)) = Small::fits(cell) else {
                return;
            };
            small.put(rank, span, link);
        }
        small.len = u8::try_from(v.len()).unwrap_or_else(|_| unreachable!("at most 32"));
        *self = Cells::Small(small);
    }

    /// The slots in rank order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = CellRef<'_>> + '_ {
        (0..self.len()).map(|rank| self.get(rank))
    }

    /// Heap bytes held for the slots.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Cells::Small(_) => 0,
            Cells::Large(v) => v.capacity() * size_of::<Cell>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(cells: &Cells) -> Vec<(bool, u32, u32)> {
        cells
            .iter()
            .map(|c| match c {
                CellRef::Bucket(s, e) => (false, s, e),
                CellRef::Link(s, e) => (true, s, e),
                CellRef::Dirty(_) => (true, u32::MAX, u32::MAX),
            })
            .collect()
    }

    /// Inserts, replacements and removals at every rank, across the small/large boundary and
    /// with ranges past 16 bits, match a plain vector of the same edits.
    #[test]
    fn small_and_large_cells_match_a_vector() {
        let mut cells = Cells::default();
        let mut model: Vec<(bool, u32, u32)> = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..20_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let link = state & 1 == 1;
            let wide = (state >> 1).is_multiple_of(50);
            let start = u32::try_from((state >> 8) % 1000).unwrap() + if wide { 70_000 } else { 0 };
            let end = start + u32::try_from((state >> 20) % 100).unwrap();
            let cell = if link {
                Cell::Link(start, end)
            } else {
                Cell::Bucket(start, end)
            };
            let op = (state >> 32) % 8;
            if model.is_empty() || op < 3 {
                let rank = usize::try_from(state >> 40).unwrap() % (model.len() + 1);
                cells.insert(rank, cell);
                model.insert(rank, (link, start, end));
            } else if op < 5 {
                let rank = usize::try_from(state >> 40).unwrap() % model.len();
                cells.replace(rank, cell);
                model[rank] = (link, start, end);
            } else {
                let rank = usize::try_from(state >> 40).unwrap() % model.len();
                cells.remove(rank);
                model.remove(rank);
            }
            if step.is_multiple_of(10) {
                cells.shrink();
            }
            assert_eq!(ranges(&cells), model, "step {step}");
            if model.len() > 40 {
                while model.len() > 10 {
                    cells.remove(0);
                    model.remove(0);
                }
            }
        }
    }

    #[test]
    fn a_dirty_child_or_a_wide_range_makes_the_cells_large() {
        let mut cells = Cells::default();
        cells.push(Cell::Bucket(0, 10));
        assert!(matches!(cells, Cells::Small(_)));
        cells.push(Cell::Dirty(Box::default()));
        assert!(matches!(cells, Cells::Large(_)));
        cells.remove(1);
        cells.shrink();
        assert!(matches!(cells, Cells::Small(_)));
        cells.replace(0, Cell::Link(65_000, 70_000));
        assert!(matches!(cells, Cells::Large(_)));
        cells.shrink();
        assert!(matches!(cells, Cells::Large(_)));
        assert_eq!(ranges(&cells), vec![(true, 65_000, 70_000)]);
    }
}
