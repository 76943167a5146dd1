//! Checks a gateway's `order=dfs` CAR against the walk it claims to be: every block is the
//! one a depth-first, pre-order walk from the root meets next (links in
//! [`hamt::dag::links`] order), and the stream ends exactly when the walk does. The blocks
//! themselves are checked against their CIDs by [`hamt::car::CarReader`]; this makes sure
//! none is left out, added or reordered, so a reader of the stream gets the whole DAG or an
//! error, never a silent part of it.

use std::collections::HashSet;

use hamt::Cid;

/// Where the walk a CAR must follow stands.
#[derive(Debug)]
pub(crate) struct DfsCheck {
    /// Blocks still to come, the next on top.
    stack: Vec<Cid>,
    /// Blocks already sent, when each is sent once (`dups=n`).
    seen: Option<HashSet<Cid>>,
}

impl DfsCheck {
    /// The walk from `root`; `dups` as asked of the gateway.
    pub(crate) fn new(root: Cid, dups: bool) -> Self {
        Self {
            stack: if hamt::inline_data(&root).is_some() {
                Vec::new()
            } else {
                vec![root]
            },
            seen: (!dups).then(HashSet::new),
        }
    }

    /// The block the walk meets next, if any.
    fn next_expected(&mut self) -> Option<Cid> {
        while let Some(cid) = self.stack.pop() {
            let fresh = self.seen.as_mut().is_none_or(|seen| seen.insert(cid));
            if fresh {
                return Some(cid);
            }
        }
        None
    }

    /// Takes the next block of the stream.
    ///
    /// # Errors
    /// A reason when it is not the block the walk meets next, or its links cannot be read.
    pub(crate) fn accept(&mut self, cid: &Cid, data: &[u8]) -> Result<(), String> {
        match self.next_expected() {
            Some(expected) if expected == *cid => {}
            Some(expected) => {
                return Err(format!(
                    "block {cid} came where a depth-first walk meets {expected}"
                ));
            }
            None => return Err(format!("block {cid} came after the walk was complete")),
        }
        let links = hamt::dag::links(cid, data).map_err(|e| e.to_string())?;
        self.stack.extend(links.into_iter().rev());
        Ok(())
    }

    /// The stream ended.
    ///
    /// # Errors
    /// A reason when the walk meets more blocks.
    pub(crate) fn finish(&mut self) -> Result<(), String> {
        match self.next_expected() {
            None => Ok(()),
            Some(missing) => Err(format!("the CAR ended before block {missing}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use hamt::codec::cbor;
    use hamt::{Codec, HashAlg};

    use super::*;

    fn node(links: &[Cid]) -> (Cid, Vec<u8>) {
        let mut block = Vec::new();
        cbor::write_head(&mut block, cbor::ARRAY, links.len() as u64);
        for l in links {
            cbor::write_cid(&mut block, &l.to_bytes());
        }
        (HashAlg::Blake3.cid(Codec::DagCbor, &block), block)
    }

    #[test]
    fn only_the_exact_walk_passes() {
        let leaf = HashAlg::Blake3.cid(Codec::Raw, b"leaf");
        let other = HashAlg::Blake3.cid(Codec::Raw, b"other");
        let (mid, mid_data) = node(&[leaf]);
        let (root, root_data) = node(&[mid, leaf, other]);
        let walk = |dups: bool, blocks: &[(Cid, &[u8])]| -> Result<(), String> {
            let mut check = DfsCheck::new(root, dups);
            for (cid, data) in blocks {
                check.accept(cid, data)?;
            }
            check.finish()
        };
        let (r, m, l, o) = (
            (root, &root_data[..]),
            (mid, &mid_data[..]),
            (leaf, &b"leaf"[..]),
            (other, &b"other"[..]),
        );
        assert_eq!(walk(false, &[r, m, l, o]), Ok(()));
        assert_eq!(walk(true, &[r, m, l, l, o]), Ok(()));
        // A duplicate where none is wanted, one missing where it is, a block left out, one
        // too many, two swapped.
        assert!(walk(false, &[r, m, l, l, o]).is_err());
        assert!(walk(true, &[r, m, l, o]).is_err());
        assert!(walk(false, &[r, m, l]).is_err());
        assert!(walk(false, &[r, m, l, o, o]).is_err());
        assert!(walk(false, &[r, l, m, o]).is_err());
        assert!(walk(false, &[]).is_err());
    }
}
