//! The conformance suite every [`BlockStore`] backend runs against itself.
//!
//! Each check is a function that panics (it runs inside `#[tokio::test]`) when the store
//! breaks the [`BlockStore`] contract. A backend's tests call [`conformance_tests!`] with a
//! function that makes a fresh [`Subject`]; the macro writes one named test per check, so a
//! failure names the check. A backend that can plant bad bytes under a CID gives the subject
//! a [`Corrupter`], and read-side verification is checked too.
//!
//! ```
//! // In a backend's tests/conformance.rs:
//! use std::sync::Arc;
//! use hamt::MemoryStore;
//! use hamt::test_suite::Subject;
//!
//! fn memory() -> Subject {
//!     let store = MemoryStore::new().with_read_verification(true);
//!     Subject::new(Arc::new(store.clone())).with_corrupter(store)
//! }
//!
//! hamt::conformance_tests!(memory);
//! # fn main() {}
//! ```

use std::any::Any;
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

/// A store under test, with what the checks need to know about it.
pub struct Subject {
    /// The store.
    pub store: Arc<dyn BlockStore>,
    /// Plants bad bytes, for [`corrupted_block_detected`]; without one that check fails,
    /// so a backend that has none does not ask for it (see [`conformance_tests!`]).
    pub corrupter: Option<Box<dyn Corrupter>>,
    /// The largest block the store takes (2 MiB unless said otherwise).
    pub max_block: usize,
    /// Kept alive as long as the subject: temporary directories, servers.
    guards: Vec<Box<dyn Any + Send + Sync>>,
}

impl Subject {
    /// A subject of `store`, taking blocks of up to 2 MiB.
    pub fn new(store: Arc<dyn BlockStore>) -> Self {
        Self {
            store,
            corrupter: None,
            max_block: 2 << 20,
            guards: Vec::new(),
        }
    }

    /// Lets the checks plant bad bytes through `corrupter`.
    #[must_use]
    pub fn with_corrupter(mut self, corrupter: impl Corrupter + 'static) -> Self {
        self.corrupter = Some(Box::new(corrupter));
        self
    }

    /// The largest block the store takes (a Kubo node's RPC server takes less than 2 MiB).
    #[must_use]
    pub fn max_block(mut self, bytes: usize) -> Self {
        self.max_block = bytes;
        self
    }

    /// Keeps `guard` (a temporary directory, say) alive as long as the subject.
    #[must_use]
    pub fn keep(mut self, guard: impl Any + Send + Sync) -> Self {
        self.guards.push(Box::new(guard));
        self
    }

    /// How many things the subject keeps alive.
    pub fn guards(&self) -> usize {
        self.guards.len()
    }
}

/// What a subject function returns: a [`Subject`], or a future of one (for stores that
/// start asynchronously).
pub trait IntoSubject {
    /// The subject, once ready.
    fn into_subject(self) -> std::pin::Pin<Box<dyn Future<Output = Subject>>>;
}

impl IntoSubject for Subject {
    fn into_subject(self) -> std::pin::Pin<Box<dyn Future<Output = Subject>>> {
        Box::pin(std::future::ready(self))
    }
}

impl<F: Future<Output = Subject> + 'static> IntoSubject for F {
    fn into_subject(self) -> std::pin::Pin<Box<dyn Future<Output = Subject>>> {
        Box::pin(self)
    }
}

