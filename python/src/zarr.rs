//! The Rust side of the Zarr stores: `ZarrCore` does every operation of
//! `hamt_rs.ZarrHAMTStore`, `SimpleEncryptedZarrHAMTStore` and `ShardedZarrStore` (the Python
//! classes subclass `zarr.abc.store.Store` and call these methods), over the zarr crate's
//! `HamtStore` and `ShardedStore`.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use hamt::Bytes;
use hamt_zarr::zarrs_storage::AsyncReadableStorageTraits;
use hamt_zarr::{Encryption, EncryptionKey, HamtStore, ReadMode, ShardedStore};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::convert::{cid_from_py, cid_to_py};
use crate::errors::{FormatError, ReadOnlyError, hamt_error, zarr_error};
use crate::hamt::{HamtState, PyHamt};
use crate::pipeline::ArrayCache;
use crate::runtime::spawn;
use crate::stores::{Store, StoreCapabilities, slice, store_of, unpicklable};

/// How many values `get_many` fetches at once.
const CONCURRENCY: usize = 64;

/// Adds the class and its constructors to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ZarrCore>()?;
    m.add_function(wrap_pyfunction!(hamt_core, m)?)?;
    m.add_function(wrap_pyfunction!(sharded_core, m)?)?;
    m.add_function(wrap_pyfunction!(detect_layout, m)?)?;
    m.add_function(wrap_pyfunction!(convert_hamt_to_sharded, m)?)?;
    Ok(())
}

/// The store a `ZarrCore` works on.
#[derive(Clone)]
pub(crate) enum Backend {
    /// A HAMT shared with a `HAMT` object (py-hamt's `ZarrHAMTStore` shares it too).
    Hamt {
        hamt: Arc<HamtState>,
        encryption: Option<Encryption>,
    },
    /// py-hamt's sharded layout.
    Sharded {
        store: Arc<ShardedStore>,
        blocks: Arc<Py<Store>>,
        options: ShardedOptions,
    },
}

/// What a sharded store was opened with, for reopening it elsewhere.
#[derive(Clone)]
pub(crate) struct ShardedOptions {
    mode: &'static str,
    cache_bytes: usize,
}

/// The Rust half of a Zarr store.
#[pyclass(module = "hamt_rs._native", frozen)]
pub(crate) struct ZarrCore {
    pub(crate) backend: Backend,
    /// The arrays the pipeline has opened with zarrs on this store; dropped with it.
    pub(crate) arrays: Arc<ArrayCache>,
}

/// The zarrs storage a pipeline reads through, resolved for one call.
#[derive(Clone)]
pub(crate) enum Storage {
    /// A HAMT store and its bucket size (which fixes the tree's shape and listing order).
    Hamt(Arc<HamtStore>, usize),
    Sharded(Arc<ShardedStore>),
}

impl Storage {
    /// As zarrs' async readable storage.
    pub(crate) fn readable(&self) -> Arc<dyn AsyncReadableStorageTraits> {
        match self {
            Storage::Hamt(s, _) => s.clone(),
            Storage::Sharded(s) => s.clone(),
        }
    }

    /// The value of `key`, or None.
    pub(crate) async fn get(&self, key: &str) -> PyResult<Option<Bytes>> {
        match self {
            Storage::Hamt(s, _) => s.get_value(key).await,
            Storage::Sharded(s) => s.get_value(key).await,
        }
        .map_err(zarr_error)
    }

    pub(crate) async fn set(&self, key: &str, value: Bytes) -> PyResult<()> {
        match self {
            Storage::Hamt(s, _) => s.set_value(key, value).await,
            Storage::Sharded(s) => s.set_value(key, value).await,
        }
        .map_err(zarr_error)
    }

    pub(crate) async fn delete(&self, key: &str) -> PyResult<()> {
        match self {
            Storage::Hamt(s, _) => s.erase_key(key).await.map(drop),
            Storage::Sharded(s) => s.delete(key).await,
        }
        .map_err(zarr_error)
    }

    async fn delete_dir(&self, prefix: &str) -> PyResult<()> {
        let prefix = dir_prefix(prefix);
        match self {
            Storage::Hamt(s, _) => s.erase_prefix_keys(&prefix).await.map(drop),
            Storage::Sharded(s) => s.delete_dir(&prefix).await,
        }
        .map_err(zarr_error)
    }

