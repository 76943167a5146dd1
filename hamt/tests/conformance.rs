//! `MemoryStore` against the shared block store conformance suite, one test per check.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hamt::test_suite::Subject;
use hamt::{HashAlg, MemoryStore};

fn blake3() -> Subject {
    let store = MemoryStore::new().with_read_verification(true);
    Subject::new(Arc::new(store.clone())).with_corrupter(store)
}

fn sha256() -> Subject {
    let store = MemoryStore::with_hash(HashAlg::Sha2_256).with_read_verification(true);
    Subject::new(Arc::new(store.clone())).with_corrupter(store)
}

mod memory_blake3 {
    hamt::conformance_tests!(super::blake3, corrupt);
}

mod memory_sha256 {
    hamt::conformance_tests!(super::sha256, corrupt);
}

/// `run_all` runs the same checks on one subject, for callers outside a test harness.
#[tokio::test]
async fn run_all_on_one_subject() {
    hamt::test_suite::run_all(&blake3()).await;
}
