//! Behaviour of the HAMT over the in-memory store.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::TryStreamExt as _;
use hamt::{BlockStore, Change, Codec, Config, Error, Hamt, HamtReader, MemoryStore, diff};
use proptest::prelude::*;

fn store() -> Arc<dyn BlockStore> {
    Arc::new(MemoryStore::new())
}

async fn build(
    store: &Arc<dyn BlockStore>,
    pairs: &[(String, Vec<u8>)],
    bucket: usize,
) -> hamt::Cid {
    let mut map = Hamt::with_config(store.clone(), Config::new().max_bucket_size(bucket)).unwrap();
    for (k, v) in pairs {
        map.insert(k, v.clone()).await.unwrap();
    }
    map.flush().await.unwrap()
}

fn pairs(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("k{i}"), i.to_le_bytes().to_vec()))
        .collect()
}

#[tokio::test]
async fn empty_root_is_256_empty_maps() {
    let s = store();
    let root = Hamt::new(s.clone()).flush().await.unwrap();
    let mut expected = vec![0x99, 0x01, 0x00];
    expected.extend(std::iter::repeat_n(0xa0, 256));
    assert_eq!(s.get(&root).await.unwrap().as_ref(), &expected[..]);
    assert_eq!(root.codec(), 0x71);
    assert_eq!(root.hash().code(), 0x1e);
}

