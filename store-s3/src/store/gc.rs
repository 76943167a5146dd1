//! Packs as a garbage collector sees them: the blocks each holds, its size and age, and
//! deleting a whole pack; and the object store under the store, for small objects kept
//! beside the packs (a versioned dataset's refs).
//!
//! The store has no notion of roots, so it cannot tell which blocks are still needed: the
//! collector (in `hamt-versions`) decides, and deletes only packs none of whose blocks it
//! needs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use futures::TryStreamExt as _;
use hamt::Cid;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};

use super::S3Store;
use crate::error::Error;
use crate::index::Index;

/// One pack object: [`S3Store::list_packs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackInfo {
    /// The pack's name (the hex BLAKE3 of its index), as [`S3Store::delete_pack`] takes it.
    pub name: String,
    /// The pack object's path in the bucket.
    pub path: String,
    /// The pack object's size in bytes.
    pub bytes: u64,
    /// When the pack object was written.
    pub modified: SystemTime,
    /// The blocks its index lists, with their lengths; empty for a pack without an index
    /// (an upload that was interrupted before its index was written), whose blocks no
    /// reader sees.
    pub blocks: Vec<(Cid, u64)>,
    /// Whether the pack has its index.
    pub indexed: bool,
}

impl S3Store {
    /// The object store the packs live in, for small objects kept beside them.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.inner.objects.clone()
    }

    /// The key prefix the store lives under (its packs are under `PREFIX/packs/`).
    pub fn prefix(&self) -> &Path {
        &self.inner.prefix
    }

    /// Every pack object, with the blocks its index lists.
    ///
    /// # Errors
    /// [`Error::CorruptIndex`] for an index that does not decode; [`Error::ObjectStore`].
    pub async fn list_packs(&self) -> Result<Vec<PackInfo>, Error> {
        let objects = &self.inner.objects;
        let packs: Vec<_> = objects
            .list(Some(&self.inner.prefix.clone().join("packs")))
            .try_collect()
            .await?;
        let indexes: HashMap<String, Path> = objects
            .list(Some(&self.index_dir()))
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.strip_suffix(".idx")?.to_owned();
                Some((name, meta.location))
            })
            .collect();
        let mut out = Vec::with_capacity(packs.len());
        for meta in packs {
            let Some(name) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".car"))
                .map(str::to_owned)
            else {
                continue;
            };
            let (blocks, has_index) = match indexes.get(&name) {
                Some(path) => {
                    let bytes = objects.get(path).await?.bytes().await?;
                    let index =
                        Index::decode(&name, &bytes).map_err(|reason| Error::CorruptIndex {
                            path: path.to_string(),
                            reason,
                        })?;
                    let blocks = index
                        .entries
                        .iter()
                        .map(|e| (e.cid, u64::from(e.len)))
                        .collect();
                    (blocks, true)
                }
                None => (Vec::new(), false),
            };
            out.push(PackInfo {
                name,
                path: meta.location.to_string(),
                bytes: meta.size,
                modified: SystemTime::from(meta.last_modified),
                blocks,
                indexed: has_index,
            });
        }
        Ok(out)
    }

    /// Deletes the pack `name`: its index first, so readers stop seeing its blocks, then the
    /// pack object. This store's view of the indexes is dropped and reloaded on the next
    /// read, so it neither reads from the deleted pack nor skips writing a block because the
    /// pack held it. Other processes that loaded the index still believe in its blocks
    /// until they reopen the store.
    ///
    /// # Errors
    /// [`Error::ObjectStore`] (an object already gone is not an error).
    pub async fn delete_pack(&self, name: &str) -> Result<(), Error> {
        let objects = &self.inner.objects;
        for path in [
            self.index_dir().join(format!("{name}.idx")),
            self.pack_path(name),
        ] {
            match objects.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut st = self.state();
        st.packs.clear();
        st.loaded.clear();
        st.index.clear();
        Ok(())
    }
}
