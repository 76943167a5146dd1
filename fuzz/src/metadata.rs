//! Zarr metadata and key routing: a script of writes and reads, run against a writable
//! [`ShardedStore`], whose metadata documents register arrays and decide where every chunk
//! key goes. After a flush, the root reopened read-only must answer every key as the live
//! store did. The `zarr.json` documents written then go into a [`HamtStore`], whose
//! [`dataset_info`] reads them back (before and after a flush).
//!
//! Input ([`frame`](crate::frame) parts): a control part (its first byte picks
//! `chunks_per_shard`), then one operation per part: its first byte names it and the rest is
//! `key`, or `key NUL value`.
//! - `S`: set `key` to `value` (a metadata document, or a chunk);
//! - `G`: read `key`;
//! - `D`: delete `key`; `P`: delete everything under the prefix `key`;
//! - `R`: resize the array at `key` to the shape `value` (a JSON list);
//! - `F`: flush, reopen and compare (twice per input at most);
//! - `L`: list.

use std::sync::Arc;

use hamt::{BlockStore, MemoryStore};
use hamt_zarr::zarrs_storage::{AsyncListableStorageTraits as _, StorePrefix};
use hamt_zarr::{HamtStore, ShardedStore, dataset_info};

/// Operations run from one input at most.
const MAX_OPS: usize = 32;

/// Flushes (with a reopen and a read of every key) run from one input at most, besides the
/// one at the end: they cost far more than the other operations.
const MAX_FLUSHES: usize = 1;

/// Keys read back after a flush at most.
const MAX_COMPARED: usize = 16;

/// Metadata documents put into the [`HamtStore`] at most.
const MAX_DOCUMENTS: usize = 8;

/// One input; see the module docs.
pub fn run(data: &[u8]) {
    let parts = crate::frame::split(data, 1 + MAX_OPS);
    let Some((control, ops)) = parts.split_first() else {
        return;
    };
    let cps = u64::from(control.first().copied().unwrap_or(3) % 8) + 1;
    crate::block_on(script(cps, ops));
}

/// `key NUL value`, or all of it as the key.
fn key_value(payload: &[u8]) -> (String, &[u8]) {
    let (key, value) = match payload.iter().position(|&b| b == 0) {
        Some(i) => (&payload[..i], &payload[i + 1..]),
        None => (payload, &[][..]),
    };
    (String::from_utf8_lossy(key).into_owned(), value)
}

async fn script(cps: u64, ops: &[&[u8]]) {
    let blocks: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let Ok(sharded) = ShardedStore::create(blocks.clone(), cps).await else {
        return;
    };
    let mut documents: Vec<(String, Vec<u8>)> = Vec::new();
    let mut flushes = 0;
    for op in ops {
        let Some((&code, payload)) = op.split_first() else {
            continue;
        };
        let (key, value) = key_value(payload);
        match code {
            b'S' => {
                let _ = sharded.set_value(&key, value.to_vec()).await;
                if key.ends_with("zarr.json") && documents.len() < MAX_DOCUMENTS {
                    documents.push((key, value.to_vec()));
                }
            }
            b'G' => {
                let _ = sharded.get_value(&key).await;
            }
            b'D' => {
                let _ = sharded.delete(&key).await;
            }
            b'P' => {
                let _ = sharded.delete_dir(&key).await;
            }
            b'R' => {
                if let Ok(shape) = serde_json::from_slice::<Vec<u64>>(value) {
                    let _ = sharded.resize(&key, shape).await;
                }
            }
            b'F' if flushes < MAX_FLUSHES => {
                flushes += 1;
                reopen_and_compare(&blocks, &sharded).await;
            }
            b'L' => {
                let _ = sharded.keys().await;
                if let Ok(prefix) = StorePrefix::new(key) {
                    let _ = sharded.list_dir(&prefix).await;
                }
            }
            _ => {}
        }
    }
    reopen_and_compare(&blocks, &sharded).await;
    read_documents(&blocks, documents).await;
}

/// Puts `documents` into a new [`HamtStore`] and reads the dataset's description, and its
/// listing, from it before and after a flush.
async fn read_documents(blocks: &Arc<dyn BlockStore>, documents: Vec<(String, Vec<u8>)>) {
    if documents.is_empty() {
        return;
    }
    let Ok(hamt) = HamtStore::builder(blocks.clone()).build().await else {
        return;
    };
    for (key, value) in documents {
        let _ = hamt.set_value(&key, value).await;
    }
    let _ = dataset_info(&hamt).await;
    if let Ok(root) = hamt.flush().await
        && let Ok(reopened) = HamtStore::open(blocks.clone(), root).await
    {
        let _ = dataset_info(&reopened).await;
        if let Ok(prefix) = StorePrefix::new("") {
            let _ = reopened.list_dir(&prefix).await;
        }
    }
}

/// Flushes `live`, reopens its root read-only, and reads every key from both.
async fn reopen_and_compare(blocks: &Arc<dyn BlockStore>, live: &ShardedStore) {
    let Ok(root) = live.flush().await else {
        return;
    };
    let reopened = ShardedStore::open(blocks.clone(), root)
        .await
        .expect("a root the sharded store just flushed opens");
    let Ok(keys) = live.keys().await else {
        return;
    };
    for key in keys.iter().take(MAX_COMPARED) {
        let a = live.get_value(key).await;
        let b = reopened.get_value(key).await;
        if let (Ok(a), Ok(b)) = (a, b) {
            assert_eq!(a, b, "{key:?} reads differently after a flush and reopen");
        }
    }
}
