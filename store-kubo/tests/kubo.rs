//! `KuboStore` against a real IPFS node (the JavaScript implementation, started by
//! `cargo xtask test`, which sets `HAMT_TEST_KUBO_RPC` and `HAMT_TEST_KUBO_GATEWAY`), this
//! project's gateway, and py-hamt from PyPI. Without the node these tests fail, never skip.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt as _;
use hamt::test_suite::Subject;
use hamt::{BlockStore, Codec, Error, Hamt, HamtReader, MemoryStore, Pinning as _, parse_cid};
use hamt_store_kubo::{KuboStore, KuboStoreBuilder, ReadFrom};
use url::Url;

fn env(name: &str) -> Url {
    Url::parse(&hamt_test_support::required_env(name)).unwrap()
}

/// The test node's RPC server refuses request bodies over 1 MiB (README, workaround 6).
const MAX_BLOCK: usize = 1_000_000;

fn rpc_store() -> KuboStore {
    KuboStoreBuilder::new()
        .rpc_url(env("HAMT_TEST_KUBO_RPC"))
        .read_from(ReadFrom::Rpc)
        .missing_block_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

/// Serves `store` through this project's gateway on loopback, until the server drops.
async fn serve(store: Arc<dyn BlockStore>) -> (Url, hamt_gateway::LocalServer) {
    let server = hamt_gateway::Gateway::new(store)
        .spawn("127.0.0.1:0")
        .await
        .unwrap();
    (Url::parse(server.url()).unwrap(), server)
}

fn python(args: &[&str]) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyhamt_kubo.py");
    serde_json::from_slice(&hamt_test_support::run_python_peer(&script, args, None)).unwrap()
}

fn rpc_reads() -> Subject {
    Subject::new(Arc::new(rpc_store())).max_block(MAX_BLOCK)
}

async fn gateway_reads_through_this_projects_gateway() -> Subject {
    let (gateway, server) = serve(Arc::new(rpc_store())).await;
    let store = KuboStoreBuilder::new()
        .rpc_url(env("HAMT_TEST_KUBO_RPC"))
        .gateways(vec![gateway])
        .missing_block_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    Subject::new(Arc::new(store))
        .max_block(MAX_BLOCK)
        .keep(server)
}

mod conformance_rpc_reads {
    hamt::conformance_tests!(super::rpc_reads);
}

