//! `hamt_rs._native`: the extension module behind the `hamt_rs` Python package.
//!
//! The Python package (`python/hamt_rs/`) re-exports these classes under py-hamt's names and
//! adds the pieces that must subclass zarr-python's own classes (the `zarr.abc.store.Store`
//! wrappers and the codec pipeline), whose every method calls into this module.
//!
//! Each file has one job: [`runtime`] (the tokio runtime, awaitables, the GIL), [`errors`]
//! (Rust errors as Python exceptions), [`convert`] (CIDs and DAG-CBOR values), [`stores`] (block
//! stores from URLs and py-hamt's CAS classes), [`subtree`] (their CAR streams), [`pycas`] (a Python CAS as a Rust block store),
//! [`hamt`] (py-hamt's `HAMT`), [`order`] (py-hamt's listing order), [`zarr`] (the Rust side
//! of the Zarr stores), [`pipeline`] (chunks fetched and decoded by zarrs on every core, straight
//! into the output array, and whole chunks encoded and stored), [`versions`] (commits, refs and merges for sessions and forks), [`copy`] (a dataset's
//! whole DAG into another store, for `load_dataset`).

mod convert;
mod copy;
mod coroutine;
mod errors;
mod guarded;
mod hamt;
mod order;
mod pipeline;
mod pycas;
mod runtime;
mod stores;
mod subtree;
mod versions;
mod zarr;

use pyo3::prelude::*;

/// The module `hamt_rs._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    runtime::register(m)?;
    stores::register(m)?;
    hamt::register(m)?;
    zarr::register(m)?;
    pipeline::register(m)?;
    versions::register(m)?;
    copy::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
