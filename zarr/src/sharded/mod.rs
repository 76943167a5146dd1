//! [`ShardedStore`]: py-hamt's `ShardedZarrStore` layout (`sharded_zarr_v2`), where a chunk
//! read is one shard-entry lookup plus one block fetch.

mod convert;
mod manifest;
mod pyjson;
mod shard;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::{BlockStore, Cid, Codec};

pub use self::convert::hamt_to_sharded;
use self::manifest::{ArrayIndex, Manifest};
pub use self::manifest::{V1, V2, Version};
use self::shard::Entries;
use crate::error::{Error, Result};

/// Reads of one shard after which [`ReadMode::Auto`] switches the store to full decodes
/// (py-hamt's `_SPARSE_PROMOTE_THRESHOLD`: sparse costs about 2.6 ms a lookup and a full decode
/// about 0.8 s in py-hamt's measurements, so they break even near 300 reads of a shard).
pub const SPARSE_PROMOTE_THRESHOLD: u32 = 256;
/// Default byte budget of the shard cache (py-hamt's 100 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 100 << 20;
/// Shards saved at once by [`ShardedStore::flush`].
const FLUSH_CONCURRENCY: usize = 8;
/// Synthesized parent group document, byte for byte as py-hamt writes it.
const GROUP_DOC: &[u8] = br#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#;
const V2_GROUP_DOC: &[u8] = br#"{"zarr_format": 2}"#;
const METADATA_SUFFIXES: [&str; 4] = ["zarr.json", ".zarray", ".zattrs", ".zgroup"];

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

type ShardKey = (String, u64);

struct Cached {
    entries: Arc<Entries>,
    dirty: bool,
    tick: u64,
}

/// Shards by (array, shard number), bounded by an estimate of their memory; dirty shards
/// stay until flushed.
struct ShardCache {
    map: HashMap<ShardKey, Cached>,
    bytes: usize,
    budget: usize,
    tick: u64,
}

fn shard_bytes(n: usize) -> usize {
    64 + n * 48
}

impl ShardCache {
    fn get(&mut self, key: &ShardKey) -> Option<&mut Cached> {
        self.tick += 1;
        let tick = self.tick;
        let cached = self.map.get_mut(key)?;
        cached.tick = tick;
        Some(cached)
    }

    fn insert(&mut self, key: ShardKey, entries: Arc<Entries>, dirty: bool) {
        self.tick += 1;
        self.bytes += shard_bytes(entries.len());
        if let Some(old) = self.map.insert(
            key,
            Cached {
                entries,
                dirty,
                tick: self.tick,
            },
        ) {
            self.bytes -= shard_bytes(old.entries.len());
        }
        while self.bytes > self.budget && self.map.len() > 1 {
            let victim = self
                .map
                .iter()
                .filter(|(_, c)| !c.dirty)
                .min_by_key(|(_, c)| c.tick)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            self.remove(&victim);
        }
    }

    fn remove(&mut self, key: &ShardKey) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= shard_bytes(old.entries.len());
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&ShardKey) -> bool) {
        let gone: Vec<ShardKey> = self.map.keys().filter(|k| !keep(k)).cloned().collect();
        for k in gone {
            self.remove(&k);
        }
    }
}

struct State {
    m: Manifest,
    cache: ShardCache,
    sparse_reads: HashMap<ShardKey, u32>,
    latched: bool,
    root: Option<Cid>,
    dirty: bool,
    /// py-hamt's `_v2_pending_root_group_write`.
    group_pending: bool,
}

