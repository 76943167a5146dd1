"""xarray datasets of ``hamt_rs`` stores whose lazy arrays read their chunks in Rust.

``xr.open_zarr`` indexes each variable through a ``zarr.Array``: every dask task then hands
its selection to zarr-python's event loop thread, whose round trip costs more than fetching
and decoding the chunk. ``open_lazy`` opens the dataset with xarray's own Zarr backend (its
metadata, CF decoding, coordinates and dask chunking unchanged) but gives each variable an
array that sends plain-slice selections straight to the extension (``read_chunks_sync``),
with the GIL released, on the calling thread: dask's threads read and decode in parallel.
Other selections (fancy indexing, steps), other dtypes and stores on a Python CAS object go
through the ``zarr.Array`` as before.

Imported on first use (``hamt_rs.open_dataset``), so that ``import hamt_rs`` does not import
xarray.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

import numpy as np
from xarray import Variable
from xarray.backends.zarr import ZarrArrayWrapper, ZarrStore
from xarray.core import indexing

from . import _native
from ._pipeline import _raw_elements
from ._zarr import _RustStore

__all__ = ["RustArrayWrapper", "RustZarrStore", "open_lazy"]


def _plain(key: Any, shape: tuple[int, ...]) -> Optional[tuple[list[int], list[int], list[bool]]]:
    """(starts, stops, squeezed) of a basic selection of ints and step-1 slices, else None."""
    if not isinstance(key, tuple) or len(key) != len(shape):
        return None
    starts, stops, squeezed = [], [], []
    for k, n in zip(key, shape):
        if isinstance(k, (int, np.integer)):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                return None
            starts.append(i)
            stops.append(i + 1)
            squeezed.append(True)
        elif isinstance(k, slice):
            start, stop, step = k.indices(n)
            if step != 1:
                return None
            starts.append(start)
            stops.append(max(start, stop))
            squeezed.append(False)
        else:
            return None
    return starts, stops, squeezed


def _grid(array: Any) -> Optional[tuple[int, ...]]:
    """The shape of the array's stored chunks (shards when sharded), if regular."""
    grid = getattr(array.metadata, "chunk_grid", None)
    shape = getattr(grid, "chunk_shape", None)
    if shape is None:
        return None
    return tuple(int(n) for n in shape)


def _applies(array: Any) -> bool:
    """Whether ``array``'s plain-slice reads can go to Rust: a Zarr v3 array of raw
    native-order elements on a regular chunk grid."""
    dtype = np.dtype(array.dtype)
    grid = _grid(array)
    return (
        bool(array.shape)
        and _raw_elements(dtype)
        and dtype.isnative
        and getattr(array.metadata, "zarr_format", None) == 3
        and grid is not None
        and len(grid) == len(array.shape)
    )


def _read(array: Any, key: Any) -> Optional[np.ndarray]:
    """``array[key]`` (an array ``_applies`` to) read in Rust, or None when the selection
    or a chunk is not one this path reads."""
    plain = _plain(key, tuple(array.shape))
    if plain is None:
        return None
    dtype = np.dtype(array.dtype)
    grid = _grid(array)
    starts, stops, squeezed = plain
    out = np.empty([b - a for a, b in zip(starts, stops)], dtype=dtype)
    if out.size:
        prefix = f"{array.path}/" if array.path else ""
        ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(starts, stops, grid)]
        items = []
        for coords in itertools.product(*ranges):
            begin = [max(a, i * c) for a, i, c in zip(starts, coords, grid)]
            end = [min(b, (i + 1) * c) for b, i, c in zip(stops, coords, grid)]
            items.append(
                (
                    prefix + array.metadata.encode_chunk_key(coords),
                    [x - i * c for x, i, c in zip(begin, coords, grid)],
                    [x - i * c for x, i, c in zip(end, coords, grid)],
                    [x - a for x, a in zip(begin, starts)],
                )
            )
        status = _native.read_chunks_sync(
            array.store._core, items, out.reshape(-1).view(np.uint8), list(out.shape), dtype.itemsize
        )
        if any(s == 2 for s in status):
            return None
    return out[tuple(0 if s else slice(None) for s in squeezed)]


class RustArrayWrapper(ZarrArrayWrapper):
    """xarray's wrapper of a ``zarr.Array`` on a ``hamt_rs`` store, with plain-slice reads
    done in Rust."""

    __slots__ = ()

    def _getitem(self, key: Any) -> Any:
        got = _read(self._array, key)
        return super()._getitem(key) if got is None else got


class RustZarrStore(ZarrStore):
    """xarray's ``ZarrStore`` whose variables on a native ``hamt_rs`` store read through
    ``RustArrayWrapper``."""

    def open_store_variable(self, name: Any) -> Any:
        """The variable as xarray's Zarr backend opens it, its data read in Rust."""
        variable = super().open_store_variable(name)
        array = self.members[name]
        store = getattr(array, "store", None)
        if not isinstance(store, _RustStore) or store._core.python_blocks or not _applies(array):
            return variable
        data = indexing.LazilyIndexedArray(RustArrayWrapper(array))
        return Variable(variable.dims, data, variable.attrs, variable.encoding)


def open_lazy(
    store: Any,
    *,
    group: Optional[str] = None,
    chunks: Any = "auto",
    consolidated: Optional[bool] = None,
    decode_cf: bool = True,
    **kwargs: Any,
) -> Any:
    """``xr.open_zarr(store, …)`` for a ``hamt_rs`` store, its variables read in Rust.

    ``chunks="auto"`` gives dask arrays in the stored chunks, as ``xr.open_zarr`` does (none
    when dask is not installed); other keyword arguments go to ``xarray.open_dataset``."""
    import xarray as xr

    if chunks == "auto":
        try:
            import dask  # noqa: F401

            chunks = {}
        except ImportError:
            chunks = None
    if not decode_cf:
        for name in ("mask_and_scale", "decode_times", "concat_characters", "decode_coords"):
            kwargs.setdefault(name, False)
    opened = RustZarrStore.open_group(
        store, mode="r", group=group, consolidated=consolidated, zarr_format=3
    )
    return xr.open_dataset(store, engine="zarr", store=opened, chunks=chunks, **kwargs)