/// Writes one `#[tokio::test]` per check of the suite, each on a fresh subject from
/// `$subject` (a `fn() -> Subject`, or an `async fn` for stores that start asynchronously). With `corrupt` after it, the subject has a
/// [`Corrupter`] and [`corrupted_block_detected`] runs too. The calling crate needs `tokio`
/// with the `macros` and `rt-multi-thread` features among its dev-dependencies.
#[macro_export]
macro_rules! conformance_tests {
    ($subject:path) => {
        $crate::conformance_tests!(@checks $subject,
            round_trip, missing_block, idempotent_put, put_keyed_verifies, batch_round_trip,
            concurrent_put_get, large_blocks, hamt_over_store, sync_keeps_blocks,
            capabilities_agree);
    };
    ($subject:path, corrupt) => {
        $crate::conformance_tests!($subject);
        $crate::conformance_tests!(@checks $subject, corrupted_block_detected);
    };
    (@checks $subject:path, $($check:ident),+) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let subject = $crate::test_suite::IntoSubject::into_subject($subject()).await;
                $crate::test_suite::$check(&subject).await;
            }
        )+
    };
}

/// Runs every check of the suite on one subject, the corrupted-block check when it has a
/// [`Corrupter`]. [`conformance_tests!`] is the usual way: it names each check.
pub async fn run_all(subject: &Subject) {
    round_trip(subject).await;
    missing_block(subject).await;
    idempotent_put(subject).await;
    put_keyed_verifies(subject).await;
    batch_round_trip(subject).await;
    concurrent_put_get(subject).await;
    large_blocks(subject).await;
    hamt_over_store(subject).await;
    sync_keeps_blocks(subject).await;
    capabilities_agree(subject).await;
    if subject.corrupter.is_some() {
        corrupted_block_detected(subject).await;
    }
}

fn distinct(tag: &str, i: usize) -> Bytes {
    Bytes::from(format!("conformance {tag} {i} {}", std::process::id()))
}

/// `put` returns the CIDv1 of the bytes under the store's hash; `get` returns them exactly.
pub async fn round_trip(subject: &Subject) {
    let store = &subject.store;
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
        assert_eq!(
            store.block_size(&cid).await.expect("block_size"),
            data.len() as u64
        );
    }
    let empty = store
        .put(Codec::Raw, Bytes::new())
        .await
        .expect("put empty");
    assert!(store.get(&empty).await.expect("get empty").is_empty());
}

/// A block that was never stored is [`Error::NotFound`], and `has` says false.
pub async fn missing_block(subject: &Subject) {
    let store = &subject.store;
    let cid = store
        .hash_alg()
        .cid(Codec::Raw, &distinct("never stored", 0));
    let err = store.get(&cid).await.expect_err("get of a missing block");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
    assert!(matches!(err, Error::NotFound { cid: c } if c == cid));
    assert!(!store.has(&cid).await.expect("has"));
    let err = store
        .block_size(&cid)
        .await
        .expect_err("block_size of a missing block");
    assert!(err.is_not_found(), "expected NotFound, got {err:?}");
}

