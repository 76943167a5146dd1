//! The Rust crates' typed errors as Python exceptions.
//!
//! | Rust | Python |
//! |---|---|
//! | a missing key | `KeyError` (raised by the callers, which know it is a key) |
//! | `hamt::Error::NotFound` (a block) | `hamt_rs.NotFoundError` |
//! | `hamt::Error::Corrupt` | `hamt_rs.CorruptBlockError` (py-hamt's `GatewayContentMismatch`) |
//! | `hamt::Error::UnsupportedHash` | `hamt_rs.GatewayContentUnverifiable` (a `CorruptBlockError`) |
//! | `hamt_zarr::Error::Decryption` | `hamt_rs.DecryptionError` (also a `ValueError`, as py-hamt's) |
//! | backend failures, timeouts, refused credentials, a closed store | `hamt_rs.StoreError` (`is_temporary`) |
//! | a block that is not what it should be (not a HAMT node, not a manifest) | `hamt_rs.FormatError` |
//! | a write to a read-only store | `hamt_rs.ReadOnlyError` |
//! | bad arguments (a CID, a URL, a key length) | `ValueError` |
//! | a merge conflict, a lost ref race, a tag that exists (`hamt_versions`) | `hamt_rs.ConflictError` (`keys`) |
//! | a branch, tag or revision that does not exist | `KeyError` |
//! | a panic | `hamt_rs.PanicError` |
//!
//! Every class derives from `hamt_rs.HamtError`. An exception raised by a user's Python CAS
//! travels through the Rust code inside the error and is raised again unchanged.

use std::fmt;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

create_exception!(
    _native,
    HamtError,
    PyException,
    "Base class of every hamt_rs error."
);
create_exception!(
    _native,
    NotFoundError,
    HamtError,
    "A block the tree needs is not in the store (the key may exist; its block does not)."
);
create_exception!(
    _native,
    CorruptBlockError,
    HamtError,
    "A block's bytes do not hash to its CID."
);
create_exception!(
    _native,
    GatewayContentUnverifiable,
    CorruptBlockError,
    "A block's CID uses a hash hamt_rs cannot compute (it checks BLAKE3 and SHA-256), so its \
     bytes cannot be verified; py-hamt's name, a `CorruptBlockError` as py-hamt's is a \
     `GatewayContentMismatch`."
);
create_exception!(
    _native,
    StoreError,
    HamtError,
    "The block store failed; `is_temporary` tells whether a retry may succeed."
);
create_exception!(
    _native,
    FormatError,
    HamtError,
    "A block is not what it should be: not a HAMT node, not a sharded manifest, bad metadata."
);
create_exception!(
    _native,
    ReadOnlyError,
    HamtError,
    "A write to a HAMT or store opened read-only."
);
create_exception!(
    _native,
    ConflictError,
    HamtError,
    "Writers changed the same keys differently (a merge, a commit that could not rebase), or a \
     ref moved under a compare-and-swap; `keys` lists the conflicting keys, `arrays` the Zarr \
     arrays and groups whose metadata conflicts."
);
create_exception!(
    _native,
    PanicError,
    HamtError,
    "An internal error (a Rust panic, caught before it reached the interpreter)."
);

static DECRYPTION_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// `hamt_rs.DecryptionError`: a `HamtError`, and a `ValueError` too, which is what py-hamt
/// raises for a value that does not decrypt (so its users' handlers still catch it).
fn decryption_error_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DECRYPTION_ERROR
        .get_or_try_init(py, || {
            let bases = PyTuple::new(
                py,
                [
                    py.get_type::<HamtError>().into_any(),
                    py.get_type::<PyValueError>().into_any(),
                ],
            )?;
            let namespace = PyDict::new(py);
            namespace.set_item(
                "__doc__",
                "A value did not authenticate: wrong encryption key or header, or altered data \
                 (a ValueError too, as py-hamt raises).",
            )?;
            namespace.set_item("__module__", "hamt_rs")?;
            let class = py
                .get_type::<PyType>()
                .call1(("DecryptionError", bases, namespace))?;
            Ok::<_, PyErr>(class.cast_into::<PyType>()?.unbind())
        })
        .map(|class| class.bind(py))
}

