//! `write_chunks`: whole chunks cut out of the array being written, encoded and stored, on
//! the runtime's threads.

use std::sync::Arc;

use hamt::Bytes;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use zarrs::array::{ArrayBytes, ArrayToBytesCodecTraits as _, CodecOptions};

use super::arrays::{ArrayCache, fill_element, resolve};
use super::boxes::{Region, extract};
use super::buffers::SourceBuffer;
use super::fill::Compare;
use super::{MISSING, NOT_HANDLED, PRESENT, each_chunk, spread, zstd_chunks};
use crate::errors::FormatError;
use crate::runtime::spawn;
use crate::zarr::{Storage, ZarrCore};

/// Where a chunk's elements are: the box of the chunk's shape at `start` in a C-order array
/// of `shape`.
struct Source<'a> {
    bytes: &'a [u8],
    shape: &'a [u64],
    start: &'a [u64],
    itemsize: usize,
    /// How an element compares with the fill value.
    compare: Compare,
}

/// One whole chunk cut out of `source`, encoded and stored (or, when `drop_empty`, erased if
/// it is all fill value, as zarr-python does unless `write_empty_chunks`); `NOT_HANDLED` when
/// zarrs cannot encode it here. Plain `bytes` + `zstd` chains are compressed on the thread's
/// own context ([`zstd_chunks`]), every other one by zarrs' codec chain.
async fn encode_and_store(
    storage: &Storage,
    arrays: &ArrayCache,
    key: &str,
    source: Source<'_>,
    drop_empty: bool,
) -> PyResult<u8> {
    let itemsize = source.itemsize;
    let Some((opened, indices)) = resolve(storage, arrays, key, source.shape.len()).await? else {
        return Ok(NOT_HANDLED);
    };
    let array = &opened.array;
    if array.data_type().fixed_size() != Some(itemsize) {
        return Ok(NOT_HANDLED);
    }
    let chunk_shape = array
        .chunk_shape(&indices)
        .map_err(|e| FormatError::new_err(format!("{key}: {e}")))?;
    let shape: Vec<u64> = chunk_shape.iter().map(|n| n.get()).collect();
    let fits = source
        .start
        .iter()
        .zip(&shape)
        .zip(source.shape)
        .all(|((start, n), full)| start.checked_add(*n).is_some_and(|end| end <= *full));
    if !fits {
        return Ok(NOT_HANDLED);
    }
    let region = Region {
        start: source.start.to_vec(),
        shape,
    };
    let data = extract(source.bytes, source.shape, &region, itemsize)
        .ok_or_else(|| PyValueError::new_err(format!("chunk {key} reaches past the value")))?;
    let fill = fill_element(array, key)?;
    if drop_empty && source.compare.all_fill(&data, &fill) {
        storage.delete(key).await?;
        return Ok(MISSING);
    }
    let cannot =
        |e: &dyn std::fmt::Display| FormatError::new_err(format!("cannot encode chunk {key}: {e}"));
    let encoded = match opened.zstd {
        Some(settings) => zstd_chunks::encode(&data, settings).map_err(|e| cannot(&e))?,
        None => array
            .codecs()
            .encode(
                ArrayBytes::new_flen(data),
                &chunk_shape,
                array.data_type(),
                array.fill_value(),
                &CodecOptions::default(),
            )
            .map_err(|e| cannot(&e))?
            .into_owned(),
    };
    storage.set(key, Bytes::from(encoded)).await?;
    Ok(PRESENT)
}

/// Encodes whole chunks in Rust and stores them through a `hamt_rs` store (async).
///
/// `value` is a C-contiguous byte view of the array being written, of shape `value_shape`
/// and element size `itemsize`, numpy dtype kind `kind`; `items` are
/// `(key, value_start, drop_empty)`: each chunk's key, where its box (of the chunk's shape)
/// starts in `value`, and whether it is erased rather than stored when it is all fill value
/// (zarr-python's `not write_empty_chunks`). Every chunk is cut out, checked for fill value,
/// encoded and stored on the runtime's threads, without the GIL. `signed_zeros`: the
/// installed zarr-python tells -0.0 from a float fill value of 0.0. Returns one status a
/// chunk: 0 erased (all fill value), 1 stored, 2 not handled here (nothing was written).
#[pyfunction]
#[allow(clippy::too_many_arguments)] // the call zarr-python's side makes, one value each
pub(super) fn write_chunks<'py>(
    py: Python<'py>,
    core: &Bound<'py, ZarrCore>,
    items: &Bound<'py, PyList>,
    value: &Bound<'py, PyAny>,
    value_shape: Vec<u64>,
    itemsize: usize,
    kind: &str,
    signed_zeros: bool,
) -> PyResult<Bound<'py, PyAny>> {
    core.get().check_writable()?;
    let compare = Compare::for_kind(kind, itemsize, signed_zeros);
    let buffer = PyBuffer::<u8>::get(value)?;
    let source = Arc::new(SourceBuffer::new(buffer, &value_shape, itemsize)?);
    let mut parsed = Vec::with_capacity(items.len());
    for item in items.iter() {
        let t = item.cast::<PyTuple>()?;
        let key: String = t.get_item(0)?.extract()?;
        let start: Vec<u64> = t.get_item(1)?.extract()?;
        let drop_empty: bool = t.get_item(2)?.extract()?;
        if start.len() != value_shape.len() {
            return Err(PyValueError::new_err(
                "chunk dimensions do not match the value",
            ));
        }
        parsed.push((key, start, drop_empty));
    }
    let (backend, arrays) = (core.get().backend.clone(), core.get().arrays.clone());
    let locals = spread(py, parsed.len(), true)?;
    spawn(py, async move {
        let storage = ZarrCore::storage(&backend).await?;
        let shape = Arc::new(value_shape);
        each_chunk(parsed, locals, |(key, start, drop_empty)| {
            let storage = storage.clone();
            let arrays = arrays.clone();
            let source = source.clone();
            let shape = shape.clone();
            async move {
                let chunk = Source {
                    bytes: source.bytes(),
                    shape: &shape,
                    start: &start,
                    itemsize,
                    compare,
                };
                encode_and_store(&storage, &arrays, &key, chunk, drop_empty).await
            }
        })
        .await
    })
}
