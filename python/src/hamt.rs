//! py-hamt's `HAMT`: the same names, arguments and behaviour, over the Rust tree.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::TryStreamExt as _;
use hamt::{BlockStore, Bytes, Cid, Config, Hamt, HamtReader};
use hamt_zarr::{Encryption, HamtStore};
use pyo3::exceptions::{PyKeyError, PyNotImplementedError, PyStopAsyncIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::convert::{cid_from_py, cid_to_py, decode_cbor, encode_cbor};
use crate::errors::{ReadOnlyError, hamt_error, zarr_error};
use crate::runtime::{Ready, spawn};
use crate::stores::{Store, slice, store_of, unpicklable};

/// Adds the classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyHamt>()?;
    m.add_class::<KeyIter>()?;
    Ok(())
}

/// The tree behind a `HAMT` object.
enum Tree {
    /// Not loaded yet (`HAMT(...)` is synchronous; the first operation opens it).
    Unopened(Option<Cid>),
    Writer(Box<Hamt>),
    Reader(HamtReader),
    /// Handed to a Zarr store: every operation goes through the store, so both see one tree.
    Zarr(Arc<HamtStore>),
}

/// A HAMT and everything its methods and the Zarr stores on it share.
pub(crate) struct HamtState {
    pub(crate) store: Py<Store>,
    pub(crate) blocks: Arc<dyn BlockStore>,
    pub(crate) values_are_bytes: bool,
    pub(crate) config: Config,
    pub(crate) max_bucket_size: usize,
    read_only: AtomicBool,
    tree: RwLock<Tree>,
    /// The root as of the last open, flush or `make_read_only`.
    root: Mutex<Option<Cid>>,
    /// The Zarr store the tree was handed to, readable without the async lock.
    zarr: Mutex<Option<Arc<HamtStore>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read_only_error(what: &str) -> PyErr {
    ReadOnlyError::new_err(format!("Cannot call {what} on a read only HAMT"))
}

impl HamtState {
    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Acquire)
    }

    pub(crate) fn root(&self) -> Option<Cid> {
        *lock(&self.root)
    }

    fn set_root(&self, root: Option<Cid>) {
        *lock(&self.root) = root;
    }

    async fn open(&self, root: Option<Cid>) -> PyResult<Tree> {
        let blocks = self.blocks.clone();
        let tree = match (root, self.is_read_only()) {
            (Some(root), true) => Tree::Reader(
                HamtReader::open_with_config(blocks, root, self.config)
                    .await
                    .map_err(hamt_error)?,
            ),
            (Some(root), false) => Tree::Writer(Box::new(
                Hamt::open_with_config(blocks, root, self.config)
                    .await
                    .map_err(hamt_error)?,
            )),
            (None, false) => Tree::Writer(Box::new(
                Hamt::with_config(blocks, self.config).map_err(hamt_error)?,
            )),
            (None, true) => {
                // py-hamt builds an empty tree even read-only: it reads as empty.
                let mut empty = Hamt::with_config(blocks, self.config).map_err(hamt_error)?;
                Tree::Reader(empty.reader().await.map_err(hamt_error)?)
            }
        };
        let root = match &tree {
            Tree::Reader(r) => Some(r.root()),
            Tree::Writer(w) => w.root(),
            _ => None,
        };
        self.set_root(root);
        Ok(tree)
    }

    async fn read_tree(&self) -> PyResult<RwLockReadGuard<'_, Tree>> {
        {
            let tree = self.tree.read().await;
            if !matches!(*tree, Tree::Unopened(_)) {
                return Ok(tree);
            }
        }
        drop(self.write_tree().await?);
        Ok(self.tree.read().await)
    }

    async fn write_tree(&self) -> PyResult<RwLockWriteGuard<'_, Tree>> {
        let mut tree = self.tree.write().await;
        if let Tree::Unopened(root) = *tree {
            *tree = self.open(root).await?;
        }
        Ok(tree)
    }

    /// The Zarr store the tree was handed to, if it was.
    fn attached(&self) -> Option<Arc<HamtStore>> {
        lock(&self.zarr).clone()
    }

    /// Hands the tree to a Zarr store (once; later calls get the same store), flushing what
    /// was written through the HAMT so far.
    pub(crate) async fn zarr_store(
        &self,
        encryption: Option<&Encryption>,
    ) -> PyResult<Arc<HamtStore>> {
        if let Some(store) = self.attached() {
            return check_same_encryption(store, encryption);
        }
        let mut tree = self.write_tree().await?;
        let root = match &mut *tree {
            // A new tree nothing was written to: the store starts empty, reading nothing
            // (py-hamt never reads back what it is writing; a gateway may not serve it yet).
            Tree::Writer(w) if w.is_empty() && w.root().is_none() => None,
            Tree::Writer(w) => Some(w.flush().await.map_err(hamt_error)?),
            Tree::Reader(r) => Some(r.root()),
            Tree::Zarr(store) => return check_same_encryption(store.clone(), encryption),
            Tree::Unopened(_) => unreachable!("write_tree opens the tree"),
        };
        let store = Arc::new(self.build_store(root, encryption.cloned()).await?);
        *tree = Tree::Zarr(store.clone());
        *lock(&self.zarr) = Some(store.clone());
        if root.is_some() {
            self.set_root(root);
        }
        Ok(store)
    }

    async fn build_store(
        &self,
        root: Option<Cid>,
        encryption: Option<Encryption>,
    ) -> PyResult<HamtStore> {
        let mut builder = HamtStore::builder(self.blocks.clone()).config(self.config);
        if let Some(root) = root {
            builder = builder.root(root);
        }
        if self.is_read_only() {
            builder = builder.read_only();
        }
        if let Some(encryption) = encryption {
            builder = builder.encryption(encryption);
        }
        builder.build().await.map_err(zarr_error)
    }

    /// Flushes, makes the writes durable, and switches to read-only; returns the root.
    pub(crate) async fn make_read_only(&self) -> PyResult<Cid> {
        let mut tree = self.write_tree().await?;
        let root = match &mut *tree {
            Tree::Writer(w) => {
                let reader = w.reader().await.map_err(hamt_error)?;
                let root = reader.root();
                *tree = Tree::Reader(reader);
                root
            }
            Tree::Reader(r) => r.root(),
            // The store keeps its tree (reads need nothing from the block store); the HAMT's
            // flag refuses writes through either.
            Tree::Zarr(store) => store.flush().await.map_err(zarr_error)?,
            Tree::Unopened(_) => unreachable!("write_tree opens the tree"),
        };
        self.read_only.store(true, Ordering::Release);
        self.blocks.sync().await.map_err(hamt_error)?;
        self.set_root(Some(root));
        Ok(root)
    }

    async fn enable_write(&self) -> PyResult<()> {
        let mut tree = self.write_tree().await?;
        if !self.is_read_only() {
            return Ok(());
        }
        self.read_only.store(false, Ordering::Release);
        match &mut *tree {
            Tree::Reader(r) => {
                let w = Hamt::open_with_config(self.blocks.clone(), r.root(), self.config)
                    .await
                    .map_err(hamt_error)?;
                *tree = Tree::Writer(Box::new(w));
            }
            // A store opened read-only has a read-only tree: reopen it writable.
            Tree::Zarr(store) if store.is_read_only() => {
                let root = store.flush().await.map_err(zarr_error)?;
                let encryption = store.encryption().cloned();
                let fresh = Arc::new(self.build_store(Some(root), encryption).await?);
                *lock(&self.zarr) = Some(fresh.clone());
                *tree = Tree::Zarr(fresh);
            }
            Tree::Zarr(_) | Tree::Writer(_) | Tree::Unopened(_) => {}
        }
        Ok(())
    }

    /// Writes the changed nodes and returns the root, staying writable.
    pub(crate) async fn flush(&self) -> PyResult<Cid> {
        let mut tree = self.write_tree().await?;
        let root = match &mut *tree {
            Tree::Writer(w) => w.flush().await.map_err(hamt_error)?,
            Tree::Reader(r) => r.root(),
            Tree::Zarr(store) => store.flush().await.map_err(zarr_error)?,
            Tree::Unopened(_) => unreachable!("write_tree opens the tree"),
        };
        self.set_root(Some(root));
        Ok(root)
    }

    async fn get(&self, key: &str) -> PyResult<Option<Bytes>> {
        if let Some(store) = self.attached() {
            return store.get_stored(key).await.map_err(zarr_error);
        }
        let tree = self.read_tree().await?;
        match &*tree {
            Tree::Writer(w) => w.get(key).await,
            Tree::Reader(r) => r.get(key).await,
            Tree::Zarr(store) => return store.get_stored(key).await.map_err(zarr_error),
            Tree::Unopened(_) => unreachable!("read_tree opens the tree"),
        }
        .map_err(hamt_error)
    }

    async fn get_pointer(&self, key: &str) -> PyResult<Option<Cid>> {
        if let Some(store) = self.attached() {
            return store.get_pointer(key).await.map_err(zarr_error);
        }
        let tree = self.read_tree().await?;
        match &*tree {
            Tree::Writer(w) => w.get_pointer(key).await,
            Tree::Reader(r) => r.get_pointer(key).await,
            Tree::Zarr(store) => return store.get_pointer(key).await.map_err(zarr_error),
            Tree::Unopened(_) => unreachable!("read_tree opens the tree"),
        }
        .map_err(hamt_error)
    }

    async fn set(&self, key: &str, value: Bytes) -> PyResult<()> {
        if self.is_read_only() {
            return Err(read_only_error("set"));
        }
        if let Some(store) = self.attached() {
            return store.set_stored(key, value).await.map_err(zarr_error);
        }
        let mut tree = self.write_tree().await?;
        match &mut *tree {
            Tree::Writer(w) => {
                w.insert(key, value).await.map_err(hamt_error)?;
                Ok(())
            }
            Tree::Zarr(store) => store.set_stored(key, value).await.map_err(zarr_error),
            Tree::Reader(_) => Err(read_only_error("set")),
            Tree::Unopened(_) => unreachable!("write_tree opens the tree"),
        }
    }

    async fn delete(&self, key: &str) -> PyResult<()> {
        if self.is_read_only() {
            return Err(read_only_error("delete"));
        }
        let removed = if let Some(store) = self.attached() {
            store.erase_key(key).await.map_err(zarr_error)?
        } else {
            let mut tree = self.write_tree().await?;
            match &mut *tree {
                Tree::Writer(w) => w.remove(key).await.map_err(hamt_error)?.is_some(),
                Tree::Zarr(store) => store.erase_key(key).await.map_err(zarr_error)?,
                Tree::Reader(_) => return Err(read_only_error("delete")),
                Tree::Unopened(_) => unreachable!("write_tree opens the tree"),
            }
        };
        if removed {
            Ok(())
        } else {
            Err(PyKeyError::new_err(key.to_owned()))
        }
    }

    pub(crate) async fn keys(&self) -> PyResult<Vec<String>> {
        if let Some(store) = self.attached() {
            return crate::zarr::tree_keys(&store, self.max_bucket_size).await;
        }
        let tree = self.read_tree().await?;
        match &*tree {
            Tree::Writer(w) => w.keys().try_collect().await,
            Tree::Reader(r) => r.keys().try_collect().await,
            Tree::Zarr(store) => return crate::zarr::tree_keys(store, self.max_bucket_size).await,
            Tree::Unopened(_) => unreachable!("read_tree opens the tree"),
        }
        .map_err(hamt_error)
    }

    async fn len(&self) -> PyResult<u64> {
        if let Some(store) = self.attached() {
            return Ok(store.keys_with_prefix("").await.map_err(zarr_error)?.len() as u64);
        }
        let mut tree = self.write_tree().await?;
        match &mut *tree {
            Tree::Writer(w) => w.len().await.map_err(hamt_error),
            Tree::Reader(r) => r.len().await.map_err(hamt_error),
            Tree::Zarr(store) => {
                Ok(store.keys_with_prefix("").await.map_err(zarr_error)?.len() as u64)
            }
            Tree::Unopened(_) => unreachable!("write_tree opens the tree"),
        }
    }

    async fn cache_size(&self) -> PyResult<usize> {
        let tree = self.read_tree().await?;
        Ok(match &*tree {
            Tree::Writer(w) => w.cache_bytes(),
            Tree::Reader(r) => r.cache_bytes(),
            _ => 0,
        })
    }

    async fn cache_vacate(&self) -> PyResult<()> {
        let tree = self.read_tree().await?;
        match &*tree {
            Tree::Writer(w) => w.clear_cache(),
            Tree::Reader(r) => r.clear_cache(),
            _ => {}
        }
        Ok(())
    }
}

