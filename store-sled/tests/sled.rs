//! `SledStore` and `CachedStore` against the conformance suite and their own guarantees, on
//! real sled files in a temporary directory.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use hamt::test_suite::{Corrupter, Subject};
use hamt::{BlockStore, Cid, Codec, Error, Hamt, HamtReader, HashAlg, MemoryStore};
use hamt_store_sled::{CachedStore, SledStore, SledStoreBuilder, WriteMode};

struct SledCorrupter(SledStore);

#[async_trait]
impl Corrupter for SledCorrupter {
    async fn corrupt(&self, cid: &Cid, data: Bytes) {
        self.0.insert_unchecked(cid, &data).unwrap();
    }
}

fn sled_blake3() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path().join("db")).unwrap();
    Subject::new(Arc::new(store.clone()))
        .with_corrupter(SledCorrupter(store))
        .keep(dir)
}

fn sled_sha256() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStoreBuilder::new(dir.path().join("db"))
        .hash_alg(HashAlg::Sha2_256)
        .open()
        .unwrap();
    Subject::new(Arc::new(store.clone()))
        .with_corrupter(SledCorrupter(store))
        .keep(dir)
}

fn cached(mode: WriteMode) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let local = SledStore::open(dir.path().join("db")).unwrap();
    let store = CachedStore::new(local, MemoryStore::new()).with_mode(mode);
    Subject::new(Arc::new(store)).keep(dir)
}

fn cached_write_through() -> Subject {
    cached(WriteMode::WriteThrough)
}

fn cached_write_back() -> Subject {
    cached(WriteMode::WriteBack)
}

mod conformance_sled {
    hamt::conformance_tests!(super::sled_blake3, corrupt);
}

mod conformance_sled_sha256 {
    hamt::conformance_tests!(super::sled_sha256, corrupt);
}

mod conformance_cached_write_through {
    hamt::conformance_tests!(super::cached_write_through);
}

mod conformance_cached_write_back {
    hamt::conformance_tests!(super::cached_write_back);
}

/// In write-back mode, the trait's `sync` sends the queue to the remote store; offline it
/// keeps the blocks queued (durable locally) and succeeds.
#[tokio::test]
async fn write_back_sync_sends_the_queue_when_online() {
    let dir = tempfile::tempdir().unwrap();
    let remote = MemoryStore::new();
    let local = SledStore::open(dir.path().join("db")).unwrap();
    let store = CachedStore::new(local, remote.clone())
        .with_mode(WriteMode::WriteBack)
        .with_offline(true);
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"queued"))
        .await
        .unwrap();
    BlockStore::sync(&store).await.unwrap();
    assert_eq!(store.pending(), vec![cid]);
    assert!(!remote.has(&cid).await.unwrap());
    store.set_offline(false);
    BlockStore::sync(&store).await.unwrap();
    assert!(store.pending().is_empty());
    assert!(remote.has(&cid).await.unwrap());
}

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let root = {
        let store = Arc::new(SledStore::open(&path).unwrap());
        let mut map = Hamt::new(store.clone());
        map.extend((0..2000).map(|i| (format!("k{i}"), vec![u8::try_from(i % 251).unwrap()])))
            .await
            .unwrap();
        let root = map.flush().await.unwrap();
        store.flush().await.unwrap();
        root
    };
    let store = Arc::new(SledStore::open(&path).unwrap());
    assert!(
        store.len().unwrap() > 251,
        "251 distinct values and the nodes"
    );
    let reader = HamtReader::open(store, root).await.unwrap();
    assert_eq!(reader.len().await.unwrap(), 2000);
    assert_eq!(
        reader.get("k300").await.unwrap().as_deref(),
        Some(&[49u8][..])
    );
}

