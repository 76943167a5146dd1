//! Chunks fetched and decoded in Rust, straight into zarr-python's output array: the native
//! half of `hamt_rs.CodecPipeline`.
//!
//! zarr-python hands the pipeline chunk keys with slice selections. For keys of a `hamt_rs`
//! store, the array's `zarr.json` is read through the same store, a `zarrs` array is opened
//! on the zarr crate's `HamtStore`/`ShardedStore` (their zarrs storage traits), every chunk
//! is fetched and decoded concurrently on the runtime without the GIL, and the selected part
//! of each is copied into the output buffer. What zarrs cannot open here (a codec this
//! build lacks, a variable-length type) is reported back, and the Python side hands those
//! chunks to zarr-python's own pipeline.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{StreamExt as _, stream};
use hamt::Bytes;
use hamt_zarr::zarrs_storage::AsyncReadableStorageTraits;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use zarrs::array::{Array, ArrayBytes, ArrayMetadata, ArrayToBytesCodecTraits as _, CodecOptions};

use crate::errors::FormatError;
use crate::runtime::spawn;
use crate::zarr::{Storage, ZarrCore};

/// Chunks decoded at once.
const CONCURRENCY: usize = 32;

/// Outcome of one chunk, as the Python side reads it.
const MISSING: u8 = 0;
const PRESENT: u8 = 1;
const NOT_HANDLED: u8 = 2;

/// Adds the pipeline function to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(write_chunks, m)?)?;
    Ok(())
}

type ZArray = Array<dyn AsyncReadableStorageTraits>;

/// Arrays opened by zarrs, by (storage identity, path), with the metadata they were opened
/// from: a changed `zarr.json` (an append) opens the array again.
static ARRAYS: Mutex<Option<ArrayCache>> = Mutex::new(None);

/// (storage identity, array path) → (the `zarr.json` it was opened from, the array, or None
/// when zarrs cannot read it).
type ArrayCache = HashMap<(usize, String), (Bytes, Option<Arc<ZArray>>)>;

/// One chunk to read: its key, the part of it selected, where that part goes in `out`.
struct Item {
    key: String,
    chunk_start: Vec<u64>,
    chunk_stop: Vec<u64>,
    out_start: Vec<u64>,
}

/// A chunk key taken apart: the array's path and the chunk's grid indices.
fn candidates(key: &str, ndim: usize) -> Vec<(String, Vec<u64>, &'static str, char)> {
    let mut found = Vec::new();
    let digits = |s: &str| s.parse::<u64>().ok();
    let segments: Vec<&str> = key.split('/').collect();
    let join = |parts: &[&str]| parts.join("/");
    // default encoding, "/" separator: …/c/i/j/k
    if segments.len() > ndim && segments[segments.len() - ndim - 1] == "c" {
        let idx: Option<Vec<u64>> = segments[segments.len() - ndim..]
            .iter()
            .map(|s| digits(s))
            .collect();
        if let Some(idx) = idx {
            found.push((
                join(&segments[..segments.len() - ndim - 1]),
                idx,
                "default",
                '/',
            ));
        }
    }
    if let Some(last) = segments.last() {
        let rest = join(&segments[..segments.len() - 1]);
        // default encoding, "." separator: …/c.i.j.k
        if let Some(tail) = last
            .strip_prefix("c.")
            .or((ndim == 0 && *last == "c").then_some(""))
        {
            let idx: Option<Vec<u64>> = if ndim == 0 {
                Some(Vec::new())
            } else {
                tail.split('.').map(digits).collect()
            };
            if let Some(idx) = idx.filter(|i| i.len() == ndim) {
                found.push((rest.clone(), idx, "default", '.'));
            }
        }
        // v2 encoding, "." separator: …/i.j.k
        let idx: Option<Vec<u64>> = if ndim == 0 {
            (*last == "0").then(Vec::new)
        } else {
            last.split('.').map(digits).collect()
        };
        if let Some(idx) = idx.filter(|i| i.len() == ndim) {
            found.push((rest, idx, "v2", '.'));
        }
    }
    // v2 encoding, "/" separator: …/i/j/k
    if ndim > 0 && segments.len() >= ndim {
        let idx: Option<Vec<u64>> = segments[segments.len() - ndim..]
            .iter()
            .map(|s| digits(s))
            .collect();
        if let Some(idx) = idx {
            found.push((join(&segments[..segments.len() - ndim]), idx, "v2", '/'));
        }
    }
    found
}

fn metadata_key(path: &str) -> String {
    if path.is_empty() {
        "zarr.json".to_owned()
    } else {
        format!("{path}/zarr.json")
    }
}

