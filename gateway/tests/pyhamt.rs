//! py-hamt 3.6 from PyPI reads a HAMT this project wrote, through the gateway on loopback,
//! exactly as it reads from Kubo: `KuboCAS(gateway_base_url=…, verify_content=True)`.
//! Run by `cargo xtask test`, which sets `HAMT_TEST_PYTHON`; without it this test fails.

// Tests fail by panicking; unwrapping is how they say what broke.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hamt::{Hamt, MemoryStore};
use hamt_gateway::Gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_hamt_reads_every_key_through_the_gateway() {
    let store = MemoryStore::new();
    let mut map = Hamt::new(Arc::new(store.clone()));
    let expected: BTreeMap<String, Vec<u8>> = (0..2000)
        .map(|i| {
            (
                format!("chunks/{i}"),
                format!("value number {i}").into_bytes(),
            )
        })
        .collect();
    map.extend(expected.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .await
        .unwrap();
    let root = map.flush().await.unwrap();

    let gateway = Gateway::new(Arc::new(store));
    let server = gateway.spawn("127.0.0.1:0").await.unwrap();
    let url = server.url().to_owned();

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_via_gateway.py");
    let root_text = root.to_string();
    let stdout = tokio::task::spawn_blocking(move || {
        hamt_test_support::run_python_peer(&script, &[url.as_str(), root_text.as_str()], None)
    })
    .await
    .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let decode = |name: &str| -> BTreeMap<String, Vec<u8>> {
        doc[name]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), B64.decode(v.as_str().unwrap()).unwrap()))
            .collect()
    };
    assert_eq!(decode("values"), expected);
    let slices = decode("slices");
    for (k, v) in &expected {
        assert_eq!(slices[k], v[1..4], "{k}");
    }
    assert!(gateway.metrics().requests() > 2 * expected.len() as u64);
    server.shutdown().await.unwrap();
}