mod conformance_gateway_reads {
    hamt::conformance_tests!(super::gateway_reads_through_this_projects_gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_blocks_read_from_the_nodes_own_gateway_with_failover() {
    let dead = Url::parse("http://127.0.0.1:9").unwrap();
    let store = KuboStoreBuilder::new()
        .rpc_url(env("HAMT_TEST_KUBO_RPC"))
        .gateways(vec![dead, env("HAMT_TEST_KUBO_GATEWAY")])
        .retries(1, Duration::from_millis(10))
        .build()
        .unwrap();
    let cid = store
        .put(
            Codec::Raw,
            Bytes::from_static(b"raw via the node's gateway"),
        )
        .await
        .unwrap();
    assert_eq!(
        &store.get(&cid).await.unwrap()[..],
        b"raw via the node's gateway"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_flips_a_bit_is_corrupt() {
    use hamt_test_support::proxy::{Fault, Protocol, Proxy, Rule};
    // A loopback proxy in front of the node's gateway that flips one bit of every body.
    let proxy = Proxy::in_front_of(env("HAMT_TEST_KUBO_GATEWAY").as_str(), Protocol::Http)
        .await
        .unwrap();
    proxy.set_faults([Rule::new(Fault::Flip { at: 0 })]);
    let url = Url::parse(&proxy.url()).unwrap();
    let honest = KuboStoreBuilder::new()
        .rpc_url(env("HAMT_TEST_KUBO_RPC"))
        .gateways(vec![env("HAMT_TEST_KUBO_GATEWAY")])
        .build()
        .unwrap();
    let cid = honest
        .put(Codec::Raw, Bytes::from_static(b"the real block"))
        .await
        .unwrap();
    assert_eq!(&honest.get(&cid).await.unwrap()[..], b"the real block");
    // With the node's RPC API at hand the lie costs nothing: the true block comes from it.
    let through_proxy = KuboStoreBuilder::new()
        .rpc_url(env("HAMT_TEST_KUBO_RPC"))
        .gateways(vec![url.clone()])
        .build()
        .unwrap();
    assert_eq!(
        &through_proxy.get(&cid).await.unwrap()[..],
        b"the real block"
    );
    // Without it, the lie is what the reader hears.
    let no_rpc = KuboStoreBuilder::new()
        .rpc_url(Url::parse("http://127.0.0.1:9").unwrap())
        .gateways(vec![url])
        .retries(0, Duration::from_millis(1))
        .build()
        .unwrap();
    assert!(matches!(no_rpc.get(&cid).await, Err(Error::Corrupt { .. })));
}

/// A tree of DAG-CBOR nodes, raw values and one value over the chunker size (a DAG-PB file),
/// written to the node: 300 keys.
async fn write_tree(store: Arc<dyn BlockStore>) -> (hamt::Cid, BTreeMap<String, Bytes>) {
    let mut map = Hamt::new(store);
    let mut want = BTreeMap::new();
    for i in 0..300 {
        let (k, v) = (format!("t2m/c/{}/{}", i / 20, i % 20), format!("chunk {i}"));
        map.insert(&k, v.clone().into_bytes()).await.unwrap();
        want.insert(k, Bytes::from(v));
    }
    let big: Vec<u8> = (0..900_000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    map.insert("t2m/big", big.clone()).await.unwrap();
    want.insert("t2m/big".into(), Bytes::from(big));
    (map.flush().await.unwrap(), want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_reads_on_the_javascript_node_fall_back_to_rpc_for_what_its_gateway_cannot_serve() {
    // The node's gateway answers HTTP 500 for DAG-CBOR blocks (README of the services):
    // by default the store reads from it, and takes those blocks from the RPC API.
    let store = KuboStoreBuilder::new()
        .rpc_url(env("HAMT_TEST_KUBO_RPC"))
        .gateways(vec![env("HAMT_TEST_KUBO_GATEWAY")])
        .chunker_size(256 * 1024)
        .retries(0, Duration::from_millis(1))
        .build()
        .unwrap();
    let (root, want) = write_tree(Arc::new(store.clone())).await;
    let reader = HamtReader::open(Arc::new(store), root).await.unwrap();
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_reads_take_whole_trees_as_cars_from_a_trustless_gateway() {
    use hamt_test_support::proxy::{Protocol, Proxy};
    // The node's blocks, served by this project's gateway behind a proxy that counts.
    let (root, want) = write_tree(Arc::new(rpc_store())).await;
    let (gateway, _server) = serve(Arc::new(rpc_store())).await;
    let proxy = Proxy::in_front_of(gateway.as_str(), Protocol::Http)
        .await
        .unwrap();
    let store = KuboStoreBuilder::new()
        .rpc_url(env("HAMT_TEST_KUBO_RPC"))
        .gateways(vec![Url::parse(&proxy.url()).unwrap()])
        .build()
        .unwrap();
    assert!(store.capabilities().subtree);
    let reader = HamtReader::open(Arc::new(store), root).await.unwrap();
    let before = proxy.stats().requests;
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(got, want);
    let cars = proxy
        .requests()
        .iter()
        .filter(|r| r.path.contains("format=car"))
        .count();
    assert_eq!(proxy.stats().requests - before, 1, "{:?}", proxy.requests());
    assert_eq!(cars, 1);
    // Reading from the RPC API only, the store offers no CARs.
    assert!(!rpc_store().capabilities().subtree);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_hamt_writes_we_read_same_root() {
    let n = 600;
    let doc = python(&[
        "write",
        env("HAMT_TEST_KUBO_RPC").as_str().trim_end_matches('/'),
        &n.to_string(),
    ]);
    let root = parse_cid(doc["root"].as_str().unwrap()).unwrap();
    let store: Arc<dyn BlockStore> = Arc::new(rpc_store());
    let reader = HamtReader::open(store, root).await.unwrap();
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(got.len(), n);
    for i in 0..n {
        assert_eq!(
            &got[&format!("k/{i}")][..],
            format!("kubo value {i}").as_bytes()
        );
    }
    // The same inserts here give the same root.
    let mut ours = Hamt::new(Arc::new(MemoryStore::new()));
    for i in 0..n {
        ours.insert(&format!("k/{i}"), format!("kubo value {i}").into_bytes())
            .await
            .unwrap();
    }
    assert_eq!(ours.flush().await.unwrap(), root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_write_py_hamt_reads_through_our_gateway() {
    let kubo = rpc_store();
    let store: Arc<dyn BlockStore> = Arc::new(kubo.clone());
    let mut map = Hamt::new(store.clone());
    let expected: BTreeMap<String, Vec<u8>> = (0..500)
        .map(|i| {
            (
                format!("ours/{i}"),
                format!("written by rust {i}").into_bytes(),
            )
        })
        .collect();
    map.extend(expected.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .await
        .unwrap();
    let root = map.flush().await.unwrap();
    let (gateway, _server) = serve(store).await;
    let read = tokio::task::spawn_blocking(move || {
        python(&[
            "read",
            gateway.as_str().trim_end_matches('/'),
            &root.to_string(),
        ])
    })
    .await
    .unwrap();
    let read: BTreeMap<String, Vec<u8>> = read
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            use base64::Engine as _;
            (
                k.clone(),
                base64::engine::general_purpose::STANDARD
                    .decode(v.as_str().unwrap())
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(read, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_become_files_with_py_hamts_cid() {
    let size = 3 * 1024 * 1024 + 17;
    let content: Vec<u8> = (0..size)
        .map(|i| u8::try_from((i * 7) % 251).unwrap())
        .collect();
    let doc = python(&[
        "add",
        env("HAMT_TEST_KUBO_RPC").as_str().trim_end_matches('/'),
        &size.to_string(),
    ]);
    let theirs = parse_cid(doc["cid"].as_str().unwrap()).unwrap();
    let store = rpc_store();
    let ours = store.put(Codec::Raw, content.clone().into()).await.unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(ours.codec(), 0x70, "a UnixFS file");
    // A HAMT value pointing at the file reads as the file's bytes.
    let store: Arc<dyn BlockStore> = Arc::new(store);
    let mut map = Hamt::new(store.clone());
    map.insert_pointer("big", ours).await.unwrap();
    let root = map.flush().await.unwrap();
    let reader = HamtReader::open(store, root).await.unwrap();
    assert_eq!(
        reader.get("big").await.unwrap().as_deref(),
        Some(&content[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins() {
    let store = rpc_store();
    let dyn_store: Arc<dyn BlockStore> = Arc::new(store.clone());
    let mut map = Hamt::new(dyn_store);
    map.insert("pinned", b"v1".to_vec()).await.unwrap();
    let v1 = map.flush().await.unwrap();
    map.insert("pinned", b"v2".to_vec()).await.unwrap();
    let v2 = map.flush().await.unwrap();
    store.pin(&v1).await.unwrap();
    assert!(store.pins().await.unwrap().contains(&v1));
    store.pin_update(&v1, &v2).await.unwrap();
    let pins = store.pins().await.unwrap();
    assert!(pins.contains(&v2) && !pins.contains(&v1), "{pins:?}");
    store.unpin(&v2).await.unwrap();
    assert!(!store.pins().await.unwrap().contains(&v2));
}

#[test]
fn urls_and_redaction() {
    let store = KuboStore::from_url(
        "kubo+https://alice:hunter2@rpc.example.com:443?gateway=https://gw1.example.com&gateway=https://gw2.example.com&read=rpc&concurrency=8&timeout=5",
    )
    .unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(
        debug.contains("gw2.example.com") && debug.contains("Rpc"),
        "{debug}"
    );
    let with_token = KuboStoreBuilder::new()
        .bearer_token("sekrit-token")
        .header("x-api-key", "sekrit-key")
        .unwrap()
        .build()
        .unwrap();
    let debug = format!("{with_token:?}");
    assert!(!debug.contains("sekrit"), "{debug}");
    for bad in [
        "http://127.0.0.1:5001",
        "kubo+http://",
        "kubo+http://h:1?read=disk",
        "kubo+http://h:1?bogus=1",
        "kubo+http://h:1?gateway=::",
    ] {
        assert!(
            matches!(
                KuboStore::from_url(bad),
                Err(hamt_store_kubo::Error::InvalidUrl { .. })
            ),
            "{bad}"
        );
    }
    let err = KuboStore::from_url("kubo+http://u:p4ss@h:1?read=disk").unwrap_err();
    assert!(!err.to_string().contains("p4ss"), "{err}");
}

#[tokio::test]
async fn an_unreachable_node_is_a_temporary_error_after_retries() {
    let store = KuboStoreBuilder::new()
        .rpc_url(Url::parse("http://127.0.0.1:9").unwrap())
        .retries(2, Duration::from_millis(5))
        .build()
        .unwrap();
    let err = store
        .put(Codec::Raw, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
}

/// Starts a one-request HTTP server on loopback that answers 404 and hands back the request
/// head it got.
fn recording_server() -> (u16, std::thread::JoinHandle<String>) {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&head).to_lowercase()
    });
    (port, handle)
}

#[tokio::test]
async fn credentials_go_to_gateways_on_the_rpc_host_only() {
    let cid = hamt::HashAlg::Blake3.cid(Codec::Raw, b"asked for");
    for (host, sent) in [("127.0.0.1", true), ("localhost", false)] {
        let (port, head) = recording_server();
        let store = KuboStoreBuilder::new()
            .rpc_url(Url::parse("http://127.0.0.1:9").unwrap())
            .gateways(vec![Url::parse(&format!("http://{host}:{port}")).unwrap()])
            .read_from(ReadFrom::Gateway)
            .retries(0, Duration::from_millis(1))
            .bearer_token("node-token")
            .build()
            .unwrap();
        assert!(store.get(&cid).await.is_err());
        let head = head.join().unwrap();
        assert!(head.starts_with("get /ipfs/"), "{head}");
        assert_eq!(
            head.contains("authorization: bearer node-token"),
            sent,
            "{host}: {head}"
        );
    }
}
