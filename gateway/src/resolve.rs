//! Paths through a HAMT: `/ipfs/{root}/{key…}` names the value of `key` in the HAMT at
//! `root`, and a trustless client needs the nodes from the root to that value to check it.
//!
//! [`HamtReader::path`] names those nodes; their blocks are then fetched (through the
//! store's node cache, which every request on the gateway's store shares, the lookup
//! itself mostly costs nothing) and verified, as they go into CAR responses.

use std::sync::Arc;

use bytes::Bytes;
use hamt::{BlockStore, Cid, Config, Error as HamtError, HamtReader, verify};

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
    // Every request on the gateway's store shares one node cache: a path asked again, or
    // a neighbour's, costs only the blocks for the response.
    let reader = HamtReader::open_with_config(store.clone(), root, Config::new().shared_cache())
        .await
        .map_err(|e| match e {
            HamtError::Decode { .. } => Miss::NotHamt(e.to_string()),
            e => Miss::Store(e),
        })?;
    match reader.path(key).await {
        Ok(Some((nodes, value))) => {
            let blocks = store.get_many(&nodes).await.map_err(Miss::Store)?;
            let mut path = Vec::with_capacity(nodes.len());
            for (cid, data) in nodes.into_iter().zip(blocks) {
                // Checked here: the blocks go into CAR responses, and not every store
                // verifies.
                verify(&cid, &data).map_err(Miss::Store)?;
                path.push((cid, data));
            }
            Ok(Resolved { path, value })
        }
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