/// Storing the same bytes twice gives the same CID and no error.
pub async fn idempotent_put(subject: &Subject) {
    let store = &subject.store;
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
pub async fn put_keyed_verifies(subject: &Subject) {
    let store = &subject.store;
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
pub async fn batch_round_trip(subject: &Subject) {
    let store = &subject.store;
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
pub async fn concurrent_put_get(subject: &Subject) {
    let store = &subject.store;
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

/// Blocks of 1 MiB and 2 MiB (or the subject's `max_block` bytes, when smaller) round-trip
/// unchanged.
pub async fn large_blocks(subject: &Subject) {
    let (store, max_block) = (&subject.store, subject.max_block);
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
        assert!(store.has(&cid).await.expect("has large"));
        assert_eq!(
            store.block_size(&cid).await.expect("block_size large"),
            size as u64
        );
        let batch = store.get_many(&[cid]).await.expect("get_many large");
        assert!(batch[0] == data, "large block differs in a batch");
    }
}

/// A HAMT of 10 000 keys written through the store reads back fully from a fresh handle,
/// and gets the same root as the same HAMT in memory.
pub async fn hamt_over_store(subject: &Subject) {
    let (store, n) = (subject.store.clone(), 10_000);
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

/// `sync` succeeds after writes, keeps every block readable, and may be called again with
/// nothing new; a store that says it is durable also says it accepts writes.
pub async fn sync_keeps_blocks(subject: &Subject) {
    let store = &subject.store;
    let blocks: Vec<(Codec, Bytes)> = (0..40).map(|i| (Codec::Raw, distinct("sync", i))).collect();
    let cids = store.put_many(blocks.clone()).await.expect("put_many");
    store.sync().await.expect("sync after writes");
    store.sync().await.expect("sync with nothing new");
    let got = store.get_many(&cids).await.expect("get_many after sync");
    assert_eq!(
        got,
        blocks.into_iter().map(|(_, d)| d).collect::<Vec<_>>(),
        "blocks changed by sync"
    );
    let caps = store.capabilities();
    assert!(
        caps.write,
        "the suite writes, so the store must say it accepts writes"
    );
}

/// A store's [`SubtreeFetch`](crate::SubtreeFetch) sends exactly the blocks of a HAMT in
/// depth-first pre-order, links in [`dag::links`](crate::dag::links) order, each once, or
/// says at once that it cannot ([`Error::NotSupported`]).
async fn subtree_is_a_depth_first_walk(store: &Arc<dyn BlockStore>) {
    use futures::StreamExt as _;
    let Some(fetch) = store.subtree_fetch() else {
        return;
    };
    let mut map = Hamt::new(store.clone());
    for i in 0..300 {
        map.insert(&format!("subtree/{i}"), distinct("subtree", i % 50))
            .await
            .expect("insert");
    }
    let root = map.flush().await.expect("flush");
    // The walk the stream must follow, over plain gets.
    let mut expected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(cid) = stack.pop() {
        if !seen.insert(cid) {
            continue;
        }
        let data = store.get(&cid).await.expect("get");
        let mut links = crate::dag::links(&cid, &data).expect("links");
        links.reverse();
        stack.extend(links);
        expected.push(cid);
    }
    let mut got = Vec::new();
    let mut blocks = fetch.subtree(root, false);
    while let Some(block) = blocks.next().await {
        match block {
            Ok(block) => got.push(*block.cid()),
            Err(Error::NotSupported { .. }) if got.is_empty() => return,
            Err(e) => panic!("subtree stream failed after {} blocks: {e}", got.len()),
        }
    }
    assert_eq!(got, expected, "subtree stream order");
}

/// The capability flags agree with the extension traits the store hands out.
pub async fn capabilities_agree(subject: &Subject) {
    let store = &subject.store;
    let caps = store.capabilities();
    assert_eq!(caps.pin, store.pinning().is_some(), "pin flag vs pinning()");
    assert_eq!(
        caps.check,
        store.checker().is_some(),
        "check flag vs checker()"
    );
    assert_eq!(
        caps.import_car,
        store.car_importer().is_some(),
        "import_car flag vs car_importer()"
    );
    assert_eq!(
        caps.subtree,
        store.subtree_fetch().is_some(),
        "subtree flag vs subtree_fetch()"
    );
    if store.subtree_fetch().is_some() {
        subtree_is_a_depth_first_walk(store).await;
    }
    if let Some(pinning) = store.pinning() {
        let root = store
            .put(Codec::Raw, distinct("pin", 0))
            .await
            .expect("put");
        pinning.pin(&root).await.expect("pin");
        assert!(pinning.is_pinned(&root).await.expect("is_pinned"));
        pinning.unpin(&root).await.expect("unpin");
        assert!(
            !pinning
                .is_pinned(&root)
                .await
                .expect("is_pinned after unpin")
        );
    }
    if let Some(checker) = store.checker() {
        checker.check().await.expect("check of a healthy store");
    }
}

/// Bytes planted under a CID are reported as [`Error::Corrupt`], never returned.
pub async fn corrupted_block_detected(subject: &Subject) {
    let store = &subject.store;
    let corrupter = subject
        .corrupter
        .as_deref()
        .expect("this check needs a subject with a corrupter");
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
    use crate::codec::varint::push as varint;
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
