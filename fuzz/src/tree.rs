//! A fuzzed node as the root of a HAMT, through the public API: read, edited and flushed.
//! Its children and values are missing from the store, so most calls fail; none may panic,
//! and what a flush writes must open again.

use std::sync::Arc;

use futures::StreamExt as _;
use hamt::fuzzing::{FuzzSlot, node_round_trip};
use hamt::{BlockStore, Codec, Hamt, HamtReader, MemoryStore};

/// One input: the bytes of a node block (the `node` target's corpus fits).
pub fn run(data: &[u8]) {
    let Ok((slots, _)) = node_round_trip(data) else {
        return;
    };
    crate::block_on(use_as_root(data, &slots));
}

/// Reads and edits the node as the root of a HAMT.
async fn use_as_root(data: &[u8], slots: &[FuzzSlot]) {
    let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let Ok(root) = store.put(Codec::DagCbor, data.to_vec().into()).await else {
        return;
    };
    let keys: Vec<&str> = slots
        .iter()
        .filter_map(|s| match s {
            FuzzSlot::Bucket(entries) => Some(entries.iter().map(|(k, _)| k.as_str())),
            FuzzSlot::Link(_) => None,
        })
        .flatten()
        .take(16)
        .collect();
    if let Ok(reader) = HamtReader::open(store.clone(), root).await {
        for key in &keys {
            let _ = reader.get_pointer(key).await;
        }
        let _ = reader.keys().take(64).collect::<Vec<_>>().await;
        let _ = reader.stats().await;
    }
    let Ok(mut map) = Hamt::open(store.clone(), root).await else {
        return;
    };
    let _ = map.insert("fuzz-new-key", &b"value"[..]).await;
    for key in keys.iter().take(4) {
        let _ = map.remove(key).await;
    }
    if let Some(key) = keys.last() {
        let _ = map.insert(key, &b"replaced"[..]).await;
    }
    if let Ok(new_root) = map.flush().await {
        let reader = HamtReader::open(store, new_root)
            .await
            .expect("a root the HAMT just flushed opens");
        let _ = reader.keys().take(64).collect::<Vec<_>>().await;
    }
}
