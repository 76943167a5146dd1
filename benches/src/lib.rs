//! Workloads run against this project's HAMT and against `fvm_ipld_hamt` (bit width 8,
//! bucket 3, its memory blockstore), so that the benchmark binary can time both in one run
//! and print ratios.
//!
//! Each workload's setup happens outside the timed closure; only the operation itself is
//! measured.

use std::collections::HashMap;
use std::sync::Arc;

use fvm_ipld_blockstore::MemoryBlockstore;
use fvm_ipld_encoding::RawBytes;
use fvm_ipld_hamt::BytesKey;
use hamt::{BlockStore, Cid, Hamt, HamtReader, MemoryStore};

/// The keys and values of one benchmark.
#[derive(Debug, Clone)]
pub struct Data {
    /// `(key, value)` pairs; keys look like Zarr chunk keys.
    pub pairs: Vec<(String, Vec<u8>)>,
}

impl Data {
    /// `n` keys with values of `value_len` bytes (distinct per key).
    pub fn new(n: usize, value_len: usize) -> Self {
        Self::range(0, n, value_len)
    }

    /// Keys `first..end` of the sequence [`new`](Self::new) makes.
    pub fn range(first: usize, end: usize, value_len: usize) -> Self {
        let pairs = (first..end)
            .map(|i| {
                let key = format!("temperature/{}.{}.{}", i / 10_000, (i / 100) % 100, i % 100);
                let mut value = vec![0u8; value_len];
                let tag = (i as u64).to_le_bytes();
                for (j, b) in value.iter_mut().enumerate() {
                    *b = tag[j % 8] ^ u8::try_from(j % 251).unwrap_or(0);
                }
                (key, value)
            })
            .collect();
        Self { pairs }
    }
}

type FvmHamt<'a> = fvm_ipld_hamt::Hamt<&'a MemoryBlockstore, RawBytes, BytesKey>;

/// `fvm_ipld_hamt` at bit width 8 with its default bucket size (3).
pub mod fvm {
    use super::{BytesKey, Cid, Data, FvmHamt, MemoryBlockstore, RawBytes};

    fn key(k: &str) -> BytesKey {
        BytesKey(k.as_bytes().to_vec())
    }

    /// Inserts every pair and flushes; returns the root.
    ///
    /// # Panics
    /// When the peer fails, which would make the benchmark meaningless.
    pub fn insert_flush(store: &MemoryBlockstore, data: &Data) -> Cid {
        let mut map = FvmHamt::new_with_bit_width(store, 8);
        for (k, v) in &data.pairs {
            map.set(key(k), RawBytes::new(v.clone())).expect("fvm set");
        }
        map.flush().expect("fvm flush")
    }

    /// Loads the root with an empty cache and gets every key; returns the value bytes seen.
    pub fn get_all(store: &MemoryBlockstore, root: &Cid, data: &Data) -> usize {
        let map = FvmHamt::load_with_bit_width(root, store, 8).expect("fvm load");
        let mut total = 0;
        for (k, _) in &data.pairs {
            total += map.get(&key(k)).expect("fvm get").map_or(0, |v| v.len());
        }
        total
    }

    /// Visits every pair from a cold root.
    pub fn iterate(store: &MemoryBlockstore, root: &Cid) -> usize {
        let map = FvmHamt::load_with_bit_width(root, store, 8).expect("fvm load");
        let mut total = 0;
        map.for_each(|_, v| {
            total += v.len();
            Ok(())
        })
        .expect("fvm for_each");
        total
    }

    /// Removes every other key and flushes.
    pub fn remove_half(store: &MemoryBlockstore, root: &Cid, data: &Data) -> Cid {
        let mut map = FvmHamt::load_with_bit_width(root, store, 8).expect("fvm load");
        for (k, _) in data.pairs.iter().step_by(2) {
            map.delete(&key(k)).expect("fvm delete");
        }
        map.flush().expect("fvm flush")
    }
}

/// This project's HAMT over `MemoryStore`: in py-hamt's format (each value its own block) by
/// default, or with values of up to 64 bytes inlined as identity CIDs ([`INLINE`]).
pub mod ours {
    use futures::TryStreamExt as _;
    use hamt::Config;

    use super::{Arc, BlockStore, Cid, Data, Hamt, HamtReader, MemoryStore};

    /// The configuration of the inline-values measurement: values up to 64 bytes are kept in
    /// the nodes, as `fvm_ipld_hamt` keeps every value.
    pub const INLINE: usize = hamt::MAX_INLINE;

    /// A fresh in-memory store.
    pub fn store() -> Arc<dyn BlockStore> {
        Arc::new(MemoryStore::new())
    }

    /// Inserts every pair and flushes; returns the root.
    pub async fn insert_flush(store: Arc<dyn BlockStore>, data: &Data) -> Cid {
        insert_flush_with(store, data, Config::new()).await
    }

    /// Inserts every pair with `config` and flushes; returns the root.
    pub async fn insert_flush_with(store: Arc<dyn BlockStore>, data: &Data, config: Config) -> Cid {
        let mut map = Hamt::with_config(store, config).expect("config");
        for (k, v) in &data.pairs {
            map.insert(k, v.clone()).await.expect("insert");
        }
        map.flush().await.expect("flush")
    }

