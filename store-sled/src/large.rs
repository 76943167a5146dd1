//! Blocks over [`INLINE_MAX`] bytes as files of their own beside the database.
//!
//! Why not in sled: sled 0.34 copies a value into its own buffers on insert and again out of
//! its cache on read, so a 200 MB block cost three times its size in memory to store and
//! twice to read. And it keeps up to 16 entries in a leaf and writes any leaf over 128 KiB
//! as a *blob* file of its own, whole again at every rewrite of the leaf and never synced:
//! chunk-sized values cost several times their size in writes, and a leaf of them could be
//! lost to a power cut after [`flush`](crate::SledStore::flush) had returned. Blocks up to
//! 4 KiB keep every leaf far below that size. A file block is written straight from the
//! caller's bytes to `PATH/large/CID` and read back with one allocation; sled's `large` tree
//! records each one and its length, so `has` and `block_size` need no file access.
//!
//! Durability, in two steps. `put` writes the file, without syncing it (in place when it is
//! new, else to a temporary name renamed over the old one): the block is *pending*, readable
//! through this handle's pending map but not yet in the tree. `flush`
//! ([`LargeFiles::commit`]) makes every pending file durable at once (one `syncfs` on Linux: one journal commit instead of one per file,
//! 0.1 s instead of 1 s for 512 files of 115 KB measured here), and only then records them in
//! the tree, which sled's own flush then makes durable. So a tree entry always names a whole
//! file, whatever moment a crash picks. A write also commits once a block has been pending
//! for [`COMMIT_AFTER`], so a writer that never flushes keeps nearly all it wrote, as with
//! sled's own periodic flush. A crash loses only pending blocks, which no flush had
//! promised: their files, without entries, are invisible and rewritten by the next store of
//! the block. Every read is verified against the CID like any other.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hamt::Cid;

/// Blocks over this many bytes live in files of their own.
pub(crate) const INLINE_MAX: usize = 4 << 10;

/// A block pending this long is committed by the next write, flush or not: a writer that
/// never flushes loses at most about this much, as sled's own flush every 500 ms bounds
/// what it loses of the other blocks.
pub(crate) const COMMIT_AFTER: Duration = Duration::from_secs(1);

/// The folder of file blocks in the database directory, and the blocks of this process whose
/// files are written but not yet recorded.
#[derive(Debug, Clone)]
pub(crate) struct LargeFiles {
    dir: PathBuf,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    /// Held while pending blocks enter the tree and while blocks are deleted, so a deletion
    /// never races a commit into an entry without its file.
    commit: Mutex<()>,
    /// Makes every temporary file name unique within the process, so two tasks replacing the
    /// same block at once never write one temporary file.
    next_tmp: AtomicU64,
}

/// Blocks whose files are in place but neither synced nor in the tree.
#[derive(Debug, Default)]
struct Pending {
    /// Each block's length.
    blocks: HashMap<Cid, u64>,
    /// When the oldest of `blocks` became pending; `None` while there are none.
    oldest: Option<Instant>,
}

/// Creates `path`, which must not exist yet.
fn create_new(path: &Path) -> std::io::Result<File> {
    File::options().write(true).create_new(true).open(path)
}

