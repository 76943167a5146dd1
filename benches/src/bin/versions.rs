//! `cargo xtask bench versions`: a three-way merge of two roots against rebuilding the
//! merged map, and `log` over a long history. Speeds are reported, never asserted.
//!
//! Arguments: KEYS (1M by default) and COMMITS (1000). The merge: a base of KEYS keys, two
//! sides that each change a different 0.5% of them (1% of the keys differ between the
//! sides); the peer builds the merged contents from scratch into a fresh tree, which is what
//! a merge without structural sharing costs. Both give the same root (checked).
//!
//! `cargo xtask bench versions` then runs `python/bench/dask_writes.py`: dask writes through
//! forks against icechunk's, with the Python extension.

use std::sync::Arc;
use std::time::Instant;

use hamt::{BlockStore, Hamt, MemoryStore, MergeOutcome};
use hamt_versions::{CommitOptions, MemoryRefStore, Repo};

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn value(i: usize, side: &str) -> Vec<u8> {
    format!("{side}-value-{i}").into_bytes()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = arg(1, 1_000_000);
    let commits = arg(2, 1000);
    let store: Arc<dyn BlockStore> = Arc::new(MemoryStore::new());

    let mut map = Hamt::new(store.clone());
    map.extend((0..keys).map(|i| (format!("data/c/{i}"), value(i, "base"))))
        .await?;
    let base = map.flush().await?;
    let step = 200; // 0.5% of the keys on each side
    let ours_keys: Vec<usize> = (0..keys).step_by(step).collect();
    let theirs_keys: Vec<usize> = (step / 2..keys).step_by(step).collect();
    let mut ours = Hamt::open(store.clone(), base).await?;
    ours.extend(
        ours_keys
            .iter()
            .map(|&i| (format!("data/c/{i}"), value(i, "ours"))),
    )
    .await?;
    let ours = ours.flush().await?;
    let mut theirs = Hamt::open(store.clone(), base).await?;
    theirs
        .extend(
            theirs_keys
                .iter()
                .map(|&i| (format!("data/c/{i}"), value(i, "theirs"))),
        )
        .await?;
    let theirs = theirs.flush().await?;

    let t = Instant::now();
    let outcome = hamt::merge(store.clone(), base, ours, theirs).await?;
    let merge_s = t.elapsed().as_secs_f64();
    let MergeOutcome::Merged(merged) = outcome else {
        return Err("the sides changed different keys: no conflict expected".into());
    };

    let t = Instant::now();
    let mut fresh = Hamt::new(store.clone());
    fresh
        .extend((0..keys).map(|i| {
            let side = if i % step == 0 {
                "ours"
            } else if i % step == step / 2 {
                "theirs"
            } else {
                "base"
            };
            (format!("data/c/{i}"), value(i, side))
        }))
        .await?;
    let rebuilt = fresh.flush().await?;
    let rebuild_s = t.elapsed().as_secs_f64();
    if rebuilt != merged {
        return Err(format!("merged root {merged} differs from the rebuilt {rebuilt}").into());
    }
    println!(
        "merge of two {keys}-key roots, {} keys changed on the two sides: {:.1} ms; rebuilding \
         the merged map: {:.1} ms; merge is {:.1}x faster (target >= 20x)",
        ours_keys.len() + theirs_keys.len(),
        merge_s * 1e3,
        rebuild_s * 1e3,
        rebuild_s / merge_s
    );

    bench_log(store, commits).await?;
    Ok(())
}

/// A history of `commits` commits, each changing 10 keys of a 10 000-key dataset, logged.
async fn bench_log(
    store: Arc<dyn BlockStore>,
    commits: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let repo = Repo::new(store.clone(), Arc::new(MemoryRefStore::new()));
    let mut map = Hamt::new(store.clone());
    map.extend((0..10_000).map(|i| (format!("k{i}"), value(i, "base"))))
        .await?;
    let mut root = map.flush().await?;
    let mut head = None;
    for c in 0..commits {
        let mut map = Hamt::open(store.clone(), root).await?;
        for j in 0..10 {
            map.insert(&format!("k{}", (c * 10 + j) % 10_000), value(c, "commit"))
                .await?;
        }
        root = map.flush().await?;
        let done = repo
            .commit(
                "main",
                root,
                head,
                &format!("c{c}"),
                &CommitOptions::default(),
            )
            .await?;
        head = Some(done.commit);
    }
    let head = head.ok_or("no commits")?;
    let t = Instant::now();
    let log = repo.log(head, None, true).await?;
    let with_keys = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let plain = repo.log(head, None, false).await?;
    let without = t.elapsed().as_secs_f64();
    let changed: usize = log
        .iter()
        .map(|e| e.changes.as_ref().map_or(0, Vec::len))
        .sum();
    println!(
        "log of {} commits: {:.1} ms with the keys each changed ({changed} keys, {:.2} ms a \
         commit); {:.1} ms for {} commits without",
        log.len(),
        with_keys * 1e3,
        with_keys * 1e3 / f64::from(u32::try_from(log.len()).unwrap_or(u32::MAX)),
        without * 1e3,
        plain.len()
    );
    Ok(())
}
