//! Bulk and batched reads: `get_many` walks the levels of many lookups together, `path`
//! names a key's nodes, handles on one store can share its node cache, and a store that fetches
//! whole subtrees serves `iter` and `Walk` in one stream.
//!
//! Round trips are counted in tokio's paused time: every fetch of [`Slow`] takes one
//! virtual round trip, so the virtual time a read takes is the number of round trips it
//! made one after another, exactly, whatever the machine.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::{
    Block, BlockStore, BlockStream, Capabilities, Cid, Codec, Config, Error, Hamt, HamtReader,
    HashAlg, MemoryStore, SubtreeFetch,
};

/// One virtual round trip.
const RTT: Duration = Duration::from_millis(100);

/// A store whose every fetch takes [`RTT`] of virtual time, with many fetches in flight,
/// counting them.
#[derive(Debug)]
struct Slow {
    inner: MemoryStore,
    gets: AtomicU64,
}

impl Slow {
    fn new(inner: MemoryStore) -> Arc<Self> {
        Arc::new(Self {
            inner,
            gets: AtomicU64::new(0),
        })
    }

    fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl BlockStore for Slow {
    fn concurrency(&self) -> usize {
        1024
    }

    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(RTT).await;
        self.inner.get(cid).await
    }
}

fn pairs(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("temp/c/{}/{}", i / 100, i % 100),
                format!("value {i}").into_bytes(),
            )
        })
        .collect()
}

async fn build(store: Arc<dyn BlockStore>, pairs: &[(String, Vec<u8>)]) -> Cid {
    let mut map = Hamt::new(store);
    for (k, v) in pairs {
        map.insert(k, v.clone()).await.unwrap();
    }
    map.flush().await.unwrap()
}

/// Round trips (virtual time in units of [`RTT`]) that `f` takes.
async fn round_trips<T>(f: impl Future<Output = T>) -> (T, u64) {
    let start = tokio::time::Instant::now();
    let out = f.await;
    let elapsed = start.elapsed();
    let trips = elapsed.as_millis() / RTT.as_millis();
    (out, u64::try_from(trips).unwrap())
}

