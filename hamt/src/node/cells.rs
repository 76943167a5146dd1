//! A node's occupied slots in index order: byte ranges of buckets and links in the node's
//! buffer, and changed children held inline.
//!
//! Most nodes of a big tree are leaves of a few dozen buckets. Their slots are kept in the
//! node itself, as 16-bit ranges ([`Cells::Small`]): reading or changing a slot of such a
//! node touches no other allocation than its bucket bytes, one cache miss fewer on every
//! cold read and every insert, and a leaf costs one allocation less. A node with more slots,
//! a dirty child or a range ending past 64 KiB keeps a vector ([`Cells::Large`]).
//!
//! A node with many dirty children (the upper levels while a big tree is built) holds them
//! in place, in an array of all 256 slots ([`Cells::Wide`]): following a slot to its child
//! then reads the child itself, not a cell and then the child, one cache miss fewer on
//! every insert into a big tree.
//!
//! The cells do not know what a node is: `C` is the type of a dirty child (a
//! [`Node`](super::Node), or a marker in tests). Which form holds the slots never shows in
//! what they read: every operation gives what a plain vector of cells in index order
//! would, and a test checks that against such a model across all three forms.

/// An occupied slot, as held in a vector: 16 bytes.
#[derive(Debug, Clone)]
pub(super) enum Cell<C> {
    /// A bucket: the byte range of its encoding in the node's buffer.
    Bucket(u32, u32),
    /// A link: the byte range of the binary CID in the node's buffer.
    Link(u32, u32),
    /// A child changed since the last flush.
    Dirty(Box<C>),
}

/// An occupied slot, as read.
#[derive(Debug)]
pub(super) enum CellRef<'a, C> {
    Bucket(u32, u32),
    Link(u32, u32),
    Dirty(&'a C),
}

// Not derived: a derive would ask `C: Copy` for what is only a reference.
impl<C> Clone for CellRef<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for CellRef<'_, C> {}

/// Where a slot is: its index among the 256, and its rank among the occupied slots (where it
/// would be if it is empty).
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub(super) index: u8,
    pub(super) rank: usize,
}

/// Slots a node may have to keep them in itself.
const SMALL: usize = 32;

/// Dirty children from which a node holds them in place.
const WIDE_MIN: usize = 64;

/// A slot of a wide node. Every slot takes a node's size: holding the child in place, not
/// behind a pointer, is the point of a wide node.
#[derive(Debug, Clone, Default)]
#[allow(clippy::large_enum_variant)]
pub(super) enum WideCell<C> {
    #[default]
    Empty,
    Bucket(u32, u32),
    Link(u32, u32),
    Dirty(C),
}

/// All 256 slots by index, with how many are occupied and how many are dirty children.
#[derive(Debug, Clone)]
pub(super) struct Wide<C> {
    len: usize,
    dirty: usize,
    at: Vec<WideCell<C>>,
}

/// Up to [`SMALL`] buckets and links whose ranges end below 64 KiB.
#[derive(Debug, Clone, Copy)]
pub(super) struct Small {
    len: u8,
    /// Bit `rank` set: that slot is a link, else a bucket.
    links: u32,
    at: [[u16; 2]; SMALL],
}

/// A node's occupied slots, in index order.
#[derive(Debug, Clone)]
pub(super) enum Cells<C> {
    Small(Small),
    Large(Vec<Cell<C>>),
    Wide(Wide<C>),
}

impl<C> Default for Cells<C> {
    fn default() -> Self {
        Cells::Small(Small::EMPTY)
    }
}

/// `(start, end)` as 16-bit offsets, when both fit.
fn short(start: u32, end: u32) -> Option<[u16; 2]> {
    Some([u16::try_from(start).ok()?, u16::try_from(end).ok()?])
}

/// A mask of the bits below `rank`.
fn below(rank: usize) -> u32 {
    // `rank` < 32 here: a small node's ranks.
    (1u32 << rank) - 1
}

impl Small {
    const EMPTY: Small = Small {
        len: 0,
        links: 0,
        at: [[0; 2]; SMALL],
    };

    fn get<'a, C>(&self, rank: usize) -> CellRef<'a, C> {
        let [start, end] = self.at[rank];
        if self.links & (1 << rank) == 0 {
            CellRef::Bucket(start.into(), end.into())
        } else {
            CellRef::Link(start.into(), end.into())
        }
    }

