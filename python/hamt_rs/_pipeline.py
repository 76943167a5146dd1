"""``hamt_rs.CodecPipeline``: zarr-python's codec pipeline with the read path in Rust for
``hamt_rs`` stores, zarr-python's own ``BatchedCodecPipeline`` for everything else.

Turn it on with ``zarr.config.set({"codec_pipeline.path": "hamt_rs.CodecPipeline"})`` (or open
datasets with ``hamt_rs.open_dataset``). For chunks of a ``hamt_rs`` store selected with plain
slices, zarrs fetches and decodes them on the extension's threads and copies them straight
into the output array; any other store, selection or codec goes to the default pipeline.
Whole chunks written to a ``hamt_rs`` store are encoded and stored in Rust too (zarr-python's
default ``bytes`` + ``zstd`` chunks byte for byte as numcodecs writes them; other codecs by
zarrs, whose bytes may differ from numcodecs', so for those the root CID can differ from
py-hamt's: leave the pipeline off when writing for parity); partial chunks go to the default
pipeline. Works with zarr 3.0.9 (read
returns nothing) and 3.1+ (read returns one ``GetResult`` a chunk).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import zarr.registry
from zarr.abc.codec import CodecPipeline as _CodecPipeline
from zarr.core.codec_pipeline import BatchedCodecPipeline

from . import _native
from ._zarr import _RustStore

__all__ = ["CodecPipeline"]

_PRESENT = {"status": "present"}
_MISSING = {"status": "missing"}


def _raw_elements(dtype: Any) -> bool:
    """Whether the Rust path can move elements of ``dtype`` as raw bytes: fixed-size
    booleans, numbers and dates, without fields."""
    return dtype.kind in "biufcmM" and dtype.fields is None


def _tells_signed_zeros() -> bool:
    """Whether this zarr-python keeps a chunk of -0.0 under a fill value of 0.0 (newer versions
    compare a zero fill bit for bit; 3.0 compares numbers, so the chunk counts as empty)."""
    from zarr.core.buffer import cpu

    chunk = cpu.NDBuffer.from_numpy_array(np.array([-0.0], dtype="float32"))
    return not chunk.all_equal(np.float32(0.0))


_SIGNED_ZEROS = _tells_signed_zeros()


def _slices(selection: Any, ndim: int) -> tuple[list[int], list[int]] | None:
    """(starts, stops) of a tuple of ``ndim`` step-1 slices with known bounds, else None."""
    if not isinstance(selection, tuple) or len(selection) != ndim:
        return None
    starts, stops = [], []
    for s in selection:
        if not isinstance(s, slice) or s.step not in (None, 1) or s.start is None or s.stop is None:
            return None
        starts.append(int(s.start))
        stops.append(int(s.stop))
    return starts, stops


class CodecPipeline(_CodecPipeline):
    """A codec pipeline that reads ``hamt_rs`` stores in Rust and delegates the rest."""

    def __init__(self, inner: BatchedCodecPipeline) -> None:
        self._inner = inner

    @classmethod
    def from_codecs(cls, codecs: Iterable[Any], **kwargs: Any) -> "CodecPipeline":
        """The pipeline for ``codecs``."""
        return cls(BatchedCodecPipeline.from_codecs(codecs, **kwargs))

    def evolve_from_array_spec(self, array_spec: Any) -> "CodecPipeline":
        """Fills in codec parameters inferred from the array."""
        return type(self)(self._inner.evolve_from_array_spec(array_spec))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inner)

    def __getattr__(self, name: str) -> Any:
        # Anything newer zarr versions add to the interface goes to the default pipeline.
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    @property
    def supports_partial_decode(self) -> bool:
        """Whether the default pipeline decodes parts of chunks."""
        return self._inner.supports_partial_decode

    @property
    def supports_partial_encode(self) -> bool:
        """Whether the default pipeline encodes parts of chunks."""
        return self._inner.supports_partial_encode

    def validate(self, **kwargs: Any) -> None:
        """zarr's check of the codecs against an array: the default pipeline's."""
        return self._inner.validate(**kwargs)

    def compute_encoded_size(self, byte_length: int, array_spec: Any) -> int:
        """The encoded size of a chunk, as the default pipeline computes it."""
        return self._inner.compute_encoded_size(byte_length, array_spec)

    async def decode(self, chunk_bytes_and_specs: Any) -> Any:
        """Decodes encoded chunks (the default pipeline's decoding)."""
        return await self._inner.decode(chunk_bytes_and_specs)

    async def encode(self, chunk_arrays_and_specs: Any) -> Any:
        """Encodes chunks (the default pipeline's encoding)."""
        return await self._inner.encode(chunk_arrays_and_specs)

    async def write(self, batch_info: Any, value: Any, drop_axes: tuple[int, ...] = ()) -> None:
        """Writes a batch of chunks: those of hamt_rs stores encoded and stored in Rust, the rest by the default pipeline."""
        batch = list(batch_info)
        array = value.as_numpy_array() if not drop_axes else None
        ours: list[int] = []
        items: list[tuple] = []
        core = None
        if array is not None and _raw_elements(array.dtype) and array.ndim > 0:
            for i, (setter, spec, chunk_sel, out_sel, complete) in enumerate(batch):
                store = getattr(setter, "store", None)
                if not complete or not isinstance(store, _RustStore):
                    continue
                if core is None:
                    core = store._core
                elif store._core is not core:
                    continue
                ndim = len(spec.shape)
                chunk = _slices(chunk_sel, ndim)
                src = _slices(out_sel, array.ndim)
                if chunk is None or src is None or ndim != array.ndim:
                    continue
                if any(a != 0 or b != n for a, b, n in zip(chunk[0], chunk[1], spec.shape)):
                    continue
                if any(b - a != n or b > m for a, b, n, m in zip(src[0], src[1], spec.shape, array.shape)):
                    continue
                ours.append(i)
                # The chunk is cut out of the array in Rust, on the extension's threads; one
                # all fill value is erased unless the array keeps empty chunks.
                items.append((setter.path, src[0], not spec.config.write_empty_chunks))
        rest = list(range(len(batch)))
        if ours:
            source = np.ascontiguousarray(array)
            status = await _native.write_chunks(
                core,
                items,
                source.reshape(-1).view(np.uint8),
                list(source.shape),
                source.dtype.itemsize,
                source.dtype.kind,
                _SIGNED_ZEROS,
            )
            done = {i for i, state in zip(ours, status) if state != 2}
            rest = [i for i in rest if i not in done]
        if rest:
            await self._inner.write([batch[i] for i in rest], value, drop_axes)

    async def read(self, batch_info: Any, out: Any, drop_axes: tuple[int, ...] = ()) -> Any:
        """Reads a batch of chunks into ``out``: those of hamt_rs stores fetched and decoded in Rust, the rest by the default pipeline."""
        batch = list(batch_info)
        results: list[Any] = [_PRESENT] * len(batch)
        ours: list[int] = []
        items: list[tuple] = []
        core = None
        array = out.as_numpy_array() if not drop_axes else None
        usable = (
            array is not None
            and array.flags.c_contiguous
            and _raw_elements(array.dtype)
            and array.ndim > 0
        )
        if usable:
            for i, (getter, spec, chunk_sel, out_sel, _complete) in enumerate(batch):
                store = getattr(getter, "store", None)
                if not isinstance(store, _RustStore):
                    continue
                if core is None:
                    core = store._core
                elif store._core is not core:
                    continue
                ndim = len(spec.shape)
                chunk = _slices(chunk_sel, ndim)
                dest = _slices(out_sel, array.ndim)
                if chunk is None or dest is None or ndim != array.ndim:
                    continue
                ours.append(i)
                items.append((getter.path, chunk[0], chunk[1], dest[0]))
        rest = list(range(len(batch)))
        if ours:
            view = array.reshape(-1).view(np.uint8)
            status = await _native.read_chunks(
                core, items, view, list(array.shape), array.dtype.itemsize
            )
            handled = set()
            for i, state in zip(ours, status):
                if state == 2:
                    continue
                handled.add(i)
                results[i] = _PRESENT if state == 1 else _MISSING
            rest = [i for i in rest if i not in handled]
        if rest:
            got = await self._inner.read([batch[i] for i in rest], out, drop_axes)
            if got is not None:
                for i, r in zip(rest, got):
                    results[i] = r
        return tuple(results)


CodecPipeline.__module__ = "hamt_rs"
zarr.registry.register_pipeline(CodecPipeline)
