//! Small-block GETs against this project's gateway (`hamt serve` over sled, its own process)
//! and the JavaScript IPFS node's gateway, same raw blocks, same run: requests per second
//! and latency percentiles at several concurrency levels. Run by `cargo xtask bench gateway`,
//! which starts the node and passes `HAMT_BENCH_KUBO_RPC`, `HAMT_BENCH_KUBO_GATEWAY` and
//! `HAMT_BENCH_HAMT_BIN` (a release `hamt`). Every request is bounded: a fixed count per
//! level, a 10 s timeout each, loopback only.
//!
//! `gateway_load [REQUESTS_PER_LEVEL]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hamt::{BlockStore, Cid, Codec};
use hamt_store_sled::SledStore;

const BLOCKS: usize = 1000;
const BLOCK_BYTES: usize = 1024;
const LEVELS: [usize; 3] = [1, 16, 64];

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .map_err(|_| format!("{name} is not set: run with `cargo xtask bench gateway`"))
}

struct Level {
    concurrency: usize,
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    errors: usize,
}

async fn load(base: &str, cids: &[Cid], concurrency: usize, requests: usize) -> Level {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("HTTP client");
    let urls: Arc<Vec<String>> =
        Arc::new(cids.iter().map(|c| format!("{base}/ipfs/{c}")).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, urls, next) = (client.clone(), urls.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        break;
                    }
                    let t = Instant::now();
                    let ok = match client.get(&urls[i % urls.len()]).send().await {
                        Ok(r) if r.status().is_success() => {
                            r.bytes().await.is_ok_and(|b| b.len() == BLOCK_BYTES)
                        }
                        _ => false,
                    };
                    latencies.push(t.elapsed().as_secs_f64());
                    if !ok {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.expect("load worker");
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    // The `per_mille`th latency in milliseconds, by nearest rank.
    let pct = |per_mille: usize| {
        let rank = latencies.len().saturating_sub(1) * per_mille / 1000;
        latencies.get(rank).copied().unwrap_or(f64::NAN) * 1e3
    };
    #[allow(clippy::cast_precision_loss)]
    let rps = requests as f64 / elapsed;
    Level {
        concurrency,
        rps,
        p50_ms: pct(500),
        p90_ms: pct(900),
        p99_ms: pct(990),
        errors,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let requests: usize = std::env::args().nth(1).map_or(Ok(3000), |s| s.parse())?;
    let rpc = env("HAMT_BENCH_KUBO_RPC")?;
    let js_gateway = env("HAMT_BENCH_KUBO_GATEWAY")?;
    let hamt_bin = env("HAMT_BENCH_HAMT_BIN")?;

    // The same raw blocks in a sled store and in the node.
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("db");
    let kubo = hamt_store_kubo::KuboStoreBuilder::new()
        .rpc_url(url::Url::parse(&rpc)?)
        .build()?;
    let mut cids = Vec::with_capacity(BLOCKS);
    {
        let sled = SledStore::open(&db)?;
        for i in 0..BLOCKS {
            let data: Bytes = (0..BLOCK_BYTES)
                .map(|j| u8::try_from((i * 31 + j) % 251).unwrap_or(0))
                .collect::<Vec<u8>>()
                .into();
            let cid = sled.put(Codec::Raw, data.clone()).await?;
            kubo.put_keyed(&cid, data).await?;
            cids.push(cid);
        }
        sled.flush().await?;
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let ours = format!("http://127.0.0.1:{port}");
    let mut server = std::process::Command::new(&hamt_bin)
        .arg("--store")
        .arg(format!("sled:{}", db.display()))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = server.kill();
            return Err("hamt serve did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut rows = Vec::new();
    for (name, base) in [
        ("hamt serve (sled)", ours.as_str()),
        ("js-ipfs gateway", js_gateway.trim_end_matches('/')),
    ] {
        load(base, &cids[..100], 4, 200).await; // warm connections and caches
        for concurrency in LEVELS {
            let level = load(base, &cids, concurrency, requests).await;
            rows.push((name, level));
        }
    }
    hamt_test_support::terminate(&mut server, std::time::Duration::from_secs(5));

    println!(
        "\n{:<20} {:>6} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "gateway (1 KiB blocks)", "conc", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors"
    );
    let mut json = Vec::new();
    for (name, l) in &rows {
        println!(
            "{name:<20} {:>6} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            l.concurrency, l.rps, l.p50_ms, l.p90_ms, l.p99_ms, l.errors
        );
        json.push(serde_json::json!({"gateway": name, "concurrency": l.concurrency, "rps": l.rps, "p50_ms": l.p50_ms, "p90_ms": l.p90_ms, "p99_ms": l.p99_ms, "errors": l.errors}));
    }
    for concurrency in LEVELS {
        let rate = |n: &str| {
            rows.iter()
                .find(|(g, l)| *g == n && l.concurrency == concurrency)
                .map(|(_, l)| l.rps)
        };
        if let (Some(a), Some(b)) = (rate("hamt serve (sled)"), rate("js-ipfs gateway")) {
            println!(
                "concurrency {concurrency:>2}: hamt serve / js-ipfs throughput = {:.1}x",
                a / b
            );
        }
    }
    println!("{}", serde_json::Value::Array(json));
    if rows.iter().any(|(_, l)| l.errors > 0) {
        return Err("some requests failed".into());
    }
    Ok(())
}
