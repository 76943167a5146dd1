//! The conformance suite every [`BlockStore`] backend runs against itself.
//!
//! Each function panics (it is meant to run inside `#[tokio::test]`) when the store breaks
//! the [`BlockStore`] contract. [`run_all`] runs every check; a backend that can plant bad
//! bytes under a CID passes a [`Corrupter`] so that read-side verification is checked too.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use hamt::MemoryStore;
//! // In a backend's tests/conformance.rs, under #[tokio::test]:
//! # async fn conformance() {
//! let store = MemoryStore::new().with_read_verification(true);
//! hamt::test_suite::run_all(Arc::new(store.clone()), Some(&store)).await;
//! # }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cid::Cid;
use futures::TryStreamExt as _;

use crate::{Block, BlockStore, Codec, Error, Hamt, HamtReader, MemoryStore};

/// Plants bytes under a CID behind the store's back, as disk or network corruption would.
#[async_trait]
pub trait Corrupter: Send + Sync {
    /// Makes the store hold `data` under `cid` without verification.
    async fn corrupt(&self, cid: &Cid, data: Bytes);
}

#[async_trait]
impl Corrupter for MemoryStore {
    async fn corrupt(&self, cid: &Cid, data: Bytes) {
        self.insert_unchecked(*cid, data);
    }
}

/// Runs every check of the suite, with blocks of up to 2 MiB.
pub async fn run_all(store: Arc<dyn BlockStore>, corrupter: Option<&dyn Corrupter>) {
    run_all_with(store, corrupter, 2 << 20).await;
}

/// Runs every check of the suite for a store that takes blocks of at most `max_block`
/// bytes (a Kubo node's RPC server, say).
pub async fn run_all_with(
    store: Arc<dyn BlockStore>,
    corrupter: Option<&dyn Corrupter>,
    max_block: usize,
) {
    round_trip(&store).await;
    missing_block(&store).await;
    idempotent_put(&store).await;
    put_keyed_verifies(&store).await;
    batch_round_trip(&store).await;
    concurrent_put_get(&store).await;
    large_blocks(&store, max_block).await;
    hamt_over_store(store.clone(), 10_000).await;
    if let Some(corrupter) = corrupter {
        corrupted_block_detected(&store, corrupter).await;
    }
}

fn distinct(tag: &str, i: usize) -> Bytes {
    Bytes::from(format!("conformance {tag} {i} {}", std::process::id()))
}

/// `put` returns the CIDv1 of the bytes under the store's hash; `get` returns them exactly.
pub async fn round_trip(store: &Arc<dyn BlockStore>) {
    for codec in [Codec::Raw, Codec::DagCbor] {
        let data = if codec == Codec::Raw {
            distinct("round trip", 0)
        } else {
            Bytes::from_static(&[0x82, 0x01, 0x02])
        };
        let cid = store.put(codec, data.clone()).await.expect("put");
        assert_eq!(cid, store.hash_alg().cid(codec, &data), "CID of put");
        assert_eq!(cid.version(), cid::Version::V1);
        assert_eq!(store.get(&cid).await.expect("get"), data);
        assert!(store.has(&cid).await.expect("has"));
    }
    let empty = store
        .put(Codec::Raw, Bytes::new())
        .await
        .expect("put empty");
    assert!(store.get(&empty).await.expect("get empty").is_empty());
}

/// A block that was never stored is [`Error::NotFound`], and `has` says false.
pub async fn missing_block(store: &Arc<dyn BlockStore>) {
    let cid = store
        .hash_alg()
        .cid(Codec::Raw, &distinct("never stored", 0));
    let err = store.get(&cid).await.expect_err("get of a missing block");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
    assert!(matches!(err, Error::NotFound { cid: c } if c == cid));
    assert!(!store.has(&cid).await.expect("has"));
}

/// Storing the same bytes twice gives the same CID and no error.
pub async fn idempotent_put(store: &Arc<dyn BlockStore>) {
    let data = distinct("idempotent", 0);
    let a = store
        .put(Codec::Raw, data.clone())
        .await
        .expect("first put");
    let b = store
        .put(Codec::Raw, data.clone())
        .await
        .expect("second put");
    assert_eq!(a, b);
    store
        .put_keyed(&a, data.clone())
        .await
        .expect("put_keyed of the same block");
    assert_eq!(store.get(&a).await.expect("get"), data);
}

