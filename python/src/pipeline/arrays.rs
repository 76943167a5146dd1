//! Which zarrs array a chunk key belongs to: the key taken apart by every chunk key encoding,
//! the array's `zarr.json` read through the same store, and the arrays zarrs has opened,
//! kept (by the store they were opened on, and only as long as it lives) while their
//! metadata is unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hamt::Bytes;
use hamt_zarr::zarrs_storage::AsyncReadableStorageTraits;
use pyo3::prelude::*;
use zarrs::array::{Array, ArrayBytes, ArrayMetadata};

use super::zstd_chunks::{PlainZstd, plain_zstd};
use crate::errors::FormatError;
use crate::zarr::Storage;

/// A zarrs array over a `hamt_rs` store.
pub(super) type ZArray = Array<dyn AsyncReadableStorageTraits>;

/// An array zarrs opened, and its `zstd` settings when its chunks are coded without zarrs'
/// codec chain (decided once, when it opens).
pub(super) struct Opened {
    /// The array.
    pub(super) array: ZArray,
    /// See [`plain_zstd`].
    pub(super) zstd: Option<PlainZstd>,
}

/// The arrays zarrs opened on one store (held by its `ZarrCore`, and dropped with it), by
/// path, with the storage and the metadata they were opened from: a changed `zarr.json` (an
/// append) opens the array again. One entry an array path, so it grows only with the
/// store's arrays.
#[derive(Default)]
pub(crate) struct ArrayCache(Mutex<HashMap<String, Cached>>);

/// One array of an [`ArrayCache`].
struct Cached {
    /// The zarrs storage it was opened on, by address.
    storage: usize,
    /// The `zarr.json` it was opened from.
    metadata: Bytes,
    /// The array, or None when zarrs cannot read it.
    opened: Option<Arc<Opened>>,
}

/// A chunk key taken apart: the array's path and the chunk's grid indices.
fn candidates(key: &str, ndim: usize) -> Vec<(String, Vec<u64>, &'static str, char)> {
    let mut found = Vec::new();
    let digits = |s: &str| s.parse::<u64>().ok();
    let segments: Vec<&str> = key.split('/').collect();
    let join = |parts: &[&str]| parts.join("/");
    // default encoding, "/" separator: …/c/i/j/k
    if segments.len() > ndim && segments[segments.len() - ndim - 1] == "c" {
        let idx: Option<Vec<u64>> = segments[segments.len() - ndim..]
            .iter()
            .map(|s| digits(s))
            .collect();
        if let Some(idx) = idx {
            found.push((
                join(&segments[..segments.len() - ndim - 1]),
                idx,
                "default",
                '/',
            ));
        }
    }
    if let Some(last) = segments.last() {
        let rest = join(&segments[..segments.len() - 1]);
        // default encoding, "." separator: …/c.i.j.k
        if let Some(tail) = last
            .strip_prefix("c.")
            .or((ndim == 0 && *last == "c").then_some(""))
        {
            let idx: Option<Vec<u64>> = if ndim == 0 {
                Some(Vec::new())
            } else {
                tail.split('.').map(digits).collect()
            };
            if let Some(idx) = idx.filter(|i| i.len() == ndim) {
                found.push((rest.clone(), idx, "default", '.'));
            }
        }
        // v2 encoding, "." separator: …/i.j.k
        let idx: Option<Vec<u64>> = if ndim == 0 {
            (*last == "0").then(Vec::new)
        } else {
            last.split('.').map(digits).collect()
        };
        if let Some(idx) = idx.filter(|i| i.len() == ndim) {
            found.push((rest, idx, "v2", '.'));
        }
    }
    // v2 encoding, "/" separator: …/i/j/k
    if ndim > 0 && segments.len() >= ndim {
        let idx: Option<Vec<u64>> = segments[segments.len() - ndim..]
            .iter()
            .map(|s| digits(s))
            .collect();
        if let Some(idx) = idx {
            found.push((join(&segments[..segments.len() - ndim]), idx, "v2", '/'));
        }
    }
    found
}

fn metadata_key(path: &str) -> String {
    if path.is_empty() {
        "zarr.json".to_owned()
    } else {
        format!("{path}/zarr.json")
    }
}

/// The chunk key encoding `zarr.json` declares: (name, separator).
fn encoding_of(meta: &serde_json::Value) -> (String, char) {
    let enc = &meta["chunk_key_encoding"];
    let name = enc["name"].as_str().unwrap_or("default").to_owned();
    let default_sep = if name == "v2" { '.' } else { '/' };
    let sep = enc["configuration"]["separator"]
        .as_str()
        .and_then(|s| s.chars().next())
        .unwrap_or(default_sep);
    (name, sep)
}

/// The zarrs array `key` belongs to and the chunk's indices; None when zarrs cannot read it.
pub(super) async fn resolve(
    storage: &Storage,
    arrays: &ArrayCache,
    key: &str,
    ndim: usize,
) -> PyResult<Option<(Arc<Opened>, Vec<u64>)>> {
    for (path, indices, enc, sep) in candidates(key, ndim) {
        let Some(meta_bytes) = storage.get(&metadata_key(&path)).await? else {
            continue;
        };
        let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&meta_bytes) else {
            continue;
        };
        if meta["node_type"] != "array" || meta["shape"].as_array().map(Vec::len) != Some(ndim) {
            continue;
        }
        if encoding_of(&meta) != (enc.to_owned(), sep) {
            continue;
        }
        let identity = Arc::as_ptr(&storage.readable()).cast::<()>() as usize;
        let cached = {
            let guard = arrays.0.lock().unwrap_or_else(PoisonError::into_inner);
            guard
                .get(&path)
                .filter(|c| c.storage == identity && c.metadata == meta_bytes)
                .map(|c| c.opened.clone())
        };
        let array = if let Some(array) = cached {
            array
        } else {
            let opened = serde_json::from_slice::<ArrayMetadata>(&meta_bytes)
                .ok()
                .and_then(|m| {
                    ZArray::new_with_metadata(storage.readable(), &format!("/{path}"), m).ok()
                })
                .and_then(|array| {
                    let size = array.data_type().fixed_size()?;
                    let zstd = plain_zstd(array.metadata(), size);
                    Some(Arc::new(Opened { array, zstd }))
                });
            let mut guard = arrays.0.lock().unwrap_or_else(PoisonError::into_inner);
            guard.insert(
                path,
                Cached {
                    storage: identity,
                    metadata: meta_bytes.clone(),
                    opened: opened.clone(),
                },
            );
            opened
        };
        return Ok(array.map(|a| (a, indices)));
    }
    Ok(None)
}

/// One element of `array`'s fill value, as bytes; `key` names the chunk in the error.
pub(super) fn fill_element(array: &ZArray, key: &str) -> PyResult<Vec<u8>> {
    let bad = |e: &dyn std::fmt::Display| FormatError::new_err(format!("{key}: {e}"));
    Ok(
        ArrayBytes::new_fill_value(array.data_type(), 1, array.fill_value())
            .map_err(|e| bad(&e))?
            .into_fixed()
            .map_err(|e| bad(&e))?
            .into_owned(),
    )
}
