//! The read-only gateway store against this project's own trustless gateway (`hamt serve`,
//! started in the process), directly and through a proxy that counts requests and lies:
//! every value read back right, subtrees in one CAR, a lying gateway `Corrupt` and set
//! back, a gateway without CARs read block by block, a cut-off CAR an error, never part of
//! a tree.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::{BlockStore, Cid, Error, Hamt, HamtReader, MemoryStore};
use hamt_store_kubo::GatewayStore;
use hamt_test_support::proxy::{Fault, Protocol, Proxy, Rule};

/// A HAMT of 1500 keys and a file value, in memory, served by `hamt serve`.
struct Served {
    memory: MemoryStore,
    root: Cid,
    want: BTreeMap<String, Bytes>,
    server: hamt_gateway::LocalServer,
}

async fn served() -> Served {
    let memory = MemoryStore::new();
    let store: Arc<dyn BlockStore> = Arc::new(memory.clone());
    let mut map = Hamt::new(store.clone());
    let mut want = BTreeMap::new();
    for i in 0..1500 {
        let (k, v) = (format!("t2m/c/{}/{}", i / 50, i % 50), format!("chunk {i}"));
        map.insert(&k, v.clone().into_bytes()).await.unwrap();
        want.insert(k, Bytes::from(v));
    }
    let big: Vec<u8> = (0..20_000u32)
        .map(|i| u8::try_from(i % 253).unwrap())
        .collect();
    let file = hamt::test_suite::unixfs_file(store.as_ref(), &big, 4096).await;
    map.insert_pointer("t2m/zarr.json", file).await.unwrap();
    want.insert("t2m/zarr.json".into(), big.into());
    let root = map.flush().await.unwrap();
    let server = hamt_gateway::Gateway::new(store)
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    Served {
        memory,
        root,
        want,
        server,
    }
}

fn store_at(url: &str) -> Arc<dyn BlockStore> {
    let url = url.replacen("http://", "ipfs+http://", 1);
    Arc::new(GatewayStore::from_url(&url).unwrap())
}

fn count(proxy: &Proxy, text: &str) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|r| r.path.contains(text))
        .count()
}

#[tokio::test]
async fn a_tree_reads_back_whole_with_subtrees_in_one_car() {
    let s = served().await;
    let proxy = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    let store = store_at(&proxy.url());
    assert!(store.capabilities().subtree && !store.capabilities().write);
    let reader = HamtReader::open(store.clone(), s.root).await.unwrap();

    // The whole tree from one CAR: every key and value, no block asked for alone.
    let before = proxy.stats().requests;
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(got, s.want);
    assert_eq!(proxy.stats().requests - before, 1);
    assert_eq!(count(&proxy, "format=car"), 1);

    // Point reads, batched, through a store that has no cache yet: every value right.
    let fresh = HamtReader::open(store_at(&proxy.url()), s.root)
        .await
        .unwrap();
    let keys: Vec<&str> = s.want.keys().map(String::as_str).collect();
    let values = fresh.get_many(&keys).await.unwrap();
    for (key, value) in keys.iter().zip(values) {
        assert_eq!(value.as_ref(), s.want.get(*key), "{key}");
    }

    // A cold single key: one CAR of its path, then nothing more.
    let cold = HamtReader::open(store_at(&proxy.url()), s.root)
        .await
        .unwrap();
    let before = proxy.stats().requests;
    assert_eq!(
        cold.get("t2m/c/7/3").await.unwrap().as_deref(),
        Some(&b"chunk 353"[..])
    );
    assert_eq!(proxy.stats().requests - before, 1, "{:?}", proxy.requests());
    assert_eq!(cold.get("t2m/c/99/0").await.unwrap(), None);

    // A path into a value: refused by the gateway (400), no value, and the gateway still
    // serves CARs.
    let other = store_at(&proxy.url());
    let into = HamtReader::open(other.clone(), s.root).await.unwrap();
    assert_eq!(into.get("t2m/c/7/3/deeper").await.unwrap(), None);
    let first = other
        .subtree_fetch()
        .unwrap()
        .subtree(s.root, false)
        .next()
        .await
        .unwrap();
    assert_eq!(*first.unwrap().cid(), s.root);

    // A CAR export through the store holds exactly the tree's blocks, as one walk.
    let mut car = Vec::new();
    let n = hamt::car::export_car(&store, s.root, &mut car)
        .await
        .unwrap();
    assert_eq!(n, s.memory.len() as u64);
    let mut back = hamt::car::CarReader::new(&car[..]).await.unwrap();
    while let Some((cid, data)) = back.next_block().await.unwrap() {
        assert_eq!(s.memory.get(&cid).await.unwrap(), data);
    }

    // Writes are refused, and a block no gateway has is `NotFound`.
    assert!(matches!(
        store.put(hamt::Codec::Raw, Bytes::from_static(b"x")).await,
        Err(Error::NotSupported { .. })
    ));
    let absent = hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, b"absent");
    assert!(matches!(
        store.get(&absent).await,
        Err(Error::NotFound { cid }) if cid == absent
    ));
}

