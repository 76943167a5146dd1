//! `EmbeddedStore`: a real rust-ipfs node in this process, memory and on-disk repos, two
//! nodes over loopback TCP, and CARs exchanged with the JavaScript IPFS node that
//! `cargo xtask test` starts (`HAMT_TEST_KUBO_RPC`; without it that test fails).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt as _;
use hamt::car::{CarReader, export_car};
use hamt::test_suite::Subject;
use hamt::{BlockStore, Bytes, Cid, Codec, Hamt, HamtReader, Pinning as _};
use hamt_store_embedded::{EmbeddedStore, Error};

fn value(i: usize) -> Vec<u8> {
    format!("embedded value {i}").into_bytes()
}

async fn write_map(store: Arc<dyn BlockStore>, n: usize) -> Cid {
    let mut map = Hamt::new(store);
    map.extend((0..n).map(|i| (format!("k/{i}"), value(i))))
        .await
        .unwrap();
    map.flush().await.unwrap()
}

async fn read_map(store: Arc<dyn BlockStore>, root: Cid) -> BTreeMap<String, Bytes> {
    HamtReader::open(store, root)
        .await
        .unwrap()
        .iter()
        .try_collect()
        .await
        .unwrap()
}

fn check(map: &BTreeMap<String, Bytes>, n: usize) {
    assert_eq!(map.len(), n);
    for i in (0..n).step_by(37) {
        assert_eq!(map[&format!("k/{i}")].as_ref(), value(i).as_slice());
    }
}

async fn in_memory() -> Subject {
    let node = EmbeddedStore::from_url("ipfs-embedded:mem").await.unwrap();
    Subject::new(Arc::new(node))
}

async fn on_disk() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ipfs-embedded:{}", dir.path().join("repo").display());
    let node = EmbeddedStore::from_url(&url).await.unwrap();
    Subject::new(Arc::new(node)).keep(dir)
}

mod conformance_in_memory {
    hamt::conformance_tests!(super::in_memory);
}

mod conformance_on_disk {
    hamt::conformance_tests!(super::on_disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistence_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ipfs-embedded:{}", dir.path().join("repo").display());
    let node = EmbeddedStore::from_url(&url).await.unwrap();
    let root = write_map(Arc::new(node.clone()), 2000).await;

    // A second open of the same repo is refused while the node runs.
    let err = EmbeddedStore::from_url(&url).await.unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");

    node.shutdown().await.unwrap();
    drop(node);
    let reopened = EmbeddedStore::from_url(&url).await.unwrap();
    check(&read_map(Arc::new(reopened.clone()), root).await, 2000);
    reopened.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_survive_gc_and_unpinned_blocks_do_not() {
    let node = EmbeddedStore::from_url("ipfs-embedded:mem").await.unwrap();
    let store: Arc<dyn BlockStore> = Arc::new(node.clone());
    let root = write_map(store.clone(), 500).await;
    node.pin(&root).await.unwrap();
    assert!(node.is_pinned(&root).await.unwrap());
    let loose = store
        .put(Codec::Raw, Bytes::from_static(b"not pinned"))
        .await
        .unwrap();
    assert!(node.gc().await.unwrap() >= 1);
    assert!(!store.has(&loose).await.unwrap());
    assert!(matches!(
        store.get(&loose).await,
        Err(hamt::Error::NotFound { .. })
    ));
    check(&read_map(store.clone(), root).await, 500);

    node.unpin(&root).await.unwrap();
    assert!(node.gc().await.unwrap() > 500);
    assert!(!store.has(&root).await.unwrap());
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_reads_every_key_over_bitswap_by_root_alone() {
    let a = EmbeddedStore::builder()
        .listen("/ip4/127.0.0.1/tcp/0")
        .build()
        .await
        .unwrap();
    let root = write_map(Arc::new(a.clone()), 1000).await;
    let addr = a.addresses().await.unwrap().into_iter().next().unwrap();
    let b = EmbeddedStore::builder()
        .peer(addr)
        .fetch_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    assert!(!b.has(&root).await.unwrap());
    check(&read_map(Arc::new(b.clone()), root).await, 1000);
    // B keeps what it fetched.
    assert!(b.has(&root).await.unwrap());
    b.shutdown().await.unwrap();
    a.shutdown().await.unwrap();
}

/// Every block of the HAMT at `root` in `from`, through a CAR file, into `to`.
async fn car_copy(from: Arc<dyn BlockStore>, root: Cid, to: &dyn BlockStore) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.car");
    let file = tokio::fs::File::create(&path).await.unwrap();
    let mut w =
        tokio_util::compat::TokioAsyncWriteCompatExt::compat_write(tokio::io::BufWriter::new(file));
    let n = export_car(&from, root, &mut w).await.unwrap();
    futures::AsyncWriteExt::close(&mut w).await.unwrap();
    let file = tokio::fs::File::open(&path).await.unwrap();
    let mut car = CarReader::new(tokio_util::compat::TokioAsyncReadCompatExt::compat(file))
        .await
        .unwrap();
    assert_eq!(car.roots(), [root]);
    let mut blocks = Vec::new();
    while let Some(block) = car.next_block().await.unwrap() {
        blocks.push(block);
    }
    to.put_many_keyed(blocks).await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cars_move_between_this_node_and_the_javascript_ipfs_node() {
    let rpc = hamt_test_support::required_env("HAMT_TEST_KUBO_RPC");
    let kubo: Arc<dyn BlockStore> =
        Arc::new(hamt_store_kubo::KuboStore::from_url(&format!("kubo+{rpc}?read=rpc")).unwrap());
    let node = EmbeddedStore::from_url("ipfs-embedded:mem").await.unwrap();
    let embedded: Arc<dyn BlockStore> = Arc::new(node.clone());

    let root = write_map(embedded.clone(), 300).await;
    car_copy(embedded.clone(), root, kubo.as_ref()).await;
    check(&read_map(kubo.clone(), root).await, 300);

    let mut map = Hamt::new(kubo.clone());
    map.extend((300..600).map(|i| (format!("k/{i}"), value(i))))
        .await
        .unwrap();
    let other = map.flush().await.unwrap();
    car_copy(kubo, other, embedded.as_ref()).await;
    let got = read_map(embedded, other).await;
    assert_eq!(got.len(), 300);
    assert_eq!(got["k/450"].as_ref(), value(450).as_slice());
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_urls_and_addresses_are_typed_errors() {
    assert!(matches!(
        EmbeddedStore::builder_from_url("ipfs-embedded:"),
        Err(Error::InvalidUrl { .. })
    ));
    assert!(matches!(
        EmbeddedStore::builder_from_url("sled:/x"),
        Err(Error::InvalidUrl { .. })
    ));
    let err = EmbeddedStore::builder()
        .listen("not an address")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
    let err = EmbeddedStore::builder()
        .peer("/ip4/127.0.0.1/tcp/1")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidAddress { .. }), "{err}");
}
