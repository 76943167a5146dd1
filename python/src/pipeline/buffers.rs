//! The memory of zarr-python's arrays, held while the runtime's threads use it: the output
//! array of a read, which many chunk tasks write at once (each only its own box), and the
//! array of a write, which they read.

use std::ptr::NonNull;
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::boxes::{Region, byte_len, disjoint, for_each_row};

/// A buffer view of a numpy array, held so that the memory stays exported (a numpy array
/// cannot be resized or freed while a view of it is held), and its address.
struct Held {
    _buffer: PyBuffer<u8>,
    ptr: NonNull<[u8]>,
}

impl Held {
    fn new(buffer: PyBuffer<u8>, what: &str) -> PyResult<Self> {
        let ptr = buffer
            .as_slice_ptr()
            .filter(|_| buffer.is_c_contiguous())
            .ok_or_else(|| PyValueError::new_err(format!("{what} must be C-contiguous")))?;
        Ok(Self {
            _buffer: buffer,
            ptr,
        })
    }

    fn len(&self) -> usize {
        self.ptr.len()
    }
}

/// The output array of one `read_chunks` call.
pub(super) struct OutBuffer {
    held: Held,
    shape: Vec<u64>,
    itemsize: usize,
    /// Taken around every write when the boxes of the slots may overlap (zarr-python never
    /// asks for that, but nothing here relies on it).
    serial: Option<Mutex<()>>,
}

// SAFETY: the memory stays valid while `held` lives (see `Held`). Writes go only through
// `Slot::write`, each to its own box: the boxes are checked to be disjoint when the slots
// are made, and otherwise every write takes `serial`, so no two threads write one byte at
// once. zarr-python does not read or change the output array while it awaits the read.
#[allow(unsafe_code)]
unsafe impl Send for OutBuffer {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for OutBuffer {}

/// The right to write one box of an [`OutBuffer`].
pub(super) struct Slot {
    out: Arc<OutBuffer>,
    region: Region,
}

impl OutBuffer {
    /// Holds `buffer` (writable, C-contiguous, of `shape` elements of `itemsize` bytes) and
    /// gives one slot for each of `regions`.
    pub(super) fn slots(
        buffer: PyBuffer<u8>,
        shape: Vec<u64>,
        itemsize: usize,
        regions: Vec<Region>,
    ) -> PyResult<Vec<Slot>> {
        if buffer.readonly() {
            return Err(PyValueError::new_err("out must be a writable buffer"));
        }
        let held = Held::new(buffer, "out")?;
        if byte_len(&shape, itemsize) != Some(held.len()) {
            return Err(PyValueError::new_err(
                "out does not match out_shape and itemsize",
            ));
        }
        // A box past the end of a dimension would wrap into the next row, where it could
        // meet a box `disjoint` judged apart from it.
        if !regions.iter().all(|r| r.within(&shape)) {
            return Err(PyValueError::new_err(
                "chunk selection does not fit the output array",
            ));
        }
        let serial = (!disjoint(&regions)).then(|| Mutex::new(()));
        let out = Arc::new(OutBuffer {
            held,
            shape,
            itemsize,
            serial,
        });
        Ok(regions
            .into_iter()
            .map(|region| Slot {
                out: out.clone(),
                region,
            })
            .collect())
    }
}

impl Slot {
    /// The box this slot writes.
    pub(super) fn region(&self) -> &Region {
        &self.region
    }

    /// Copies `src`, the box's elements in C order, into the box.
    pub(super) fn write(&self, src: &[u8]) -> PyResult<()> {
        let out = &*self.out;
        if self.region.byte_len(out.itemsize) != Some(src.len()) {
            return Err(PyValueError::new_err(
                "a chunk's bytes do not fill its selection",
            ));
        }
        let mut rows = Vec::new();
        let mut inside = true;
        for_each_row(
            &out.shape,
            &self.region,
            out.itemsize,
            |offset, len| match offset.checked_add(len) {
                Some(end) if end <= out.held.len() => rows.push((offset, len)),
                _ => inside = false,
            },
        );
        if !inside {
            return Err(PyValueError::new_err(
                "chunk selection does not fit the output array",
            ));
        }
        let _serial = out
            .serial
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner));
        let base = out.held.ptr.as_ptr().cast::<u8>();
        let mut from = 0;
        for (offset, len) in rows {
            // SAFETY: `offset + len` is within the held buffer (checked above), `from + len`
            // within `src` (the rows of the box add up to its byte length, checked above), and
            // no other thread writes these bytes now (see `OutBuffer`'s `Sync`).
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::copy_nonoverlapping(src.as_ptr().add(from), base.add(offset), len);
            }
            from += len;
        }
        Ok(())
    }
}

/// The array being written by one `write_chunks` call, read by every chunk's task.
pub(super) struct SourceBuffer(Held);

// SAFETY: the memory stays valid while the view is held (see `Held`), and it is only ever
// read; zarr-python does not change the value while it awaits the write.
#[allow(unsafe_code)]
unsafe impl Send for SourceBuffer {}
// SAFETY: as above; shared references only read.
#[allow(unsafe_code)]
unsafe impl Sync for SourceBuffer {}

impl SourceBuffer {
    /// Holds `buffer` (C-contiguous, of `shape` elements of `itemsize` bytes).
    pub(super) fn new(buffer: PyBuffer<u8>, shape: &[u64], itemsize: usize) -> PyResult<Self> {
        let held = Held::new(buffer, "value")?;
        if byte_len(shape, itemsize) != Some(held.len()) {
            return Err(PyValueError::new_err(
                "value does not match value_shape and itemsize",
            ));
        }
        Ok(Self(held))
    }

    /// The bytes of the array.
    pub(super) fn bytes(&self) -> &[u8] {
        let len = self.0.len();
        // SAFETY: `ptr` covers `len` bytes that stay valid while the view is held, and nothing
        // writes through it here.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.0.ptr.as_ptr().cast::<u8>(), len)
        }
    }
}
