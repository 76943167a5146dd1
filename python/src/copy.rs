//! A dataset's whole DAG copied from one store into another in one walk: what
//! `hamt_rs.load_dataset` reads a dataset into memory with.

use hamt::dag::Walk;
use pyo3::prelude::*;

use crate::convert::cid_from_py;
use crate::errors::hamt_error;
use crate::runtime::spawn;
use crate::stores::store_of;

/// Adds the copy function to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(copy_dag, m)?)?;
    Ok(())
}

/// Copies every block reachable from `root` in `source` into `target` (async); returns the
/// number of blocks and of bytes copied. From a gateway that serves CARs each subtree comes
/// in one stream, every block checked against its CID as it arrives; from other stores the
/// walk goes level by level, many blocks at once. Memory beyond `target` is one batch.
#[pyfunction]
fn copy_dag<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    root: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let root = cid_from_py(root)?;
    let source = store_of(source)?.get().blocks.clone();
    let target = store_of(target)?.get().blocks.clone();
    spawn(py, async move {
        let mut walk = Walk::new(&*source, [root]);
        let (mut blocks, mut bytes) = (0u64, 0u64);
        while let Some(batch) = walk.next_batch().await.map_err(hamt_error)? {
            blocks += batch.len() as u64;
            bytes += batch.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
            target.put_many_keyed(batch).await.map_err(hamt_error)?;
        }
        Ok((blocks, bytes))
    })
}
