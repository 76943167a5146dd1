//! `S3Store` through the fault-injecting proxy in front of the real S3 server (moto's, from
//! `cargo xtask test`). Under each fault: reads end in the right data or an error, never
//! wrong data; every request is bounded by the store's timeouts; writes complete through
//! retries or fail with nothing half-published (never an index without its pack), and what
//! failed to publish is published by a later `sync`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt as _;
use hamt::{BlockStore, Cid, Codec, Hamt, HamtReader};
use hamt_store_s3::S3Store;
use hamt_test_support::proxy::{Fault, Protocol, Proxy, Rule};
use object_store::ObjectStore;
use object_store::path::Path;

/// Requests time out after 1 s and are retried 3 times: a fault test takes seconds.
const LIMITS: &str = "timeout=1&retries=3";

/// The proxy, and one prefix of the bucket reached through it or directly.
struct Setup {
    proxy: Proxy,
    bucket: String,
    endpoint: String,
    prefix: String,
}

async fn setup(test: &str) -> Setup {
    let endpoint = hamt_test_support::required_env("HAMT_TEST_S3_ENDPOINT");
    let bucket = hamt_test_support::required_env("HAMT_TEST_S3_BUCKET");
    let proxy = Proxy::in_front_of(&endpoint, Protocol::Http).await.unwrap();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    Setup {
        proxy,
        bucket,
        endpoint,
        prefix: format!("faults-{test}-{nanos}"),
    }
}

impl Setup {
    /// A store through the proxy.
    fn proxied(&self, pack_size: &str) -> S3Store {
        S3Store::from_url(&format!(
            "s3://{}/{}?endpoint={}&pack-size={pack_size}&{LIMITS}",
            self.bucket,
            self.prefix,
            self.proxy.url()
        ))
        .unwrap()
    }

    /// A store straight to the server, to see what was really written.
    fn direct(&self) -> S3Store {
        S3Store::from_url(&format!(
            "s3://{}/{}?endpoint={}",
            self.bucket, self.prefix, self.endpoint
        ))
        .unwrap()
    }

    /// The names (`NAME` of `NAME.car` / `NAME.idx`) of the packs and indexes written.
    async fn objects(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let raw = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .build()
            .unwrap();
        let names = |dir: &'static str, ext: &'static str| {
            let raw = &raw;
            let prefix = Path::from(format!("{}/{dir}", self.prefix));
            async move {
                raw.list(Some(&prefix))
                    .map_ok(|m| {
                        m.location
                            .filename()
                            .unwrap()
                            .strip_suffix(ext)
                            .unwrap()
                            .to_owned()
                    })
                    .try_collect::<BTreeSet<_>>()
                    .await
                    .unwrap()
            }
        };
        (names("packs", ".car").await, names("index", ".idx").await)
    }

    /// Nothing is half-published: every index has its whole pack (the store's own check and
    /// a listing agree). Returns the packs without an index.
    async fn assert_nothing_half_published(&self) -> usize {
        let (packs, indexes) = self.objects().await;
        let without_pack: Vec<_> = indexes.difference(&packs).collect();
        assert!(
            without_pack.is_empty(),
            "indexes without their pack: {without_pack:?}"
        );
        let report = self.direct().check().await.unwrap();
        assert_eq!(report.objects, indexes.len() as u64);
        assert_eq!(report.orphans.len(), packs.len() - indexes.len());
        report.orphans.len()
    }
}

fn value(i: usize) -> Vec<u8> {
    format!("fault-tested value {i} ")
        .repeat(4 + i % 13)
        .into_bytes()
}

fn expected(n: usize) -> BTreeMap<String, Bytes> {
    (0..n)
        .map(|i| (format!("k/{i}"), Bytes::from(value(i))))
        .collect()
}

/// Writes `n` keys into a HAMT on `store` (buffered: nothing is uploaded before `sync`
/// unless a pack fills) and returns its root.
async fn write_map(store: &S3Store, n: usize) -> Cid {
    let mut map = Hamt::new(Arc::new(store.clone()) as Arc<dyn BlockStore>);
    map.extend((0..n).map(|i| (format!("k/{i}"), value(i))))
        .await
        .unwrap();
    map.flush().await.unwrap()
}