#[tokio::test]
async fn insert_get_overwrite_remove() {
    let s = store();
    let mut map = Hamt::new(s.clone());
    assert_eq!(map.get("a").await.unwrap(), None);
    assert!(map.insert("a", b"1".to_vec()).await.unwrap().is_none());
    let old = map.insert("a", b"2".to_vec()).await.unwrap();
    assert_eq!(old, Some(s.hash_alg().cid(Codec::Raw, b"1")));
    assert_eq!(map.get("a").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(map.len().await.unwrap(), 1);
    assert!(map.remove("a").await.unwrap().is_some());
    assert!(map.remove("a").await.unwrap().is_none());
    assert!(map.is_empty());
}

#[tokio::test]
async fn many_keys_round_trip_through_flush_and_reopen() {
    let s = store();
    let data = pairs(5000);
    let root = build(&s, &data, 4).await;
    let reader = HamtReader::open(s.clone(), root).await.unwrap();
    for (k, v) in &data {
        assert_eq!(reader.get(k).await.unwrap().as_deref(), Some(&v[..]));
    }
    assert_eq!(reader.get("absent").await.unwrap(), None);
    assert_eq!(reader.len().await.unwrap(), 5000);
    let stats = reader.stats().await.unwrap();
    assert_eq!(stats.keys, 5000);
    assert!(stats.depth >= 2 && stats.max_bucket <= 4);

    // Reopen for writing, change, flush: the unchanged keys still read.
    let mut map = Hamt::open(s.clone(), root).await.unwrap();
    assert_eq!(map.len().await.unwrap(), 5000);
    map.insert("k1", b"new".to_vec()).await.unwrap();
    map.remove("k2").await.unwrap();
    let root2 = map.flush().await.unwrap();
    assert_ne!(root, root2);
    let reader = HamtReader::open(s, root2).await.unwrap();
    assert_eq!(
        reader.get("k1").await.unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(reader.get("k2").await.unwrap(), None);
    assert_eq!(
        reader.get("k3").await.unwrap().as_deref(),
        Some(&3usize.to_le_bytes()[..])
    );
}

#[tokio::test]
async fn iter_and_pointers_cover_dirty_and_stored_nodes() {
    let s = store();
    let data = pairs(800);
    let root = build(&s, &data[..400], 4).await;
    let mut map = Hamt::open(s.clone(), root).await.unwrap();
    for (k, v) in &data[400..] {
        map.insert(k, v.clone()).await.unwrap();
    }
    let got: BTreeMap<String, Vec<u8>> = map
        .iter()
        .map_ok(|(k, v)| (k, v.to_vec()))
        .try_collect()
        .await
        .unwrap();
    let expected: BTreeMap<String, Vec<u8>> = data.into_iter().collect();
    assert_eq!(got, expected);
    let keys: Vec<String> = map.keys().try_collect().await.unwrap();
    assert_eq!(keys.len(), 800);
}

#[tokio::test]
async fn readers_share_across_tasks() {
    let s = store();
    let data = pairs(2000);
    let mut map = Hamt::new(s.clone());
    map.extend(data.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .await
        .unwrap();
    let reader = map.reader().await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let reader = reader.clone();
            let data = data.clone();
            tokio::spawn(async move {
                for (k, v) in data.iter().skip(t).step_by(8) {
                    assert_eq!(reader.get(k).await.unwrap().as_deref(), Some(&v[..]));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn cbor_values() {
    let s = store();
    let mut map = Hamt::new(s);
    map.insert_cbor("n", &42u64).await.unwrap();
    map.insert_cbor("list", &vec!["a", "b"]).await.unwrap();
    assert_eq!(map.get_cbor::<u64>("n").await.unwrap(), Some(42));
    assert_eq!(
        map.get_cbor::<Vec<String>>("list").await.unwrap(),
        Some(vec!["a".into(), "b".into()])
    );
    assert_eq!(
        map.get("n").await.unwrap().as_deref(),
        Some(&[0x18, 42][..])
    );
    let err = map.get_cbor::<String>("n").await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }));
}

#[tokio::test]
async fn zero_bucket_size_is_rejected() {
    let err = Hamt::with_config(store(), Config::new().max_bucket_size(0)).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)));
}

#[tokio::test]
async fn missing_and_bad_roots_are_typed_errors() {
    let s = store();
    let missing = s.hash_alg().cid(Codec::DagCbor, b"nothing");
    assert!(
        HamtReader::open(s.clone(), missing)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let not_a_node = s.put(Codec::DagCbor, vec![0x01].into()).await.unwrap();
    assert!(matches!(
        Hamt::open(s.clone(), not_a_node).await.unwrap_err(),
        Error::Decode { .. }
    ));
}

#[tokio::test]
async fn missing_child_node_is_not_found_not_absent() {
    let full = store();
    let root = build(&full, &pairs(300), 4).await;
    // Copy only the root block into a fresh store: every lookup below the root must fail.
    let partial = store();
    partial
        .put_keyed(&root, full.get(&root).await.unwrap())
        .await
        .unwrap();
    let reader = HamtReader::open(partial, root).await.unwrap();
    let mut failures = 0;
    for (k, _) in pairs(300) {
        match reader.get(&k).await {
            Err(e) if e.is_not_found() => failures += 1,
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => {}
        }
    }
    assert!(failures > 200, "{failures}");
}

#[tokio::test]
async fn diff_reports_exact_changes() {
    let s = store();
    let base = pairs(3000);
    let old = build(&s, &base, 4).await;
    let mut map = Hamt::open(s.clone(), old).await.unwrap();
    map.insert("new-key", b"x".to_vec()).await.unwrap();
    map.insert("k10", b"changed".to_vec()).await.unwrap();
    map.remove("k20").await.unwrap();
    let new = map.flush().await.unwrap();
    let mut changes: Vec<Change> = diff(s.clone(), old, new).try_collect().await.unwrap();
    changes.sort_by(|a, b| a.key().cmp(b.key()));
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(matches!(&changes[0], Change::Modified { key, .. } if key == "k10"));
    assert!(matches!(&changes[1], Change::Removed { key, .. } if key == "k20"));
    assert!(matches!(&changes[2], Change::Added { key, .. } if key == "new-key"));
    let none: Vec<Change> = diff(s, old, old).try_collect().await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn diff_across_bucket_sizes() {
    let s = store();
    let a = build(&s, &pairs(500), 1).await;
    let mut b_pairs = pairs(500);
    b_pairs.remove(7);
    let b = build(&s, &b_pairs, 8).await;
    let changes: Vec<Change> = diff(s, a, b).try_collect().await.unwrap();
    assert_eq!(
        changes,
        vec![Change::Removed {
            key: "k7".into(),
            value: hamt::HashAlg::Blake3.cid(Codec::Raw, &7usize.to_le_bytes())
        }]
    );
}

#[tokio::test]
async fn car_export_import_round_trip() {
    let s = store();
    let root = build(&s, &pairs(1000), 4).await;
    let mut buf = Vec::new();
    let n = hamt::car::export_car(&s, root, &mut buf).await.unwrap();
    let stats = HamtReader::open(s.clone(), root)
        .await
        .unwrap()
        .stats()
        .await
        .unwrap();
    assert_eq!(n, stats.nodes + 1000);
    let mut reader = hamt::car::CarReader::new(&buf[..]).await.unwrap();
    assert_eq!(reader.roots(), &[root]);
    let fresh = store();
    while let Some((cid, data)) = reader.next_block().await.unwrap() {
        fresh.put_keyed(&cid, data).await.unwrap();
    }
    let copy = HamtReader::open(fresh, root).await.unwrap();
    assert_eq!(
        copy.get("k999").await.unwrap().as_deref(),
        Some(&999usize.to_le_bytes()[..])
    );

    // A flipped byte in a block is caught.
    let mut bad = buf.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let mut reader = hamt::car::CarReader::new(&bad[..]).await.unwrap();
    let mut result = Ok(None);
    for _ in 0..=n {
        result = reader.next_block().await;
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(Error::Corrupt { .. })));
    // Garbage is a decode error, not a panic.
    assert!(
        hamt::car::CarReader::new(&b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"[..])
            .await
            .is_err()
    );
    assert!(hamt::car::CarReader::new(&b"\x02\xa0"[..]).await.is_err());
}

#[tokio::test]
async fn small_values_inline_as_identity_cids() {
    let mem = Arc::new(MemoryStore::new());
    let s: Arc<dyn BlockStore> = mem.clone();
    let config = Config::new().inline_values(32);
    let mut map = Hamt::with_config(s.clone(), config).unwrap();
    let big = vec![7u8; 33];
    for i in 0..500u32 {
        map.insert(&format!("small{i}"), i.to_le_bytes().to_vec())
            .await
            .unwrap();
    }
    map.extend((0..500u32).map(|i| (format!("batch{i}"), vec![1u8; 32])))
        .await
        .unwrap();
    map.insert("big", big.clone()).await.unwrap();
    let root = map.flush().await.unwrap();
    let stats = map.stats().await.unwrap();
    // One value block (the 33-byte value, stored once) plus the nodes: nothing else.
    assert_eq!(mem.len() as u64, stats.nodes + 1);
    let pointer = map.get_pointer("small7").await.unwrap().unwrap();
    assert_eq!(hamt::inline_data(&pointer), Some(&7u32.to_le_bytes()[..]));
    assert_eq!(pointer.codec(), Codec::Raw.code());

    // Any reader, with any configuration, reads them: by key, by iteration, after a CAR
    // round trip that leaves the identity CIDs out.
    let reader = HamtReader::open(s.clone(), root).await.unwrap();
    assert_eq!(reader.get("big").await.unwrap().as_deref(), Some(&big[..]));
    assert_eq!(
        reader.get("small499").await.unwrap().as_deref(),
        Some(&499u32.to_le_bytes()[..])
    );
    let all: BTreeMap<String, hamt::Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(all.len(), 1001);
    assert_eq!(all["batch3"].as_ref(), &[1u8; 32]);
    let mut car = Vec::new();
    let blocks = hamt::car::export_car(&s, root, &mut car).await.unwrap();
    assert_eq!(blocks, stats.nodes + 1);
    let mut reader = hamt::car::CarReader::new(&car[..]).await.unwrap();
    let fresh = store();
    while let Some((cid, data)) = reader.next_block().await.unwrap() {
        fresh.put_keyed(&cid, data).await.unwrap();
    }
    let copy = HamtReader::open(fresh, root).await.unwrap();
    assert_eq!(
        copy.get("small1").await.unwrap().as_deref(),
        Some(&1u32.to_le_bytes()[..])
    );

    // The same data without inlining is a different tree; removing works on both.
    let mut plain = Hamt::new(store());
    plain
        .extend(all.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .await
        .unwrap();
    assert_ne!(plain.flush().await.unwrap(), root);
    assert!(map.remove("small7").await.unwrap().is_some());
    assert_eq!(map.get("small7").await.unwrap(), None);
    assert!(matches!(
        Hamt::with_config(store(), Config::new().inline_values(65)),
        Err(Error::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn empty_values_are_blocks_unless_inlining_is_on() {
    // py-hamt stores an empty value as a raw block; so must the default configuration.
    let mem = Arc::new(MemoryStore::new());
    let mut map = Hamt::new(mem.clone());
    map.insert("empty", Vec::new()).await.unwrap();
    let pointer = map.get_pointer("empty").await.unwrap().unwrap();
    assert_eq!(pointer, hamt::HashAlg::Blake3.cid(Codec::Raw, b""));
    assert_eq!(hamt::inline_data(&pointer), None);
    assert_eq!(mem.len(), 1);
    let mut inlined = Hamt::with_config(store(), Config::new().inline_values(8)).unwrap();
    inlined.insert("empty", Vec::new()).await.unwrap();
    let pointer = inlined.get_pointer("empty").await.unwrap().unwrap();
    assert_eq!(hamt::inline_data(&pointer), Some(&b""[..]));
    assert_eq!(
        inlined.get("empty").await.unwrap().as_deref(),
        Some(&b""[..])
    );
}

#[tokio::test]
async fn overlong_keys_are_refused_before_anything_is_stored() {
    let mem = Arc::new(MemoryStore::new());
    let mut map = Hamt::new(mem.clone());
    let key = "k".repeat(16 << 10);
    map.insert(&key, b"fits".to_vec()).await.unwrap();
    let long = "k".repeat((16 << 10) + 1);
    let blocks = mem.len();
    assert!(matches!(
        map.insert(&long, b"too long".to_vec()).await,
        Err(Error::Encode { .. })
    ));
    assert_eq!(mem.len(), blocks);
    assert_eq!(map.get(&key).await.unwrap().as_deref(), Some(&b"fits"[..]));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u16, u8),
    Remove(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u16..400, any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0u16..400).prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The HAMT behaves like a BTreeMap, and its root depends only on the final contents.
    #[test]
    fn behaves_like_btreemap_with_canonical_root(
        ops in proptest::collection::vec(op(), 1..600),
        bucket in 1usize..6,
        flush_every in 1usize..200,
        tiny_cache in any::<bool>(),
    ) {
        runtime().block_on(async {
            let s = store();
            // A one-byte cache keeps nothing: every load goes to the store, and children
            // remembered by their parents are dropped at once.
            let cache = if tiny_cache { 1 } else { 64 << 20 };
            let config = Config::new().max_bucket_size(bucket).cache_bytes(cache);
            let mut map = Hamt::with_config(s.clone(), config).unwrap();
            let mut model = BTreeMap::new();
            for (i, op) in ops.iter().enumerate() {
                match *op {
                    Op::Insert(k, v) => {
                        let key = format!("key{k}");
                        let had = model.insert(key.clone(), v).is_some();
                        let old = map.insert(&key, vec![v]).await.unwrap();
                        prop_assert_eq!(old.is_some(), had);
                    }
                    Op::Remove(k) => {
                        let key = format!("key{k}");
                        let had = model.remove(&key).is_some();
                        prop_assert_eq!(map.remove(&key).await.unwrap().is_some(), had);
                    }
                }
                if i % flush_every == 0 {
                    map.flush().await.unwrap();
                }
                // Reads between writes, through the tree being edited.
                let (Op::Insert(k, _) | Op::Remove(k)) = *op;
                for probe in [k, k.wrapping_mul(7) % 400] {
                    let key = format!("key{probe}");
                    let got = map.get(&key).await.unwrap().map(|b| b[0]);
                    prop_assert_eq!(got, model.get(&key).copied());
                }
            }
            let root = map.flush().await.unwrap();
            let reader = HamtReader::open_with_config(s.clone(), root, config).await.unwrap();
            for _ in 0..2 {
                for k in 0..400u16 {
                    let key = format!("key{k}");
                    let got = reader.get(&key).await.unwrap();
                    prop_assert_eq!(got.map(|b| b[0]), model.get(&key).copied());
                }
            }
            let keys: BTreeSet<String> = reader.keys().try_collect().await.unwrap();
            prop_assert_eq!(keys, model.keys().cloned().collect::<BTreeSet<_>>());

            // A fresh build of the final contents, in reverse order, has the same root.
            let mut fresh = Hamt::with_config(s.clone(), Config::new().max_bucket_size(bucket)).unwrap();
            for (k, v) in model.iter().rev() {
                fresh.insert(k, vec![*v]).await.unwrap();
            }
            prop_assert_eq!(fresh.flush().await.unwrap(), root);
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_tree_deeper_than_the_hash_is_an_error_not_a_panic() {
    // A hostile chain of 33 nodes along the route of "x": one more level than a 32-byte hash
    // can address.
    let s = store();
    let hash = blake3::hash(b"x");
    let hash = hash.as_bytes();
    let empty: Vec<u8> = [&[0x99u8, 0x01, 0x00][..], &[0xa0; 256]].concat();
    let mut child = s.put(Codec::DagCbor, empty.into()).await.unwrap();
    for depth in (0..32).rev() {
        let mut node = vec![0x99u8, 0x01, 0x00];
        for slot in 0..=255u8 {
            if slot == hash[depth] {
                let cid = child.to_bytes();
                node.extend_from_slice(&[
                    0x81,
                    0xd8,
                    0x2a,
                    0x58,
                    u8::try_from(cid.len() + 1).unwrap(),
                    0x00,
                ]);
                node.extend_from_slice(&cid);
            } else {
                node.push(0xa0);
            }
        }
        child = s.put(Codec::DagCbor, node.into()).await.unwrap();
    }
    let reader = HamtReader::open(s.clone(), child).await.unwrap();
    assert!(matches!(reader.get("x").await, Err(Error::Decode { .. })));
    let mut map = Hamt::open(s.clone(), child).await.unwrap();
    assert!(matches!(
        map.insert("x", b"v".to_vec()).await,
        Err(Error::Decode { .. })
    ));
    assert!(matches!(map.remove("x").await, Err(Error::Decode { .. })));
}

#[tokio::test]
async fn values_stored_as_unixfs_files_read_as_their_bytes() {
    let memory = MemoryStore::new();
    let content: Vec<u8> = (0..5000u32)
        .map(|i| u8::try_from(i % 241).unwrap())
        .collect();
    let file = hamt::test_suite::unixfs_file(&memory, &content, 1000).await;
    let s: Arc<dyn BlockStore> = Arc::new(memory);
    let mut map = Hamt::new(s.clone());
    map.insert_pointer("big", file).await.unwrap();
    map.insert("small", b"x".to_vec()).await.unwrap();
    let root = map.flush().await.unwrap();
    let reader = HamtReader::open(s.clone(), root).await.unwrap();
    assert_eq!(
        reader.get("big").await.unwrap().as_deref(),
        Some(&content[..])
    );
    assert_eq!(reader.get_pointer("big").await.unwrap(), Some(file));
    let all: BTreeMap<String, hamt::Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(&all["big"][..], &content[..]);
    // The CAR of the tree carries the file's chunks too.
    let mut car = Vec::new();
    let blocks = hamt::car::export_car(&s, root, &mut car).await.unwrap();
    assert_eq!(
        blocks,
        1 + 1 + 1 + 5,
        "root, small value, file root, five chunks"
    );
}

/// A memory store whose `put_blocks` (how a flush stores nodes) fails, or never finishes,
/// from a chosen call on: the failures a flush must survive without losing anything.
#[derive(Debug, Default)]
struct Tripping {
    inner: MemoryStore,
    calls: std::sync::atomic::AtomicUsize,
    /// `(call, stall)`: from that call on, fail (or stall, when `stall`); `None`: never.
    trip: std::sync::Mutex<Option<(usize, bool)>>,
}

#[async_trait::async_trait]
impl BlockStore for Tripping {
    async fn put_keyed(&self, cid: &hamt::Cid, data: hamt::Bytes) -> hamt::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &hamt::Cid) -> hamt::Result<hamt::Bytes> {
        self.inner.get(cid).await
    }

    async fn put_blocks(&self, blocks: Vec<hamt::Block>) -> hamt::Result<()> {
        let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let trip = *self.trip.lock().unwrap();
        match trip {
            Some((at, true)) if call >= at => futures::future::pending().await,
            Some((at, false)) if call >= at => Err(Error::backend(
                "tripping",
                std::io::Error::other("the store is down"),
            )),
            _ => self.inner.put_blocks(blocks).await,
        }
    }
}

/// A flush that fails on its fifth batch of nodes, or is dropped while that batch is being
/// stored, leaves a tree that reads every key, and flushing again gives the root a flush
/// without trouble gives.
#[tokio::test]
async fn a_flush_that_fails_or_is_dropped_midway_can_be_retried() {
    use futures::FutureExt as _;
    // Enough changes that the flush encodes on threads, in many windows.
    let pairs = pairs(60_000);
    let expected = build(&store(), &pairs, 4).await;
    for stall in [false, true] {
        let tripping = Arc::new(Tripping::default());
        let s: Arc<dyn BlockStore> = tripping.clone();
        let mut map = Hamt::new(s.clone());
        for (k, v) in &pairs {
            map.insert(k, v.clone()).await.unwrap();
        }
        *tripping.trip.lock().unwrap() = Some((4, stall));
        if stall {
            assert!(
                map.flush().now_or_never().is_none(),
                "the flush waits forever"
            );
        } else {
            assert!(map.flush().await.is_err());
        }
        assert!(tripping.calls.load(std::sync::atomic::Ordering::SeqCst) >= 5);
        // Reads go to the tree and the store, not to nodes the failed flush cached.
        map.clear_cache();
        for (k, v) in &pairs {
            assert_eq!(map.get(k).await.unwrap().as_deref(), Some(&v[..]), "{k}");
        }
        *tripping.trip.lock().unwrap() = None;
        let root = map.flush().await.unwrap();
        assert_eq!(root, expected, "stall: {stall}");
        let reader = HamtReader::open(s, root).await.unwrap();
        for (k, v) in &pairs {
            assert_eq!(reader.get(k).await.unwrap().as_deref(), Some(&v[..]), "{k}");
        }
    }
}

/// A memory store that records which thread each call came from.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryStore,
    threads: std::sync::Mutex<BTreeSet<String>>,
}

impl Recording {
    fn record(&self) {
        let id = format!("{:?}", std::thread::current().id());
        self.threads.lock().unwrap().insert(id);
    }
}

#[async_trait::async_trait]
impl BlockStore for Recording {
    async fn put_keyed(&self, cid: &hamt::Cid, data: hamt::Bytes) -> hamt::Result<()> {
        self.record();
        self.inner.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &hamt::Cid) -> hamt::Result<hamt::Bytes> {
        self.record();
        self.inner.get(cid).await
    }

    async fn put_blocks(&self, blocks: Vec<hamt::Block>) -> hamt::Result<()> {
        self.record();
        self.inner.put_blocks(blocks).await
    }
}

/// Inserts `pairs` into a fresh tree over a recording store and flushes once; returns the
/// root, the thread that polled the work, and the threads the store was called from.
async fn flush_once(pairs: &[(String, Vec<u8>)]) -> (hamt::Cid, String, BTreeSet<String>) {
    let polling = format!("{:?}", std::thread::current().id());
    let recording = Arc::new(Recording::default());
    let mut map = Hamt::new(recording.clone());
    for (k, v) in pairs {
        map.insert(k, v.clone()).await.unwrap();
    }
    let root = map.flush().await.unwrap();
    let threads = recording.threads.lock().unwrap().clone();
    (root, polling, threads)
}

/// A flush large enough to encode on threads blocks the thread that polls it while they
/// work (see the `flush` module). That is safe on any executor because the encoding threads
/// need nothing from it: the flush completes on single-threaded executors, gives the root a
/// flush on one thread gives, and every store call stays on the polling thread.
#[test]
fn a_parallel_flush_needs_nothing_from_the_executor() {
    // Past the 50 000 changes from which a flush encodes on threads.
    let pairs = pairs(60_000);
    // Two flushes of 30 000 changes each encode on the polling thread alone.
    let sequential = runtime().block_on(async {
        let mut map = Hamt::new(store());
        for (i, (k, v)) in pairs.iter().enumerate() {
            map.insert(k, v.clone()).await.unwrap();
            if i == 29_999 {
                map.flush().await.unwrap();
            }
        }
        map.flush().await.unwrap()
    });
    let one_worker = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let runs = [
        ("current-thread", runtime().block_on(flush_once(&pairs))),
        ("one worker", {
            let pairs = pairs.clone();
            one_worker
                .block_on(one_worker.spawn(async move { flush_once(&pairs).await }))
                .unwrap()
        }),
        (
            "futures block_on",
            futures::executor::block_on(flush_once(&pairs)),
        ),
    ];
    for (executor, (root, polling, threads)) in runs {
        assert_eq!(root, sequential, "{executor}");
        assert_eq!(threads, BTreeSet::from([polling]), "{executor}");
    }
}
