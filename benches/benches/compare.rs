//! Our HAMT against `fvm_ipld_hamt`, same workloads, same process, printed as ratios.
//!
//! Ours is measured twice when the values fit an identity CID (up to 64 bytes): in py-hamt's
//! format, where each value is its own block, and with values inlined in the nodes as
//! identity CIDs (`Config::inline_values`), the layout `fvm_ipld_hamt` uses for every value.
//!
//! `cargo xtask bench` runs this (and the py-hamt and memory comparisons) and prints one
//! table. Environment: `HAMT_BENCH_QUICK=1` for a smoke run; `HAMT_BENCH_OUT=FILE` to write
//! the medians as JSON. Sizes up to 100k keys are measured by criterion; 1M-key workloads take
//! seconds per run, so they are timed as the median of 3 runs outside criterion.

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode};
use fvm_ipld_blockstore::MemoryBlockstore;
use hamt::{BlockStore, Cid, Config};
use hamt_benches::{Data, Results, fvm, ours};

const OURS: &str = "hamt (py-hamt format)";
const INLINE: &str = "hamt (values inline)";
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

type Run<'a> = Box<dyn FnMut(&Ctx) -> Duration + 'a>;

/// One workload on every implementation: each `(label, run)` runs one timed operation.
fn workload(
    c: &mut Criterion,
    ctx: &Ctx,
    name: &str,
    use_criterion: bool,
    mut runs: Vec<(&str, Run<'_>)>,
) {
    if use_criterion {
        let mut group = c.benchmark_group(name);
        group.sampling_mode(SamplingMode::Flat);
        for (label, run) in &mut runs {
            group.bench_function(*label, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| run(ctx)).sum());
            });
        }
        group.finish();
    } else {
        for _ in 0..3 {
            for (_, run) in &mut runs {
                run(ctx);
            }
        }
    }
}

