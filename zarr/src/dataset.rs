//! [`Dataset`]: a dataset opened read-only by its root CID, whatever its layout — a HAMT
//! ([`HamtStore`]) or py-hamt's sharded manifest ([`ShardedStore`]), told apart by the root
//! block.

use std::sync::Arc;

use bytes::Bytes;
use hamt::{BlockStore, Cid, Codec, Config};

use crate::error::{Error, Result};
use crate::{Encryption, HamtStore, ReadMode, ShardedStore, metadata};

/// How a dataset's keys are laid out over blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// py-hamt's `ZarrHAMTStore`: every key in one HAMT, whose root is a node (a DAG-CBOR
    /// list of slots).
    Hamt,
    /// py-hamt's `ShardedZarrStore`: a root manifest (a DAG-CBOR map) and shards of chunk
    /// CIDs.
    Sharded,
}

impl Layout {
    /// The layout of the dataset at `root`, from its root block.
    ///
    /// # Errors
    /// [`Error::Hamt`] when the block is missing (see [`Error::is_not_found`]);
    /// [`Error::UnknownLayout`] for a block that is neither a list nor a map of DAG-CBOR.
    pub async fn detect(blocks: &Arc<dyn BlockStore>, root: &Cid) -> Result<Self> {
        Self::of_block(root, &blocks.get(root).await?)
    }

    /// The layout a root block has: a DAG-CBOR list is a HAMT node, a map a manifest. The
    /// rest of the block is left to the store that opens it.
    fn of_block(root: &Cid, block: &[u8]) -> Result<Self> {
        let unknown = |reason: &str| Error::UnknownLayout {
            root: *root,
            reason: reason.into(),
        };
        if root.codec() != Codec::DagCbor.code() {
            return Err(unknown("its CID is not of a DAG-CBOR block"));
        }
        // The CBOR major type is the top three bits of the first byte.
        match block.first().map(|b| b >> 5) {
            Some(4) => Ok(Self::Hamt),
            Some(5) => Ok(Self::Sharded),
            Some(_) => Err(unknown("the block is neither a list nor a map")),
            None => Err(unknown("the block is empty")),
        }
    }
}

/// The stores a [`Dataset`] can be.
#[derive(Debug)]
// One per open dataset, never in a collection: boxing would only add a pointer to chase.
#[allow(clippy::large_enum_variant)]
enum Store {
    Hamt(HamtStore),
    Sharded(ShardedStore),
}

/// A dataset opened read-only by its root CID, in whichever layout the root block says:
/// lists its keys and reads their values the same way for both (and through the
/// `zarrs_storage` readable and listable traits, so `zarrs` opens its arrays).
///
/// Without an [`Encryption`], a metadata document that has the shape of ciphertext is
/// [`Error::Encrypted`]: an encrypted dataset never reads as garbage.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use hamt::{BlockStore, MemoryStore};
/// use hamt_zarr::{Dataset, HamtStore, Layout, ShardedStore};
///
/// let blocks: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
/// let hamt = HamtStore::builder(blocks.clone()).build().await?;
/// hamt.set_value("zarr.json", br#"{"zarr_format":3,"node_type":"group"}"#.to_vec()).await?;
/// let sharded = ShardedStore::create(blocks.clone(), 4).await?;
/// sharded.set_value("zarr.json", br#"{"zarr_format":3,"node_type":"group"}"#.to_vec()).await?;
///
/// for (root, layout) in [(hamt.flush().await?, Layout::Hamt), (sharded.flush().await?, Layout::Sharded)] {
///     let dataset = Dataset::open(blocks.clone(), root).await?;
///     assert_eq!(dataset.layout(), layout);
///     assert_eq!(dataset.keys().await?, ["zarr.json"]);
///     assert!(dataset.get_value("zarr.json").await?.is_some());
/// }
/// # Ok::<(), hamt_zarr::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Dataset {
    root: Cid,
    store: Store,
}

/// Options for opening a [`Dataset`]: [`Dataset::builder`].
#[must_use]
#[derive(Debug)]
pub struct DatasetBuilder {
    blocks: Arc<dyn BlockStore>,
    root: Cid,
    encryption: Option<Encryption>,
    config: Config,
    read_mode: ReadMode,
    cache_bytes: usize,
}

impl DatasetBuilder {
    /// Decrypts values as py-hamt's `SimpleEncryptedZarrHAMTStore` does (HAMT datasets
    /// only: py-hamt's sharded layout has no encryption).
    pub fn encryption(mut self, encryption: Encryption) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// The HAMT's configuration (node-cache budget) for a HAMT dataset.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// How shards are read, for a sharded dataset (default [`ReadMode::Auto`]).
    pub fn read_mode(mut self, mode: ReadMode) -> Self {
        self.read_mode = mode;
        self
    }

    /// Byte budget of a sharded dataset's shard cache (default 100 MiB).
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Fetches the root block, tells its layout and opens the dataset read-only.
    ///
    /// # Errors
    /// As [`Layout::detect`], then as [`HamtStoreBuilder::build`](crate::HamtStoreBuilder::build)
    /// or [`ShardedStoreBuilder::build`](crate::ShardedStoreBuilder::build);
    /// [`Error::Layout`] for an encryption key given for a sharded dataset.
    pub async fn build(self) -> Result<Dataset> {
        let block = self.blocks.get(&self.root).await?;
        let store = match Layout::of_block(&self.root, &block)? {
            Layout::Hamt => {
                let mut builder = HamtStore::builder(self.blocks)
                    .root(self.root)
                    .read_only()
                    .config(self.config);
                if let Some(encryption) = self.encryption {
                    builder = builder.encryption(encryption);
                }
                Store::Hamt(builder.build().await?)
            }
            Layout::Sharded => {
                if self.encryption.is_some() {
                    return Err(Error::Layout {
                        reason: format!(
                            "{} is a sharded dataset, which has no encryption: open it without a key",
                            self.root
                        ),
                    });
                }
                let store = ShardedStore::builder(self.blocks)
                    .root(self.root)
                    .read_only()
                    .read_mode(self.read_mode)
                    .cache_bytes(self.cache_bytes)
                    .build_from_block(&block)
                    .await?;
                Store::Sharded(store)
            }
        };
        Ok(Dataset {
            root: self.root,
            store,
        })
    }
}

