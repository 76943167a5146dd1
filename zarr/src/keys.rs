//! What both stores answer the same way: byte ranges of a value and a directory listing.

use std::collections::BTreeSet;

use bytes::Bytes;
use zarrs_storage::byte_range::ByteRange;
use zarrs_storage::{StorageError, StoreKey, StoreKeysPrefixes, StorePrefix};

use crate::error::{Error, Result};

/// `ranges` of `value` (the value of `key`), each checked to lie inside it.
pub(crate) fn slice_ranges(
    key: &str,
    value: &Bytes,
    ranges: impl IntoIterator<Item = ByteRange>,
) -> Result<Vec<Bytes>> {
    let len = value.len() as u64;
    ranges
        .into_iter()
        .map(|range| {
            let valid = match range {
                ByteRange::FromStart(start, length) => length
                    .map_or(Some(start), |n| start.checked_add(n))
                    .is_some_and(|end| end <= len),
                ByteRange::Suffix(n) => n <= len,
            };
            if !valid {
                return Err(Error::InvalidRange {
                    key: key.into(),
                    range: range.to_string(),
                    len,
                });
            }
            Ok(value.slice(range.to_range_usize(len)))
        })
        .collect()
}

/// The direct children of `base` among `keys` (all starting with `base`): keys, and the
/// prefixes of deeper keys, each once, sorted.
pub(crate) fn children(
    base: &str,
    keys: impl IntoIterator<Item = String>,
) -> Result<StoreKeysPrefixes, StorageError> {
    let mut leaves = Vec::new();
    let mut dirs = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for key in keys {
        match key[base.len()..].find('/') {
            Some(slash) => {
                dirs.insert(key[..=base.len() + slash].to_owned());
            }
            None => {
                if seen.insert(key.clone()) {
                    leaves.push(key);
                }
            }
        }
    }
    leaves.sort_unstable();
    let keys = leaves
        .into_iter()
        .map(|k| StoreKey::new(k).map_err(StorageError::from))
        .collect::<Result<Vec<_>, _>>()?;
    let prefixes = dirs
        .into_iter()
        .map(|d| StorePrefix::new(d).map_err(StorageError::from))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoreKeysPrefixes::new(keys, prefixes))
}
