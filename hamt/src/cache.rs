//! A node cache bounded by bytes, shared by every handle on the same store unless a handle
//! asks for one of its own.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use cid::Cid;

use crate::error::Result;
use crate::link::{FastMap, Link};
use crate::node::Node;
use crate::store::BlockStore;

/// Decoded nodes by CID, evicted by generations: entries live in a young map until it holds
/// half the budget, then the young map becomes the old one (dropping the previous old one).
/// A hit in the old map moves the entry back to the young one. Every operation is O(1) and
/// the memory held stays under the budget.
#[derive(Debug)]
pub(crate) struct NodeCache {
    budget: usize,
    inner: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    young: FastMap<Link, (Arc<Node>, usize)>,
    young_bytes: usize,
    old: FastMap<Link, (Arc<Node>, usize)>,
}

impl NodeCache {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Each critical section leaves the maps consistent, so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, cid: &Link) -> Option<Arc<Node>> {
        let mut g = self.lock();
        if let Some((node, _)) = g.young.get(cid) {
            return Some(node.clone());
        }
        let (node, size) = g.old.remove(cid)?;
        g.insert(cid.clone(), node.clone(), size, self.budget);
        Some(node)
    }

    pub(crate) fn insert(&self, cid: Link, node: Arc<Node>) {
        let size = node.mem_size();
        if size > self.budget / 2 {
            return;
        }
        self.lock().insert(cid, node, size, self.budget);
    }

    pub(crate) fn clear(&self) {
        *self.lock() = Generations::default();
    }

    /// Bytes held (an estimate of the decoded nodes' memory).
    pub(crate) fn bytes(&self) -> usize {
        let g = self.lock();
        g.young_bytes + g.old.values().map(|(_, s)| s).sum::<usize>()
    }
}

impl Generations {
    fn insert(&mut self, cid: Link, node: Arc<Node>, size: usize, budget: usize) {
        if self.young.insert(cid, (node, size)).is_none() {
            self.young_bytes += size;
        }
        if self.young_bytes > budget / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
    }
}

/// The node cache every handle on one store shares: by the address of the store's
/// allocation, while some handle holds it.
///
/// An entry is only ever upgraded while a loader holds its cache, and every loader also
/// holds the store: so a live entry's address is the live store's, never a later store's
/// that reuses the memory. Dead entries are swept as new caches are made.
fn shared_cache(store: &Arc<dyn BlockStore>, budget: usize) -> Arc<NodeCache> {
    static CACHES: Mutex<Vec<(usize, Weak<NodeCache>)>> = Mutex::new(Vec::new());
    // The data pointer alone: the vtable half of a `dyn` pointer may differ between casts.
    let key = Arc::as_ptr(store).cast::<()>() as usize;
    // Entries are plain values replaced whole: a panic elsewhere cannot leave them torn.
    let mut caches = CACHES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cache) = caches
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, weak)| weak.upgrade())
    {
        return cache;
    }
    caches.retain(|(k, weak)| *k != key && weak.strong_count() > 0);
    let cache = Arc::new(NodeCache::new(budget));
    caches.push((key, Arc::downgrade(&cache)));
    cache
}

/// The node cache budget every handle on a store shares ([`Config::shared_cache`], the
/// default).
///
/// [`Config::shared_cache`]: crate::Config::shared_cache
pub(crate) const SHARED_CACHE_BYTES: usize = 256 << 20;

/// Loads nodes through the cache.
#[derive(Debug, Clone)]
pub(crate) struct Loader {
    pub(crate) store: Arc<dyn BlockStore>,
    pub(crate) cache: Arc<NodeCache>,
}

impl Loader {
    /// A loader over `store` with an empty cache of `cache_bytes` of its own.
    pub(crate) fn new(store: Arc<dyn BlockStore>, cache_bytes: usize) -> Self {
        Self {
            store,
            cache: Arc::new(NodeCache::new(cache_bytes)),
        }
    }

    /// A loader over `store` sharing the node cache of every other shared handle on it
    /// ([`SHARED_CACHE_BYTES`]).
    pub(crate) fn shared(store: Arc<dyn BlockStore>) -> Self {
        let cache = shared_cache(&store, SHARED_CACHE_BYTES);
        Self { store, cache }
    }

    /// A loader as `cache_bytes` says: a cache of its own of that size, or the store's
    /// shared one.
    pub(crate) fn with_cache(store: Arc<dyn BlockStore>, cache_bytes: Option<usize>) -> Self {
        match cache_bytes {
            Some(bytes) => Self::new(store, bytes),
            None => Self::shared(store),
        }
    }

    /// Decodes a node fetched by other means (a CAR stream) and remembers it in the cache.
    pub(crate) fn insert_block(&self, cid: &Cid, bytes: bytes::Bytes) -> Result<Arc<Node>> {
        let link = Link::from_cid(cid);
        if let Some(node) = self.cache.get(&link) {
            return Ok(node);
        }
        let node = Arc::new(Node::decode(bytes, Some(*cid))?);
        self.cache.insert(link, node.clone());
        Ok(node)
    }

    pub(crate) async fn load(&self, link: &Link) -> Result<Arc<Node>> {
        if let Some(node) = self.cache.get(link) {
            return Ok(node);
        }
        let cid = link.to_cid();
        let bytes = self.store.get(&cid).await?;
        let node = Arc::new(Node::decode(bytes, Some(cid))?);
        self.cache.insert(link.clone(), node.clone());
        Ok(node)
    }

    /// Loads the child behind `parent`'s link at `index`, remembering it in `parent`.
    pub(crate) async fn child(&self, parent: &Node, index: u8, link: &Link) -> Result<Arc<Node>> {
        if let Some(node) = parent.known_child(index) {
            return Ok(node);
        }
        let node = self.load(link).await?;
        parent.remember_child(index, &node);
        Ok(node)
    }

    /// Loads a node named by a full CID (a root).
    pub(crate) async fn load_cid(&self, cid: &Cid) -> Result<Arc<Node>> {
        self.load(&Link::from_cid(cid)).await
    }

    /// Loads several nodes with the store's concurrency.
    pub(crate) async fn load_many(&self, cids: &[Link]) -> Result<Vec<Arc<Node>>> {
        use futures::{StreamExt as _, TryStreamExt as _};
        // Owned links: a closure over `&Link` makes the stream's future fail `Send` checks
        // in callers' `async_trait` methods (a higher-ranked lifetime the compiler cannot
        // prove).
        futures::stream::iter(cids.iter().cloned())
            .map(|cid| async move { self.load(&cid).await })
            .buffered(self.store.concurrency().max(1))
            .try_collect()
            .await
    }
}