/// The chunk key encoding `zarr.json` declares: (name, separator).
fn encoding_of(meta: &serde_json::Value) -> (String, char) {
    let enc = &meta["chunk_key_encoding"];
    let name = enc["name"].as_str().unwrap_or("default").to_owned();
    let default_sep = if name == "v2" { '.' } else { '/' };
    let sep = enc["configuration"]["separator"]
        .as_str()
        .and_then(|s| s.chars().next())
        .unwrap_or(default_sep);
    (name, sep)
}

/// The zarrs array `key` belongs to and the chunk's indices; None when zarrs cannot read it.
async fn resolve(
    storage: &Storage,
    key: &str,
    ndim: usize,
) -> PyResult<Option<(Arc<ZArray>, Vec<u64>)>> {
    for (path, indices, enc, sep) in candidates(key, ndim) {
        let Some(meta_bytes) = storage.get(&metadata_key(&path)).await? else {
            continue;
        };
        let Ok(meta) = serde_json::from_slice::<serde_json::Value>(&meta_bytes) else {
            continue;
        };
        if meta["node_type"] != "array" || meta["shape"].as_array().map(Vec::len) != Some(ndim) {
            continue;
        }
        if encoding_of(&meta) != (enc.to_owned(), sep) {
            continue;
        }
        let identity = Arc::as_ptr(&storage.readable()).cast::<()>() as usize;
        let cache_key = (identity, path.clone());
        let cached = {
            let guard = ARRAYS.lock().unwrap_or_else(PoisonError::into_inner);
            guard
                .as_ref()
                .and_then(|m| m.get(&cache_key))
                .filter(|(bytes, _)| *bytes == meta_bytes)
                .map(|(_, a)| a.clone())
        };
        let array = if let Some(array) = cached {
            array
        } else {
            let opened = serde_json::from_slice::<ArrayMetadata>(&meta_bytes)
                .ok()
                .and_then(|m| {
                    ZArray::new_with_metadata(storage.readable(), &format!("/{path}"), m).ok()
                })
                .filter(|a| a.data_type().fixed_size().is_some())
                .map(Arc::new);
            let mut guard = ARRAYS.lock().unwrap_or_else(PoisonError::into_inner);
            guard
                .get_or_insert_with(HashMap::new)
                .insert(cache_key, (meta_bytes.clone(), opened.clone()));
            opened
        };
        return Ok(array.map(|a| (a, indices)));
    }
    Ok(None)
}

/// One chunk decoded: the selected region's bytes in C order, or None when not handled.
async fn decode(
    storage: &Storage,
    item: &Item,
    itemsize: usize,
) -> PyResult<(u8, Option<Vec<u8>>)> {
    let ndim = item.chunk_start.len();
    let Some((array, indices)) = resolve(storage, &item.key, ndim).await? else {
        return Ok((NOT_HANDLED, None));
    };
    if array.data_type().fixed_size() != Some(itemsize) {
        return Ok((NOT_HANDLED, None));
    }
    let chunk_shape: Vec<u64> = array
        .chunk_shape(&indices)
        .map_err(|e| FormatError::new_err(format!("{}: {e}", item.key)))?
        .iter()
        .map(|n| n.get())
        .collect();
    if item
        .chunk_stop
        .iter()
        .zip(&chunk_shape)
        .any(|(stop, n)| stop > n)
    {
        return Err(PyValueError::new_err(format!(
            "selection outside chunk {}",
            item.key
        )));
    }
    let decoded = array
        .async_retrieve_chunk_if_exists::<ArrayBytes<'static>>(&indices)
        .await
        .map_err(|e| FormatError::new_err(format!("cannot decode chunk {}: {e}", item.key)))?;
    let region: Vec<u64> = item
        .chunk_stop
        .iter()
        .zip(&item.chunk_start)
        .map(|(b, a)| b - a)
        .collect();
    if let Some(bytes) = decoded {
        let raw = bytes
            .into_fixed()
            .map_err(|e| FormatError::new_err(format!("{}: {e}", item.key)))?;
        let whole = item.chunk_start.iter().all(|&s| s == 0) && region == chunk_shape;
        let out = if whole {
            raw.into_owned()
        } else {
            extract(&raw, &chunk_shape, &item.chunk_start, &region, itemsize)
        };
        Ok((PRESENT, Some(out)))
    } else {
        let one = ArrayBytes::new_fill_value(array.data_type(), 1, array.fill_value())
            .map_err(|e| FormatError::new_err(format!("{}: {e}", item.key)))?
            .into_fixed()
            .map_err(|e| FormatError::new_err(format!("{}: {e}", item.key)))?
            .into_owned();
        let n: u64 = region.iter().product();
        let n = usize::try_from(n).map_err(|_| PyValueError::new_err("chunk too large"))?;
        Ok((MISSING, Some(one.repeat(n))))
    }
}

