//! The sharded store against real py-hamt 3.6 + xarray + zarr-python (from PyPI, in the xtask
//! venv; `HAMT_TEST_PYTHON`). Without them these tests fail: they never pass silently.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hamt::{BlockStore, Cid, MemoryStore, parse_cid};
use hamt_zarr::ShardedStore;

fn peer(args: &[&str], stdin: Option<&[u8]>) -> serde_json::Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sharded_peer.py");
    serde_json::from_slice(&hamt_test_support::run_python_peer(&script, args, stdin)).unwrap()
}

async fn load(doc: &serde_json::Value) -> (Arc<MemoryStore>, Cid) {
    let blocks = Arc::new(MemoryStore::new());
    for (cid, data) in doc["blocks"].as_object().unwrap() {
        let data = B64.decode(data.as_str().unwrap()).unwrap();
        blocks
            .put_keyed(&parse_cid(cid).unwrap(), data.into())
            .await
            .unwrap();
    }
    (blocks, parse_cid(doc["root"].as_str().unwrap()).unwrap())
}

#[tokio::test]
async fn py_hamt_sharded_dataset_reads_here_in_every_mode_and_replays_to_its_root() {
    let doc = peer(&["write", "5"], None);
    let (blocks, root) = load(&doc).await;
    let expected = common::expected_from_json(&doc["arrays"]);
    assert_eq!(expected.len(), 8);
    let dyn_blocks: Arc<dyn BlockStore> = blocks.clone();
    common::assert_sharded_reads(&dyn_blocks, root, &expected).await;

    // The same store calls, in the same order, give the same root CID.
    let fresh = Arc::new(MemoryStore::new());
    let st = ShardedStore::create(fresh, 5).await.unwrap();
    for op in doc["ops"].as_array().unwrap() {
        let (what, key) = (op[0].as_str().unwrap(), op[1].as_str().unwrap());
        match what {
            "set" => st
                .set_value(key, B64.decode(op[2].as_str().unwrap()).unwrap())
                .await
                .unwrap(),
            "delete" => st.delete(key).await.unwrap(),
            "delete_dir" => st.delete_dir(key).await.unwrap(),
            other => panic!("unknown op {other}"),
        }
    }
    assert_eq!(st.flush().await.unwrap(), root);
}

#[tokio::test]
async fn a_sharded_dataset_written_with_zarrs_reads_in_py_hamt_and_xarray() {
    let blocks = Arc::new(MemoryStore::new());
    let st = Arc::new(ShardedStore::create(blocks.clone(), 4).await.unwrap());
    let expected = common::write_dataset(&st, "g/", 2.5).await;
    let root = st.flush().await.unwrap();

    let mut map = serde_json::Map::new();
    for cid in blocks.cids() {
        map.insert(
            cid.to_string(),
            B64.encode(blocks.get(&cid).await.unwrap()).into(),
        );
    }
    let names: Vec<&String> = expected.keys().collect();
    let input = serde_json::to_vec(
        &serde_json::json!({"root": root.to_string(), "blocks": map, "names": names}),
    )
    .unwrap();
    let out = peer(&["read"], Some(&input));
    assert_eq!(common::expected_from_json(&out["arrays"]), expected);
}

#[tokio::test]
async fn the_converter_gives_py_hamts_root() {
    let doc = peer(&["convert", "4"], None);
    let (blocks, py_root) = load(&doc).await;
    let hamt_root = parse_cid(doc["hamt_root"].as_str().unwrap()).unwrap();
    let before = blocks.len();
    let root = hamt_zarr::hamt_to_sharded(blocks.clone(), hamt_root, 4)
        .await
        .unwrap();
    assert_eq!(root, py_root);
    // Only shards, group documents and the root are new: no chunk bytes were copied.
    assert_eq!(blocks.len(), before);
}

#[tokio::test]
async fn legacy_v1_roots_from_py_hamt_read_here() {
    let doc = peer(&["write-v1"], None);
    let (blocks, root) = load(&doc).await;
    let st = ShardedStore::open(blocks, root).await.unwrap();
    assert_eq!(st.version(), hamt_zarr::Version::V1);
    for (key, value) in doc["values"].as_object().unwrap() {
        let want = B64.decode(value.as_str().unwrap()).unwrap();
        assert_eq!(
            st.get_value(key).await.unwrap().unwrap().as_ref(),
            want.as_slice(),
            "{key}"
        );
    }
    assert_eq!(st.get_value("temp/c/0/1").await.unwrap(), None);
    let keys = st.keys().await.unwrap();
    for key in ["temp/zarr.json", "temp/c/0/0", "temp/c/1/1", "time/c/0"] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
    assert!(matches!(
        st.set_value("x/zarr.json", b"{}".to_vec()).await,
        Err(hamt_zarr::Error::ReadOnly)
    ));
}
