//! [`S3Store`]: blocks packed into CAR objects on S3, read back with one ranged GET each.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use hamt::car::{CarReader, CarWriter};
use hamt::{
    BlockStore, Capabilities, Check, CheckReport, Cid, HashAlg, ImportCar, ImportedCar, verify,
};
use object_store::client::HttpErrorKind;
use object_store::path::Path;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use tokio::io::AsyncReadExt as _;
use tokio_util::compat::TokioAsyncReadCompatExt as _;

use crate::builder::S3StoreBuilder;
use crate::error::Error;
use crate::index::{Entry, Index, Location};

mod gc;

pub use self::gc::PackInfo;

/// The URL scheme of this store.
pub const SCHEME: &str = "s3";
/// Default target size of a pack.
pub const DEFAULT_PACK_SIZE: usize = 64 << 20;
/// Packs larger than this are uploaded in parts.
const MULTIPART_THRESHOLD: usize = 16 << 20;
/// Size of each part of a multipart upload.
const PART_SIZE: usize = 8 << 20;
/// `object_store`'s first backoff.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Index objects fetched at once.
const INDEX_CONCURRENCY: usize = 16;

/// Request and traffic counters, for benchmarks and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Ranged GETs of single blocks.
    pub block_reads: u64,
    /// Multi-range reads of several blocks of one pack ([`BlockStore::get_many`]).
    pub batch_reads: u64,
    /// GETs of index objects.
    pub index_reads: u64,
    /// LIST requests for index objects.
    pub lists: u64,
    /// Pack objects written.
    pub packs_written: u64,
    /// Blocks written in those packs.
    pub blocks_written: u64,
    /// Bytes of packs and indexes uploaded.
    pub bytes_written: u64,
}

#[derive(Debug, Default)]
struct Counters {
    block_reads: AtomicU64,
    batch_reads: AtomicU64,
    index_reads: AtomicU64,
    lists: AtomicU64,
    packs_written: AtomicU64,
    blocks_written: AtomicU64,
    bytes_written: AtomicU64,
}

fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// What the store knows and holds, under one lock that is never held across a request.
#[derive(Default)]
struct State {
    /// Pack object paths; a [`Location`] names a pack by its place here.
    packs: Vec<Path>,
    /// Index objects already loaded, by name.
    loaded: HashSet<String>,
    /// Every block of every loaded index.
    index: HashMap<Cid, Location>,
    /// Blocks not yet durable: waiting for a pack, or in a pack being uploaded.
    unsynced: HashMap<Cid, Bytes>,
    /// The blocks of the next pack, in order, and their size.
    open: Vec<Cid>,
    open_bytes: usize,
    /// Packs being uploaded right now.
    uploading: usize,
    /// Index listings started, and the start number of the latest one completed: a listing
    /// started after a miss answers that miss.
    listings_started: u64,
    listed_through: u64,
}

impl State {
    fn register(&mut self, name: String, pack: Path, index: &Index) -> Result<(), Error> {
        if !self.loaded.insert(name) {
            return Ok(());
        }
        let id = u32::try_from(self.packs.len()).map_err(|_| Error::CorruptIndex {
            path: pack.to_string(),
            reason: "more than 2^32 packs".into(),
        })?;
        self.packs.push(pack);
        for e in &index.entries {
            let at = Location {
                pack: id,
                offset: e.offset,
                len: e.len,
            };
            self.index.entry(e.cid).or_insert(at);
        }
        Ok(())
    }
}

struct Inner {
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
    describe: String,
    pack_size: usize,
    hash_alg: HashAlg,
    state: Mutex<State>,
    /// Serialises index refreshes so concurrent misses share one listing.
    refresh: tokio::sync::Mutex<()>,
    /// Woken whenever an upload ends.
    idle: tokio::sync::Notify,
    counters: Counters,
    /// Retries of a write whose answer was lost, within this time.
    retries: usize,
    retry_timeout: Duration,
}

/// What [`S3StoreBuilder::build`] settled, for [`S3Store::from_parts`].
pub(crate) struct Parts {
    pub(crate) objects: Arc<dyn ObjectStore>,
    pub(crate) prefix: Path,
    pub(crate) describe: String,
    pub(crate) pack_size: usize,
    pub(crate) hash_alg: HashAlg,
    pub(crate) retries: usize,
    pub(crate) retry_timeout: Duration,
}