#[tokio::test]
async fn a_lying_gateway_is_corrupt_and_set_back() {
    let s = served().await;
    let liar = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    liar.set_faults([Rule::new(Fault::Flip { at: 3 })]);
    let honest = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    let value = hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, b"chunk 10");

    // Alone, the liar's bytes are never data.
    let alone = store_at(&liar.url());
    assert!(matches!(
        alone.get(&value).await,
        Err(Error::Corrupt { cid }) if cid == value
    ));
    // Its CARs are refused too: the first flipped block ends the stream in an error.
    let reader = HamtReader::open(store_at(&honest.url()), s.root)
        .await
        .unwrap();
    let alone_reader = HamtReader::open_with_config(
        alone.clone(),
        s.root,
        hamt::Config::new().cache_bytes(1 << 20),
    )
    .await;
    assert!(alone_reader.is_err(), "the root came from the liar");
    drop(reader);

    // First in line, the liar is asked once, then set back: the honest gateway answers,
    // and is asked first from then on.
    let url = format!(
        "{}?gateway={}",
        liar.url().replacen("http://", "ipfs+http://", 1),
        honest.url()
    );
    let both = GatewayStore::from_url(&url).unwrap();
    assert_eq!(
        both.get(&value).await.unwrap(),
        Bytes::from_static(b"chunk 10")
    );
    assert!(both.is_set_back(0) && !both.is_set_back(1));
    let asked = liar.stats().requests;
    for i in 0..20 {
        let v = format!("chunk {i}");
        let cid = hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, v.as_bytes());
        assert_eq!(both.get(&cid).await.unwrap(), Bytes::from(v));
    }
    assert_eq!(
        liar.stats().requests,
        asked,
        "a set-back gateway is asked last"
    );
    // Saying it lacks a block, as every gateway does for this one, does not forgive a lie.
    let absent = hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, b"absent");
    assert!(matches!(
        both.get(&absent).await,
        Err(Error::NotFound { .. })
    ));
    assert!(liar.stats().requests > asked);
    assert!(both.is_set_back(0));
    let got: BTreeMap<String, Bytes> = HamtReader::open(Arc::new(both), s.root)
        .await
        .unwrap()
        .iter()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got, s.want);
}

