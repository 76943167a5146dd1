//! HAMT operation sequences against a [`BTreeMap`]: after every insert and remove the HAMT
//! answers as the map does, and the final root is canonical — the same contents give the same
//! root whatever the order of operations, so it equals the root of a HAMT built from the
//! final map from scratch (in key order, and in reverse).
//!
//! Input: a control byte (bits 0–1: bucket size 1 to 4; bit 2: inline small values; bit 3:
//! a node cache too small to hold anything, so that every read reloads), then two bytes per
//! operation: what (insert, remove, flush, flush and reopen) and which of 64 keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt as _;
use hamt::{BlockStore, Bytes, Config, Hamt, MemoryStore};

/// Operations run from one input at most.
const MAX_OPS: usize = 256;

/// One input; see the module docs.
pub fn run(data: &[u8]) {
    let Some((&control, ops)) = data.split_first() else {
        return;
    };
    let mut config = Config::new().max_bucket_size(usize::from(control & 3) + 1);
    if control & 4 != 0 {
        config = config.inline_values(8);
    }
    if control & 8 != 0 {
        config = config.cache_bytes(0);
    }
    let ops: Vec<(u8, u8)> = ops
        .chunks_exact(2)
        .take(MAX_OPS)
        .map(|c| (c[0], c[1]))
        .collect();
    futures::executor::block_on(check(config, &ops));
}

fn key(n: u8) -> String {
    // A few long keys among short ones: key length decides the order within a bucket.
    if n % 16 == 15 {
        format!("long-key-{n}-{}", "x".repeat(usize::from(n)))
    } else {
        format!("k{}", n % 64)
    }
}

async fn check(config: Config, ops: &[(u8, u8)]) {
    let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let mut map = Hamt::with_config(store.clone(), config).expect("a valid config");
    let mut model: BTreeMap<String, Bytes> = BTreeMap::new();
    for (i, &(what, which)) in ops.iter().enumerate() {
        let k = key(which);
        match what % 8 {
            0..=3 => {
                // The value depends on the step, so replacing a key changes it.
                let value = Bytes::from(format!("value {} of {k}", i % 5));
                let old = map.insert(&k, value.clone()).await.expect("memory store");
                assert_eq!(
                    old.is_some(),
                    model.insert(k.clone(), value).is_some(),
                    "insert of {k:?} disagrees on whether it was there"
                );
            }
            4 | 5 => {
                let old = map.remove(&k).await.expect("memory store");
                assert_eq!(
                    old.is_some(),
                    model.remove(&k).is_some(),
                    "remove of {k:?} disagrees on whether it was there"
                );
            }
            6 => {
                map.flush().await.expect("memory store");
            }
            _ => {
                let root = map.flush().await.expect("memory store");
                map = Hamt::open_with_config(store.clone(), root, config)
                    .await
                    .expect("a flushed root opens");
            }
        }
        assert_eq!(
            map.get(&k).await.expect("memory store"),
            model.get(&k).cloned(),
            "{k:?} reads differently from the model"
        );
    }
    let mut pairs: Vec<(String, Bytes)> = map.iter().try_collect().await.expect("memory store");
    pairs.sort();
    let expected: Vec<(String, Bytes)> = model.clone().into_iter().collect();
    assert_eq!(
        pairs, expected,
        "the HAMT's contents differ from the model's"
    );
    assert_eq!(map.len().await.expect("memory store"), model.len() as u64);
    let root = map.flush().await.expect("memory store");
    for reverse in [false, true] {
        let mut fresh = Hamt::with_config(store.clone(), config).expect("a valid config");
        let entries: Box<dyn Iterator<Item = (&String, &Bytes)>> = if reverse {
            Box::new(model.iter().rev())
        } else {
            Box::new(model.iter())
        };
        for (k, v) in entries {
            fresh.insert(k, v.clone()).await.expect("memory store");
        }
        assert_eq!(
            fresh.flush().await.expect("memory store"),
            root,
            "the same contents built from scratch give another root"
        );
    }
}
