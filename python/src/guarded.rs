//! [`Guarded`]: the block store behind a Python `Store` handle, which `close()` can let go of.
//!
//! Every call after close fails with a clear error instead of whatever the backend does once
//! released. Everything the backend can do is forwarded, its extension traits included, so
//! the capability flags (taken from the backend) agree with the accessors, as the
//! conformance suite requires. Subtree streams borrow the backend, so they go through a task
//! instead (`subtree.rs`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use hamt::{
    Block, BlockStore, Bytes, Capabilities, Check, CheckReport, Cid, Codec, HashAlg, ImportCar,
    ImportedCar, Pinning,
};

use crate::errors::StoreClosed;

/// A store that refuses every call once closed, and drops the backend when closed.
#[derive(Debug)]
pub(crate) struct Guarded {
    inner: RwLock<Option<Arc<dyn BlockStore>>>,
    capabilities: Capabilities,
    hash_alg: HashAlg,
    concurrency: usize,
    closed: Arc<AtomicBool>,
    name: &'static str,
}

impl Guarded {
    /// `store`, named `name` in errors, closed once `closed` is set.
    pub(crate) fn new(
        store: Arc<dyn BlockStore>,
        name: &'static str,
        closed: Arc<AtomicBool>,
    ) -> Self {
        Self {
            capabilities: store.capabilities(),
            hash_alg: store.hash_alg(),
            concurrency: store.concurrency(),
            inner: RwLock::new(Some(store)),
            closed,
            name,
        }
    }

    /// The backend, unless the store was closed.
    pub(crate) fn inner(&self) -> hamt::Result<Arc<dyn BlockStore>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        match (&*inner, self.closed.load(Ordering::Acquire)) {
            (Some(store), false) => Ok(store.clone()),
            _ => Err(hamt::Error::Backend {
                store: self.name,
                temporary: false,
                source: Box::new(StoreClosed(self.name.to_owned())),
            }),
        }
    }

    /// Drops the handle on the backend.
    pub(crate) fn release(&self) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The error for an extension the backend lost (it cannot: its flags are fixed).
    pub(crate) fn unsupported(&self, operation: &'static str) -> hamt::Error {
        hamt::Error::NotSupported {
            store: self.name,
            operation,
        }
    }
}

#[async_trait]
impl BlockStore for Guarded {
    fn hash_alg(&self) -> HashAlg {
        self.hash_alg
    }
    fn concurrency(&self) -> usize {
        self.concurrency
    }
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.inner()?.put_keyed(cid, data).await
    }
    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        self.inner()?.get(cid).await
    }
    async fn put(&self, codec: Codec, data: Bytes) -> hamt::Result<Cid> {
        self.inner()?.put(codec, data).await
    }
    async fn has(&self, cid: &Cid) -> hamt::Result<bool> {
        self.inner()?.has(cid).await
    }
    async fn put_many(&self, blocks: Vec<(Codec, Bytes)>) -> hamt::Result<Vec<Cid>> {
        self.inner()?.put_many(blocks).await
    }
    async fn put_many_keyed(&self, blocks: Vec<(Cid, Bytes)>) -> hamt::Result<()> {
        self.inner()?.put_many_keyed(blocks).await
    }
    async fn put_blocks(&self, blocks: Vec<Block>) -> hamt::Result<()> {
        self.inner()?.put_blocks(blocks).await
    }
    async fn get_many(&self, cids: &[Cid]) -> hamt::Result<Vec<Bytes>> {
        self.inner()?.get_many(cids).await
    }
    async fn block_size(&self, cid: &Cid) -> hamt::Result<u64> {
        self.inner()?.block_size(cid).await
    }
    async fn sync(&self) -> hamt::Result<()> {
        self.inner()?.sync().await
    }
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
    fn pinning(&self) -> Option<&dyn Pinning> {
        self.capabilities.pin.then_some(self as &dyn Pinning)
    }
    fn checker(&self) -> Option<&dyn Check> {
        self.capabilities.check.then_some(self as &dyn Check)
    }
    fn car_importer(&self) -> Option<&dyn ImportCar> {
        self.capabilities
            .import_car
            .then_some(self as &dyn ImportCar)
    }
    fn subtree_fetch(&self) -> Option<&dyn hamt::SubtreeFetch> {
        self.capabilities
            .subtree
            .then_some(self as &dyn hamt::SubtreeFetch)
    }
}

