//! [`CachedStore`]: a local store in front of a remote one.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use hamt::{Block, BlockStore, Capabilities, Cid, Codec, Error, HashAlg, Pinning};

/// When writes reach the remote store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// Every write goes to the local store and then to the remote one before it returns.
    #[default]
    WriteThrough,
    /// Writes go to the local store only and are queued; [`CachedStore::send_pending`] (or
    /// [`sync`](BlockStore::sync), when online) sends them.
    WriteBack,
}

/// A caching tier: reads are served locally when possible and fill the local store from the
/// remote one; writes follow the [`WriteMode`]. In offline mode the remote store is never
/// contacted: cached blocks are served, others fail with [`Error::Offline`], and writes are
/// queued for [`send_pending`](Self::send_pending).
///
/// Both sides are any [`BlockStore`]; the usual local side is a
/// [`SledStore`](crate::SledStore). Blocks are addressed with the remote store's hash.
#[derive(Debug)]
pub struct CachedStore<L, R> {
    local: L,
    remote: R,
    mode: WriteMode,
    offline: AtomicBool,
    pending: Mutex<BTreeSet<Cid>>,
}

impl<L: BlockStore, R: BlockStore> CachedStore<L, R> {
    /// A write-through cache of `remote` in `local`.
    pub fn new(local: L, remote: R) -> Self {
        Self {
            local,
            remote,
            mode: WriteMode::default(),
            offline: AtomicBool::new(false),
            pending: Mutex::default(),
        }
    }

    /// Sets the write mode.
    #[must_use]
    pub fn with_mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// Starts offline (or online).
    #[must_use]
    pub fn with_offline(self, offline: bool) -> Self {
        self.set_offline(offline);
        self
    }

