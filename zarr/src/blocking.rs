//! The sync `zarrs_storage` traits over a [`HamtStore`], a [`ShardedStore`] or a
//! [`Dataset`], for code that uses `zarrs`' blocking API.
//!
//! ```
//! use std::sync::Arc;
//! use hamt::MemoryStore;
//! use hamt_zarr::{HamtStore, blocking};
//! use zarrs_storage::{ReadableStorageTraits as _, StoreKey, WritableStorageTraits as _};
//!
//! let runtime = tokio::runtime::Runtime::new()?;
//! let store = runtime.block_on(HamtStore::builder(Arc::new(MemoryStore::new())).build())?;
//! let sync = blocking(Arc::new(store), runtime.handle().clone());
//! let key = StoreKey::new("zarr.json")?;
//! sync.set(&key, br#"{"zarr_format":3,"node_type":"group"}"#.to_vec().into())?;
//! assert!(sync.get(&key)?.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::Future;
use std::sync::Arc;

use zarrs_storage::storage_adapter::async_to_sync::{
    AsyncToSyncBlockOn, AsyncToSyncStorageAdapter,
};

use crate::{Dataset, HamtStore, ShardedStore};

/// Runs the store's futures on a tokio runtime.
#[derive(Debug, Clone)]
pub struct TokioBlockOn(pub tokio::runtime::Handle);

impl AsyncToSyncBlockOn for TokioBlockOn {
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// A [`HamtStore`] behind the sync `zarrs_storage` traits.
pub type BlockingHamtStore = AsyncToSyncStorageAdapter<HamtStore, TokioBlockOn>;

/// A [`ShardedStore`] behind the sync `zarrs_storage` traits.
pub type BlockingShardedStore = AsyncToSyncStorageAdapter<ShardedStore, TokioBlockOn>;

/// A [`Dataset`] behind the sync readable and listable `zarrs_storage` traits.
pub type BlockingDataset = AsyncToSyncStorageAdapter<Dataset, TokioBlockOn>;

/// Adapts `store` (a [`HamtStore`], a [`ShardedStore`] or a [`Dataset`]) to the sync traits,
/// running it on `runtime`. Call its methods from outside the runtime (a plain thread or
/// `spawn_blocking`): blocking inside an async task panics.
pub fn blocking<S: crate::Source + ?Sized>(
    store: Arc<S>,
    runtime: tokio::runtime::Handle,
) -> AsyncToSyncStorageAdapter<S, TokioBlockOn> {
    AsyncToSyncStorageAdapter::new(store, TokioBlockOn(runtime))
}
