"""Versions from Python: a ``Repository`` of commits, branches and tags over a store, writable
``Session``s on a branch, and ``Fork``s that parallel writers (dask workers in other
processes) write into and send back to be merged and committed.

A fork is nothing but the tree it started from and the tree it wrote: it pickles to the
store's URL and those two roots, after making its writes durable, so a retried task that
writes the same chunks again writes the same blocks and changes nothing. Merging is the
three-way merge of trees (``Repository.merge``); committing is one compare-and-swap of the
branch, rebased onto another writer's commit when the changes merge cleanly.
"""

from __future__ import annotations

from typing import Any, Optional

from . import _native
from ._native import HAMT, Store
from ._sync import run
from ._zarr import ZarrHAMTStore

__all__ = ["Fork", "Repository", "Session"]


class _Tree:
    """A writable tree on a store, opened lazily at ``root``: the ``ZarrHAMTStore`` writers
    use, and its root once what they wrote is flushed."""

    def __init__(self, store: Store, root: Any, max_bucket_size: int) -> None:
        self._store = store
        self._root = root
        self._max_bucket_size = max_bucket_size
        self._hamt: Optional[HAMT] = None
        self._zarr: Optional[ZarrHAMTStore] = None

    @property
    def zarr_store(self) -> ZarrHAMTStore:
        if self._zarr is None:
            self._hamt = HAMT(
                cas=self._store,
                root_node_id=self._root,
                values_are_bytes=True,
                max_bucket_size=self._max_bucket_size,
            )
            self._zarr = ZarrHAMTStore(self._hamt)
        return self._zarr

    def root(self, durable: bool = False) -> Any:
        """The tree's root, after flushing what was written (and syncing the store when
        ``durable``)."""
        hamt = self._hamt
        if hamt is not None:
            self._root = run(hamt.flush)
        if durable:
            run(self._store.sync)
        return self._root

    def reset(self, root: Any) -> None:
        self._root = root
        self._hamt = None
        self._zarr = None


class Repository(_native.Repository):
    """A dataset's versions: commits and the branches and tags that name them, beside the
    blocks of ``store`` (a ``hamt_rs.Store`` or a URL). Refs live where the store's kind keeps
    them (the sled database, objects under the S3 prefix written with conditional puts, a
    local database for an IPFS node) unless ``refs`` names a ref store URL.

    ::

        repo = hamt_rs.Repository("s3://bucket/dataset?endpoint=...")
        session = repo.writable_session("main")
        hamt_rs.to_hamt(ds, session, mode="w")   # dask workers write through forks
        session.commit("first version")
        xr.open_zarr(repo.readonly_store("main"))
    """

    def writable_session(self, branch: str = "main") -> "Session":
        """A session on ``branch`` at its head (on the empty tree for a new branch: the
        first commit makes it)."""
        return Session(self, branch)

    def readonly_store(self, revision: str = "main") -> ZarrHAMTStore:
        """A read-only Zarr store of the dataset at ``revision`` (``BRANCH``, ``TAG``, a
        commit CID, ``BRANCH~N`` or a bare root)."""
        _, root = self.resolve(str(revision))
        hamt = HAMT(
            cas=self.store,
            root_node_id=root,
            read_only=True,
            values_are_bytes=True,
            max_bucket_size=self.max_bucket_size,
        )
        return ZarrHAMTStore(hamt, read_only=True)


