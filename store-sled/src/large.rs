//! Large blocks as files of their own beside the database.
//!
//! sled copies a value into its own buffers on insert and again out of its cache on read,
//! so a 200 MB block cost three times its size in memory to store and twice to read. Blocks
//! over [`LARGE`] bytes are written instead to `PATH/large/CID`, straight from the caller's
//! bytes, and read back with one allocation; sled's `large` tree records each one and its
//! length, so `has` and `block_size` need no file access.
//!
//! Crash safety: a block's file is written to a temporary name, synced, renamed into place
//! and its directory synced before its entry enters the tree, so an entry always names a
//! whole file, whatever moment a crash picks. A file without an entry (a crash between the
//! two) is invisible and rewritten by the next store of that block. Every read is verified
//! against the CID like any other.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use hamt::Cid;

/// Blocks over this many bytes live in files of their own.
pub(crate) const LARGE: usize = 1 << 20;

/// The folder of large blocks in the database directory.
#[derive(Debug, Clone)]
pub(crate) struct LargeFiles {
    dir: PathBuf,
}

impl LargeFiles {
    pub(crate) fn new(db_path: &Path) -> Self {
        Self {
            dir: db_path.join("large"),
        }
    }

    fn path(&self, cid: &Cid) -> PathBuf {
        self.dir.join(cid.to_string())
    }

    /// Writes `data` as the file of `cid`, durably, before the caller records it.
    pub(crate) fn write(&self, cid: &Cid, data: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(cid);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(data)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Deletes `cid`'s file, if there is one.
    pub(crate) fn remove(&self, cid: &Cid) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(cid)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
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

/// The tree entry of a large block: its length.
pub(crate) fn encode_len(len: usize) -> [u8; 8] {
    (len as u64).to_be_bytes()
}

/// The length a tree entry records, or `None` for bytes that are not an entry.
pub(crate) fn decode_len(entry: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(entry.try_into().ok()?))
}
