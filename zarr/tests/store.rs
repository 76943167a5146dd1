//! `HamtStore` behaviour with `zarrs` on real block stores (memory and sled on disk).

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hamt::{BlockStore, Bytes, Cid, Codec, Hamt, MemoryStore};
use hamt_store_sled::SledStore;
use hamt_zarr::zarrs_storage::{
    AsyncListableStorageTraits as _, AsyncReadableStorageTraits as _,
    AsyncWritableStorageTraits as _, StoreKey, StorePrefix, byte_range::ByteRange,
};
use hamt_zarr::{Encryption, EncryptionKey, Error, HamtStore};

async fn writable(blocks: Arc<dyn BlockStore>) -> Arc<HamtStore> {
    Arc::new(HamtStore::builder(blocks).build().await.unwrap())
}

async fn round_trip(blocks: Arc<dyn BlockStore>) {
    let store = writable(blocks.clone()).await;
    let expected = common::write_dataset(&store, "", 1.5).await;
    let root = store.flush().await.unwrap();

    let read = Arc::new(HamtStore::open(blocks, root).await.unwrap());
    for (path, want) in &expected {
        let got = common::read_array(&read, path).await.unwrap();
        assert_eq!(&got, want, "{path}");
    }
    // A region spanning chunk borders.
    let array = zarrs::array::Array::async_open(read.clone(), "/temp")
        .await
        .unwrap();
    let region: ndarray::ArrayD<f32> = array
        .async_retrieve_array_subset(&[1..4, 3..8, 2..11])
        .await
        .unwrap();
    assert_eq!(region.shape(), &[3, 5, 9]);
    #[allow(clippy::cast_possible_truncation)]
    let first = expected["temp"].values[(120 + 3 * 12 + 2) as usize];
    assert!((f64::from(region[[0, 0, 0]]) - first).abs() < 1e-9);
}

