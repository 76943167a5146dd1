//! Boxes of C-order arrays: the rows a box is made of, cutting one out, and whether a set of
//! boxes overlaps.

/// A box in an array: where it starts and its extent, one value a dimension.
#[derive(Debug, Clone)]
pub(super) struct Region {
    pub(super) start: Vec<u64>,
    pub(super) shape: Vec<u64>,
}

/// The bytes of a C-order array of `shape` with elements of `itemsize` bytes; None when that
/// does not fit in memory.
pub(super) fn byte_len(shape: &[u64], itemsize: usize) -> Option<usize> {
    shape.iter().try_fold(itemsize, |n, &d| {
        usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
    })
}

impl Region {
    /// Elements in the box.
    pub(super) fn len(&self) -> u64 {
        self.shape.iter().product()
    }

    /// The box's bytes, as [`byte_len`].
    pub(super) fn byte_len(&self, itemsize: usize) -> Option<usize> {
        byte_len(&self.shape, itemsize)
    }

    fn is_empty(&self) -> bool {
        self.shape.contains(&0)
    }

    /// Whether the box lies inside an array of shape `full`, in every dimension.
    pub(super) fn within(&self, full: &[u64]) -> bool {
        self.start.len() == full.len()
            && self.shape.len() == full.len()
            && self
                .start
                .iter()
                .zip(&self.shape)
                .zip(full)
                .all(|((&start, &n), &dim)| start.checked_add(n).is_some_and(|end| end <= dim))
    }

    /// Whether the two boxes share an element.
    fn overlaps(&self, other: &Self) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && self
                .start
                .iter()
                .zip(&self.shape)
                .zip(other.start.iter().zip(&other.shape))
                .all(|((&a, &an), (&b, &bn))| a < b.saturating_add(bn) && b < a.saturating_add(an))
    }
}

/// Whether no two of `regions` share an element.
///
/// A sweep along the first dimension: each box is compared only with those whose first
/// dimension overlaps its own, so the boxes of a chunk grid cost about the number of chunks
/// in one slab each.
pub(super) fn disjoint(regions: &[Region]) -> bool {
    let mut order: Vec<&Region> = regions.iter().filter(|r| !r.is_empty()).collect();
    if order.first().is_some_and(|r| r.start.is_empty()) {
        // Zero-dimensional: every box is the one element.
        return order.len() <= 1;
    }
    order.sort_by_key(|r| r.start[0]);
    let mut active: Vec<&Region> = Vec::new();
    for region in order {
        let from = region.start[0];
        active.retain(|a| a.start[0].saturating_add(a.shape[0]) > from);
        if active.iter().any(|a| a.overlaps(region)) {
            return false;
        }
        active.push(region);
    }
    true
}

/// Calls `row(byte_offset, byte_len)` for each innermost run of `region` in a C-order array
/// of shape `full`, in C order.
pub(super) fn for_each_row(
    full: &[u64],
    region: &Region,
    itemsize: usize,
    mut row: impl FnMut(usize, usize),
) {
    let (start, shape) = (&region.start, &region.shape);
    let ndim = full.len();
    if shape.contains(&0) {
        return;
    }
    if ndim == 0 {
        row(0, itemsize);
        return;
    }
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let mut strides = vec![itemsize; ndim];
    for d in (0..ndim - 1).rev() {
        strides[d] = strides[d + 1].saturating_mul(to_usize(full[d + 1]));
    }
    let len = to_usize(shape[ndim - 1]).saturating_mul(itemsize);
    let mut idx = vec![0u64; ndim - 1];
    loop {
        let mut offset = to_usize(start[ndim - 1]).saturating_mul(itemsize);
        for d in 0..ndim - 1 {
            offset = offset.saturating_add(
                to_usize(start[d].saturating_add(idx[d])).saturating_mul(strides[d]),
            );
        }
        row(offset, len);
        // Next index of the outer dimensions, last fastest.
        let mut d = ndim - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// The C-order bytes of `region` of a C-order array of shape `full`; None when the region
/// reaches past `src`.
pub(super) fn extract(
    src: &[u8],
    full: &[u64],
    region: &Region,
    itemsize: usize,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(region.byte_len(itemsize)?);
    let mut inside = true;
    for_each_row(full, region, itemsize, |offset, len| {
        match offset.checked_add(len).and_then(|end| src.get(offset..end)) {
            Some(row) => out.extend_from_slice(row),
            None => inside = false,
        }
    });
    inside.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: &[u64], shape: &[u64]) -> Region {
        Region {
            start: start.to_vec(),
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn a_chunk_grid_is_disjoint_and_a_shared_element_is_not() {
        let mut grid = Vec::new();
        for t in 0..4 {
            for y in 0..3 {
                for x in 0..5 {
                    grid.push(r(&[t * 2, y * 3, x * 4], &[2, 3, 4]));
                }
            }
        }
        assert!(disjoint(&grid));
        grid.push(r(&[7, 8, 19], &[1, 1, 1]));
        assert!(
            !disjoint(&grid),
            "the last element of the last chunk, twice"
        );
        // Boxes that touch along a face share nothing; empty ones overlap nothing.
        assert!(disjoint(&[
            r(&[0, 0], &[2, 2]),
            r(&[2, 0], &[2, 2]),
            r(&[1, 1], &[0, 5])
        ]));
        assert!(!disjoint(&[r(&[0, 0], &[3, 3]), r(&[2, 2], &[3, 3])]));
        assert!(disjoint(&[r(&[], &[])]));
        assert!(!disjoint(&[r(&[], &[]), r(&[], &[])]));
    }

    #[test]
    fn a_box_is_within_an_array_only_in_every_dimension() {
        assert!(r(&[2, 0], &[2, 4]).within(&[4, 4]));
        assert!(r(&[4, 4], &[0, 0]).within(&[4, 4]), "empty, at the end");
        // Past the last column: in bytes it would still fit, wrapped into the next row.
        assert!(!r(&[0, 2], &[1, 4]).within(&[4, 4]));
        assert!(!r(&[3, 0], &[2, 1]).within(&[4, 4]));
        assert!(!r(&[u64::MAX, 0], &[2, 1]).within(&[4, 4]), "overflow");
        assert!(!r(&[0], &[1]).within(&[4, 4]), "other dimensions");
        assert!(r(&[], &[]).within(&[]));
    }

    #[test]
    fn byte_len_counts_bytes_and_refuses_what_cannot_fit() {
        assert_eq!(byte_len(&[3, 4], 4), Some(48));
        assert_eq!(byte_len(&[], 8), Some(8), "a scalar is one element");
        assert_eq!(byte_len(&[u64::MAX, 2], 1), None);
        assert_eq!(r(&[5, 5], &[2, 3]).byte_len(2), Some(12));
    }

    #[test]
    fn extract_cuts_a_box_and_refuses_one_past_the_end() {
        // A 3×4 array of one-byte elements 0..12.
        let src: Vec<u8> = (0..12).collect();
        assert_eq!(
            extract(&src, &[3, 4], &r(&[1, 1], &[2, 2]), 1),
            Some(vec![5, 6, 9, 10])
        );
        assert_eq!(extract(&src[..10], &[3, 4], &r(&[1, 1], &[2, 2]), 1), None);
    }
}
