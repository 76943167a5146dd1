//! Our HAMT against `fvm_ipld_hamt`, same workloads, same process, printed as ratios.
//!
//! `cargo xtask bench` runs this (and the py-hamt and memory comparisons) and prints one
//! table. Environment: `HAMT_BENCH_QUICK=1` for a smoke run; `HAMT_BENCH_OUT=FILE` to write
//! the medians as JSON. Sizes up to 100k keys are measured by criterion; 1M-key workloads take
//! seconds per run, so they are timed as the median of 3 runs outside criterion.

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use fvm_ipld_blockstore::MemoryBlockstore;
use hamt::BlockStore;
use hamt_benches::{Data, Results, fvm, ours};

const OURS: &str = "hamt (py-hamt format)";
const FVM: &str = "fvm_ipld_hamt";

struct Ctx {
    rt: tokio::runtime::Runtime,
    results: RefCell<Results>,
    /// Our root CID for each `(n, value_len)`, so that `cargo xtask bench` can check it
    /// against py-hamt's root for the same data.
    roots: RefCell<Vec<serde_json::Value>>,
}

impl Ctx {
    /// Times `op` once after an untimed `setup`, recording the run.
    fn time<S, T>(
        &self,
        name: &str,
        implementation: &str,
        setup: impl FnOnce() -> S,
        op: impl FnOnce(S) -> T,
    ) -> Duration {
        let input = setup();
        let start = Instant::now();
        black_box(op(input));
        let elapsed = start.elapsed();
        self.results
            .borrow_mut()
            .record(name, implementation, elapsed.as_secs_f64());
        elapsed
    }
}

/// One workload on both implementations; `ours` and `peer` each run one timed operation.
fn workload(
    c: &mut Criterion,
    ctx: &Ctx,
    name: &str,
    use_criterion: bool,
    mut ours: impl FnMut(&Ctx) -> Duration,
    mut peer: impl FnMut(&Ctx) -> Duration,
) {
    if use_criterion {
        let mut group = c.benchmark_group(name);
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function(OURS, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| ours(ctx)).sum());
        });
        group.bench_function(FVM, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| peer(ctx)).sum());
        });
        group.finish();
    } else {
        for _ in 0..3 {
            ours(ctx);
            peer(ctx);
        }
    }
}

fn bench_size(c: &mut Criterion, ctx: &Ctx, n: usize, value_len: usize, use_criterion: bool) {
    let data = Data::new(n, value_len);
    let label = |op: &str| format!("{op} n={n} value={value_len}B");

    // Prepared trees for the read and remove workloads, built once.
    let our_store: Arc<dyn BlockStore> = ours::store();
    let our_root = ctx
        .rt
        .block_on(ours::insert_flush(our_store.clone(), &data));
    ctx.roots
        .borrow_mut()
        .push(serde_json::json!({ "n": n, "value_len": value_len, "root": our_root.to_string() }));
    let fvm_store = MemoryBlockstore::new();
    let fvm_root = fvm::insert_flush(&fvm_store, &data);

    let name = label("insert+flush");
    workload(
        c,
        ctx,
        &name,
        use_criterion,
        |ctx| {
            ctx.time(&name, OURS, ours::store, |s| {
                ctx.rt.block_on(ours::insert_flush(s, &data))
            })
        },
        |ctx| {
            ctx.time(&name, FVM, MemoryBlockstore::new, |s| {
                fvm::insert_flush(&s, &data)
            })
        },
    );
    let name = label("get-all cold");
    workload(
        c,
        ctx,
        &name,
        use_criterion,
        |ctx| {
            ctx.time(
                &name,
                OURS,
                || our_store.clone(),
                |s| ctx.rt.block_on(ours::get_all(s, our_root, &data)),
            )
        },
        |ctx| {
            ctx.time(
                &name,
                FVM,
                || (),
                |()| fvm::get_all(&fvm_store, &fvm_root, &data),
            )
        },
    );
    let name = label("iterate");
    workload(
        c,
        ctx,
        &name,
        use_criterion,
        |ctx| {
            ctx.time(
                &name,
                OURS,
                || our_store.clone(),
                |s| ctx.rt.block_on(ours::iterate(s, our_root)),
            )
        },
        |ctx| ctx.time(&name, FVM, || (), |()| fvm::iterate(&fvm_store, &fvm_root)),
    );
    let name = label("remove-half+flush");
    workload(
        c,
        ctx,
        &name,
        use_criterion,
        |ctx| {
            ctx.time(
                &name,
                OURS,
                || our_store.clone(),
                |s| ctx.rt.block_on(ours::remove_half(s, our_root, &data)),
            )
        },
        |ctx| {
            ctx.time(
                &name,
                FVM,
                || (),
                |()| fvm::remove_half(&fvm_store, &fvm_root, &data),
            )
        },
    );
}

fn main() {
    let quick = std::env::var_os("HAMT_BENCH_QUICK").is_some();
    let ctx = Ctx {
        rt: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime"),
        results: RefCell::default(),
        roots: RefCell::default(),
    };
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(if quick { 10 } else { 300 }))
        .measurement_time(Duration::from_millis(if quick { 50 } else { 2000 }))
        .without_plots()
        .configure_from_args();

    let sizes: Vec<(usize, usize, bool)> = if let Ok(list) = std::env::var("HAMT_BENCH_SIZES") {
        // `N:VALUE_BYTES,...`, e.g. `100000:8,1000000:1024`.
        list.split(',')
            .filter_map(|item| {
                let (n, v) = item.split_once(':')?;
                let n: usize = n.trim().parse().ok()?;
                Some((n, v.trim().parse().ok()?, n <= 100_000))
            })
            .collect()
    } else if quick {
        vec![(2_000, 8, true), (2_000, 1024, false)]
    } else {
        vec![
            (10_000, 8, true),
            (10_000, 1024, true),
            (100_000, 8, true),
            (100_000, 1024, true),
            (1_000_000, 8, false),
            (1_000_000, 1024, false),
        ]
    };
    for (n, value_len, use_criterion) in sizes {
        bench_size(&mut c, &ctx, n, value_len, use_criterion);
    }
    c.final_summary();

    let results = ctx.results.take();
    println!(
        "\n{:<40} {:>12} {:>12} {:>10}",
        "workload", "ours (ms)", "fvm (ms)", "ours/fvm"
    );
    let mut rows = Vec::new();
    for op in results.ops() {
        let (Some(a), Some(b)) = (results.median(op, OURS), results.median(op, FVM)) else {
            continue;
        };
        println!(
            "{op:<40} {:>12.2} {:>12.2} {:>10.2}",
            a * 1e3,
            b * 1e3,
            a / b
        );
        rows.push(serde_json::json!({ "workload": op, "ours_s": a, "fvm_s": b, "ratio": a / b }));
    }
    if let Some(path) = std::env::var_os("HAMT_BENCH_OUT") {
        let json = serde_json::json!({ "rows": rows, "roots": ctx.roots.into_inner() }).to_string();
        std::fs::write(&path, json).expect("write HAMT_BENCH_OUT");
    }
}