#[tokio::test]
async fn zarrs_round_trip_in_memory() {
    round_trip(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn zarrs_round_trip_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let sled = SledStore::open(dir.path().join("blocks")).unwrap();
    round_trip(Arc::new(sled)).await;
}

#[tokio::test]
async fn listing_sizes_ranges_and_erase() {
    let blocks = Arc::new(MemoryStore::new());
    let store = writable(blocks.clone()).await;
    common::write_dataset(&store, "grp/", 1.0).await;

    let root_dir = store.list_dir(&StorePrefix::root()).await.unwrap();
    let keys: Vec<&str> = root_dir.keys().iter().map(StoreKey::as_str).collect();
    let dirs: Vec<&str> = root_dir
        .prefixes()
        .iter()
        .map(StorePrefix::as_str)
        .collect();
    assert_eq!(keys, ["zarr.json"]);
    assert_eq!(dirs, ["grp/"]);
    let grp = store
        .list_dir(&StorePrefix::new("grp/").unwrap())
        .await
        .unwrap();
    let dirs: Vec<&str> = grp.prefixes().iter().map(StorePrefix::as_str).collect();
    assert_eq!(
        dirs,
        [
            "grp/count/",
            "grp/lat/",
            "grp/lon/",
            "grp/precip/",
            "grp/temp/",
            "grp/time/"
        ]
    );
    let temp = store
        .list_prefix(&StorePrefix::new("grp/temp/").unwrap())
        .await
        .unwrap();
    // 3 × 2 × 3 chunks and the metadata, sorted.
    assert_eq!(temp.len(), 19);
    assert!(temp.windows(2).all(|w| w[0] < w[1]));

    let key = StoreKey::new("grp/temp/c/0/0/0").unwrap();
    let whole = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        store.size_key(&key).await.unwrap(),
        Some(whole.len() as u64)
    );
    let parts = store
        .get_partial_many(
            &key,
            Box::new([ByteRange::FromStart(2, Some(5)), ByteRange::Suffix(3)].into_iter()),
        )
        .await
        .unwrap()
        .unwrap();
    let parts: Vec<Bytes> = futures::TryStreamExt::try_collect(parts).await.unwrap();
    assert_eq!(parts, [whole.slice(2..7), whole.slice(whole.len() - 3..)]);
    let past_end = store
        .get_partial_many(
            &key,
            Box::new([ByteRange::FromStart(0, Some(1 << 20))].into_iter()),
        )
        .await;
    assert!(past_end.is_err());
    assert_eq!(
        store
            .get(&StoreKey::new("grp/nope").unwrap())
            .await
            .unwrap(),
        None
    );

    let total = store
        .size_prefix(&StorePrefix::new("grp/temp/").unwrap())
        .await
        .unwrap();
    assert!(total > whole.len() as u64);

    store
        .erase_prefix(&StorePrefix::new("grp/temp/").unwrap())
        .await
        .unwrap();
    assert!(
        store
            .list_prefix(&StorePrefix::new("grp/temp/").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
    store
        .erase(&StoreKey::new("grp/count/zarr.json").unwrap())
        .await
        .unwrap();
    // The cached metadata went with the key.
    assert_eq!(
        store
            .get(&StoreKey::new("grp/count/zarr.json").unwrap())
            .await
            .unwrap(),
        None
    );
    // Erasing a missing key is not an error (zarr-python does it).
    store
        .erase(&StoreKey::new("grp/none").unwrap())
        .await
        .unwrap();

    // The root after erasing equals a fresh build of what is left.
    let root = store.flush().await.unwrap();
    let fresh = writable(Arc::new(MemoryStore::new())).await;
    for key in store.keys_with_prefix("").await.unwrap() {
        fresh
            .set_value(&key, store.get_value(&key).await.unwrap().unwrap())
            .await
            .unwrap();
    }
    assert_eq!(fresh.flush().await.unwrap(), root);
}

#[tokio::test]
async fn read_only_refuses_writes_and_keeps_data() {
    let blocks = Arc::new(MemoryStore::new());
    let store = writable(blocks.clone()).await;
    store
        .set_value(
            "zarr.json",
            br#"{"zarr_format":3,"node_type":"group"}"#.to_vec(),
        )
        .await
        .unwrap();
    let root = store.flush().await.unwrap();
    let read = HamtStore::open(blocks.clone(), root).await.unwrap();
    assert!(read.is_read_only());
    let key = StoreKey::new("x").unwrap();
    let err = read.set(&key, Bytes::from_static(b"1")).await.unwrap_err();
    assert!(
        matches!(err, hamt_zarr::zarrs_storage::StorageError::ReadOnly),
        "{err}"
    );
    assert!(matches!(
        read.erase_key("zarr.json").await,
        Err(Error::ReadOnly)
    ));
    assert!(matches!(
        read.erase_prefix_keys("").await,
        Err(Error::ReadOnly)
    ));
    assert!(read.get_value("zarr.json").await.unwrap().is_some());
    assert!(matches!(
        HamtStore::builder(blocks).read_only().build().await,
        Err(Error::ReadOnly)
    ));
}

/// A store whose reads take a while, counting how many are in flight at once.
#[derive(Debug)]
struct Slow {
    inner: MemoryStore,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    gets: AtomicUsize,
}

#[async_trait::async_trait]
impl BlockStore for Slow {
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        self.inner.put_keyed(cid, data).await
    }
    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.gets.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.get(cid).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_chunk_reads_share_the_node_cache() {
    let slow = Arc::new(Slow {
        inner: MemoryStore::new(),
        in_flight: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        gets: AtomicUsize::new(0),
    });
    let store = writable(slow.clone()).await;
    let expected = common::write_dataset(&store, "", 1.0).await;
    let root = store.flush().await.unwrap();

    let read = Arc::new(HamtStore::open(slow.clone(), root).await.unwrap());
    let array = Arc::new(
        zarrs::array::Array::async_open(read.clone(), "/precip")
            .await
            .unwrap(),
    );
    slow.gets.store(0, Ordering::SeqCst);
    let chunks: Vec<Vec<u64>> = (0..3u64)
        .flat_map(|t| (0..2u64).flat_map(move |y| (0..3u64).map(move |x| vec![t, y, x])))
        .collect();
    let reads = chunks.iter().map(|idx| {
        let array = array.clone();
        async move { array.async_retrieve_chunk::<Vec<f64>>(idx).await.unwrap() }
    });
    let got = futures::future::join_all(reads).await;
    assert_eq!(got.len(), 18);
    assert!(got.iter().all(|c| c.len() == 40));
    assert!(
        slow.peak.load(Ordering::SeqCst) > 4,
        "reads were serialised"
    );
    // Each chunk costs its value block; HAMT nodes are fetched once and shared.
    let stats = Hamt::open(slow.clone(), root)
        .await
        .unwrap()
        .stats()
        .await
        .unwrap();
    let gets = slow.gets.load(Ordering::SeqCst);
    assert!(
        gets <= 18 + usize::try_from(stats.nodes).unwrap(),
        "{gets} fetches for 18 chunks and {} nodes",
        stats.nodes
    );
    assert_eq!(
        common::read_array(&read, "precip").await.unwrap(),
        expected["precip"]
    );
}

#[tokio::test]
async fn chunks_stored_as_unixfs_files_read_on_every_store() {
    // py-hamt's KuboCAS stores values over Kubo's 1 MiB chunker size as UnixFS files, with
    // DAG-PB CIDs. Graft such a file in as a chunk and read it through zarrs.
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Arc<dyn BlockStore>> = vec![
        Arc::new(MemoryStore::new()),
        Arc::new(SledStore::open(dir.path().join("blocks")).unwrap()),
    ];
    for blocks in stores {
        let store = writable(blocks.clone()).await;
        let array = zarrs::array::ArrayBuilder::new(
            vec![600_000],
            vec![600_000],
            zarrs::array::data_type::float32(),
            0f32,
        )
        .build_arc(store.clone(), "/big")
        .unwrap();
        array.async_store_metadata().await.unwrap();
        #[allow(clippy::cast_precision_loss)]
        let values: Vec<f32> = (0..600_000).map(|i| i as f32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(bytes.len() > 2 << 20);
        let file = hamt::test_suite::unixfs_file(blocks.as_ref(), &bytes, 1 << 20).await;
        assert_eq!(file.codec(), Codec::DagPb.code());
        store.set_pointer("big/c/0", file).await.unwrap();
        let root = store.flush().await.unwrap();

        let read = Arc::new(HamtStore::open(blocks, root).await.unwrap());
        let array = zarrs::array::Array::async_open(read, "/big").await.unwrap();
        let got: Vec<f32> = array.async_retrieve_chunk(&[0]).await.unwrap();
        assert_eq!(got, values);
    }
}

#[tokio::test]
async fn encryption_wrong_key_is_an_error_never_garbage() {
    let blocks = Arc::new(MemoryStore::new());
    let key = EncryptionKey::generate();
    let store = Arc::new(
        HamtStore::builder(blocks.clone())
            .encryption(Encryption::new(key.clone(), &b"hdr"[..]).keep_clear("public/"))
            .build()
            .await
            .unwrap(),
    );
    let public = common::write_dataset(&store, "public/", 1.0).await;
    let private = common::write_dataset(&store, "private/", 2.0).await;
    let root = store.flush().await.unwrap();

    // Sealed values are nonce ‖ tag ‖ ciphertext; clear ones are what zarrs wrote.
    let raw = HamtStore::open(blocks.clone(), root).await.unwrap();
    let sealed = raw
        .get_value("private/temp/zarr.json")
        .await
        .unwrap()
        .unwrap();
    let opened = store
        .get_value("private/temp/zarr.json")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sealed.len(), opened.len() + hamt_zarr::OVERHEAD);
    assert!(
        raw.get_value("public/temp/zarr.json")
            .await
            .unwrap()
            .unwrap()
            .starts_with(b"{")
    );

    let open_with = |key: EncryptionKey, header: &'static [u8]| {
        let blocks = blocks.clone();
        async move {
            Arc::new(
                HamtStore::builder(blocks)
                    .root(root)
                    .read_only()
                    .encryption(Encryption::new(key, header).keep_clear("public/"))
                    .build()
                    .await
                    .unwrap(),
            )
        }
    };
    let good = open_with(key.clone(), b"hdr").await;
    for (path, want) in public.iter().chain(&private) {
        assert_eq!(
            &common::read_array(&good, path).await.unwrap(),
            want,
            "{path}"
        );
    }
    for bad in [
        open_with(EncryptionKey::generate(), b"hdr").await,
        open_with(key, b"other").await,
    ] {
        assert!(matches!(
            bad.get_value("private/temp/c/0/0/0").await,
            Err(Error::Decryption { key }) if key == "private/temp/c/0/0/0"
        ));
        let err = common::read_array(&bad, "private/temp").await.unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");
        assert_eq!(
            common::read_array(&bad, "public/temp").await.unwrap(),
            public["public/temp"]
        );
    }
}

#[tokio::test]
async fn export_import_round_trip_and_info() {
    let store = writable(Arc::new(MemoryStore::new())).await;
    common::write_dataset(&store, "", 1.0).await;
    let root = store.flush().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let exported = hamt_zarr::export_dir(&store, dir.path(), &|_| ())
        .await
        .unwrap();
    // Three variables of 18 chunks, three one-chunk coordinates, each with metadata; the root.
    assert_eq!(exported.keys, 3 * 19 + 3 * 2 + 1);
    assert!(dir.path().join("temp/c/2/1/2").is_file());
    assert!(dir.path().join("zarr.json").is_file());

    let again = writable(Arc::new(MemoryStore::new())).await;
    let seen = AtomicUsize::new(0);
    let imported = hamt_zarr::import_dir(&again, dir.path(), &|n| {
        seen.fetch_add(usize::try_from(n).unwrap(), Ordering::Relaxed);
    })
    .await
    .unwrap();
    assert_eq!(imported, exported);
    assert_eq!(seen.load(Ordering::Relaxed) as u64, imported.bytes);
    assert_eq!(again.flush().await.unwrap(), root);

    let info = hamt_zarr::dataset_info(&again).await.unwrap();
    let paths: Vec<&str> = info.nodes.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(paths, ["", "count", "lat", "lon", "precip", "temp", "time"]);
    let temp = info.nodes[5].array.as_ref().unwrap();
    assert_eq!(
        (temp.shape.as_slice(), temp.chunk_shape.as_slice()),
        (&[6, 10, 12][..], &[2, 5, 4][..])
    );
    assert_eq!(
        (
            temp.data_type.as_str(),
            temp.grid_chunks,
            temp.stored_chunks
        ),
        ("float32", 18, 18)
    );
    assert_eq!(temp.codecs, ["bytes", "zstd"]);
    assert!(
        info.to_string().contains(
            "temp  array float32 (6, 10, 12) [time, lat, lon]  chunks (2, 5, 4)  18/18 stored"
        ),
        "{info}"
    );

    // A directory without Zarr v3 metadata is refused before anything is stored.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("data.bin"), b"x").unwrap();
    assert!(matches!(
        hamt_zarr::import_dir(&again, empty.path(), &|_| ()).await,
        Err(Error::NotZarr { .. })
    ));
}