impl Dataset {
    /// Options for opening the dataset at `root` in `blocks`.
    pub fn builder(blocks: Arc<dyn BlockStore>, root: Cid) -> DatasetBuilder {
        DatasetBuilder {
            blocks,
            root,
            encryption: None,
            config: Config::default(),
            read_mode: ReadMode::Auto,
            cache_bytes: crate::DEFAULT_CACHE_BYTES,
        }
    }

    /// Opens the dataset at `root` read-only, in the layout its root block has.
    ///
    /// # Errors
    /// As [`DatasetBuilder::build`].
    pub async fn open(blocks: Arc<dyn BlockStore>, root: Cid) -> Result<Self> {
        Self::builder(blocks, root).build().await
    }

    /// The root CID it was opened at.
    pub fn root(&self) -> Cid {
        self.root
    }

    /// The dataset's layout.
    pub fn layout(&self) -> Layout {
        match self.store {
            Store::Hamt(_) => Layout::Hamt,
            Store::Sharded(_) => Layout::Sharded,
        }
    }

    /// The HAMT store, for a HAMT dataset.
    pub fn as_hamt(&self) -> Option<&HamtStore> {
        match &self.store {
            Store::Hamt(store) => Some(store),
            Store::Sharded(_) => None,
        }
    }

    /// The sharded store, for a sharded dataset (its manifest's arrays, its read counters).
    pub fn as_sharded(&self) -> Option<&ShardedStore> {
        match &self.store {
            Store::Sharded(store) => Some(store),
            Store::Hamt(_) => None,
        }
    }

    /// Every key, sorted.
    ///
    /// # Errors
    /// Store failures; [`Error::Shard`] for a shard that does not decode.
    pub async fn keys(&self) -> Result<Vec<String>> {
        self.keys_with_prefix("").await
    }

    /// Every key starting with `prefix`, sorted.
    ///
    /// # Errors
    /// As [`keys`](Self::keys).
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        match &self.store {
            Store::Hamt(store) => store.keys_with_prefix(prefix).await,
            Store::Sharded(store) => crate::Source::keys_with_prefix(store, prefix).await,
        }
    }

    /// The value of `key` (decrypted with the dataset's encryption, if any).
    ///
    /// # Errors
    /// Store failures; [`Error::Decryption`] for a value the key does not open;
    /// [`Error::Encrypted`] for a metadata document that is ciphertext when no encryption
    /// was given.
    pub async fn get_value(&self, key: &str) -> Result<Option<Bytes>> {
        let (value, keyless) = match &self.store {
            Store::Hamt(store) => (store.get_value(key).await?, store.encryption().is_none()),
            Store::Sharded(store) => (store.get_value(key).await?, true),
        };
        if let Some(value) = &value {
            refuse_ciphertext(keyless, key, value)?;
        }
        Ok(value)
    }
}

/// Refuses a metadata document that is ciphertext when the dataset was opened without a key
/// (`keyless`), as [`Dataset::get_value`] and [`Source::values`](crate::Source::values) do.
fn refuse_ciphertext(keyless: bool, key: &str, value: &[u8]) -> Result<()> {
    if keyless && metadata::is_json_key(key) {
        metadata::refuse_encrypted(key, value)
    } else {
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::Source for Dataset {
    async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        Dataset::keys_with_prefix(self, prefix).await
    }

    async fn get_value(&self, key: &str) -> Result<Option<Bytes>> {
        Dataset::get_value(self, key).await
    }

    fn values<'a>(
        &'a self,
        prefix: &'a str,
    ) -> futures::stream::BoxStream<'a, Result<(String, Bytes)>> {
        use futures::{StreamExt as _, TryStreamExt as _};
        match &self.store {
            Store::Hamt(store) => {
                let keyless = store.encryption().is_none();
                store
                    .values(prefix)
                    .and_then(move |(key, value)| {
                        let checked = refuse_ciphertext(keyless, &key, &value);
                        std::future::ready(checked.map(|()| (key, value)))
                    })
                    .boxed()
            }
            // Through this dataset's own `get_value`, which checks each document.
            Store::Sharded(_) => crate::source::values_by_key(self, prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hamt::HashAlg;

    #[test]
    fn the_root_blocks_first_byte_tells_the_layout() {
        let cbor = HashAlg::Blake3.cid(Codec::DagCbor, b"x");
        // A HAMT node: a list of 256 slots; a manifest: a map.
        assert_eq!(
            Layout::of_block(&cbor, &[0x99, 0x01, 0x00]).unwrap(),
            Layout::Hamt
        );
        assert_eq!(Layout::of_block(&cbor, &[0xa4]).unwrap(), Layout::Sharded);
        for other in [&[0x01][..], &[0x40][..], &[0xf6][..], &[][..]] {
            assert!(matches!(
                Layout::of_block(&cbor, other),
                Err(Error::UnknownLayout { .. })
            ));
        }
        let raw = HashAlg::Blake3.cid(Codec::Raw, b"x");
        assert!(matches!(
            Layout::of_block(&raw, &[0x99]),
            Err(Error::UnknownLayout { .. })
        ));
    }
}
