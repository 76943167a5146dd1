//! [`SledStore`]: blocks in a sled database on disk.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use hamt::{Block, BlockStore, Capabilities, Cid, HashAlg, verify};

use crate::error::Error;

/// The URL scheme of this store: `sled:PATH`.
pub const SCHEME: &str = "sled";

/// A persistent block store in a sled database.
///
/// Keys are CID bytes, values the block bytes. Every block read is checked against its CID,
/// so a damaged file yields [`hamt::Error::Corrupt`], never wrong bytes. sled calls are made
/// directly from the async methods: they are served from sled's page cache and take
/// microseconds, so no thread hand-off is worth its cost.
///
/// Writes are durable after [`flush`](Self::flush) (sled also flushes on its own every
/// 500 ms, and when the last handle is dropped).
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    blocks: sled::Tree,
    path: PathBuf,
    hash_alg: HashAlg,
}

/// Options for opening a [`SledStore`].
#[derive(Debug, Clone)]
pub struct SledStoreBuilder {
    path: PathBuf,
    hash_alg: HashAlg,
    cache_bytes: u64,
    temporary: bool,
}

impl SledStoreBuilder {
    /// A store at `path` (a directory, created if missing).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            hash_alg: HashAlg::default(),
            cache_bytes: 256 << 20,
            temporary: false,
        }
    }

    /// The hash new blocks are addressed with (BLAKE3 by default).
    #[must_use]
    pub fn hash_alg(mut self, hash_alg: HashAlg) -> Self {
        self.hash_alg = hash_alg;
        self
    }

    /// sled's page cache size in bytes (256 MiB by default).
    #[must_use]
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Delete the database when the last handle is dropped.
    #[must_use]
    pub fn temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// Opens (or creates) the database.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process holds it, [`Error::CorruptDatabase`] when its
    /// files are damaged, [`Error::Sled`] for other I/O failures.
    pub fn open(self) -> Result<SledStore, Error> {
        let db = sled::Config::new()
            .path(&self.path)
            .cache_capacity(self.cache_bytes)
            .temporary(self.temporary)
            .open()
            .map_err(|e| Error::from_sled(self.path.clone(), e))?;
        let blocks = db
            .open_tree("blocks")
            .map_err(|e| Error::from_sled(self.path.clone(), e))?;
        Ok(SledStore {
            db,
            blocks,
            path: self.path,
            hash_alg: self.hash_alg,
        })
    }
}

impl SledStore {
    /// Opens (or creates) the database at `path` with default options.
    ///
    /// # Errors
    /// As [`SledStoreBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        SledStoreBuilder::new(path.as_ref()).open()
    }

    /// Opens the store named by a `sled:PATH` URL (`sled://PATH` is accepted too).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], and as [`SledStoreBuilder::open`].
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Self::builder_from_url(url)?.open()
    }

    /// A builder for the store named by a `sled:PATH` URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`].
    pub fn builder_from_url(url: &str) -> Result<SledStoreBuilder, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or_else(|| invalid("expected sled:PATH"))?;
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() {
            return Err(invalid("the path is empty"));
        }
        Ok(SledStoreBuilder::new(path))
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// True when no block is held.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Size of the database files on disk, in bytes.
    ///
    /// # Errors
    /// File system failures.
    pub fn size_on_disk(&self) -> hamt::Result<u64> {
        self.db.size_on_disk().map_err(|e| self.backend(e))
    }

    /// Writes everything buffered to disk.
    ///
    /// # Errors
    /// File system failures.
    pub async fn flush(&self) -> hamt::Result<()> {
        self.db.flush_async().await.map_err(|e| self.backend(e))?;
        Ok(())
    }

    /// Stores bytes under a CID without checking them, so tests can simulate a damaged disk.
    ///
    /// # Errors
    /// sled failures.
    pub fn insert_unchecked(&self, cid: &Cid, data: &[u8]) -> hamt::Result<()> {
        self.blocks
            .insert(cid.to_bytes(), data)
            .map_err(|e| self.backend(e))?;
        Ok(())
    }

    fn backend(&self, e: sled::Error) -> hamt::Error {
        Error::from_sled(self.path.clone(), e).into()
    }
}

#[async_trait]
impl BlockStore for SledStore {
    fn hash_alg(&self) -> HashAlg {
        self.hash_alg
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write: true,
            durable: true,
            ..Capabilities::default()
        }
    }

    /// [`SledStore::flush`]: every block stored so far is on disk.
    async fn sync(&self) -> hamt::Result<()> {
        self.flush().await
    }

    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        verify(cid, &data)?;
        self.blocks
            .insert(cid.to_bytes(), &*data)
            .map_err(|e| self.backend(e))?;
        Ok(())
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        let data = self
            .blocks
            .get(cid.to_bytes())
            .map_err(|e| self.backend(e))?
            .ok_or(hamt::Error::NotFound { cid: *cid })?;
        verify(cid, &data)?;
        Ok(Bytes::from(data.to_vec()))
    }

    async fn has(&self, cid: &Cid) -> hamt::Result<bool> {
        self.blocks
            .contains_key(cid.to_bytes())
            .map_err(|e| self.backend(e))
    }

    async fn put_many_keyed(&self, blocks: Vec<(Cid, Bytes)>) -> hamt::Result<()> {
        let mut batch = sled::Batch::default();
        for (cid, data) in &blocks {
            verify(cid, data)?;
            batch.insert(cid.to_bytes(), &**data);
        }
        self.blocks.apply_batch(batch).map_err(|e| self.backend(e))
    }

    async fn put_blocks(&self, blocks: Vec<Block>) -> hamt::Result<()> {
        let mut batch = sled::Batch::default();
        for block in &blocks {
            batch.insert(block.cid().to_bytes(), &**block.data());
        }
        self.blocks.apply_batch(batch).map_err(|e| self.backend(e))
    }

    async fn get_many(&self, cids: &[Cid]) -> hamt::Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(cids.len());
        for cid in cids {
            out.push(self.get(cid).await?);
        }
        Ok(out)
    }
}