    /// A reader on `root` with an empty node cache of its own (not the store's shared one,
    /// which another live handle may have warmed).
    async fn cold(store: Arc<dyn BlockStore>, root: Cid) -> HamtReader {
        HamtReader::open_with_config(
            store,
            root,
            Config::new().cache_bytes(Config::SHARED_CACHE_BYTES),
        )
        .await
        .expect("open")
    }

    /// Opens the root with an empty node cache and gets every key.
    pub async fn get_all(store: Arc<dyn BlockStore>, root: Cid, data: &Data) -> usize {
        let reader = cold(store, root).await;
        let mut total = 0;
        for (k, _) in &data.pairs {
            total += reader.get(k).await.expect("get").map_or(0, |v| v.len());
        }
        total
    }

    /// Streams every key and value from a cold root.
    pub async fn iterate(store: Arc<dyn BlockStore>, root: Cid) -> usize {
        let reader = cold(store, root).await;
        reader
            .iter()
            .try_fold(0, |acc, (_, v)| async move { Ok(acc + v.len()) })
            .await
            .expect("iter")
    }

    /// Removes every other key and flushes.
    pub async fn remove_half(store: Arc<dyn BlockStore>, root: Cid, data: &Data) -> Cid {
        let mut map = Hamt::open(store, root).await.expect("open");
        for (k, _) in data.pairs.iter().step_by(2) {
            map.remove(k).await.expect("remove");
        }
        map.flush().await.expect("flush")
    }
}

/// Median seconds per run of each measured `(operation, implementation)`, collected while
/// criterion runs so the ratios can be printed at the end.
#[derive(Debug, Default)]
pub struct Results {
    runs: HashMap<(String, String), Vec<f64>>,
    order: Vec<String>,
}

impl Results {
    /// Records one timed run.
    pub fn record(&mut self, op: &str, implementation: &str, seconds: f64) {
        if !self.order.iter().any(|o| o == op) {
            self.order.push(op.to_owned());
        }
        self.runs
            .entry((op.to_owned(), implementation.to_owned()))
            .or_default()
            .push(seconds);
    }

    /// The median of the recorded runs.
    pub fn median(&self, op: &str, implementation: &str) -> Option<f64> {
        let mut runs = self
            .runs
            .get(&(op.to_owned(), implementation.to_owned()))?
            .clone();
        runs.sort_by(f64::total_cmp);
        runs.get(runs.len() / 2).copied()
    }

    /// Operations in the order they were first recorded.
    pub fn ops(&self) -> &[String] {
        &self.order
    }
}

/// A Python benchmark script's answer: runs `cmd` (`python SCRIPT ARGS…`, named `script` in
/// errors), which must succeed and print one JSON object, and returns it with a reader of its
/// numbers.
///
/// # Errors
/// The script could not start, failed (its standard error in the message), or printed no
/// JSON.
pub fn python_json(
    mut cmd: std::process::Command,
    script: &str,
) -> Result<PythonJson, Box<dyn std::error::Error + Send + Sync>> {
    let out = cmd.env("PYTHONWARNINGS", "ignore").output()?;
    if !out.status.success() {
        return Err(format!("{script} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(PythonJson {
        value: serde_json::from_slice(&out.stdout)?,
        script: script.to_owned(),
    })
}

/// The JSON object a Python benchmark script printed ([`python_json`]).
#[derive(Debug)]
pub struct PythonJson {
    /// The object.
    pub value: serde_json::Value,
    script: String,
}

impl PythonJson {
    /// The number at `key`.
    ///
    /// # Errors
    /// When there is none.
    pub fn num(&self, key: &str) -> Result<f64, String> {
        self.value[key]
            .as_f64()
            .ok_or_else(|| format!("{}: no {key}", self.script))
    }
}

/// A Zarr v3 group in a directory store with one float32 array `/data` (dimensions time,
/// lat, lon; zstd level 3, like zarr-python's default), its metadata written and no chunk
/// yet: the dataset the Zarr and network benchmarks fill and read.
///
/// # Errors
/// The directory cannot be written, or zarrs refuses the shape.
pub fn float32_zarr_dir(
    dir: &std::path::Path,
    shape: &[u64],
    chunk: &[u64],
) -> Result<
    (
        Arc<zarrs::filesystem::FilesystemStore>,
        zarrs::array::Array<zarrs::filesystem::FilesystemStore>,
    ),
    Box<dyn std::error::Error + Send + Sync>,
> {
    let fs = Arc::new(zarrs::filesystem::FilesystemStore::new(dir)?);
    zarrs::group::GroupBuilder::new()
        .build(fs.clone(), "/")?
        .store_metadata()?;
    let zstd: Arc<dyn zarrs::array::BytesToBytesCodecTraits> =
        Arc::new(zarrs::array::codec::ZstdCodec::new(3, false));
    let array = zarrs::array::ArrayBuilder::new(
        shape.to_vec(),
        chunk.to_vec(),
        zarrs::array::data_type::float32(),
        0f32,
    )
    .bytes_to_bytes_codecs(vec![zstd])
    .dimension_names(Some(["time", "lat", "lon"]))
    .build(fs.clone(), "/data")?;
    array.store_metadata()?;
    Ok((fs, array))
}
