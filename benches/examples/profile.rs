//! A workload loop to run under a profiler (`perf record -e cpu-clock -g`):
//! `cargo run --release -p hamt-benches --example profile --
//! [insert|get|get-warm|iterate|remove|fvm-insert|fvm-get] [N] [blocks|inline]` (values in
//! their own blocks, py-hamt's format, or inlined; `fvm-` runs the peer's workload, to compare
//! against without a whole benchmark run). `REPS` sets how many times the workload runs (5).
//!
//! `get` reads every key from a cold root, as the benchmark does; `get-warm` reads them all
//! once, then times a second pass through the same reader, which shows what the cold
//! loads cost.

use std::time::Instant;

use fvm_ipld_blockstore::MemoryBlockstore;
use hamt::Config;
use hamt_benches::{Data, ours};

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_else(|| "insert".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let config = match args.next().as_deref() {
        Some("inline") => Config::new().inline_values(ours::INLINE),
        _ => Config::new(),
    };
    let data = Data::new(n, 8);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = ours::store();
    let root = rt.block_on(ours::insert_flush_with(store.clone(), &data, config));
    let reps: u32 = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let fvm_store = MemoryBlockstore::default();
    let fvm_root = if op.starts_with("fvm") {
        hamt_benches::fvm::insert_flush(&fvm_store, &data)
    } else {
        root
    };
    let start = Instant::now();
    for _ in 0..reps {
        match op.as_str() {
            "insert" => {
                rt.block_on(ours::insert_flush_with(ours::store(), &data, config));
            }
            "get" => {
                rt.block_on(ours::get_all(store.clone(), root, &data));
            }
            "get-warm" => {
                rt.block_on(async {
                    let reader = hamt::HamtReader::open(store.clone(), root)
                        .await
                        .expect("open");
                    let mut pass = Instant::now();
                    for round in ["cold", "warm"] {
                        for (k, _) in &data.pairs {
                            reader.get(k).await.expect("get");
                        }
                        println!("{round} pass: {:.1} ms", pass.elapsed().as_secs_f64() * 1e3);
                        pass = Instant::now();
                    }
                });
            }
            "iterate" => {
                rt.block_on(ours::iterate(store.clone(), root));
            }
            "remove" => {
                rt.block_on(ours::remove_half(store.clone(), root, &data));
            }
            "fvm-insert" => {
                hamt_benches::fvm::insert_flush(&MemoryBlockstore::default(), &data);
            }
            "fvm-get" => {
                hamt_benches::fvm::get_all(&fvm_store, &fvm_root, &data);
            }
            other => panic!("unknown workload {other}"),
        }
    }
    println!(
        "{op} n={n}: {:.1} ms per run",
        start.elapsed().as_secs_f64() * 1e3 / f64::from(reps)
    );
}
