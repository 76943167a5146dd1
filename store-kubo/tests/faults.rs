//! Faults between the store and a real IPFS node. The fault-injecting proxy sits in front of
//! the node's RPC API and gateway (the node `cargo xtask test` starts, `HAMT_TEST_KUBO_RPC`
//! / `HAMT_TEST_KUBO_GATEWAY`): under each fault a read ends in the right bytes or an error,
//! never wrong bytes; every request is bounded by the store's timeout and retries; a write
//! completes through retries or fails, and never reports a CID that does not name its data.
//! And a node that stops and comes back during a long write: the write completes through
//! retries, and nothing flushed before is lost (`an_unreachable_node_is_a_temporary_error_after_retries`
//! in kubo.rs covers a node that does not come back); that test starts its own IPFS node
//! from the launcher `cargo xtask test` installs (`HAMT_TEST_IPFS_NODE_DIR`).

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt as _;
use hamt::{BlockStore, Cid, Codec, Hamt, HamtReader};
use hamt_store_kubo::{KuboStore, KuboStoreBuilder, ReadFrom};
use hamt_test_support::proxy::{Fault, Protocol, Proxy, Rule};
use url::Url;

struct Node {
    child: Child,
}

impl Node {
    fn start(dir: &Path, repo: &Path, api: u16, gateway: u16) -> Self {
        let child = Command::new("node")
            .arg(dir.join("node.mjs"))
            .arg(repo)
            .arg(api.to_string())
            .arg(gateway.to_string())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_mins(1);
        while std::net::TcpStream::connect(("127.0.0.1", api)).is_err() {
            assert!(Instant::now() < deadline, "IPFS node did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Node { child }
    }

    fn stop(mut self) {
        hamt_test_support::terminate(&mut self.child, Duration::from_secs(10));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restart_during_a_long_write_loses_nothing_flushed() {
    let dir = PathBuf::from(hamt_test_support::required_env("HAMT_TEST_IPFS_NODE_DIR"));
    let repo = tempfile_dir();
    let (api, gateway) = (free_port(), free_port());
    let node = Node::start(&dir, &repo, api, gateway);
    let store: KuboStore = KuboStoreBuilder::new()
        .rpc_url(format!("http://127.0.0.1:{api}").parse().unwrap())
        .read_from(ReadFrom::Rpc)
        .missing_block_timeout(Duration::from_millis(500))
        .retries(10, Duration::from_millis(100))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let dyn_store: Arc<dyn BlockStore> = Arc::new(store.clone());

    // A first version, flushed before any trouble.
    let mut map = Hamt::new(dyn_store.clone());
    map.extend((0..300).map(|i| (format!("before/{i}"), format!("v{i}").into_bytes())))
        .await
        .unwrap();
    let first = map.flush().await.unwrap();

    // A long write while the node goes down and comes back.
    let writer = tokio::spawn(async move {
        for i in 0..600 {
            map.insert(&format!("during/{i}"), format!("w{i}").into_bytes())
                .await?;
        }
        map.flush().await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let node = Node::start(&dir, &repo, api, gateway);
    // The retries (10, backoff from 100 ms doubling: over 100 s in all) outlast the
    // restart (a few seconds), so the write must complete.
    let second = writer.await.unwrap().unwrap_or_else(|e| {
        panic!(
            "the write should have outlasted the restart through retries (temporary: {}): {e}",
            e.is_temporary()
        )
    });
    let reader = HamtReader::open(dyn_store.clone(), second).await.unwrap();
    assert_eq!(reader.len().await.unwrap(), 900);
    assert_eq!(
        reader.get("during/599").await.unwrap().as_deref(),
        Some(&b"w599"[..])
    );
    // What was flushed before the restart is all there.
    let reader = HamtReader::open(dyn_store, first).await.unwrap();
    assert_eq!(reader.len().await.unwrap(), 300);
    for i in 0..300 {
        assert_eq!(
            reader.get(&format!("before/{i}")).await.unwrap().unwrap(),
            format!("v{i}").as_bytes()
        );
    }
    node.stop();
    let _ = std::fs::remove_dir_all(&repo);
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "hamt-faults-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Proxies in front of the test node's RPC API and gateway.
struct Proxied {
    rpc: Proxy,
    gateway: Proxy,
}

async fn proxied() -> Proxied {
    let rpc = hamt_test_support::required_env("HAMT_TEST_KUBO_RPC");
    let gateway = hamt_test_support::required_env("HAMT_TEST_KUBO_GATEWAY");
    Proxied {
        rpc: Proxy::in_front_of(&rpc, Protocol::Http).await.unwrap(),
        gateway: Proxy::in_front_of(&gateway, Protocol::Http).await.unwrap(),
    }
}

/// Requests time out after 1 s and are retried 3 times: a fault test takes seconds.
fn builder(p: &Proxied) -> KuboStoreBuilder {
    KuboStoreBuilder::new()
        .rpc_url(Url::parse(&p.rpc.url()).unwrap())
        .gateways(vec![Url::parse(&p.gateway.url()).unwrap()])
        .timeout(Duration::from_secs(1))
        .retries(3, Duration::from_millis(50))
        .missing_block_timeout(Duration::from_millis(500))
}

fn rpc_store(p: &Proxied) -> KuboStore {
    builder(p).read_from(ReadFrom::Rpc).build().unwrap()
}

fn gateway_store(p: &Proxied) -> KuboStore {
    builder(p).read_from(ReadFrom::Gateway).build().unwrap()
}

fn value(i: usize) -> Vec<u8> {
    format!("kubo fault value {i} ")
        .repeat(1 + i % 7)
        .into_bytes()
}

fn expected(n: usize) -> BTreeMap<String, Bytes> {
    (0..n)
        .map(|i| (format!("k/{i}"), Bytes::from(value(i))))
        .collect()
}

async fn write_map(store: &KuboStore, n: usize, tag: &str) -> hamt::Result<Cid> {
    let mut map = Hamt::new(Arc::new(store.clone()) as Arc<dyn BlockStore>);
    // A tag of the test's own makes its blocks new to the node.
    map.insert("tag", tag.as_bytes().to_vec()).await?;
    map.extend((0..n).map(|i| (format!("k/{i}"), value(i))))
        .await?;
    map.flush().await
}

async fn read_map(store: &KuboStore, root: Cid) -> hamt::Result<BTreeMap<String, Bytes>> {
    let reader = HamtReader::open(Arc::new(store.clone()) as Arc<dyn BlockStore>, root).await?;
    let mut map: BTreeMap<String, Bytes> = reader.iter().try_collect().await?;
    map.remove("tag");
    Ok(map)
}

/// A read under a fault: the right map, or an error, never a wrong map.
fn right_or_error(got: &hamt::Result<BTreeMap<String, Bytes>>, n: usize) -> bool {
    match got {
        Ok(map) => {
            assert!(
                *map == expected(n),
                "a read under a fault returned wrong data"
            );
            true
        }
        Err(_) => false,
    }
}

fn tag(test: &str) -> String {
    format!("{test}-{}-{:?}", std::process::id(), Instant::now())
}

/// Raw blocks, new to the node, and their CIDs.
async fn raw_blocks(store: &KuboStore, n: usize, test: &str) -> Vec<(Cid, Bytes)> {
    let mut out = Vec::new();
    for i in 0..n {
        let data = Bytes::from(format!("{} raw block {i} ", tag(test)).repeat(40));
        out.push((store.put(Codec::Raw, data.clone()).await.unwrap(), data));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_reads_complete_through_503s() {
    let p = proxied().await;
    let store = rpc_store(&p);
    // Three faults, whether they hit one request or several: with 3 retries each request
    // gets through. (A fraction would fail some request on all 4 attempts now and then.)
    p.rpc.set_faults([Rule::new(Fault::Status(503)).first(3)]);
    let root = write_map(&store, 200, &tag("503")).await.unwrap();
    assert_eq!(p.rpc.stats().faults, 3);
    p.rpc.set_faults([Rule::new(Fault::Status(503)).first(3)]);
    let got = read_map(&rpc_store(&p), root).await;
    assert!(
        right_or_error(&got, 200),
        "reads should complete through retries: {got:?}"
    );

    p.rpc.clear_faults();
    let blocks = raw_blocks(&store, 10, "503").await;
    // One request at a time, every other one failing: each read's retry passes.
    p.gateway
        .set_faults([Rule::new(Fault::Status(503)).fraction(0.5)]);
    let gateway = gateway_store(&p);
    for (cid, data) in &blocks {
        assert_eq!(&gateway.get(cid).await.unwrap(), data);
    }
    assert!(p.gateway.stats().faults > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_an_error_in_bounded_time() {
    let p = proxied().await;
    let store = rpc_store(&p);
    let blocks = raw_blocks(&store, 3, "500").await;
    p.rpc.set_faults([Rule::new(Fault::Status(500))]);
    p.gateway.set_faults([Rule::new(Fault::Status(500))]);
    let started = Instant::now();
    assert!(write_map(&store, 10, &tag("500")).await.is_err());
    assert!(store.get(&blocks[0].0).await.is_err());
    assert!(gateway_store(&p).get(&blocks[1].0).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_complete_through_connections_dropped_mid_body() {
    let p = proxied().await;
    let store = rpc_store(&p);
    // Block answers (`block/put`'s JSON, `block/get`'s bytes) cut after 5 bytes.
    p.rpc
        .set_faults([Rule::new(Fault::Drop { after: 5 }).first(3)]);
    let root = write_map(&store, 200, &tag("drop")).await;
    assert_eq!(p.rpc.stats().faults, 3);
    let root = root.unwrap();
    p.rpc
        .set_faults([Rule::new(Fault::Drop { after: 5 }).first(3)]);
    let got = read_map(&rpc_store(&p), root).await;
    assert!(
        right_or_error(&got, 200),
        "reads should complete through retries: {got:?}"
    );

    p.rpc.clear_faults();
    let blocks = raw_blocks(&store, 10, "drop").await;
    // One request at a time, every other one cut: each read's retry passes.
    p.gateway
        .set_faults([Rule::new(Fault::Drop { after: 100 }).fraction(0.5)]);
    let gateway = gateway_store(&p);
    for (cid, data) in &blocks {
        assert_eq!(&gateway.get(cid).await.unwrap(), data);
    }
    assert!(p.gateway.stats().faults > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_are_retried_and_a_dead_node_is_a_timeout_in_bounded_time() {
    let p = proxied().await;
    let store = rpc_store(&p);
    let blocks = raw_blocks(&store, 3, "stall").await;
    p.rpc
        .set_faults([Rule::new(Fault::Stall(Duration::from_secs(3))).first(2)]);
    assert_eq!(&store.get(&blocks[0].0).await.unwrap(), &blocks[0].1);
    assert_eq!(p.rpc.stats().faults, 2);

    p.rpc
        .set_faults([Rule::new(Fault::Stall(Duration::from_secs(30)))]);
    p.gateway
        .set_faults([Rule::new(Fault::Stall(Duration::from_secs(30)))]);
    for store in [rpc_store(&p), gateway_store(&p)] {
        let started = Instant::now();
        let err = store.get(&blocks[1].0).await.unwrap_err();
        assert!(
            matches!(err, hamt::Error::Timeout { store: "kubo" }),
            "{err:?}"
        );
        // 4 attempts of 1 s, and the backoff between them.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_flipped_bodies_are_errors_never_wrong_data() {
    let p = proxied().await;
    let store = rpc_store(&p);
    let root = write_map(&store, 100, &tag("cut")).await.unwrap();
    let blocks = raw_blocks(&store, 3, "cut").await;
    for fault in [
        Fault::Truncate { after: 0 },
        Fault::Truncate { after: 7 },
        Fault::Flip { at: 0 },
        Fault::Flip { at: 33 },
    ] {
        p.rpc
            .set_faults([Rule::new(fault).path_contains("block/get")]);
        let faults = p.rpc.stats().faults;
        right_or_error(&read_map(&rpc_store(&p), root).await, 100);
        assert!(
            p.rpc.stats().faults > faults,
            "{fault:?}: no fault was injected"
        );
        assert!(store.get(&blocks[0].0).await.is_err(), "{fault:?}");
        p.gateway.set_faults([Rule::new(fault)]);
        let err = gateway_store(&p).get(&blocks[1].0).await.unwrap_err();
        assert!(
            matches!(err, hamt::Error::Corrupt { .. }),
            "{fault:?}: {err:?}"
        );
    }
}

/// `block/put` answers with the CID the node gave the block, which is checked against the
/// one computed here: a garbled answer is an error or a retry, never a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_write_answers_never_pass_for_success() {
    let p = proxied().await;
    let store = rpc_store(&p);
    for fault in [
        Fault::Truncate { after: 12 },
        Fault::Flip { at: 15 },
        Fault::Flip { at: 40 },
    ] {
        let faults = p.rpc.stats().faults;
        p.rpc
            .set_faults([Rule::new(fault).path_contains("block/put").first(1)]);
        let data = Bytes::from(format!("{} garbled answer", tag("garbled")));
        match store.put(Codec::Raw, data.clone()).await {
            Ok(cid) => {
                assert_eq!(cid, hamt::HashAlg::Blake3.cid(Codec::Raw, &data));
                p.rpc.clear_faults();
                assert_eq!(store.get(&cid).await.unwrap(), data);
            }
            Err(e) => assert!(!e.is_not_found(), "{fault:?}: {e:?}"),
        }
        assert_eq!(
            p.rpc.stats().faults,
            faults + 1,
            "{fault:?}: no fault was injected"
        );
    }
}

/// Values over the chunker size are added as UnixFS files, whose CID the node computes: an
/// answer garbled on the way must not become the value's CID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_add_answer_never_names_other_data() {
    let p = proxied().await;
    let store = builder(&p)
        .read_from(ReadFrom::Rpc)
        .timeout(Duration::from_secs(10))
        .chunker_size(64 * 1024)
        .build()
        .unwrap();
    for at in [10, 20, 30, 45, 60] {
        let before = p.rpc.stats().faults;
        let data: Vec<u8> = format!("{} large value ", tag("add"))
            .into_bytes()
            .into_iter()
            .cycle()
            .take(200_000)
            .collect();
        p.rpc.set_faults([Rule::new(Fault::Flip { at })
            .path_contains("/add?")
            .first(1)]);
        let result = store.put(Codec::Raw, data.clone().into()).await;
        p.rpc.clear_faults();
        assert_eq!(
            p.rpc.stats().faults,
            before + 1,
            "flip at {at}: no fault was injected"
        );
        if let Ok(cid) = result {
            let reader_store: Arc<dyn BlockStore> = Arc::new(store.clone());
            let mut map = Hamt::new(reader_store.clone());
            map.insert_pointer("big", cid).await.unwrap();
            let root = map.flush().await.unwrap();
            let reader = HamtReader::open(reader_store, root).await.unwrap();
            assert_eq!(
                reader.get("big").await.unwrap().as_deref(),
                Some(&data[..]),
                "flip at {at}: the CID returned does not name the value"
            );
        }
    }
    // Some flips hit the CID in the answer: the store noticed and added again.
    let adds = p
        .rpc
        .requests()
        .iter()
        .filter(|r| r.path.contains("/add?"))
        .count();
    assert!(adds > 5, "no garbled CID was caught ({adds} adds)");
}
