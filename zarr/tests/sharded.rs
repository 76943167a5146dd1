//! `ShardedStore` against py-hamt 3.6's `sharded_zarr_v2` bytes (vectors recorded from
//! py-hamt with the interop tests' BLAKE3 CID store), and its own behaviour.

#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod common;

use std::sync::Arc;

use hamt::{BlockStore, Bytes, Cid, Codec, MemoryStore};
use hamt_zarr::{Error, ReadMode, ShardedStore};
use ipld_core::ipld::Ipld;

fn array_json(shape: &str, chunks: &str) -> Vec<u8> {
    format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":{shape},"data_type":"float32","chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":{chunks}}}}},"chunk_key_encoding":{{"name":"default","configuration":{{"separator":"/"}}}},"fill_value":0.0,"codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}}],"attributes":{{}}}}"#
    )
    .into_bytes()
}

fn f32s(v: f32, n: usize) -> Vec<u8> {
    std::iter::repeat_n(v.to_le_bytes(), n).flatten().collect()
}

/// py-hamt's worked example: the Store API with fixed bytes, `chunks_per_shard = 2`.
async fn example_a(blocks: Arc<dyn BlockStore>) -> (ShardedStore, Cid) {
    let st = ShardedStore::create(blocks, 2).await.unwrap();
    st.set_value("g/zarr.json", common::GROUP_DOC.to_vec())
        .await
        .unwrap();
    st.set_value("g/temp/zarr.json", array_json("[3,4]", "[1,2]"))
        .await
        .unwrap();
    st.set_value("g/precip/zarr.json", array_json("[5]", "[2]"))
        .await
        .unwrap();
    for (y, x) in [(0u8, 0u8), (0, 1), (1, 0), (2, 1)] {
        st.set_value(&format!("g/temp/c/{y}/{x}"), f32s(f32::from(10 * y + x), 2))
            .await
            .unwrap();
    }
    for i in [0u8, 2] {
        st.set_value(&format!("g/precip/c/{i}"), f32s(f32::from(i) + 0.5, 2))
            .await
            .unwrap();
    }
    let root = st.flush().await.unwrap();
    (st, root)
}

#[tokio::test]
async fn roots_match_py_hamt_byte_for_byte() {
    let blocks = Arc::new(MemoryStore::new());
    let empty = ShardedStore::create(blocks.clone(), 4).await.unwrap();
    let root = empty.flush().await.unwrap();
    assert_eq!(
        root.to_string(),
        "bafyr4ihbhjyqqk2nujpqojxkc6wcxfetu56xx27m7yue5zelgnw7vev22m"
    );

    let (st, root) = example_a(blocks.clone()).await;
    assert_eq!(
        root.to_string(),
        "bafyr4ierlvnjeovsm2lvfwrmbz5jf3ee7jz5thnjodh2b5tivxu74mzdi4"
    );
    // Flushing again without changes keeps the root.
    assert_eq!(st.flush().await.unwrap(), root);
    assert_eq!(st.root(), Some(root));
}

#[tokio::test]
async fn every_read_mode_reads_the_same_chunks() {
    let blocks = Arc::new(MemoryStore::new());
    let (_, root) = example_a(blocks.clone()).await;
    for mode in [ReadMode::Full, ReadMode::Sparse, ReadMode::Auto] {
        let st = ShardedStore::builder(blocks.clone())
            .root(root)
            .read_only()
            .read_mode(mode)
            .build()
            .await
            .unwrap();
        assert_eq!(
            st.get_value("g/temp/c/1/0")
                .await
                .unwrap()
                .unwrap()
                .as_ref(),
            f32s(10.0, 2)
        );
        assert_eq!(
            st.get_value("g/temp/c/2/1")
                .await
                .unwrap()
                .unwrap()
                .as_ref(),
            f32s(21.0, 2)
        );
        assert_eq!(
            st.get_value("g/precip/c/2")
                .await
                .unwrap()
                .unwrap()
                .as_ref(),
            f32s(2.5, 2)
        );
        // Unwritten, out of range, malformed: absent.
        for key in [
            "g/temp/c/1/1",
            "g/temp/c/9/9",
            "g/temp/c/x",
            "g/precip/c/1",
            "nope/zarr.json",
        ] {
            assert_eq!(st.get_value(key).await.unwrap(), None, "{key}");
        }
        // A root-level key reads from the one top-level group, as in py-hamt.
        assert!(st.get_value("temp/zarr.json").await.unwrap().is_some());
        let stats = st.stats();
        match mode {
            ReadMode::Full => assert_eq!((stats.sparse_fetches, stats.shard_fetches), (0, 4)),
            _ => assert_eq!(stats.shard_fetches, 0, "{mode:?}"),
        }
        let root_dir = hamt_zarr::zarrs_storage::AsyncListableStorageTraits::list_dir(
            &st,
            &hamt_zarr::zarrs_storage::StorePrefix::root(),
        )
        .await
        .unwrap();
        assert_eq!(
            root_dir
                .keys()
                .iter()
                .map(hamt_zarr::zarrs_storage::StoreKey::as_str)
                .collect::<Vec<_>>(),
            ["zarr.json"]
        );
        assert_eq!(
            root_dir
                .prefixes()
                .iter()
                .map(hamt_zarr::zarrs_storage::StorePrefix::as_str)
                .collect::<Vec<_>>(),
            ["g/"]
        );
        let mut keys = st.keys().await.unwrap();
        keys.sort();
        assert_eq!(
            keys,
            [
                "g/precip/c/0",
                "g/precip/c/2",
                "g/precip/zarr.json",
                "g/temp/c/0/0",
                "g/temp/c/0/1",
                "g/temp/c/1/0",
                "g/temp/c/2/1",
                "g/temp/zarr.json",
                "g/zarr.json",
                "zarr.json"
            ]
        );
    }
}