// Four workloads, each spelled out for three implementations: longer than a helper with
// async closures would be, and easier to read.
#[allow(clippy::too_many_lines)]
fn bench_size(c: &mut Criterion, ctx: &Ctx, n: usize, value_len: usize, use_criterion: bool) {
    let data = Data::new(n, value_len);
    let label = |op: &str| format!("{op} n={n} value={value_len}B");
    // Values that fit an identity CID are also measured inlined (fvm's layout).
    let inline = value_len <= ours::INLINE;

    // Prepared trees for the read and remove workloads, built once per layout.
    let build = |config: Config| {
        let store = ours::store();
        let root = ctx
            .rt
            .block_on(ours::insert_flush_with(store.clone(), &data, config));
        (store, root)
    };
    let (our_store, our_root) = build(Config::new());
    let (inline_store, inline_root) = if inline {
        build(Config::new().inline_values(ours::INLINE))
    } else {
        (our_store.clone(), our_root)
    };
    ctx.roots
        .borrow_mut()
        .push(serde_json::json!({ "n": n, "value_len": value_len, "root": our_root.to_string() }));
    let fvm_store = MemoryBlockstore::new();
    let fvm_root = fvm::insert_flush(&fvm_store, &data);

    // Each workload: ours in py-hamt's format, ours inline (when the values fit), the peer.
    let runs = |ours_run: Run<'static>, inline_run: Run<'static>, fvm_run: Run<'static>| {
        let mut runs: Vec<(&str, Run<'static>)> = vec![(OURS, ours_run)];
        if inline {
            runs.push((INLINE, inline_run));
        }
        runs.push((FVM, fvm_run));
        runs
    };
    // The closures are boxed as `'static`; they share the inputs by reference-counting.
    let data = Rc::new(data);
    let fvm_store = Rc::new(fvm_store);

    let name = label("insert+flush");
    let timed = |implementation: &'static str, config: Config| -> Run<'static> {
        let (name, data) = (name.clone(), data.clone());
        Box::new(move |ctx: &Ctx| {
            ctx.time(&name, implementation, ours::store, |s| {
                ctx.rt.block_on(ours::insert_flush_with(s, &data, config))
            })
        })
    };
    let fvm_run: Run<'static> = {
        let (name, data) = (name.clone(), data.clone());
        Box::new(move |ctx: &Ctx| {
            ctx.time(&name, FVM, MemoryBlockstore::new, |s| {
                fvm::insert_flush(&s, &data)
            })
        })
    };
    workload(
        c,
        ctx,
        &name,
        use_criterion,
        runs(
            timed(OURS, Config::new()),
            timed(INLINE, Config::new().inline_values(ours::INLINE)),
            fvm_run,
        ),
    );

    let name = label("get-all cold");
    let timed =
        |implementation: &'static str, store: &Arc<dyn BlockStore>, root: Cid| -> Run<'static> {
            let (name, data, store) = (name.clone(), data.clone(), store.clone());
            Box::new(move |ctx: &Ctx| {
                ctx.time(
                    &name,
                    implementation,
                    || store.clone(),
                    |s| ctx.rt.block_on(ours::get_all(s, root, &data)),
                )
            })
        };
    let fvm_run: Run<'static> = {
        let (name, data, store) = (name.clone(), data.clone(), fvm_store.clone());
        Box::new(move |ctx: &Ctx| {
            ctx.time(
                &name,
                FVM,
                || (),
                |()| fvm::get_all(&store, &fvm_root, &data),
            )
        })
    };
    workload(
        c,
        ctx,
        &name,
        use_criterion,
        runs(
            timed(OURS, &our_store, our_root),
            timed(INLINE, &inline_store, inline_root),
            fvm_run,
        ),
    );

    let name = label("iterate");
    let timed =
        |implementation: &'static str, store: &Arc<dyn BlockStore>, root: Cid| -> Run<'static> {
            let (name, store) = (name.clone(), store.clone());
            Box::new(move |ctx: &Ctx| {
                ctx.time(
                    &name,
                    implementation,
                    || store.clone(),
                    |s| ctx.rt.block_on(ours::iterate(s, root)),
                )
            })
        };
    let fvm_run: Run<'static> = {
        let (name, store) = (name.clone(), fvm_store.clone());
        Box::new(move |ctx: &Ctx| ctx.time(&name, FVM, || (), |()| fvm::iterate(&store, &fvm_root)))
    };
    workload(
        c,
        ctx,
        &name,
        use_criterion,
        runs(
            timed(OURS, &our_store, our_root),
            timed(INLINE, &inline_store, inline_root),
            fvm_run,
        ),
    );

    let name = label("remove-half+flush");
    let timed =
        |implementation: &'static str, store: &Arc<dyn BlockStore>, root: Cid| -> Run<'static> {
            let (name, data, store) = (name.clone(), data.clone(), store.clone());
            Box::new(move |ctx: &Ctx| {
                ctx.time(
                    &name,
                    implementation,
                    || store.clone(),
                    |s| ctx.rt.block_on(ours::remove_half(s, root, &data)),
                )
            })
        };
    let fvm_run: Run<'static> = {
        let (name, data, store) = (name.clone(), data.clone(), fvm_store.clone());
        Box::new(move |ctx: &Ctx| {
            ctx.time(
                &name,
                FVM,
                || (),
                |()| fvm::remove_half(&store, &fvm_root, &data),
            )
        })
    };
    workload(
        c,
        ctx,
        &name,
        use_criterion,
        runs(
            timed(OURS, &our_store, our_root),
            timed(INLINE, &inline_store, inline_root),
            fvm_run,
        ),
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
        "\n{:<40} {:>12} {:>12} {:>12} {:>10} {:>12}",
        "workload", "ours (ms)", "inline (ms)", "fvm (ms)", "ours/fvm", "inline/fvm"
    );
    let mut rows = Vec::new();
    for op in results.ops() {
        let (Some(a), Some(b)) = (results.median(op, OURS), results.median(op, FVM)) else {
            continue;
        };
        let inline = results.median(op, INLINE);
        println!(
            "{op:<40} {:>12.2} {:>12} {:>12.2} {:>10.2} {:>12}",
            a * 1e3,
            inline.map_or("-".into(), |i| format!("{:.2}", i * 1e3)),
            b * 1e3,
            a / b,
            inline.map_or("-".into(), |i| format!("{:.2}", i / b)),
        );
        rows.push(serde_json::json!({
            "workload": op,
            "ours_s": a,
            "inline_s": inline,
            "fvm_s": b,
            "ratio": a / b,
            "inline_ratio": inline.map(|i| i / b),
        }));
    }
    if let Some(path) = std::env::var_os("HAMT_BENCH_OUT") {
        let json = serde_json::json!({ "rows": rows, "roots": ctx.roots.into_inner() }).to_string();
        std::fs::write(&path, json).expect("write HAMT_BENCH_OUT");
    }
}