class Session:
    """A writer's view of a branch: the commit it started from and the tree it has now.

    ``store`` is a writable ``ZarrHAMTStore`` on the session's tree; ``fork()`` gives a
    picklable ``Fork`` for each parallel writer; ``merge(*forks)`` takes in what they wrote;
    ``commit(message)`` commits with compare-and-swap, rebasing onto a head another writer
    moved first when the changes merge cleanly (``ConflictError`` naming the keys when they
    do not). A session itself stays in its process: ship forks.

    ``merge`` and ``commit`` move the session to a new tree: take ``session.store`` again
    after them (a store taken before writes to the old tree).
    """

    def __init__(self, repo: Repository, branch: str) -> None:
        self._repo = repo
        self._branch = branch
        self._base = repo.head(branch)
        root = repo.root_of(self._base) if self._base is not None else repo.empty_root()
        self._base_root = root
        self._tree = _Tree(repo.store, root, repo.max_bucket_size)
        #: What the last ``commit()`` did: ``commit``, ``root``, ``parent``, ``rebased``.
        self.last_commit: Optional[dict[str, Any]] = None

    @property
    def repository(self) -> Repository:
        """The repository."""
        return self._repo

    @property
    def branch(self) -> str:
        """The branch commits go to."""
        return self._branch

    @property
    def base(self) -> Any:
        """The commit the session started from (or last committed); None on a new branch."""
        return self._base

    @property
    def store(self) -> ZarrHAMTStore:
        """A writable Zarr store on the session's tree."""
        return self._tree.zarr_store

    @property
    def root(self) -> Any:
        """The session's tree root, with what was written through ``store`` flushed."""
        return self._tree.root()

    @property
    def has_changes(self) -> bool:
        """True when the tree differs from the base commit's."""
        return self.root != self._base_root

    def fork(self) -> "Fork":
        """A fork of the tree as it is now, for a parallel writer; it pickles (to the store's
        URL and its roots) when the store is shared (S3, an IPFS node)."""
        root = self._tree.root(durable=True)
        return Fork(self._repo.store, self._repo.max_bucket_size, root, root)

    def merge(self, *forks: "Fork") -> Any:
        """Merges what each fork wrote into the session's tree (all or nothing: on a
        ``ConflictError`` the tree stays as it was); returns the new root."""
        root = self.root
        for fork in forks:
            root = self._repo.merge(fork.base, root, fork.root)
        self._tree.reset(root)
        return root

    def commit(
        self,
        message: str,
        author: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
    ) -> Any:
        """Commits the tree to the branch and returns the commit's CID; afterwards the
        commit is the session's base. ``rebased`` in ``last_commit`` says whether another
        writer's commit came first."""
        root = self._tree.root(durable=True)
        done = self._repo.commit(
            self._branch, root, self._base, message, author=author, metadata=metadata
        )
        self._base = done["commit"]
        self._base_root = done["root"]
        self._tree.reset(done["root"])
        self.last_commit = done
        return done["commit"]

    def __reduce__(self) -> Any:
        import pickle

        raise pickle.PicklingError(
            "a Session stays in its process: send session.fork() to workers and merge the "
            "forks they return"
        )


class Fork:
    """A parallel writer's tree: ``base`` is where it started, ``root`` what it wrote.
    ``store`` is a writable Zarr store on it. Pickling flushes and syncs the writes first,
    so a fork sent back from a worker names only durable blocks."""

    def __init__(self, store: Store, max_bucket_size: int, base: Any, root: Any) -> None:
        self._store = store
        self._max_bucket_size = max_bucket_size
        self.base = base
        self._tree = _Tree(store, root, max_bucket_size)

    @property
    def store(self) -> ZarrHAMTStore:
        """A writable Zarr store on the fork's tree."""
        return self._tree.zarr_store

    def copy(self) -> "Fork":
        """A fork of this fork's tree as it is now, with the same base: for one more writer
        in this process (forks in one process share nothing but the store)."""
        # The copy reads through the same store, so a flush is enough: its own pickling or
        # merge makes everything durable.
        return Fork(self._store, self._max_bucket_size, self.base, self._tree.root())

    def __dask_tokenize__(self) -> Any:
        return ("hamt_rs.Fork", self._store.url, str(self.base), str(self._tree._root))

    @property
    def root(self) -> Any:
        """The fork's tree root, with what was written flushed and durable (readable by any
        process that opens the store)."""
        return self._tree.root(durable=True)

    def __reduce__(self) -> Any:
        root = self._tree.root(durable=True)
        reason = _unshareable(self._store)
        if reason is not None:
            import pickle

            raise pickle.PicklingError(f"this fork cannot be sent to another process: {reason}")
        return (_reopen_fork, (self._store.url, self._max_bucket_size, str(self.base), str(root)))

    def __repr__(self) -> str:
        return f"hamt_rs.Fork(base={self.base}, root={self._tree._root})"


def _unshareable(store: Store) -> Optional[str]:
    """Why ``store`` cannot be reopened in another process (its own pickling says), or None."""
    import pickle

    try:
        pickle.dumps(store)
    except pickle.PicklingError as e:
        return str(e)
    return None


_open_stores: dict[str, Store] = {}


def _reopen_fork(url: str, max_bucket_size: int, base: str, root: str) -> Fork:
    """A fork unpickled in a worker; the worker's forks on one URL share one store."""
    from ._stores import open_store

    store = _open_stores.get(url)
    if store is None or store.closed:
        store = _open_stores[url] = open_store(url)
    return Fork(store, max_bucket_size, base, root)


def merge_forks(repo: Repository, *forks: Fork) -> Fork:
    """One fork holding what every fork in ``forks`` (all from one base) wrote."""
    if not forks:
        raise ValueError("nothing to merge")
    base = forks[0].base
    root = forks[0].root
    for fork in forks[1:]:
        if fork.base != base:
            raise ValueError(f"forks from different bases ({base} and {fork.base}) do not merge")
        root = repo.merge(base, root, fork.root)
    return Fork(repo.store, repo.max_bucket_size, base, root)
