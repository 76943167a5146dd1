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
//! pipeline. Chunks of zarr-python's default codecs (`bytes`, `zstd`) are encoded and decoded
//! without zarrs' codec chain, on zstd contexts each thread keeps ([`zstd_chunks`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{StreamExt as _, stream};
use pyo3::prelude::*;

use crate::runtime::{Spread, parallel, task_locals};

mod arrays;
mod boxes;
mod buffers;
mod fill;
mod read;
mod write;
mod zstd_chunks;

pub(crate) use arrays::ArrayCache;

/// Chunks in flight at once.
const CONCURRENCY: usize = 32;

/// Outcome of one chunk, as the Python side reads it.
const MISSING: u8 = 0;
const PRESENT: u8 = 1;
const NOT_HANDLED: u8 = 2;

/// Adds the pipeline functions to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read::read_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(read::read_chunks_sync, m)?)?;
    m.add_function(wrap_pyfunction!(write::write_chunks, m)?)?;
    Ok(())
}

/// Where the chunks of a batch of `n` run: one where it is asked for, more spread over the
/// cores (see [`parallel`]); `in_loop` when the caller awaits them in an asyncio event loop,
/// whose task locals the tasks then carry.
fn spread(py: Python<'_>, n: usize, in_loop: bool) -> PyResult<Spread> {
    Ok(match (n > 1, in_loop) {
        (false, _) => Spread::Here,
        (true, true) => Spread::Tasks(Some(task_locals(py)?)),
        (true, false) => Spread::Tasks(None),
    })
}

/// Runs `job` on every item, [`CONCURRENCY`] at once, each as [`spread`] chose, and returns
/// their statuses in order.
///
/// Every job is waited for, even after one failed, so that none still touches the caller's
/// arrays once the call has returned; those not yet started then skip their chunk
/// (`NOT_HANDLED`). The first failure is the result.
async fn each_chunk<I, F, Fut>(items: Vec<I>, spread: Spread, job: F) -> PyResult<Vec<u8>>
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = PyResult<u8>> + Send + 'static,
{
    let failed = Arc::new(AtomicBool::new(false));
    let mut running = stream::iter(items)
        .map(|item| {
            let failed = failed.clone();
            let work = job(item);
            parallel(spread.clone(), async move {
                if failed.load(Ordering::Relaxed) {
                    return Ok(NOT_HANDLED);
                }
                work.await
            })
        })
        .buffered(CONCURRENCY);
    let mut status = Vec::new();
    let mut error = None;
    while let Some(next) = running.next().await {
        match next {
            Ok(state) => status.push(state),
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                error.get_or_insert(e);
            }
        }
    }
    error.map_or(Ok(status), Err)
}
