//! Refs as small objects with conditional puts: [`ObjectRefStore`].

use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt as _;
use hamt::Cid;
use object_store::path::Path;
use object_store::{
    ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use super::{RefKind, RefName, RefStore};
use crate::error::{Error, Result};

/// Refs as one small object each, `PREFIX/heads/NAME` and `PREFIX/tags/NAME`, holding the
/// commit CID as text.
///
/// Every update is a conditional put: creating a ref is `PutMode::Create` (fails when the
/// object exists), moving or deleting one is `PutMode::Update` with the `ETag` of the version
/// that was read and checked (fails when another writer replaced it since). A deleted ref is
/// an empty object, so that deleting is as conditional as moving: object stores have no
/// conditional delete. Any number of processes can update one prefix.
#[derive(Debug, Clone)]
pub struct ObjectRefStore {
    objects: Arc<dyn ObjectStore>,
    prefix: Path,
}

/// A ref's object as read: its commit (`None` when deleted) and the version to update.
struct Read {
    cid: Option<Cid>,
    version: Option<UpdateVersion>,
}

impl ObjectRefStore {
    /// Refs under `prefix` of `objects`.
    pub fn new(objects: Arc<dyn ObjectStore>, prefix: Path) -> Self {
        Self { objects, prefix }
    }

    /// The refs of an S3 block store, under its prefix's `refs/`.
    pub fn for_store(store: &hamt_store_s3::S3Store) -> Self {
        Self::new(store.object_store(), store.prefix().clone().join("refs"))
    }

    fn path(&self, name: &RefName) -> Path {
        let mut path = self.prefix.clone().join(name.kind().dir());
        for part in name.name().split('/') {
            path = path.join(part);
        }
        path
    }

    fn failed(e: object_store::Error) -> Error {
        Error::RefStore {
            store: "s3",
            temporary: !matches!(
                e,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::NotSupported { .. }
            ),
            source: Box::new(e),
        }
    }

    async fn read(&self, path: &Path, shown: &str) -> Result<Read> {
        let got = match self.objects.get(path).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Ok(Read {
                    cid: None,
                    version: None,
                });
            }
            Err(e) => return Err(Self::failed(e)),
        };
        let version = UpdateVersion {
            e_tag: got.meta.e_tag.clone(),
            version: got.meta.version.clone(),
        };
        let bytes = got.bytes().await.map_err(Self::failed)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::CorruptRef {
            store: "s3",
            name: shown.to_owned(),
            reason: "not UTF-8 text".into(),
        })?;
        let text = text.trim();
        let cid = if text.is_empty() {
            None
        } else {
            Some(hamt::parse_cid(text).map_err(|e| Error::CorruptRef {
                store: "s3",
                name: shown.to_owned(),
                reason: e.to_string(),
            })?)
        };
        Ok(Read {
            cid,
            version: Some(version),
        })
    }
}

#[async_trait]
impl RefStore for ObjectRefStore {
    async fn get(&self, name: &RefName) -> Result<Option<Cid>> {
        Ok(self.read(&self.path(name), &name.path()).await?.cid)
    }

    async fn list(&self, kind: RefKind) -> Result<Vec<(RefName, Cid)>> {
        let dir = self.prefix.clone().join(kind.dir());
        let listed: Vec<_> = self
            .objects
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(Self::failed)?;
        let mut out = Vec::new();
        for meta in listed {
            let Some(rest) = meta.location.prefix_match(&self.prefix) else {
                continue;
            };
            let shown = rest
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/");
            if let Some(cid) = self.read(&meta.location, &shown).await?.cid {
                out.push((RefName::from_path(&shown)?, cid));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<Cid>,
        new: Option<Cid>,
    ) -> Result<()> {
        let path = self.path(name);
        let shown = name.path();
        let read = self.read(&path, &shown).await?;
        let conflict = |actual| Error::RefConflict {
            name: name.clone(),
            expected,
            actual,
        };
        if read.cid != expected {
            return Err(conflict(read.cid));
        }
        if expected.is_none() && new.is_none() {
            return Ok(());
        }
        let mode = match read.version {
            None => PutMode::Create,
            Some(version) => PutMode::Update(version),
        };
        let text = new.map(|c| format!("{c}\n")).unwrap_or_default();
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .objects
            .put_opts(&path, PutPayload::from(text.into_bytes()), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Err(conflict(self.read(&path, &shown).await?.cid)),
            Err(e) => Err(Self::failed(e)),
        }
    }
}
