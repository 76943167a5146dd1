//! Interop with real py-hamt 3.6 (from PyPI), run by `cargo xtask test`, which creates the
//! venv and sets `HAMT_TEST_PYTHON`. Without it these tests fail: they never pass silently.
//!
//! For each value mode and bucket size, py-hamt builds a HAMT (shuffled inserts, deletes,
//! overwrites); this crate must (1) read every key from py-hamt's blocks, (2) produce the same
//! root CID and the very same set of blocks from the same operations done in another order,
//! and (3) py-hamt must read every key back from the blocks this crate wrote.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hamt::{BlockStore, Cid, Config, Hamt, HamtReader, MemoryStore, parse_cid};
use ipld_core::ipld::Ipld;

const N: usize = 3000;

fn run_python(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pyhamt/vectors.py");
    hamt_test_support::run_python_peer(&script, args, stdin)
}

/// The value py-hamt's script stores for `i`, as the bytes of its value block.
fn value(i: usize, mode: &str) -> Vec<u8> {
    if mode == "bytes" {
        return format!("value-{i}").into_bytes().repeat(1 + i % 3);
    }
    let i64v = i64::try_from(i).unwrap();
    let map: BTreeMap<String, Ipld> = [
        ("i".to_string(), Ipld::Integer(i64v.into())),
        ("s".to_string(), Ipld::String(format!("v{i}"))),
        (
            "l".to_string(),
            Ipld::List(vec![
                Ipld::Integer(i64v.into()),
                Ipld::Integer((-i64v).into()),
                Ipld::Float(1.5),
            ]),
        ),
        (
            "b".to_string(),
            Ipld::Bytes(vec![u8::try_from(i % 256).unwrap()]),
        ),
    ]
    .into();
    serde_ipld_dagcbor::to_vec(&Ipld::Map(map)).unwrap()
}

/// The final contents after the script's inserts, deletes and overwrites.
fn expected(mode: &str) -> BTreeMap<String, Vec<u8>> {
    let mut map = BTreeMap::new();
    for i in 0..N {
        map.insert(format!("key-{i}"), value(i, mode));
    }
    for i in (0..N).step_by(3) {
        map.remove(&format!("key-{i}"));
    }
    for i in (1..N).step_by(5) {
        map.insert(format!("key-{i}"), value(i + N, mode));
    }
    map
}

struct Vectors {
    root: Cid,
    blocks: HashMap<Cid, Vec<u8>>,
}

fn py_write(bucket: usize, mode: &str) -> Vectors {
    let out = run_python(&["write", &N.to_string(), &bucket.to_string(), mode], None);
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let root = parse_cid(doc["root"].as_str().unwrap()).unwrap();
    let blocks = doc["blocks"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(c, d)| {
            (
                parse_cid(c).unwrap(),
                B64.decode(d.as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    Vectors { root, blocks }
}

async fn check(bucket: usize, mode: &str) {
    let py = py_write(bucket, mode);
    let want = expected(mode);

    // 1. Read py-hamt's blocks.
    let theirs = MemoryStore::new();
    for (cid, data) in &py.blocks {
        theirs.put_keyed(cid, data.clone().into()).await.unwrap();
    }
    let reader = HamtReader::open(Arc::new(theirs), py.root).await.unwrap();
    assert_eq!(reader.len().await.unwrap(), want.len() as u64);
    for (k, v) in &want {
        assert_eq!(
            reader.get(k).await.unwrap().as_deref(),
            Some(&v[..]),
            "{mode} {bucket}: {k}"
        );
    }

    // 2. Same operations, another order: same root, same blocks.
    let ours = MemoryStore::new();
    let mut map = Hamt::with_config(
        Arc::new(ours.clone()),
        Config::new().max_bucket_size(bucket),
    )
    .unwrap();
    for i in (0..N).rev() {
        map.insert(&format!("key-{i}"), value(i, mode))
            .await
            .unwrap();
    }
    map.flush().await.unwrap();
    for i in (0..N).step_by(3) {
        assert!(map.remove(&format!("key-{i}")).await.unwrap().is_some());
    }
    for i in (1..N).step_by(5) {
        map.insert(&format!("key-{i}"), value(i + N, mode))
            .await
            .unwrap();
    }
    let root = map.flush().await.unwrap();
    assert_eq!(
        root, py.root,
        "{mode} {bucket}: root CID differs from py-hamt's"
    );
    // Ours also holds the first flush's nodes; every py-hamt block must be among ours, and
    // every block reachable from the root must be one of py-hamt's.
    let our_cids: BTreeSet<Cid> = ours.cids().into_iter().collect();
    for (cid, data) in &py.blocks {
        assert!(
            our_cids.contains(cid),
            "{mode} {bucket}: missing py-hamt block {cid}"
        );
        assert_eq!(&ours.get(cid).await.unwrap()[..], &data[..]);
    }
    let mut car = Vec::new();
    let store: Arc<dyn BlockStore> = Arc::new(ours.clone());
    hamt::car::export_car(&store, root, &mut car).await.unwrap();
    let mut reader = hamt::car::CarReader::new(&car[..]).await.unwrap();
    let mut reachable = Vec::new();
    while let Some((cid, data)) = reader.next_block().await.unwrap() {
        assert!(
            py.blocks.contains_key(&cid),
            "{mode} {bucket}: block {cid} unknown to py-hamt"
        );
        reachable.push((cid, data));
    }

    // 3. py-hamt reads what we wrote (only the blocks reachable from our root).
    let blocks: serde_json::Map<String, serde_json::Value> = reachable
        .iter()
        .map(|(c, d)| (c.to_string(), B64.encode(d).into()))
        .collect();
    let doc = serde_json::json!({ "root": root.to_string(), "blocks": blocks });
    let out = run_python(
        &["read", &bucket.to_string(), mode],
        Some(doc.to_string().as_bytes()),
    );
    let read: BTreeMap<String, String> = serde_json::from_slice(&out).unwrap();
    let read: BTreeMap<String, Vec<u8>> = read
        .into_iter()
        .map(|(k, v)| (k, B64.decode(v).unwrap()))
        .collect();
    assert_eq!(
        read, want,
        "{mode} {bucket}: py-hamt read different contents"
    );
}

#[tokio::test]
async fn bytes_values_bucket_4() {
    check(4, "bytes").await;
}

#[tokio::test]
async fn cbor_values_bucket_4() {
    check(4, "cbor").await;
}

#[tokio::test]
async fn bytes_values_bucket_1() {
    check(1, "bytes").await;
}

#[tokio::test]
async fn cbor_values_bucket_3() {
    check(3, "cbor").await;
}
