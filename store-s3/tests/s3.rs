//! `S3Store` against a real S3 server (moto's, from PyPI) that `cargo xtask test` starts on
//! loopback and names in `HAMT_TEST_S3_ENDPOINT` / `HAMT_TEST_S3_BUCKET`. Without them these
//! tests fail: they never pass silently.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt as _;
use hamt::test_suite::{self, Corrupter, Subject};
use hamt::{BlockStore, Cid, Codec, Error, Hamt, HamtReader, MemoryStore};
use hamt_store_s3::S3Store;
use object_store::{ObjectStore, ObjectStoreExt as _};

fn server() -> (String, String) {
    (
        hamt_test_support::required_env("HAMT_TEST_S3_ENDPOINT"),
        hamt_test_support::required_env("HAMT_TEST_S3_BUCKET"),
    )
}

/// A store URL under a prefix no other test uses.
fn url(test: &str, pack_size: &str) -> String {
    let (endpoint, bucket) = server();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("s3://{bucket}/{test}-{nanos}?endpoint={endpoint}&pack-size={pack_size}")
}

fn raw_objects() -> Arc<dyn ObjectStore> {
    let (endpoint, bucket) = server();
    Arc::new(
        object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .build()
            .unwrap(),
    )
}

/// Flips a byte of a synced block inside its pack object, as bit rot on the server would.
struct PackCorrupter(S3Store);

#[async_trait]
impl Corrupter for PackCorrupter {
    async fn corrupt(&self, cid: &Cid, _data: Bytes) {
        self.0.sync().await.unwrap();
        let at = self.0.locate_block(cid).await.unwrap().unwrap();
        flip_byte(&at.pack, at.offset).await;
    }
}

async fn flip_byte(pack: &str, offset: u64) {
    let objects = raw_objects();
    let path = object_store::path::Path::from(pack);
    let mut bytes = objects
        .get(&path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    bytes[usize::try_from(offset).unwrap()] ^= 0x01;
    objects.put(&path, bytes.into()).await.unwrap();
}

fn packed() -> Subject {
    let store = S3Store::from_url(&url("conformance", "256KiB")).unwrap();
    Subject::new(Arc::new(store.clone())).with_corrupter(PackCorrupter(store))
}

mod conformance {
    hamt::conformance_tests!(super::packed, corrupt);
}

/// After the whole suite, the store's own check finds every pack it wrote whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_after_the_suite() {
    let store = S3Store::from_url(&url("conformance", "256KiB")).unwrap();
    let subject =
        Subject::new(Arc::new(store.clone())).with_corrupter(PackCorrupter(store.clone()));
    test_suite::run_all(&subject).await;
    store.sync().await.unwrap();
    let report = store.check().await.unwrap();
    assert!(report.objects > 1, "{report:?}");
    assert!(report.orphans.is_empty());
}

