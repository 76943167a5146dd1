//! A py-hamt `ContentAddressedStore` written in Python (anything with async `save(data, codec)`
//! and `load(id, offset=None, length=None, suffix=None)`) as a Rust [`BlockStore`], so a user's
//! own CAS keeps working under `hamt_rs`.
//!
//! Its coroutines run on the asyncio event loop that awaited the `hamt_rs` call (the task
//! locals [`crate::runtime::spawn`] captures), so a CAS built on httpx or aiohttp works as it
//! did under py-hamt. IDs are CIDs (`multiformats.CID`, as `KuboCAS` returns); py-hamt's own
//! `InMemoryCAS`, whose IDs are bare BLAKE3 multihashes, is recognised and given those.

use std::fmt;

use async_trait::async_trait;
use hamt::{BlockStore, Bytes, Capabilities, Cid, Codec, HashAlg};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::convert::{cid_from_py, cid_to_py};
use crate::errors::to_hamt;

const NAME: &str = "python CAS";

/// A Python CAS object as a block store.
pub(crate) struct PyCas {
    obj: Py<PyAny>,
    /// py-hamt's `InMemoryCAS`: IDs are the BLAKE3 multihash's bytes.
    digest_ids: bool,
    class: String,
}

impl fmt::Debug for PyCas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PyCas")
            .field("class", &self.class)
            .field("digest_ids", &self.digest_ids)
            .finish_non_exhaustive()
    }
}

impl PyCas {
    /// Wraps `obj`.
    pub(crate) fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        let digest_ids = match py.import("py_hamt").and_then(|m| m.getattr("InMemoryCAS")) {
            Ok(class) => obj.is_instance(&class)?,
            Err(_) => false,
        };
        Ok(Self {
            obj: obj.clone().unbind(),
            digest_ids,
            class: obj.get_type().name()?.to_string(),
        })
    }

    fn id_of<'py>(&self, py: Python<'py>, cid: &Cid) -> PyResult<Bound<'py, PyAny>> {
        if self.digest_ids {
            Ok(PyBytes::new(py, &cid.hash().to_bytes()).into_any())
        } else {
            cid_to_py(py, cid)
        }
    }

    /// Calls `method` with the arguments `args` builds and awaits the coroutine it returns.
    async fn call<F>(&self, method: &'static str, args: F) -> PyResult<Py<PyAny>>
    where
        F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>> + Send,
    {
        let fut = Python::attach(|py| {
            let coro = self.obj.bind(py).call_method1(method, args(py)?)?;
            pyo3_async_runtimes::tokio::into_future(coro)
        })?;
        fut.await
    }

    async fn save(&self, codec: Codec, data: &Bytes) -> hamt::Result<Py<PyAny>> {
        let codec_name = match codec {
            Codec::DagCbor => "dag-cbor",
            _ => "raw",
        };
        self.call("save", |py| {
            PyTuple::new(
                py,
                [
                    PyBytes::new(py, data).into_any(),
                    codec_name.into_pyobject(py)?.into_any(),
                ],
            )
        })
        .await
        .map_err(|e| to_hamt(e, NAME))
    }

    /// The CID a returned ID stands for, given the CID computed here.
    fn returned_cid(&self, id: &Py<PyAny>, computed: &Cid) -> hamt::Result<Cid> {
        Python::attach(|py| {
            let id = id.bind(py);
            if self.digest_ids {
                let digest: Vec<u8> = id.extract().map_err(|e| to_hamt(e, NAME))?;
                if digest == computed.hash().to_bytes() {
                    return Ok(*computed);
                }
                return Err(mismatch(&self.class, &format!("{digest:02x?}"), computed));
            }
            cid_from_py(id).map_err(|e| to_hamt(e, NAME))
        })
    }
}

fn mismatch(class: &str, returned: &str, computed: &Cid) -> hamt::Error {
    hamt::Error::Backend {
        store: NAME,
        temporary: false,
        source: format!(
            "{class}.save returned {returned} for a block whose CID is {computed}: the CAS must \
             address blocks as CIDv1 with BLAKE3 (as py-hamt's KuboCAS does)"
        )
        .into(),
    }
}

#[async_trait]
impl BlockStore for PyCas {
    fn hash_alg(&self) -> HashAlg {
        HashAlg::Blake3
    }

    async fn put_keyed(&self, cid: &Cid, data: Bytes) -> hamt::Result<()> {
        let codec = Codec::of(cid)?;
        let id = self.save(codec, &data).await?;
        let got = self.returned_cid(&id, cid)?;
        if got != *cid {
            return Err(mismatch(&self.class, &got.to_string(), cid));
        }
        Ok(())
    }

    async fn put(&self, codec: Codec, data: Bytes) -> hamt::Result<Cid> {
        let computed = self.hash_alg().cid(codec, &data);
        let id = self.save(codec, &data).await?;
        // A CAS may address a value its own way (KuboCAS turns values over its chunk size into
        // UnixFS files): the tree links what it returned, as py-hamt does.
        self.returned_cid(&id, &computed)
    }

    async fn get(&self, cid: &Cid) -> hamt::Result<Bytes> {
        let digest_ids = self.digest_ids;
        let got = self
            .call("load", |py| PyTuple::new(py, [self.id_of(py, cid)?]))
            .await;
        let obj = match got {
            Ok(obj) => obj,
            Err(e) if Python::attach(|py| e.is_instance_of::<PyKeyError>(py)) => {
                return Err(hamt::Error::NotFound { cid: *cid });
            }
            Err(e) => return Err(to_hamt(e, NAME)),
        };
        let data: Vec<u8> = Python::attach(|py| obj.extract(py)).map_err(|e| to_hamt(e, NAME))?;
        // UnixFS roots come back from gateways as the whole file: only plain blocks can be
        // checked against their CID.
        let checkable = !digest_ids && matches!(Codec::of(cid), Ok(Codec::Raw | Codec::DagCbor));
        if checkable && hamt::can_verify(cid) {
            hamt::verify(cid, &data)?;
        }
        Ok(Bytes::from(data))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write: true,
            ..Capabilities::default()
        }
    }
}
