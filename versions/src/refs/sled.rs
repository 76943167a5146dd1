//! Refs in a table of a sled store's own database: [`SledRefStore`].

use async_trait::async_trait;
use hamt::Cid;
use hamt_store_sled::{SledStore, Table};

use super::{RefKind, RefName, RefStore};
use crate::error::{Error, Result};

/// The table refs are kept in.
const TABLE: &str = "refs";

/// Refs in the `refs` table of a [`SledStore`]'s database, beside its blocks: they share
/// its lock (one process at a time, as for the blocks) and its flushes. sled's own
/// compare-and-swap makes each update atomic; every update is flushed before it returns.
/// Keys are ref paths (`heads/main`), values binary CIDs.
#[derive(Debug, Clone)]
pub struct SledRefStore {
    table: Table,
}

impl SledRefStore {
    /// The refs of `store`.
    ///
    /// # Errors
    /// sled failures.
    pub fn new(store: &SledStore) -> Result<Self> {
        Ok(Self {
            table: store.table(TABLE)?,
        })
    }

    fn decode(name: &str, bytes: &[u8]) -> Result<Cid> {
        Cid::try_from(bytes).map_err(|e| Error::CorruptRef {
            store: "sled",
            name: name.to_owned(),
            reason: format!("not a binary CID ({e})"),
        })
    }
}

#[async_trait]
impl RefStore for SledRefStore {
    async fn get(&self, name: &RefName) -> Result<Option<Cid>> {
        let path = name.path();
        self.table
            .get(path.as_bytes())?
            .map(|v| Self::decode(&path, &v))
            .transpose()
    }

    async fn list(&self, kind: RefKind) -> Result<Vec<(RefName, Cid)>> {
        let prefix = format!("{}/", kind.dir());
        let mut out = Vec::new();
        for (key, value) in self.table.scan_prefix(prefix.as_bytes())? {
            let path = String::from_utf8_lossy(&key).into_owned();
            let cid = Self::decode(&path, &value)?;
            out.push((RefName::from_path(&path)?, cid));
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
        let path = name.path();
        let old = expected.map(|c| c.to_bytes());
        let new_bytes = new.map(|c| c.to_bytes());
        match self
            .table
            .compare_and_swap(path.as_bytes(), old.as_deref(), new_bytes.as_deref())?
        {
            Ok(()) => {
                self.table.flush().await?;
                Ok(())
            }
            Err(current) => Err(Error::RefConflict {
                name: name.clone(),
                expected,
                actual: current.map(|v| Self::decode(&path, &v)).transpose()?,
            }),
        }
    }
}
