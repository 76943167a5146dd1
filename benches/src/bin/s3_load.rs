//! `S3Store` (blocks packed into CAR objects) against the naive layout, one object per
//! block, on the same S3 server in the same run: write throughput, whole-tree reads, and
//! requests per single block read once the index is warm. Run by `cargo xtask bench s3`,
//! which starts moto's S3 server and passes `HAMT_TEST_S3_ENDPOINT`/`HAMT_TEST_S3_BUCKET`.
//!
//! `s3_load [N]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt as _;
use hamt::{BlockStore, Cid, Hamt, HamtReader, verify};
use hamt_store_s3::S3Store;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};

/// One object per block: what publishing a HAMT as loose files costs.
#[derive(Debug)]
struct Naive {
    objects: Arc<dyn ObjectStore>,
    prefix: String,
    gets: AtomicU64,
}

#[async_trait]
impl BlockStore for Naive {
    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        let path = Path::from(format!("{}/{cid}", self.prefix));
        self.objects
            .put(&path, data.into())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        let path = Path::from(format!("{}/{cid}", self.prefix));
        self.gets.fetch_add(1, Ordering::Relaxed);
        let data = self
            .objects
            .get(&path)
            .await
            .map_err(backend)?
            .bytes()
            .await
            .map_err(backend)?;
        verify(cid, &data)?;
        Ok(data)
    }
}

fn backend(e: object_store::Error) -> hamt::Error {
    hamt::Error::Backend {
        store: "naive-s3",
        temporary: true,
        source: Box::new(e),
    }
}

/// 1 KiB, distinct for every `i` (the store deduplicates equal blocks).
fn value(i: usize) -> Vec<u8> {
    let mut v = format!("{i:016}").into_bytes();
    v.extend((16..1024).map(|j| u8::try_from((i * 13 + j) % 251).unwrap_or(0)));
    v
}

#[tokio::main]
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(20_000), |s| s.parse())?;
    let endpoint = std::env::var("HAMT_TEST_S3_ENDPOINT")?;
    let bucket = std::env::var("HAMT_TEST_S3_BUCKET")?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let url = format!("s3://{bucket}/bench-{run}?endpoint={endpoint}&pack-size=16MiB");
    let objects: Arc<dyn ObjectStore> = Arc::new(
        object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_endpoint(&endpoint)
            .with_allow_http(true)
            .build()?,
    );
    let pairs = || (0..n).map(|i| (format!("k/{i}"), value(i)));

    // Writes: insert N 1 KiB values, flush the tree, make it durable.
    let packed = S3Store::from_url(&url)?;
    let start = Instant::now();
    let mut map = Hamt::new(Arc::new(packed.clone()));
    map.extend(pairs()).await?;
    let root = map.flush().await?;
    packed.sync().await?;
    let packed_write = start.elapsed().as_secs_f64();
    let written = packed.stats();

    let naive = Arc::new(Naive {
        objects: objects.clone(),
        prefix: format!("naive-{run}"),
        gets: AtomicU64::new(0),
    });
    let start = Instant::now();
    let mut map = Hamt::new(naive.clone());
    map.extend(pairs()).await?;
    let naive_root = map.flush().await?;
    let naive_write = start.elapsed().as_secs_f64();
    assert_eq!(root, naive_root);

    // Whole-tree reads from a fresh process's view.
    let fresh = S3Store::from_url(&url)?;
    let start = Instant::now();
    let reader = HamtReader::open(Arc::new(fresh.clone()), root).await?;
    let count = reader
        .iter()
        .try_fold(0usize, |c, _| async move { Ok(c + 1) })
        .await?;
    let packed_iter = start.elapsed().as_secs_f64();
    let iter_stats = fresh.stats();
    let start = Instant::now();
    let naive_reader = HamtReader::open(naive.clone(), root).await?;
    let naive_count = naive_reader
        .iter()
        .try_fold(0usize, |c, _| async move { Ok(c + 1) })
        .await?;
    let naive_iter = start.elapsed().as_secs_f64();
    assert_eq!((count, naive_count), (n, n));

    // Single block reads with the index warm: requests per read.
    let sample: Vec<Cid> = {
        let mut cids = Vec::new();
        for i in (0..n).step_by((n / 500).max(1)) {
            cids.push(
                reader
                    .get_pointer(&format!("k/{i}"))
                    .await?
                    .ok_or("missing key")?,
            );
        }
        cids
    };
    let before = fresh.stats();
    let start = Instant::now();
    for cid in &sample {
        fresh.get(cid).await?;
    }
    let packed_single = start.elapsed().as_secs_f64();
    let after = fresh.stats();
    let naive_before = naive.gets.load(Ordering::Relaxed);
    let start = Instant::now();
    for cid in &sample {
        naive.get(cid).await?;
    }
    let naive_single = start.elapsed().as_secs_f64();
    let naive_gets = naive.gets.load(Ordering::Relaxed) - naive_before;

    let (nf, sf) = (n as f64, sample.len() as f64);
    let mib = (written.bytes_written as f64) / f64::from(1 << 20);
    println!("\nS3 (moto on loopback), {n} values of 1 KiB, HAMT in py-hamt's format");
    println!("{:<56} {:>9} {:>12}", "", "seconds", "per second");
    println!(
        "{:<56} {:>9.2} {:>12.0}",
        "packed: insert + flush + sync (values/s)",
        packed_write,
        nf / packed_write
    );
    println!(
        "{:<56} {:>9.2} {:>12.0}",
        "one object per block: insert + flush (values/s)",
        naive_write,
        nf / naive_write
    );
    println!(
        "{:<56} {:>9.2} {:>12.0}",
        "packed: read every value, fresh store (values/s)",
        packed_iter,
        nf / packed_iter
    );
    println!(
        "{:<56} {:>9.2} {:>12.0}",
        "one object per block: read every value (values/s)",
        naive_iter,
        nf / naive_iter
    );
    println!(
        "{:<56} {:>9.3} {:>12.0}",
        "packed: single block reads, index warm (reads/s)",
        packed_single,
        sf / packed_single
    );
    println!(
        "{:<56} {:>9.3} {:>12.0}",
        "one object per block: single block reads (reads/s)",
        naive_single,
        sf / naive_single
    );
    println!(
        "packed wrote {} packs ({mib:.1} MiB, {:.1} MiB/s); full read took {} multi-range reads, {} index reads, {} list",
        written.packs_written,
        mib / packed_write,
        iter_stats.batch_reads,
        iter_stats.index_reads,
        iter_stats.lists
    );
    let per_read = (after.block_reads - before.block_reads + after.batch_reads - before.batch_reads
        + after.index_reads
        - before.index_reads
        + after.lists
        - before.lists) as f64
        / sf;
    let naive_per_read = naive_gets as f64 / sf;
    println!(
        "requests per single block read, index warm: packed {per_read:.2}, one object per block {naive_per_read:.2}"
    );
    println!(
        "ratios (one object per block / packed): write {:.1}x, full read {:.1}x, single reads {:.2}x",
        naive_write / packed_write,
        naive_iter / packed_iter,
        naive_single / packed_single
    );
    Ok(())
}
