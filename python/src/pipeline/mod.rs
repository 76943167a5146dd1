//! Chunks fetched and decoded in Rust, straight into zarr-python's output array, and whole
//! chunks encoded and stored in Rust: the native half of `hamt_rs.CodecPipeline`.
//!
//! zarr-python hands the pipeline chunk keys with slice selections. For keys of a `hamt_rs`
//! store, the array's `zarr.json` is read through the same store, a `zarrs` array is opened
//! on the zarr crate's `HamtStore`/`ShardedStore` (their zarrs storage traits)
//! ([`arrays`]), and every chunk is a task of its own on the runtime, without the GIL: a read
//! fetches, decodes and copies its selection into its box of the output array
//! ([`read`], [`buffers`]); a write cuts its chunk out of the array, encodes and stores it
//! ([`write`]). What zarrs cannot open here (a codec this build lacks, a variable-length
//! type) is reported back, and the Python side hands those chunks to zarr-python's own
//! pipeline.

use pyo3::prelude::*;

mod arrays;
mod boxes;
mod buffers;
mod read;
mod write;

/// Chunks in flight at once.
const CONCURRENCY: usize = 32;

/// Outcome of one chunk, as the Python side reads it.
const MISSING: u8 = 0;
const PRESENT: u8 = 1;
const NOT_HANDLED: u8 = 2;

/// Adds the pipeline functions to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read::read_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(write::write_chunks, m)?)?;
    Ok(())
}
