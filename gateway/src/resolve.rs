//! Paths through a HAMT: `/ipfs/{root}/{key…}` names the value of `key` in the HAMT at
//! `root`, and a trustless client needs the nodes from the root to that value to check it.
//!
//! [`HamtReader::path`] names those nodes; their blocks are then fetched (through the
//! store's node cache, which every request on the gateway's store shares, the lookup
//! itself mostly costs nothing) and verified, as they go into CAR responses. With the `zarr`
//! feature a root that is not a HAMT node may be a sharded Zarr root (py-hamt's
//! `ShardedZarrStore`): its path is the root manifest, then the chunk's shard.

use std::sync::Arc;

use bytes::Bytes;
use hamt::{BlockStore, Cid, Error as HamtError, HamtReader, verify};

/// Where a key led.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The verified blocks from the root to the node holding the key, in path order.
    pub(crate) path: Vec<(Cid, Bytes)>,
    /// The CID of the key's value.
    pub(crate) value: Cid,
}

/// Why a key does not lead to a value.
#[derive(Debug)]
pub(crate) enum Miss {
    /// The HAMT has no such key.
    NoKey,
    /// A shorter key, ending at a `/` of this one, holds a value: the path goes into it.
    IntoValue(String),
    /// The root is not a HAMT node.
    NotHamt(String),
    /// A store failure (the block concerned is in the error).
    Store(HamtError),
    /// A sharded root whose manifest or shard does not decode.
    #[cfg_attr(not(feature = "zarr"), allow(dead_code))]
    Broken(String),
}

/// Sharded roots opened for paths, the most recently used last: opening one decodes its
/// manifest, which a run of requests into one dataset should pay once.
#[derive(Debug, Default)]
pub(crate) struct ShardedRoots {
    #[cfg(feature = "zarr")]
    open: std::sync::Mutex<Vec<(Cid, Arc<hamt_zarr::ShardedStore>)>>,
}

/// How many sharded roots stay open (a manifest holds one CID per shard in memory).
#[cfg(feature = "zarr")]
const OPEN_SHARDED_ROOTS: usize = 8;

impl ShardedRoots {
    /// The path of `key` when `root` is a sharded Zarr root; `Err(NotHamt(reason))` when it
    /// is not one either.
    #[cfg(feature = "zarr")]
    async fn path(
        &self,
        store: &Arc<dyn BlockStore>,
        root: Cid,
        key: &str,
        reason: String,
    ) -> Result<Option<(Vec<Cid>, Cid)>, Miss> {
        use hamt_zarr::{Error as ZarrError, ReadMode, ShardedStore};
        let zarr_miss = |e: ZarrError| match e {
            ZarrError::Hamt(e) => Miss::Store(e),
            e => Miss::Broken(e.to_string()),
        };
        let sharded = if let Some(sharded) = self.recent(root) {
            sharded
        } else {
            let opened = ShardedStore::builder(store.clone())
                .root(root)
                .read_only()
                // One entry of one shard a request: nothing worth caching.
                .read_mode(ReadMode::Sparse)
                .build()
                .await;
            let sharded = match opened {
                Ok(s) => Arc::new(s),
                Err(ZarrError::Manifest { .. }) => return Err(Miss::NotHamt(reason)),
                Err(e) => return Err(zarr_miss(e)),
            };
            let mut open = self.lock();
            // Another request may have opened it meanwhile: one entry a root.
            if let Some((_, first)) = open.iter().find(|(cid, _)| *cid == root) {
                first.clone()
            } else {
                if open.len() >= OPEN_SHARDED_ROOTS {
                    open.remove(0);
                }
                open.push((root, sharded.clone()));
                sharded
            }
        };
        sharded.path(key).await.map_err(zarr_miss)
    }

    /// The open store of `root`, now the most recently used.
    #[cfg(feature = "zarr")]
    fn recent(&self, root: Cid) -> Option<Arc<hamt_zarr::ShardedStore>> {
        let mut open = self.lock();
        let i = open.iter().position(|(cid, _)| *cid == root)?;
        let entry = open.remove(i);
        let sharded = entry.1.clone();
        open.push(entry);
        Some(sharded)
    }

    #[cfg(feature = "zarr")]
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Cid, Arc<hamt_zarr::ShardedStore>)>> {
        // The list is edited by single pushes and removes that cannot panic half-way.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(not(feature = "zarr"))]
    #[allow(clippy::unused_async)]
    async fn path(
        &self,
        _store: &Arc<dyn BlockStore>,
        _root: Cid,
        _key: &str,
        reason: String,
    ) -> Result<Option<(Vec<Cid>, Cid)>, Miss> {
        Err(Miss::NotHamt(reason))
    }
}

/// The verified blocks of `nodes`, in order.
async fn verified_path(
    store: &Arc<dyn BlockStore>,
    nodes: Vec<Cid>,
) -> Result<Vec<(Cid, Bytes)>, Miss> {
    let blocks = store.get_many(&nodes).await.map_err(Miss::Store)?;
    let mut path = Vec::with_capacity(nodes.len());
    for (cid, data) in nodes.into_iter().zip(blocks) {
        // Checked here: the blocks go into CAR responses, and not every store verifies.
        verify(&cid, &data).map_err(Miss::Store)?;
        path.push((cid, data));
    }
    Ok(path)
}

/// Looks `key` up in the HAMT (or, with the `zarr` feature, the sharded Zarr root) at
/// `root`.
pub(crate) async fn resolve(
    store: &Arc<dyn BlockStore>,
    sharded: &ShardedRoots,
    root: Cid,
    key: &str,
) -> Result<Resolved, Miss> {
    // Every request on the gateway's store shares one node cache: a path asked again, or
    // a neighbour's, costs only the blocks for the response.
    let reader = match HamtReader::open(store.clone(), root).await {
        Ok(reader) => reader,
        Err(e @ HamtError::Decode { .. }) => {
            return match sharded.path(store, root, key, e.to_string()).await? {
                Some((nodes, value)) => Ok(Resolved {
                    path: verified_path(store, nodes).await?,
                    value,
                }),
                None => Err(Miss::NoKey),
            };
        }
        Err(e) => return Err(Miss::Store(e)),
    };
    match reader.path(key).await {
        Ok(Some((nodes, value))) => Ok(Resolved {
            path: verified_path(store, nodes).await?,
            value,
        }),
        Ok(None) => {
            // Is there a value on the way? Keys are paths: `a/b` is inside `a` when `a` is a
            // key. The prefixes are looked up together.
            let prefixes: Vec<&str> = key.match_indices('/').map(|(i, _)| &key[..i]).collect();
            let found = reader.get_pointers(&prefixes).await.map_err(Miss::Store)?;
            // The longest prefix that is a key names where the path went wrong.
            match prefixes.iter().zip(found).rev().find(|(_, f)| f.is_some()) {
                Some((prefix, _)) => Err(Miss::IntoValue((*prefix).to_owned())),
                None => Err(Miss::NoKey),
            }
        }
        Err(e) => Err(Miss::Store(e)),
    }
}