/// A `hamt_rs.DecryptionError` saying `message`.
fn decryption_error(message: String) -> PyErr {
    Python::attach(|py| match decryption_error_type(py) {
        Ok(class) => PyErr::from_type(class.clone(), message),
        Err(e) => e,
    })
}

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    for (name, class) in [
        ("HamtError", py.get_type::<HamtError>()),
        ("NotFoundError", py.get_type::<NotFoundError>()),
        ("CorruptBlockError", py.get_type::<CorruptBlockError>()),
        (
            "GatewayContentUnverifiable",
            py.get_type::<GatewayContentUnverifiable>(),
        ),
        ("StoreError", py.get_type::<StoreError>()),
        ("FormatError", py.get_type::<FormatError>()),
        ("ReadOnlyError", py.get_type::<ReadOnlyError>()),
        ("ConflictError", py.get_type::<ConflictError>()),
        ("PanicError", py.get_type::<PanicError>()),
    ] {
        class.setattr("__module__", "hamt_rs")?;
        m.add(name, class)?;
    }
    m.add("DecryptionError", decryption_error_type(py)?)?;
    py.get_type::<StoreError>().setattr("is_temporary", false)?;
    py.get_type::<ConflictError>()
        .setattr("keys", PyTuple::empty(py))?;
    py.get_type::<ConflictError>()
        .setattr("arrays", PyTuple::empty(py))?;
    Ok(())
}

/// A Python exception carried through Rust code as a `hamt::Error::Backend` source, so that
/// it comes out again as itself.
#[derive(Debug)]
pub(crate) struct PythonError(pub(crate) PyErr);

impl fmt::Display for PythonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for PythonError {}

/// The store was closed with `close()`; carried as a `hamt::Error::Backend` source.
#[derive(Debug)]
pub(crate) struct StoreClosed(pub(crate) String);

impl fmt::Display for StoreClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the store {} is closed", self.0)
    }
}

impl std::error::Error for StoreClosed {}

fn store_error(message: String, temporary: bool) -> PyErr {
    Python::attach(|py| {
        let err = StoreError::new_err(message);
        // Setting an attribute on a fresh exception instance cannot fail.
        let _ = err.value(py).setattr("is_temporary", temporary);
        err
    })
}

fn with_cid(err: PyErr, cid: &hamt::Cid) -> PyErr {
    Python::attach(|py| {
        let _ = err.value(py).setattr("cid", cid.to_string());
        err
    })
}

/// A core error as a Python exception.
pub(crate) fn hamt_error(err: hamt::Error) -> PyErr {
    use hamt::Error as E;
    let temporary = err.is_temporary();
    match err {
        E::NotFound { cid } => with_cid(
            NotFoundError::new_err(format!("block {cid} not found")),
            &cid,
        ),
        E::Corrupt { cid } => with_cid(
            CorruptBlockError::new_err(format!(
                "block {cid} is corrupt: its bytes do not hash to its CID"
            )),
            &cid,
        ),
        E::Backend { source, store, .. } => match source.downcast::<PythonError>() {
            Ok(py_err) => Python::attach(|py| py_err.0.clone_ref(py)),
            Err(source) => {
                if source.downcast_ref::<StoreClosed>().is_some() {
                    store_error(source.to_string(), false)
                } else {
                    store_error(format!("{store} backend error: {source}"), temporary)
                }
            }
        },
        e @ (E::Timeout { .. }
        | E::Unauthorized { .. }
        | E::Offline { .. }
        | E::NotSupported { .. }) => store_error(e.to_string(), temporary),
        e @ (E::InvalidCid { .. } | E::InvalidConfig(_) | E::Encode { .. }) => {
            PyValueError::new_err(e.to_string())
        }
        e @ E::UnsupportedHash { .. } => GatewayContentUnverifiable::new_err(e.to_string()),
        e @ (E::Decode { .. } | E::UnsupportedCodec { .. }) => FormatError::new_err(e.to_string()),
        other => HamtError::new_err(other.to_string()),
    }
}

