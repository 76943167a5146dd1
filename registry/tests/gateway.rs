//! `ipfs+http://` opens the gateway store: a tree served by `hamt serve` (in the process)
//! reads back through the registry, and the store says it is read-only.

#![cfg(feature = "gateway")]
// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hamt::{BlockStore, Hamt, HamtReader, MemoryStore};

#[tokio::test]
async fn a_gateway_url_opens_a_read_only_store_that_reads_the_tree() {
    let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let mut map = Hamt::new(store.clone());
    for i in 0..200 {
        map.insert(&format!("k/{i}"), format!("v{i}").into_bytes())
            .await
            .unwrap();
    }
    let root = map.flush().await.unwrap();
    let server = hamt_gateway::Gateway::new(store)
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    let url = server.url().replacen("http://", "ipfs+http://", 1);
    let opened = hamt_registry::open(&url).await.unwrap();
    let caps = opened.capabilities();
    assert!(!caps.write && caps.subtree && caps.shared);
    let reader = HamtReader::open(opened.store().clone(), root)
        .await
        .unwrap();
    assert_eq!(
        reader.get("k/42").await.unwrap().as_deref(),
        Some(&b"v42"[..])
    );
    assert!(hamt_registry::usage().contains("ipfs+http://"));
    opened.close().await.unwrap();
}
