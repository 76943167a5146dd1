//! [`ShardedStore`]: py-hamt's `ShardedZarrStore` layout (`sharded_zarr_v2`), where a chunk
//! read is one shard-entry lookup plus one block fetch.
//!
//! This module holds the store, its builder and its state. `route` says where a key goes,
//! `cache` keeps decoded shards, `read`, `write` and `resize` are what the store does with
//! them, `manifest` and `shard` are the blocks' formats, `convert` makes a store from a HAMT.

mod cache;
mod convert;
mod manifest;
mod pyjson;
mod read;
mod resize;
mod route;
mod shard;
mod write;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use hamt::{BlockStore, Cid};

use self::cache::{ShardCache, ShardKey};
pub use self::convert::hamt_to_sharded;
use self::manifest::{Manifest, Primary};
pub use self::manifest::{V1, V2, Version};
pub use self::read::{ReadMode, SPARSE_PROMOTE_THRESHOLD};
use crate::error::{Error, Result};

/// Default byte budget of the shard cache (py-hamt's 100 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 100 << 20;

/// What a store knows and has changed; one lock guards it, held only for map edits.
struct State {
    /// The root manifest as it stands, with every unflushed change.
    manifest: Manifest,
    cache: ShardCache,
    /// [`ReadMode::Auto`]: sparse reads so far, by shard.
    sparse_reads: HashMap<ShardKey, u32>,
    /// [`ReadMode::Auto`] has switched to full decodes.
    latched: bool,
    /// The last root opened or flushed.
    root: Option<Cid>,
    /// The manifest changed since `root`.
    dirty: bool,
    /// py-hamt's `_v2_pending_root_group_write`: the last group document written was the
    /// root's.
    group_pending: bool,
}

/// Request counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardStats {
    /// Whole shards fetched from the block store.
    pub shard_fetches: u64,
    /// Shards fetched for one entry (sparse reads).
    pub sparse_fetches: u64,
    /// Chunk values fetched.
    pub chunk_fetches: u64,
}

/// A Zarr v3 store in py-hamt's `ShardedZarrStore` layout (`sharded_zarr_v2`) over any
/// [`BlockStore`]: a DAG-CBOR root manifest maps each Zarr metadata key to the CID of its
/// bytes and each array to a list of shards, each a DAG-CBOR list of chunk CIDs (or null) in
/// row-major chunk order. A chunk read is one shard-entry lookup plus one block fetch.
///
/// Roots written here are byte-identical to py-hamt's for the same writes (same root CID);
/// legacy `sharded_zarr_v1` roots open read-only. It implements the same `zarrs_storage`
/// traits as [`HamtStore`](crate::HamtStore) (the sync ones through
/// [`blocking`](crate::blocking)).
///
/// Reads on a read-only store follow a [`ReadMode`]; whole shards are cached within a byte
/// budget and concurrent loads of one shard share one fetch. Writes save chunk blocks at
/// once and keep shards and the root in memory until [`flush`](Self::flush).
pub struct ShardedStore {
    blocks: Arc<dyn BlockStore>,
    read_only: bool,
    mode: ReadMode,
    state: Mutex<State>,
    /// Serializes writes (py-hamt's write lock).
    writer: tokio::sync::Mutex<()>,
    /// One gate a shard being fetched, so concurrent loads share one fetch.
    loading: Mutex<HashMap<ShardKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Metadata documents by the CID of their block.
    metadata_bytes: Mutex<HashMap<Cid, Bytes>>,
    /// Serializes partial writes (read, patch, write back) through `zarrs_storage`.
    partial: tokio::sync::Mutex<()>,
    shard_fetches: AtomicU64,
    sparse_fetches: AtomicU64,
    chunk_fetches: AtomicU64,
}

/// Options for a [`ShardedStore`]: [`ShardedStore::builder`].
#[must_use]
#[derive(Debug)]
pub struct ShardedStoreBuilder {
    blocks: Arc<dyn BlockStore>,
    root: Option<Cid>,
    read_only: bool,
    chunks_per_shard: Option<u64>,
    mode: ReadMode,
    cache_bytes: usize,
}

impl ShardedStoreBuilder {
    /// Opens the dataset at `root` (without one, a new empty v2 store).
    pub fn root(mut self, root: Cid) -> Self {
        self.root = Some(root);
        self
    }

    /// Read-only: writes fail with [`Error::ReadOnly`]; sparse reads become possible.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Chunks per shard of a new store (py-hamt's `chunks_per_shard`).
    pub fn chunks_per_shard(mut self, n: u64) -> Self {
        self.chunks_per_shard = Some(n);
        self
    }

    /// How shards are read (default [`ReadMode::Auto`]).
    pub fn read_mode(mut self, mode: ReadMode) -> Self {
        self.mode = mode;
        self
    }

    /// Byte budget of the shard cache (default 100 MiB).
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Opens the store.
    ///
    /// # Errors
    /// [`Error::Manifest`] for a root that is not a usable manifest; [`Error::Hamt`] when the
    /// root block is missing; [`Error::Layout`] for a new store without a positive
    /// `chunks_per_shard`, or a read-only store without a root.
    pub async fn build(self) -> Result<ShardedStore> {
        let manifest = match self.root {
            Some(root) => Some(decode_manifest(&self.blocks.get(&root).await?)?),
            None => None,
        };
        self.build_with(manifest).await
    }

