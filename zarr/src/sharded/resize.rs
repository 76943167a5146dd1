//! Resizing an array of a [`ShardedStore`]: growing only the leading dimension keeps every
//! shard (row-major positions do not move); any other change moves each stored chunk to its
//! place in the new grid and rewrites the shards that changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::ShardedStore;
use super::cache::ShardKey;
use super::manifest::ArrayIndex;
use super::shard::Entries;
use crate::error::{Error, Result};

impl ShardedStore {
    /// Changes an array's shape. Growing only the leading dimension keeps every shard (new
    /// chunks land after the existing ones in row-major order); any other change moves each
    /// stored chunk to its new place and rewrites the shards that changed.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Layout`] for an unknown array or a shape of another
    /// rank; store failures.
    pub async fn resize(&self, path: &str, shape: Vec<u64>) -> Result<()> {
        self.check_writable()?;
        let _w = self.writer.lock().await;
        let path = path.trim_matches('/');
        if !self.state().manifest.arrays.contains_key(path) {
            return Err(Error::Layout {
                reason: format!("no array {path:?} to resize"),
            });
        }
        self.resize_index(path, shape).await
    }

    /// [`resize`](Self::resize) with the writer lock held.
    pub(super) async fn resize_index(&self, path: &str, shape: Vec<u64>) -> Result<()> {
        let old = self
            .state()
            .manifest
            .arrays
            .get(path)
            .cloned()
            .ok_or_else(|| Error::Layout {
                reason: format!("no array {path:?}"),
            })?;
        if shape.len() != old.shape.len() {
            return Err(Error::Layout {
                reason: format!("cannot change the rank of array {path:?}"),
            });
        }
        let fast = !shape.is_empty() && shape[0] >= old.shape[0] && shape[1..] == old.shape[1..];
        let mut index = old.clone();
        index
            .resize(shape)
            .map_err(|reason| Error::Layout { reason })?;
        if fast {
            let mut st = self.state();
            st.manifest.arrays.insert(path.to_owned(), index);
            st.dirty = true;
            return Ok(());
        }
        // Every old shard's entries, and whether it had unflushed changes (its stored CID is
        // then stale).
        let mut old_shards = Vec::with_capacity(old.shard_cids.len());
        for (i, cid) in old.shard_cids.iter().enumerate() {
            let key: ShardKey = (path.to_owned(), i as u64);
            let cached = self.state().cache.peek(&key);
            let entries = match (cached, cid) {
                (Some(e), _) => Some(e),
                (None, Some(_)) => Some((self.load_shard(&key, *cid, old.cps).await?, false)),
                (None, None) => None,
            };
            old_shards.push(entries);
        }
        let entries: Vec<Option<&Entries>> = old_shards
            .iter()
            .map(|s| s.as_ref().map(|(e, _)| &**e))
            .collect();
        let new_shards = remap(&old, &entries, &index)?;
        let mut st = self.state();
        st.cache.retain(|(p, _)| p != path);
        index.shard_cids.fill(None);
        for (i, entries) in new_shards {
            let Ok(at) = usize::try_from(i) else { continue };
            // A shard that comes out as it was stored keeps its CID.
            let clean_same = old_shards
                .get(at)
                .and_then(Option::as_ref)
                .is_some_and(|(o, dirty)| !dirty && **o == entries);
            match old.shard_cid(i) {
                Some(cid) if clean_same => index.shard_cids[at] = Some(cid),
                _ => st
                    .cache
                    .insert((path.to_owned(), i), Arc::new(entries), true),
            }
        }
        st.manifest.arrays.insert(path.to_owned(), index);
        st.dirty = true;
        Ok(())
    }
}

/// The stored chunks of `shards` (the old array's, `None` for unwritten ones) at their places
/// in the grid of `new`: the new shards that receive a chunk, by number. Chunks outside the
/// new grid are dropped.
fn remap(
    old: &ArrayIndex,
    shards: &[Option<&Entries>],
    new: &ArrayIndex,
) -> Result<BTreeMap<u64, Entries>> {
    let cps = usize::try_from(new.cps).map_err(|e| Error::Layout {
        reason: e.to_string(),
    })?;
    let mut out: BTreeMap<u64, Entries> = BTreeMap::new();
    for (s, entries) in shards.iter().enumerate() {
        let Some(entries) = entries else { continue };
        for (slot, cid) in entries.iter().enumerate() {
            let Some(cid) = cid else { continue };
            let linear = s as u64 * old.cps + slot as u64;
            if linear >= old.total_chunks {
                continue;
            }
            let coords = ArrayIndex::coords(&old.chunks_per_dim, linear);
            let Some((shard, at)) = new.locate(&coords) else {
                continue;
            };
            let shard = out.entry(shard).or_insert_with(|| vec![None; cps]);
            if let Some(entry) = usize::try_from(at).ok().and_then(|n| shard.get_mut(n)) {
                *entry = Some(*cid);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hamt::{Cid, Codec, HashAlg};

    fn cid(n: u64) -> Cid {
        HashAlg::Blake3.cid(Codec::Raw, &n.to_le_bytes())
    }

    #[test]
    fn chunks_move_to_their_coordinates_in_the_new_grid() {
        // A 2×3 grid, 4 chunks a shard: shard 0 holds (0,0) (0,1) (0,2) (1,0).
        let old = ArrayIndex::new(vec![2, 3], vec![1, 1], 4).unwrap();
        let shard0: Entries = (0..4).map(|i| Some(cid(i))).collect();
        let mut shard1: Entries = vec![None; 4];
        shard1[0] = Some(cid(4)); // (1,1)
        shard1[1] = Some(cid(5)); // (1,2)
        shard1[2] = Some(cid(99)); // linear 6: past the grid, never a chunk
        // Widen to 2×4: rows are now 4 long.
        let new = ArrayIndex::new(vec![2, 4], vec![1, 1], 4).unwrap();
        let out = remap(&old, &[Some(&shard0), Some(&shard1)], &new).unwrap();
        let at = |r: u64, c: u64| {
            let (s, slot) = new.locate(&[r, c]).unwrap();
            out[&s][usize::try_from(slot).unwrap()]
        };
        assert_eq!(at(0, 0), Some(cid(0)));
        assert_eq!(at(0, 2), Some(cid(2)));
        assert_eq!(at(0, 3), None);
        assert_eq!(at(1, 0), Some(cid(3)));
        assert_eq!(at(1, 2), Some(cid(5)));
        assert_eq!(at(1, 3), None);
        assert!(!out.values().flatten().any(|c| *c == Some(cid(99))));
        // Shrink to 1×2: the second row and third column go; unwritten shards stay out.
        let small = ArrayIndex::new(vec![1, 2], vec![1, 1], 4).unwrap();
        let out = remap(&old, &[Some(&shard0), None], &small).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[&0], [Some(cid(0)), Some(cid(1)), None, None]);
    }
}