/// The C-order bytes of the box `start..start+shape` of a C-order array of `full` shape.
fn extract(src: &[u8], full: &[u64], start: &[u64], shape: &[u64], itemsize: usize) -> Vec<u8> {
    let n: u64 = shape.iter().product();
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0) * itemsize);
    for_each_row(full, start, shape, itemsize, |offset, len| {
        out.extend_from_slice(&src[offset..offset + len]);
    });
    out
}

/// Calls `row(byte_offset, byte_len)` for each innermost run of the box `start..start+shape`
/// in a C-order array of shape `full`, in C order.
fn for_each_row(
    full: &[u64],
    start: &[u64],
    shape: &[u64],
    itemsize: usize,
    mut row: impl FnMut(usize, usize),
) {
    let ndim = full.len();
    if shape.contains(&0) {
        return;
    }
    if ndim == 0 {
        row(0, itemsize);
        return;
    }
    let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let mut strides = vec![itemsize; ndim];
    for d in (0..ndim - 1).rev() {
        strides[d] = strides[d + 1] * to_usize(full[d + 1]);
    }
    let len = to_usize(shape[ndim - 1]) * itemsize;
    let mut idx = vec![0u64; ndim - 1];
    loop {
        let mut offset = to_usize(start[ndim - 1]) * itemsize;
        for d in 0..ndim - 1 {
            offset += to_usize(start[d] + idx[d]) * strides[d];
        }
        row(offset, len);
        // Next index of the outer dimensions, last fastest.
        let mut d = ndim - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Copies a C-order box into `dst` (C order, shape `dst_shape`) at `dst_start`.
fn place(
    dst: &mut [u8],
    dst_shape: &[u64],
    dst_start: &[u64],
    region: &[u64],
    src: &[u8],
    itemsize: usize,
) -> PyResult<()> {
    let mut from = 0usize;
    let mut bad = false;
    for_each_row(dst_shape, dst_start, region, itemsize, |offset, len| {
        match (dst.get_mut(offset..offset + len), src.get(from..from + len)) {
            (Some(d), Some(s)) => d.copy_from_slice(s),
            _ => bad = true,
        }
        from += len;
    });
    if bad {
        return Err(PyValueError::new_err(
            "chunk selection does not fit the output array",
        ));
    }
    Ok(())
}

/// Reads chunks of a `hamt_rs` store into `out` (async).
///
/// `items` are `(key, chunk_start, chunk_stop, out_start)`; `out` is a writable C-contiguous
/// byte view of the output array of shape `out_shape` and element size `itemsize`. Returns one
/// status a chunk: 0 missing (filled with the fill value), 1 read, 2 not handled here.
#[pyfunction]
fn read_chunks<'py>(
    py: Python<'py>,
    core: &Bound<'py, ZarrCore>,
    items: &Bound<'py, PyList>,
    out: &Bound<'py, PyAny>,
    out_shape: Vec<u64>,
    itemsize: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let buffer = PyBuffer::<u8>::get(out)?;
    if buffer.readonly() || !buffer.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "out must be a writable C-contiguous buffer",
        ));
    }
    let expected: u64 = out_shape.iter().product::<u64>() * itemsize as u64;
    if buffer.item_count() as u64 != expected {
        return Err(PyValueError::new_err(
            "out does not match out_shape and itemsize",
        ));
    }
    let mut parsed = Vec::with_capacity(items.len());
    for item in items.iter() {
        let t = item.cast::<PyTuple>()?;
        let it = Item {
            key: t.get_item(0)?.extract()?,
            chunk_start: t.get_item(1)?.extract()?,
            chunk_stop: t.get_item(2)?.extract()?,
            out_start: t.get_item(3)?.extract()?,
        };
        if it.chunk_start.len() != it.chunk_stop.len()
            || it.out_start.len() != out_shape.len()
            || it.chunk_start.len() != out_shape.len()
        {
            return Err(PyValueError::new_err(
                "selection dimensions do not match the output",
            ));
        }
        parsed.push(it);
    }
    let backend = core.get().backend.clone();
    spawn(py, async move {
        let storage = ZarrCore::storage(&backend).await?;
        let mut out = OutBuffer::new(buffer)?;
        let mut decoded = stream::iter(parsed)
            .map(|item| {
                let storage = storage.clone();
                async move {
                    let got = decode(&storage, &item, itemsize).await;
                    got.map(|(state, bytes)| (item, state, bytes))
                }
            })
            .buffered(CONCURRENCY);
        let mut status = Vec::new();
        // One consumer writes the chunks, in order, without the GIL.
        while let Some(next) = decoded.next().await {
            let (item, state, bytes) = next?;
            if let Some(bytes) = bytes {
                let region: Vec<u64> = item
                    .chunk_stop
                    .iter()
                    .zip(&item.chunk_start)
                    .map(|(b, a)| b - a)
                    .collect();
                place(
                    out.bytes(),
                    &out_shape,
                    &item.out_start,
                    &region,
                    &bytes,
                    itemsize,
                )?;
            }
            status.push(state);
        }
        drop(out);
        Ok(status)
    })
}