/// Where a key goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Meta,
    Chunk {
        path: String,
        coords: Vec<u64>,
    },
    /// A chunk key outside its array's grid: ignored on write, absent on read.
    Invalid,
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
/// traits as [`HamtStore`](crate::HamtStore).
///
/// Reads on a read-only store follow a [`ReadMode`]; whole shards are cached within a byte
/// budget and concurrent loads of one shard share one fetch. Writes save chunk blocks at
/// once and keep shards and the root in memory until [`flush`](Self::flush).
pub struct ShardedStore {
    blocks: Arc<dyn BlockStore>,
    read_only: bool,
    mode: ReadMode,
    state: Mutex<State>,
    writer: tokio::sync::Mutex<()>,
    loading: Mutex<HashMap<ShardKey, Arc<tokio::sync::Mutex<()>>>>,
    metadata_bytes: Mutex<HashMap<Cid, Bytes>>,
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
        let (manifest, dirty, read_only) = match self.root {
            Some(root) => {
                let bytes = self.blocks.get(&root).await?;
                let m = Manifest::decode(&bytes).map_err(|reason| Error::Manifest { reason })?;
                // Writing v1 roots is py-hamt's deprecated path; they open read-only here.
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
        let store = ShardedStore {
            blocks: self.blocks,
            read_only,
            mode: self.mode,
            state: Mutex::new(State {
                m: manifest,
                cache: ShardCache {
                    map: HashMap::new(),
                    bytes: 0,
                    budget: self.cache_bytes,
                    tick: 0,
                },
                sparse_reads: HashMap::new(),
                latched: false,
                root: self.root,
                dirty,
                group_pending: false,
            }),
            writer: tokio::sync::Mutex::new(()),
            loading: Mutex::new(HashMap::new()),
            metadata_bytes: Mutex::new(HashMap::new()),
            shard_fetches: AtomicU64::new(0),
            sparse_fetches: AtomicU64::new(0),
            chunk_fetches: AtomicU64::new(0),
        };
        if store.state().m.version == Version::V1 && store.state().m.v1_primary.is_none() {
            store.infer_v1_primary().await?;
        }
        Ok(store)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State updates are plain map edits that cannot panic half-way.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `zarr.json`/`.zarray` keys name the array (or group) path they describe.
fn array_path_of_metadata_key(key: &str) -> Option<&str> {
    if key == "zarr.json" || key == ".zarray" {
        return Some("");
    }
    key.strip_suffix("/zarr.json")
        .or_else(|| key.strip_suffix("/.zarray"))
}

fn group_path_of_metadata_key(key: &str) -> Option<&str> {
    if key == "zarr.json" || key == ".zgroup" {
        return Some("");
    }
    key.strip_suffix("/zarr.json")
        .or_else(|| key.strip_suffix("/.zgroup"))
}

fn metadata_json(raw: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_slice(raw) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// (shape, chunk shape) of array metadata, as py-hamt's `_extract_array_metadata` reads it.
fn array_geometry(
    meta: &serde_json::Map<String, serde_json::Value>,
) -> Option<(Vec<u64>, Vec<u64>)> {
    let ints = |v: &serde_json::Value| -> Option<Vec<u64>> {
        v.as_array()?
            .iter()
            .map(serde_json::Value::as_u64)
            .collect()
    };
    let shape = ints(meta.get("shape")?)?;
    let chunks = meta
        .get("chunk_grid")
        .and_then(|g| g.get("configuration"))
        .and_then(|c| c.get("chunk_shape"))
        .or_else(|| meta.get("chunks"))?;
    Some((shape, ints(chunks)?))
}

fn format_chunk_key(path: &str, coords: &[u64]) -> String {
    let parts: Vec<String> = coords.iter().map(u64::to_string).collect();
    if path.is_empty() {
        format!("c/{}", parts.join("/"))
    } else {
        format!("{path}/c/{}", parts.join("/"))
    }
}

fn decimal_parts(text: &str, sep: char) -> Option<Vec<u64>> {
    text.split(sep)
        .map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect()
}

fn route_of(st: &State, key: &str) -> Route {
    if METADATA_SUFFIXES.iter().any(|s| key.ends_with(s)) {
        return Route::Meta;
    }
    let split = if let Some(i) = key.rfind("/c/") {
        Some((&key[..i], &key[i + 3..]))
    } else {
        key.strip_prefix("c/").map(|rest| ("", rest))
    };
    let Some((path, coords)) = split.and_then(|(p, c)| decimal_parts(c, '/').map(|c| (p, c)))
    else {
        return match classic_chunk_key(st, key) {
            Some((p, c)) => checked(st, p, c),
            None if split.is_some() => Route::Invalid,
            None => Route::Meta,
        };
    };
    let path = path.trim_matches('/');
    if st.m.version == Version::V1 {
        let primary = st.m.v1_primary.as_deref().unwrap_or("");
        if path != primary {
            return Route::Meta;
        }
        return checked(st, String::new(), coords);
    }
    checked(st, path.to_owned(), coords)
}

fn checked(st: &State, path: String, coords: Vec<u64>) -> Route {
    match st.m.arrays.get(&path) {
        Some(index) if index.linear(&coords).is_none() => Route::Invalid,
        _ => Route::Chunk { path, coords },
    }
}

/// Zarr v2 style keys of registered arrays: `p/1.2` and `p/1/2`.
fn classic_chunk_key(st: &State, key: &str) -> Option<(String, Vec<u64>)> {
    if st.m.version != Version::V2 || st.m.arrays.is_empty() {
        return None;
    }
    let (path, last) = key.rsplit_once('/').unwrap_or(("", key));
    if last.contains('.')
        && let Some(coords) = decimal_parts(last, '.')
        && let Some(index) = st.m.arrays.get(path)
        && index.shape.len() == coords.len()
    {
        return Some((path.to_owned(), coords));
    }
    let mut paths: Vec<&String> = st.m.arrays.keys().collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for path in paths {
        let rest = if path.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(path.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        if let Some(coords) = rest.and_then(|r| decimal_parts(r, '/'))
            && coords.len() == st.m.arrays[path].shape.len()
        {
            return Some((path.clone(), coords));
        }
    }
    None
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

    /// The manifest's layout version.
    pub fn version(&self) -> Version {
        self.state().m.version
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
        st.m.arrays
            .iter()
            .map(|(p, a)| (p.clone(), a.shape.clone(), a.chunk_shape.clone(), a.cps))
            .collect()
    }

    /// The root CID, when nothing changed since it was opened or flushed.
    pub fn root(&self) -> Option<Cid> {
        let st = self.state();
        (!st.dirty && !st.cache.map.values().any(|c| c.dirty))
            .then_some(st.root)
            .flatten()
    }

    /// In v1 without a recorded primary array, the one array whose metadata matches the
    /// index (py-hamt's inference; coordinate-named arrays never qualify).
    async fn infer_v1_primary(&self) -> Result<()> {
        const COORDS: [&str; 7] = [
            "time",
            "lat",
            "lon",
            "latitude",
            "longitude",
            "forecast_reference_time",
            "step",
        ];
        let (candidates, shape, chunks) = {
            let st = self.state();
            let index = &st.m.arrays[""];
            let candidates: Vec<(String, Cid)> =
                st.m.metadata
                    .iter()
                    .filter_map(|(k, c)| {
                        let path = array_path_of_metadata_key(k)?;
                        let leaf = path.rsplit('/').next().unwrap_or(path);
                        (!COORDS.contains(&leaf)).then(|| (path.to_owned(), *c))
                    })
                    .collect();
            (candidates, index.shape.clone(), index.chunk_shape.clone())
        };
        let mut found = Vec::new();
        for (path, cid) in candidates {
            let raw = self.blocks.get(&cid).await?;
            if let Some(meta) = metadata_json(&raw)
                && array_geometry(&meta) == Some((shape.clone(), chunks.clone()))
            {
                found.push(path);
            }
        }
        if found.len() == 1 {
            self.state().m.v1_primary = found.pop();
        }
        Ok(())
    }

    /// py-hamt's read-key rewriting: in a v2 store whose arrays all sit in one top-level
    /// group, keys outside it are read from inside it.
    fn effective_key(st: &State, key: &str) -> String {
        let Some(group) = st.m.default_group() else {
            return key.to_owned();
        };
        let norm = key.trim_matches('/');
        if matches!(
            norm,
            "zarr.json" | ".zgroup" | ".zattrs" | ".zmetadata" | ""
        ) || norm == group
            || norm.starts_with(&format!("{group}/"))
        {
            return key.to_owned();
        }
        format!("{group}/{norm}")
    }

    /// The value of `key`: metadata bytes, or a chunk's bytes through its shard.
    ///
    /// # Errors
    /// Store failures; [`Error::Shard`] for a shard that does not decode.
    pub async fn get_value(&self, key: &str) -> Result<Option<Bytes>> {
        let (route, meta) = {
            let st = self.state();
            let key = Self::effective_key(&st, key);
            (route_of(&st, &key), st.m.metadata.get(&key).copied())
        };
        let pointer = match route {
            Route::Invalid => return Ok(None),
            Route::Meta => {
                let Some(cid) = meta else { return Ok(None) };
                if let Some(hit) = lock(&self.metadata_bytes).get(&cid) {
                    return Ok(Some(hit.clone()));
                }
                let bytes = hamt::unixfs::read_value(&self.blocks, &cid).await?;
                lock(&self.metadata_bytes).insert(cid, bytes.clone());
                return Ok(Some(bytes));
            }
            Route::Chunk { path, coords } => self.chunk_pointer(&path, &coords).await?.or(meta),
        };
        let Some(cid) = pointer else {
            return Ok(None);
        };
        self.chunk_fetches.fetch_add(1, Ordering::Relaxed);
        Ok(Some(hamt::unixfs::read_value(&self.blocks, &cid).await?))
    }

    /// The CID of a chunk, through its shard in the store's read mode.
    async fn chunk_pointer(&self, path: &str, coords: &[u64]) -> Result<Option<Cid>> {
        let (key, slot, cps, shard_cid, sparse) = {
            let mut st = self.state();
            let Some(index) = st.m.arrays.get(path) else {
                return Ok(None);
            };
            let Some(linear) = index.linear(coords) else {
                return Ok(None);
            };
            let cps = index.cps;
            let shard = linear / cps;
            let shard_cid = index
                .shard_cids
                .get(usize::try_from(shard).unwrap_or(usize::MAX))
                .copied()
                .flatten();
            let key: ShardKey = (path.to_owned(), shard);
            let eligible =
                self.read_only && shard_cid.is_some() && !st.cache.map.contains_key(&key);
            let sparse = eligible
                && match self.mode {
                    ReadMode::Full => false,
                    ReadMode::Sparse => true,
                    ReadMode::Auto => {
                        if st.latched {
                            false
                        } else {
                            let count = st.sparse_reads.get(&key).copied().unwrap_or(0) + 1;
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
                };
            (key, linear % cps, cps, shard_cid, sparse)
        };
        if sparse && let Some(cid) = shard_cid {
            let bytes = self.blocks.get(&cid).await?;
            self.sparse_fetches.fetch_add(1, Ordering::Relaxed);
            return shard::entry(&bytes, slot, cps).map_err(|reason| Error::Shard {
                array: key.0.clone(),
                shard: key.1,
                reason,
            });
        }
        if shard_cid.is_none() && !self.state().cache.map.contains_key(&key) {
            // An unwritten shard holds no chunk: nothing to fetch or build.
            return Ok(None);
        }
        let entries = self.load_shard(&key, shard_cid, cps).await?;
        Ok(entries
            .get(usize::try_from(slot).unwrap_or(usize::MAX))
            .copied()
            .flatten())
    }

    /// A shard's entries from the cache, or fetched once however many tasks ask at once
    /// (an unwritten shard is all null).
    async fn load_shard(&self, key: &ShardKey, cid: Option<Cid>, cps: u64) -> Result<Arc<Entries>> {
        if let Some(hit) = self.state().cache.get(key) {
            return Ok(hit.entries.clone());
        }
        let gate = lock(&self.loading).entry(key.clone()).or_default().clone();
        let _one = gate.lock().await;
        if let Some(hit) = self.state().cache.get(key) {
            return Ok(hit.entries.clone());
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
            let current = st.m.arrays.get(&key.0).and_then(|a| {
                a.shard_cids
                    .get(usize::try_from(key.1).unwrap_or(usize::MAX))
                    .copied()
            });
            if let Some(cached) = st.cache.get(key) {
                cached.entries.clone()
            } else {
                if current == Some(cid) {
                    st.cache.insert(key.clone(), entries.clone(), false);
                }
                entries
            }
        };
        lock(&self.loading).remove(key);
        Ok(entries)
    }

    /// Where `key` goes, as the manifest stands now.
    fn route(&self, key: &str) -> Route {
        route_of(&self.state(), key)
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    /// Sets `key` to `value` as py-hamt's `set` does: metadata documents register arrays
    /// (and resize them), missing parent groups are synthesized, chunks go into their shard;
    /// chunk keys outside their array's grid are ignored.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; [`Error::Layout`] for an array outside any group after a root
    /// group write (py-hamt's rule), a chunk of an unregistered array, a changed chunk
    /// shape; store failures.
    pub async fn set_value(&self, key: &str, value: impl Into<Bytes>) -> Result<()> {
        self.check_writable()?;
        let mut raw: Bytes = value.into();
        let is_metadata = METADATA_SUFFIXES.iter().any(|s| key.ends_with(s));
        if !is_metadata {
            // Chunks upload before the store is locked, so many can be in flight.
            let route = {
                let st = self.state();
                route_of(&st, key)
            };
            if let Route::Chunk { path, .. } = &route {
                if !self.state().m.arrays.contains_key(path) {
                    return Err(Error::Layout {
                        reason: format!("no array metadata registered for chunk {key:?}"),
                    });
                }
                let cid = self.blocks.put(Codec::Raw, raw).await?;
                let _w = self.writer.lock().await;
                let route = {
                    let st = self.state();
                    route_of(&st, key)
                };
                return self.set_pointer_cid(key, route, cid).await;
            }
        }
        let _w = self.writer.lock().await;
        if self.version() == Version::V2 {
            raw = self.strip_root_consolidated(key, raw);
            self.check_group(key, &raw)?;
        }
        self.register_metadata(key, &raw).await?;
        self.ensure_parent_groups(key).await?;
        let route = self.route(key);
        if route == Route::Invalid {
            return Ok(());
        }
        if let Route::Chunk { path, .. } = &route
            && !self.state().m.arrays.contains_key(path)
        {
            return Err(Error::Layout {
                reason: format!("no array metadata registered for chunk {key:?}"),
            });
        }
        let cid = self.blocks.put(Codec::Raw, raw).await?;
        self.set_pointer_cid(key, route, cid).await
    }

    /// Links `key` to an existing block by CID without copying it (py-hamt's
    /// `set_pointer`): grafts a chunk, or a metadata document (which registers its array).
    ///
    /// # Errors
    /// As [`set_value`](Self::set_value), without the group rule.
    pub async fn set_pointer(&self, key: &str, cid: Cid) -> Result<()> {
        self.check_writable()?;
        let _w = self.writer.lock().await;
        let route = self.route(key);
        let mut cid = cid;
        if route == Route::Meta && self.version() == Version::V2 {
            let root_doc = key == "zarr.json" && self.state().m.grouped_only();
            let registers = array_path_of_metadata_key(key).is_some();
            if root_doc || registers {
                let raw = hamt::unixfs::read_value(&self.blocks, &cid).await?;
                if root_doc {
                    let stripped = self.strip_root_consolidated(key, raw.clone());
                    if stripped != raw {
                        cid = self.blocks.put(Codec::Raw, stripped).await?;
                    }
                }
                self.register_metadata(key, &raw).await?;
            }
            self.ensure_parent_groups(key).await?;
        }
        let route = self.route(key);
        if route == Route::Invalid {
            return Ok(());
        }
        self.set_pointer_cid(key, route, cid).await
    }

    async fn set_pointer_cid(&self, key: &str, route: Route, cid: Cid) -> Result<()> {
        match route {
            Route::Invalid => Ok(()),
            Route::Meta => {
                let mut st = self.state();
                st.m.metadata.insert(key.to_owned(), cid);
                st.dirty = true;
                Ok(())
            }
            Route::Chunk { path, coords } => {
                let (shard_key, slot, shard_cid, cps) = {
                    let st = self.state();
                    let index = st.m.arrays.get(&path).ok_or_else(|| Error::Layout {
                        reason: format!("no array metadata registered for chunk {key:?}"),
                    })?;
                    let Some(linear) = index.linear(&coords) else {
                        return Ok(());
                    };
                    let shard = linear / index.cps;
                    let shard_cid = index
                        .shard_cids
                        .get(usize::try_from(shard).unwrap_or(usize::MAX))
                        .copied()
                        .flatten();
                    (
                        (path.clone(), shard),
                        linear % index.cps,
                        shard_cid,
                        index.cps,
                    )
                };
                let loaded = self.load_shard(&shard_key, shard_cid, cps).await?;
                let mut st = self.state();
                Self::set_entry(&mut st, shard_key, loaded, slot, Some(cid));
                if st.m.metadata.remove(key).is_some() {
                    st.dirty = true;
                }
                Ok(())
            }
        }
    }

    /// Sets one entry of a shard, marking it dirty when it changes. The shard may have left
    /// the cache since `loaded` was read (only clean shards are evicted, so `loaded` is then
    /// still its content); it goes back in, dirty, so no write is lost.
    fn set_entry(
        st: &mut State,
        key: ShardKey,
        loaded: Arc<Entries>,
        slot: u64,
        value: Option<Cid>,
    ) {
        let current = st.cache.get(&key).map_or(loaded, |c| c.entries.clone());
        let Some(slot) = usize::try_from(slot).ok().filter(|&s| s < current.len()) else {
            return;
        };
        if current[slot] != value {
            let mut entries = (*current).clone();
            entries[slot] = value;
            st.cache.insert(key, Arc::new(entries), true);
        }
    }

    fn strip_root_consolidated(&self, key: &str, raw: Bytes) -> Bytes {
        if key != "zarr.json" || !self.state().m.grouped_only() {
            return raw;
        }
        let Some(mut meta) = metadata_json(&raw) else {
            return raw;
        };
        if meta.get("node_type").and_then(serde_json::Value::as_str) != Some("group")
            || !meta.contains_key("consolidated_metadata")
        {
            return raw;
        }
        meta.shift_remove("consolidated_metadata");
        Bytes::from(pyjson::dumps(&serde_json::Value::Object(meta)))
    }

    fn check_group(&self, key: &str, raw: &[u8]) -> Result<()> {
        let Some(meta) = metadata_json(raw) else {
            return Ok(());
        };
        let geometry = array_geometry(&meta);
        let mut st = self.state();
        if let Some(group) = group_path_of_metadata_key(key)
            && geometry.is_none()
        {
            st.group_pending = group.is_empty();
            return Ok(());
        }
        let (Some(path), Some(_)) = (array_path_of_metadata_key(key), geometry) else {
            return Ok(());
        };
        if path.trim_matches('/').contains('/') {
            st.group_pending = false;
            return Ok(());
        }
        if st.group_pending {
            st.group_pending = false;
            return Err(Error::Layout {
                reason: "sharded_zarr_v2 writes require an explicit Zarr group: write the dataset into a group (xarray: to_zarr(..., group='0'))".into(),
            });
        }
        Ok(())
    }

    /// Registers (or resizes) the array a metadata document describes.
    async fn register_metadata(&self, key: &str, raw: &[u8]) -> Result<()> {
        if self.version() != Version::V2 {
            return Ok(());
        }
        let Some(path) = array_path_of_metadata_key(key) else {
            return Ok(());
        };
        let Some((shape, chunks)) = metadata_json(raw).as_ref().and_then(array_geometry) else {
            return Ok(());
        };
        let path = path.trim_matches('/').to_owned();
        let existing = self
            .state()
            .m
            .arrays
            .get(&path)
            .map(|a| (a.shape.clone(), a.chunk_shape.clone()));
        match existing {
            None => {
                let mut st = self.state();
                let cps = st.m.default_cps.ok_or_else(|| Error::Layout {
                    reason: "the store has no default chunks_per_shard".into(),
                })?;
                let index = ArrayIndex::new(shape, chunks, cps)
                    .map_err(|reason| Error::Layout { reason })?;
                st.m.arrays.insert(path.clone(), index);
                st.m.order.push(path);
                st.dirty = true;
                Ok(())
            }
            Some((_, old_chunks)) if old_chunks != chunks => Err(Error::Layout {
                reason: format!("cannot change chunk_shape for existing array index '{path}'"),
            }),
            Some((old_shape, _)) if old_shape != shape => self.resize_index(&path, shape).await,
            Some(_) => Ok(()),
        }
    }

    async fn ensure_parent_groups(&self, key: &str) -> Result<()> {
        if self.version() != Version::V2 {
            return Ok(());
        }
        let Some(path) = array_path_of_metadata_key(key) else {
            return Ok(());
        };
        let zarr_v2 = key.ends_with(".zarray");
        let norm = path.trim_matches('/');
        let mut parents = vec![String::new()];
        let parts: Vec<&str> = norm.split('/').filter(|p| !p.is_empty()).collect();
        for i in 1..parts.len() {
            parents.push(parts[..i].join("/"));
        }
        for parent in parents {
            let doc_key = match (parent.is_empty(), zarr_v2) {
                (true, true) => ".zgroup".to_owned(),
                (true, false) => "zarr.json".to_owned(),
                (false, true) => format!("{parent}/.zgroup"),
                (false, false) => format!("{parent}/zarr.json"),
            };
            if self.state().m.metadata.contains_key(&doc_key) {
                continue;
            }
            let doc = if zarr_v2 { V2_GROUP_DOC } else { GROUP_DOC };
            let cid = self.blocks.put(Codec::Raw, Bytes::from_static(doc)).await?;
            let mut st = self.state();
            st.m.metadata.insert(doc_key, cid);
            st.dirty = true;
        }
        Ok(())
    }

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
        if !self.state().m.arrays.contains_key(path) {
            return Err(Error::Layout {
                reason: format!("no array {path:?} to resize"),
            });
        }
        self.resize_index(path, shape).await
    }

    async fn resize_index(&self, path: &str, shape: Vec<u64>) -> Result<()> {
        let old = self
            .state()
            .m
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
            st.m.arrays.insert(path.to_owned(), index);
            st.dirty = true;
            return Ok(());
        }
        // Every stored chunk, by its coordinates in the old grid; whether each old shard had
        // unflushed changes (its stored CID is then stale).
        let mut old_shards = Vec::with_capacity(old.shard_cids.len());
        for (i, cid) in old.shard_cids.iter().enumerate() {
            let key: ShardKey = (path.to_owned(), i as u64);
            let cached = self
                .state()
                .cache
                .get(&key)
                .map(|c| (c.entries.clone(), c.dirty));
            let entries = match (cached, cid) {
                (Some(e), _) => Some(e),
                (None, Some(_)) => Some((self.load_shard(&key, *cid, old.cps).await?, false)),
                (None, None) => None,
            };
            old_shards.push(entries);
        }
        // Only shards that receive a chunk are built.
        let cps = usize::try_from(index.cps).map_err(|e| Error::Layout {
            reason: e.to_string(),
        })?;
        let mut new_shards: std::collections::BTreeMap<u64, Entries> =
            std::collections::BTreeMap::new();
        for (s, entries) in old_shards.iter().enumerate() {
            let Some((entries, _)) = entries else {
                continue;
            };
            for (slot, cid) in entries.iter().enumerate() {
                let Some(cid) = cid else { continue };
                let linear = s as u64 * old.cps + slot as u64;
                if linear >= old.total_chunks {
                    continue;
                }
                let coords = ArrayIndex::coords(&old.chunks_per_dim, linear);
                if let Some(new_linear) = index.linear(&coords) {
                    let shard = new_shards
                        .entry(new_linear / index.cps)
                        .or_insert_with(|| vec![None; cps]);
                    if let Some(entry) = usize::try_from(new_linear % index.cps)
                        .ok()
                        .and_then(|n| shard.get_mut(n))
                    {
                        *entry = Some(*cid);
                    }
                }
            }
        }
        let mut st = self.state();
        st.cache.retain(|(p, _)| p != path);
        for slot in &mut index.shard_cids {
            *slot = None;
        }
        for (i, entries) in new_shards {
            let Ok(at) = usize::try_from(i) else { continue };
            let clean_same = old_shards
                .get(at)
                .and_then(Option::as_ref)
                .is_some_and(|(o, dirty)| !dirty && **o == entries);
            match old.shard_cids.get(at).copied().flatten() {
                Some(cid) if clean_same => index.shard_cids[at] = Some(cid),
                _ => st
                    .cache
                    .insert((path.to_owned(), i), Arc::new(entries), true),
            }
        }
        st.m.arrays.insert(path.to_owned(), index);
        st.dirty = true;
        Ok(())
    }

    /// Removes `key` (a missing key is not an error).
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; store failures.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.check_writable()?;
        let _w = self.writer.lock().await;
        let route = self.route(key);
        match route {
            Route::Invalid => {}
            Route::Meta => {
                let mut st = self.state();
                if st.m.metadata.remove(key).is_some() {
                    st.dirty = true;
                }
            }
            Route::Chunk { path, coords } => {
                let registered = self.state().m.arrays.get(&path).map(|index| {
                    let linear = index.linear(&coords).unwrap_or(0);
                    let shard = linear / index.cps;
                    let cid = index
                        .shard_cids
                        .get(usize::try_from(shard).unwrap_or(usize::MAX))
                        .copied()
                        .flatten();
                    ((path.clone(), shard), linear % index.cps, cid, index.cps)
                });
                if let Some((shard_key, slot, cid, cps)) = registered {
                    let loaded = self.load_shard(&shard_key, cid, cps).await?;
                    Self::set_entry(&mut self.state(), shard_key, loaded, slot, None);
                }
                let mut st = self.state();
                if st.m.metadata.remove(key).is_some() {
                    st.dirty = true;
                }
            }
        }
        Ok(())
    }

    /// Removes a group or array and everything under it (`""`: everything).
    ///
    /// # Errors
    /// [`Error::ReadOnly`].
    pub async fn delete_dir(&self, prefix: &str) -> Result<()> {
        self.check_writable()?;
        let _w = self.writer.lock().await;
        let p = prefix.trim_matches('/');
        let mut st = self.state();
        if p.is_empty() {
            st.m.metadata.clear();
            st.m.arrays.clear();
            st.m.order.clear();
            st.cache.retain(|_| false);
            st.latched = false;
            st.sparse_reads.clear();
        } else {
            let under = format!("{p}/");
            st.m.metadata.retain(|k, _| !k.starts_with(&under));
            st.m.arrays.retain(|a, _| a != p && !a.starts_with(&under));
            st.m.order.retain(|a| a != p && !a.starts_with(&under));
            st.cache.retain(|(a, _)| a != p && !a.starts_with(&under));
        }
        st.dirty = true;
        Ok(())
    }

    /// Every key: metadata keys, then each array's stored chunks in row-major order (shards
    /// are fetched, and cached, to list them).
    ///
    /// # Errors
    /// Store failures; [`Error::Shard`].
    pub async fn keys(&self) -> Result<Vec<String>> {
        let (mut keys, arrays) = {
            let st = self.state();
            let keys: Vec<String> = st.m.metadata.keys().cloned().collect();
            let arrays: Vec<(String, ArrayIndex)> =
                st.m.order
                    .iter()
                    .filter_map(|p| st.m.arrays.get(p).map(|a| (p.clone(), a.clone())))
                    .collect();
            (keys, arrays)
        };
        let v1_primary = self.state().m.v1_primary.clone();
        for (path, index) in arrays {
            let shown = match (&v1_primary, self.version()) {
                (Some(p), Version::V1) => p.clone(),
                _ => path.clone(),
            };
            for (s, cid) in index.shard_cids.iter().enumerate() {
                let key: ShardKey = (path.clone(), s as u64);
                let cached = self.state().cache.map.contains_key(&key);
                if cid.is_none() && !cached {
                    continue;
                }
                let entries = self.load_shard(&key, *cid, index.cps).await?;
                for (slot, entry) in entries.iter().enumerate() {
                    let linear = s as u64 * index.cps + slot as u64;
                    if entry.is_some() && linear < index.total_chunks {
                        keys.push(format_chunk_key(
                            &shown,
                            &ArrayIndex::coords(&index.chunks_per_dim, linear),
                        ));
                    }
                }
            }
        }
        Ok(keys)
    }

    /// Saves every changed shard (a few at once), then the root if anything changed, and
    /// returns the root CID.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] for a v1 root with changes; store failures.
    pub async fn flush(&self) -> Result<Cid> {
        let _w = self.writer.lock().await;
        let dirty: Vec<(ShardKey, Arc<Entries>)> = {
            let st = self.state();
            st.cache
                .map
                .iter()
                .filter(|(_, c)| c.dirty)
                .map(|(k, c)| (k.clone(), c.entries.clone()))
                .collect()
        };
        let saved: Vec<(ShardKey, Cid)> = futures::stream::iter(dirty)
            .map(|(key, entries)| async move {
                let cid = self
                    .blocks
                    .put(Codec::DagCbor, Bytes::from(shard::encode(&entries)))
                    .await?;
                Ok::<_, Error>((key, cid))
            })
            .buffer_unordered(FLUSH_CONCURRENCY)
            .try_collect()
            .await?;
        let bytes = {
            let mut st = self.state();
            for ((path, shard), cid) in saved {
                if let Some(c) = st.cache.map.get_mut(&(path.clone(), shard)) {
                    c.dirty = false;
                }
                if let Some(index) = st.m.arrays.get_mut(&path)
                    && let Some(slot) = index
                        .shard_cids
                        .get_mut(usize::try_from(shard).unwrap_or(usize::MAX))
                    && *slot != Some(cid)
                {
                    *slot = Some(cid);
                    st.dirty = true;
                }
            }
            if !st.dirty {
                return st.root.ok_or_else(|| Error::Layout {
                    reason: "the store has no root".into(),
                });
            }
            if st.m.version != Version::V2 {
                return Err(Error::ReadOnly);
            }
            st.m.encode().map_err(|reason| Error::Manifest { reason })?
        };
        let root = self.blocks.put(Codec::DagCbor, Bytes::from(bytes)).await?;
        let mut st = self.state();
        st.root = Some(root);
        st.dirty = false;
        Ok(root)
    }
}

impl fmt::Debug for ShardedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("ShardedStore")
            .field("version", &st.m.version)
            .field("arrays", &st.m.arrays.len())
            .field("read_only", &self.read_only)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

mod storage {
    use super::{Bytes, Error, ShardedStore};
    use futures::StreamExt as _;
    use zarrs_storage::byte_range::ByteRangeIterator;
    use zarrs_storage::{
        AsyncListableStorageTraits, AsyncMaybeBytesIterator, AsyncReadableStorageTraits,
        AsyncWritableStorageTraits, MaybeBytes, StorageError, StoreKey, StoreKeys,
        StoreKeysPrefixes, StorePrefix,
    };

    impl ShardedStore {
        async fn sorted_keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
            let mut keys: Vec<String> = self
                .keys()
                .await?
                .into_iter()
                .filter(|k| k.starts_with(prefix))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            Ok(keys)
        }
    }

    #[async_trait::async_trait]
    impl AsyncReadableStorageTraits for ShardedStore {
        async fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
            Ok(self.get_value(key.as_str()).await?)
        }

        async fn get_partial_many<'a>(
            &'a self,
            key: &StoreKey,
            byte_ranges: ByteRangeIterator<'a>,
        ) -> Result<AsyncMaybeBytesIterator<'a>, StorageError> {
            let Some(value) = self.get_value(key.as_str()).await? else {
                return Ok(None);
            };
            let parts = crate::keys::slice_ranges(key.as_str(), &value, byte_ranges)?;
            Ok(Some(
                futures::stream::iter(parts.into_iter().map(Ok)).boxed(),
            ))
        }

        async fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
            Ok(self.get_value(key.as_str()).await?.map(|v| v.len() as u64))
        }

        fn supports_get_partial(&self) -> bool {
            false
        }
    }

