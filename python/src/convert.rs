//! Values crossing the boundary: CIDs (`multiformats.CID` or text) and py-hamt's DAG-CBOR
//! values (`dag_cbor.encode` of an IPLD kind).

use std::collections::BTreeMap;

use hamt::Cid;
use ipld_core::ipld::Ipld;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
    PyType,
};

use crate::errors::hamt_error;

static CID_CLASS: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn cid_class(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    CID_CLASS.import(py, "multiformats", "CID")
}

/// `cid` as a `multiformats.CID`, the type py-hamt's `KuboCAS` uses.
pub(crate) fn cid_to_py<'py>(py: Python<'py>, cid: &Cid) -> PyResult<Bound<'py, PyAny>> {
    cid_class(py)?.call_method1("decode", (cid.to_string(),))
}

/// A CID from a `multiformats.CID`, its text, or its binary form.
pub(crate) fn cid_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Cid> {
    if let Ok(text) = obj.cast::<PyString>() {
        return hamt::parse_cid(text.to_str()?).map_err(hamt_error);
    }
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Cid::try_from(bytes.as_bytes())
            .map_err(|e| PyValueError::new_err(format!("not a binary CID: {e}")));
    }
    if obj.is_instance(cid_class(obj.py())?)? {
        let text = obj.str()?;
        return hamt::parse_cid(text.to_str()?).map_err(hamt_error);
    }
    Err(PyTypeError::new_err(format!(
        "expected a CID (multiformats.CID or str), got {}",
        obj.get_type().name()?
    )))
}

/// Encodes a Python IPLD value as DAG-CBOR, as py-hamt's `dag_cbor.encode` does.
pub(crate) fn encode_cbor(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let ipld = to_ipld(obj, 0)?;
    serde_ipld_dagcbor::to_vec(&ipld)
        .map_err(|e| PyValueError::new_err(format!("cannot encode value as DAG-CBOR: {e}")))
}

/// Decodes DAG-CBOR into Python values (CIDs as `multiformats.CID`).
pub(crate) fn decode_cbor<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let ipld: Ipld = serde_ipld_dagcbor::from_slice(data)
        .map_err(|e| crate::errors::FormatError::new_err(format!("value is not DAG-CBOR: {e}")))?;
    from_ipld(py, &ipld)
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 512;

fn to_ipld(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Ipld> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(
            "value nested too deeply for DAG-CBOR",
        ));
    }
    if obj.is_none() {
        return Ok(Ipld::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Ipld::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        let n: i128 = obj.extract().map_err(|_| {
            PyValueError::new_err("integer out of DAG-CBOR's range (-2**64 .. 2**64-1)")
        })?;
        if !(-(1_i128 << 64)..(1_i128 << 64)).contains(&n) {
            return Err(PyValueError::new_err(
                "integer out of DAG-CBOR's range (-2**64 .. 2**64-1)",
            ));
        }
        return Ok(Ipld::Integer(n));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        if !v.is_finite() {
            return Err(PyValueError::new_err(
                "DAG-CBOR cannot encode NaN or infinite floats",
            ));
        }
        return Ok(Ipld::Float(v));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Ipld::String(s.to_str()?.to_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Ipld::Bytes(b.as_bytes().to_vec()));
    }
    if obj.is_instance_of::<PyByteArray>() || obj.is_instance_of::<PyMemoryView>() {
        return Ok(Ipld::Bytes(obj.extract::<Vec<u8>>()?));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list
            .iter()
            .map(|item| to_ipld(&item, depth + 1))
            .collect::<PyResult<_>>()
            .map(Ipld::List);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple
            .iter()
            .map(|item| to_ipld(&item, depth + 1))
            .collect::<PyResult<_>>()
            .map(Ipld::List);
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut map = BTreeMap::new();
        for (k, v) in dict.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("DAG-CBOR map keys must be str"))?;
            map.insert(key.to_str()?.to_owned(), to_ipld(&v, depth + 1)?);
        }
        return Ok(Ipld::Map(map));
    }
    if obj.is_instance(cid_class(obj.py())?)? {
        return Ok(Ipld::Link(cid_from_py(obj)?));
    }
    Err(PyTypeError::new_err(format!(
        "cannot encode a {} as DAG-CBOR",
        obj.get_type().name()?
    )))
}

fn from_ipld<'py>(py: Python<'py>, ipld: &Ipld) -> PyResult<Bound<'py, PyAny>> {
    Ok(match ipld {
        Ipld::Null => py.None().into_bound(py),
        Ipld::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Ipld::Integer(n) => n.into_pyobject(py)?.into_any(),
        Ipld::Float(f) => PyFloat::new(py, *f).into_any(),
        Ipld::String(s) => PyString::new(py, s).into_any(),
        Ipld::Bytes(b) => PyBytes::new(py, b).into_any(),
        Ipld::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(from_ipld(py, item)?)?;
            }
            list.into_any()
        }
        Ipld::Map(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, from_ipld(py, v)?)?;
            }
            dict.into_any()
        }
        Ipld::Link(cid) => cid_to_py(py, cid)?,
    })
}
