"""``to_hamt``: write an xarray dataset into a session, its dask chunks by parallel writers.

The coordinator writes the metadata and every in-memory variable through xarray's own Zarr
writer (so encodings, fill values, consolidation and the append and region checks are
xarray's), then each dask block is written by a task on a fork of the session, and the forks
are merged back in a tree of tasks (``split_every`` at a time); a task writes several blocks,
so that their flush and upload are shared. Every task is idempotent: a
retried one writes the same chunks, hence the same blocks, and its fork merges to the same
tree. The result is the tree a serial ``ds.to_zarr(session.store)`` writes.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping
from typing import Any, Optional

from ._versions import Fork, Repository, Session, merge_forks

__all__ = ["to_hamt"]


def _default_mode(mode: Optional[str], append_dim: Any, region: Any) -> str:
    if mode is not None:
        return mode
    if append_dim is not None:
        return "a"
    if region is not None:
        return "r+"
    return "w-"


def _collect_writes(
    dataset: Any,
    session: Session,
    *,
    mode: str,
    append_dim: Optional[Hashable],
    region: Any,
    encoding: Optional[Mapping],
    consolidated: Optional[bool],
    safe_chunks: bool,
) -> list[tuple[Any, str, tuple]]:
    """Writes the metadata and the in-memory variables through xarray's Zarr writer and
    returns the dask arrays it left to write: ``(source, array path, region)``."""
    from xarray.backends.common import ArrayWriter
    from xarray.backends.zarr import ZarrStore

    if mode == "r+":
        already_consolidated, consolidate_on_close = consolidated, False
    else:
        already_consolidated, consolidate_on_close = False, consolidated in (None, True)
    zstore = ZarrStore.open_group(
        store=session.store,
        mode=mode,
        consolidated=already_consolidated,
        consolidate_on_close=consolidate_on_close,
        append_dim=append_dim,
        write_region=region,
        safe_chunks=safe_chunks,
        zarr_format=3,
    )
    dataset = zstore._validate_and_autodetect_region(dataset)
    zstore._validate_encoding(encoding or {})
    writer = ArrayWriter()
    dataset.dump_to_store(zstore, writer=writer, encoding=encoding or {})
    writes = []
    for source, target, target_region in zip(writer.sources, writer.targets, writer.regions):
        if target_region is None:
            target_region = tuple(slice(0, n) for n in target.shape)
        writes.append((source, target.path, tuple(target_region)))
    return writes


def _block_tasks(writes: list[tuple[Any, str, tuple]], fork: Fork, blocks_per_task: int) -> list[Any]:
    """Tasks that each write ``blocks_per_task`` dask blocks into their regions on a fork of
    their own (one flush and one upload for all of them)."""
    import dask

    pieces = []
    for source, path, region in writes:
        starts = [
            list(itertools.accumulate(chunks, initial=(r.start or 0)))
            for chunks, r in zip(source.chunks, region)
        ]
        blocks = source.to_delayed()
        for index in itertools.product(*(range(n) for n in source.numblocks)):
            where = tuple(slice(starts[d][i], starts[d][i + 1]) for d, i in enumerate(index))
            pieces.append((path, where, blocks[index]))
    return [
        dask.delayed(_write_blocks, pure=True)(fork, *pieces[i : i + blocks_per_task])
        for i in range(0, len(pieces), blocks_per_task)
    ]


def _write_blocks(fork: Fork, *pieces: tuple[str, tuple, Any]) -> Fork:
    import zarr

    # A fork of its own: tasks of a threaded scheduler receive the very same object.
    mine = fork.copy()
    arrays: dict[str, Any] = {}
    for path, where, block in pieces:
        array = arrays.get(path)
        if array is None:
            array = arrays[path] = zarr.open_array(
                store=mine.store, path=path, mode="r+", zarr_format=3
            )
        array[where] = block
    return mine


def _tree_merge(repo: Repository, tasks: list[Any], split_every: int) -> Any:
    import dask

    level = list(tasks)
    while len(level) > 1:
        level = [
            dask.delayed(merge_forks, pure=True)(repo, *level[i : i + split_every])
            for i in range(0, len(level), split_every)
        ]
    return level[0]


def to_hamt(
    dataset: Any,
    session: Session,
    *,
    mode: Optional[str] = None,
    append_dim: Optional[Hashable] = None,
    region: Any = None,
    encoding: Optional[Mapping] = None,
    consolidated: Optional[bool] = None,
    safe_chunks: bool = True,
    split_every: int = 8,
    blocks_per_task: int = 32,
    compute_kwargs: Optional[Mapping[str, Any]] = None,
) -> Any:
    """Writes ``dataset`` into ``session`` (``mode``, ``append_dim``, ``region``,
    ``encoding`` and ``consolidated`` as in ``Dataset.to_zarr``): metadata and in-memory
    variables here, each dask block by a task on a fork of the session (on whatever dask
    scheduler is active, a ``dask.distributed`` cluster included), the forks merged back in
    a tree of tasks ``split_every`` wide and into the session. Each writing task takes
    ``blocks_per_task`` dask blocks, so that its fork's flush and upload (one pack on S3) is
    shared by all of them. Returns the session's new root; ``session.commit(message)`` makes
    it a version.

    Worker processes reach the store by its URL: it must be shared (S3, an IPFS node). Each
    task is idempotent, so dask's retries are harmless."""
    if split_every < 2:
        raise ValueError("split_every must be at least 2")
    if blocks_per_task < 1:
        raise ValueError("blocks_per_task must be at least 1")
    mode = _default_mode(mode, append_dim, region)
    writes = _collect_writes(
        dataset,
        session,
        mode=mode,
        append_dim=append_dim,
        region=region,
        encoding=encoding,
        consolidated=consolidated,
        safe_chunks=safe_chunks,
    )
    if not writes:
        return session.root
    fork = session.fork()
    tasks = _block_tasks(writes, fork, blocks_per_task)
    merged = _tree_merge(session.repository, tasks, split_every)
    import dask

    (done,) = dask.compute(merged, **(compute_kwargs or {}))
    return session.merge(done)