    /// The range and kind of `cell`, when it can be kept here.
    fn fits<C>(cell: &Cell<C>) -> Option<([u16; 2], bool)> {
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

impl<C> Cell<C> {
    fn of(cell: &WideCell<C>) -> Option<CellRef<'_, C>> {
        match cell {
            WideCell::Empty => None,
            WideCell::Bucket(start, end) => Some(CellRef::Bucket(*start, *end)),
            WideCell::Link(start, end) => Some(CellRef::Link(*start, *end)),
            WideCell::Dirty(child) => Some(CellRef::Dirty(child)),
        }
    }

    fn wide(self) -> WideCell<C> {
        match self {
            Cell::Bucket(start, end) => WideCell::Bucket(start, end),
            Cell::Link(start, end) => WideCell::Link(start, end),
            Cell::Dirty(child) => WideCell::Dirty(*child),
        }
    }

    /// The cell a wide slot held; `None` for an empty one.
    fn from_wide(cell: WideCell<C>) -> Option<Cell<C>> {
        match cell {
            WideCell::Empty => None,
            WideCell::Bucket(start, end) => Some(Cell::Bucket(start, end)),
            WideCell::Link(start, end) => Some(Cell::Link(start, end)),
            WideCell::Dirty(child) => Some(Cell::Dirty(Box::new(child))),
        }
    }

    fn small(cell: CellRef<'_, C>) -> Cell<C> {
        match cell {
            CellRef::Bucket(start, end) => Cell::Bucket(start, end),
            CellRef::Link(start, end) => Cell::Link(start, end),
            CellRef::Dirty(_) => unreachable!("a small node holds no dirty child"),
        }
    }
}

impl<C: Default> Cells<C> {
    /// Number of occupied slots.
    pub(super) fn len(&self) -> usize {
        match self {
            Cells::Small(s) => usize::from(s.len),
            Cells::Large(v) => v.len(),
            Cells::Wide(w) => w.len,
        }
    }

    /// The occupied slot `at`.
    pub(super) fn get(&self, at: At) -> CellRef<'_, C> {
        match self {
            Cells::Small(s) => {
                debug_assert!(at.rank < usize::from(s.len));
                s.get(at.rank)
            }
            Cells::Large(v) => match &v[at.rank] {
                Cell::Bucket(start, end) => CellRef::Bucket(*start, *end),
                Cell::Link(start, end) => CellRef::Link(*start, *end),
                Cell::Dirty(child) => CellRef::Dirty(child),
            },
            Cells::Wide(w) => Cell::of(&w.at[usize::from(at.index)])
                .unwrap_or_else(|| unreachable!("the slot is occupied")),
        }
    }

    /// The dirty child at `at`, mutably.
    pub(super) fn dirty_mut(&mut self, at: At) -> Option<&mut C> {
        match self {
            Cells::Small(_) => None,
            Cells::Large(v) => match &mut v[at.rank] {
                Cell::Dirty(child) => Some(child),
                _ => None,
            },
            Cells::Wide(w) => match &mut w.at[usize::from(at.index)] {
                WideCell::Dirty(child) => Some(child),
                _ => None,
            },
        }
    }

    /// The slots as a vector, which takes any cell.
    fn large(&mut self) -> &mut Vec<Cell<C>> {
        match self {
            Cells::Small(s) => {
                let mut v = Vec::with_capacity(2 * SMALL);
                v.extend((0..usize::from(s.len)).map(|rank| Cell::small(s.get(rank))));
                *self = Cells::Large(v);
            }
            Cells::Wide(w) => {
                let v = std::mem::take(&mut w.at)
                    .into_iter()
                    .filter_map(Cell::from_wide)
                    .collect();
                *self = Cells::Large(v);
            }
            Cells::Large(_) => {}
        }
        match self {
            Cells::Large(v) => v,
            _ => unreachable!("made large above"),
        }
    }

