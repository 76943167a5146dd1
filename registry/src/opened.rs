//! [`OpenStore`]: a store the registry opened, with its capabilities and what must run
//! before the process lets go of it.

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use hamt::{BlockStore, Capabilities};

/// Runs when the store is closed, after its last `sync`.
pub(crate) type Closer = Box<dyn FnOnce() -> BoxFuture<'static, hamt::Result<()>> + Send>;

/// A store opened from a URL.
pub struct OpenStore {
    store: Arc<dyn BlockStore>,
    scheme: &'static str,
    local_path: Option<PathBuf>,
    closer: Option<Closer>,
    /// The backend's own handle, for what only it can do (its refs, its garbage).
    #[cfg_attr(not(any(feature = "sled", feature = "s3")), allow(dead_code))]
    concrete: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for OpenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenStore")
            .field("scheme", &self.scheme)
            .field("local_path", &self.local_path)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl OpenStore {
    pub(crate) fn new(scheme: &'static str, store: Arc<dyn BlockStore>) -> Self {
        Self {
            store,
            scheme,
            local_path: None,
            closer: None,
            concrete: None,
        }
    }

    #[cfg_attr(not(any(feature = "sled", feature = "s3")), allow(dead_code))]
    pub(crate) fn with_concrete(mut self, concrete: Arc<dyn Any + Send + Sync>) -> Self {
        self.concrete = Some(concrete);
        self
    }

    /// The backend's own handle, when it is a `T`.
    #[cfg_attr(
        not(all(feature = "versions", any(feature = "sled", feature = "s3"))),
        allow(dead_code)
    )]
    pub(crate) fn concrete<T: 'static>(&self) -> Option<&T> {
        self.concrete.as_ref()?.downcast_ref()
    }

    // Only sled stores live at a local path.
    #[cfg_attr(not(feature = "sled"), allow(dead_code))]
    pub(crate) fn with_local_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.local_path = Some(path.into());
        self
    }

    // Only the embedded node has a closing step.
    #[cfg_attr(not(feature = "embedded"), allow(dead_code))]
    pub(crate) fn with_closer(mut self, closer: Closer) -> Self {
        self.closer = Some(closer);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn BlockStore> {
        &self.store
    }

    /// The scheme of the URL it was opened from (`sled`, `s3`, …).
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The directory the store keeps its files in, for stores on local disk: a command that
    /// reads a directory tree leaves these files out.
    pub fn local_path(&self) -> Option<&Path> {
        self.local_path.as_deref()
    }

    /// What the store can do beyond storing and fetching blocks.
    pub fn capabilities(&self) -> Capabilities {
        self.store.capabilities()
    }

    /// Makes every write durable, then lets go of the store: an embedded IPFS node stops and
    /// releases its repo, so another process may open it. Handles cloned from
    /// [`store`](Self::store) may fail afterwards.
    ///
    /// # Errors
    /// A failed [`sync`](BlockStore::sync) (the closing steps still run) or closing step.
    pub async fn close(self) -> hamt::Result<()> {
        let synced = self.store.sync().await;
        let closed = match self.closer {
            Some(close) => close().await,
            None => Ok(()),
        };
        synced.and(closed)
    }
}