    /// Every key under `prefix`, in the order py-hamt lists them (the tree's order): zarr
    /// consolidates metadata in listing order, so the order is part of the root CID.
    async fn keys(&self, prefix: &str) -> PyResult<Vec<String>> {
        let mut keys = match self {
            Storage::Hamt(s, bucket) => tree_keys(s, *bucket).await?,
            Storage::Sharded(s) => s.keys().await.map_err(zarr_error)?,
        };
        keys.retain(|k| k.starts_with(prefix));
        Ok(keys)
    }
}

/// The keys of a Zarr store's tree in py-hamt's order.
pub(crate) async fn tree_keys(store: &HamtStore, max_bucket_size: usize) -> PyResult<Vec<String>> {
    let keys = store.keys_with_prefix("").await.map_err(zarr_error)?;
    Ok(crate::order::tree_order(keys, max_bucket_size))
}

/// `prefix` as a directory prefix: `""` stays, anything else ends in one `/`.
fn dir_prefix(prefix: &str) -> String {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

impl ZarrCore {
    /// A store on `backend`, no arrays opened yet.
    pub(crate) fn new(backend: Backend) -> Self {
        Self {
            backend,
            arrays: Arc::default(),
        }
    }

    /// The storage, attaching the HAMT to it first when needed.
    pub(crate) async fn storage(backend: &Backend) -> PyResult<Storage> {
        Ok(match backend {
            Backend::Hamt { hamt, encryption } => Storage::Hamt(
                hamt.zarr_store(encryption.as_ref()).await?,
                hamt.max_bucket_size,
            ),
            Backend::Sharded { store, .. } => Storage::Sharded(store.clone()),
        })
    }

    /// Refuses writes while the store (or the HAMT behind it) is read-only.
    pub(crate) fn check_writable(&self) -> PyResult<()> {
        if self.read_only() {
            return Err(ReadOnlyError::new_err("Cannot write to a read-only store."));
        }
        Ok(())
    }

    fn store(&self) -> &Py<Store> {
        match &self.backend {
            Backend::Hamt { hamt, .. } => &hamt.store,
            Backend::Sharded { blocks, .. } => blocks.as_ref(),
        }
    }

    fn run<'py, F, Fut, T>(&self, py: Python<'py>, f: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: FnOnce(Storage) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = PyResult<T>> + Send,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let backend = self.backend.clone();
        spawn(py, async move {
            let storage = Self::storage(&backend).await?;
            f(storage).await
        })
    }
}

/// A byte request as the Python side passes it: `None`, `("range", start, end)`,
/// `("offset", offset)` or `("suffix", n)`.
#[derive(Clone, Copy)]
enum Range {
    All,
    Between(i64, i64),
    From(i64),
    Suffix(i64),
}

impl Range {
    fn parse(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(obj) = obj.filter(|o| !o.is_none()) else {
            return Ok(Range::All);
        };
        let tuple = obj.cast::<PyTuple>()?;
        let kind: String = tuple.get_item(0)?.extract()?;
        // Positions in a value: a negative one is a bad request (ValueError).
        let position = |i: usize| -> PyResult<i64> {
            let n: i64 = tuple.get_item(i)?.extract()?;
            if n < 0 {
                return Err(PyValueError::new_err(format!(
                    "byte request positions must be >= 0, got {n}"
                )));
            }
            Ok(n)
        };
        Ok(match kind.as_str() {
            "range" => {
                let start = position(1)?;
                let end = position(2)?;
                if end < start {
                    return Err(PyValueError::new_err(
                        "End must be >= start for RangeByteRequest",
                    ));
                }
                Range::Between(start, end)
            }
            "offset" => Range::From(position(1)?),
            "suffix" => Range::Suffix(position(1)?),
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown byte request {other:?}"
                )));
            }
        })
    }

    fn apply(self, data: &Bytes) -> Bytes {
        match self {
            Range::All => data.clone(),
            Range::Between(start, end) => slice(data, Some(start), Some(end - start), None),
            Range::From(start) => slice(data, Some(start), None, None),
            Range::Suffix(n) => slice(data, None, None, Some(n)),
        }
    }
}

fn bytes_obj(data: Option<Bytes>) -> Py<PyAny> {
    Python::attach(|py| match data {
        Some(d) => PyBytes::new(py, &d).into_any().unbind(),
        None => py.None(),
    })
}