    /// A vector's slots in place by index, once it holds enough dirty children that one more
    /// makes it wide. `indices` gives the occupied slots' indices in order.
    fn widen(&mut self, dirty_to_come: bool, indices: impl Iterator<Item = u8>) {
        let Cells::Large(v) = self else { return };
        if !dirty_to_come || v.iter().filter(|c| matches!(c, Cell::Dirty(_))).count() + 1 < WIDE_MIN
        {
            return;
        }
        let indices: Vec<u8> = indices.collect();
        debug_assert_eq!(indices.len(), v.len(), "an index for every occupied slot");
        let mut wide = Wide {
            len: v.len(),
            dirty: 0,
            at: (0..256).map(|_| WideCell::Empty).collect(),
        };
        for (index, cell) in indices.into_iter().zip(std::mem::take(v)) {
            wide.dirty += usize::from(matches!(cell, Cell::Dirty(_)));
            wide.at[usize::from(index)] = cell.wide();
        }
        *self = Cells::Wide(wide);
    }

    /// Inserts `cell` at the empty slot `at`, shifting the ranks after it. `indices` gives
    /// the occupied slots' indices in order, for a node that turns wide.
    pub(super) fn insert(&mut self, at: At, cell: Cell<C>, indices: impl Iterator<Item = u8>) {
        if let Cells::Small(s) = self
            && usize::from(s.len) < SMALL
            && let Some((span, link)) = Small::fits(&cell)
        {
            let (rank, len) = (at.rank, usize::from(s.len));
            s.at.copy_within(rank..len, rank + 1);
            let low = s.links & below(rank);
            s.links = low | ((s.links & !below(rank)) << 1);
            s.put(rank, span, link);
            s.len += 1;
            return;
        }
        self.widen(matches!(cell, Cell::Dirty(_)), indices);
        if let Cells::Wide(w) = self {
            w.len += 1;
            w.dirty += usize::from(matches!(cell, Cell::Dirty(_)));
            w.at[usize::from(at.index)] = cell.wide();
            return;
        }
        self.large().insert(at.rank, cell);
    }

    /// Appends a bucket or link after the last slot of a node that is not wide (as decoding
    /// does): no indices are needed, as such a cell never makes the node wide.
    pub(super) fn push(&mut self, cell: Cell<C>) {
        let at = At {
            index: 0,
            rank: self.len(),
        };
        debug_assert!(!matches!(self, Cells::Wide(_)) && !matches!(cell, Cell::Dirty(_)));
        self.insert(at, cell, std::iter::empty());
    }

    /// Replaces the occupied slot `at` with `cell`; returns the old one. `indices` as for
    /// [`insert`](Self::insert).
    pub(super) fn replace(
        &mut self,
        at: At,
        cell: Cell<C>,
        indices: impl Iterator<Item = u8>,
    ) -> Cell<C> {
        if let Cells::Small(s) = self
            && let Some((span, link)) = Small::fits(&cell)
        {
            let old = Cell::small(s.get(at.rank));
            s.put(at.rank, span, link);
            return old;
        }
        self.widen(matches!(cell, Cell::Dirty(_)), indices);
        if let Cells::Wide(w) = self {
            w.dirty += usize::from(matches!(cell, Cell::Dirty(_)));
            let old = std::mem::replace(&mut w.at[usize::from(at.index)], cell.wide());
            w.dirty -= usize::from(matches!(old, WideCell::Dirty(_)));
            return Cell::from_wide(old).unwrap_or_else(|| unreachable!("the slot is occupied"));
        }
        std::mem::replace(&mut self.large()[at.rank], cell)
    }

    /// Takes the dirty child at `at` out, leaving an empty link in its place.
    pub(super) fn take_dirty(&mut self, at: At) -> Option<C> {
        match self {
            Cells::Small(_) => None,
            Cells::Large(v) => match &v[at.rank] {
                Cell::Dirty(_) => match std::mem::replace(&mut v[at.rank], Cell::Link(0, 0)) {
                    Cell::Dirty(child) => Some(*child),
                    _ => unreachable!("matched above"),
                },
                _ => None,
            },
            Cells::Wide(w) => {
                let slot = &mut w.at[usize::from(at.index)];
                let WideCell::Dirty(child) = slot else {
                    return None;
                };
                let child = std::mem::take(child);
                *slot = WideCell::Link(0, 0);
                w.dirty -= 1;
                Some(child)
            }
        }
    }

