//! `Repository`: a dataset's versions (commits, branches, tags) over a store, the three-way
//! merge of trees, and commits with compare-and-swap, for the Python sessions and forks
//! (`python/hamt_rs/_versions.py`) that parallel writers use.

use std::collections::BTreeMap;
use std::sync::Arc;

use hamt::{BlockStore, Cid, Config};
use hamt_versions::{CommitOptions, RefKind, Repo};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::convert::{cid_from_py, cid_to_py};
use crate::errors::{registry_error, versions_error};
use crate::runtime::block_on;
use crate::stores::{Store, store_of};

/// Adds `Repository` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Repository>()
}

/// A dataset's versions: commits and the refs (branches, tags) that name them, kept beside
/// the blocks of `store`. Refs live where the store's kind keeps them (the sled database
/// itself, objects under the S3 prefix with conditional puts, a local sled database for an
/// IPFS node) unless `refs` names a ref store URL (`mem:`, `sled:PATH`, `s3://…`).
///
/// Every method runs in Rust with the GIL released. A repository on a shared store pickles
/// to its URLs, so dask workers reopen it.
#[pyclass(module = "hamt_rs._native", name = "Repository", subclass, frozen)]
pub(crate) struct Repository {
    repo: Repo,
    store: Py<Store>,
    refs_url: Option<String>,
    max_bucket_size: usize,
}

fn cid_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Cid>> {
    obj.filter(|o| !o.is_none()).map(cid_from_py).transpose()
}

impl Repository {
    fn run<M, F, T>(&self, py: Python<'_>, make: M) -> PyResult<T>
    where
        M: FnOnce(Repo) -> F + Send,
        F: Future<Output = hamt_versions::Result<T>>,
        T: Send,
    {
        let repo = self.repo.clone();
        block_on(py, move || async move {
            make(repo).await.map_err(versions_error)
        })
    }

    /// The block store, for writes that must be durable before a root is handed on.
    fn blocks(&self) -> Arc<dyn BlockStore> {
        self.repo.store().clone()
    }
}

#[pymethods]
impl Repository {
    /// Versions of the datasets in `store` (a `hamt_rs.Store` or a store URL), with refs in
    /// the store's default ref store or the one `refs` names; merges build trees of
    /// `max_bucket_size` (py-hamt's default, 4).
    #[new]
    #[pyo3(signature = (store, refs = None, max_bucket_size = 4))]
    fn new(
        py: Python<'_>,
        store: &Bound<'_, PyAny>,
        refs: Option<String>,
        max_bucket_size: usize,
    ) -> PyResult<Self> {
        if max_bucket_size == 0 {
            return Err(PyValueError::new_err("max_bucket_size must be at least 1"));
        }
        let store = store_of(store)?;
        let borrowed = store.get();
        let ref_store = if let Some(url) = &borrowed.url {
            borrowed
                .with_opened(|opened| match opened {
                    Some(opened) => hamt_registry::open_refs(opened, url, refs.as_deref()),
                    None => Err(hamt_registry::Error::NoDefault {
                        reason: format!("the store {url} is closed"),
                    }),
                })
                .map_err(registry_error)?
        } else {
            let Some(refs_url) = refs.as_deref() else {
                return Err(PyValueError::new_err(
                    "a Python CAS has no place for refs: name a ref store (refs=\"sled:PATH\", \
                     \"s3://BUCKET/PREFIX\" or \"mem:\")",
                ));
            };
            let opened = block_on(py, || async {
                hamt_registry::open(refs_url).await.map_err(registry_error)
            })?;
            hamt_registry::open_refs(&opened, refs_url, None).map_err(registry_error)?
        };
        let repo = Repo::new(borrowed.blocks.clone(), ref_store)
            .with_config(Config::default().max_bucket_size(max_bucket_size));
        Ok(Self {
            repo,
            store,
            refs_url: refs,
            max_bucket_size,
        })
    }

    /// The block store.
    #[getter]
    fn store(&self, py: Python<'_>) -> Py<Store> {
        self.store.clone_ref(py)
    }

    /// The bucket size of the trees merges build.
    #[getter]
    fn max_bucket_size(&self) -> usize {
        self.max_bucket_size
    }

