//! Listing and deleting blocks, for a garbage collector that knows which blocks are still
//! reachable (the store itself does not: it has no notion of roots).

use hamt::{Cid, Result};

use super::SledStore;
use crate::error::Error;

impl SledStore {
    /// Every block held, with its length: the small blocks of the database and the larger
    /// ones kept as files, flushed or not.
    ///
    /// # Errors
    /// [`Error::CorruptDatabase`] for a key that is not a CID; sled failures.
    pub fn list_blocks(&self) -> Result<Vec<(Cid, u64)>> {
        let small: Vec<(sled::IVec, u64)> = self.call(|| {
            self.blocks
                .iter()
                .map(|item| item.map(|(k, v)| (k, v.len() as u64)))
                .collect()
        })?;
        let mut out = Vec::with_capacity(small.len());
        for (key, len) in small {
            out.push((self.key_cid(&key)?, len));
        }
        out.extend(self.file_blocks()?);
        Ok(out)
    }

    /// The blocks kept as files, recorded or pending, with their lengths.
    pub(super) fn file_blocks(&self) -> Result<Vec<(Cid, u64)>> {
        let large: Vec<(sled::IVec, sled::IVec)> = self.call(|| self.large.iter().collect())?;
        let mut out = Vec::with_capacity(large.len());
        for (key, entry) in large {
            let cid = self.key_cid(&key)?;
            out.push((cid, self.entry_len(&cid, &entry)?));
        }
        out.extend(self.unrecorded()?);
        Ok(out)
    }

    /// The pending block files not yet in the tree (a block stored again after it was
    /// recorded is pending and in the tree).
    pub(super) fn unrecorded(&self) -> Result<Vec<(Cid, u64)>> {
        let mut out = Vec::new();
        for (cid, len) in self.files.pending() {
            if !self.call(|| self.large.contains_key(cid.to_bytes()))? {
                out.push((cid, len));
            }
        }
        Ok(out)
    }

    /// Deletes the blocks `cids` (a file block's file too; blocks not held are skipped) and
    /// returns how many bytes of blocks went. Durable after [`flush`](Self::flush).
    ///
    /// # Errors
    /// sled and file system failures; the blocks before the failing one are deleted.
    pub fn delete_blocks(&self, cids: &[Cid]) -> Result<u64> {
        let mut freed = 0;
        for cid in cids {
            let key = cid.to_bytes();
            if let Some(old) = self.call(|| self.blocks.remove(&key))? {
                freed += old.len() as u64;
            }
            // The entry goes first: an entry never names a missing file.
            let (entry, pending) = self.files.remove(
                cid,
                || self.call(|| self.large.remove(&key)),
                |e| self.io(e),
            )?;
            match (entry, pending) {
                (Some(entry), _) => freed += crate::large::decode_len(&entry).unwrap_or(0),
                (None, Some(len)) => freed += len,
                (None, None) => {}
            }
        }
        Ok(freed)
    }

    fn key_cid(&self, key: &[u8]) -> Result<Cid> {
        Cid::try_from(key).map_err(|e| {
            Error::CorruptDatabase {
                path: self.path.clone(),
                reason: format!("a block key is not a CID ({e})"),
            }
            .into()
        })
    }
}
