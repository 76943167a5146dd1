//! Reading a [`ShardedStore`]: metadata documents, chunk pointers through their shard in the
//! store's [`ReadMode`] (one sparse entry, or a whole shard decoded and cached), shard loads
//! that concurrent readers share, and the listing of every key.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hamt::Cid;

use super::cache::ShardKey;
use super::manifest::ArrayIndex;
use super::route::{self, Route};
use super::shard::{self, Entries};
use super::{ShardedStore, State, lock};
use crate::error::{Error, Result};

/// Reads of one shard after which [`ReadMode::Auto`] switches the store to full decodes
/// (py-hamt's `_SPARSE_PROMOTE_THRESHOLD`: sparse costs about 2.6 ms a lookup and a full decode
/// about 0.8 s in py-hamt's measurements, so they break even near 300 reads of a shard).
pub const SPARSE_PROMOTE_THRESHOLD: u32 = 256;

/// How chunk pointers are read from shards of a read-only store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Fetch and decode whole shards, and cache them.
    Full,
    /// Decode only the entry asked for; cache nothing.
    Sparse,
    /// Sparse until any one shard has been read [`SPARSE_PROMOTE_THRESHOLD`] times (a scan),
    /// then full for the whole store.
    #[default]
    Auto,
}

impl FromStr for ReadMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Self::Full),
            "sparse" => Ok(Self::Sparse),
            "auto" => Ok(Self::Auto),
            other => Err(Error::Layout {
                reason: format!(
                    "unsupported shard read mode {other:?}: expected full, sparse or auto"
                ),
            }),
        }
    }
}

/// A chunk's place in its shard, as the manifest stands.
pub(super) struct Slot {
    /// The shard.
    pub(super) key: ShardKey,
    /// The chunk's entry in the shard.
    pub(super) index: u64,
    /// The shard's length.
    pub(super) cps: u64,
    /// The shard's stored CID (`None`: never written, or only in the cache).
    pub(super) shard_cid: Option<Cid>,
}

impl Slot {
    /// Where chunk `coords` of the array at `path` lives, when the array exists and the chunk
    /// is inside its grid.
    pub(super) fn of(index: &ArrayIndex, path: &str, coords: &[u64]) -> Option<Self> {
        let (shard, entry) = index.locate(coords)?;
        Some(Self {
            key: (path.to_owned(), shard),
            index: entry,
            cps: index.cps,
            shard_cid: index.shard_cid(shard),
        })
    }

    /// The entry at this slot of `entries`.
    fn entry(&self, entries: &Entries) -> Option<Cid> {
        usize::try_from(self.index)
            .ok()
            .and_then(|s| entries.get(s))
            .copied()
            .flatten()
    }
}

/// Where `key` goes under the manifest as it stands, and the metadata entry of that key (a
/// chunk key may have a legacy one).
fn routed(st: &State, key: &str) -> (Route, Option<Cid>) {
    let key = route::effective_key(&st.manifest, key);
    let route = route::route_of(&st.manifest, &key);
    (route, st.manifest.metadata.get(&key).copied())
}

impl ShardedStore {
    /// The value of `key`: metadata bytes, or a chunk's bytes through its shard.
    ///
    /// # Errors
    /// Store failures; [`Error::Shard`] for a shard that does not decode.
    pub async fn get_value(&self, key: &str) -> Result<Option<Bytes>> {
        let (route, meta) = routed(&self.state(), key);
        let pointer = match route {
            Route::Invalid => return Ok(None),
            Route::Meta => {
                let Some(cid) = meta else { return Ok(None) };
                return self.metadata_value(cid).await.map(Some);
            }
            // A chunk not in its shard may be a legacy metadata entry of the same key.
            Route::Chunk { path, coords } => self.chunk_pointer(&path, &coords).await?.or(meta),
        };
        let Some(cid) = pointer else {
            return Ok(None);
        };
        self.chunk_fetches.fetch_add(1, Ordering::Relaxed);
        Ok(Some(hamt::unixfs::read_value(&self.blocks, &cid).await?))
    }

    /// What a trustless reader needs to check `key` against the root: the blocks from the
    /// root to the value (the root's manifest, then, for a chunk, its shard) and the value's
    /// CID; `None` when the store has no such key. Only a stored root has a path: a store with
    /// changes not yet flushed is an [`Error::Layout`].
    ///
    /// # Errors
    /// Store failures; [`Error::Shard`] for a shard that does not decode.
    pub async fn path(&self, key: &str) -> Result<Option<(Vec<Cid>, Cid)>> {
        let (root, route, meta, shard) = {
            let st = self.state();
            let root = match st.root {
                Some(root) if !st.dirty && !st.cache.has_dirty() => root,
                _ => {
                    return Err(Error::Layout {
                        reason: "a sharded store with unflushed changes has no path yet".into(),
                    });
                }
            };
            let (route, meta) = routed(&st, key);
            let shard = match &route {
                Route::Chunk { path, coords } => st
                    .manifest
                    .arrays
                    .get(path)
                    .and_then(|index| Slot::of(index, path, coords))
                    .and_then(|slot| slot.shard_cid),
                _ => None,
            };
            (root, route, meta, shard)
        };
        let chunk = match (&route, shard) {
            (Route::Chunk { path, coords }, Some(shard)) => self
                .chunk_pointer(path, coords)
                .await?
                .map(|cid| (vec![root, shard], cid)),
            _ => None,
        };
        Ok(match route {
            Route::Invalid => None,
            // A chunk not in its shard may be a legacy metadata entry of the same key.
            Route::Meta | Route::Chunk { .. } => chunk.or(meta.map(|cid| (vec![root], cid))),
        })
    }

