//! What a store can do beyond storing and fetching blocks: a description
//! ([`Capabilities`]) and the extension traits a store hands out through
//! [`BlockStore`](super::BlockStore)'s accessors.

use std::path::Path;

use async_trait::async_trait;
use cid::Cid;
use futures::stream::BoxStream;

use crate::block::Block;
use crate::error::Result;

/// What a store can do beyond storing and fetching blocks, as its
/// [`capabilities`](super::BlockStore::capabilities) describe it.
///
/// The flags agree with the accessors: `pin` is true exactly when
/// [`pinning`](super::BlockStore::pinning) returns a [`Pinning`], and so on (the
/// conformance suite checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)] // independent flags, as opendal's `Capability`
pub struct Capabilities {
    /// The store accepts writes.
    pub write: bool,
    /// Blocks outlive the process once [`sync`](super::BlockStore::sync) returns.
    pub durable: bool,
    /// Other processes may open the same store at the same time (an S3 bucket, an IPFS
    /// node); false for stores one process holds alone (sled, memory).
    pub shared: bool,
    /// [`pinning`](super::BlockStore::pinning) is available.
    pub pin: bool,
    /// [`checker`](super::BlockStore::checker) is available.
    pub check: bool,
    /// [`car_importer`](super::BlockStore::car_importer) is available.
    pub import_car: bool,
    /// [`subtree_fetch`](super::BlockStore::subtree_fetch) is available.
    pub subtree: bool,
}

/// Pins: roots an IPFS node keeps, with every block under them, through its garbage
/// collection.
#[async_trait]
pub trait Pinning: Send + Sync {
    /// Pins `root` and every block under it.
    ///
    /// # Errors
    /// A block under `root` the node does not have and cannot fetch; node failures.
    async fn pin(&self, root: &Cid) -> Result<()>;

    /// Removes the pin on `root`.
    ///
    /// # Errors
    /// When `root` is not pinned; node failures.
    async fn unpin(&self, root: &Cid) -> Result<()>;

    /// Moves a pin from `old` to `new`: afterwards `new` is pinned and `old` is not. The
    /// default pins `new` before it unpins `old`, so nothing under either is unpinned
    /// in between.
    ///
    /// # Errors
    /// As [`pin`](Self::pin) and [`unpin`](Self::unpin).
    async fn pin_update(&self, old: &Cid, new: &Cid) -> Result<()> {
        self.pin(new).await?;
        self.unpin(old).await
    }

    /// True when `root` is pinned.
    ///
    /// # Errors
    /// Node failures.
    async fn is_pinned(&self, root: &Cid) -> Result<bool>;
}

/// A check of a store's own structures, beyond what every read verifies.
#[async_trait]
pub trait Check: Send + Sync {
    /// Checks the store and reports what it holds.
    ///
    /// # Errors
    /// A structure found damaged or missing (named in the error); backend failures.
    async fn check(&self) -> Result<CheckReport>;
}

/// What [`Check::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Objects the blocks live in (S3: packs).
    pub objects: u64,
    /// Blocks the store's indexes name.
    pub blocks: u64,
    /// Bytes of those objects.
    pub bytes: u64,
    /// Objects no index names, left by interrupted writes: no reader uses them, and they can
    /// be deleted.
    pub orphans: Vec<String>,
}

/// Stores a whole CAR file in one operation.
#[async_trait]
pub trait ImportCar: Send + Sync {
    /// Stores every block of the CAR v1 file at `path`, each verified against its CID.
    ///
    /// # Errors
    /// A malformed CAR or a block that does not match its CID (nothing of the file is then
    /// visible to readers); I/O and backend failures.
    async fn import_car_file(&self, path: &Path) -> Result<ImportedCar>;
}

/// What [`ImportCar::import_car_file`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedCar {
    /// The roots the CAR header names.
    pub roots: Vec<Cid>,
    /// How many blocks it held.
    pub blocks: u64,
    /// Where the store put them (S3: the pack's object path), when that means anything.
    pub location: Option<String>,
}

/// Blocks as they arrive, each checked against its CID.
pub type BlockStream<'a> = BoxStream<'a, Result<Block>>;

/// Many blocks in one request, for a store whose every request costs a round trip: the
/// whole DAG under a CID (a trustless gateway's `?format=car&dag-scope=all`), or the blocks
/// on a HAMT key's path (`/ipfs/ROOT/KEY?format=car`).
///
/// The HAMT's bulk reads ([`HamtReader::iter`](crate::HamtReader::iter), the blocks a
/// [`Walk`](crate::dag::Walk) hands out) and a cold [`get`](crate::HamtReader::get) use it
/// when the store offers it, so callers get one request instead of one per block without
/// knowing the store.
pub trait SubtreeFetch: Send + Sync {
    /// Every block reachable from `root`, depth first: pre-order, each block's links in the
    /// order [`dag::links`](crate::dag::links) gives (identity CIDs are never sent, but what
    /// they link to is). With `dups`, a block comes every time the walk meets it; without,
    /// only the first time. Each block is checked against its CID before it is handed out.
    ///
    /// The stream is exactly that sequence, or ends in an error: a store that cannot
    /// fetch subtrees right now (a gateway that turned out not to serve CARs) fails the
    /// first item with [`Error::NotSupported`](crate::Error::NotSupported), so a caller can
    /// fall back to reading block by block; a block no source has is
    /// [`Error::NotFound`](crate::Error::NotFound) naming it.
    fn subtree(&self, root: Cid, dups: bool) -> BlockStream<'_>;

    /// The blocks a reader needs to look `key` up in the HAMT at `root`, when the store can
    /// ask for them at once: some or all of the nodes from the root down to the one
    /// holding the key, then the value's blocks. `None` when it cannot (the default, or a
    /// key a gateway path cannot name).
    ///
    /// Every block is checked against its CID, but nothing more: a caller looks the key up
    /// through the blocks it got, and fetches what is missing the usual way.
    fn path(&self, root: Cid, key: &str) -> Option<BlockStream<'_>> {
        let _ = (root, key);
        None
    }
}
