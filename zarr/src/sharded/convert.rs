//! py-hamt's `convert_hamt_to_sharded`: a HAMT-backed dataset root to a sharded root,
//! reusing every chunk's CID (no chunk bytes are read or written).

use std::sync::Arc;

use futures::TryStreamExt as _;
use hamt::{BlockStore, Cid, HamtReader};

use super::ShardedStore;
use super::route::{all_digits, format_chunk_key};
use crate::error::{Error, Result};
use crate::metadata;

/// Converts the `ZarrHAMTStore` dataset at `hamt_root` into a `sharded_zarr_v2` root with
/// `chunks_per_shard` chunks per shard, as py-hamt's converter does (same root CID): metadata
/// documents first, in the HAMT's key order, then every chunk pointer.
///
/// # Errors
/// [`Error::Layout`] for a key that is neither metadata nor a chunk (py-hamt refuses the
/// same keys, scalar arrays' `p/c` among them) or a chunk of an array with no metadata;
/// store failures.
pub async fn hamt_to_sharded(
    blocks: Arc<dyn BlockStore>,
    hamt_root: Cid,
    chunks_per_shard: u64,
) -> Result<Cid> {
    let reader = HamtReader::open(blocks.clone(), hamt_root).await?;
    // The HAMT's iteration order is py-hamt's: it decides whether the root zarr.json is
    // registered before or after the arrays, which changes its bytes.
    let pairs: Vec<(String, Cid)> = reader.pointers().try_collect().await?;
    let dest = ShardedStore::create(blocks, chunks_per_shard).await?;
    let is_meta = metadata::is_json_key;
    for (key, cid) in pairs.iter().filter(|(k, _)| is_meta(k)) {
        dest.set_pointer(key, *cid).await?;
    }
    for (key, cid) in pairs.iter().filter(|(k, _)| !is_meta(k)) {
        let chunk_key = normalize_chunk_key(&dest, key)?;
        dest.set_pointer(&chunk_key, *cid).await?;
    }
    dest.flush().await
}

/// The Zarr v3 chunk key of a HAMT key, as py-hamt's converter normalizes it: `p/1.2` and
/// `p/1/2` (of a registered array of that rank) become `p/c/1/2`; `/c/` keys stay.
fn normalize_chunk_key(dest: &ShardedStore, key: &str) -> Result<String> {
    let (path, last) = key.rsplit_once('/').unwrap_or(("", key));
    if last.contains('.') && all_digits(last, '.') {
        return Ok(format_chunk_key(path, last.split('.')));
    }
    if key.starts_with("c/") || key.contains("/c/") {
        return Ok(key.to_owned());
    }
    let mut arrays = dest.arrays();
    arrays.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
    for (path, shape, _, _) in arrays {
        let rest = if path.is_empty() {
            Some(key)
        } else {
            key.strip_prefix(path.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        if let Some(rest) = rest
            && all_digits(rest, '/')
            && rest.split('/').count() == shape.len()
        {
            return Ok(format_chunk_key(&path, rest.split('/')));
        }
    }
    Err(Error::Layout {
        reason: format!("cannot classify Zarr key {key:?} as metadata or chunk during conversion"),
    })
}
