//! The [`BlockStore`] trait every backend implements, what a store can do beyond it
//! ([`capability`]), and [`MemoryStore`].

mod capability;
mod memory;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use futures::{StreamExt as _, TryStreamExt as _, stream};

pub use self::capability::{
    BlockStream, Capabilities, Check, CheckReport, ImportCar, ImportedCar, Pinning, SubtreeFetch,
};
pub use self::memory::MemoryStore;
use crate::block::{Block, Codec, HashAlg};
use crate::error::{Error, Result};

/// How many requests the default batch methods keep in flight.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// A content-addressed block store: bytes go in, the CID that names them comes out.
///
/// The trait is dyn-compatible; the HAMT holds an `Arc<dyn BlockStore>`. Implementors write
/// [`put_keyed`](BlockStore::put_keyed) and [`get`](BlockStore::get); everything else has a
/// default that backends may override with something faster.
///
/// # Contract
/// - `get` returns exactly the bytes that hash to the CID. A backend that reads from
///   anything it does not fully trust (disk, network) verifies with
///   [`verify`](crate::verify) and returns [`Error::Corrupt`] rather than wrong bytes.
/// - A missing block is an error, [`Error::NotFound`], never an empty value.
/// - `put` is idempotent: storing the same bytes twice gives the same CID and no error.
/// - A block is durable — it survives the process, where the store can outlive it at all —
///   once [`sync`](BlockStore::sync) returns `Ok` after it was stored. A caller that prints
///   or publishes a root calls `sync` first.
///
/// What a store can do beyond storing blocks — pin, check itself, take a whole CAR file —
/// is asked of the store itself: [`capabilities`](BlockStore::capabilities) describes it,
/// and [`pinning`](BlockStore::pinning), [`checker`](BlockStore::checker),
/// [`car_importer`](BlockStore::car_importer) and [`subtree_fetch`](BlockStore::subtree_fetch)
/// hand out the extension traits.
#[async_trait]
pub trait BlockStore: Debug + Send + Sync + 'static {
    /// The hash function new blocks are addressed with.
    fn hash_alg(&self) -> HashAlg {
        HashAlg::Blake3
    }

    /// How many requests the batch methods keep in flight.
    fn concurrency(&self) -> usize {
        DEFAULT_CONCURRENCY
    }

    /// Stores `data` under a CID computed by the caller.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when `data` does not hash to `cid`; backend failures.
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> Result<()>;

    /// Fetches the block named by `cid`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the store does not hold it; [`Error::Corrupt`] when the stored
    /// bytes do not match the CID; backend failures.
    async fn get(&self, cid: &Cid) -> Result<Bytes>;

    /// Stores `data` as a block of `codec`, returning its CIDv1 under [`hash_alg`](Self::hash_alg).
    ///
    /// # Errors
    /// Backend failures.
    async fn put(&self, codec: Codec, data: Bytes) -> Result<Cid> {
        let cid = self.hash_alg().cid(codec, &data);
        self.put_keyed(&cid, data).await?;
        Ok(cid)
    }

    /// True when the store holds a block with this CID.
    ///
    /// # Errors
    /// Backend failures (not a missing block, which is `Ok(false)`).
    async fn has(&self, cid: &Cid) -> Result<bool> {
        match self.get(cid).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores many blocks, [`concurrency`](Self::concurrency) at a time. The CIDs come back in
    /// the order of the input.
    ///
    /// # Errors
    /// The first failure; blocks stored before it stay stored.
    async fn put_many(&self, blocks: Vec<(Codec, Bytes)>) -> Result<Vec<Cid>> {
        stream::iter(blocks)
            .map(|(codec, data)| self.put(codec, data))
            .buffered(self.concurrency().max(1))
            .try_collect()
            .await
    }

    /// Stores many blocks whose CIDs the caller computed, [`concurrency`](Self::concurrency)
    /// at a time.
    ///
    /// # Errors
    /// The first failure; blocks stored before it stay stored.
    async fn put_many_keyed(&self, blocks: Vec<(Cid, Bytes)>) -> Result<()> {
        stream::iter(blocks)
            .map(|(cid, data)| async move { self.put_keyed(&cid, data).await })
            .buffer_unordered(self.concurrency().max(1))
            .try_collect()
            .await
    }

    /// Stores blocks whose CIDs are known to be right (see [`Block`]); stores may skip
    /// verification. The default verifies anyway, through
    /// [`put_many_keyed`](Self::put_many_keyed).
    ///
    /// # Errors
    /// The first failure; blocks stored before it stay stored.
    async fn put_blocks(&self, blocks: Vec<Block>) -> Result<()> {
        self.put_many_keyed(blocks.into_iter().map(Block::into_parts).collect())
            .await
    }

    /// The length of the block named by `cid`, without handing out its bytes where the store
    /// can tell (a 200 MB value's size costs no 200 MB). The default fetches the block.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the store does not hold it; backend failures.
    async fn block_size(&self, cid: &Cid) -> Result<u64> {
        Ok(self.get(cid).await?.len() as u64)
    }

    /// Makes every block stored so far durable: after `Ok`, they survive a crash or a kill
    /// of this process. The default does nothing, which is right for stores that write
    /// through to durable storage before `put` returns, or that hold nothing durable (a
    /// [`MemoryStore`]).
    ///
    /// # Errors
    /// Backend failures; blocks not made durable stay readable and the call may be retried.
    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    /// What this store can do beyond storing and fetching blocks.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Pinning, for stores backed by an IPFS node.
    fn pinning(&self) -> Option<&dyn Pinning> {
        None
    }

    /// A check of the store's own structures (S3: every index has its pack).
    fn checker(&self) -> Option<&dyn Check> {
        None
    }

    /// A faster way to store a whole CAR file than block by block (S3: the file becomes one
    /// pack, uploaded as it is).
    fn car_importer(&self) -> Option<&dyn ImportCar> {
        None
    }

    /// Whole subtrees, or a key's path, in one request (a trustless gateway's CARs), for
    /// stores where each request costs a round trip.
    fn subtree_fetch(&self) -> Option<&dyn SubtreeFetch> {
        None
    }

    /// Fetches many blocks, [`concurrency`](Self::concurrency) at a time, in input order.
    ///
    /// # Errors
    /// The first failure.
    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Bytes>> {
        stream::iter(cids.iter().copied())
            .map(|cid| async move { self.get(&cid).await })
            .buffered(self.concurrency().max(1))
            .try_collect()
            .await
    }
}