/// A Zarr store error as a Python exception.
pub(crate) fn zarr_error(err: hamt_zarr::Error) -> PyErr {
    use hamt_zarr::Error as E;
    match err {
        E::Hamt(e) => hamt_error(e),
        E::ReadOnly => ReadOnlyError::new_err("the store is read-only"),
        e @ E::Decryption { .. } => decryption_error(e.to_string()),
        e @ (E::InvalidEncryptionKey { .. } | E::InvalidKey { .. } | E::InvalidRange { .. }) => {
            PyValueError::new_err(e.to_string())
        }
        e @ E::Io { .. } => PyOSError::new_err(e.to_string()),
        e @ (E::Metadata { .. }
        | E::Manifest { .. }
        | E::Shard { .. }
        | E::Layout { .. }
        | E::NotZarr { .. }) => FormatError::new_err(e.to_string()),
        other => HamtError::new_err(other.to_string()),
    }
}

/// A registry error (opening a URL) as a Python exception.
pub(crate) fn registry_error(err: hamt_registry::Error) -> PyErr {
    use hamt_registry::Error as E;
    let temporary = err.is_temporary();
    match err {
        e @ (E::UnknownScheme { .. } | E::NotEnabled { .. } | E::NoDefault { .. }) => {
            PyValueError::new_err(e.to_string())
        }
        E::Open { source, scheme } => match source {
            hamt::Error::InvalidConfig(reason) => {
                PyValueError::new_err(format!("cannot open the {scheme} store: {reason}"))
            }
            other => store_error(
                format!("cannot open the {scheme} store: {other}"),
                temporary,
            ),
        },
        other => store_error(other.to_string(), temporary),
    }
}

/// A versions error (refs, commits, merges) as a Python exception.
pub(crate) fn versions_error(err: hamt_versions::Error) -> PyErr {
    use hamt_versions::Error as E;
    let temporary = err.is_temporary();
    match err {
        E::Hamt(e) => hamt_error(e),
        E::MergeConflict {
            ref conflicts,
            ref metadata,
        } => {
            let keys: Vec<String> = conflicts.iter().map(|c| c.key.clone()).collect();
            let arrays: Vec<String> = metadata.iter().map(|m| m.path.clone()).collect();
            Python::attach(|py| {
                let exc = ConflictError::new_err(err.to_string());
                // Setting attributes on a fresh exception instance cannot fail.
                if let Ok(keys) = PyTuple::new(py, keys) {
                    let _ = exc.value(py).setattr("keys", keys);
                }
                if let Ok(arrays) = PyTuple::new(py, arrays) {
                    let _ = exc.value(py).setattr("arrays", arrays);
                }
                exc
            })
        }
        e @ (E::RefConflict { .. } | E::TagExists { .. }) => ConflictError::new_err(e.to_string()),
        e @ (E::RefNotFound { .. } | E::UnknownRevision { .. }) => {
            pyo3::exceptions::PyKeyError::new_err(e.to_string())
        }
        e @ (E::InvalidRefName { .. } | E::InvalidInput(_) | E::GcRefused(_)) => {
            PyValueError::new_err(e.to_string())
        }
        e @ (E::NotACommit { .. } | E::CorruptRef { .. }) => FormatError::new_err(e.to_string()),
        other => store_error(other.to_string(), temporary),
    }
}

/// A Python exception wrapped for travel through the core's error type.
pub(crate) fn to_hamt(err: PyErr, store: &'static str) -> hamt::Error {
    hamt::Error::Backend {
        store,
        temporary: false,
        source: Box::new(PythonError(err)),
    }
}