    /// Removes the occupied slot `at`.
    pub(super) fn remove(&mut self, at: At) -> Cell<C> {
        match self {
            Cells::Small(s) => {
                let rank = at.rank;
                let old = Cell::small(s.get(rank));
                let len = usize::from(s.len);
                s.at.copy_within(rank + 1..len, rank);
                let low = s.links & below(rank);
                s.links = low | ((s.links >> 1) & !below(rank));
                s.len -= 1;
                old
            }
            Cells::Large(v) => v.remove(at.rank),
            Cells::Wide(w) => {
                let old = std::mem::take(&mut w.at[usize::from(at.index)]);
                w.len -= 1;
                w.dirty -= usize::from(matches!(old, WideCell::Dirty(_)));
                Cell::from_wide(old).unwrap_or_else(|| unreachable!("the slot is occupied"))
            }
        }
    }

    /// Moves the bucket or link at `at` to `start..end` of the buffer.
    pub(super) fn set_range(&mut self, at: At, start: u32, end: u32) {
        let cell = match self.get(at) {
            CellRef::Bucket(..) => Cell::Bucket(start, end),
            CellRef::Link(..) => Cell::Link(start, end),
            CellRef::Dirty(_) => unreachable!("set_range is only called on buckets and links"),
        };
        self.replace(at, cell, std::iter::empty());
    }

    /// Keeps the slots in the node itself again when they fit: no dirty child, few slots,
    /// ranges below 64 KiB. A wide node without dirty children becomes a vector.
    pub(super) fn shrink(&mut self) {
        if let Cells::Wide(w) = self
            && w.dirty == 0
        {
            self.large();
        }
        let Cells::Large(v) = self else { return };
        if v.len() > SMALL {
            return;
        }
        let mut small = Small::EMPTY;
        for (rank, cell) in v.iter().enumerate() {
            let Some((span, link)) = Small::fits(cell) else {
                return;
            };
            small.put(rank, span, link);
        }
        small.len = u8::try_from(v.len()).unwrap_or_else(|_| unreachable!("at most 32"));
        *self = Cells::Small(small);
    }