    /// [`build`](Self::build) with the root's block already fetched.
    pub(crate) async fn build_from_block(self, root_block: &[u8]) -> Result<ShardedStore> {
        let manifest = decode_manifest(root_block)?;
        self.build_with(Some(manifest)).await
    }

    async fn build_with(self, manifest: Option<Manifest>) -> Result<ShardedStore> {
        let (mut manifest, dirty, read_only) = match manifest {
            // Writing v1 roots is py-hamt's deprecated path; they open read-only here.
            Some(m) => {
                let read_only = self.read_only || m.version == Version::V1;
                (m, false, read_only)
            }
            None if self.read_only => {
                return Err(Error::Layout {
                    reason: "a read-only sharded store needs a root".into(),
                });
            }
            None => {
                let cps =
                    self.chunks_per_shard
                        .filter(|&n| n > 0)
                        .ok_or_else(|| Error::Layout {
                            reason: "chunks_per_shard must be a positive integer".into(),
                        })?;
                (Manifest::new_v2(cps), true, false)
            }
        };
        if manifest.version == Version::V1
            && manifest.v1_primary == (Primary::Unknown { inferable: true })
            && let Some(path) = route::infer_v1_primary(&self.blocks, &manifest).await
        {
            manifest.v1_primary = Primary::Inferred(path);
        }
        Ok(ShardedStore {
            blocks: self.blocks,
            read_only,
            mode: self.mode,
            state: Mutex::new(State {
                manifest,
                cache: ShardCache::new(self.cache_bytes),
                sparse_reads: HashMap::new(),
                latched: false,
                root: self.root,
                dirty,
                group_pending: false,
            }),
            writer: tokio::sync::Mutex::new(()),
            loading: Mutex::new(HashMap::new()),
            metadata_bytes: Mutex::new(HashMap::new()),
            partial: tokio::sync::Mutex::new(()),
            shard_fetches: AtomicU64::new(0),
            sparse_fetches: AtomicU64::new(0),
            chunk_fetches: AtomicU64::new(0),
        })
    }
}

fn decode_manifest(bytes: &[u8]) -> Result<Manifest> {
    Manifest::decode(bytes).map_err(|reason| Error::Manifest { reason })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State updates are plain map edits that cannot panic half-way.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ShardedStore {
    /// Options for a store over `blocks`.
    pub fn builder(blocks: Arc<dyn BlockStore>) -> ShardedStoreBuilder {
        ShardedStoreBuilder {
            blocks,
            root: None,
            read_only: false,
            chunks_per_shard: None,
            mode: ReadMode::Auto,
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }

    /// A new, empty v2 store.
    ///
    /// # Errors
    /// [`Error::Layout`] for `chunks_per_shard == 0`.
    pub async fn create(blocks: Arc<dyn BlockStore>, chunks_per_shard: u64) -> Result<Self> {
        Self::builder(blocks)
            .chunks_per_shard(chunks_per_shard)
            .build()
            .await
    }

    /// Opens the dataset at `root` read-only in [`ReadMode::Auto`].
    ///
    /// # Errors
    /// As [`ShardedStoreBuilder::build`].
    pub async fn open(blocks: Arc<dyn BlockStore>, root: Cid) -> Result<Self> {
        Self::builder(blocks).root(root).read_only().build().await
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The block store under the store.
    pub fn blocks(&self) -> &Arc<dyn BlockStore> {
        &self.blocks
    }

    /// The manifest's layout version.
    pub fn version(&self) -> Version {
        self.state().manifest.version
    }

    /// True when writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The read mode.
    pub fn read_mode(&self) -> ReadMode {
        self.mode
    }

    /// True once [`ReadMode::Auto`] has switched to full decodes.
    pub fn is_latched_full(&self) -> bool {
        self.state().latched
    }

    /// Fetch counters since the store was opened.
    pub fn stats(&self) -> ShardStats {
        ShardStats {
            shard_fetches: self.shard_fetches.load(Ordering::Relaxed),
            sparse_fetches: self.sparse_fetches.load(Ordering::Relaxed),
            chunk_fetches: self.chunk_fetches.load(Ordering::Relaxed),
        }
    }

    /// Every array: path, shape, chunk shape and chunks per shard.
    pub fn arrays(&self) -> Vec<(String, Vec<u64>, Vec<u64>, u64)> {
        let st = self.state();
        st.manifest
            .arrays
            .iter()
            .map(|(p, a)| (p.clone(), a.shape.clone(), a.chunk_shape.clone(), a.cps))
            .collect()
    }

    /// The root CID, when nothing changed since it was opened or flushed.
    pub fn root(&self) -> Option<Cid> {
        let st = self.state();
        (!st.dirty && !st.cache.has_dirty())
            .then_some(st.root)
            .flatten()
    }

    /// Held across a partial write through `zarrs_storage`.
    pub(crate) fn partial_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.partial
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }
}

impl fmt::Debug for ShardedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("ShardedStore")
            .field("version", &st.manifest.version)
            .field("arrays", &st.manifest.arrays.len())
            .field("read_only", &self.read_only)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}