#[tokio::test]
async fn auto_mode_switches_to_full_after_a_scan_and_loads_coalesce() {
    let blocks = Arc::new(MemoryStore::new());
    let st = ShardedStore::create(blocks.clone(), 1000).await.unwrap();
    st.set_value("g/zarr.json", common::GROUP_DOC.to_vec())
        .await
        .unwrap();
    st.set_value("g/v/zarr.json", array_json("[1000]", "[1]"))
        .await
        .unwrap();
    for i in 0..1000u16 {
        st.set_value(&format!("g/v/c/{i}"), f32s(f32::from(i), 1))
            .await
            .unwrap();
    }
    let root = st.flush().await.unwrap();

    let auto = Arc::new(ShardedStore::open(blocks.clone(), root).await.unwrap());
    for i in 0..255u16 {
        assert_eq!(
            auto.get_value(&format!("g/v/c/{i}"))
                .await
                .unwrap()
                .unwrap()
                .as_ref(),
            f32s(f32::from(i), 1)
        );
    }
    assert!(!auto.is_latched_full());
    assert_eq!(auto.stats().sparse_fetches, 255);
    auto.get_value("g/v/c/255").await.unwrap();
    assert!(auto.is_latched_full());
    for i in 256..1000u16 {
        auto.get_value(&format!("g/v/c/{i}")).await.unwrap();
    }
    // Once latched, the shard is fetched once and then served from the cache.
    assert_eq!(
        (auto.stats().shard_fetches, auto.stats().sparse_fetches),
        (1, 255)
    );

    // Concurrent full loads of one shard share one fetch.
    let full = Arc::new(
        ShardedStore::builder(blocks)
            .root(root)
            .read_only()
            .read_mode(ReadMode::Full)
            .build()
            .await
            .unwrap(),
    );
    let reads = (0..64u16).map(|i| {
        let full = full.clone();
        async move { full.get_value(&format!("g/v/c/{i}")).await.unwrap() }
    });
    let got = futures::future::join_all(reads).await;
    assert!(got.iter().all(Option::is_some));
    assert_eq!(full.stats().shard_fetches, 1);
}

