//! What a store can do beyond storing and fetching blocks: a description
//! ([`Capabilities`]) and the extension traits a store hands out through
//! [`BlockStore`](super::BlockStore)'s accessors.

use std::path::Path;

use async_trait::async_trait;
use cid::Cid;

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