/// A block store shared between owners, as the HAMT and the CLI hold it.
pub type DynBlockStore = dyn BlockStore;

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: BlockStore + ?Sized> BlockStore for Arc<S> {
    fn hash_alg(&self) -> HashAlg {
        (**self).hash_alg()
    }
    fn concurrency(&self) -> usize {
        (**self).concurrency()
    }
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> Result<()> {
        (**self).put_keyed(cid, data).await
    }
    async fn get(&self, cid: &Cid) -> Result<Bytes> {
        (**self).get(cid).await
    }
    async fn put(&self, codec: Codec, data: Bytes) -> Result<Cid> {
        (**self).put(codec, data).await
    }
    async fn has(&self, cid: &Cid) -> Result<bool> {
        (**self).has(cid).await
    }
    async fn put_many(&self, blocks: Vec<(Codec, Bytes)>) -> Result<Vec<Cid>> {
        (**self).put_many(blocks).await
    }
    async fn put_many_keyed(&self, blocks: Vec<(Cid, Bytes)>) -> Result<()> {
        (**self).put_many_keyed(blocks).await
    }
    async fn put_blocks(&self, blocks: Vec<Block>) -> Result<()> {
        (**self).put_blocks(blocks).await
    }
    async fn get_many(&self, cids: &[Cid]) -> Result<Vec<Bytes>> {
        (**self).get_many(cids).await
    }
    async fn block_size(&self, cid: &Cid) -> Result<u64> {
        (**self).block_size(cid).await
    }
    async fn sync(&self) -> Result<()> {
        (**self).sync().await
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn pinning(&self) -> Option<&dyn Pinning> {
        (**self).pinning()
    }
    fn checker(&self) -> Option<&dyn Check> {
        (**self).checker()
    }
    fn car_importer(&self) -> Option<&dyn ImportCar> {
        (**self).car_importer()
    }
    fn subtree_fetch(&self) -> Option<&dyn SubtreeFetch> {
        (**self).subtree_fetch()
    }
}