#[tokio::test]
async fn writes_resize_delete_and_graft() {
    let blocks = Arc::new(MemoryStore::new());
    let (st, _) = example_a(blocks.clone()).await;

    // Growing the leading dimension keeps every shard CID.
    let before: Vec<Cid> = shard_cids(&blocks, st.flush().await.unwrap(), "g/temp")
        .await
        .into_iter()
        .flatten()
        .collect();
    st.set_value("g/temp/zarr.json", array_json("[5,4]", "[1,2]"))
        .await
        .unwrap();
    let root = st.flush().await.unwrap();
    let after = shard_cids(&blocks, root, "g/temp").await;
    assert_eq!(after.len(), 5);
    assert_eq!(after.iter().flatten().copied().collect::<Vec<_>>(), before);
    assert_eq!(
        st.get_value("g/temp/c/2/1")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        f32s(21.0, 2)
    );

    // Any other change moves chunks to their new places.
    st.resize("g/temp", vec![5, 6]).await.unwrap();
    st.flush().await.unwrap();
    assert_eq!(
        st.get_value("g/temp/c/2/1")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        f32s(21.0, 2)
    );
    assert_eq!(
        st.get_value("g/temp/c/1/0")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        f32s(10.0, 2)
    );
    st.resize("g/temp", vec![2, 6]).await.unwrap();
    assert_eq!(st.get_value("g/temp/c/2/1").await.unwrap(), None);
    assert!(st.get_value("g/temp/c/1/0").await.unwrap().is_some());

    // Graft a chunk by CID: no bytes copied.
    let cid = blocks
        .put(Codec::Raw, Bytes::from(f32s(7.0, 2)))
        .await
        .unwrap();
    st.set_pointer("g/temp/c/0/2", cid).await.unwrap();
    assert_eq!(
        st.get_value("g/temp/c/0/2")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        f32s(7.0, 2)
    );

    st.delete("g/temp/c/0/2").await.unwrap();
    assert_eq!(st.get_value("g/temp/c/0/2").await.unwrap(), None);
    st.delete_dir("g/precip").await.unwrap();
    let root = st.flush().await.unwrap();
    let read = ShardedStore::open(blocks.clone(), root).await.unwrap();
    assert_eq!(read.arrays().len(), 1);
    assert!(
        read.keys()
            .await
            .unwrap()
            .iter()
            .all(|k| !k.starts_with("g/precip"))
    );

    // Refusals: read-only writes, arrays outside a group, unregistered chunks, chunk shape
    // changes.
    assert!(matches!(
        read.set_value("g/x/zarr.json", b"{}".to_vec()).await,
        Err(Error::ReadOnly)
    ));
    let fresh = ShardedStore::create(blocks.clone(), 2).await.unwrap();
    fresh
        .set_value("zarr.json", common::GROUP_DOC.to_vec())
        .await
        .unwrap();
    assert!(matches!(
        fresh
            .set_value("t/zarr.json", array_json("[4]", "[2]"))
            .await,
        Err(Error::Layout { .. })
    ));
    assert!(matches!(
        fresh.set_value("g/u/c/0", vec![0u8; 8]).await,
        Err(Error::Layout { .. })
    ));
    fresh
        .set_value("g/t/zarr.json", array_json("[4]", "[2]"))
        .await
        .unwrap();
    assert!(matches!(
        fresh
            .set_value("g/t/zarr.json", array_json("[4]", "[1]"))
            .await,
        Err(Error::Layout { .. })
    ));
    // Out-of-grid chunk writes are ignored, as in py-hamt.
    fresh.set_value("g/t/c/9", vec![0u8; 8]).await.unwrap();
    assert_eq!(fresh.get_value("g/t/c/9").await.unwrap(), None);
}

