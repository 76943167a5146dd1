//! A real IPFS client reads through the gateway: helia from npm (`@helia/http` with the
//! gateway as its only router and trustless-gateway broker, BLAKE3 registered), pinned in
//! `xtask/helia`, walks whole HAMTs and a Zarr dataset written with `zarrs`, verifying every
//! block, and `@ipld/car` reads every CAR response (order, duplicates, completeness, and path
//! CARs checked from the root down). Run by `cargo xtask test`, which installs it and sets
//! `HAMT_TEST_HELIA_DIR`; without it this test fails.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt as _;
use hamt::{Cid, Config, Hamt, HamtReader, HashAlg, MemoryStore};
use hamt_gateway::Gateway;
use hamt_zarr::HamtStore;
use zarrs::array::{ArrayBuilder, data_type};
use zarrs::group::GroupBuilder;

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    HashAlg::Sha2_256
        .digest(bytes)
        .digest()
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Every key of the HAMT at `root` with the SHA-256 of its value, read here.
async fn expected(store: &MemoryStore, root: Cid) -> BTreeMap<String, String> {
    let reader = HamtReader::open(Arc::new(store.clone()), root)
        .await
        .unwrap();
    let all: Vec<(String, bytes::Bytes)> = reader.iter().try_collect().await.unwrap();
    all.into_iter().map(|(k, v)| (k, sha256_hex(&v))).collect()
}

/// A Zarr v3 group with a 3-D `t2m` array (24 chunks) and a 1-D `time` coordinate,
/// written by `zarrs` through `HamtStore`.
async fn zarr_dataset(blocks: &MemoryStore) -> Cid {
    let store = Arc::new(
        HamtStore::builder(Arc::new(blocks.clone()))
            .build()
            .await
            .unwrap(),
    );
    GroupBuilder::new()
        .build(store.clone(), "/")
        .unwrap()
        .async_store_metadata()
        .await
        .unwrap();
    let zstd: Arc<dyn zarrs::array::BytesToBytesCodecTraits> =
        Arc::new(zarrs::array::codec::ZstdCodec::new(3, false));
    let t2m = ArrayBuilder::new(vec![8, 12, 12], vec![4, 4, 4], data_type::float32(), 0f32)
        .bytes_to_bytes_codecs(vec![zstd])
        .dimension_names(Some(["time", "lat", "lon"]))
        .build_arc(store.clone(), "/t2m")
        .unwrap();
    t2m.async_store_metadata().await.unwrap();
    #[allow(clippy::cast_precision_loss)]
    let values: Vec<f32> = (0..8 * 12 * 12).map(|i| 250.0 + i as f32 * 0.125).collect();
    t2m.async_store_array_subset(&t2m.subset_all(), &values[..])
        .await
        .unwrap();
    let time = ArrayBuilder::new(vec![8], vec![8], data_type::int64(), 0i64)
        .build_arc(store.clone(), "/time")
        .unwrap();
    time.async_store_metadata().await.unwrap();
    let times: Vec<i64> = (1..=8).collect();
    time.async_store_array_subset(&time.subset_all(), &times[..])
        .await
        .unwrap();
    store.flush().await.unwrap()
}

/// A map with values of many sizes (up to 200 KiB, some shared by several keys) and one
/// whose values of up to 64 bytes are inline, as identity CIDs.
async fn hamts(store: &MemoryStore) -> (Cid, Cid) {
    let mut map = Hamt::new(Arc::new(store.clone()));
    map.extend((0..1500).map(|i| {
        let len = [0, 1, 100, 4096, 200 << 10][i % 5];
        let shared = i % 7 == 0;
        let seed = if shared { 7 } else { i };
        (
            format!("chunks/{i}"),
            (0..len)
                .map(|j| u8::try_from((seed * 31 + j) % 251).unwrap())
                .collect::<Vec<u8>>(),
        )
    }))
    .await
    .unwrap();
    map.insert("with space/é", b"unicode key".to_vec())
        .await
        .unwrap();
    let plain = map.flush().await.unwrap();
    let mut inline =
        Hamt::with_config(Arc::new(store.clone()), Config::new().inline_values(64)).unwrap();
    inline
        .extend((0..300).map(|i| (format!("small/{i}"), format!("v{i}").into_bytes())))
        .await
        .unwrap();
    let inline = inline.flush().await.unwrap();
    (plain, inline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helia_walks_hamts_and_zarr_through_the_gateway_and_verifies_every_block() {
    let dir = std::path::PathBuf::from(hamt_test_support::required_env("HAMT_TEST_HELIA_DIR"));
    let store = MemoryStore::new();

    let (plain, inline) = hamts(&store).await;
    let zarr = zarr_dataset(&store).await;

    let gateway = Gateway::new(Arc::new(store.clone()));
    let server = gateway.spawn("127.0.0.1:0").await.unwrap();
    let paths = [
        (zarr, "t2m/zarr.json"),
        (zarr, "t2m/c/1/2/0"),
        (zarr, "zarr.json"),
        (plain, "with space/é"),
        (plain, "chunks/4"),
        (inline, "small/7"),
    ];
    let job = serde_json::json!({
        "hamts": [plain.to_string(), inline.to_string()],
        "zarr": [zarr.to_string()],
        "paths": paths.iter().map(|(r, k)| [r.to_string(), (*k).to_owned()]).collect::<Vec<_>>(),
    });
    let url = server.url().to_owned();
    let script = dir.join("client.mjs");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .arg(&url)
            .arg(job.to_string())
            .current_dir(script.parent().unwrap())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the helia client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    for root in [plain, inline] {
        let got = &report["hamts"][root.to_string()];
        let values: BTreeMap<String, String> =
            serde_json::from_value(got["values"].clone()).unwrap();
        assert_eq!(values, expected(&store, root).await, "{root}");
        let stats = HamtReader::open(Arc::new(store.clone()), root)
            .await
            .unwrap()
            .stats()
            .await
            .unwrap();
        assert_eq!(got["nodes"].as_u64(), Some(stats.nodes), "{root}");
        assert_eq!(got["cars"]["block_scope"], 1);
    }
    // Shared values: the dups=y stream sends them each time, dups=n once.
    let cars = &report["hamts"][plain.to_string()]["cars"];
    assert!(cars["dups_y"].as_u64().unwrap() > cars["dups_n"].as_u64().unwrap());

    let z = &report["zarr"][zarr.to_string()];
    let values: BTreeMap<String, String> = serde_json::from_value(z["values"].clone()).unwrap();
    assert_eq!(values, expected(&store, zarr).await);
    assert_eq!(z["arrays"]["t2m"]["expected"], 2 * 3 * 3);
    assert_eq!(z["arrays"]["t2m"]["present"], 2 * 3 * 3);
    assert_eq!(z["arrays"]["time"]["present"], 1);

    let reports = report["paths"].as_array().unwrap();
    assert_eq!(reports.len(), paths.len());
    for ((root, key), got) in paths.iter().zip(reports) {
        let value = HamtReader::open(Arc::new(store.clone()), *root)
            .await
            .unwrap()
            .get(key)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got["sha256"], sha256_hex(&value), "{key}");
    }
    // Helia fetched the blocks itself, through `?format=raw`.
    let distinct = store.len() as u64;
    assert!(report["blocks_fetched_by_helia"].as_u64().unwrap() > distinct / 2);
    assert_eq!(gateway.metrics().corrupt_blocks(), 0);
    server.shutdown().await.unwrap();
}