fn check_same_encryption(
    store: Arc<HamtStore>,
    wanted: Option<&Encryption>,
) -> PyResult<Arc<HamtStore>> {
    let same = match (store.encryption(), wanted) {
        (None, None) => true,
        (Some(a), Some(b)) => a.key().as_bytes() == b.key().as_bytes() && a.header() == b.header(),
        _ => false,
    };
    if same {
        Ok(store)
    } else {
        Err(PyValueError::new_err(
            "this HAMT already backs a Zarr store with other encryption settings: build a \
             second HAMT on the same root",
        ))
    }
}

/// A hash array mapped trie over a content-addressed store, in py-hamt 3's format (same
/// root CIDs for the same contents).
///
/// Build one with `await HAMT.build(cas=..., root_node_id=None, values_are_bytes=False,
/// max_bucket_size=4, read_only=False)`, exactly as in py-hamt. `cas` is a `hamt_rs` store
/// (`open_store(url)`, `KuboCAS`, `InMemoryCAS`), a store URL, or any py-hamt
/// `ContentAddressedStore`. Values are encoded as DAG-CBOR unless `values_are_bytes`.
/// Writes stay in memory until `make_read_only()` writes the changed nodes, makes them
/// durable and gives the root in `root_node_id`.
#[pyclass(module = "hamt_rs", name = "HAMT", frozen)]
pub(crate) struct PyHamt {
    pub(crate) state: Arc<HamtState>,
}

