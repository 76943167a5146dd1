//! The HAMT node decoder, and decode → encode: a node that decodes re-encodes to canonical
//! DAG-CBOR that decodes to the same slots and re-encodes byte-identical, and a node that was
//! canonical DAG-CBOR to begin with re-encodes to exactly its own bytes. Then the node is
//! opened as a HAMT root, read and edited through the public API.

use std::sync::Arc;

use futures::StreamExt as _;
use hamt::fuzzing::{FuzzSlot, node_round_trip};
use hamt::{BlockStore, Codec, Hamt, HamtReader, MemoryStore};
use ipld_core::ipld::Ipld;

/// One input: the bytes of a node block.
pub fn run(data: &[u8]) {
    let Ok((slots, encoded)) = node_round_trip(data) else {
        return;
    };
    check_encoding(data, &slots, &encoded);
    crate::block_on(use_as_root(data, &slots));
}

/// The round-trip properties of a node that decoded to `slots` and encoded to `encoded`.
fn check_encoding(data: &[u8], slots: &[FuzzSlot], encoded: &[u8]) {
    let (again, reencoded) =
        node_round_trip(encoded).expect("a node this crate encoded decodes again");
    assert_eq!(again, slots, "re-encoding changed the slots");
    assert_eq!(
        reencoded, encoded,
        "a re-encoded node re-encodes differently"
    );
    let ipld: Ipld = serde_ipld_dagcbor::from_slice(encoded)
        .expect("an encoded node is DAG-CBOR to serde_ipld_dagcbor");
    let canonical = serde_ipld_dagcbor::to_vec(&ipld).expect("decoded IPLD encodes");
    assert_eq!(
        canonical, encoded,
        "an encoded node is not canonical DAG-CBOR"
    );
    if let Ok(ipld) = serde_ipld_dagcbor::from_slice::<Ipld>(data)
        && serde_ipld_dagcbor::to_vec(&ipld).is_ok_and(|c| c == data)
    {
        assert_eq!(encoded, data, "a canonical node re-encodes differently");
    }
}

/// Reads and edits the node as the root of a HAMT. Its children and values are missing
/// from the store, so most calls fail; none may panic, and what a flush writes must open.
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