#[tokio::test(start_paused = true)]
async fn get_many_costs_a_round_trip_per_level_not_per_key() {
    let memory = MemoryStore::new();
    let data = pairs(5000);
    let root = build(Arc::new(memory.clone()), &data).await;
    let depth = HamtReader::open(Arc::new(memory.clone()), root)
        .await
        .unwrap()
        .stats()
        .await
        .unwrap()
        .depth;
    assert!(depth >= 2, "a tree this size has levels below the root");

    let slow = Slow::new(memory);
    let store: Arc<dyn BlockStore> = slow.clone();
    let config = Config::new().cache_bytes(64 << 20);
    let (reader, open_trips) = round_trips(HamtReader::open_with_config(store, root, config)).await;
    let reader = reader.unwrap();
    assert_eq!(open_trips, 1);

    // 200 keys spread over the tree, two missing, one asked twice.
    let mut keys: Vec<String> = data.iter().step_by(25).map(|(k, _)| k.clone()).collect();
    keys.push("not/there".into());
    keys.push("temp/c/999/999".into());
    keys.push(keys[3].clone());
    let (values, trips) = round_trips(reader.get_many(&keys)).await;
    let values = values.unwrap();
    let expected: BTreeMap<&str, &[u8]> = data.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
    for (key, value) in keys.iter().zip(&values) {
        assert_eq!(
            value.as_deref(),
            expected.get(key.as_str()).copied(),
            "{key}"
        );
    }
    // The levels below the root on the longest path, then the values: one round trip each.
    let plain = HamtReader::open(Arc::new(slow.inner.clone()), root)
        .await
        .unwrap();
    let mut levels = 0;
    for key in &keys {
        if let Some((nodes, _)) = plain.path(key).await.unwrap() {
            levels = levels.max(nodes.len());
        }
    }
    assert!(levels >= 2);
    assert_eq!(
        trips,
        u64::try_from(levels).unwrap(),
        "levels below the root plus the values"
    );

    // Lookups one by one cost a round trip per level per key.
    let cold =
        HamtReader::open_with_config(slow.clone(), root, Config::new().cache_bytes(64 << 20))
            .await
            .unwrap();
    let ((), one_by_one) = round_trips(async {
        for key in &keys[..20] {
            cold.get(key).await.unwrap();
        }
    })
    .await;
    assert!(
        one_by_one >= 40 && one_by_one > 5 * trips,
        "{one_by_one} round trips"
    );

    // Warm, a batch costs only the values.
    let before = slow.gets();
    let (_, warm) = round_trips(reader.get_many(&keys)).await;
    assert_eq!(warm, 1);
    // Each distinct value once: 200 keys found, the repeated one fetched once.
    assert_eq!(slow.gets() - before, 200);

    let pointers = reader.get_pointers(&keys).await.unwrap();
    for (key, pointer) in keys.iter().zip(pointers) {
        assert_eq!(pointer, reader.get_pointer(key).await.unwrap(), "{key}");
    }
    assert!(reader.get_many::<&str>(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn get_many_reads_inline_values_files_and_unflushed_changes() {
    let memory = MemoryStore::new();
    let store: Arc<dyn BlockStore> = Arc::new(memory);
    let mut map = Hamt::with_config(store.clone(), Config::new().inline_values(32)).unwrap();
    let data = pairs(600);
    for (k, v) in &data {
        map.insert(k, v.clone()).await.unwrap();
    }
    let big: Vec<u8> = (0..5000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let file = hamt::test_suite::unixfs_file(store.as_ref(), &big, 1024).await;
    map.insert_pointer("file", file).await.unwrap();
    map.insert("stored", vec![7u8; 100]).await.unwrap();
    // Unflushed: the batch reads through the dirty nodes.
    let keys = ["file", "stored", "temp/c/3/4", "nope"];
    let got = map.get_many(&keys).await.unwrap();
    assert_eq!(got[0].as_deref(), Some(&big[..]));
    assert_eq!(got[1].as_deref(), Some(&[7u8; 100][..]));
    assert_eq!(got[2].as_deref(), Some(&b"value 304"[..]));
    assert_eq!(got[3], None);
    let root = map.flush().await.unwrap();
    let reader = HamtReader::open(store, root).await.unwrap();
    assert_eq!(reader.get_many(&keys).await.unwrap(), got);
}

#[tokio::test]
async fn path_names_the_nodes_from_the_root_to_the_key() {
    let memory = MemoryStore::new();
    let store: Arc<dyn BlockStore> = Arc::new(memory.clone());
    let data = pairs(3000);
    let root = build(store.clone(), &data).await;
    let reader = HamtReader::open(store.clone(), root).await.unwrap();
    for (key, value) in data.iter().step_by(97) {
        let (nodes, value_cid) = reader.path(key).await.unwrap().unwrap();
        assert_eq!(nodes[0], root);
        assert_eq!(Some(value_cid), reader.get_pointer(key).await.unwrap());
        assert_eq!(store.get(&value_cid).await.unwrap().as_ref(), &value[..]);
        // Each node links to the next, and the last holds the key: a client holding only
        // these blocks can check the value against the root.
        let only: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
        for cid in &nodes {
            only.put_keyed(cid, memory.get(cid).await.unwrap())
                .await
                .unwrap();
        }
        let checked = HamtReader::open(only, root).await.unwrap();
        assert_eq!(checked.get_pointer(key).await.unwrap(), Some(value_cid));
        for pair in nodes.windows(2) {
            let links = hamt::dag::links(&pair[0], &memory.get(&pair[0]).await.unwrap()).unwrap();
            assert!(links.contains(&pair[1]));
        }
    }
    assert_eq!(reader.path("absent").await.unwrap(), None);

    let mut map = Hamt::open(store, root).await.unwrap();
    map.insert("x", b"y".to_vec()).await.unwrap();
    let dirty = map.get("x").await.unwrap();
    assert_eq!(dirty.as_deref(), Some(&b"y"[..]));
}

#[tokio::test]
async fn handles_on_one_store_share_its_node_cache() {
    let memory = MemoryStore::new();
    let data = pairs(2000);
    let root = build(Arc::new(memory.clone()), &data).await;
    let slow = Arc::new(Counting::new(memory));
    let store: Arc<dyn BlockStore> = slow.clone();

    // The default, and what `shared_cache` sets back after `cache_bytes`.
    assert_eq!(
        Config::new(),
        Config::new().cache_bytes(1 << 20).shared_cache()
    );
    let shared = Config::new();
    let first = HamtReader::open_with_config(store.clone(), root, shared)
        .await
        .unwrap();
    first.get_many(&keys_of(&data)).await.unwrap();
    let after_first = slow.gets();
    assert!(first.cache_bytes() > 0);

    // A second reader, opened afresh, finds every node in the store's cache: only values.
    let second = HamtReader::open_with_config(store.clone(), root, shared)
        .await
        .unwrap();
    let before = slow.gets();
    for (k, v) in data.iter().take(50) {
        assert_eq!(second.get(k).await.unwrap().as_deref(), Some(&v[..]));
    }
    assert_eq!(
        slow.gets() - before,
        50,
        "the nodes came from the shared cache"
    );
    assert_eq!(second.cache_bytes(), first.cache_bytes());

    // A reader with a cache of its own starts cold.
    for config in [
        Config::new().cache_bytes(8 << 20),
        Config::new().cache_bytes(Config::SHARED_CACHE_BYTES),
    ] {
        let own = HamtReader::open_with_config(store.clone(), root, config)
            .await
            .unwrap();
        let before = slow.gets();
        own.get(&data[0].0).await.unwrap();
        assert!(
            slow.gets() - before >= 2,
            "a private cache fetches its nodes"
        );
        assert!(own.cache_bytes() > 0);
    }
    assert!(after_first > 0);

    // Another store (another `Arc`) has a cache of its own.
    let other: Arc<dyn BlockStore> = Arc::new(Counting::new(MemoryStore::new()));
    let other_root = build(other.clone(), &data[..10]).await;
    let reader = HamtReader::open_with_config(other, other_root, shared)
        .await
        .unwrap();
    reader.clear_cache();
    assert!(
        second.cache_bytes() > 0,
        "clearing one store's cache leaves another's"
    );
    second.clear_cache();
    assert_eq!(first.cache_bytes(), 0);
}

fn keys_of(data: &[(String, Vec<u8>)]) -> Vec<&str> {
    data.iter().map(|(k, _)| k.as_str()).collect()
}

/// Counts fetches.
#[derive(Debug)]
struct Counting {
    inner: MemoryStore,
    gets: AtomicU64,
}

impl Counting {
    fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            gets: AtomicU64::new(0),
        }
    }

    fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl BlockStore for Counting {
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(cid).await
    }
}

#[tokio::test(start_paused = true)]
async fn diff_fetches_a_batch_per_level() {
    let memory = MemoryStore::new();
    let data = pairs(5000);
    let old = build(Arc::new(memory.clone()), &data).await;
    let mut map = Hamt::open(Arc::new(memory.clone()), old).await.unwrap();
    let mut expected = Vec::new();
    for (k, _) in data.iter().step_by(50) {
        map.insert(k, b"changed".to_vec()).await.unwrap();
        expected.push(k.clone());
    }
    let new = map.flush().await.unwrap();
    let slow = Slow::new(memory);
    let (changes, trips) =
        round_trips(hamt::diff(slow.clone(), old, new).try_collect::<Vec<_>>()).await;
    let mut keys: Vec<String> = changes
        .unwrap()
        .iter()
        .map(|c| c.key().to_owned())
        .collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    // 100 changed keys in a tree of a few levels: a handful of batches, not a round trip
    // per changed node.
    assert!(trips <= 4, "{trips} round trips");
}

/// A store that serves subtrees as one stream, as a trustless gateway's CAR does: its own
/// depth-first walk of the blocks it holds, the order [`hamt::dag::links`] gives.
#[derive(Debug)]
struct Streaming {
    inner: MemoryStore,
    gets: AtomicU64,
    streams: AtomicU64,
    /// Serve nothing: every stream fails at once, as a gateway without CARs.
    refuse: bool,
}

impl Streaming {
    fn new(inner: MemoryStore, refuse: bool) -> Arc<Self> {
        Arc::new(Self {
            inner,
            gets: AtomicU64::new(0),
            streams: AtomicU64::new(0),
            refuse,
        })
    }
}

#[async_trait]
impl BlockStore for Streaming {
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(cid).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write: true,
            subtree: true,
            ..Capabilities::default()
        }
    }

    fn subtree_fetch(&self) -> Option<&dyn SubtreeFetch> {
        Some(self)
    }
}

