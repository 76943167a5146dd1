//! `hamt zarr export` with only a gateway URL: the dataset comes through `hamt serve` and a
//! proxy that counts requests, every file byte for byte, the chunks in CAR streams of the
//! tree rather than one request each.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use hamt_test_support::proxy::{Protocol, Proxy};

mod common;
use common::{Served, files_under, ok};

const CHUNKS: usize = 60;

/// A Zarr v3 group with one uint8 array of [`CHUNKS`] chunks, written by hand.
fn write_dataset(dir: &Path) {
    std::fs::create_dir_all(dir.join("t/c")).unwrap();
    std::fs::write(
        dir.join("zarr.json"),
        r#"{"zarr_format":3,"node_type":"group","attributes":{"title":"gateway export"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("t/zarr.json"),
        format!(
            r#"{{"zarr_format":3,"node_type":"array","shape":[{n}],"data_type":"uint8","chunk_grid":{{"name":"regular","configuration":{{"chunk_shape":[100]}}}},"chunk_key_encoding":{{"name":"default","configuration":{{"separator":"/"}}}},"fill_value":0,"codecs":[{{"name":"bytes"}}],"attributes":{{}}}}"#,
            n = CHUNKS * 100
        ),
    )
    .unwrap();
    for i in 0..CHUNKS {
        let chunk: Vec<u8> = (0..100)
            .map(|j| u8::try_from((i * 7 + j) % 251).unwrap())
            .collect();
        std::fs::write(dir.join(format!("t/c/{i}")), chunk).unwrap();
    }
}

#[test]
fn zarr_export_over_a_gateway_streams_the_tree_as_cars() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.zarr");
    write_dataset(&original);
    let store = format!("sled:{}", dir.path().join("db").display());
    let root = ok(&store, &["zarr", "import", original.to_str().unwrap()])
        .trim()
        .to_owned();
    let server = Served::start(&store);
    let proxy = Proxy::start_on_thread(server.addr, Protocol::Http).unwrap();
    let gateway = proxy.url().replacen("http://", "ipfs+http://", 1);

    let out = dir.path().join("exported.zarr");
    ok(&gateway, &["zarr", "export", &root, out.to_str().unwrap()]);
    assert_eq!(files_under(&out), files_under(&original));

    // The listing and the values each come as CAR streams of the tree; one request per
    // chunk would be more than CHUNKS.
    let requests = proxy.requests();
    let cars = requests
        .iter()
        .filter(|r| r.path.contains("format=car"))
        .count();
    assert!(cars >= 1, "{requests:?}");
    assert!(
        requests.len() <= 8,
        "{} requests: {requests:?}",
        requests.len()
    );
}