#[tokio::test]
async fn a_gateway_without_cars_is_read_block_by_block() {
    let s = served().await;
    let proxy = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    // What a gateway that cannot serve CARs answers (the JavaScript node's cannot).
    proxy.set_faults([Rule::new(Fault::Status(501)).path_contains("format=car")]);
    let store = store_at(&proxy.url());
    let fetch = store.subtree_fetch().unwrap();
    let first = fetch.subtree(s.root, false).next().await.unwrap();
    assert!(
        matches!(first, Err(Error::NotSupported { .. })),
        "{first:?}"
    );
    let reader = HamtReader::open(store.clone(), s.root).await.unwrap();
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(got, s.want);
    // Asked once, then remembered: the walk below asks for blocks only.
    assert_eq!(count(&proxy, "format=car"), 1);
    let before = count(&proxy, "format=raw");
    let mut car = Vec::new();
    let n = hamt::car::export_car(&store, s.root, &mut car)
        .await
        .unwrap();
    assert_eq!(n, s.memory.len() as u64);
    assert_eq!(count(&proxy, "format=car"), 1);
    assert!((count(&proxy, "format=raw") - before) as u64 >= n);
}

#[tokio::test]
async fn a_car_cut_short_is_an_error_not_part_of_a_tree() {
    let s = served().await;
    let proxy = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    // Framed as complete, the CAR ends after a few blocks.
    proxy.set_faults([Rule::new(Fault::Truncate { after: 40_000 }).path_contains("format=car")]);
    let store = store_at(&proxy.url());
    let fetch = store.subtree_fetch().unwrap();
    let blocks: Vec<hamt::Result<hamt::Block>> = fetch.subtree(s.root, false).collect().await;
    assert!(blocks.len() > 1, "some blocks came before the cut");
    assert!(
        matches!(
            blocks.last(),
            Some(Err(Error::Decode { .. } | Error::Backend { .. }))
        ),
        "{:?}",
        blocks.last().map(|b| b.as_ref().err())
    );
    let mut car = Vec::new();
    assert!(
        hamt::car::export_car(&store, s.root, &mut car)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn three_failures_in_a_row_set_a_gateway_back() {
    let s = served().await;
    let failing = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    failing.set_faults([Rule::new(Fault::Status(502))]);
    let honest = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    let url = format!(
        "{}?gateway={}",
        failing.url().replacen("http://", "ipfs+http://", 1),
        honest.url()
    );
    let store = GatewayStore::from_url(&url).unwrap();
    let value = |i: usize| {
        let v = format!("chunk {i}");
        (
            hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, v.as_bytes()),
            Bytes::from(v),
        )
    };
    for i in 0..3 {
        assert!(!store.is_set_back(0), "set back after {i} failures");
        let (cid, v) = value(i);
        assert_eq!(store.get(&cid).await.unwrap(), v);
        assert_eq!(failing.stats().requests, i as u64 + 1);
    }
    assert!(store.is_set_back(0));
    for i in 3..10 {
        let (cid, v) = value(i);
        assert_eq!(store.get(&cid).await.unwrap(), v);
    }
    assert_eq!(
        failing.stats().requests,
        3,
        "a set-back gateway is asked last"
    );
}

#[tokio::test]
async fn a_slow_gateway_is_raced_on_the_next_and_the_first_true_answer_wins() {
    let s = served().await;
    let slow = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    // Far slower than any p90: without a race each read would take this long.
    slow.set_faults([Rule::new(Fault::Stall(std::time::Duration::from_secs(20)))]);
    let fast = Proxy::in_front_of(s.server.url(), Protocol::Http)
        .await
        .unwrap();
    let url = format!(
        "{}?gateway={}",
        slow.url().replacen("http://", "ipfs+http://", 1),
        fast.url()
    );
    let store = GatewayStore::from_url(&url).unwrap();
    let started = std::time::Instant::now();
    for i in 0..3 {
        let v = format!("chunk {i}");
        let cid = hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, v.as_bytes());
        assert_eq!(store.get(&cid).await.unwrap(), Bytes::from(v));
    }
    // Each read went to the slow gateway first, then was raced on the fast one.
    assert_eq!(slow.stats().requests, 3);
    assert_eq!(fast.stats().requests, 3);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // A stall is no failure: the slow gateway keeps its standing.
    assert!(!store.is_set_back(0));
}
