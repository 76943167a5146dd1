//! Interop with real xarray + zarr-python + py-hamt 3.6 (from PyPI), run by `cargo xtask test`,
//! which creates the venv and sets `HAMT_TEST_PYTHON`. Without it these tests fail: they never
//! pass silently.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hamt::{BlockStore, Cid, MemoryStore, parse_cid};
use hamt_zarr::{Encryption, EncryptionKey, HamtStore};

const HEADER: &str = "interop-header";

fn peer(args: &[&str], stdin: Option<&[u8]>) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/peer.py");
    let out = hamt_test_support::run_python_peer(&script, args, stdin);
    serde_json::from_slice(&out).unwrap()
}

/// The blocks and root of a peer's output, in a memory store that verifies what it is given.
async fn load(doc: &serde_json::Value) -> (Arc<MemoryStore>, Cid) {
    let blocks = Arc::new(MemoryStore::new());
    for (cid, data) in doc["blocks"].as_object().unwrap() {
        let cid = parse_cid(cid).unwrap();
        let data = B64.decode(data.as_str().unwrap()).unwrap();
        blocks.put_keyed(&cid, data.into()).await.unwrap();
    }
    (blocks, parse_cid(doc["root"].as_str().unwrap()).unwrap())
}

async fn dump(blocks: &MemoryStore, root: Cid, names: &[&String]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for cid in blocks.cids() {
        let data = blocks.get(&cid).await.unwrap();
        map.insert(cid.to_string(), B64.encode(&data).into());
    }
    serde_json::to_vec(
        &serde_json::json!({"root": root.to_string(), "blocks": map, "names": names}),
    )
    .unwrap()
}

async fn assert_reads(store: &Arc<HamtStore>, expected: &BTreeMap<String, common::Expected>) {
    assert!(!expected.is_empty());
    for (path, want) in expected {
        let got = common::read_array(store, path).await.unwrap();
        assert_eq!(&got, want, "{path}");
    }
}

fn key_hex(key: &EncryptionKey) -> String {
    use std::fmt::Write as _;
    key.as_bytes().iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

#[tokio::test]
async fn xarray_dataset_reads_with_zarrs_and_rebuilds_to_the_same_root() {
    let doc = peer(&["write"], None);
    let (blocks, root) = load(&doc).await;
    let store = Arc::new(HamtStore::open(blocks.clone(), root).await.unwrap());
    let expected = common::expected_from_json(&doc["arrays"]);
    assert_eq!(expected.len(), 6);
    assert_reads(&store, &expected).await;

    let info = hamt_zarr::dataset_info(&store).await.unwrap();
    let temp = info
        .nodes
        .iter()
        .find(|n| n.path == "temp")
        .unwrap()
        .array
        .clone()
        .unwrap();
    assert_eq!(
        (temp.shape, temp.chunk_shape, temp.stored_chunks),
        (vec![6, 10, 12], vec![2, 5, 4], 18)
    );

    // The same keys and values written here give py-hamt's root.
    let copy = HamtStore::builder(Arc::new(MemoryStore::new()))
        .build()
        .await
        .unwrap();
    for key in store.keys_with_prefix("").await.unwrap() {
        copy.set_value(&key, store.get_value(&key).await.unwrap().unwrap())
            .await
            .unwrap();
    }
    assert_eq!(copy.flush().await.unwrap(), root);
}

#[tokio::test]
async fn zarrs_dataset_reads_in_xarray_with_the_same_root() {
    let blocks = Arc::new(MemoryStore::new());
    let store = Arc::new(HamtStore::builder(blocks.clone()).build().await.unwrap());
    let expected = common::write_dataset(&store, "", 0.5).await;
    let root = store.flush().await.unwrap();

    let names: Vec<&String> = expected.keys().collect();
    let out = peer(&["read"], Some(&dump(&blocks, root, &names).await));
    assert_eq!(common::expected_from_json(&out["arrays"]), expected);
    assert_eq!(out["rebuilt_root"].as_str().unwrap(), root.to_string());
}

#[tokio::test]
async fn encrypted_variables_from_py_hamt_read_here() {
    let key = EncryptionKey::generate();
    let doc = peer(&["write-encrypted", &key_hex(&key), HEADER], None);
    let (blocks, root) = load(&doc).await;
    let expected = common::expected_from_json(&doc["arrays"]);
    assert_eq!(expected.len(), 12);
    // py-hamt wrote public/ (and the root group) with ZarrHAMTStore, private/ with
    // SimpleEncryptedZarrHAMTStore.
    let enc = Encryption::new(key, HEADER.as_bytes().to_vec())
        .keep_clear("public/")
        .keep_clear("zarr.json");
    let store = Arc::new(
        HamtStore::builder(blocks.clone())
            .root(root)
            .read_only()
            .encryption(enc)
            .build()
            .await
            .unwrap(),
    );
    assert_reads(&store, &expected).await;

    let wrong = Encryption::new(EncryptionKey::generate(), HEADER.as_bytes().to_vec())
        .keep_clear("public/")
        .keep_clear("zarr.json");
    let wrong = Arc::new(
        HamtStore::builder(blocks)
            .root(root)
            .read_only()
            .encryption(wrong)
            .build()
            .await
            .unwrap(),
    );
    let err = common::read_array(&wrong, "private/temp")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("authentication failed"), "{err}");
}

#[tokio::test]
async fn encrypted_variables_written_here_read_in_py_hamt() {
    let key = EncryptionKey::generate();
    let blocks = Arc::new(MemoryStore::new());
    let enc = Encryption::new(key.clone(), HEADER.as_bytes().to_vec()).keep_clear("public/");
    let store = Arc::new(
        HamtStore::builder(blocks.clone())
            .encryption(enc)
            .build()
            .await
            .unwrap(),
    );
    let mut expected = common::write_dataset(&store, "public/", 2.0).await;
    expected.extend(common::write_dataset(&store, "private/", 3.0).await);
    let root = store.flush().await.unwrap();

    let names: Vec<&String> = expected.keys().collect();
    let input = dump(&blocks, root, &names).await;
    let out = peer(&["read-encrypted", &key_hex(&key), HEADER], Some(&input));
    assert_eq!(common::expected_from_json(&out["arrays"]), expected);
}
