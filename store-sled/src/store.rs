//! [`SledStore`]: blocks in a sled database on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use hamt::{Block, BlockStore, Capabilities, Cid, Codec, HashAlg, verify};

use crate::closing;
use crate::error::Error;
use crate::guard::{self, Guarded};
use crate::large::{self, INLINE_MAX, LargeFiles};
use crate::url;

mod listing;
mod table;

pub use self::table::Table;

/// The URL scheme of this store: `sled:PATH`.
pub const SCHEME: &str = "sled";

/// sled's page cache size when none is given: 32 MiB.
///
/// sled's real footprint is a few times its cache budget for many small blocks, so the
/// default is far below sled's own 1 GiB: the README gives the peak memory of a 1M-key
/// import at several sizes, which `cargo xtask bench` measures again (`rss` on sled).
pub const DEFAULT_CACHE_BYTES: u64 = 32 << 20;

/// A persistent block store in a sled database.
///
/// Keys are CID bytes, values the block bytes. Every block read is checked against its CID,
/// so a damaged file yields [`hamt::Error::Corrupt`], never wrong bytes. sled calls are made
/// directly from the async methods: they are served from sled's page cache and take
/// microseconds, so no thread hand-off is worth its cost.
///
/// Writes are durable after [`flush`](Self::flush) (sled also flushes on its own every
/// 500 ms, and when the last handle is dropped). A damaged database is
/// [`Error::CorruptDatabase`] at open or at the operation that meets the damage, never a
/// panic: every sled call runs behind the boundary described in `guard.rs`.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    blocks: sled::Tree,
    /// File blocks' lengths; their bytes are files (see `large.rs`).
    large: sled::Tree,
    files: LargeFiles,
    path: PathBuf,
    hash_alg: HashAlg,
    /// Declared last so that it drops after `db` and `blocks`: it holds the last handles.
    _closer: Arc<Closer>,
}

/// Holds a handle on the database so that the last drop of a [`SledStore`] happens here,
/// under the guard, and is skipped after sled's flusher thread died (it would never return).
#[derive(Debug)]
struct Closer {
    handles: Option<(sled::Db, sled::Tree, sled::Tree)>,
    files: LargeFiles,
    path: PathBuf,
}

impl Drop for Closer {
    fn drop(&mut self) {
        if let Some(handles) = self.handles.take() {
            if guard::flusher_panicked() {
                std::mem::forget(handles);
            } else {
                // Pending file blocks are recorded, then dropping the database flushes, as a
                // `flush` would. A failure has nowhere to go from a destructor, and the blocks
                // flushed before are durable either way.
                let files = &self.files;
                let _ = guard::guard(move || {
                    let _ = files.commit(|blocks| record(&handles.2, blocks), sled::Error::Io);
                    drop(handles);
                });
                closing::closed(&self.path);
            }
        }
    }
}

