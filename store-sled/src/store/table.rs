//! [`Table`]: small records kept in a store's database beside its blocks (a versioned
//! dataset's refs, a garbage collector's marks), so that they share its one lock and its
//! flushes.

use hamt::Result;

use super::SledStore;

/// Tree names the store uses itself.
const RESERVED: &[&str] = &["blocks", "large", "__sled__default"];

/// A named table of key/value records in a [`SledStore`]'s database, from
/// [`SledStore::table`]. Every call runs behind the store's panic boundary, so a damaged
/// database is [`Error::CorruptDatabase`](crate::Error::CorruptDatabase), never a panic.
/// Writes are durable after [`flush`](Self::flush) (or the store's).
#[derive(Debug, Clone)]
pub struct Table {
    store: SledStore,
    tree: sled::Tree,
}

impl SledStore {
    /// The table `name` of this store's database, created if missing. The names the store
    /// keeps its blocks under (`blocks`, `large`) are refused.
    ///
    /// # Errors
    /// [`hamt::Error::InvalidConfig`] for a reserved name; sled failures.
    pub fn table(&self, name: &str) -> Result<Table> {
        if RESERVED.contains(&name) {
            return Err(hamt::Error::InvalidConfig(format!(
                "table name {name:?} is reserved for the store's blocks"
            )));
        }
        let tree = self.call(|| self.db.open_tree(name))?;
        Ok(Table {
            store: self.clone(),
            tree,
        })
    }
}

impl Table {
    /// The value of `key`.
    ///
    /// # Errors
    /// sled failures.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store
            .call(|| self.tree.get(key))
            .map(|v| v.map(|v| v.to_vec()))
    }

    /// Every record whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// sled failures.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.store.call(|| {
            self.tree
                .scan_prefix(prefix)
                .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect()
        })
    }

    /// Sets `key` to `new` (`None` removes it) if its value is `old` now (`None`: absent),
    /// atomically. `Ok(Err(current))` when it is not, with the value it has.
    ///
    /// # Errors
    /// sled failures.
    pub fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<Result<(), Option<Vec<u8>>>> {
        self.store.call(|| {
            Ok(self
                .tree
                .compare_and_swap(key, old, new)?
                .map_err(|e| e.current.map(|v| v.to_vec())))
        })
    }

    /// Sets `key` to `value`.
    ///
    /// # Errors
    /// sled failures.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.store.call(|| self.tree.insert(key, value).map(drop))
    }

    /// Removes `key`.
    ///
    /// # Errors
    /// sled failures.
    pub fn remove(&self, key: &[u8]) -> Result<()> {
        self.store.call(|| self.tree.remove(key).map(drop))
    }

    /// Makes every write to the database so far durable, as [`SledStore::flush`].
    ///
    /// # Errors
    /// As [`SledStore::flush`].
    pub async fn flush(&self) -> Result<()> {
        self.store.flush().await
    }
}