#[pymethods]
impl ZarrCore {
    /// The value of `key` (a byte range of it), or None when absent (async).
    #[pyo3(signature = (key, byte_range = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: String,
        byte_range: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let range = Range::parse(byte_range)?;
        self.run(py, move |s| async move {
            let data = s.get(&key).await?;
            Ok(bytes_obj(data.map(|d| range.apply(&d))))
        })
    }

    /// Many values at once, `CONCURRENCY` in flight (async): a list in input order.
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        requests: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut wanted = Vec::with_capacity(requests.len());
        for item in requests.iter() {
            let t = item.cast::<PyTuple>()?;
            let key: String = t.get_item(0)?.extract()?;
            let range = Range::parse(Some(&t.get_item(1)?))?;
            wanted.push((key, range));
        }
        self.run(py, move |s| async move {
            let s = &s;
            let got: Vec<Option<Bytes>> = stream::iter(wanted)
                .map(|(key, range)| async move {
                    Ok::<_, PyErr>(s.get(&key).await?.map(|d| range.apply(&d)))
                })
                .buffered(CONCURRENCY)
                .try_collect()
                .await?;
            Python::attach(|py| -> PyResult<Py<PyAny>> {
                let list = PyList::empty(py);
                for d in got {
                    match d {
                        Some(d) => list.append(PyBytes::new(py, &d))?,
                        None => list.append(py.None())?,
                    }
                }
                Ok(list.into_any().unbind())
            })
        })
    }

    /// Sets `key` to `value` (async).
    fn set<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: Vec<u8>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check_writable()?;
        self.run(
            py,
            move |s| async move { s.set(&key, Bytes::from(value)).await },
        )
    }

    /// Links `key` to the existing block `pointer` (a CID) without storing anything
    /// (async): py-hamt's `set_pointer`, which grafts a chunk or registers a metadata
    /// document's array.
    fn set_pointer<'py>(
        &self,
        py: Python<'py>,
        key: String,
        pointer: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check_writable()?;
        let cid = cid_from_py(pointer)?;
        self.run(py, move |s| async move {
            match s {
                Storage::Hamt(s, _) => s.set_pointer(&key, cid).await,
                Storage::Sharded(s) => s.set_pointer(&key, cid).await,
            }
            .map_err(zarr_error)
        })
    }

    /// Sets `key` unless it exists (async).
    fn set_if_not_exists<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: Vec<u8>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check_writable()?;
        self.run(py, move |s| async move {
            if s.get(&key).await?.is_none() {
                s.set(&key, Bytes::from(value)).await?;
            }
            Ok(())
        })
    }

    /// Removes `key`; absent keys are fine (async).
    fn delete<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        self.check_writable()?;
        self.run(py, move |s| async move { s.delete(&key).await })
    }

    /// Removes every key under `prefix` (async).
    fn delete_dir<'py>(&self, py: Python<'py>, prefix: String) -> PyResult<Bound<'py, PyAny>> {
        self.check_writable()?;
        self.run(py, move |s| async move { s.delete_dir(&prefix).await })
    }

    /// True when `key` is present (async).
    fn exists<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |s| async move {
            Ok(match &s {
                Storage::Hamt(h, _) => h.get_pointer(&key).await.map_err(zarr_error)?.is_some(),
                Storage::Sharded(_) => s.get(&key).await?.is_some(),
            })
        })
    }

    /// The size of `key`'s value (async); None when absent.
    fn getsize<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |s| async move {
            Ok(s.get(&key).await?.map(|d| d.len() as u64))
        })
    }

    /// Every key starting with `prefix`, in the tree's order (async).
    fn list_prefix<'py>(&self, py: Python<'py>, prefix: String) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |s| async move { s.keys(&prefix).await })
    }

    /// The names directly under `prefix`, in listing order (async).
    fn list_dir<'py>(&self, py: Python<'py>, prefix: String) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |s| async move {
            let dir = dir_prefix(&prefix);
            let keys = s.keys(&dir).await?;
            // Each name once, in the order of first appearance, as py-hamt lists them.
            let mut seen = HashSet::new();
            let names: Vec<String> = keys
                .iter()
                .filter_map(|k| k.get(dir.len()..))
                .filter(|rest| !rest.is_empty())
                .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
                .filter(|name| seen.insert(name.clone()))
                .collect();
            Ok(names)
        })
    }

    /// Writes what changed and returns the root CID, staying writable (async).
    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let backend = self.backend.clone();
        spawn(py, async move {
            let root = match &backend {
                Backend::Hamt { hamt, encryption } => {
                    hamt.zarr_store(encryption.as_ref()).await?;
                    hamt.flush().await?
                }
                Backend::Sharded { store, blocks, .. } => {
                    let root = store.flush().await.map_err(zarr_error)?;
                    let blocks = blocks.get().blocks.clone();
                    blocks.sync().await.map_err(hamt_error)?;
                    root
                }
            };
            Python::attach(|py| Ok(cid_to_py(py, &root)?.unbind()))
        })
    }

    /// The root CID when nothing changed since the last flush, else None.
    #[getter]
    fn root<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let root = match &self.backend {
            Backend::Hamt { hamt, .. } => hamt.root(),
            Backend::Sharded { store, .. } => store.root(),
        };
        root.map(|c| cid_to_py(py, &c)).transpose()
    }

    /// `"sharded_zarr_v1"` or `"sharded_zarr_v2"` for a sharded store, None for a HAMT.
    #[getter]
    fn manifest_version(&self) -> Option<&'static str> {
        match &self.backend {
            Backend::Sharded { store, .. } => Some(match store.version() {
                hamt_zarr::Version::V1 => "sharded_zarr_v1",
                hamt_zarr::Version::V2 => "sharded_zarr_v2",
            }),
            Backend::Hamt { .. } => None,
        }
    }

    /// True when writes are refused.
    #[getter]
    fn read_only(&self) -> bool {
        match &self.backend {
            Backend::Hamt { hamt, .. } => hamt.is_read_only(),
            Backend::Sharded { store, .. } => store.is_read_only(),
        }
    }

    /// True when the blocks come from a Python CAS object (which only an asyncio event loop
    /// can call), false for a store `hamt_rs` opened itself.
    #[getter]
    pub(crate) fn python_blocks(&self, py: Python<'_>) -> bool {
        self.store().bind(py).get().url.is_none()
    }

    /// The block store's capabilities.
    fn capabilities(&self, py: Python<'_>) -> StoreCapabilities {
        self.store().bind(py).get().caps()
    }

    /// The block store.
    #[getter]
    fn blocks(&self, py: Python<'_>) -> Py<Store> {
        self.store().clone_ref(py)
    }

    /// Arguments that reopen this store in another process, for pickling:
    /// `(layout, url, root, options)`. Raises `pickle.PicklingError` for a writable store or
    /// one other processes cannot open.
    fn reopen_args<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let store = self.store().get();
        if !self.read_only() {
            return Err(unpicklable(
                py,
                "a writable Zarr store cannot be pickled: another process would write to a \
                 tree of its own and the writes would be lost; write from one process, then \
                 share a read-only store on the root",
            ));
        }
        if let Some(reason) = store.unshareable_reason() {
            return Err(unpicklable(
                py,
                &format!("this Zarr store cannot be pickled: {reason}"),
            ));
        }
        let options = PyDict::new(py);
        let (layout, root) = match &self.backend {
            Backend::Hamt { hamt, encryption } => {
                if let Some(enc) = encryption {
                    options.set_item("encryption_key", PyBytes::new(py, enc.key().as_bytes()))?;
                    options.set_item("header", PyBytes::new(py, enc.header()))?;
                }
                options.set_item("max_bucket_size", hamt.max_bucket_size)?;
                ("hamt", hamt.root())
            }
            Backend::Sharded {
                store, options: o, ..
            } => {
                options.set_item("shard_read_mode", o.mode)?;
                options.set_item("max_cache_memory_bytes", o.cache_bytes)?;
                ("sharded", store.root())
            }
        };
        let root = root.map(|c| c.to_string());
        (layout, store.url.clone(), root, options).into_pyobject(py)
    }
}