/// Enters file blocks into the `large` tree, in one batch.
fn record(large: &sled::Tree, blocks: &[(Cid, u64)]) -> sled::Result<()> {
    let mut batch = sled::Batch::default();
    for (cid, len) in blocks {
        batch.insert(cid.to_bytes(), &large::encode_len(*len));
    }
    large.apply_batch(batch)
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
            cache_bytes: DEFAULT_CACHE_BYTES,
            temporary: false,
        }
    }

    /// The hash new blocks are addressed with (BLAKE3 by default).
    #[must_use]
    pub fn hash_alg(mut self, hash_alg: HashAlg) -> Self {
        self.hash_alg = hash_alg;
        self
    }

    /// sled's page cache size in bytes (32 MiB by default; `?cache=` in a URL).
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
        let config = sled::Config::new()
            .path(&self.path)
            .cache_capacity(self.cache_bytes)
            .temporary(self.temporary);
        let open = || {
            let opened = guard::guard(|| {
                let db = config.open()?;
                let blocks = db.open_tree("blocks")?;
                let large = db.open_tree("large")?;
                Ok((db, blocks, large))
            });
            match opened {
                Ok(Ok(handles)) => Ok(handles),
                Ok(Err(e)) => Err(Error::from_sled(self.path.clone(), e)),
                Err(panic) => Err(Error::from_panic(self.path.clone(), &panic)),
            }
        };
        let is_locked = |e: &Error| matches!(e, Error::Locked { .. });
        let (db, blocks, large) = closing::retry(&self.path, is_locked, open)?;
        let files = LargeFiles::new(&self.path);
        Ok(SledStore {
            _closer: Arc::new(Closer {
                handles: Some((db.clone(), blocks.clone(), large.clone())),
                files: files.clone(),
                path: self.path.clone(),
            }),
            db,
            blocks,
            files,
            large,
            path: self.path,
            hash_alg: self.hash_alg,
        })
    }

    /// The page cache size [`open`](Self::open) will ask sled for.
    pub fn cache_size(&self) -> u64 {
        self.cache_bytes
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Opens the store named by a `sled:PATH` URL (`sled://PATH` is accepted too), with
    /// options after a `?`: `cache=SIZE` is sled's page cache (`65536`, `512KiB`, `64MiB`,
    /// `1GiB`; 32 MiB when not given).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], and as [`SledStoreBuilder::open`].
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Self::builder_from_url(url)?.open()
    }

    /// A builder for the store named by a `sled:PATH[?cache=SIZE]` URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`].
    pub fn builder_from_url(url: &str) -> Result<SledStoreBuilder, Error> {
        url::parse(url)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of blocks held (a walk of the whole database).
    ///
    /// # Errors
    /// [`Error::CorruptDatabase`] when the walk meets damage.
    pub fn len(&self) -> hamt::Result<usize> {
        let recorded = self.call(|| Ok(self.blocks.len() + self.large.len()))?;
        Ok(recorded + self.unrecorded()?.len())
    }

    /// True when no block is held.
    ///
    /// # Errors
    /// As [`len`](Self::len).
    pub fn is_empty(&self) -> hamt::Result<bool> {
        Ok(!self.files.any_pending()
            && self.call(|| Ok(self.blocks.is_empty() && self.large.is_empty()))?)
    }

    /// Size of the database on disk, in bytes: sled's files and the block files beside them.
    ///
    /// # Errors
    /// File system failures, [`Error::CorruptDatabase`] for an entry that is not a length.
    pub fn size_on_disk(&self) -> hamt::Result<u64> {
        let sled = self.call(|| self.db.size_on_disk())?;
        let files: u64 = self.file_blocks()?.iter().map(|(_, len)| len).sum();
        Ok(sled + files)
    }

    /// Makes every block written so far durable: after this returns, they survive a crash of
    /// the process or the machine.
    ///
    /// # Errors
    /// File system failures, [`Error::CorruptDatabase`].
    pub async fn flush(&self) -> hamt::Result<()> {
        self.commit_files()?;
        match Guarded(Box::pin(self.db.flush_async())).await {
            Ok(Ok(_bytes)) => Ok(()),
            Ok(Err(e)) => Err(self.backend(e)),
            Err(panic) => Err(Error::from_panic(self.path.clone(), &panic).into()),
        }
    }

    /// Stores bytes under a CID without checking them, so tests can simulate a damaged disk.
    ///
    /// # Errors
    /// sled failures.
    pub fn insert_unchecked(&self, cid: &Cid, data: &[u8]) -> hamt::Result<()> {
        self.call(|| self.blocks.insert(cid.to_bytes(), data).map(drop))
    }

    /// Runs one sled call behind the panic boundary (see `guard.rs`).
    fn call<T>(&self, f: impl FnOnce() -> sled::Result<T>) -> hamt::Result<T> {
        match guard::guard(f) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.backend(e)),
            Err(panic) => Err(Error::from_panic(self.path.clone(), &panic).into()),
        }
    }

    fn backend(&self, e: sled::Error) -> hamt::Error {
        Error::from_sled(self.path.clone(), e).into()
    }

    /// Stores a block already verified: one over [`INLINE_MAX`] as a pending file (see
    /// `large.rs`), the others in the tree.
    fn store_verified(&self, cid: &Cid, data: &[u8]) -> hamt::Result<()> {
        if data.len() > INLINE_MAX {
            self.files.write(cid, data).map_err(|e| self.io(e))?;
            if self.files.commit_due() {
                self.commit_files()?;
            }
            Ok(())
        } else {
            self.call(|| self.blocks.insert(cid.to_bytes(), data).map(drop))
        }
    }

    /// Makes the pending block files durable and records them (see `large.rs`).
    fn commit_files(&self) -> hamt::Result<()> {
        self.files.commit(
            |blocks| self.call(|| record(&self.large, blocks)),
            |e| self.io(e),
        )
    }

    /// The length of a file block, pending or recorded, if `cid` is one.
    fn large_len(&self, cid: &Cid) -> hamt::Result<Option<u64>> {
        if let Some(len) = self.files.pending_len(cid) {
            return Ok(Some(len));
        }
        let Some(entry) = self.call(|| self.large.get(cid.to_bytes()))? else {
            return Ok(None);
        };
        self.entry_len(cid, &entry).map(Some)
    }

    /// The length a `large` tree entry records for `cid`.
    fn entry_len(&self, cid: &Cid, entry: &[u8]) -> hamt::Result<u64> {
        large::decode_len(entry).ok_or_else(|| {
            Error::CorruptDatabase {
                path: self.path.clone(),
                reason: format!("the entry of block file {cid} is not a length"),
            }
            .into()
        })
    }

    fn io(&self, e: std::io::Error) -> hamt::Error {
        Error::Io {
            path: self.files.dir().to_owned(),
            source: e,
        }
        .into()
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

    /// Hashes once: the CID computed here needs no verifying.
    async fn put(&self, codec: Codec, data: Bytes) -> hamt::Result<Cid> {
        let cid = self.hash_alg.cid(codec, &data);
        self.store_verified(&cid, &data)?;
        Ok(cid)
    }

    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        verify(cid, &data)?;
        self.store_verified(cid, &data)
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        if let Some(data) = self.call(|| self.blocks.get(cid.to_bytes()))? {
            verify(cid, &data)?;
            // The block's bytes stay in sled's buffer, shared, not copied.
            return Ok(Bytes::from_owner(data));
        }
        let len = self
            .large_len(cid)?
            .ok_or(hamt::Error::NotFound { cid: *cid })?;
        let data = self.files.read(cid, len).map_err(|e| {
            hamt::Error::from(if e.kind() == std::io::ErrorKind::NotFound {
                Error::CorruptDatabase {
                    path: self.path.clone(),
                    reason: format!("the file of block {cid} is missing"),
                }
            } else {
                Error::Io {
                    path: self.files.dir().to_owned(),
                    source: e,
                }
            })
        })?;
        verify(cid, &data)?;
        Ok(data)
    }

    async fn has(&self, cid: &Cid) -> hamt::Result<bool> {
        Ok(self.call(|| self.blocks.contains_key(cid.to_bytes()))?
            || self.large_len(cid)?.is_some())
    }

    /// From the index alone for file blocks, from sled's buffer for the others.
    async fn block_size(&self, cid: &Cid) -> hamt::Result<u64> {
        if let Some(data) = self.call(|| self.blocks.get(cid.to_bytes()))? {
            return Ok(data.len() as u64);
        }
        self.large_len(cid)?
            .ok_or(hamt::Error::NotFound { cid: *cid })
    }

    async fn put_many_keyed(&self, blocks: Vec<(Cid, Bytes)>) -> hamt::Result<()> {
        let mut batch = sled::Batch::default();
        for (cid, data) in &blocks {
            verify(cid, data)?;
            if data.len() > INLINE_MAX {
                self.store_verified(cid, data)?;
            } else {
                batch.insert(cid.to_bytes(), &**data);
            }
        }
        self.call(|| self.blocks.apply_batch(batch))
    }

    async fn put_blocks(&self, blocks: Vec<Block>) -> hamt::Result<()> {
        let mut batch = sled::Batch::default();
        for block in &blocks {
            if block.data().len() > INLINE_MAX {
                self.store_verified(block.cid(), block.data())?;
            } else {
                batch.insert(block.cid().to_bytes(), &**block.data());
            }
        }
        self.call(|| self.blocks.apply_batch(batch))
    }

    async fn get_many(&self, cids: &[Cid]) -> hamt::Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(cids.len());
        for cid in cids {
            out.push(self.get(cid).await?);
        }
        Ok(out)
    }
}