/// The output array's memory, held for the length of one `read_chunks` call.
struct OutBuffer {
    /// Held so the view stays exported while `ptr` is used.
    _buffer: PyBuffer<u8>,
    ptr: std::ptr::NonNull<[u8]>,
}

// SAFETY: the pointer is into memory the `PyBuffer` keeps exported (a numpy array cannot be
// resized or freed while a buffer view of it is held); only the one task that owns this
// value writes through it.
#[allow(unsafe_code)]
unsafe impl Send for OutBuffer {}

impl OutBuffer {
    fn new(buffer: PyBuffer<u8>) -> PyResult<Self> {
        let ptr = buffer
            .as_slice_ptr()
            .ok_or_else(|| PyValueError::new_err("out must be C-contiguous"))?;
        Ok(Self {
            _buffer: buffer,
            ptr,
        })
    }

    /// The bytes of the output array.
    #[allow(unsafe_code)]
    fn bytes(&mut self) -> &mut [u8] {
        let len = self.ptr.len();
        // SAFETY: `ptr` covers `len` writable bytes (checked: the buffer is writable and
        // C-contiguous) that stay valid while `self._buffer` is held; `&mut self` makes this
        // the only reference. zarr-python does not touch `out` while it awaits the read.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u8>(), len) }
    }
}

/// One whole chunk encoded and stored (or erased when it is all fill value, as zarr-python
/// does by default); `NOT_HANDLED` when zarrs cannot encode it here.
async fn encode_and_store(
    storage: &Storage,
    key: &str,
    ndim: usize,
    data: Vec<u8>,
    itemsize: usize,
) -> PyResult<u8> {
    let Some((array, indices)) = resolve(storage, key, ndim).await? else {
        return Ok(NOT_HANDLED);
    };
    if array.data_type().fixed_size() != Some(itemsize) {
        return Ok(NOT_HANDLED);
    }
    let shape = array
        .chunk_shape(&indices)
        .map_err(|e| FormatError::new_err(format!("{key}: {e}")))?;
    let elements: u64 = shape.iter().map(|n| n.get()).product();
    if data.len() as u64 != elements * itemsize as u64 {
        return Ok(NOT_HANDLED);
    }
    let fill = ArrayBytes::new_fill_value(array.data_type(), 1, array.fill_value())
        .map_err(|e| FormatError::new_err(format!("{key}: {e}")))?
        .into_fixed()
        .map_err(|e| FormatError::new_err(format!("{key}: {e}")))?
        .into_owned();
    if data.chunks_exact(itemsize).all(|v| v == fill.as_slice()) {
        storage.delete(key).await?;
        return Ok(MISSING);
    }
    let encoded = array
        .codecs()
        .encode(
            ArrayBytes::new_flen(data),
            &shape,
            array.data_type(),
            array.fill_value(),
            &CodecOptions::default(),
        )
        .map_err(|e| FormatError::new_err(format!("cannot encode chunk {key}: {e}")))?;
    storage.set(key, Bytes::from(encoded.into_owned())).await?;
    Ok(PRESENT)
}

/// Encodes whole chunks with zarrs and stores them through a `hamt_rs` store (async).
///
/// `items` are `(key, ndim, bytes)`: each chunk's elements in C order. Returns one status a
/// chunk: 0 erased (all fill value), 1 stored, 2 not handled here (nothing was written).
#[pyfunction]
fn write_chunks<'py>(
    py: Python<'py>,
    core: &Bound<'py, ZarrCore>,
    items: &Bound<'py, PyList>,
    itemsize: usize,
) -> PyResult<Bound<'py, PyAny>> {
    core.get().check_writable()?;
    let mut parsed = Vec::with_capacity(items.len());
    for item in items.iter() {
        let t = item.cast::<PyTuple>()?;
        let key: String = t.get_item(0)?.extract()?;
        let ndim: usize = t.get_item(1)?.extract()?;
        let data: Vec<u8> = t
            .get_item(2)?
            .cast::<pyo3::types::PyBytes>()?
            .as_bytes()
            .to_vec();
        parsed.push((key, ndim, data));
    }
    let backend = core.get().backend.clone();
    spawn(py, async move {
        let storage = ZarrCore::storage(&backend).await?;
        stream::iter(parsed)
            .map(|(key, ndim, data)| {
                let storage = storage.clone();
                async move { encode_and_store(&storage, &key, ndim, data, itemsize).await }
            })
            .buffered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<PyResult<Vec<u8>>>()
    })
}
