//! Reads every chunk of a float32 dataset of ≥ 1000 chunks several ways, same run, same
//! chunk bytes: `zarrs` over a plain directory store, over [`HamtStore`] on sled, over
//! [`ShardedStore`] (py-hamt's sharded layout, converted from that HAMT) on the same sled in
//! each read mode, and py-hamt + zarr-python over the same HAMT (blocks loaded into memory from
//! a CAR first). Also counts block-store fetches per chunk read.
//! Run by `cargo xtask bench zarr`, which passes `HAMT_BENCH_PYTHON`.
//!
//! `zarr_read [--quick]`

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt as _, TryStreamExt as _};
use hamt::BlockStore;
use hamt_store_sled::SledStore;
use hamt_zarr::{HamtStore, ReadMode, ShardedStore};
use tokio_util::compat::TokioAsyncWriteCompatExt as _;
use zarrs::array::Array;

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Counts the fetches a reader makes.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn BlockStore>,
    gets: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl BlockStore for Counting {
    async fn put_keyed(&self, cid: &hamt::Cid, data: bytes::Bytes) -> hamt::Result<()> {
        self.inner.put_keyed(cid, data).await
    }

    async fn get(&self, cid: &hamt::Cid) -> hamt::Result<bytes::Bytes> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.get(cid).await
    }
}

/// Reads every chunk of `/data` one by one through `store`; returns (seconds, checksum).
async fn chunk_by_chunk<S>(store: Arc<S>, chunks: &[Vec<u64>]) -> BoxResult<f64>
where
    S: ?Sized + zarrs::storage::AsyncReadableStorageTraits + 'static,
{
    let array = Array::async_open(store, "/data").await?;
    let mut sum = 0.0;
    for idx in chunks {
        let c: Vec<f32> = array.async_retrieve_chunk(idx).await?;
        sum += checksum(&c);
    }
    Ok(sum)
}