/// Locks `m`; a panic while it was held leaves the map consistent (every change to it is one
/// call), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LargeFiles {
    pub(crate) fn new(db_path: &Path) -> Self {
        Self {
            dir: db_path.join("large"),
            shared: Arc::default(),
        }
    }

    /// The folder holding the files.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, cid: &Cid) -> PathBuf {
        self.dir.join(cid.to_string())
    }

    /// Writes `data` as the file of `cid` and records it as pending; durable at the next
    /// [`commit`](Self::commit).
    pub(crate) fn write(&self, cid: &Cid, data: &[u8]) -> std::io::Result<()> {
        if lock(&self.shared.pending).blocks.contains_key(cid) {
            return Ok(());
        }
        let path = self.path(cid);
        // Usually the file is new: written in place, no rename. Until it is recorded nothing
        // reads it, and a crash before that leaves a file no entry names.
        let created = match create_new(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                create_new(&path)
            }
            created => created,
        };
        match created {
            Ok(mut file) => {
                if let Err(e) = file.write_all(data) {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
            }
            // A recorded block stored again, a crash's leftover or a block another task is
            // writing right now: a whole new file replaces it at once, so a reader of the
            // old one never sees a part.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.replace(&path, data)?,
            Err(e) => return Err(e),
        }
        let mut pending = lock(&self.shared.pending);
        pending.blocks.insert(*cid, data.len() as u64);
        pending.oldest.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// True when a block has been pending for [`COMMIT_AFTER`] or longer.
    pub(crate) fn commit_due(&self) -> bool {
        lock(&self.shared.pending)
            .oldest
            .is_some_and(|since| since.elapsed() >= COMMIT_AFTER)
    }

    /// Writes `data` to a temporary file and renames it to `path`.
    fn replace(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        let n = self.shared.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(data)?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// The length of `cid` if it is pending.
    pub(crate) fn pending_len(&self, cid: &Cid) -> Option<u64> {
        lock(&self.shared.pending).blocks.get(cid).copied()
    }

    /// True when some block is pending.
    pub(crate) fn any_pending(&self) -> bool {
        !lock(&self.shared.pending).blocks.is_empty()
    }

    /// Every pending block with its length.
    pub(crate) fn pending(&self) -> Vec<(Cid, u64)> {
        lock(&self.shared.pending)
            .blocks
            .iter()
            .map(|(cid, len)| (*cid, *len))
            .collect()
    }

    /// Makes every pending file durable, then hands the blocks to `record` (which puts their
    /// entries in the tree) and forgets them as pending once it succeeded. On an error they
    /// stay pending, for the next commit.
    pub(crate) fn commit<E>(
        &self,
        record: impl FnOnce(&[(Cid, u64)]) -> Result<(), E>,
        io: impl FnOnce(std::io::Error) -> E,
    ) -> Result<(), E> {
        let _commit = lock(&self.shared.commit);
        let blocks = self.pending();
        if blocks.is_empty() {
            return Ok(());
        }
        self.sync(&blocks).map_err(io)?;
        record(&blocks)?;
        let mut pending = lock(&self.shared.pending);
        for (cid, _) in &blocks {
            pending.blocks.remove(cid);
        }
        // Those stored meanwhile became pending during the commit, so about now.
        pending.oldest = (!pending.blocks.is_empty()).then(Instant::now);
        Ok(())
    }

    /// Makes the files of `blocks` and their names durable.
    #[cfg(target_os = "linux")]
    fn sync(&self, _blocks: &[(Cid, u64)]) -> std::io::Result<()> {
        // One call writes back every dirty file of the file system and commits its journal
        // once, renames included.
        rustix::fs::syncfs(File::open(&self.dir)?).map_err(std::io::Error::from)
    }

    /// Makes the files of `blocks` and their names durable.
    #[cfg(not(target_os = "linux"))]
    fn sync(&self, blocks: &[(Cid, u64)]) -> std::io::Result<()> {
        for (cid, _) in blocks {
            File::open(self.path(cid))?.sync_all()?;
        }
        File::open(&self.dir)?.sync_all()
    }

    /// Deletes `cid`'s file and its pending record, if there are any, after `unrecord` took
    /// its entry out of the tree (so an entry never names a missing file); returns what
    /// `unrecord` returned.
    pub(crate) fn remove<T, E>(
        &self,
        cid: &Cid,
        unrecord: impl FnOnce() -> Result<T, E>,
        io: impl FnOnce(std::io::Error) -> E,
    ) -> Result<(T, Option<u64>), E> {
        let _commit = lock(&self.shared.commit);
        let unrecorded = unrecord()?;
        let pending = {
            let mut pending = lock(&self.shared.pending);
            let len = pending.blocks.remove(cid);
            if pending.blocks.is_empty() {
                pending.oldest = None;
            }
            len
        };
        match std::fs::remove_file(self.path(cid)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok((unrecorded, pending)),
        }
    }

    /// The bytes of `cid`'s file, read with one allocation of `len` bytes.
    pub(crate) fn read(&self, cid: &Cid, len: u64) -> std::io::Result<Bytes> {
        use std::io::Read as _;
        let mut file = File::open(self.path(cid))?;
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        let mut data = Vec::with_capacity(len);
        // One byte more than recorded, to see a file that grew.
        (&mut file).take(len as u64 + 1).read_to_end(&mut data)?;
        Ok(Bytes::from(data))
    }
}

/// The tree entry of a file block: its length.
pub(crate) fn encode_len(len: u64) -> [u8; 8] {
    len.to_be_bytes()
}

/// The length a tree entry records, or `None` for bytes that are not an entry.
pub(crate) fn decode_len(entry: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(entry.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cid(data: &[u8]) -> Cid {
        hamt::HashAlg::Blake3.cid(hamt::Codec::Raw, data)
    }

    #[test]
    fn a_written_block_is_pending_until_a_commit_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = LargeFiles::new(dir.path());
        let (a, b) = (cid(b"a"), cid(b"b"));
        files.write(&a, b"a").unwrap();
        files.write(&b, b"bb").unwrap();
        assert_eq!(files.pending_len(&a), Some(1));
        assert_eq!(&files.read(&b, 2).unwrap()[..], b"bb");

        // A failing record keeps them pending.
        let failed: Result<(), &str> = files.commit(|_| Err("no"), |_| "io");
        assert_eq!(failed, Err("no"));
        assert_eq!(files.pending().len(), 2);

        let mut recorded = Vec::new();
        files
            .commit(
                |blocks| {
                    recorded.extend_from_slice(blocks);
                    Ok::<_, ()>(())
                },
                |_| (),
            )
            .unwrap();
        recorded.sort();
        let mut want = vec![(a, 1), (b, 2)];
        want.sort();
        assert_eq!(recorded, want);
        assert!(files.pending().is_empty());
        assert_eq!(&files.read(&a, 1).unwrap()[..], b"a", "the file stays");
    }

    #[test]
    fn removing_a_pending_block_forgets_it_and_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = LargeFiles::new(dir.path());
        let a = cid(b"a");
        files.write(&a, b"a").unwrap();
        let ((), pending) = files.remove(&a, || Ok::<_, ()>(()), |_| ()).unwrap();
        assert_eq!(pending, Some(1));
        assert!(files.pending().is_empty());
        assert!(files.read(&a, 1).is_err());
        // Removing what is not there is no error.
        let ((), pending) = files.remove(&a, || Ok::<_, ()>(()), |_| ()).unwrap();
        assert_eq!(pending, None);
    }

    #[test]
    fn tasks_storing_one_block_at_once_leave_one_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = LargeFiles::new(dir.path());
        let data = vec![7u8; 1 << 20];
        let c = cid(&data);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| files.write(&c, &data).unwrap());
            }
        });
        assert_eq!(files.read(&c, data.len() as u64).unwrap(), data);
        let names: Vec<_> = std::fs::read_dir(files.dir()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");
    }
}