impl PyHamt {
    fn create(
        cas: &Bound<'_, PyAny>,
        hash_fn: Option<&Bound<'_, PyAny>>,
        root_node_id: Option<&Bound<'_, PyAny>>,
        read_only: bool,
        max_bucket_size: i64,
        values_are_bytes: bool,
    ) -> PyResult<Self> {
        if let Some(f) = hash_fn {
            let name: String = f
                .getattr("__name__")
                .and_then(|n| n.extract())
                .unwrap_or_default();
            if name != "blake3_hashfn" {
                return Err(PyNotImplementedError::new_err(
                    "hamt_rs hashes keys with BLAKE3 (py-hamt's blake3_hashfn); other hash_fn \
                     values are not supported",
                ));
            }
        }
        if max_bucket_size < 1 {
            return Err(PyValueError::new_err(
                "Bucket size maximum must be a positive integer",
            ));
        }
        let max_bucket_size = usize::try_from(max_bucket_size)
            .map_err(|_| PyValueError::new_err("max_bucket_size is too large"))?;
        let root = root_node_id.map(cid_from_py).transpose()?;
        let store = store_of(cas)?;
        let blocks = store.get().blocks.clone();
        let config = Config::new().max_bucket_size(max_bucket_size);
        Ok(Self {
            state: Arc::new(HamtState {
                store,
                blocks,
                values_are_bytes,
                config,
                max_bucket_size,
                read_only: AtomicBool::new(read_only),
                tree: RwLock::new(Tree::Unopened(root)),
                root: Mutex::new(root),
                zarr: Mutex::new(None),
            }),
        })
    }