async fn read_map(store: &S3Store, root: Cid) -> hamt::Result<BTreeMap<String, Bytes>> {
    let reader = HamtReader::open(Arc::new(store.clone()) as Arc<dyn BlockStore>, root).await?;
    reader.iter().try_collect().await
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

/// `fault` for the first two requests of each kind: listings, index objects, packs. With 3
/// retries every request gets through, whichever requests run at once. (A fraction would
/// fail some request on all 4 attempts now and then.)
fn first_two_of_each_kind(fault: Fault, method: &str) -> Vec<Rule> {
    ["list-type", "/index/", "/packs/"]
        .into_iter()
        .map(|path| Rule::new(fault).method(method).path_contains(path).first(2))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_reads_complete_through_5xx_answers() {
    let s = setup("5xx").await;
    let store = s.proxied("16KiB");
    // Many buffered blocks: with 16 KiB packs, several uploads already while writing.
    s.proxy
        .set_faults(first_two_of_each_kind(Fault::Status(503), "PUT"));
    let root = write_map(&store, 300).await;
    store.sync().await.unwrap();
    assert_eq!(
        s.proxy.stats().faults,
        4,
        "two pack and two index uploads answered 503"
    );
    // A 503 is answered by the proxy: the server never saw the request, nothing is left over.
    assert_eq!(s.assert_nothing_half_published().await, 0);

    s.proxy
        .set_faults(first_two_of_each_kind(Fault::Status(500), "GET"));
    let got = read_map(&s.proxied("16KiB"), root).await;
    assert!(
        right_or_error(&got, 300),
        "reads should complete through retries: {got:?}"
    );
    assert_eq!(s.proxy.stats().faults, 4 + 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_index_upload_leaves_no_index_and_a_later_sync_publishes() {
    let s = setup("index-500").await;
    let store = s.proxied("1MiB");
    let root = write_map(&store, 200).await;
    s.proxy.set_faults([Rule::new(Fault::Status(500))
        .method("PUT")
        .path_contains("/index/")]);
    let started = Instant::now();
    let err = store.sync().await.unwrap_err();
    assert!(err.is_temporary(), "a 500 is worth retrying later: {err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let (packs, indexes) = s.objects().await;
    assert!(indexes.is_empty(), "{indexes:?}");
    assert!(!packs.is_empty(), "the pack went up before its index");
    assert!(
        store.unsynced_blocks() > 0,
        "the blocks stay buffered for the next sync"
    );
    // Readable meanwhile, from the buffer.
    assert!(right_or_error(&read_map(&store, root).await, 200));

    s.proxy.clear_faults();
    store.sync().await.unwrap();
    assert_eq!(store.unsynced_blocks(), 0);
    assert!(s.assert_nothing_half_published().await <= packs.len());
    assert!(right_or_error(&read_map(&s.direct(), root).await, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pack_upload_writes_no_index() {
    let s = setup("pack-500").await;
    let store = s.proxied("1MiB");
    let root = write_map(&store, 200).await;
    s.proxy.set_faults([Rule::new(Fault::Status(500))
        .method("PUT")
        .path_contains("/packs/")]);
    assert!(store.sync().await.is_err());
    assert_eq!(s.objects().await, (BTreeSet::new(), BTreeSet::new()));
    s.proxy.clear_faults();
    store.sync().await.unwrap();
    assert_eq!(s.assert_nothing_half_published().await, 0);
    assert!(right_or_error(&read_map(&s.direct(), root).await, 200));
}

/// The server stores the object, but its answer comes after the client's timeout: the
/// upload is retried, finds the object there (write-once names), and the sync completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_whose_answer_never_arrives_are_retried() {
    let s = setup("put-stall").await;
    let store = s.proxied("1MiB");
    let root = write_map(&store, 200).await;
    s.proxy
        .set_faults([Rule::new(Fault::Stall(Duration::from_secs(3)))
            .method("PUT")
            .first(2)]);
    let started = Instant::now();
    store.sync().await.unwrap();
    assert_eq!(s.proxy.stats().faults, 2);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.assert_nothing_half_published().await, 0);
    assert!(right_or_error(&read_map(&s.direct(), root).await, 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_complete_through_connections_dropped_mid_body() {
    let s = setup("drop").await;
    let store = s.proxied("16KiB");
    let root = write_map(&store, 300).await;
    store.sync().await.unwrap();
    s.proxy
        .set_faults(first_two_of_each_kind(Fault::Drop { after: 100 }, "GET"));
    let got = read_map(&s.proxied("16KiB"), root).await;
    assert!(
        right_or_error(&got, 300),
        "reads should complete through retries: {got:?}"
    );
    assert_eq!(s.proxy.stats().faults, 6, "two reads of each kind cut");

    // Every body cut: an error, in bounded time.
    s.proxy
        .set_faults([Rule::new(Fault::Drop { after: 100 }).method("GET")]);
    let started = Instant::now();
    let got = read_map(&s.proxied("16KiB"), root).await;
    assert!(!right_or_error(&got, 300));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bodies_are_errors_never_wrong_data() {
    let s = setup("truncate").await;
    let store = s.proxied("16KiB");
    let root = write_map(&store, 300).await;
    store.sync().await.unwrap();
    // Each kind of read on its own: listings, index objects, pack ranges.
    for path in ["list-type", "/index/", "/packs/"] {
        for after in [0, 10, 1000] {
            s.proxy.set_faults([Rule::new(Fault::Truncate { after })
                .method("GET")
                .path_contains(path)]);
            let faults = s.proxy.stats().faults;
            let got = read_map(&s.proxied("16KiB"), root).await;
            assert!(
                s.proxy.stats().faults > faults || after >= 1000 && path == "list-type",
                "{path} after {after}: no fault was injected"
            );
            right_or_error(&got, 300);
        }
    }
    // One block at a time, with the index warm: a short range is an error.
    let fresh = s.proxied("16KiB");
    s.proxy.clear_faults();
    let reader = HamtReader::open(Arc::new(fresh.clone()) as Arc<dyn BlockStore>, root)
        .await
        .unwrap();
    let mut cids = Vec::new();
    for i in 0..300 {
        cids.push(
            reader
                .get_pointer(&format!("k/{i}"))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let short_read = |result: hamt::Result<_>| match result {
        Err(hamt::Error::Backend {
            temporary: true,
            source,
            ..
        }) => matches!(
            source.downcast_ref::<hamt_store_s3::Error>(),
            Some(hamt_store_s3::Error::ShortRead { .. })
        ),
        _ => false,
    };
    for after in [10, 5000] {
        s.proxy.set_faults([Rule::new(Fault::Truncate { after })
            .method("GET")
            .path_contains("/packs/")]);
        // Many blocks of each pack in one ranged read, cut short (this used to panic in
        // object_store's `get_ranges`).
        assert!(short_read(fresh.get_many(&cids).await.map(|_| ())));
    }
    s.proxy.set_faults([Rule::new(Fault::Truncate { after: 10 })
        .method("GET")
        .path_contains("/packs/")]);
    assert!(short_read(fresh.get(&cids[7]).await.map(|_| ())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_are_errors_never_wrong_data() {
    let s = setup("flip").await;
    let store = s.proxied("16KiB");
    let root = write_map(&store, 300).await;
    store.sync().await.unwrap();
    for path in ["list-type", "/index/", "/packs/"] {
        for at in [0, 40, 300, 2000] {
            s.proxy.set_faults([Rule::new(Fault::Flip { at })
                .method("GET")
                .path_contains(path)]);
            let got = read_map(&s.proxied("16KiB"), root).await;
            right_or_error(&got, 300);
        }
    }
    assert!(s.proxy.stats().faults > 0);
    let fresh = s.proxied("16KiB");
    s.proxy.clear_faults();
    let reader = HamtReader::open(Arc::new(fresh.clone()) as Arc<dyn BlockStore>, root)
        .await
        .unwrap();
    let cid = reader.get_pointer("k/7").await.unwrap().unwrap();
    s.proxy.set_faults([Rule::new(Fault::Flip { at: 3 })
        .method("GET")
        .path_contains("/packs/")]);
    assert!(matches!(
        fresh.get(&cid).await,
        Err(hamt::Error::Corrupt { .. })
    ));
    assert!(matches!(
        fresh.get_many(&[cid]).await,
        Err(hamt::Error::Corrupt { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_is_a_timeout_within_the_stores_bounds() {
    let s = setup("stall").await;
    let store = s.proxied("16KiB");
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"stalled"))
        .await
        .unwrap();
    store.sync().await.unwrap();
    // The first two answers stall: retries get through.
    s.proxy
        .set_faults([Rule::new(Fault::Stall(Duration::from_secs(5))).first(2)]);
    let fresh = s.proxied("16KiB");
    assert_eq!(&fresh.get(&cid).await.unwrap()[..], b"stalled");
    // Every answer stalls: an error after the timeouts and retries (4 × 1 s, backoff).
    s.proxy
        .set_faults([Rule::new(Fault::Stall(Duration::from_secs(30)))]);
    let fresh = s.proxied("16KiB");
    let started = Instant::now();
    let err = fresh.get(&cid).await.unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// A pack over 16 MiB uploads in parts; when completing the upload fails, the unfinished
/// upload (invisible, but billed) is aborted and no index is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multipart_upload_is_aborted_and_publishes_nothing() {
    let s = setup("multipart").await;
    let store = s.proxied("64MiB");
    let blocks: Vec<Bytes> = (0..18u8).map(|i| Bytes::from(vec![i; 1 << 20])).collect();
    let mut cids = Vec::new();
    for b in &blocks {
        cids.push(store.put(Codec::Raw, b.clone()).await.unwrap());
    }
    // CompleteMultipartUpload is `POST …?uploadId=…`.
    s.proxy.set_faults([Rule::new(Fault::Status(500))
        .method("POST")
        .path_contains("uploadId=")]);
    assert!(store.sync().await.is_err());
    assert_eq!(s.objects().await, (BTreeSet::new(), BTreeSet::new()));
    let aborted = s
        .proxy
        .requests()
        .iter()
        .any(|r| r.method == "DELETE" && r.path.contains("uploadId="));
    assert!(aborted, "the unfinished upload was left behind");
    s.proxy.clear_faults();
    store.sync().await.unwrap();
    assert_eq!(s.assert_nothing_half_published().await, 0);
    let fresh = s.direct();
    for (cid, data) in cids.iter().zip(&blocks) {
        assert_eq!(&fresh.get(cid).await.unwrap(), data);
    }
}
