//! Writes and reads N small values through `KuboStore` and through py-hamt's `KuboCAS`
//! against the same IPFS node in the same run, and the node's own pipelined `block/put`
//! rate as the ceiling. Run by `cargo xtask bench kubo`, which starts the node and passes
//! `HAMT_BENCH_KUBO_RPC` and `HAMT_BENCH_PYTHON`.
//!
//! `kubo_load [N]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use hamt::{BlockStore, Codec, Hamt, HamtReader};
use hamt_store_kubo::{KuboStoreBuilder, ReadFrom};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(10_000), |s| s.parse())?;
    let rpc = std::env::var("HAMT_BENCH_KUBO_RPC")?;
    let python = std::env::var("HAMT_BENCH_PYTHON")?;
    let kubo = KuboStoreBuilder::new()
        .rpc_url(rpc.parse()?)
        .read_from(ReadFrom::Rpc)
        .timeout(Duration::from_secs(30))
        .build()?;
    let store: Arc<dyn BlockStore> = Arc::new(kubo.clone());

    // The ceiling: the node's own rate for the same number of small blocks, 32 in flight.
    let blocks: Vec<Bytes> = (0..n)
        .map(|i| Bytes::from(format!("raw value {i}")))
        .collect();
    let start = Instant::now();
    let puts: Vec<_> = futures::stream::iter(blocks)
        .map(|b| kubo.put(Codec::Raw, b))
        .buffer_unordered(32)
        .collect()
        .await;
    let raw_s = start.elapsed().as_secs_f64();
    for p in puts {
        p?;
    }

    let start = Instant::now();
    let mut map = Hamt::new(store.clone());
    map.extend((0..n).map(|i| (format!("rs/{i}"), format!("rs value {i}").into_bytes())))
        .await?;
    let root = map.flush().await?;
    let write_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let reader = HamtReader::open(store.clone(), root).await?;
    let gets: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let reader = reader.clone();
            async move { reader.get(&format!("rs/{i}")).await }
        })
        .buffered(32)
        .collect()
        .await;
    let read_s = start.elapsed().as_secs_f64();
    for (i, g) in gets.into_iter().enumerate() {
        if g?.as_deref() != Some(format!("rs value {i}").as_bytes()) {
            return Err(format!("wrong value for rs/{i}").into());
        }
    }

    let (py_write, py_read) = py_hamt(store, &rpc, python, n).await?;

    #[allow(clippy::cast_precision_loss)]
    let per_s = |s: f64| n as f64 / s;
    println!(
        "\n{:<52} {:>10} {:>12}",
        format!("IPFS node, {n} small values"),
        "seconds",
        "values/s"
    );
    println!(
        "{:<52} {:>10.2} {:>12.0}",
        "node ceiling: pipelined block/put (32 in flight)",
        raw_s,
        per_s(raw_s)
    );
    println!(
        "{:<52} {:>10.2} {:>12.0}",
        "KuboStore: HAMT insert + flush",
        write_s,
        per_s(write_s)
    );
    println!(
        "{:<52} {:>10.2} {:>12.0}",
        "py-hamt KuboCAS: HAMT set + make_read_only",
        py_write,
        per_s(py_write)
    );
    println!(
        "{:<52} {:>10.2} {:>12.0}",
        "KuboStore: get every key (RPC block/get)",
        read_s,
        per_s(read_s)
    );
    println!(
        "{:<52} {:>10.2} {:>12.0}",
        "py-hamt KuboCAS: get every key (via hamt-gateway)",
        py_read,
        per_s(py_read)
    );
    println!(
        "write: py-hamt / KuboStore = {:.1}x; read: {:.1}x",
        py_write / write_s,
        py_read / read_s
    );
    Ok(())
}

/// py-hamt's write and read times for the same workload; it reads through this project's
/// gateway in front of the node (the JavaScript node's gateway cannot serve DAG-CBOR blocks).
async fn py_hamt(
    store: Arc<dyn BlockStore>,
    rpc: &str,
    python: String,
    n: usize,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    // py-hamt reads through this project's gateway in front of the node (the JavaScript
    // node's gateway cannot serve DAG-CBOR blocks).
    let server = hamt_gateway::Gateway::new(store)
        .spawn("127.0.0.1:0")
        .await?;
    let gateway = server.url().to_owned();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/pyhamt_kubo_bench.py");
    let rpc_arg = rpc.trim_end_matches('/').to_owned();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .env("PYTHONWARNINGS", "ignore")
            .args([script, &rpc_arg, &gateway, &n.to_string()])
            .output()
    })
    .await??;
    server.shutdown().await?;
    if !out.status.success() {
        return Err(format!("py-hamt failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let py: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok((
        py["write_s"].as_f64().unwrap_or(f64::NAN),
        py["read_s"].as_f64().unwrap_or(f64::NAN),
    ))
}
