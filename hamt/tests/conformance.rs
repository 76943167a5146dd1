//! `MemoryStore` against the shared block store conformance suite.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hamt::{HashAlg, MemoryStore, test_suite};

#[tokio::test]
async fn memory_store_blake3() {
    let store = MemoryStore::new().with_read_verification(true);
    test_suite::run_all(Arc::new(store.clone()), Some(&store)).await;
}

#[tokio::test]
async fn memory_store_sha256() {
    let store = MemoryStore::with_hash(HashAlg::Sha2_256).with_read_verification(true);
    test_suite::run_all(Arc::new(store.clone()), Some(&store)).await;
}