/// A [`BlockStore`] on S3 (or anything `object_store` speaks S3 to) that packs blocks into
/// CAR v1 objects of about [`pack_size`](S3StoreBuilder::pack_size) and reads each block back
/// with one ranged GET.
///
/// Layout under the store's prefix: `packs/NAME.car` and `index/NAME.idx`, where `NAME` is
/// the BLAKE3 of the index, so objects are write-once and content-derived, written with
/// `PutMode::Create`. A pack's index is written only after the pack is complete: a crash
/// can leave a pack without an index (invisible, harmless), never an index entry pointing at
/// missing data. Writers never modify a shared object, so any number of processes can write
/// to one prefix.
///
/// Writes are buffered in memory (and readable at once) until a pack fills or
/// [`sync`](Self::sync) is called; only synced blocks are durable. Reads load the indexes
/// lazily (one LIST and a GET per index object), then cost one ranged GET per block, checked
/// against its CID. A block not in the loaded indexes triggers one more listing, so blocks
/// other writers synced since are found. Cloning is cheap and clones share everything.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

/// The bytes `range` of `path`, all of them: a shorter answer (a body cut short in transit
/// but framed as complete) is [`Error::ShortRead`], never a short block.
async fn read_range(
    objects: &dyn ObjectStore,
    path: &Path,
    range: std::ops::Range<u64>,
) -> Result<Bytes, Error> {
    let data = objects.get_range(path, range.clone()).await?;
    let expected = range.end - range.start;
    if data.len() as u64 != expected {
        return Err(Error::ShortRead {
            path: path.to_string(),
            expected,
            got: data.len() as u64,
        });
    }
    Ok(data)
}

/// The kind of the HTTP failure behind `e`, if it is one.
fn http_error_kind(e: &object_store::Error) -> Option<HttpErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(http) = err.downcast_ref::<object_store::client::HttpError>() {
            return Some(http.kind());
        }
        source = err.source();
    }
    None
}

/// True when `e` says a request was sent but its answer never came (a timeout, an
/// interrupted connection): the kinds `object_store` does not retry for writes that are not
/// idempotent.
fn answer_lost(e: &object_store::Error) -> bool {
    matches!(
        http_error_kind(e),
        Some(HttpErrorKind::Timeout | HttpErrorKind::Interrupted)
    )
}

/// Where a block lives: [`S3Store::locate_block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLocation {
    /// The pack object's path in the bucket.
    pub pack: String,
    /// Offset of the block's data in the pack.
    pub offset: u64,
    /// The block's length.
    pub len: u64,
}