    /// A metadata document by CID, cached after its first read.
    async fn metadata_value(&self, cid: Cid) -> Result<Bytes> {
        if let Some(hit) = lock(&self.metadata_bytes).get(&cid) {
            return Ok(hit.clone());
        }
        let bytes = hamt::unixfs::read_value(&self.blocks, &cid).await?;
        lock(&self.metadata_bytes).insert(cid, bytes.clone());
        Ok(bytes)
    }

    /// The CID of a chunk, through its shard in the store's read mode.
    async fn chunk_pointer(&self, path: &str, coords: &[u64]) -> Result<Option<Cid>> {
        let (slot, sparse) = {
            let mut st = self.state();
            let Some(slot) = st
                .manifest
                .arrays
                .get(path)
                .and_then(|index| Slot::of(index, path, coords))
            else {
                return Ok(None);
            };
            let sparse = self.read_only
                && slot.shard_cid.is_some()
                && !st.cache.contains(&slot.key)
                && self.wants_sparse(&mut st, &slot.key);
            (slot, sparse)
        };
        match slot.shard_cid {
            Some(cid) if sparse => {
                let bytes = self.blocks.get(&cid).await?;
                self.sparse_fetches.fetch_add(1, Ordering::Relaxed);
                shard::entry(&bytes, slot.index, slot.cps).map_err(|reason| Error::Shard {
                    array: slot.key.0.clone(),
                    shard: slot.key.1,
                    reason,
                })
            }
            // An unwritten shard holds no chunk: nothing to fetch or build.
            None if !self.state().cache.contains(&slot.key) => Ok(None),
            _ => {
                let entries = self.load_shard(&slot.key, slot.shard_cid, slot.cps).await?;
                Ok(slot.entry(&entries))
            }
        }
    }

    /// Whether a read of the (uncached, stored) shard at `key` decodes one entry, in the
    /// store's mode; counts the read towards [`ReadMode::Auto`]'s switch.
    fn wants_sparse(&self, st: &mut State, key: &ShardKey) -> bool {
        match self.mode {
            ReadMode::Full => false,
            ReadMode::Sparse => true,
            ReadMode::Auto if st.latched => false,
            ReadMode::Auto => {
                let count = st.sparse_reads.get(key).copied().unwrap_or(0) + 1;
                if count >= SPARSE_PROMOTE_THRESHOLD {
                    st.latched = true;
                    st.sparse_reads.clear();
                    false
                } else {
                    st.sparse_reads.insert(key.clone(), count);
                    true
                }
            }
        }
    }

    /// A shard's entries from the cache, or fetched once however many tasks ask at once
    /// (an unwritten shard is all null).
    pub(super) async fn load_shard(
        &self,
        key: &ShardKey,
        cid: Option<Cid>,
        cps: u64,
    ) -> Result<Arc<Entries>> {
        if let Some(hit) = self.state().cache.get(key) {
            return Ok(hit);
        }
        let gate = lock(&self.loading).entry(key.clone()).or_default().clone();
        let _one = gate.lock().await;
        if let Some(hit) = self.state().cache.get(key) {
            return Ok(hit);
        }
        let entries = match cid {
            None => vec![None; usize::try_from(cps).unwrap_or(0)],
            Some(cid) => {
                let bytes = self.blocks.get(&cid).await?;
                self.shard_fetches.fetch_add(1, Ordering::Relaxed);
                shard::decode(&bytes, cps).map_err(|reason| Error::Shard {
                    array: key.0.clone(),
                    shard: key.1,
                    reason,
                })?
            }
        };
        let entries = Arc::new(entries);
        let entries = {
            let mut st = self.state();
            // A writer may have changed the shard while it was fetched: what it holds wins.
            if let Some(cached) = st.cache.get(key) {
                cached
            } else {
                let current = st.manifest.arrays.get(&key.0).and_then(|a| {
                    let i = usize::try_from(key.1).ok()?;
                    a.shard_cids.get(i).copied()
                });
                if current == Some(cid) {
                    st.cache.insert(key.clone(), entries.clone(), false);
                }
                entries
            }
        };
        lock(&self.loading).remove(key);
        Ok(entries)
    }

    /// Every key: metadata keys, then each array's stored chunks in row-major order (shards
    /// are fetched, and cached, to list them). A legacy v1 root without a recorded root
    /// primary lists its root chunks as `/c/…`, as py-hamt does.
    ///
    /// # Errors
    /// Store failures; [`Error::Shard`].
    pub async fn keys(&self) -> Result<Vec<String>> {
        let (mut keys, arrays) = {
            let st = self.state();
            let keys: Vec<String> = st.manifest.metadata.keys().cloned().collect();
            let arrays: Vec<(String, ArrayIndex)> = st
                .manifest
                .order
                .iter()
                .filter_map(|p| st.manifest.arrays.get(p).map(|a| (p.clone(), a.clone())))
                .collect();
            (keys, arrays)
        };
        for (path, index) in arrays {
            for (s, cid) in index.shard_cids.iter().enumerate() {
                let key: ShardKey = (path.clone(), s as u64);
                if cid.is_none() && !self.state().cache.contains(&key) {
                    continue;
                }
                let entries = self.load_shard(&key, *cid, index.cps).await?;
                let st = self.state();
                for (slot, entry) in entries.iter().enumerate() {
                    let linear = s as u64 * index.cps + slot as u64;
                    if entry.is_some() && linear < index.total_chunks {
                        let coords = ArrayIndex::coords(&index.chunks_per_dim, linear);
                        keys.push(route::listed_chunk_key(&st.manifest, &path, &coords));
                    }
                }
            }
        }
        Ok(keys)
    }
}