async fn shard_cids(blocks: &Arc<MemoryStore>, root: Cid, array: &str) -> Vec<Option<Cid>> {
    let bytes = blocks.get(&root).await.unwrap();
    let ipld: Ipld = serde_ipld_dagcbor::from_slice(&bytes).unwrap();
    let Ipld::Map(root) = ipld else { panic!() };
    let Ipld::Map(arrays) = &root["arrays"] else {
        panic!()
    };
    let Ipld::Map(a) = &arrays[array] else {
        panic!()
    };
    let Ipld::List(cids) = &a["shard_cids"] else {
        panic!()
    };
    cids.iter()
        .map(|c| match c {
            Ipld::Link(c) => Some(*c),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn bad_manifests_and_shards_are_typed_errors() {
    let blocks = Arc::new(MemoryStore::new());
    let put = |v: Ipld| {
        let blocks = blocks.clone();
        async move {
            blocks
                .put(
                    Codec::DagCbor,
                    Bytes::from(serde_ipld_dagcbor::to_vec(&v).unwrap()),
                )
                .await
                .unwrap()
        }
    };
    let not_a_map = put(Ipld::List(vec![])).await;
    let unknown = put(Ipld::Map(
        [(
            "manifest_version".into(),
            Ipld::String("sharded_zarr_v9".into()),
        )]
        .into(),
    ))
    .await;
    let (_, good) = example_a(blocks.clone()).await;
    let bytes = blocks.get(&good).await.unwrap();
    let Ipld::Map(mut root) = serde_ipld_dagcbor::from_slice::<Ipld>(&bytes).unwrap() else {
        panic!()
    };
    let Some(Ipld::Map(arrays)) = root.get_mut("arrays") else {
        panic!()
    };
    let Some(Ipld::Map(temp)) = arrays.get_mut("g/temp") else {
        panic!()
    };
    let Some(Ipld::List(cids)) = temp.get_mut("shard_cids") else {
        panic!()
    };
    let first = cids[0].clone();
    cids.pop();
    let short = put(Ipld::Map(root.clone())).await;
    for bad in [not_a_map, unknown, short] {
        let err = ShardedStore::open(blocks.clone(), bad).await.unwrap_err();
        assert!(matches!(err, Error::Manifest { .. }), "{err}");
    }
    // A truncated shard fails on first use, in every mode.
    let Ipld::Link(shard) = first else { panic!() };
    let truncated = blocks.get(&shard).await.unwrap().slice(..10);
    blocks.insert_unchecked(shard, truncated);
    for mode in [ReadMode::Full, ReadMode::Sparse] {
        let st = ShardedStore::builder(blocks.clone())
            .root(good)
            .read_only()
            .read_mode(mode)
            .build()
            .await
            .unwrap();
        let err = st.get_value("g/temp/c/0/1").await.unwrap_err();
        assert!(
            matches!(err, Error::Shard { ref array, shard: 0, .. } if array == "g/temp"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn zarrs_reads_and_writes_through_the_sharded_store() {
    let blocks = Arc::new(MemoryStore::new());
    let st = Arc::new(ShardedStore::create(blocks.clone(), 5).await.unwrap());
    // zarrs writes the group's zarr.json (via write_dataset) before its arrays.
    let store: Arc<hamt_zarr::HamtStore> = Arc::new(
        hamt_zarr::HamtStore::builder(blocks.clone())
            .build()
            .await
            .unwrap(),
    );
    let expected = common::write_dataset(&store, "grp/", 1.0).await;
    // Metadata first, parents before children, as Zarr writes them.
    let mut keys = store.keys_with_prefix("").await.unwrap();
    keys.sort_by_key(|k| (!k.ends_with("zarr.json"), k.matches('/').count()));
    for key in keys {
        st.set_value(&key, store.get_value(&key).await.unwrap().unwrap())
            .await
            .unwrap();
    }
    let root = st.flush().await.unwrap();
    let dyn_blocks: Arc<dyn BlockStore> = blocks;
    common::assert_sharded_reads(&dyn_blocks, root, &expected).await;
}

#[tokio::test]
async fn writes_survive_a_tiny_shard_cache() {
    // A budget smaller than one shard: every clean shard is evicted as soon as another
    // arrives, and no write may be lost.
    let blocks = Arc::new(MemoryStore::new());
    let st = ShardedStore::builder(blocks.clone())
        .chunks_per_shard(4)
        .cache_bytes(1)
        .build()
        .await
        .unwrap();
    st.set_value("g/zarr.json", common::GROUP_DOC.to_vec())
        .await
        .unwrap();
    st.set_value("g/v/zarr.json", array_json("[64]", "[1]"))
        .await
        .unwrap();
    let root = st.flush().await.unwrap();
    let st = ShardedStore::builder(blocks.clone())
        .root(root)
        .cache_bytes(1)
        .build()
        .await
        .unwrap();
    for i in 0..64u8 {
        st.set_value(&format!("g/v/c/{i}"), f32s(f32::from(i), 1))
            .await
            .unwrap();
    }
    let root = st.flush().await.unwrap();
    let read = ShardedStore::open(blocks, root).await.unwrap();
    for i in 0..64u8 {
        assert_eq!(
            read.get_value(&format!("g/v/c/{i}"))
                .await
                .unwrap()
                .unwrap()
                .as_ref(),
            f32s(f32::from(i), 1),
            "{i}"
        );
    }
}

#[tokio::test]
async fn a_shrink_keeps_unflushed_chunk_writes() {
    let blocks = Arc::new(MemoryStore::new());
    let (st, _) = example_a(blocks.clone()).await;
    // Shard 0 of g/temp was flushed; overwrite one of its chunks, then shrink (slow path).
    st.set_value("g/temp/c/0/0", f32s(99.0, 2)).await.unwrap();
    st.resize("g/temp", vec![2, 4]).await.unwrap();
    let root = st.flush().await.unwrap();
    let read = ShardedStore::open(blocks, root).await.unwrap();
    assert_eq!(
        read.get_value("g/temp/c/0/0")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        f32s(99.0, 2)
    );
    assert_eq!(
        read.get_value("g/temp/c/1/0")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        f32s(10.0, 2)
    );
    assert_eq!(read.get_value("g/temp/c/2/1").await.unwrap(), None);
}