fn value(i: usize) -> Vec<u8> {
    format!("value {i} ").repeat(1 + i % 5).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_keys_written_and_read_back() {
    const N: usize = 100_000;
    let url = url("100k", "4MiB");
    let store = S3Store::from_url(&url).unwrap();
    let mut map = Hamt::new(Arc::new(store.clone()));
    map.extend((0..N).map(|i| (format!("k/{i}"), value(i))))
        .await
        .unwrap();
    let root = map.flush().await.unwrap();
    store.sync().await.unwrap();
    assert_eq!(store.unsynced_blocks(), 0);
    let written = store.stats();
    assert!(written.packs_written >= 2, "{written:?}");

    // Another process's view: a fresh store with nothing cached.
    let fresh = S3Store::from_url(&url).unwrap();
    let reader = HamtReader::open(Arc::new(fresh.clone()), root)
        .await
        .unwrap();
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(got.len(), N);
    for (i, v) in (0..N).map(|i| (i, &got[&format!("k/{i}")])) {
        assert_eq!(v.as_ref(), value(i).as_slice(), "k/{i}");
    }
    let stats = fresh.stats();
    // Values come in multi-range reads of whole packs, not one request each.
    assert!(stats.block_reads + stats.batch_reads < 20_000, "{stats:?}");
    assert_eq!(stats.lists, 1);

    // Single reads after the index is warm: exactly one ranged GET per block.
    let before = fresh.stats().block_reads;
    for i in (0..N).step_by(997) {
        let cid = reader
            .get_pointer(&format!("k/{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fresh.get(&cid).await.unwrap().as_ref(), value(i).as_slice());
    }
    assert_eq!(fresh.stats().block_reads - before, N.div_ceil(997) as u64);
    assert_eq!(fresh.stats().lists, 1);
}

#[tokio::test]
async fn a_corrupted_byte_in_a_pack_is_reported_as_corrupt() {
    let url = url("corrupt", "64KiB");
    let store = S3Store::from_url(&url).unwrap();
    let cid = store
        .put(Codec::Raw, Bytes::from(vec![7u8; 5000]))
        .await
        .unwrap();
    store.sync().await.unwrap();
    let at = store.locate_block(&cid).await.unwrap().unwrap();
    flip_byte(&at.pack, at.offset + 100).await;

    let fresh = S3Store::from_url(&url).unwrap();
    assert!(matches!(fresh.get(&cid).await, Err(Error::Corrupt { cid: c }) if c == cid));
    assert!(matches!(
        fresh.get_many(&[cid]).await,
        Err(Error::Corrupt { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_prefix_and_a_reader_that_sees_both() {
    let url = url("writers", "128KiB");
    let write = |tag: &'static str| {
        let url = url.clone();
        async move {
            let store = S3Store::from_url(&url).unwrap();
            let mut map = Hamt::new(Arc::new(store.clone()));
            // Shared keys with shared values: both writers store some identical blocks.
            map.extend((0..3000).map(|i| (format!("{tag}/{i}"), value(i))))
                .await
                .unwrap();
            let root = map.flush().await.unwrap();
            store.sync().await.unwrap();
            root
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(write("a")), tokio::spawn(write("b")));
    let (a, b) = (a.unwrap(), b.unwrap());

    let reader_store = S3Store::from_url(&url).unwrap();
    for (root, tag) in [(a, "a"), (b, "b")] {
        let reader = HamtReader::open(Arc::new(reader_store.clone()), root)
            .await
            .unwrap();
        let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
        assert_eq!(got.len(), 3000);
        assert_eq!(got[&format!("{tag}/42")].as_ref(), value(42).as_slice());
    }
    let report = reader_store.check().await.unwrap();
    assert!(report.orphans.is_empty(), "{report:?}");

    // A block synced by another writer after this store listed the indexes is found too.
    let late = S3Store::from_url(&url).unwrap();
    let cid = late
        .put(Codec::Raw, Bytes::from_static(b"written late"))
        .await
        .unwrap();
    late.sync().await.unwrap();
    assert_eq!(
        reader_store.get(&cid).await.unwrap().as_ref(),
        b"written late"
    );
}

#[tokio::test]
async fn a_car_from_export_car_becomes_one_pack() {
    let mem = Arc::new(MemoryStore::new());
    let mut map = Hamt::new(mem.clone());
    map.extend((0..2000).map(|i| (format!("c/{i}"), value(i))))
        .await
        .unwrap();
    let root = map.flush().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let car = dir.path().join("map.car");
    let file = tokio::fs::File::create(&car).await.unwrap();
    let mut w =
        tokio_util::compat::TokioAsyncWriteCompatExt::compat_write(tokio::io::BufWriter::new(file));
    let blocks = hamt::car::export_car(&(mem as Arc<dyn BlockStore>), root, &mut w)
        .await
        .unwrap();
    futures::AsyncWriteExt::close(&mut w).await.unwrap();

    let url = url("car", "64MiB");
    let store = S3Store::from_url(&url).unwrap();
    let imported = store.import_car(&car).await.unwrap();
    assert_eq!(
        (imported.roots.as_slice(), imported.blocks),
        (&[root][..], blocks)
    );
    assert_eq!(store.stats().packs_written, 1);

    let fresh = S3Store::from_url(&url).unwrap();
    let reader = HamtReader::open(Arc::new(fresh), root).await.unwrap();
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(got.len(), 2000);

    // A CAR with a bad block uploads nothing.
    let mut bytes = std::fs::read(&car).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&car, &bytes).unwrap();
    let other = S3Store::from_url(&url).unwrap();
    assert!(other.import_car(&car).await.is_err());
    assert_eq!(other.stats().packs_written, 0);
}

/// The writer process (this crate's `s3` example) is killed with SIGKILL while it uploads
/// its second append; a new process then reads every key of the first, synced, root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_upload_loses_nothing_it_synced() {
    let url = url("crash", "1MiB");
    let exe = std::env::current_exe().unwrap();
    let example = exe.parent().unwrap().parent().unwrap().join("examples/s3");
    assert!(
        example.exists(),
        "{} missing: build it with cargo test",
        example.display()
    );
    let mut child = std::process::Command::new(&example)
        .args([&url, "2000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let root: Cid = first.strip_prefix("synced ").unwrap().parse().unwrap();
    // The second append (2000 × 64 KiB in 1 MiB packs) is uploading now.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer finished before it was killed"
    );
    assert!(
        lines.next().is_none(),
        "the second append was synced before the kill"
    );

    let fresh = S3Store::from_url(&url).unwrap();
    let reader = HamtReader::open(Arc::new(fresh.clone()), root)
        .await
        .unwrap();
    let got: BTreeMap<String, Bytes> = reader.iter().try_collect().await.unwrap();
    assert_eq!(got.len(), 2000);
    for i in [0usize, 1, 999, 1999] {
        let want: Vec<u8> = (0..256)
            .map(|j| u8::try_from((i * 31 + j * 7 + 1) % 251).unwrap())
            .collect();
        assert_eq!(got[&format!("r1/{i}")].as_ref(), want.as_slice());
    }
    // No index points at missing or short data.
    fresh.check().await.unwrap();
}

#[test]
fn urls_and_debug_never_show_credentials() {
    assert!(S3Store::from_url("s3://user:secret@bucket/p").is_err());
    assert!(S3Store::from_url("http://bucket/p").is_err());
    assert!(S3Store::from_url("s3://bucket/p?pack-size=lots").is_err());
    assert!(S3Store::from_url("s3://bucket/p?colour=blue").is_err());
    assert!(S3Store::from_url("s3://bucket/p?credentials=borrowed").is_err());
    assert!(S3Store::from_url("s3://bucket/p?timeout=soon").is_err());
    assert!(S3Store::from_url("s3://bucket/p?retries=-1").is_err());
    assert!(S3Store::from_url("s3://bucket/p?timeout=0.5&retries=2&credentials=env").is_ok());
    let store = S3Store::builder()
        .bucket("b")
        .prefix("/data/")
        .endpoint("http://127.0.0.1:1")
        .build()
        .unwrap();
    let shown = format!("{store:?}");
    assert!(
        shown.contains("s3://b/data at http://127.0.0.1:1"),
        "{shown}"
    );
    if let Ok(secret) = std::env::var("AWS_SECRET_ACCESS_KEY") {
        assert!(!shown.contains(&secret));
    }
}
