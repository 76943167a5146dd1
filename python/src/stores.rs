//! Block stores for Python: `Store` (any URL the registry opens; py-hamt's `KuboCAS` and
//! `InMemoryCAS` are Python subclasses that build the URL from py-hamt's parameters), and the
//! conversion of any py-hamt `ContentAddressedStore` into one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hamt::{BlockStore, Bytes, Capabilities, Cid, Codec};
use hamt_registry::OpenStore;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::convert::{cid_from_py, cid_to_py};
use crate::errors::{hamt_error, registry_error};
use crate::guarded::Guarded;
use crate::pycas::PyCas;
use crate::runtime::{block_on, spawn};

/// Adds the store classes and functions to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Store>()?;
    m.add_class::<StoreCapabilities>()?;
    m.add_function(wrap_pyfunction!(store_usage, m)?)?;
    Ok(())
}

/// The URL forms this build opens, for help texts.
#[pyfunction]
fn store_usage() -> String {
    hamt_registry::usage()
}

/// A block store opened from a URL (`sled:PATH`, `mem:`, `kubo+http://HOST:PORT`,
/// `ipfs+http(s)://HOST` gateways, `s3://BUCKET/PREFIX`, `ipfs-embedded:PATH`), or a Python
/// CAS wrapped.
#[pyclass(module = "hamt_rs._native", subclass, frozen)]
pub(crate) struct Store {
    pub(crate) blocks: Arc<dyn BlockStore>,
    /// The URL it was opened from; none for a wrapped Python CAS.
    pub(crate) url: Option<String>,
    pub(crate) scheme: &'static str,
    opened: Mutex<Option<OpenStore>>,
    closed: Arc<AtomicBool>,
    /// The wrapper that lets go of the backend on close (none for a Python CAS).
    guard: Option<Arc<Guarded>>,
}

impl Store {
    /// Opens `url` through the registry.
    pub(crate) fn open(py: Python<'_>, url: &str) -> PyResult<Self> {
        let opened = block_on(py, || async {
            hamt_registry::open(url).await.map_err(registry_error)
        })?;
        let closed = Arc::new(AtomicBool::new(false));
        let guard = Arc::new(Guarded::new(
            opened.store().clone(),
            opened.scheme(),
            closed.clone(),
        ));
        Ok(Self {
            blocks: guard.clone(),
            url: Some(url.to_owned()),
            scheme: opened.scheme(),
            opened: Mutex::new(Some(opened)),
            closed,
            guard: Some(guard),
        })
    }

    /// A Python `ContentAddressedStore` (`save`/`load`) as a store.
    pub(crate) fn python(cas: &Bound<'_, PyAny>) -> PyResult<Self> {
        let closed = Arc::new(AtomicBool::new(false));
        Ok(Self {
            blocks: Arc::new(PyCas::new(cas)?),
            url: None,
            scheme: "python",
            opened: Mutex::new(None),
            closed,
            guard: None,
        })
    }

    /// Why this store cannot be reopened in another process, if it cannot.
    pub(crate) fn unshareable_reason(&self) -> Option<String> {
        match &self.url {
            None => Some(
                "it is a Python CAS object, which hamt_rs cannot reopen in another process; \
                 open the blocks by URL (hamt_rs.open_store) to share them"
                    .to_owned(),
            ),
            Some(url) if self.scheme == "mem" => Some(format!(
                "{url:?} keeps its blocks in this process's memory, which no other process \
                 can open (capabilities().shared is False)"
            )),
            Some(url) if !self.blocks.capabilities().shared => Some(format!(
                "{url:?} can be opened by one process at a time (capabilities().shared is \
                 False): serve it with `hamt serve` and read it through the gateway, or use a \
                 shared store (kubo+http://, s3://)"
            )),
            Some(_) => None,
        }
    }
}

#[pymethods]
impl Store {
    /// Opens the store a URL names; `hamt_rs.store_usage()` lists the forms.
    #[new]
    fn new(py: Python<'_>, url: &str) -> PyResult<Self> {
        Self::open(py, url)
    }

    /// The URL the store was opened from (None for a wrapped Python CAS).
    #[getter]
    fn url(&self) -> Option<String> {
        self.url.clone()
    }

    /// What the store can do: `write`, `durable`, `shared` (other processes may open it at the
    /// same time), `pin`, `check`, `import_car`.
    fn capabilities(&self) -> StoreCapabilities {
        self.caps()
    }