/// Best of `reps` runs of `f`, in seconds, with the value of the last run.
async fn best<T, F, Fut>(reps: usize, mut f: F) -> BoxResult<(f64, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = BoxResult<T>>,
{
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..reps {
        let start = Instant::now();
        let v = f().await?;
        best = best.min(start.elapsed().as_secs_f64());
        last = Some(v);
    }
    Ok((best, last.ok_or("no runs")?))
}

fn chunk_indices(grid: &[u64]) -> Vec<Vec<u64>> {
    let mut all = vec![vec![]];
    for &n in grid {
        all = all
            .into_iter()
            .flat_map(|prefix: Vec<u64>| {
                (0..n).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    all
}

fn checksum(values: &[f32]) -> f64 {
    values.iter().map(|v| f64::from(*v)).sum()
}

#[tokio::main]
#[allow(clippy::too_many_lines)]
async fn main() -> BoxResult<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let python = std::env::var("HAMT_BENCH_PYTHON")?;
    let (shape, chunk, reps) = if quick {
        (vec![4u64, 128, 128], vec![1u64, 32, 32], 1)
    } else {
        (vec![16u64, 512, 512], vec![1u64, 64, 64], 5)
    };
    let grid: Vec<u64> = shape.iter().zip(&chunk).map(|(s, c)| s / c).collect();
    let chunks = chunk_indices(&grid);
    let tmp = tempfile::tempdir()?;

    // The dataset, written once by zarrs into a directory store (zstd, like zarr-python's
    // default), then imported byte for byte into the HAMT.
    let dir = tmp.path().join("plain.zarr");
    let (fs, array) = hamt_benches::float32_zarr_dir(&dir, &shape, &chunk)?;
    let n: usize = shape.iter().product::<u64>().try_into()?;
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let values: Vec<f32> = (0..n)
        .map(|i| ((i as f64 * 0.001).sin() * 30.0 + (i % 7) as f64 * 0.01) as f32)
        .collect();
    array.store_array_subset(&array.subset_all(), &values[..])?;
    let want = checksum(&values);

    let sled_path = tmp.path().join("sled");
    let sled: Arc<dyn BlockStore> = Arc::new(SledStore::open(&sled_path)?);
    let writer = HamtStore::builder(sled.clone()).build().await?;
    hamt_zarr::import_dir(&writer, &dir, &|_| ()).await?;
    let root = writer.flush().await?;
    drop(writer);

    // zarrs over the directory store: chunk by chunk, then the whole array.
    let (fs_chunks_s, fs_sum) = best(reps, || {
        let array = Array::open(fs.clone(), "/data");
        let chunks = &chunks;
        async move {
            let array = array?;
            let mut sum = 0.0;
            for idx in chunks {
                let c: Vec<f32> = array.retrieve_chunk(idx)?;
                sum += checksum(&c);
            }
            Ok(sum)
        }
    })
    .await?;
    let (fs_all_s, fs_all) = best(reps, || {
        let array = Array::open(fs.clone(), "/data");
        async move {
            let array = array?;
            let v: Vec<f32> = array.retrieve_array_subset(&array.subset_all())?;
            Ok(checksum(&v))
        }
    })
    .await?;

    // zarrs over the HAMT on sled, from a cold node cache each run.
    let open = || {
        let sled = sled.clone();
        // A node cache of its own: the store's shared one may be warm from another handle.
        let cold = hamt::Config::new().cache_bytes(hamt::Config::SHARED_CACHE_BYTES);
        async move {
            let store = HamtStore::builder(sled)
                .root(root)
                .read_only()
                .config(cold)
                .build()
                .await?;
            Ok::<_, hamt_zarr::Error>(Arc::new(store))
        }
    };
    let (hamt_chunks_s, hamt_sum) = best(reps, || {
        let chunks = &chunks;
        async move {
            let array = Array::async_open(open().await?, "/data").await?;
            let mut sum = 0.0;
            for idx in chunks {
                let c: Vec<f32> = array.async_retrieve_chunk(idx).await?;
                sum += checksum(&c);
            }
            Ok(sum)
        }
    })
    .await?;
    let (hamt_conc_s, hamt_conc) = best(reps, || {
        let chunks = &chunks;
        async move {
            let array = Arc::new(Array::async_open(open().await?, "/data").await?);
            futures::stream::iter(chunks)
                .map(|idx| {
                    let array = array.clone();
                    async move {
                        Ok::<_, zarrs::array::ArrayError>(checksum(
                            &array.async_retrieve_chunk::<Vec<f32>>(idx).await?,
                        ))
                    }
                })
                .buffered(32)
                .try_fold(0.0, |a, b| async move { Ok(a + b) })
                .await
                .map_err(Into::into)
        }
    })
    .await?;
    let (hamt_all_s, hamt_all) = best(reps, || async {
        let array = Array::async_open(open().await?, "/data").await?;
        let v: Vec<f32> = array
            .async_retrieve_array_subset(&array.subset_all())
            .await?;
        Ok(checksum(&v))
    })
    .await?;
    // The same dataset in py-hamt's sharded layout, converted from the HAMT (chunk blocks
    // shared), read in each mode from a cold store, counting block fetches.
    let cps = if quick { 16 } else { 256 };
    let sharded_root = hamt_zarr::hamt_to_sharded(sled.clone(), root, cps).await?;
    let counting = Arc::new(Counting {
        inner: sled.clone(),
        gets: std::sync::atomic::AtomicU64::new(0),
    });
    let mut sharded_rows = Vec::new();
    for mode in [ReadMode::Sparse, ReadMode::Full, ReadMode::Auto] {
        let (secs, sum) = best(reps, || {
            let counting = counting.clone();
            let chunks = &chunks;
            async move {
                let store = ShardedStore::builder(counting)
                    .root(sharded_root)
                    .read_only()
                    .read_mode(mode)
                    .build()
                    .await?;
                chunk_by_chunk(Arc::new(store), chunks).await
            }
        })
        .await?;
        if (sum - want).abs() > 1e-6 * want.abs().max(1.0) {
            return Err(format!("sharded {mode:?}: checksum {sum} != {want}").into());
        }
        counting.gets.store(0, std::sync::atomic::Ordering::Relaxed);
        let store = ShardedStore::builder(counting.clone())
            .root(sharded_root)
            .read_only()
            .read_mode(mode)
            .build()
            .await?;
        chunk_by_chunk(Arc::new(store), &chunks).await?;
        let fetches = counting.gets.load(std::sync::atomic::Ordering::Relaxed);
        sharded_rows.push((mode, secs, fetches));
    }
    counting.gets.store(0, std::sync::atomic::Ordering::Relaxed);
    chunk_by_chunk(
        Arc::new(HamtStore::open(counting.clone(), root).await?),
        &chunks,
    )
    .await?;
    let hamt_fetches = counting.gets.load(std::sync::atomic::Ordering::Relaxed);

    for (what, got) in [
        ("fs chunks", fs_sum),
        ("fs all", fs_all),
        ("hamt chunks", hamt_sum),
        ("hamt concurrent", hamt_conc),
        ("hamt all", hamt_all),
    ] {
        if (got - want).abs() > 1e-6 * want.abs().max(1.0) {
            return Err(format!("{what}: checksum {got} != {want}").into());
        }
    }

    // py-hamt + zarr-python over the same HAMT, and zarr-python over the directory store.
    let car = tmp.path().join("dataset.car");
    let file = tokio::fs::File::create(&car).await?;
    let mut w = tokio::io::BufWriter::new(file).compat_write();
    hamt::car::export_car(&sled, root, &mut w).await?;
    futures::AsyncWriteExt::close(&mut w).await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/zarr_bench.py");
    let mut cmd = std::process::Command::new(python);
    cmd.arg(script)
        .arg(&car)
        .arg(root.to_string())
        .arg(&dir)
        .arg(reps.to_string());
    let py = hamt_benches::python_json(cmd, "zarr_bench.py")?;
    let num = |k: &str| py.num(k);
    let (py_hamt_s, py_dir_s, py_sum) = (num("pyhamt_s")?, num("zarr_dir_s")?, num("checksum")?);
    if (py_sum - want).abs() > 1e-3 * want.abs().max(1.0) {
        return Err(format!("py-hamt checksum {py_sum} != {want}").into());
    }

    let c = chunks.len();
    println!(
        "\nzarr: every chunk of a float32 {shape:?} array, {c} chunks of {chunk:?} (zstd), best of {reps}"
    );
    println!("{:<58} {:>9} {:>11}", "", "seconds", "chunks/s");
    #[allow(clippy::cast_precision_loss)]
    let row = |name: &str, s: f64| println!("{name:<58} {s:>9.3} {:>11.0}", c as f64 / s);
    row("zarrs, directory store, chunk by chunk", fs_chunks_s);
    row(
        "zarrs, HamtStore on sled (cold cache), chunk by chunk",
        hamt_chunks_s,
    );
    row(
        "zarrs, HamtStore on sled (cold cache), 32 in flight",
        hamt_conc_s,
    );
    for (mode, secs, _) in &sharded_rows {
        row(
            &format!("zarrs, ShardedStore {mode:?} ({cps}/shard), chunk by chunk"),
            *secs,
        );
    }
    row("zarrs, directory store, whole array", fs_all_s);
    row(
        "zarrs, HamtStore on sled (cold cache), whole array",
        hamt_all_s,
    );
    row("zarr-python, directory store, whole array", py_dir_s);
    row(
        "py-hamt + zarr-python, HAMT in memory, whole array",
        py_hamt_s,
    );
    #[allow(clippy::cast_precision_loss)]
    let per_chunk = |n: u64| n as f64 / c as f64;
    print!(
        "block fetches per chunk read, cold store: HamtStore {:.3}",
        per_chunk(hamt_fetches)
    );
    for (mode, _, fetches) in &sharded_rows {
        print!(", ShardedStore {mode:?} {:.3}", per_chunk(*fetches));
    }
    println!();
    if let Some((_, secs, _)) = sharded_rows.iter().find(|r| r.0 == ReadMode::Full) {
        println!(
            "ratios chunk by chunk: ShardedStore (Full)/HamtStore {:.2}x, ShardedStore (Full)/directory {:.2}x",
            secs / hamt_chunks_s,
            secs / fs_chunks_s
        );
    }
    println!(
        "ratios: HamtStore/directory chunk by chunk {:.2}x, whole array {:.2}x; py-hamt/HamtStore whole array {:.1}x",
        hamt_chunks_s / fs_chunks_s,
        hamt_all_s / fs_all_s,
        py_hamt_s / hamt_all_s
    );
    Ok(())
}