/// `put_keyed` with bytes that do not match the CID is [`Error::Corrupt`] and stores nothing.
pub async fn put_keyed_verifies(store: &Arc<dyn BlockStore>) {
    let data = distinct("keyed", 0);
    let cid = store.hash_alg().cid(Codec::Raw, &data);
    let err = store
        .put_keyed(&cid, Bytes::from_static(b"other bytes"))
        .await
        .expect_err("mismatched put_keyed");
    assert!(
        matches!(err, Error::Corrupt { .. }),
        "expected Corrupt, got {err:?}"
    );
    assert!(!store.has(&cid).await.expect("has"));
    // Blocks addressed with another hash than the store's own are accepted as given.
    let other = match store.hash_alg() {
        crate::HashAlg::Blake3 => crate::HashAlg::Sha2_256,
        _ => crate::HashAlg::Blake3,
    };
    let foreign = other.cid(Codec::Raw, &data);
    store
        .put_keyed(&foreign, data.clone())
        .await
        .expect("foreign hash");
    assert_eq!(store.get(&foreign).await.expect("get foreign"), data);
}

/// The batch forms keep input order and agree with the single forms.
pub async fn batch_round_trip(store: &Arc<dyn BlockStore>) {
    let blocks: Vec<(Codec, Bytes)> = (0..300)
        .map(|i| (Codec::Raw, distinct("batch", i)))
        .collect();
    let cids = store.put_many(blocks.clone()).await.expect("put_many");
    assert_eq!(cids.len(), blocks.len());
    for ((codec, data), cid) in blocks.iter().zip(&cids) {
        assert_eq!(*cid, store.hash_alg().cid(*codec, data));
    }
    let got = store.get_many(&cids).await.expect("get_many");
    assert_eq!(
        got,
        blocks.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>()
    );

    let keyed: Vec<(Cid, Bytes)> = (0..100)
        .map(|i| {
            let d = distinct("keyed batch", i);
            (store.hash_alg().cid(Codec::Raw, &d), d)
        })
        .collect();
    store
        .put_many_keyed(keyed.clone())
        .await
        .expect("put_many_keyed");
    for (cid, data) in &keyed {
        assert_eq!(&store.get(cid).await.expect("get"), data);
    }
    let trusted: Vec<Block> = (0..50)
        .map(|i| {
            Block::new(
                store.hash_alg(),
                Codec::DagCbor,
                distinct("trusted batch", i),
            )
        })
        .collect();
    store.put_blocks(trusted.clone()).await.expect("put_blocks");
    for block in &trusted {
        assert_eq!(&store.get(block.cid()).await.expect("get"), block.data());
    }
    let mut with_missing = cids[..3].to_vec();
    with_missing.push(store.hash_alg().cid(Codec::Raw, b"missing from batch"));
    let err = store
        .get_many(&with_missing)
        .await
        .expect_err("missing in batch");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
}

/// Many tasks putting and getting at once see their own blocks.
pub async fn concurrent_put_get(store: &Arc<dyn BlockStore>) {
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let data = distinct(&format!("concurrent {t}"), i);
                    let cid = store.put(Codec::Raw, data.clone()).await.expect("put");
                    assert_eq!(store.get(&cid).await.expect("get"), data);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task panicked");
    }
}

