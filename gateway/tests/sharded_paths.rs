//! Paths through sharded Zarr roots (py-hamt's `ShardedZarrStore` layout): the same
//! `/ipfs/{root}/{key…}` as for a HAMT, with the manifest and the chunk's shard as the blocks
//! that prove the value. In process, over a `MemoryStore`.
#![cfg(feature = "zarr")]
// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use bytes::Bytes;
use common::{Reply, call, car_blocks, only};
use hamt::{BlockStore, Cid, Codec, MemoryStore};
use hamt_gateway::Gateway;
use hamt_zarr::ShardedStore;

const GROUP: &str = r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#;
const ARRAY: &str = r#"{"zarr_format":3,"node_type":"array","shape":[4,4],"data_type":"uint8","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2,2]}},"chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},"fill_value":0,"codecs":[{"name":"bytes","configuration":{}}],"attributes":{}}"#;

/// A sharded dataset of one group `g` with one array `t2m` of 2 × 2 chunks, 2 chunks a shard, with three of its
/// four chunks written (so the second shard holds one chunk and one gap).
async fn dataset(store: &MemoryStore) -> (Cid, Vec<(String, Bytes)>) {
    let zarr = ShardedStore::create(Arc::new(store.clone()), 2)
        .await
        .unwrap();
    let mut values = vec![
        ("g/zarr.json".to_owned(), Bytes::from(GROUP)),
        ("g/t2m/zarr.json".to_owned(), Bytes::from(ARRAY)),
    ];
    for (i, key) in ["g/t2m/c/0/0", "g/t2m/c/0/1", "g/t2m/c/1/0"]
        .into_iter()
        .enumerate()
    {
        let base = u8::try_from(i).unwrap() * 10;
        values.push((
            key.to_owned(),
            Bytes::from(vec![base, base + 1, base + 2, base + 3]),
        ));
    }
    for (key, value) in &values {
        zarr.set_value(key, value.clone()).await.unwrap();
    }
    (zarr.flush().await.unwrap(), values)
}

async fn get(gw: &Gateway, uri: &str) -> Reply {
    call(gw, "GET", uri, &[]).await
}

/// What a trustless client reads for `key` with only `blocks`.
async fn read_with(blocks: Arc<dyn BlockStore>, root: Cid, key: &str) -> Option<Bytes> {
    let zarr = ShardedStore::open(blocks, root).await.ok()?;
    zarr.get_value(key).await.ok().flatten()
}

#[tokio::test]
async fn a_path_names_a_key_of_a_sharded_dataset() {
    let store = MemoryStore::new();
    let (root, values) = dataset(&store).await;
    let gw = Gateway::new(Arc::new(store.clone()));
    for (key, value) in &values {
        let r = get(&gw, &format!("/ipfs/{root}/{key}")).await;
        assert_eq!(r.status, StatusCode::OK, "{key}: {:?}", r.body);
        assert_eq!(&r.body[..], &value[..], "{key}");
    }
    let r = get(&gw, &format!("/ipfs/{root}/g/t2m/zarr.json")).await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = call(
        &gw,
        "GET",
        &format!("/ipfs/{root}/g/t2m/c/1/0"),
        &[("range", "bytes=1-2")],
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &[21, 22]);
}

#[tokio::test]
async fn a_sharded_path_car_holds_exactly_the_blocks_that_prove_the_value() {
    let store = MemoryStore::new();
    let (root, values) = dataset(&store).await;
    let gw = Gateway::new(Arc::new(store.clone()));
    for (key, value) in &values {
        let r = get(&gw, &format!("/ipfs/{root}/{key}?format=car")).await;
        assert_eq!(r.status, StatusCode::OK, "{key}: {:?}", r.body);
        let (roots, blocks) = car_blocks(&r.body).await;
        assert_eq!(roots, vec![root], "{key}");
        assert_eq!(blocks[0].0, root, "the path starts at the manifest");
        // Metadata: the manifest, then the document; a chunk: the manifest, its shard, it.
        let expected = if key.contains("/c/") { 3 } else { 2 };
        assert_eq!(blocks.len(), expected, "{key}");
        assert_eq!(
            read_with(only(&blocks, None).await, root, key)
                .await
                .as_deref(),
            Some(&value[..]),
            "{key}"
        );
        for i in 0..blocks.len() {
            assert!(
                read_with(only(&blocks, Some(i)).await, root, key)
                    .await
                    .is_none(),
                "{key}: block {i} of {} is not needed",
                blocks.len()
            );
        }
    }
}

#[tokio::test]
async fn sharded_paths_that_lead_nowhere_get_clear_errors() {
    let store = MemoryStore::new();
    let (root, _) = dataset(&store).await;
    // DAG-CBOR that is neither a HAMT node nor a manifest.
    let other = store
        .put(Codec::DagCbor, Bytes::from_static(b"\xa1\x61a\x01"))
        .await
        .unwrap();
    let gw = Gateway::new(Arc::new(store.clone()));
    for (path, status) in [
        // The chunk in the second shard's gap, a chunk outside the grid, an unknown array.
        (format!("{root}/g/t2m/c/1/1"), StatusCode::NOT_FOUND),
        (format!("{root}/g/t2m/c/9/9"), StatusCode::NOT_FOUND),
        (format!("{root}/g/nothing/zarr.json"), StatusCode::NOT_FOUND),
        (
            format!("{root}/g/t2m/../zarr.json"),
            StatusCode::BAD_REQUEST,
        ),
        (format!("{other}/a"), StatusCode::NOT_IMPLEMENTED),
    ] {
        for q in ["", "?format=raw", "?format=car"] {
            let r = get(&gw, &format!("/ipfs/{path}{q}")).await;
            assert_eq!(r.status, status, "{path}{q}: {:?}", r.body);
        }
    }
}
