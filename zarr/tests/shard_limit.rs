//! Regression tests for what fuzzing the sharded store found.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use hamt::{BlockStore, MemoryStore};
use hamt_zarr::{Error, ShardedStore};

const GROUP: &str = r#"{"zarr_format":3,"node_type":"group","attributes":{}}"#;

fn array_json(shape: &str, chunks: &str) -> String {
    format!(
        r#"{{"zarr_format":3,"node_type":"array","shape":{shape},"data_type":"float32","chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":{chunks}}}}},"chunk_key_encoding":{{"name":"default","configuration":{{"separator":"/"}}}},"fill_value":0.0,"codecs":[{{"name":"bytes","configuration":{{"endian":"little"}}}}],"attributes":{{}}}}"#
    )
}

/// Found while fuzzing the `metadata` target: a 300-byte metadata document naming
/// 2^24 chunks of one element in shards of one chunk made the store allocate one shard slot
/// per shard, over 2 GiB, before anything was stored. Such a grid is refused, and nothing is
/// registered.
#[tokio::test]
async fn a_grid_of_millions_of_shards_is_refused_not_allocated() {
    let blocks: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());
    let zarr = ShardedStore::create(blocks, 1).await.unwrap();
    zarr.set_value("g/zarr.json", GROUP).await.unwrap();
    let err = zarr
        .set_value("g/a/zarr.json", array_json("[16777216]", "[1]"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Layout { .. }), "{err}");
    assert!(zarr.arrays().is_empty());
    // A grid of a million shards is still fine.
    zarr.set_value("g/b/zarr.json", array_json("[1048576]", "[1]"))
        .await
        .unwrap();
    assert_eq!(zarr.arrays().len(), 1);
}