    #[async_trait::async_trait]
    impl AsyncWritableStorageTraits for ShardedStore {
        async fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
            Ok(self.set_value(key.as_str(), value).await?)
        }

        async fn set_partial_many<'a>(
            &'a self,
            _key: &StoreKey,
            _offset_values: zarrs_storage::OffsetBytesIterator<'a>,
        ) -> Result<(), StorageError> {
            Err(StorageError::Unsupported(
                "partial writes: chunks are immutable blocks".into(),
            ))
        }

        async fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
            Ok(self.delete(key.as_str()).await?)
        }

        async fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), StorageError> {
            Ok(self.delete_dir(prefix.as_str()).await?)
        }

        fn supports_set_partial(&self) -> bool {
            false
        }
    }

    #[async_trait::async_trait]
    impl AsyncListableStorageTraits for ShardedStore {
        async fn list(&self) -> Result<StoreKeys, StorageError> {
            self.list_prefix(&StorePrefix::root()).await
        }

        async fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, StorageError> {
            self.sorted_keys(prefix.as_str())
                .await?
                .into_iter()
                .map(|k| StoreKey::new(k).map_err(StorageError::from))
                .collect()
        }

        async fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, StorageError> {
            let base = prefix.as_str();
            crate::keys::children(base, self.sorted_keys(base).await?)
        }

        async fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, StorageError> {
            let mut total = 0;
            for key in self.sorted_keys(prefix.as_str()).await? {
                total += self.get_value(&key).await?.map_or(0, |v| v.len() as u64);
            }
            Ok(total)
        }
    }
}