    /// Switches offline mode on or off.
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
    }

    /// True in offline mode.
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::SeqCst)
    }

    /// The write mode.
    pub fn mode(&self) -> WriteMode {
        self.mode
    }

    /// The local store.
    pub fn local(&self) -> &L {
        &self.local
    }

    /// The remote store.
    pub fn remote(&self) -> &R {
        &self.remote
    }

    /// Blocks written locally and not yet sent to the remote store.
    pub fn pending(&self) -> Vec<Cid> {
        self.lock_pending().iter().copied().collect()
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, BTreeSet<Cid>> {
        // Insert and remove leave the set consistent, so a poisoned lock is still usable.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends every queued block to the remote store, returning how many were sent. Blocks
    /// stay queued until the remote store has taken them, so a failed sync can be retried.
    ///
    /// # Errors
    /// [`Error::NotSupported`] in offline mode; local or remote failures.
    pub async fn send_pending(&self) -> hamt::Result<usize> {
        if self.is_offline() {
            return Err(Error::NotSupported {
                store: "cached",
                operation: "sync while offline",
            });
        }
        let pending = self.pending();
        let mut sent = 0;
        for chunk in pending.chunks(256) {
            let blocks = self.local.get_many(chunk).await?;
            self.remote
                .put_many_keyed(chunk.iter().copied().zip(blocks).collect())
                .await?;
            let mut queue = self.lock_pending();
            for cid in chunk {
                queue.remove(cid);
            }
            sent += chunk.len();
        }
        Ok(sent)
    }

    /// Makes the remote store hold every block reachable from `root` (a HAMT's nodes and
    /// values, or any DAG-CBOR / DAG-PB graph), sending the ones it lacks from the local store.
    /// Returns how many were sent.
    ///
    /// Unlike [`send_pending`](Self::send_pending), this does not rely on the in-memory queue, so it also
    /// recovers writes queued by a process that exited before syncing.
    ///
    /// # Errors
    /// [`Error::NotSupported`] in offline mode; [`Error::NotFound`] for a block neither store
    /// holds; local or remote failures.
    pub async fn publish(&self, root: &Cid) -> hamt::Result<usize> {
        use futures::{StreamExt as _, TryStreamExt as _};
        if self.is_offline() {
            return Err(Error::NotSupported {
                store: "cached",
                operation: "publish while offline",
            });
        }
        let mut walk = hamt::dag::Walk::new(&self.local, [*root]);
        let mut sent = 0;
        while let Some(blocks) = walk.next_batch().await? {
            let present: Vec<bool> = futures::stream::iter(&blocks)
                .map(|(cid, _)| self.remote.has(cid))
                .buffered(self.remote.concurrency().max(1))
                .try_collect()
                .await?;
            let missing: Vec<(Cid, Bytes)> = blocks
                .into_iter()
                .zip(present)
                .filter_map(|(block, present)| (!present).then_some(block))
                .collect();
            sent += missing.len();
            let cids: Vec<Cid> = missing.iter().map(|(c, _)| *c).collect();
            self.remote.put_many_keyed(missing).await?;
            let mut queue = self.lock_pending();
            for cid in &cids {
                queue.remove(cid);
            }
        }
        Ok(sent)
    }

    async fn fetch_remote(&self, cid: &Cid) -> hamt::Result<Bytes> {
        if self.is_offline() {
            return Err(Error::Offline { cid: *cid });
        }
        let data = self.remote.get(cid).await?;
        self.local.put_keyed(cid, data.clone()).await?;
        Ok(data)
    }

    fn queues(&self) -> bool {
        self.mode == WriteMode::WriteBack || self.is_offline()
    }
}

#[async_trait]
impl<L: BlockStore, R: BlockStore> BlockStore for CachedStore<L, R> {
    fn hash_alg(&self) -> HashAlg {
        self.remote.hash_alg()
    }

    fn concurrency(&self) -> usize {
        self.remote.concurrency()
    }

    /// Makes the local store durable; online, also sends every queued block to the remote
    /// store and makes that durable. Offline, the queued blocks are durable locally and stay
    /// queued.
    async fn sync(&self) -> hamt::Result<()> {
        self.local.sync().await?;
        if !self.is_offline() {
            self.send_pending().await?;
            self.remote.sync().await?;
        }
        Ok(())
    }

    /// Writes as the local store takes them; durable when either side is; shared and pinning
    /// as the remote store is (the remote store pins).
    fn capabilities(&self) -> Capabilities {
        let (local, remote) = (self.local.capabilities(), self.remote.capabilities());
        Capabilities {
            write: local.write,
            durable: local.durable || remote.durable,
            shared: false,
            pin: remote.pin,
            ..Capabilities::default()
        }
    }

    fn pinning(&self) -> Option<&dyn Pinning> {
        self.remote.pinning()
    }

    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.local.put_keyed(cid, data.clone()).await?;
        if self.queues() {
            self.lock_pending().insert(*cid);
            Ok(())
        } else {
            self.remote.put_keyed(cid, data).await
        }
    }

    async fn put(&self, codec: Codec, data: Bytes) -> hamt::Result<Cid> {
        if self.queues() {
            let cid = self.hash_alg().cid(codec, &data);
            self.put_keyed(&cid, data).await?;
            Ok(cid)
        } else {
            // The remote store names the block (a Kubo node computes the CID itself).
            let cid = self.remote.put(codec, data.clone()).await?;
            self.local.put_keyed(&cid, data).await?;
            Ok(cid)
        }
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        match self.local.get(cid).await {
            Ok(data) => Ok(data),
            // A damaged local copy is replaced from the remote store.
            Err(Error::NotFound { .. } | Error::Corrupt { .. }) => self.fetch_remote(cid).await,
            Err(e) => Err(e),
        }
    }

    async fn has(&self, cid: &Cid) -> hamt::Result<bool> {
        if self.local.has(cid).await? {
            return Ok(true);
        }
        if self.is_offline() {
            return Ok(false);
        }
        self.remote.has(cid).await
    }

    async fn put_many_keyed(&self, blocks: Vec<(Cid, Bytes)>) -> hamt::Result<()> {
        self.local.put_many_keyed(blocks.clone()).await?;
        if self.queues() {
            self.lock_pending()
                .extend(blocks.iter().map(|(cid, _)| *cid));
            Ok(())
        } else {
            self.remote.put_many_keyed(blocks).await
        }
    }

    async fn put_blocks(&self, blocks: Vec<Block>) -> hamt::Result<()> {
        self.local.put_blocks(blocks.clone()).await?;
        if self.queues() {
            self.lock_pending().extend(blocks.iter().map(|b| *b.cid()));
            Ok(())
        } else {
            self.remote.put_blocks(blocks).await
        }
    }
}
