//! [`HamtStore`]: a Zarr v3 store whose keys and values live in a HAMT.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::{BlockStore, Cid, Codec, Config, Hamt, HamtReader};
use tokio::sync::RwLock;
use zarrs_storage::byte_range::ByteRange;

use crate::crypto::Encryption;
use crate::error::{Error, Result};
use crate::metadata::V3_DOCUMENT;

/// The tree behind a store: a shared read-only root, or a tree open for writing.
enum Tree {
    Reader(HamtReader),
    // Boxed: a writable tree holds its root node inline.
    Writer(Box<RwLock<Hamt>>),
}

/// A Zarr v3 store over a HAMT, in py-hamt's `ZarrHAMTStore` layout: each Zarr key
/// (`"temp/zarr.json"`, `"temp/c/0/1/2"`) is a HAMT key and its value the raw bytes Zarr wrote,
/// so the same dataset gets the same root CID here and in py-hamt.
///
/// It implements the async `zarrs_storage` traits (readable, writable, listable), so `zarrs`
/// arrays and groups open on it directly; [`blocking`](crate::blocking) adapts it to the sync
/// traits. Partial writes read the value, patch it and store it again (serialized per
/// store): a value is an immutable block. Reads run concurrently and share the HAMT's node cache, also while the store is
/// open for writing. Chunk writes store their value blocks concurrently and then take a
/// short exclusive lock to link them into the tree; [`flush`](Self::flush) writes the changed
/// nodes and returns the new root.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use hamt::MemoryStore;
/// use hamt_zarr::HamtStore;
///
/// let blocks = Arc::new(MemoryStore::new());
/// let store = HamtStore::builder(blocks.clone()).build().await?;
/// store.set_value("zarr.json", br#"{"zarr_format":3,"node_type":"group"}"#.to_vec()).await?;
/// let root = store.flush().await?;
///
/// let read = HamtStore::builder(blocks).root(root).read_only().build().await?;
/// assert!(read.get_value("zarr.json").await?.is_some());
/// # Ok::<(), hamt_zarr::Error>(())
/// # }).unwrap();
/// ```
pub struct HamtStore {
    tree: Tree,
    blocks: Arc<dyn BlockStore>,
    encryption: Option<Encryption>,
    /// Decrypted `zarr.json` values by the CID of their block: Zarr reads them far more
    /// often than anything else. Keyed by CID, an entry can never be stale.
    metadata: Mutex<HashMap<Cid, Bytes>>,
    /// Serializes partial writes (read, patch, write back) through `zarrs_storage`.
    partial: tokio::sync::Mutex<()>,
}

/// Options for opening a [`HamtStore`]: [`HamtStore::builder`].
#[must_use]
pub struct HamtStoreBuilder {
    blocks: Arc<dyn BlockStore>,
    root: Option<Cid>,
    read_only: bool,
    config: Config,
    encryption: Option<Encryption>,
}

impl HamtStoreBuilder {
    /// Opens the dataset at `root` (without one, the store starts empty).
    pub fn root(mut self, root: Cid) -> Self {
        self.root = Some(root);
        self
    }

    /// Opens the store read-only: writes fail with [`Error::ReadOnly`], and reads need no
    /// lock at all. Needs a [`root`](Self::root).
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The HAMT's configuration (bucket size, node-cache budget).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Encrypts values as py-hamt's `SimpleEncryptedZarrHAMTStore` does.
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// Opens the store.
    ///
    /// # Errors
    /// [`Error::Hamt`] when the root block is missing or not a HAMT node, or the config is
    /// invalid; [`Error::ReadOnly`] for a read-only store without a root.
    pub async fn build(self) -> Result<HamtStore> {
        let tree = match (self.root, self.read_only) {
            (Some(root), true) => Tree::Reader(
                HamtReader::open_with_config(self.blocks.clone(), root, self.config).await?,
            ),
            (Some(root), false) => Tree::Writer(Box::new(RwLock::new(
                Hamt::open_with_config(self.blocks.clone(), root, self.config).await?,
            ))),
            (None, false) => Tree::Writer(Box::new(RwLock::new(Hamt::with_config(
                self.blocks.clone(),
                self.config,
            )?))),
            (None, true) => return Err(Error::ReadOnly),
        };
        Ok(HamtStore {
            tree,
            blocks: self.blocks,
            encryption: self.encryption,
            metadata: Mutex::new(HashMap::new()),
            partial: tokio::sync::Mutex::new(()),
        })
    }
}

