//! `read_chunks`: chunks fetched and decoded on the runtime's threads, each written
//! straight into its box of zarr-python's output array.

use std::borrow::Cow;
use std::num::NonZeroU64;
use std::sync::Arc;

use hamt::Bytes;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use zarrs::array::{ArrayToBytesCodecTraits as _, CodecError, CodecOptions};

use super::arrays::{ArrayCache, ZArray, fill_element, resolve};
use super::boxes::{Region, byte_len, extract};
use super::buffers::{OutBuffer, Slot};
use super::{MISSING, NOT_HANDLED, PRESENT, each_chunk, spread, zstd_chunks};
use crate::errors::FormatError;
use crate::runtime::{Spread, block_on, spawn};
use crate::zarr::{Backend, Storage, ZarrCore};

/// One chunk to read: its key and the part of it selected (its box in the output is its
/// slot's).
struct Item {
    key: String,
    chunk_start: Vec<u64>,
    chunk_stop: Vec<u64>,
}

/// One chunk decoded and its selection written into its slot; `NOT_HANDLED` (nothing
/// written) when zarrs cannot read it here.
async fn decode(
    storage: &Storage,
    arrays: &ArrayCache,
    item: &Item,
    slot: &Slot,
    itemsize: usize,
) -> PyResult<u8> {
    let ndim = item.chunk_start.len();
    let Some((opened, indices)) = resolve(storage, arrays, &item.key, ndim).await? else {
        return Ok(NOT_HANDLED);
    };
    let array = &opened.array;
    if array.data_type().fixed_size() != Some(itemsize) {
        return Ok(NOT_HANDLED);
    }
    let chunk_shape = array
        .chunk_shape(&indices)
        .map_err(|e| FormatError::new_err(format!("{}: {e}", item.key)))?;
    let shape: Vec<u64> = chunk_shape.iter().map(|n| n.get()).collect();
    if item.chunk_stop.iter().zip(&shape).any(|(stop, n)| stop > n) {
        return Err(PyValueError::new_err(format!(
            "selection outside chunk {}",
            item.key
        )));
    }
    // Fetched here rather than by zarrs, so that a store's failure keeps its own exception
    // (`NotFoundError`, `CorruptBlockError`, `StoreError`) instead of becoming zarrs' text.
    let encoded = storage.get(&item.key).await?;
    let cannot = |e: &dyn std::fmt::Display| {
        FormatError::new_err(format!("cannot decode chunk {}: {e}", item.key))
    };
    let decoded = match encoded {
        Some(encoded) if opened.zstd.is_some() => {
            let len =
                byte_len(&shape, itemsize).ok_or_else(|| cannot(&"the chunk is too large"))?;
            Some(zstd_chunks::decode(&encoded, len).map_err(|e| cannot(&e))?)
        }
        encoded => decode_with_zarrs(array, encoded, &chunk_shape).map_err(|e| cannot(&e))?,
    };
    let selection = Region {
        start: item.chunk_start.clone(),
        shape: slot.region().shape.clone(),
    };
    let Some(raw) = decoded else {
        let one = fill_element(array, &item.key)?;
        let n = usize::try_from(selection.len())
            .map_err(|_| PyValueError::new_err("chunk too large"))?;
        slot.write(&one.repeat(n))?;
        return Ok(MISSING);
    };
    if selection.start.iter().all(|&s| s == 0) && selection.shape == shape {
        slot.write(&raw)?;
    } else {
        let part = extract(&raw, &shape, &selection, itemsize).ok_or_else(|| {
            FormatError::new_err(format!("chunk {} is shorter than its shape", item.key))
        })?;
        slot.write(&part)?;
    }
    Ok(PRESENT)
}

/// `encoded` decoded by `array`'s codec chain in zarrs.
fn decode_with_zarrs(
    array: &ZArray,
    encoded: Option<Bytes>,
    chunk_shape: &[NonZeroU64],
) -> Result<Option<Vec<u8>>, CodecError> {
    encoded
        .map(|encoded| {
            array
                .codecs()
                .decode(
                    Cow::Borrowed(&encoded[..]),
                    chunk_shape,
                    array.data_type(),
                    array.fill_value(),
                    &CodecOptions::default(),
                )?
                .into_fixed()
                .map(Cow::into_owned)
                .map_err(Into::into)
        })
        .transpose()
}