impl S3Store {
    pub(crate) fn from_parts(parts: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                objects: parts.objects,
                prefix: parts.prefix,
                describe: parts.describe,
                pack_size: parts.pack_size,
                hash_alg: parts.hash_alg,
                state: Mutex::new(State::default()),
                refresh: tokio::sync::Mutex::new(()),
                idle: tokio::sync::Notify::new(),
                counters: Counters::default(),
                retries: parts.retries,
                retry_timeout: parts.retry_timeout,
            }),
        }
    }

    /// Options for a store, from the process environment; set at least the bucket.
    pub fn builder() -> S3StoreBuilder {
        S3StoreBuilder::from_env()
    }

    /// Options from a URL (see [`S3StoreBuilder::with_url`]), with credentials and other
    /// `AWS_*` settings from the process environment, never from the URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`].
    pub fn builder_from_url(text: &str) -> Result<S3StoreBuilder, Error> {
        Self::builder().with_url(text)
    }

    /// Opens the store named by `url` (see [`builder_from_url`](Self::builder_from_url)).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], and as [`S3StoreBuilder::build`].
    pub fn from_url(url: &str) -> Result<Self, Error> {
        Self::builder_from_url(url)?.build()
    }

    /// Request and traffic counters since the store was built.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            block_reads: get(&c.block_reads),
            batch_reads: get(&c.batch_reads),
            index_reads: get(&c.index_reads),
            lists: get(&c.lists),
            packs_written: get(&c.packs_written),
            blocks_written: get(&c.blocks_written),
            bytes_written: get(&c.bytes_written),
        }
    }

    /// Blocks written but not yet durable.
    pub fn unsynced_blocks(&self) -> usize {
        self.state().unsynced.len()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update of `State` is a few map operations that cannot panic half-way.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn pack_path(&self, name: &str) -> Path {
        self.inner
            .prefix
            .clone()
            .join("packs")
            .join(format!("{name}.car"))
    }

    fn index_dir(&self) -> Path {
        self.inner.prefix.clone().join("index")
    }

    /// Packs every buffered block and waits until every pack, this caller's and any other
    /// task's, is uploaded with its index: afterwards all blocks written before the call are
    /// durable.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] when an upload fails; the blocks stay buffered (and readable)
    /// for the next `sync`.
    pub async fn sync(&self) -> Result<(), Error> {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let batch = {
                let mut st = self.state();
                if !st.open.is_empty() {
                    st.open_bytes = 0;
                    st.uploading += 1;
                    Some(std::mem::take(&mut st.open))
                } else if st.uploading == 0 {
                    return Ok(());
                } else {
                    None
                }
            };
            match batch {
                Some(batch) => self.upload(batch).await?,
                None => idle.await,
            }
        }
    }

    /// Uploads `batch` on its own task, so that a caller whose future is dropped (a timeout,
    /// a sibling failing in `try_join`) cannot strand it: the task still finishes, and on
    /// failure puts the batch back in line; the caller has counted it in `uploading`.
    async fn upload(&self, batch: Vec<Cid>) -> Result<(), Error> {
        let this = self.clone();
        match tokio::spawn(async move { this.upload_now(batch).await }).await {
            Ok(result) => result,
            Err(e) => Err(Error::Hamt(hamt::Error::Backend {
                store: "s3",
                temporary: true,
                source: Box::new(e),
            })),
        }
    }

    async fn upload_now(&self, batch: Vec<Cid>) -> Result<(), Error> {
        let result = self.upload_pack(&batch).await;
        {
            let mut st = self.state();
            st.uploading -= 1;
            if result.is_err() {
                // Back in line for the next pack: nothing buffered is lost.
                let bytes: usize = batch
                    .iter()
                    .filter_map(|c| st.unsynced.get(c))
                    .map(Bytes::len)
                    .sum();
                st.open_bytes += bytes;
                let mut rest = std::mem::take(&mut st.open);
                st.open = batch;
                st.open.append(&mut rest);
            }
        }
        self.inner.idle.notify_waiters();
        result
    }

    async fn upload_pack(&self, batch: &[Cid]) -> Result<(), Error> {
        let blocks: Vec<(Cid, Bytes)> = {
            let st = self.state();
            batch
                .iter()
                .filter_map(|c| st.unsynced.get(c).map(|b| (*c, b.clone())))
                .collect()
        };
        let Some(first) = blocks.first() else {
            return Ok(());
        };
        let size: usize = blocks.iter().map(|(_, b)| b.len() + 48).sum();
        let mut car = CarWriter::new(
            futures::io::Cursor::new(Vec::with_capacity(size + 64)),
            vec![first.0],
        )
        .await?;
        let mut entries = Vec::with_capacity(blocks.len());
        for (cid, data) in &blocks {
            let offset = car.write(cid, data).await?;
            let len = u32::try_from(data.len()).map_err(|_| hamt::Error::Backend {
                store: "s3",
                temporary: false,
                source: format!("block {cid} is over 4 GiB").into(),
            })?;
            entries.push(Entry {
                cid: *cid,
                offset,
                len,
            });
        }
        let pack_len = car.position();
        let pack = Bytes::from(car.finish().await?.into_inner());
        let index = Index { pack_len, entries };
        let name = self.put_pack(pack, &index).await?;

        let mut st = self.state();
        st.register(name.clone(), self.pack_path(&name), &index)?;
        for (cid, _) in &blocks {
            st.unsynced.remove(cid);
        }
        drop(st);
        Ok(())
    }

    /// Writes a pack, then its index; returns the name.
    async fn put_pack(&self, pack: Bytes, index: &Index) -> Result<String, Error> {
        let (index_bytes, name) = index.encode();
        let pack_path = self.pack_path(&name);
        if pack.len() <= MULTIPART_THRESHOLD {
            self.put_new(&pack_path, pack).await?;
        } else {
            let upload = self.inner.objects.put_multipart(&pack_path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            writer.put(pack);
            writer.finish().await?;
        }
        self.publish_index(&name, index, index_bytes).await?;
        Ok(name)
    }

    /// Writes the index of a pack that is complete, which makes the pack visible; counts it.
    async fn publish_index(
        &self,
        name: &str,
        index: &Index,
        index_bytes: Vec<u8>,
    ) -> Result<(), Error> {
        let c = &self.inner.counters;
        bump(&c.bytes_written, index.pack_len + index_bytes.len() as u64);
        let index_path = self.index_dir().join(format!("{name}.idx"));
        self.put_new(&index_path, Bytes::from(index_bytes)).await?;
        bump(&c.packs_written, 1);
        bump(&c.blocks_written, index.entries.len() as u64);
        Ok(())
    }

    /// Creates a write-once object; one that exists already has this very content.
    ///
    /// `object_store` does not retry a conditional PUT whose answer was lost (a timeout, a
    /// connection cut while waiting): the server may have stored it. Here that is safe to
    /// retry, since the name is derived from the content: the object is either absent or
    /// holds these very bytes, and a retry then reports `AlreadyExists`, which is success.
    async fn put_new(&self, path: &Path, bytes: Bytes) -> Result<(), Error> {
        let payload = PutPayload::from(bytes);
        let started = std::time::Instant::now();
        let mut backoff = INITIAL_BACKOFF;
        let mut attempt = 0;
        loop {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .inner
                .objects
                .put_opts(path, payload.clone(), opts)
                .await
            {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => return Ok(()),
                Err(e)
                    if answer_lost(&e)
                        && attempt < self.inner.retries
                        && started.elapsed() < self.inner.retry_timeout =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Every object under `dir`. `object_store` retries a listing request that fails, but
    /// not one whose answer is cut off mid-body (an interrupted body); a listing is safe to
    /// repeat, so that one is retried here.
    async fn list(&self, dir: &Path) -> Result<Vec<ObjectMeta>, Error> {
        let started = std::time::Instant::now();
        let mut backoff = INITIAL_BACKOFF;
        let mut attempt = 0;
        loop {
            match self.inner.objects.list(Some(dir)).try_collect().await {
                Ok(listed) => return Ok(listed),
                Err(e)
                    if http_error_kind(&e) == Some(HttpErrorKind::Interrupted)
                        && attempt < self.inner.retries
                        && started.elapsed() < self.inner.retry_timeout =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Lists the index objects and loads those not loaded yet. Concurrent callers share one
    /// listing: whoever waited for another's listing returns without a new one.
    async fn refresh(&self) -> Result<(), Error> {
        let seen = self.state().listings_started;
        let _one = self.inner.refresh.lock().await;
        let mine = {
            let mut st = self.state();
            if st.listed_through > seen {
                return Ok(());
            }
            st.listings_started += 1;
            st.listings_started
        };
        bump(&self.inner.counters.lists, 1);
        let listed = self.list(&self.index_dir()).await?;
        let new: Vec<(String, Path)> = {
            let st = self.state();
            listed
                .into_iter()
                .filter_map(|meta| {
                    let name = meta.location.filename()?.strip_suffix(".idx")?.to_owned();
                    (!st.loaded.contains(&name)).then_some((name, meta.location))
                })
                .collect()
        };
        let loaded: Vec<(String, Index)> = futures::stream::iter(new)
            .map(|(name, path)| async move {
                let bytes = self.inner.objects.get(&path).await?.bytes().await?;
                bump(&self.inner.counters.index_reads, 1);
                let index = Index::decode(&name, &bytes).map_err(|reason| Error::CorruptIndex {
                    path: path.to_string(),
                    reason,
                })?;
                Ok::<_, Error>((name, index))
            })
            .buffer_unordered(INDEX_CONCURRENCY)
            .try_collect()
            .await?;
        let mut st = self.state();
        for (name, index) in loaded {
            let pack = self.pack_path(&name);
            st.register(name, pack, &index)?;
        }
        st.listed_through = st.listed_through.max(mine);
        Ok(())
    }

    /// Where `cid` is, listing the indexes again when it is not known yet. `Ok(None)` when
    /// the store does not have it.
    async fn locate(&self, cid: &Cid) -> Result<Option<(Path, Location)>, Error> {
        for attempt in 0..2 {
            {
                let st = self.state();
                if let Some(at) = st.index.get(cid) {
                    let pack = st.packs[at.pack as usize].clone();
                    return Ok(Some((pack, *at)));
                }
                if attempt == 1 {
                    return Ok(None);
                }
            }
            self.refresh().await?;
        }
        Ok(None)
    }

    /// The pack and byte range holding `cid`, or `None` when it is not in a synced pack.
    ///
    /// # Errors
    /// As [`sync`](Self::sync) for the index listing.
    pub async fn locate_block(&self, cid: &Cid) -> Result<Option<BlockLocation>, Error> {
        Ok(self.locate(cid).await?.map(|(pack, at)| BlockLocation {
            pack: pack.to_string(),
            offset: at.offset,
            len: u64::from(at.len),
        }))
    }

    /// Stores a CAR v1 file as one pack with its index: every block is verified while the
    /// file is read, then the file itself is uploaded unchanged, so `hamt export-car` output
    /// becomes readable here with one upload. The result's `location` is the pack's path.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Hamt`] for a malformed CAR or a block that does not match its
    /// CID (nothing is uploaded then); [`Error::ObjectStore`].
    pub async fn import_car(&self, path: &FsPath) -> Result<ImportedCar, Error> {
        let io = |source| Error::Io {
            path: path.into(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut car = CarReader::new(tokio::io::BufReader::new(file).compat()).await?;
        let roots = car.roots().to_vec();
        let mut entries = Vec::new();
        while let Some((cid, data, offset)) = car.next_block_at().await? {
            let len = u32::try_from(data.len()).map_err(|_| {
                Error::Hamt(hamt::Error::Decode {
                    what: "CAR",
                    cid: Some(cid),
                    reason: "block over 4 GiB".into(),
                })
            })?;
            entries.push(Entry { cid, offset, len });
        }
        let pack_len = tokio::fs::metadata(path).await.map_err(io)?.len();
        let index = Index { pack_len, entries };
        let (index_bytes, name) = index.encode();
        let pack_path = self.pack_path(&name);
        let upload = self.inner.objects.put_multipart(&pack_path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let streamed = async {
            let mut file = tokio::fs::File::open(path).await.map_err(io)?;
            let mut buf = vec![0; 1 << 20];
            let mut sent = 0u64;
            loop {
                let n = file.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    break;
                }
                writer.wait_for_capacity(4).await?;
                writer.write(&buf[..n]);
                sent += n as u64;
            }
            if sent == pack_len {
                Ok(())
            } else {
                Err(io(std::io::Error::other(
                    "the file changed while it was imported",
                )))
            }
        }
        .await;
        if let Err(e) = streamed {
            // An unfinished multipart upload is billed and invisible: end it.
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await?;
        self.publish_index(&name, &index, index_bytes).await?;
        let blocks = index.entries.len() as u64;
        self.state().register(name, pack_path.clone(), &index)?;
        Ok(ImportedCar {
            roots,
            blocks,
            location: Some(pack_path.to_string()),
        })
    }

    /// Checks that every index's pack exists and is long enough, and lists packs without an
    /// index (the report's `objects` are packs; its `orphans`, packs left without an index by
    /// an interrupted upload, invisible to readers and safe to delete once no writer runs).
    ///
    /// # Errors
    /// [`Error::CorruptIndex`], [`Error::TruncatedPack`], [`Error::ObjectStore`] (a pack
    /// missing included).
    pub async fn check(&self) -> Result<CheckReport, Error> {
        let objects = &self.inner.objects;
        let packs: HashMap<String, u64> = self
            .list(&self.inner.prefix.clone().join("packs"))
            .await?
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect();
        let indexes = self.list(&self.index_dir()).await?;
        let mut report = CheckReport::default();
        let mut with_index = HashSet::new();
        for meta in indexes {
            let path = meta.location.to_string();
            let name = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".idx"))
                .ok_or_else(|| Error::CorruptIndex {
                    path: path.clone(),
                    reason: "not named NAME.idx".into(),
                })?
                .to_owned();
            let bytes = objects.get(&meta.location).await?.bytes().await?;
            let index = Index::decode(&name, &bytes)
                .map_err(|reason| Error::CorruptIndex { path, reason })?;
            let pack = self.pack_path(&name).to_string();
            let size = *packs.get(&pack).ok_or_else(|| {
                Error::ObjectStore(object_store::Error::NotFound {
                    path: pack.clone(),
                    source: "an index names this pack but it is missing".into(),
                })
            })?;
            if size < index.pack_len {
                return Err(Error::TruncatedPack {
                    path: pack,
                    actual: size,
                    needed: index.pack_len,
                });
            }
            report.objects += 1;
            report.blocks += index.entries.len() as u64;
            report.bytes += size;
            with_index.insert(pack);
        }
        report.orphans = packs
            .into_keys()
            .filter(|p| !with_index.contains(p))
            .collect();
        report.orphans.sort();
        Ok(report)
    }
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("at", &self.inner.describe)
            .field("pack_size", &self.inner.pack_size)
            .finish_non_exhaustive()
    }
}

/// [`S3Store::check`], for callers that hold any store.
#[async_trait]
impl Check for S3Store {
    async fn check(&self) -> hamt::Result<CheckReport> {
        Ok(S3Store::check(self).await?)
    }
}

/// [`S3Store::import_car`], for callers that hold any store.
#[async_trait]
impl ImportCar for S3Store {
    async fn import_car_file(&self, path: &FsPath) -> hamt::Result<ImportedCar> {
        Ok(self.import_car(path).await?)
    }
}

#[async_trait]
impl BlockStore for S3Store {
    fn hash_alg(&self) -> HashAlg {
        self.inner.hash_alg
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write: true,
            durable: true,
            shared: true,
            check: true,
            import_car: true,
            ..Capabilities::default()
        }
    }

    /// Packs the buffered blocks and uploads them: [`S3Store::sync`].
    async fn sync(&self) -> hamt::Result<()> {
        Ok(S3Store::sync(self).await?)
    }

    fn checker(&self) -> Option<&dyn Check> {
        Some(self)
    }

    fn car_importer(&self) -> Option<&dyn ImportCar> {
        Some(self)
    }

    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        verify(cid, &data)?;
        let batch = {
            let mut st = self.state();
            if st.index.contains_key(cid) || st.unsynced.contains_key(cid) {
                return Ok(());
            }
            st.open_bytes += data.len();
            st.unsynced.insert(*cid, data);
            st.open.push(*cid);
            if st.open_bytes >= self.inner.pack_size {
                st.open_bytes = 0;
                st.uploading += 1;
                Some(std::mem::take(&mut st.open))
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            self.upload(batch).await?;
        }
        Ok(())
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        if let Some(data) = self.state().unsynced.get(cid) {
            return Ok(data.clone());
        }
        let (pack, at) = self
            .locate(cid)
            .await?
            .ok_or(hamt::Error::NotFound { cid: *cid })?;
        let range = at.offset..at.offset + u64::from(at.len);
        let data = read_range(&*self.inner.objects, &pack, range).await?;
        bump(&self.inner.counters.block_reads, 1);
        verify(cid, &data)?;
        Ok(data)
    }

    /// Blocks of one pack are fetched with one multi-range read (nearby ranges merged into
    /// single requests, as `object_store` does); packs are read concurrently.
    async fn get_many(&self, cids: &[Cid]) -> hamt::Result<Vec<Bytes>> {
        let mut out: Vec<Option<Bytes>> = vec![None; cids.len()];
        let mut by_pack: HashMap<Path, Vec<(usize, Location)>> = HashMap::new();
        for (i, cid) in cids.iter().enumerate() {
            if let Some(data) = self.state().unsynced.get(cid) {
                out[i] = Some(data.clone());
                continue;
            }
            let (pack, at) = self
                .locate(cid)
                .await?
                .ok_or(hamt::Error::NotFound { cid: *cid })?;
            by_pack.entry(pack).or_default().push((i, at));
        }
        let fetched: Vec<(Vec<(usize, Location)>, Vec<Bytes>)> = futures::stream::iter(by_pack)
            .map(|(pack, items)| async move {
                let ranges: Vec<_> = items
                    .iter()
                    .map(|(_, at)| at.offset..at.offset + u64::from(at.len))
                    .collect();
                // Not `get_ranges`: it slices the merged reads without checking their
                // length, and panics on a body cut short. Each merged read is checked here.
                let objects = &*self.inner.objects;
                let parts = object_store::coalesce_ranges(
                    &ranges,
                    |range| read_range(objects, &pack, range),
                    object_store::OBJECT_STORE_COALESCE_DEFAULT,
                )
                .await?;
                bump(&self.inner.counters.batch_reads, 1);
                Ok::<_, hamt::Error>((items, parts))
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        for (items, parts) in fetched {
            for ((i, _), data) in items.into_iter().zip(parts) {
                verify(&cids[i], &data)?;
                out[i] = Some(data);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn has(&self, cid: &Cid) -> hamt::Result<bool> {
        if self.state().unsynced.contains_key(cid) {
            return Ok(true);
        }
        Ok(self.locate(cid).await?.is_some())
    }
}