    /// The commit at the head of `branch`, or None when the branch does not exist yet.
    fn head<'py>(&self, py: Python<'py>, branch: String) -> PyResult<Option<Bound<'py, PyAny>>> {
        let head = self.run(py, |repo| async move { repo.head(&branch).await })?;
        head.map(|c| cid_to_py(py, &c)).transpose()
    }

    /// `(commit, root)` for a revision: `BRANCH`, `TAG`, a commit CID, `BRANCH~N`, or a bare
    /// HAMT root (then `commit` is None). `KeyError` when it names nothing.
    fn resolve<'py>(&self, py: Python<'py>, spec: String) -> PyResult<Bound<'py, PyTuple>> {
        let rev = self.run(py, |repo| async move { repo.resolve(&spec).await })?;
        let commit = rev.commit.map(|c| cid_to_py(py, &c)).transpose()?;
        PyTuple::new(py, [commit.into_pyobject(py)?, cid_to_py(py, &rev.root)?])
    }

    /// The dataset root of `commit`.
    fn root_of<'py>(
        &self,
        py: Python<'py>,
        commit: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cid = cid_from_py(commit)?;
        let info = self.run(py, |repo| async move { repo.commit_info(&cid).await })?;
        cid_to_py(py, &info.root)
    }

    /// The root of the empty tree (written to the store).
    fn empty_root<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let root = self.run(py, |repo| async move { repo.empty_root().await })?;
        cid_to_py(py, &root)
    }

    /// The three-way merge of trees: what `ours` and `theirs` each changed since `base`,
    /// combined; the result is the tree that holds the merged contents (as if built from
    /// scratch), and its blocks are durable when this returns. `ConflictError` (with `keys`)
    /// when both changed a key differently.
    fn merge<'py>(
        &self,
        py: Python<'py>,
        base: &Bound<'py, PyAny>,
        ours: &Bound<'py, PyAny>,
        theirs: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (base, ours, theirs) = (cid_from_py(base)?, cid_from_py(ours)?, cid_from_py(theirs)?);
        let blocks = self.blocks();
        let root = self.run(py, |repo| async move {
            let root = repo.merge_roots(base, ours, theirs).await?;
            blocks.sync().await?;
            Ok(root)
        })?;
        cid_to_py(py, &root)
    }

    /// Commits `root` to `branch` with a compare-and-swap from `expected` (the head the
    /// writer started from; None for a branch's first commit). When another writer moved the
    /// branch first, the changes since `expected` are merged onto the new head and committed
    /// after it (`ConflictError` when they conflict). Returns a dict: `commit`, `root` (the
    /// merged one after a rebase), `parent`, `rebased` (how many times).
    #[pyo3(signature = (branch, root, expected, message, author = None, metadata = None))]
    #[allow(clippy::too_many_arguments)]
    fn commit<'py>(
        &self,
        py: Python<'py>,
        branch: String,
        root: &Bound<'py, PyAny>,
        expected: Option<&Bound<'py, PyAny>>,
        message: String,
        author: Option<String>,
        metadata: Option<BTreeMap<String, String>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let root = cid_from_py(root)?;
        let expected = cid_arg(expected)?;
        let options = CommitOptions {
            author,
            metadata: metadata.unwrap_or_default(),
            time_ms: None,
        };
        let done = self.run(py, |repo| async move {
            repo.commit_rebasing(&branch, expected, root, &message, &options)
                .await
        })?;
        let out = PyDict::new(py);
        out.set_item("commit", cid_to_py(py, &done.commit)?)?;
        out.set_item("root", cid_to_py(py, &done.root)?)?;
        out.set_item(
            "parent",
            done.parent.map(|c| cid_to_py(py, &c)).transpose()?,
        )?;
        out.set_item("rebased", done.rebased)?;
        Ok(out)
    }

    /// The history from `revision` back along first parents, newest first, at most `limit`
    /// commits: dicts with `commit`, `root`, `parents`, `message`, `author`, `time_ms`,
    /// `metadata`.
    #[pyo3(signature = (revision, limit = None))]
    fn log<'py>(
        &self,
        py: Python<'py>,
        revision: String,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let entries = self.run(py, |repo| async move {
            let start = repo.resolve(&revision).await?;
            let Some(commit) = start.commit else {
                return Err(hamt_versions::Error::InvalidInput(format!(
                    "{revision:?} is a tree, not a commit: it has no history"
                )));
            };
            repo.log(commit, limit, false).await
        })?;
        let out = PyList::empty(py);
        for entry in entries {
            let d = PyDict::new(py);
            d.set_item("commit", cid_to_py(py, &entry.cid)?)?;
            d.set_item("root", cid_to_py(py, &entry.commit.root)?)?;
            let parents = entry
                .commit
                .parents
                .iter()
                .map(|c| cid_to_py(py, c))
                .collect::<PyResult<Vec<_>>>()?;
            d.set_item("parents", parents)?;
            d.set_item("message", &entry.commit.message)?;
            d.set_item("author", &entry.commit.author)?;
            d.set_item("time_ms", entry.commit.time_ms)?;
            d.set_item("metadata", &entry.commit.metadata)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Branch names and their heads.
    fn branches<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.refs(py, RefKind::Branch)
    }

    /// Tag names and their commits.
    fn tags<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.refs(py, RefKind::Tag)
    }

    /// Creates `name` at `commit`; `ConflictError` when it exists.
    fn create_branch(
        &self,
        py: Python<'_>,
        name: String,
        commit: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let cid = cid_from_py(commit)?;
        self.run(
            py,
            |repo| async move { repo.create_branch(&name, cid).await },
        )
    }

    /// Tags `commit` as `name`; tags never move (`ConflictError` when it exists).
    fn create_tag(&self, py: Python<'_>, name: String, commit: &Bound<'_, PyAny>) -> PyResult<()> {
        let cid = cid_from_py(commit)?;
        self.run(py, |repo| async move { repo.create_tag(&name, cid).await })
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let class = py.import("hamt_rs")?.getattr("Repository")?;
        // The store pickles to its URL, or says why it cannot.
        let args = (
            self.store.clone_ref(py),
            self.refs_url.clone(),
            self.max_bucket_size,
        );
        PyTuple::new(py, [class, args.into_pyobject(py)?.into_any()])
    }

    fn __repr__(&self) -> String {
        format!(
            "hamt_rs.Repository({:?})",
            self.store.get().url.as_deref().unwrap_or("<Python CAS>")
        )
    }
}

impl Repository {
    fn refs<'py>(&self, py: Python<'py>, kind: RefKind) -> PyResult<Bound<'py, PyDict>> {
        let refs = self.run(py, |repo| async move { repo.list(kind).await })?;
        let out = PyDict::new(py);
        for (name, cid) in refs {
            out.set_item(name.name(), cid_to_py(py, &cid)?)?;
        }
        Ok(out)
    }
}