impl HamtStore {
    /// Options for opening a store over `blocks`.
    pub fn builder(blocks: Arc<dyn BlockStore>) -> HamtStoreBuilder {
        HamtStoreBuilder {
            blocks,
            root: None,
            read_only: false,
            config: Config::default(),
            encryption: None,
        }
    }

    /// Opens the dataset at `root` read-only.
    ///
    /// # Errors
    /// As [`HamtStoreBuilder::build`].
    pub async fn open(blocks: Arc<dyn BlockStore>, root: Cid) -> Result<Self> {
        Self::builder(blocks).root(root).read_only().build().await
    }

    /// The block store under the tree.
    pub fn blocks(&self) -> &Arc<dyn BlockStore> {
        &self.blocks
    }

    /// True when writes are refused.
    pub fn is_read_only(&self) -> bool {
        matches!(self.tree, Tree::Reader(_))
    }

    /// The encryption settings, if any.
    pub fn encryption(&self) -> Option<&Encryption> {
        self.encryption.as_ref()
    }

    /// The root CID, when the tree has no unflushed changes.
    pub async fn root(&self) -> Option<Cid> {
        match &self.tree {
            Tree::Reader(r) => Some(r.root()),
            Tree::Writer(w) => w.read().await.root(),
        }
    }

    /// Writes every changed node and returns the root CID of the dataset. The store stays
    /// open for more writes.
    ///
    /// # Errors
    /// Store failures.
    pub async fn flush(&self) -> Result<Cid> {
        match &self.tree {
            Tree::Reader(r) => Ok(r.root()),
            Tree::Writer(w) => Ok(w.write().await.flush().await?),
        }
    }

    /// The CID of the block holding `key`'s (possibly encrypted) value.
    ///
    /// # Errors
    /// Store failures.
    pub async fn get_pointer(&self, key: &str) -> Result<Option<Cid>> {
        Ok(match &self.tree {
            Tree::Reader(r) => r.get_pointer(key).await?,
            Tree::Writer(w) => w.read().await.get_pointer(key).await?,
        })
    }

    /// The value of `key`, decrypted when encryption applies to it.
    ///
    /// Values stored as UnixFS files (py-hamt's `KuboCAS` writes chunks over 1 MiB that way)
    /// are reassembled from their blocks.
    ///
    /// # Errors
    /// Store failures; [`Error::Decryption`] when the value does not authenticate.
    pub async fn get_value(&self, key: &str) -> Result<Option<Bytes>> {
        let Some(cid) = self.get_pointer(key).await? else {
            return Ok(None);
        };
        let is_metadata = key.ends_with(V3_DOCUMENT);
        if is_metadata && let Some(hit) = self.cache().get(&cid).cloned() {
            return Ok(Some(hit));
        }
        let raw = hamt::unixfs::read_value(&self.blocks, &cid).await?;
        let value = self.open_value(key, raw)?;
        if is_metadata {
            self.cache().insert(cid, value.clone());
        }
        Ok(Some(value))
    }

    /// The value of `key` exactly as stored, never decrypted: what the HAMT itself holds
    /// (py-hamt's `HAMT.get` under an encrypted store returns the sealed bytes).
    ///
    /// # Errors
    /// Store failures.
    pub async fn get_stored(&self, key: &str) -> Result<Option<Bytes>> {
        let Some(cid) = self.get_pointer(key).await? else {
            return Ok(None);
        };
        Ok(Some(hamt::unixfs::read_value(&self.blocks, &cid).await?))
    }

    /// Sets `key` to `value` exactly as given, never encrypted (py-hamt's `HAMT.set` under an
    /// encrypted store).
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; store failures.
    pub async fn set_stored(&self, key: &str, value: impl Into<Bytes>) -> Result<()> {
        let Tree::Writer(tree) = &self.tree else {
            return Err(Error::ReadOnly);
        };
        let cid = self.blocks.put(Codec::Raw, value.into()).await?;
        tree.write().await.insert_pointer(key, cid).await?;
        Ok(())
    }