    /// The URL scheme (`sled`, `mem`, `kubo+http`, `ipfs+http`, `s3`, `ipfs-embedded`;
    /// `python` for a wrapped CAS).
    #[getter]
    fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// True once `close()` has run.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Makes every write durable (async).
    fn sync<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let blocks = self.blocks.clone();
        spawn(py, async move { blocks.sync().await.map_err(hamt_error) })
    }

    /// Makes every write durable, then lets go of the store (async): later calls raise
    /// `StoreError`. Closing twice is harmless.
    fn aclose<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let opened = self.take_opened();
        self.closed.store(true, Ordering::Release);
        let guard = self.guard.clone();
        spawn(py, close_opened(opened, guard))
    }

    /// `aclose()` from synchronous code.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let opened = self.take_opened();
        self.closed.store(true, Ordering::Release);
        let guard = self.guard.clone();
        block_on(py, || close_opened(opened, guard))
    }

    fn __aenter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, PyAny>> {
        let py = slf.py();
        let me = slf.into_any().unbind();
        spawn(py, async move { Ok(me) })
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.aclose(py)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.close(py)
    }

    /// py-hamt's `ContentAddressedStore.save`: stores `data` as a block of `codec`
    /// (`"raw"` or `"dag-cbor"`) and returns its CID (async).
    #[pyo3(signature = (data, codec = "raw"))]
    fn save<'py>(
        &self,
        py: Python<'py>,
        data: Vec<u8>,
        codec: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let codec = match codec {
            "raw" => Codec::Raw,
            "dag-cbor" => Codec::DagCbor,
            other => {
                return Err(PyValueError::new_err(format!(
                    "codec {other:?}: expected \"raw\" or \"dag-cbor\""
                )));
            }
        };
        let blocks = self.blocks.clone();
        spawn(py, async move {
            let cid = blocks
                .put(codec, Bytes::from(data))
                .await
                .map_err(hamt_error)?;
            Python::attach(|py| cid_object(py, &cid))
        })
    }

    /// py-hamt's `ContentAddressedStore.load`: the bytes of block `id`, or a range of them
    /// (Python slice semantics, as py-hamt) (async).
    #[pyo3(signature = (id, offset = None, length = None, suffix = None))]
    fn load<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
        offset: Option<i64>,
        length: Option<i64>,
        suffix: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cid = cid_from_py(id)?;
        let blocks = self.blocks.clone();
        spawn(py, async move {
            let data = hamt::unixfs::read_value(&blocks, &cid)
                .await
                .map_err(hamt_error)?;
            let data = slice(&data, offset, length, suffix);
            Ok(Python::attach(|py| PyBytes::new(py, &data).unbind()))
        })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(reason) = self.unshareable_reason() {
            return Err(unpicklable(
                py,
                &format!("this store cannot be pickled: {reason}"),
            ));
        }
        let open = py.import("hamt_rs")?.getattr("open_store")?;
        PyTuple::new(py, [open, PyTuple::new(py, [self.url.clone()])?.into_any()])
    }

    fn __repr__(&self) -> String {
        match &self.url {
            Some(url) => format!("hamt_rs.open_store({:?})", redact(url)),
            None => "hamt_rs.Store(<Python CAS>)".to_owned(),
        }
    }
}

impl Store {
    /// The capabilities, `shared` false for a Python CAS.
    pub(crate) fn caps(&self) -> StoreCapabilities {
        let mut caps = self.blocks.capabilities();
        if self.url.is_none() {
            caps.shared = false;
        }
        StoreCapabilities::from(caps)
    }

    /// What the registry opened (None for a Python CAS or a closed store), lent to `f`.
    pub(crate) fn with_opened<T>(&self, f: impl FnOnce(Option<&OpenStore>) -> T) -> T {
        f(self
            .opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref())
    }

    fn take_opened(&self) -> Option<OpenStore> {
        self.opened
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// Syncs and closes what the registry opened, then drops the last handle on the backend, so a
/// database one process holds alone (sled) is free for the next opener.
async fn close_opened(opened: Option<OpenStore>, guard: Option<Arc<Guarded>>) -> PyResult<()> {
    let result = match opened {
        Some(opened) => opened.close().await.map_err(hamt_error),
        None => Ok(()),
    };
    if let Some(guard) = guard {
        guard.release();
    }
    result
}

/// `url` with any password replaced by `***`, for display.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_owned(),
    }
}