/// A block over 4 KiB is a file of its own (see `src/large.rs`): served before any flush,
/// recorded by `flush` or, without one, by closing the store, so it is there after a reopen.
#[tokio::test]
async fn a_block_file_is_recorded_at_flush_or_at_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let flushed = Bytes::from(vec![1u8; 5000]);
    let closed = Bytes::from(vec![2u8; 300_000]);
    {
        let store = SledStore::open(&path).unwrap();
        let a = store.put(Codec::Raw, flushed.clone()).await.unwrap();
        assert_eq!(
            store.get(&a).await.unwrap(),
            flushed,
            "read before any flush"
        );
        assert_eq!(store.block_size(&a).await.unwrap(), 5000);
        assert_eq!(store.len().unwrap(), 1);
        store.flush().await.unwrap();
        // Stored again after it was recorded: still one block.
        store.put(Codec::Raw, flushed.clone()).await.unwrap();
        assert_eq!(store.len().unwrap(), 1);
        store.put(Codec::Raw, closed.clone()).await.unwrap();
        assert_eq!(store.list_blocks().unwrap().len(), 2);
        assert!(store.size_on_disk().unwrap() > 305_000, "the files count");
    }
    let store = SledStore::open(&path).unwrap();
    let mut listed = store.list_blocks().unwrap();
    listed.sort_by_key(|(_, len)| *len);
    assert_eq!(
        listed.iter().map(|(_, len)| *len).collect::<Vec<_>>(),
        [5000, 300_000]
    );
    assert_eq!(store.get(&listed[1].0).await.unwrap(), closed);
}

/// A writer that never flushes: a block pending for a second is recorded by the next write,
/// so it survives a crash (a copy of the directory taken while the store is open stands in
/// for one).
#[tokio::test]
async fn a_write_records_blocks_pending_for_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = SledStore::open(&path).unwrap();
    let old = store
        .put(Codec::Raw, Bytes::from(vec![4u8; 8000]))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    store
        .put(Codec::Raw, Bytes::from(vec![5u8; 8000]))
        .await
        .unwrap();
    // sled writes its log every 500 ms on its own; the files are copied as a crash would
    // leave them, until the copy has the block (a loaded machine can delay sled's thread).
    for attempt in 0.. {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let copy = dir.path().join(format!("copy{attempt}"));
        hamt_test_support::copy_dir(&path, &copy);
        let reopened = SledStore::open(&copy).unwrap();
        match reopened.get(&old).await {
            Ok(data) => {
                assert_eq!(&data[..], &[4u8; 8000][..]);
                break;
            }
            Err(e) => assert!(attempt < 20, "never recorded: {e}"),
        }
    }
    drop(store);
}

/// What a crash between writing a block's file and recording it leaves behind, a file with no
/// entry and perhaps not all its bytes, is not a block: `has` says no, and storing the block
/// again replaces the file.
#[tokio::test]
async fn a_block_file_without_an_entry_is_not_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let data = Bytes::from(vec![3u8; 10_000]);
    let cid = HashAlg::Blake3.cid(Codec::Raw, &data);
    std::fs::create_dir_all(path.join("large")).unwrap();
    std::fs::write(path.join("large").join(cid.to_string()), &data[..4096]).unwrap();
    let store = SledStore::open(&path).unwrap();
    assert!(!store.has(&cid).await.unwrap());
    assert!(matches!(store.get(&cid).await, Err(Error::NotFound { .. })));
    assert!(store.is_empty().unwrap());
    store.put_keyed(&cid, data.clone()).await.unwrap();
    store.flush().await.unwrap();
    drop(store);
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.get(&cid).await.unwrap(), data);
}