    /// The slots in index order.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = CellRef<'_, C>> + '_ {
        let (ranks, wide) = match self {
            Cells::Wide(w) => (0..0, &w.at[..]),
            _ => (0..self.len(), &[][..]),
        };
        ranks
            .map(|rank| self.get(At { index: 0, rank }))
            .chain(wide.iter().filter_map(Cell::of))
    }

    /// The dirty children with their indices, mutably, in index order. `indices` gives the
    /// occupied slots' indices in order.
    pub(super) fn dirty_children_mut(
        &mut self,
        indices: impl Iterator<Item = u8>,
    ) -> Vec<(u8, &mut C)> {
        match self {
            Cells::Small(_) => Vec::new(),
            Cells::Large(v) => indices
                .zip(v.iter_mut())
                .filter_map(|(index, cell)| match cell {
                    Cell::Dirty(child) => Some((index, &mut **child)),
                    _ => None,
                })
                .collect(),
            Cells::Wide(w) => (0..=255u8)
                .zip(w.at.iter_mut())
                .filter_map(|(index, cell)| match cell {
                    WideCell::Dirty(child) => Some((index, child)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Heap bytes held for the slots.
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Cells::Small(_) => 0,
            Cells::Large(v) => v.capacity() * size_of::<Cell<C>>(),
            Cells::Wide(w) => w.at.capacity() * size_of::<WideCell<C>>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dirty child in these tests: a mark that tells it apart.
    type Child = u32;

    type Cells = super::Cells<Child>;
    type Cell = super::Cell<Child>;

    /// A slot as the model holds it: `(index, kind, start, end)`, kind 0 bucket, 1 link,
    /// 2 dirty child (whose range is its mark).
    type Model = Vec<(u8, u8, u32, u32)>;

    fn cell(kind: u8, start: u32, end: u32) -> Cell {
        match kind {
            0 => Cell::Bucket(start, end),
            1 => Cell::Link(start, end),
            _ => Cell::Dirty(Box::new(start)),
        }
    }

    fn seen(cells: &Cells) -> Vec<(u8, u32, u32)> {
        cells
            .iter()
            .map(|c| match c {
                CellRef::Bucket(s, e) => (0, s, e),
                CellRef::Link(s, e) => (1, s, e),
                CellRef::Dirty(child) => (2, *child, 0),
            })
            .collect()
    }

    /// Where `index` is; a wide node gets a rank no slot has, so a wide path that read it
    /// would fail.
    fn at(cells: &Cells, model: &Model, index: u8) -> At {
        let rank = match cells {
            Cells::Wide(_) => usize::MAX,
            _ => model.iter().filter(|m| m.0 < index).count(),
        };
        At { index, rank }
    }

    /// Inserts, replacements, removals and dirty children taken out, at every rank, across
    /// the small, large and wide forms and with ranges past 16 bits, match a plain model.
    #[test]
    fn every_form_of_cells_matches_a_model() {
        let mut cells = Cells::default();
        let mut model: Model = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let (mut small, mut large, mut wide) = (0, 0, 0);
        for step in 0..24_000u32 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Phases: few slots and no children (small), more slots and a few children
            // (large), many slots and children (wide), and again.
            let phase = (step / 4000) % 3;
            let kind = match (state >> 1) % 8 {
                0..=2 => 0,
                3 => 1,
                4 if phase == 1 => 2,
                _ if phase == 2 => 2,
                _ => 0,
            };
            let wide_range = (state >> 3).is_multiple_of(200);
            let start =
                u32::try_from((state >> 8) % 1000).unwrap() + if wide_range { 70_000 } else { 0 };
            let end = start + u32::try_from((state >> 20) % 100).unwrap();
            let index = u8::try_from((state >> 40) % 256).unwrap();
            let pos = model.iter().position(|m| m.0 == index);
            let op = (state >> 32) % 8;
            let indices: Vec<u8> = model.iter().map(|m| m.0).collect();
            let limit = [20, 60, 256][phase as usize];
            match pos {
                None if model.len() < limit => {
                    cells.insert(
                        at(&cells, &model, index),
                        cell(kind, start, end),
                        indices.into_iter(),
                    );
                    let rank = model.iter().filter(|m| m.0 < index).count();
                    let end = if kind == 2 { 0 } else { end };
                    model.insert(rank, (index, kind, start, end));
                }
                Some(rank) if op < 3 => {
                    cells.replace(
                        at(&cells, &model, index),
                        cell(kind, start, end),
                        indices.into_iter(),
                    );
                    model[rank] = (index, kind, start, if kind == 2 { 0 } else { end });
                }
                Some(rank) if op < 4 => {
                    let taken = cells.take_dirty(at(&cells, &model, index));
                    if model[rank].1 == 2 {
                        assert_eq!(taken, Some(model[rank].2));
                        model[rank] = (index, 1, 0, 0);
                    } else {
                        assert!(taken.is_none());
                    }
                }
                Some(rank) => {
                    cells.remove(at(&cells, &model, index));
                    model.remove(rank);
                }
                None => {
                    let rank = usize::try_from(state >> 48).unwrap() % model.len();
                    cells.remove(at(&cells, &model, model[rank].0));
                    model.remove(rank);
                }
            }
            if step.is_multiple_of(10) {
                cells.shrink();
            }
            match cells {
                Cells::Small(_) => small += 1,
                Cells::Large(_) => large += 1,
                Cells::Wide(_) => wide += 1,
            }
            let expected: Vec<(u8, u32, u32)> = model.iter().map(|m| (m.1, m.2, m.3)).collect();
            assert_eq!(seen(&cells), expected, "step {step}");
            assert_eq!(cells.len(), model.len());
            for m in &model {
                let got = cells.dirty_mut(at(&cells, &model, m.0)).copied();
                assert_eq!(got, (m.1 == 2).then_some(m.2), "step {step}");
            }
        }
        assert!(
            small > 1000 && large > 1000 && wide > 1000,
            "{small} {large} {wide}"
        );
    }

    #[test]
    fn a_dirty_child_or_a_wide_range_makes_the_cells_large() {
        let first = At { index: 0, rank: 0 };
        let mut cells = Cells::default();
        cells.push(Cell::Bucket(0, 10));
        assert!(matches!(cells, Cells::Small(_)));
        cells.insert(
            At { index: 1, rank: 1 },
            Cell::Dirty(Box::default()),
            [0].into_iter(),
        );
        assert!(matches!(cells, Cells::Large(_)));
        cells.remove(At { index: 1, rank: 1 });
        cells.shrink();
        assert!(matches!(cells, Cells::Small(_)));
        cells.replace(first, Cell::Link(65_000, 70_000), std::iter::empty());
        assert!(matches!(cells, Cells::Large(_)));
        cells.shrink();
        assert!(matches!(cells, Cells::Large(_)));
        assert!(matches!(cells.get(first), CellRef::Link(65_000, 70_000)));
    }
}