    fn value_bytes(&self, val: &Bound<'_, PyAny>) -> PyResult<Bytes> {
        if self.state.values_are_bytes {
            if let Ok(b) = val.cast::<PyBytes>() {
                return Ok(Bytes::copy_from_slice(b.as_bytes()));
            }
            return Ok(Bytes::from(val.extract::<Vec<u8>>()?));
        }
        Ok(Bytes::from(encode_cbor(val)?))
    }
}

#[pymethods]
impl PyHamt {
    /// py-hamt's constructor; the tree is opened on first use. Prefer `await HAMT.build(...)`.
    #[new]
    #[pyo3(signature = (cas, hash_fn = None, root_node_id = None, read_only = false, max_bucket_size = 4, values_are_bytes = false))]
    fn new(
        cas: &Bound<'_, PyAny>,
        hash_fn: Option<&Bound<'_, PyAny>>,
        root_node_id: Option<&Bound<'_, PyAny>>,
        read_only: bool,
        max_bucket_size: i64,
        values_are_bytes: bool,
    ) -> PyResult<Self> {
        Self::create(
            cas,
            hash_fn,
            root_node_id,
            read_only,
            max_bucket_size,
            values_are_bytes,
        )
    }

    /// Opens (or, without `root_node_id`, creates) a HAMT (async).
    ///
    /// Raises `NotFoundError` when the store lacks the root block and `FormatError` when the
    /// root is not a HAMT node.
    #[classmethod]
    #[pyo3(signature = (cas, hash_fn = None, root_node_id = None, read_only = false, max_bucket_size = 4, values_are_bytes = false))]
    fn build<'py>(
        _cls: &Bound<'py, PyType>,
        cas: &Bound<'py, PyAny>,
        hash_fn: Option<&Bound<'py, PyAny>>,
        root_node_id: Option<&Bound<'py, PyAny>>,
        read_only: bool,
        max_bucket_size: i64,
        values_are_bytes: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = cas.py();
        let me = Self::create(
            cas,
            hash_fn,
            root_node_id,
            read_only,
            max_bucket_size,
            values_are_bytes,
        )?;
        let state = me.state.clone();
        let me = Py::new(py, me)?;
        spawn(py, async move {
            drop(state.read_tree().await?);
            Ok(me)
        })
    }

    /// Maps `key` to `val` (async). `val` is DAG-CBOR-encoded unless `values_are_bytes`.
    fn set<'py>(
        &self,
        py: Python<'py>,
        key: String,
        val: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let data = self.value_bytes(val)?;
        let state = self.state.clone();
        spawn(py, async move { state.set(&key, data).await })
    }

    /// The value of `key` (async); `KeyError` when absent. `offset`/`length`/`suffix` read
    /// part of a bytes value, as py-hamt.
    #[pyo3(signature = (key, offset = None, length = None, suffix = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: String,
        offset: Option<i64>,
        length: Option<i64>,
        suffix: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move {
            let Some(data) = state.get(&key).await? else {
                return Err(PyKeyError::new_err(key));
            };
            let data = slice(&data, offset, length, suffix);
            Python::attach(|py| -> PyResult<Py<PyAny>> {
                if state.values_are_bytes {
                    Ok(PyBytes::new(py, &data).into_any().unbind())
                } else {
                    Ok(decode_cbor(py, &data)?.unbind())
                }
            })
        })
    }

    /// The CID of `key`'s value block (async); `KeyError` when absent.
    fn get_pointer<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move {
            let Some(cid) = state.get_pointer(&key).await? else {
                return Err(PyKeyError::new_err(key));
            };
            Python::attach(|py| Ok(cid_to_py(py, &cid)?.unbind()))
        })
    }

    /// Removes `key` (async); `KeyError` when absent.
    fn delete<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move { state.delete(&key).await })
    }

    /// Every key, as an async iterator (`async for key in hamt.keys()`).
    fn keys(&self) -> KeyIter {
        KeyIter {
            state: self.state.clone(),
            keys: Arc::new(Mutex::new(None)),
        }
    }

    /// The number of keys (async).
    fn len<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move { state.len().await })
    }

    /// Writes every change, makes it durable and switches to read-only (async); afterwards
    /// `root_node_id` is the root.
    fn make_read_only<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move {
            state.make_read_only().await?;
            Ok(())
        })
    }

    /// Allows writes again (async); a no-op on a writable HAMT.
    fn enable_write<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move { state.enable_write().await })
    }

    /// Writes every change and returns the root CID, staying writable (async). Not in py-hamt.
    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move {
            let root = state.flush().await?;
            Python::attach(|py| Ok(cid_to_py(py, &root)?.unbind()))
        })
    }

    /// Bytes held by the node cache (async): the store's, which every HAMT on the same store
    /// object shares.
    fn cache_size<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move { state.cache_size().await })
    }

    /// Empties the node cache (async): the store's, which every HAMT on the same store
    /// object shares; unflushed changes stay.
    fn cache_vacate<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let state = self.state.clone();
        spawn(py, async move { state.cache_vacate().await })
    }

    /// The root CID (`multiformats.CID`) as of the last open, flush or `make_read_only()`;
    /// None for a new tree never flushed. As in py-hamt, read it in read-only mode.
    #[getter]
    fn root_node_id<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.state.root().map(|cid| cid_to_py(py, &cid)).transpose()
    }

    /// True in read-only mode.
    #[getter]
    fn read_only(&self) -> bool {
        self.state.is_read_only()
    }

    /// True when values are stored as given bytes, not DAG-CBOR-encoded.
    #[getter]
    fn values_are_bytes(&self) -> bool {
        self.state.values_are_bytes
    }

    /// Most keys in a bucket before it splits.
    #[getter]
    fn max_bucket_size(&self) -> usize {
        self.state.max_bucket_size
    }

    /// The store the tree lives in.
    #[getter]
    fn cas(&self, py: Python<'_>) -> Py<Store> {
        self.state.store.clone_ref(py)
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let store = self.state.store.get();
        if !self.state.is_read_only() {
            return Err(unpicklable(
                py,
                "a writable HAMT cannot be pickled: another process would write to a tree of \
                 its own; call make_read_only() and pickle that",
            ));
        }
        if let Some(reason) = store.unshareable_reason() {
            return Err(unpicklable(
                py,
                &format!("this HAMT cannot be pickled: {reason}"),
            ));
        }
        let root = self.state.root().map(|c| c.to_string());
        let reopen = py.import("hamt_rs._util")?.getattr("reopen_hamt")?;
        let args = (
            store.url.clone(),
            root,
            self.state.values_are_bytes,
            self.state.max_bucket_size,
        )
            .into_pyobject(py)?;
        PyTuple::new(py, [reopen, args.into_any()])
    }

    fn __repr__(&self) -> String {
        format!(
            "hamt_rs.HAMT(root_node_id={}, read_only={}, values_are_bytes={})",
            self.state
                .root()
                .map_or_else(|| "None".to_owned(), |c| format!("'{c}'")),
            if self.state.is_read_only() {
                "True"
            } else {
                "False"
            },
            if self.state.values_are_bytes {
                "True"
            } else {
                "False"
            },
        )
    }
}

/// The async iterator `HAMT.keys()` returns: the keys are listed on the first step.
#[pyclass(module = "hamt_rs._native", frozen)]
pub(crate) struct KeyIter {
    state: Arc<HamtState>,
    keys: Arc<Mutex<Option<VecDeque<String>>>>,
}

#[pymethods]
impl KeyIter {
    fn __aiter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(keys) = lock(&self.keys).as_mut() {
            return match keys.pop_front() {
                Some(key) => {
                    let key = key.into_pyobject(py)?.into_any().unbind();
                    Ok(Bound::new(py, Ready::new(Ok(key)))?.into_any())
                }
                None => Err(PyStopAsyncIteration::new_err(())),
            };
        }
        let state = self.state.clone();
        let shared = self.keys.clone();
        spawn(py, async move {
            let mut keys: VecDeque<String> = state.keys().await?.into();
            let first = keys.pop_front();
            *lock(&shared) = Some(keys);
            first.ok_or_else(|| PyStopAsyncIteration::new_err(()))
        })
    }
}
