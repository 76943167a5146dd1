//! Publishes a dataset to S3 in two appends, syncing after each, then reads it back from a
//! fresh store as another process would.
//!
//! ```sh
//! AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//!   cargo run -p hamt-store-s3 --example s3 -- 's3://bucket/prefix?endpoint=http://127.0.0.1:9000' 10000
//! ```
//!
//! Prints `synced ROOT` after each durable append. The crash test kills it during the second
//! append's uploads and checks that the first root still reads in full.

use std::io::Write as _;
use std::sync::Arc;

use futures::TryStreamExt as _;
use hamt::{Hamt, HamtReader};
use hamt_store_s3::S3Store;

/// The value of key `i` in append `round` (1: 256 bytes; 2: 64 KiB).
fn value(round: usize, i: usize) -> Vec<u8> {
    let len = if round == 1 { 256 } else { 64 << 10 };
    (0..len)
        .map(|j| u8::try_from((i * 31 + j * 7 + round) % 251).unwrap_or(0))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: s3 URL [N]")?;
    let n: usize = args.next().map_or(Ok(10_000), |s| s.parse())?;
    let store = S3Store::from_url(&url)?;

    let mut map = Hamt::new(Arc::new(store.clone()));
    for round in 1..=2 {
        map.extend((0..n).map(|i| (format!("r{round}/{i}"), value(round, i))))
            .await?;
        let root = map.flush().await?;
        store.sync().await?;
        println!("synced {root}");
        std::io::stdout().flush()?;
    }
    let root = map.flush().await?;

    let fresh = S3Store::from_url(&url)?;
    let reader = HamtReader::open(Arc::new(fresh.clone()), root).await?;
    let count = reader
        .iter()
        .try_fold(0usize, |n, _| async move { Ok(n + 1) })
        .await?;
    let stats = fresh.stats();
    println!(
        "read {count} keys back: {} block reads, {} multi-range reads, {} index reads",
        stats.block_reads, stats.batch_reads, stats.index_reads
    );
    Ok(())
}