/// Blocks of 1 MiB and 2 MiB (or `max_block` bytes, when smaller) round-trip unchanged.
pub async fn large_blocks(store: &Arc<dyn BlockStore>, max_block: usize) {
    let mut sizes = vec![(1 << 20).min(max_block), (2 << 20).min(max_block)];
    sizes.dedup();
    for size in sizes {
        #[allow(clippy::cast_possible_truncation)]
        let data: Bytes = (0..size)
            .map(|i: usize| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        let cid = store
            .put(Codec::Raw, data.clone())
            .await
            .expect("put large");
        let back = store.get(&cid).await.expect("get large");
        assert_eq!(back.len(), size);
        assert!(back == data, "large block differs");
    }
}

/// A HAMT of `n` keys written through the store reads back fully from a fresh handle, and
/// gets the same root as the same HAMT in memory.
pub async fn hamt_over_store(store: Arc<dyn BlockStore>, n: usize) {
    let pairs: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| (format!("suite/{i}"), format!("value {i}").into_bytes()))
        .collect();
    let mut map = Hamt::new(store.clone());
    map.extend(pairs.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .await
        .expect("extend");
    let root = map.flush().await.expect("flush");

    let reference_store: Arc<dyn BlockStore> = Arc::new(MemoryStore::with_hash(store.hash_alg()));
    let mut reference = Hamt::new(reference_store);
    reference
        .extend(pairs.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .await
        .expect("extend");
    assert_eq!(
        root,
        reference.flush().await.expect("flush"),
        "root differs from MemoryStore's"
    );

    let reader = HamtReader::open(store, root).await.expect("open");
    for (k, v) in &pairs {
        assert_eq!(
            reader.get(k).await.expect("get").as_deref(),
            Some(&v[..]),
            "{k}"
        );
    }
    let mut keys: Vec<String> = reader.keys().try_collect().await.expect("keys");
    keys.sort();
    let mut expected: Vec<String> = pairs.into_iter().map(|(k, _)| k).collect();
    expected.sort();
    assert_eq!(keys, expected);
}

/// Bytes planted under a CID are reported as [`Error::Corrupt`], never returned.
pub async fn corrupted_block_detected(store: &Arc<dyn BlockStore>, corrupter: &dyn Corrupter) {
    let data = distinct("to corrupt", 0);
    let cid = store.put(Codec::Raw, data).await.expect("put");
    corrupter
        .corrupt(&cid, Bytes::from_static(b"flipped bits"))
        .await;
    let err = store.get(&cid).await.expect_err("get of a corrupted block");
    assert!(
        matches!(err, Error::Corrupt { cid: c } if c == cid),
        "expected Corrupt, got {err:?}"
    );
    let err = store
        .get_many(&[cid])
        .await
        .expect_err("get_many of a corrupted block");
    assert!(
        matches!(err, Error::Corrupt { .. }),
        "expected Corrupt, got {err:?}"
    );
}

/// Stores `content` as a UnixFS file of `chunk`-byte raw leaves under one DAG-PB root whose
/// UnixFS data records the file size and each chunk's size: the shape Kubo gives a file of a
/// few chunks (not checked byte for byte against Kubo). For tests of values stored as files.
pub async fn unixfs_file(store: &dyn BlockStore, content: &[u8], chunk: usize) -> Cid {
    fn varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push(u8::try_from(n & 0x7f).expect("seven bits") | 0x80);
            n >>= 7;
        }
        out.push(u8::try_from(n).expect("below 0x80"));
    }
    fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, number << 3 | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    let mut node = Vec::new();
    let mut unixfs = vec![0x08, 0x02]; // Type = File
    varint(&mut unixfs, 0x18);
    varint(&mut unixfs, content.len() as u64); // filesize
    for piece in content.chunks(chunk) {
        let leaf = store
            .put(Codec::Raw, Bytes::copy_from_slice(piece))
            .await
            .expect("store");
        let mut link = Vec::new();
        field(&mut link, 1, &leaf.to_bytes());
        field(&mut link, 2, b"");
        varint(&mut link, 0x18);
        varint(&mut link, piece.len() as u64);
        field(&mut node, 2, &link);
        varint(&mut unixfs, 0x20);
        varint(&mut unixfs, piece.len() as u64); // blocksizes
    }
    field(&mut node, 1, &unixfs);
    let cid = store.hash_alg().cid(Codec::DagPb, &node);
    store.put_keyed(&cid, node.into()).await.expect("store");
    cid
}

/// Runs the Python peer `script` (real py-hamt from PyPI) with `args`, feeding it `stdin`,
/// and returns what it printed. The interpreter comes from `HAMT_TEST_PYTHON`, which
/// `cargo xtask test` sets to its venv; without it this panics, so interop tests fail rather
/// than pass silently. A failing script panics with its standard error.
pub fn run_python_peer(script: &std::path::Path, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let python = std::env::var("HAMT_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("HAMT_TEST_PYTHON is not set: run these tests with `cargo xtask test`, which installs py-hamt in a venv")
    });
    let mut child = Command::new(python)
        .env("PYTHONWARNINGS", "ignore")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the py-hamt peer");
    // The pipe closes when this statement ends, so the peer sees end of input.
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        pipe.write_all(input).expect("write to the py-hamt peer");
    }
    let out = child.wait_with_output().expect("wait for the py-hamt peer");
    assert!(
        out.status.success(),
        "py-hamt peer {} failed: {args:?}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