/// The encryption py-hamt's `SimpleEncryptedZarrHAMTStore(hamt, read_only, encryption_key,
/// header)` uses.
fn encryption_of(key: Option<&[u8]>, header: Option<&[u8]>) -> PyResult<Option<Encryption>> {
    match key {
        None => Ok(None),
        Some(key) => {
            let key = EncryptionKey::from_slice(key).map_err(zarr_error)?;
            Ok(Some(Encryption::new(
                key,
                Bytes::copy_from_slice(header.unwrap_or_default()),
            )))
        }
    }
}

/// The core of a `ZarrHAMTStore` on `hamt` (encrypted when `encryption_key` is given).
#[pyfunction]
#[pyo3(signature = (hamt, encryption_key = None, header = None))]
fn hamt_core(
    hamt: &Bound<'_, PyHamt>,
    encryption_key: Option<&[u8]>,
    header: Option<&[u8]>,
) -> PyResult<ZarrCore> {
    let state = hamt.get().state.clone();
    if !state.values_are_bytes {
        return Err(PyValueError::new_err(
            "a Zarr store needs a HAMT with values_are_bytes=True (as py-hamt asserts)",
        ));
    }
    Ok(ZarrCore::new(Backend::Hamt {
        hamt: state,
        encryption: encryption_of(encryption_key, header)?,
    }))
}