/// The chunks `items` name and their slots in `out`, checked against `out_shape`.
fn parse(
    items: &Bound<'_, PyList>,
    out: &Bound<'_, PyAny>,
    out_shape: Vec<u64>,
    itemsize: usize,
) -> PyResult<(Vec<Item>, Vec<Slot>)> {
    let buffer = PyBuffer::<u8>::get(out)?;
    let mut parsed = Vec::with_capacity(items.len());
    let mut regions = Vec::with_capacity(items.len());
    for item in items.iter() {
        let t = item.cast::<PyTuple>()?;
        let it = Item {
            key: t.get_item(0)?.extract()?,
            chunk_start: t.get_item(1)?.extract()?,
            chunk_stop: t.get_item(2)?.extract()?,
        };
        let out_start: Vec<u64> = t.get_item(3)?.extract()?;
        if it.chunk_start.len() != it.chunk_stop.len()
            || out_start.len() != out_shape.len()
            || it.chunk_start.len() != out_shape.len()
        {
            return Err(PyValueError::new_err(
                "selection dimensions do not match the output",
            ));
        }
        let shape = it
            .chunk_stop
            .iter()
            .zip(&it.chunk_start)
            .map(|(b, a)| b.checked_sub(*a))
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| PyValueError::new_err("a chunk selection ends before it starts"))?;
        regions.push(Region {
            start: out_start,
            shape,
        });
        parsed.push(it);
    }
    let slots = OutBuffer::slots(buffer, out_shape, itemsize, regions)?;
    Ok((parsed, slots))
}

/// Reads every chunk into its slot, [`spread`] as asked.
async fn read_all(
    backend: Backend,
    arrays: Arc<ArrayCache>,
    parsed: Vec<Item>,
    slots: Vec<Slot>,
    itemsize: usize,
    spread: Spread,
) -> PyResult<Vec<u8>> {
    let storage = ZarrCore::storage(&backend).await?;
    let chunks = parsed.into_iter().zip(slots).collect();
    each_chunk(chunks, spread, |(item, slot)| {
        let storage = storage.clone();
        let arrays = arrays.clone();
        async move { decode(&storage, &arrays, &item, &slot, itemsize).await }
    })
    .await
}

/// Reads chunks of a `hamt_rs` store into `out` (async).
///
/// `items` are `(key, chunk_start, chunk_stop, out_start)`; `out` is a writable C-contiguous
/// byte view of the output array of shape `out_shape` and element size `itemsize`. Chunks are
/// decoded on the runtime's threads, each written into its own box of `out` there, without
/// the GIL. Returns one status a chunk: 0 missing (filled with the fill value), 1 read, 2 not
/// handled here.
#[pyfunction]
pub(super) fn read_chunks<'py>(
    py: Python<'py>,
    core: &Bound<'py, ZarrCore>,
    items: &Bound<'py, PyList>,
    out: &Bound<'py, PyAny>,
    out_shape: Vec<u64>,
    itemsize: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let (parsed, slots) = parse(items, out, out_shape, itemsize)?;
    let (backend, arrays) = (core.get().backend.clone(), core.get().arrays.clone());
    let spread = spread(py, parsed.len(), true)?;
    spawn(
        py,
        read_all(backend, arrays, parsed, slots, itemsize, spread),
    )
}

/// [`read_chunks`] for synchronous callers (xarray's lazily indexed arrays, on dask's
/// threads): waits for the chunks with the GIL released, a batch of one decoded on the
/// calling thread, larger ones spread over the runtime's threads.
///
/// # Errors
/// `ValueError` for a store whose blocks come from a Python CAS object: only an asyncio
/// event loop can call it, so such stores are read through [`read_chunks`].
#[pyfunction]
pub(super) fn read_chunks_sync(
    py: Python<'_>,
    core: &Bound<'_, ZarrCore>,
    items: &Bound<'_, PyList>,
    out: &Bound<'_, PyAny>,
    out_shape: Vec<u64>,
    itemsize: usize,
) -> PyResult<Vec<u8>> {
    if core.get().python_blocks(py) {
        return Err(PyValueError::new_err(
            "a store on a Python CAS object is read from an event loop (read_chunks)",
        ));
    }
    let (parsed, slots) = parse(items, out, out_shape, itemsize)?;
    let (backend, arrays) = (core.get().backend.clone(), core.get().arrays.clone());
    let spread = spread(py, parsed.len(), false)?;
    block_on(py, move || {
        read_all(backend, arrays, parsed, slots, itemsize, spread)
    })
}