    /// Byte ranges of `key`'s value: one fetch, however many ranges.
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value); [`Error::InvalidRange`] for a range past the end.
    pub async fn get_ranges(
        &self,
        key: &str,
        ranges: impl IntoIterator<Item = ByteRange>,
    ) -> Result<Option<Vec<Bytes>>> {
        let Some(value) = self.get_value(key).await? else {
            return Ok(None);
        };
        crate::storage::slice_ranges(key, &value, ranges).map(Some)
    }

    /// Sets `key` to `value`, encrypting it when encryption applies to the key.
    ///
    /// The value block is stored before the tree is locked, so many writes can upload at once.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; store failures.
    pub async fn set_value(&self, key: &str, value: impl Into<Bytes>) -> Result<()> {
        let Tree::Writer(tree) = &self.tree else {
            return Err(Error::ReadOnly);
        };
        let plain: Bytes = value.into();
        let stored = match &self.encryption {
            Some(enc) if enc.applies_to(key) => enc.encrypt(&plain),
            _ => plain.clone(),
        };
        let cid = self.blocks.put(Codec::Raw, stored).await?;
        tree.write().await.insert_pointer(key, cid).await?;
        if key.ends_with(V3_DOCUMENT) {
            self.cache().insert(cid, plain);
        }
        Ok(())
    }

    /// Links `key` to an existing block without storing anything (py-hamt's `set_pointer`):
    /// grafts a chunk from another dataset by CID.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; store failures.
    pub async fn set_pointer(&self, key: &str, cid: Cid) -> Result<()> {
        let Tree::Writer(tree) = &self.tree else {
            return Err(Error::ReadOnly);
        };
        tree.write().await.insert_pointer(key, cid).await?;
        Ok(())
    }

    /// Removes `key`; true when it was there.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; store failures.
    pub async fn erase_key(&self, key: &str) -> Result<bool> {
        let Tree::Writer(tree) = &self.tree else {
            return Err(Error::ReadOnly);
        };
        Ok(tree.write().await.remove(key).await?.is_some())
    }

    /// Removes every key under `prefix` (`""` for all); returns how many.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; store failures.
    pub async fn erase_prefix_keys(&self, prefix: &str) -> Result<usize> {
        let Tree::Writer(tree) = &self.tree else {
            return Err(Error::ReadOnly);
        };
        let keys = self.keys_with_prefix(prefix).await?;
        let mut tree = tree.write().await;
        for key in &keys {
            tree.remove(key).await?;
        }
        Ok(keys.len())
    }

    /// Every key starting with `prefix`, sorted.
    ///
    /// # Errors
    /// Store failures.
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let keep = |k: &String| k.starts_with(prefix);
        let mut keys: Vec<String> = match &self.tree {
            Tree::Reader(r) => {
                r.keys()
                    .try_filter(|k| std::future::ready(keep(k)))
                    .try_collect()
                    .await?
            }
            Tree::Writer(w) => {
                let tree = w.read().await;
                tree.keys()
                    .try_filter(|k| std::future::ready(keep(k)))
                    .try_collect()
                    .await?
            }
        };
        keys.sort_unstable();
        Ok(keys)
    }

    /// Every key starting with `prefix` with its value (decrypted), in the tree's order: a
    /// read-only store walks the tree once (over a store that fetches subtrees, one CAR
    /// stream of the whole tree); a writable one fetches the values of its keys.
    pub fn values<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures::stream::BoxStream<'a, Result<(String, Bytes)>> {
        match &self.tree {
            Tree::Reader(r) => r
                .iter()
                .map_err(Error::from)
                .try_filter(move |(k, _)| std::future::ready(k.starts_with(prefix)))
                .and_then(move |(key, raw)| {
                    std::future::ready(self.open_value(&key, raw).map(|value| (key, value)))
                })
                .boxed(),
            Tree::Writer(_) => crate::source::values_by_key(self, prefix),
        }
    }

    /// The size of `key`'s value as Zarr sees it (decrypted).
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value).
    pub async fn value_size(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.get_value(key).await?.map(|v| v.len() as u64))
    }

    /// Total size of the values under `prefix`, fetched concurrently.
    ///
    /// # Errors
    /// As [`get_value`](Self::get_value).
    pub async fn prefix_size(&self, prefix: &str) -> Result<u64> {
        crate::source::prefix_size(self, prefix).await
    }

    fn open_value(&self, key: &str, raw: Bytes) -> Result<Bytes> {
        match &self.encryption {
            Some(enc) if enc.applies_to(key) => enc.decrypt(key, &raw),
            _ => Ok(raw),
        }
    }

    /// Held across a partial write through `zarrs_storage`.
    pub(crate) fn partial_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.partial
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Cid, Bytes>> {
        // The map holds plain values; a panic elsewhere cannot leave it half-updated.
        self.metadata.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for HamtStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HamtStore")
            .field("read_only", &self.is_read_only())
            .field("encryption", &self.encryption)
            .finish_non_exhaustive()
    }
}