impl SubtreeFetch for Streaming {
    fn subtree(&self, root: Cid, dups: bool) -> BlockStream<'_> {
        self.streams.fetch_add(1, Ordering::SeqCst);
        if self.refuse {
            return futures::stream::once(async {
                Err(Error::NotSupported {
                    store: "test",
                    operation: "subtrees",
                })
            })
            .boxed();
        }
        let state = (vec![root], HashSet::new());
        futures::stream::try_unfold(state, move |(mut stack, mut seen)| async move {
            while let Some(cid) = stack.pop() {
                if !dups && !seen.insert(cid) {
                    continue;
                }
                let data = self.inner.get(&cid).await?;
                let mut links = hamt::dag::links(&cid, &data)?;
                links.reverse();
                stack.extend(links);
                return Ok(Some((Block::verified(cid, data)?, (stack, seen))));
            }
            Ok(None)
        })
        .boxed()
    }
}

#[tokio::test]
async fn iter_over_a_subtree_store_is_one_stream_with_every_value() {
    let memory = MemoryStore::new();
    let data = pairs(3000);
    let store: Arc<dyn BlockStore> = Arc::new(memory.clone());
    let mut map = Hamt::new(store.clone());
    for (k, v) in &data {
        map.insert(k, v.clone()).await.unwrap();
    }
    // Shared values (a value met twice: the stream sends it twice), and a file.
    map.insert("dup/a", b"same".to_vec()).await.unwrap();
    map.insert("dup/b", b"same".to_vec()).await.unwrap();
    let big: Vec<u8> = (0..9000u32)
        .map(|i| u8::try_from(i % 241).unwrap())
        .collect();
    let file = hamt::test_suite::unixfs_file(store.as_ref(), &big, 1000).await;
    map.insert_pointer("file", file).await.unwrap();
    let root = map.flush().await.unwrap();

    let streaming = Streaming::new(memory.clone(), false);
    let reader =
        HamtReader::open_with_config(streaming.clone(), root, Config::new().cache_bytes(64 << 20))
            .await
            .unwrap();
    let gets = streaming.gets.load(Ordering::SeqCst);
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(streaming.streams.load(Ordering::SeqCst), 1);
    assert_eq!(
        streaming.gets.load(Ordering::SeqCst),
        gets,
        "no block fetched alone"
    );
    let mut want: BTreeMap<String, Bytes> = data.into_iter().map(|(k, v)| (k, v.into())).collect();
    want.insert("dup/a".into(), Bytes::from_static(b"same"));
    want.insert("dup/b".into(), Bytes::from_static(b"same"));
    want.insert("file".into(), big.into());
    assert_eq!(got, want);
    // The stream fed the node cache: lookups now cost only values.
    let before = streaming.gets.load(Ordering::SeqCst);
    reader.get("temp/c/1/2").await.unwrap();
    assert_eq!(streaming.gets.load(Ordering::SeqCst) - before, 1);

    // A store that turns out not to serve subtrees: the same entries, block by block.
    let refusing = Streaming::new(memory, true);
    let reader = HamtReader::open(refusing.clone(), root).await.unwrap();
    let again: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(again, want);
    assert!(refusing.gets.load(Ordering::SeqCst) > 100);
}