#[async_trait]
impl Pinning for Guarded {
    async fn pin(&self, root: &Cid) -> hamt::Result<()> {
        let inner = self.inner()?;
        let pinning = inner.pinning().ok_or_else(|| self.unsupported("pin"))?;
        pinning.pin(root).await
    }
    async fn unpin(&self, root: &Cid) -> hamt::Result<()> {
        let inner = self.inner()?;
        let pinning = inner.pinning().ok_or_else(|| self.unsupported("unpin"))?;
        pinning.unpin(root).await
    }
    async fn pin_update(&self, old: &Cid, new: &Cid) -> hamt::Result<()> {
        let inner = self.inner()?;
        let pinning = inner
            .pinning()
            .ok_or_else(|| self.unsupported("pin update"))?;
        pinning.pin_update(old, new).await
    }
    async fn is_pinned(&self, root: &Cid) -> hamt::Result<bool> {
        let inner = self.inner()?;
        let pinning = inner.pinning().ok_or_else(|| self.unsupported("pin"))?;
        pinning.is_pinned(root).await
    }
}

#[async_trait]
impl Check for Guarded {
    async fn check(&self) -> hamt::Result<CheckReport> {
        let inner = self.inner()?;
        let checker = inner.checker().ok_or_else(|| self.unsupported("check"))?;
        checker.check().await
    }
}

#[async_trait]
impl ImportCar for Guarded {
    async fn import_car_file(&self, path: &Path) -> hamt::Result<ImportedCar> {
        let inner = self.inner()?;
        let importer = inner
            .car_importer()
            .ok_or_else(|| self.unsupported("CAR import"))?;
        importer.import_car_file(path).await
    }
}

#[cfg(test)]
mod tests {
    // Tests fail by panicking; unwrapping is how they say what broke.
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hamt::test_suite::Subject;

    /// A `Guarded` over the embedded IPFS node (in memory), the one backend with an
    /// extension trait (pinning) that runs without a server; the node stays up while the
    /// subject lives.
    async fn embedded() -> (Subject, Arc<Guarded>, Arc<AtomicBool>) {
        let opened = hamt_registry::open("ipfs-embedded:mem").await.unwrap();
        let closed = Arc::new(AtomicBool::new(false));
        let guarded = Arc::new(Guarded::new(
            opened.store().clone(),
            "ipfs-embedded",
            closed.clone(),
        ));
        let subject = Subject::new(guarded.clone()).keep(std::sync::Mutex::new(opened));
        (subject, guarded, closed)
    }

    async fn subject() -> Subject {
        embedded().await.0
    }

    mod conformance {
        hamt::conformance_tests!(super::subject);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_backends_extensions_are_forwarded_until_close() {
        let (_subject, guarded, closed) = embedded().await;
        assert!(guarded.capabilities().pin);
        let cid = guarded
            .put(Codec::Raw, Bytes::from_static(b"pinned"))
            .await
            .unwrap();
        let pinning = guarded.pinning().unwrap();
        pinning.pin(&cid).await.unwrap();
        assert!(pinning.is_pinned(&cid).await.unwrap());
        closed.store(true, Ordering::Release);
        for err in [
            guarded.get(&cid).await.unwrap_err(),
            pinning.is_pinned(&cid).await.unwrap_err(),
            pinning.unpin(&cid).await.unwrap_err(),
        ] {
            assert!(err.to_string().contains("is closed"), "{err}");
        }
        guarded.release();
        assert!(guarded.has(&cid).await.is_err());
    }
}