/// Opens or creates a sharded store (async): py-hamt's `ShardedZarrStore.open`.
#[pyfunction]
#[pyo3(signature = (cas, read_only, root_cid = None, chunks_per_shard = None, max_cache_memory_bytes = 100 << 20, shard_read_mode = "auto"))]
fn sharded_core<'py>(
    py: Python<'py>,
    cas: &Bound<'py, PyAny>,
    read_only: bool,
    root_cid: Option<&Bound<'py, PyAny>>,
    chunks_per_shard: Option<u64>,
    max_cache_memory_bytes: usize,
    shard_read_mode: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let mode: ReadMode = shard_read_mode.parse().map_err(|_| {
        PyValueError::new_err(format!(
            "Unsupported shard_read_mode: {shard_read_mode:?}. Expected 'full', 'sparse', or 'auto'."
        ))
    })?;
    let mode_name = match mode {
        ReadMode::Full => "full",
        ReadMode::Sparse => "sparse",
        ReadMode::Auto => "auto",
    };
    let root = root_cid
        .filter(|r| !r.is_none())
        .map(cid_from_py)
        .transpose()?;
    let blocks = store_of(cas)?;
    let block_store = blocks.get().blocks.clone();
    spawn(py, async move {
        let mut builder = ShardedStore::builder(block_store)
            .read_mode(mode)
            .cache_bytes(max_cache_memory_bytes);
        if let Some(root) = root {
            builder = builder.root(root);
        }
        if read_only {
            builder = builder.read_only();
        }
        if let Some(n) = chunks_per_shard {
            builder = builder.chunks_per_shard(n);
        }
        let store = builder.build().await.map_err(zarr_error)?;
        Ok(ZarrCore::new(Backend::Sharded {
            store: Arc::new(store),
            blocks: Arc::new(blocks),
            options: ShardedOptions {
                mode: mode_name,
                cache_bytes: max_cache_memory_bytes,
            },
        }))
    })
}

/// py-hamt's `convert_hamt_to_sharded` (async): the `ZarrHAMTStore` dataset at
/// `hamt_root_cid` in `cas` as a `sharded_zarr_v2` root with `chunks_per_shard` chunks a
/// shard, reusing every chunk's block; the new root as text, the same CID py-hamt's
/// converter gives.
#[pyfunction]
fn convert_hamt_to_sharded<'py>(
    py: Python<'py>,
    cas: &Bound<'py, PyAny>,
    hamt_root_cid: &Bound<'py, PyAny>,
    chunks_per_shard: u64,
) -> PyResult<Bound<'py, PyAny>> {
    if chunks_per_shard == 0 {
        return Err(PyValueError::new_err(
            "chunks_per_shard must be a positive integer.",
        ));
    }
    let root = cid_from_py(hamt_root_cid)?;
    let blocks = store_of(cas)?.get().blocks.clone();
    spawn(py, async move {
        let sharded = hamt_zarr::hamt_to_sharded(blocks, root, chunks_per_shard)
            .await
            .map_err(zarr_error)?;
        Ok(sharded.to_string())
    })
}

/// `"hamt"` or `"sharded"`: the layout of the dataset at `root` in `cas` (async). A HAMT
/// root is a DAG-CBOR list (256 slots), a sharded root a DAG-CBOR map (the manifest).
#[pyfunction]
fn detect_layout<'py>(
    py: Python<'py>,
    cas: &Bound<'py, PyAny>,
    root: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let root = cid_from_py(root)?;
    let blocks = store_of(cas)?.get().blocks.clone();
    spawn(py, async move {
        let bytes = blocks.get(&root).await.map_err(hamt_error)?;
        match bytes.first().map(|b| b >> 5) {
            Some(4) => Ok("hamt"),
            Some(5) => Ok("sharded"),
            _ => Err(FormatError::new_err(format!(
                "{root} is neither a HAMT node nor a sharded Zarr manifest"
            ))),
        }
    })
}