#[tokio::test]
async fn a_walk_over_a_subtree_store_streams_each_root_once() {
    let memory = MemoryStore::new();
    let store: Arc<dyn BlockStore> = Arc::new(memory.clone());
    let root = build(store.clone(), &pairs(2000)).await;
    let other = build(store.clone(), &pairs(300)).await;
    let streaming = Streaming::new(memory.clone(), false);
    let mut walk = hamt::dag::Walk::new(streaming.as_ref(), [root, other, root]);
    let mut seen = Vec::new();
    while let Some(batch) = walk.next_batch().await.unwrap() {
        seen.extend(batch.into_iter().map(|(c, _)| c));
    }
    let unique: HashSet<Cid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a block handed out twice");
    assert_eq!(seen[0], root);
    assert_eq!(streaming.streams.load(Ordering::SeqCst), 2);
    assert_eq!(streaming.gets.load(Ordering::SeqCst), 0);
    // The same blocks a level walk finds.
    let mut level = hamt::dag::Walk::new(store.as_ref(), [root, other]);
    let mut expected = HashSet::new();
    while let Some(batch) = level.next_batch().await.unwrap() {
        expected.extend(batch.into_iter().map(|(c, _)| c));
    }
    assert_eq!(unique, expected);

    // A CAR export through it is a whole archive.
    let mut car = Vec::new();
    let streaming_dyn: Arc<dyn BlockStore> = streaming.clone();
    let n = hamt::car::export_car(&streaming_dyn, root, &mut car)
        .await
        .unwrap();
    let mut reader = hamt::car::CarReader::new(&car[..]).await.unwrap();
    let mut count = 0;
    while reader.next_block().await.unwrap().is_some() {
        count += 1;
    }
    assert_eq!(count, n);

    // A missing block is named, through the fallback too.
    let refusing = Streaming::new(memory, true);
    let absent = HashAlg::Blake3.cid(Codec::DagCbor, b"\xa0");
    assert_eq!(
        hamt::dag::first_missing(refusing.as_ref(), [absent])
            .await
            .unwrap(),
        Some(absent)
    );
}

#[tokio::test]
async fn the_conformance_check_of_subtree_streams_passes_for_a_true_stream() {
    let streaming: Arc<dyn BlockStore> = Streaming::new(MemoryStore::new(), false);
    hamt::test_suite::capabilities_agree(&hamt::test_suite::Subject::new(streaming)).await;
}

/// A stream that leaves a block out: the conformance check must catch it.
#[derive(Debug)]
struct Skipping(Arc<Streaming>);

#[async_trait]
impl BlockStore for Skipping {
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.0.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        self.0.get(cid).await
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    fn subtree_fetch(&self) -> Option<&dyn SubtreeFetch> {
        Some(self)
    }
}

impl SubtreeFetch for Skipping {
    fn subtree(&self, root: Cid, dups: bool) -> BlockStream<'_> {
        self.0.subtree(root, dups).skip(1).boxed()
    }
}

#[tokio::test]
#[should_panic(expected = "subtree stream order")]
async fn the_conformance_check_of_subtree_streams_catches_a_missing_block() {
    let skipping: Arc<dyn BlockStore> =
        Arc::new(Skipping(Streaming::new(MemoryStore::new(), false)));
    hamt::test_suite::capabilities_agree(&hamt::test_suite::Subject::new(skipping)).await;
}