#[tokio::test]
async fn second_open_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let _first = SledStore::open(&path).unwrap();
    let err = SledStore::open(&path).unwrap_err();
    assert!(
        matches!(err, hamt_store_sled::Error::Locked { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("another process") && message.contains("hamt serve"),
        "the message says who may hold the store: {message}"
    );
    let as_hamt: Error = err.into();
    assert!(as_hamt.is_temporary());
}

/// sled's I/O threads keep its lock file a moment after the last handle drops; a reopen by
/// the same process waits for them instead of calling the database locked. Each round
/// closes right after a burst of writes, when such a thread is most likely still running
/// (this failed about one run in ten before, with the other tests running beside it).
#[tokio::test]
async fn a_store_this_process_closed_reopens_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut cids = Vec::new();
    for round in 0..20u32 {
        let store = SledStore::open(&path).unwrap();
        for cid in &cids {
            assert!(store.has(cid).await.unwrap(), "round {round}: {cid}");
        }
        for i in 0..50u32 {
            let block = Bytes::from(format!("round {round} block {i}").into_bytes());
            cids.push(store.put(Codec::Raw, block).await.unwrap());
        }
        store.flush().await.unwrap();
    }
    // A handle that is still open is a lock reported at once, even on a path just reopened.
    let _open = SledStore::open(&path).unwrap();
    let started = std::time::Instant::now();
    let err = SledStore::open(&path).unwrap_err();
    assert!(
        matches!(err, hamt_store_sled::Error::Locked { .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn damaged_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = SledStore::open(&path).unwrap();
        store
            .put(Codec::Raw, Bytes::from_static(b"x"))
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    // Overwrite every file sled wrote with garbage.
    for entry in std::fs::read_dir(&path).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, vec![0xAB; 4096]).unwrap();
        }
    }
    let err = SledStore::open(&path).unwrap_err();
    assert!(
        matches!(err, hamt_store_sled::Error::CorruptDatabase { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        !message.contains("backtrace") && !message.ends_with("()"),
        "no Debug output of sled's in the message: {message}"
    );
    assert!(message.contains("is damaged"), "{message}");
}

#[test]
fn url_cache_option() {
    let size = |url: &str| SledStore::builder_from_url(url).map(|b| b.cache_size());
    assert_eq!(
        size("sled:/tmp/a").unwrap(),
        hamt_store_sled::DEFAULT_CACHE_BYTES
    );
    assert_eq!(size("sled:/tmp/a?cache=64MiB").unwrap(), 64 << 20);
    assert_eq!(size("sled:///tmp/a?cache=1GiB").unwrap(), 1 << 30);
    assert_eq!(size("sled:/tmp/a?cache=65536").unwrap(), 65536);
    let builder = SledStore::builder_from_url("sled:rel/dir?cache=8MiB").unwrap();
    assert_eq!(builder.path(), std::path::Path::new("rel/dir"));
    for bad in [
        "sled:/tmp/a?cache=64MB",
        "sled:/tmp/a?cache=",
        "sled:/tmp/a?cache",
        "sled:/tmp/a?cache=1MiB&cache=2MiB",
        "sled:/tmp/a?size=1MiB",
        "sled:?cache=1MiB",
    ] {
        let err = SledStore::builder_from_url(bad).unwrap_err();
        assert!(
            matches!(err, hamt_store_sled::Error::InvalidUrl { .. }),
            "{bad}: {err:?}"
        );
    }
    // The builder method still sets it, and the option reaches sled.
    let dir = tempfile::tempdir().unwrap();
    let builder = SledStoreBuilder::new(dir.path().join("db")).cache_bytes(4 << 20);
    assert_eq!(builder.cache_size(), 4 << 20);
    let url = format!("sled:{}?cache=4MiB", dir.path().join("u").display());
    let store = SledStore::from_url(&url).unwrap();
    assert_eq!(store.path(), dir.path().join("u"));
}

#[test]
fn url_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sled:{}", dir.path().join("u").display());
    let store = SledStore::from_url(&url).unwrap();
    assert_eq!(store.path(), dir.path().join("u"));
    assert!(SledStore::from_url(&format!("sled://{}", dir.path().join("v").display())).is_ok());
    for bad in ["sled:", "mem:", "sledx:/tmp/a", ""] {
        assert!(
            matches!(
                SledStore::from_url(bad),
                Err(hamt_store_sled::Error::InvalidUrl { .. })
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn cache_fills_and_serves_offline() {
    let dir = tempfile::tempdir().unwrap();
    let remote = MemoryStore::new();
    let root = {
        let mut map = Hamt::new(Arc::new(remote.clone()));
        map.extend((0..500).map(|i| (format!("k{i}"), format!("v{i}").into_bytes())))
            .await
            .unwrap();
        map.flush().await.unwrap()
    };
    let local = SledStore::open(dir.path().join("db")).unwrap();
    let store = Arc::new(CachedStore::new(local.clone(), remote));
    assert!(local.is_empty().unwrap());
    // Online: reading the keys fills the local store.
    let reader = HamtReader::open(store.clone(), root).await.unwrap();
    for i in 0..250 {
        assert!(reader.get(&format!("k{i}")).await.unwrap().is_some());
    }
    assert!(!local.is_empty().unwrap());
    // Offline: cached keys read, the others fail clearly.
    store.set_offline(true);
    let reader = HamtReader::open(store.clone(), root).await.unwrap();
    for i in 0..250 {
        assert_eq!(
            reader.get(&format!("k{i}")).await.unwrap().as_deref(),
            Some(format!("v{i}").as_bytes())
        );
    }
    let mut offline_misses = 0;
    for i in 250..500 {
        match reader.get(&format!("k{i}")).await {
            Err(Error::Offline { .. }) => offline_misses += 1,
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => {}
        }
    }
    assert_eq!(offline_misses, 250, "values of unread keys are not cached");
}

#[tokio::test]
async fn write_back_queues_until_sync() {
    let dir = tempfile::tempdir().unwrap();
    let remote = MemoryStore::new();
    let local = SledStore::open(dir.path().join("db")).unwrap();
    let store = Arc::new(CachedStore::new(local, remote.clone()).with_mode(WriteMode::WriteBack));
    let mut map = Hamt::new(store.clone());
    map.extend((0..300).map(|i| (format!("k{i}"), format!("v{i}").into_bytes())))
        .await
        .unwrap();
    let root = map.flush().await.unwrap();
    assert!(
        remote.is_empty(),
        "write-back must not touch the remote before sync"
    );
    let queued = store.pending().len();
    assert!(queued > 300);

    store.set_offline(true);
    assert!(matches!(
        store.send_pending().await,
        Err(Error::NotSupported { .. })
    ));
    store.set_offline(false);
    assert_eq!(store.send_pending().await.unwrap(), queued);
    assert!(store.pending().is_empty());
    let reader = HamtReader::open(Arc::new(remote), root).await.unwrap();
    assert_eq!(reader.len().await.unwrap(), 300);
}

#[tokio::test]
async fn offline_writes_queue_even_in_write_through() {
    let dir = tempfile::tempdir().unwrap();
    let remote = MemoryStore::new();
    let local = SledStore::open(dir.path().join("db")).unwrap();
    let store = CachedStore::new(local, remote.clone()).with_offline(true);
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"offline"))
        .await
        .unwrap();
    assert!(!remote.has(&cid).await.unwrap());
    store.set_offline(false);
    assert_eq!(store.send_pending().await.unwrap(), 1);
    assert!(remote.has(&cid).await.unwrap());
}

#[tokio::test]
async fn damaged_local_copy_is_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let remote = MemoryStore::new();
    let local = SledStore::open(dir.path().join("db")).unwrap();
    let store = CachedStore::new(local.clone(), remote);
    let cid = store
        .put(Codec::Raw, Bytes::from_static(b"good"))
        .await
        .unwrap();
    local.insert_unchecked(&cid, b"bad!").unwrap();
    assert_eq!(&store.get(&cid).await.unwrap()[..], b"good");
    assert_eq!(
        &local.get(&cid).await.unwrap()[..],
        b"good",
        "local copy repaired"
    );
}

#[tokio::test]
async fn publish_recovers_writes_of_a_process_that_never_synced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let remote = MemoryStore::new();
    let root = {
        // A write-back session that exits without sync: the blocks are only local.
        let local = SledStore::open(&path).unwrap();
        let store = Arc::new(
            CachedStore::new(local.clone(), remote.clone()).with_mode(WriteMode::WriteBack),
        );
        let mut map = Hamt::new(store);
        map.extend((0..400).map(|i| (format!("k{i}"), format!("v{i}").into_bytes())))
            .await
            .unwrap();
        let root = map.flush().await.unwrap();
        local.flush().await.unwrap();
        root
    };
    assert!(remote.is_empty());
    let store = CachedStore::new(SledStore::open(&path).unwrap(), remote.clone());
    assert!(store.pending().is_empty(), "a new process has no queue");
    let sent = store.publish(&root).await.unwrap();
    assert_eq!(sent, remote.len());
    assert!(sent > 400);
    assert_eq!(
        store.publish(&root).await.unwrap(),
        0,
        "nothing left to send"
    );
    let reader = HamtReader::open(Arc::new(remote), root).await.unwrap();
    assert_eq!(
        reader.get("k399").await.unwrap().as_deref(),
        Some(&b"v399"[..])
    );
}