/// `pickle.PicklingError(message)`.
pub(crate) fn unpicklable(py: Python<'_>, message: &str) -> PyErr {
    match py
        .import("pickle")
        .and_then(|m| m.getattr("PicklingError"))
        .and_then(|c| c.call1((message,)))
    {
        Ok(err) => PyErr::from_value(err),
        Err(e) => e,
    }
}

/// py-hamt's `offset`/`length`/`suffix` read of `data`, with Python's slice semantics as
/// py-hamt applies them: `data[offset : offset + length]` (`data[offset:]` without a length),
/// else `data[-suffix:]` (empty for a suffix of 0), negative positions counting from the end.
pub(crate) fn slice(
    data: &Bytes,
    offset: Option<i64>,
    length: Option<i64>,
    suffix: Option<i64>,
) -> Bytes {
    let len = data.len();
    // A slice bound as Python normalises it: from the end when negative, clamped to the data.
    let bound = |i: i64| -> usize {
        if i < 0 {
            let back = usize::try_from(i.unsigned_abs()).unwrap_or(usize::MAX);
            len.saturating_sub(back)
        } else {
            usize::try_from(i).unwrap_or(usize::MAX).min(len)
        }
    };
    let (start, end) = match (offset, suffix) {
        (Some(start), _) => (
            bound(start),
            length.map_or(len, |l| bound(start.saturating_add(l))),
        ),
        (None, Some(0)) => return Bytes::new(),
        (None, Some(n)) => (bound(n.saturating_neg()), len),
        (None, None) => return data.clone(),
    };
    if start < end {
        data.slice(start..end)
    } else {
        Bytes::new()
    }
}

/// The `Store` for any Python object the HAMT or a Zarr store is given: a `Store` as it is, a
/// py-hamt `ContentAddressedStore` (anything with async `save` and `load`) wrapped.
pub(crate) fn store_of(obj: &Bound<'_, PyAny>) -> PyResult<Py<Store>> {
    if let Ok(store) = obj.cast::<Store>() {
        return Ok(store.clone().unbind());
    }
    if obj.is_instance_of::<PyString>() {
        return Py::new(obj.py(), Store::open(obj.py(), obj.extract::<&str>()?)?);
    }
    if obj.hasattr("save")? && obj.hasattr("load")? {
        return Py::new(obj.py(), Store::python(obj)?);
    }
    Err(PyTypeError::new_err(format!(
        "expected a hamt_rs store, a store URL, or a py-hamt ContentAddressedStore (with save \
         and load), got {}",
        obj.get_type().name()?
    )))
}

/// Capabilities of a store.
#[pyclass(module = "hamt_rs._native", name = "Capabilities", frozen, get_all)]
#[derive(Clone, Copy)]
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct StoreCapabilities {
    /// The store accepts writes.
    write: bool,
    /// Blocks outlive the process once `sync()` returns.
    durable: bool,
    /// Other processes may open the same store at the same time.
    shared: bool,
    /// Pinning is available.
    pin: bool,
    /// The store can check its own structures.
    check: bool,
    /// Whole CAR files import in one step.
    import_car: bool,
}

impl From<Capabilities> for StoreCapabilities {
    fn from(c: Capabilities) -> Self {
        Self {
            write: c.write,
            durable: c.durable,
            shared: c.shared,
            pin: c.pin,
            check: c.check,
            import_car: c.import_car,
        }
    }
}

// pyo3 methods take `&self`.
#[allow(clippy::trivially_copy_pass_by_ref)]
#[pymethods]
impl StoreCapabilities {
    fn __repr__(&self) -> String {
        format!(
            "Capabilities(write={}, durable={}, shared={}, pin={}, check={}, import_car={})",
            py_bool(self.write),
            py_bool(self.durable),
            py_bool(self.shared),
            py_bool(self.pin),
            py_bool(self.check),
            py_bool(self.import_car)
        )
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `cid` as Python, for callers holding the GIL.
pub(crate) fn cid_object(py: Python<'_>, cid: &Cid) -> PyResult<Py<PyAny>> {
    Ok(cid_to_py(py, cid)?.unbind())
}
