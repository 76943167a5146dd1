//! Peak memory of a bulk load: inserts N keys (8-byte values) into a HAMT with a bounded node
//! cache, flushes, and prints the process's peak RSS (`VmHWM`) as JSON. Run as its own
//! process so the peak is this workload's alone. STORE is `memory` (the default: the store's
//! own copy of every block counts too) or `sled` (a database in a temporary directory, opened
//! by URL as `hamt` opens it, so with the default page cache); `sled?cache=SIZE` passes URL
//! options through. LAYOUT is `blocks` (the default: every value its own block) or `inline`
//! (values inlined in the nodes).
//!
//! `cargo run --release -p hamt-benches --bin rss -- [N] [CACHE_MIB] [STORE] [LAYOUT]`

use std::sync::Arc;
use std::time::Instant;

use hamt::{BlockStore, Config, Hamt, MemoryStore};
use hamt_benches::Data;
use hamt_store_sled::SledStore;

/// A memory figure from `/proc/self/status`, in KiB: `VmHWM` (peak) or `VmRSS` (now).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Kibibytes to mebibytes; any real peak is far below 2^52 KiB, so exact in an f64.
#[allow(clippy::cast_precision_loss)]
fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1_000_000), |s| s.parse())?;
    let cache_mib: usize = args.next().map_or(Ok(64), |s| s.parse())?;
    let store_kind = args.next().unwrap_or_else(|| "memory".into());
    // `inline`: values inlined as identity CIDs, so the store holds nothing but nodes and the
    // memory before the flush is the tree's own.
    let inline = match args.next().as_deref() {
        None | Some("blocks") => false,
        Some("inline") => true,
        Some(other) => return Err(format!("unknown layout {other:?}: blocks or inline").into()),
    };
    let dir = tempfile::tempdir()?;
    let mut memory = None;
    let mut sled_cache = None;
    let sled_options = store_kind.strip_prefix("sled");
    let (store, sled): (Arc<dyn BlockStore>, _) = if store_kind == "memory" {
        let m = MemoryStore::new();
        memory = Some(m.clone());
        (Arc::new(m), None)
    } else if let Some(options) = sled_options.filter(|o| o.is_empty() || o.starts_with('?')) {
        let url = format!("sled:{}{options}", dir.path().join("db").display());
        let builder = SledStore::builder_from_url(&url)?;
        sled_cache = Some(builder.cache_size());
        let sled = builder.open()?;
        (Arc::new(sled.clone()), Some(sled))
    } else {
        return Err(
            format!("unknown store {store_kind:?}: memory, sled or sled?cache=SIZE").into(),
        );
    };
    let start = Instant::now();
    let mut config = Config::new().cache_bytes(cache_mib << 20);
    if inline {
        config = config.inline_values(hamt::MAX_INLINE);
    }
    let mut map = Hamt::with_config(store.clone(), config)?;
    // Generate and insert in slices so the input itself does not dominate the peak.
    let slice = 50_000;
    for first in (0..n).step_by(slice) {
        let data = Data::range(first, (first + slice).min(n), 8);
        map.extend(data.pairs).await?;
    }
    let before_flush = status_kib("VmRSS:");
    let root = map.flush().await?;
    let mut disk_bytes = None;
    if let Some(sled) = &sled {
        sled.flush().await?;
        disk_bytes = Some(sled.size_on_disk()?);
    }
    let seconds = start.elapsed().as_secs_f64();
    let store_bytes = memory.map(|m| m.total_bytes() as u64);
    println!(
        "{}",
        serde_json::json!({
            "keys": n,
            "store": store_kind,
            "inline": inline,
            "cache_mib": cache_mib,
            "root": root.to_string(),
            "seconds": seconds,
            "peak_rss_mib": status_kib("VmHWM:").map(kib_to_mib),
            "rss_before_flush_mib": before_flush.map(kib_to_mib),
            "rss_after_flush_mib": status_kib("VmRSS:").map(kib_to_mib),
            "store_bytes_mib": store_bytes.map(|b| kib_to_mib(b / 1024)),
            "sled_cache_mib": sled_cache.map(|b| kib_to_mib(b / 1024)),
            "sled_disk_mib": disk_bytes.map(|b| kib_to_mib(b / 1024)),
        })
    );
    Ok(())
}
