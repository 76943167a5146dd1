//! Paths through a HAMT: `/ipfs/{root}/{key…}` names the value of `key` in the HAMT at
//! `root`, and a trustless client needs the nodes from the root to that value to check it.
//!
//! `hamt` has no public call that returns the nodes on a key's path, so the lookup runs
//! through a fresh [`HamtReader`] over a [`Recorder`]: a store that verifies and remembers
//! every block the reader fetches. A fresh reader has an empty cache and fetches exactly the
//! root and the nodes its lookup descends through, in that order.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use hamt::{BlockStore, Cid, Codec, Config, Error as HamtError, HamtReader, HashAlg, verify};

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
}

/// Looks `key` up in the HAMT at `root`.
pub(crate) async fn resolve(
    store: &Arc<dyn BlockStore>,
    root: Cid,
    key: &str,
) -> Result<Resolved, Miss> {
    let recorder = Arc::new(Recorder {
        inner: store.clone(),
        fetched: Mutex::default(),
    });
    // Nodes on one path are few: a small cache is plenty for the lookups below.
    let config = Config::new().cache_bytes(1 << 20);
    let reader = HamtReader::open_with_config(recorder.clone(), root, config)
        .await
        .map_err(|e| match e {
            HamtError::Decode { .. } => Miss::NotHamt(e.to_string()),
            e => Miss::Store(e),
        })?;
    match reader.get_pointer(key).await {
        Ok(Some(value)) => {
            let path = recorder.take();
            Ok(Resolved { path, value })
        }
        Ok(None) => {
            // Is there a value on the way? Keys are paths: `a/b` is inside `a` when `a` is a
            // key.
            for (i, _) in key.match_indices('/').collect::<Vec<_>>().into_iter().rev() {
                let prefix = &key[..i];
                if reader
                    .get_pointer(prefix)
                    .await
                    .map_err(Miss::Store)?
                    .is_some()
                {
                    return Err(Miss::IntoValue(prefix.to_owned()));
                }
            }
            Err(Miss::NoKey)
        }
        Err(e) => Err(Miss::Store(e)),
    }
}

/// A read-through store that verifies each block it hands out and remembers it.
#[derive(Debug)]
struct Recorder {
    inner: Arc<dyn BlockStore>,
    fetched: Mutex<Vec<(Cid, Bytes)>>,
}

impl Recorder {
    fn take(&self) -> Vec<(Cid, Bytes)> {
        std::mem::take(&mut *self.fetched.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait]
impl BlockStore for Recorder {
    fn hash_alg(&self) -> HashAlg {
        self.inner.hash_alg()
    }

    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }

    async fn put_keyed(&self, _cid: &Cid, _data: Bytes) -> hamt::Result<()> {
        Err(HamtError::NotSupported {
            store: "gateway path lookup",
            operation: "writes",
        })
    }

    async fn put(&self, _codec: Codec, _data: Bytes) -> hamt::Result<Cid> {
        Err(HamtError::NotSupported {
            store: "gateway path lookup",
            operation: "writes",
        })
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        let data = self.inner.get(cid).await?;
        // Checked here: the blocks go into CAR responses, and not every store verifies.
        verify(cid, &data)?;
        self.fetched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((*cid, data.clone()));
        Ok(data)
    }
}
