"""Zarr v3 stores under py-hamt's names, each a real ``zarr.abc.store.Store`` whose every
operation runs in Rust (the ``hamt_zarr`` crate's ``HamtStore`` and ``ShardedStore``)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal, Optional

import zarr.abc.store
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from . import _native
from ._native import HAMT, Store

__all__ = [
    "ShardReadMode",
    "ShardedZarrStore",
    "ShardedZarrV1DeprecationWarning",
    "SimpleEncryptedZarrHAMTStore",
    "ZarrHAMTStore",
    "open_zarr_store",
    "open_dataset",
    "load_dataset",
]


ShardReadMode = Literal["full", "sparse", "auto"]
ShardReadMode.__doc__ = """How a read-only ``ShardedZarrStore`` resolves a chunk pointer it has
not cached (py-hamt's type): decode the whole shard, fetch only the entry, or start sparse and
switch to full."""


class ShardedZarrV1DeprecationWarning(FutureWarning):
    """Warned when a store opens a ``sharded_zarr_v1`` root (py-hamt's deprecated layout), as
    py-hamt warns; hamt_rs reads v1 roots and creates only v2."""


_V1_DEPRECATION_MESSAGE = (
    "sharded_zarr_v1 is deprecated (py-hamt will remove it). Prefer sharded_zarr_v2 for new "
    "stores; pyramid Zarr readers should open the desired group explicitly, for example "
    "group='0'."
)


def _byte_request(byte_range: Any) -> Optional[tuple]:
    if byte_range is None:
        return None
    if isinstance(byte_range, RangeByteRequest):
        return ("range", byte_range.start, byte_range.end)
    if isinstance(byte_range, OffsetByteRequest):
        return ("offset", byte_range.offset)
    if isinstance(byte_range, SuffixByteRequest):
        return ("suffix", byte_range.suffix)
    raise TypeError(f"Unsupported ByteRequest type: {type(byte_range)}")


class _RustStore(zarr.abc.store.Store):
    """What the three stores share: every method is one call into ``_native.ZarrCore``."""

    _core: _native.ZarrCore
    _forced_read_only: Optional[bool] = None

    def _init_core(self, core: _native.ZarrCore, read_only: bool) -> None:
        zarr.abc.store.Store.__init__(self, read_only=read_only)
        self._core = core
        self._is_open = True

    @property
    def read_only(self) -> bool:  # type: ignore[override]
        """True when writes are refused (follows the HAMT's mode, as in py-hamt)."""
        if self._forced_read_only is not None:
            return self._forced_read_only
        return self._core.read_only

    def with_read_only(self, read_only: bool = False) -> "_RustStore":
        """This store, or a clone sharing its tree that reports ``read_only``."""
        if read_only == self.read_only:
            return self
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._forced_read_only = read_only
        zarr.abc.store.Store.__init__(clone, read_only=read_only)
        clone._is_open = True
        return clone

    def _check_writable(self) -> None:
        if self.read_only:
            raise ValueError("store was opened in read-only mode and does not support writing")

    def _identity(self) -> tuple:
        """What, beside the tree, makes two stores read the same values: their kind (and a
        key and header, for the encrypted one)."""
        return (type(self),)

    def __eq__(self, other: object) -> bool:
        """Equal when the same kind of store reads the same tree: one shared tree, or the
        same root (as py-hamt compares its stores' roots)."""
        if not isinstance(other, _RustStore) or self._identity() != other._identity():
            return False
        if self._core is other._core:
            return True
        return self.root is not None and self.root == other.root

    def __hash__(self) -> int:
        # Equal stores may hold different trees and a writable store's root changes, so
        # only what equality also requires goes in.
        return hash(self._identity())

    @property
    def root(self) -> Any:
        """The dataset's root CID (``multiformats.CID``) when nothing is unflushed, else None."""
        return self._core.root

    async def flush(self) -> Any:
        """Write what changed; returns the root CID. The store stays writable."""
        return await self._core.flush()

    def capabilities(self) -> _native.Capabilities:
        """The block store's capabilities (``shared``: other processes may open it)."""
        return self._core.capabilities()

    def __reduce__(self) -> tuple:
        layout, url, root, options = self._core.reopen_args()
        return (_reopen, (type(self).__name__, layout, url, root, options))

    # zarr.abc.store.Store

    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: Any = None,
    ) -> Optional[Buffer]:
        """Zarr's ``get``: the value of ``key`` (a byte range of it), or None."""
        data = await self._core.get(key, _byte_request(byte_range))
        return None if data is None else prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, Any]],
    ) -> list[Optional[Buffer]]:
        """Many values or ranges at once, fetched concurrently in Rust."""
        found = await self._core.get_many([(k, _byte_request(r)) for k, r in key_ranges])
        return [None if d is None else prototype.buffer.from_bytes(d) for d in found]

    async def exists(self, key: str) -> bool:
        """True when ``key`` is present."""
        return await self._core.exists(key)

    @property
    def supports_writes(self) -> bool:
        """True unless read-only."""
        return not self.read_only

    @property
    def supports_deletes(self) -> bool:
        """True unless read-only."""
        return not self.read_only

    @property
    def supports_partial_writes(self) -> bool:  # type: ignore[override]
        """False: values are written whole."""
        return False

    @property
    def supports_listing(self) -> bool:
        """True."""
        return True

    async def set(self, key: str, value: Buffer) -> None:
        """Stores ``value`` under ``key``."""
        self._check_writable()
        await self._core.set(key, value.to_bytes())

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        """Stores ``value`` unless ``key`` exists."""
        self._check_writable()
        await self._core.set_if_not_exists(key, value.to_bytes())

    async def set_partial_values(self, key_start_values: Iterable[tuple[str, int, Any]]) -> None:
        """Not supported (``supports_partial_writes`` is False)."""
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        """Removes ``key``; absent keys are fine."""
        self._check_writable()
        await self._core.delete(key)

    async def delete_dir(self, prefix: str) -> None:
        """Removes every key under ``prefix``."""
        self._check_writable()
        await self._core.delete_dir(prefix)

    async def list(self) -> AsyncIterator[str]:
        """Every key, in py-hamt's order."""
        for key in await self._core.list_prefix(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        """Every key starting with ``prefix``."""
        for key in await self._core.list_prefix(prefix):
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        """The names directly under ``prefix``."""
        for name in await self._core.list_dir(prefix):
            yield name

    async def getsize(self, key: str) -> int:
        """The size of ``key``'s value; ``FileNotFoundError`` when absent."""
        size = await self._core.getsize(key)
        if size is None:
            raise FileNotFoundError(key)
        return size


class ZarrHAMTStore(_RustStore):
    """py-hamt's ``ZarrHAMTStore``: a Zarr v3 store whose keys and values live in ``hamt``
    (built with ``values_are_bytes=True``; its ``read_only`` must match). The store and the
    HAMT share one tree: after writing, ``await hamt.make_read_only()`` gives the root in
    ``hamt.root_node_id``, the same CID py-hamt computes for the same dataset.
    """

    def __init__(self, hamt: HAMT, read_only: bool = False) -> None:
        if hamt.read_only != read_only:
            raise ValueError(
                f"the HAMT is {'read-only' if hamt.read_only else 'writable'} but read_only="
                f"{read_only}: they must match (as py-hamt requires)"
            )
        self.hamt = hamt
        self._init_core(_native.hamt_core(hamt), read_only)

    def __repr__(self) -> str:
        return f"hamt_rs.ZarrHAMTStore(root={self.root!s})"


class SimpleEncryptedZarrHAMTStore(ZarrHAMTStore):
    """py-hamt's ``SimpleEncryptedZarrHAMTStore`` (a ``ZarrHAMTStore``, as there): every value
    sealed with XChaCha20-Poly1305 under ``encryption_key`` (32 bytes), ``header`` as
    associated data. A wrong key or header raises ``hamt_rs.DecryptionError`` (a
    ``ValueError``, as py-hamt raises) on read.
    """

    def __init__(
        self, hamt: HAMT, read_only: bool, encryption_key: bytes, header: bytes
    ) -> None:
        if hamt.read_only != read_only:
            raise ValueError(
                f"the HAMT is {'read-only' if hamt.read_only else 'writable'} but read_only="
                f"{read_only}: they must match (as py-hamt requires)"
            )
        if not isinstance(encryption_key, (bytes, bytearray)) or len(encryption_key) != 32:
            raise ValueError("Encryption key must be exactly 32 bytes long.")
        self.hamt = hamt
        self.encryption_key = bytes(encryption_key)
        self.header = bytes(header)
        self._init_core(
            _native.hamt_core(hamt, bytes(encryption_key), bytes(header)), read_only
        )

    def _identity(self) -> tuple:
        return (type(self), self.encryption_key, self.header)

    def __repr__(self) -> str:
        return f"hamt_rs.SimpleEncryptedZarrHAMTStore(root={self.root!s})"


class ShardedZarrStore(_RustStore):
    """py-hamt's ``ShardedZarrStore`` (the ``sharded_zarr_v2`` layout): open one with
    ``await ShardedZarrStore.open(cas=..., read_only=..., root_cid=...)`` or create one with
    ``chunks_per_shard``. ``shard_read_mode`` is ``"auto"``, ``"full"`` or ``"sparse"``.
    """

    @classmethod
    async def open(  # type: ignore[override]
        cls,
        cas: Any,
        read_only: bool,
        root_cid: Optional[Any] = None,
        *,
        array_shape: Optional[tuple[int, ...]] = None,
        chunk_shape: Optional[tuple[int, ...]] = None,
        chunks_per_shard: Optional[int] = None,
        max_cache_memory_bytes: int = 100 * 1024 * 1024,
        manifest_version: Optional[str] = None,
        primary_array_path: str = "",
        shard_read_mode: str = "auto",
    ) -> "ShardedZarrStore":
        """Open the store at ``root_cid``, or create a new v2 store (``chunks_per_shard``).

        As in py-hamt, giving ``array_shape`` and ``chunk_shape`` without
        ``manifest_version="sharded_zarr_v2"`` asks for the deprecated v1 layout, which hamt_rs
        does not create (NotImplementedError). With v2 they are accepted and not needed: an
        array's index is made when its ``zarr.json`` is written."""
        if root_cid is None and not read_only:
            v1_by_shape = manifest_version is None and (
                array_shape is not None or chunk_shape is not None
            )
            if manifest_version not in (None, "sharded_zarr_v2") or v1_by_shape:
                raise NotImplementedError(
                    "hamt_rs creates sharded_zarr_v2 stores only (v1 is py-hamt's deprecated "
                    "layout, which it makes when array_shape and chunk_shape are given without "
                    "manifest_version='sharded_zarr_v2'; v1 roots open read-only)"
                )
            if chunks_per_shard is None:
                raise ValueError("chunks_per_shard must be given for a new store")
        core = await _native.sharded_core(
            cas,
            read_only,
            root_cid,
            chunks_per_shard,
            max_cache_memory_bytes,
            shard_read_mode,
        )
        if core.manifest_version == "sharded_zarr_v1":
            warnings.warn(_V1_DEPRECATION_MESSAGE, ShardedZarrV1DeprecationWarning, stacklevel=2)
        store = cls.__new__(cls)
        store._init_core(core, core.read_only)
        store.cas = cas
        store.shard_read_mode = shard_read_mode
        return store

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("use `await ShardedZarrStore.open(...)`")

    async def flush(self) -> str:  # type: ignore[override]
        """Write what changed; returns the root CID as text, as py-hamt's does."""
        return str(await self._core.flush())

    async def set_pointer(self, key: str, pointer: Any) -> None:
        """Links ``key`` to the existing block ``pointer`` (a CID, or its text) without
        storing anything: grafts a chunk from another dataset, or registers the array of a
        metadata document. ``PermissionError`` when read-only, as in py-hamt."""
        if self.read_only:
            raise PermissionError("Cannot write to a read-only store.")
        await self._core.set_pointer(key, pointer)

    def __repr__(self) -> str:
        return f"hamt_rs.ShardedZarrStore(root={self.root!s})"


def _reopen(
    class_name: str, layout: str, url: str, root: Optional[str], options: dict
) -> _RustStore:
    """Unpickles a store: reopens it read-only from its URL and root."""
    from ._sync import run

    store = _native.Store(url)
    if layout == "sharded":
        return run(
            lambda: ShardedZarrStore.open(
                store,
                True,
                root,
                max_cache_memory_bytes=options.get("max_cache_memory_bytes", 100 << 20),
                shard_read_mode=options.get("shard_read_mode", "auto"),
            )
        )
    hamt = run(
        lambda: HAMT.build(
            cas=store,
            root_node_id=root,
            read_only=True,
            values_are_bytes=True,
            max_bucket_size=options.get("max_bucket_size", 4),
        )
    )
    if "encryption_key" in options:
        return SimpleEncryptedZarrHAMTStore(hamt, True, options["encryption_key"], options["header"])
    return ZarrHAMTStore(hamt, read_only=True)


def _store(url: Any) -> Any:
    """``url`` opened as a store, or ``url`` itself when it is already a store object."""
    return _native.Store(url) if isinstance(url, str) else url


async def open_zarr_store(
    url: Any,
    root: Any,
    *,
    encryption_key: Optional[bytes] = None,
    header: bytes = b"",
    read_only: bool = True,
) -> _RustStore:
    """The Zarr store of the dataset at ``root`` in the block store ``url`` (a URL or a store
    object), its layout (HAMT or sharded) read from the root block. With ``encryption_key``
    the HAMT layout is opened as a ``SimpleEncryptedZarrHAMTStore``."""
    store = _store(url)
    layout = await _native.detect_layout(store, root)
    if layout == "sharded":
        if encryption_key is not None:
            raise ValueError("sharded datasets are not encrypted by py-hamt's layout")
        return await ShardedZarrStore.open(store, read_only, root)
    hamt = await HAMT.build(cas=store, root_node_id=root, read_only=read_only, values_are_bytes=True)
    if encryption_key is not None:
        return SimpleEncryptedZarrHAMTStore(hamt, read_only, encryption_key, header)
    return ZarrHAMTStore(hamt, read_only=read_only)


def open_dataset(
    url: Any,
    root: Any,
    *,
    encryption_key: Optional[bytes] = None,
    header: bytes = b"",
    rust_pipeline: bool = True,
    **open_zarr_kwargs: Any,
) -> Any:
    """Open the dataset at ``root`` in ``url`` as ``xarray.open_zarr`` does (dask arrays in
    the stored chunks when dask is installed): layout detected, encryption key optional.

    Unless ``rust_pipeline=False``, chunks are fetched and decoded in Rust: each variable's
    plain-slice reads (every dask task of ``.load()`` or ``.compute()``) go straight to the
    extension, skipping zarr-python's per-call event loop round trip, and anything else goes
    through ``hamt_rs.CodecPipeline``. Other keyword arguments go to ``xarray.open_zarr``
    (with the Rust reads: ``group``, ``chunks``, ``consolidated``, ``decode_cf`` and those of
    ``xarray.open_dataset``)."""
    import xarray as xr

    from ._sync import run

    store = run(lambda: open_zarr_store(url, root, encryption_key=encryption_key, header=header))
    if not rust_pipeline:
        open_zarr_kwargs.setdefault("zarr_format", 3)
        return xr.open_zarr(store, **open_zarr_kwargs)
    from ._xarray_read import open_lazy

    open_zarr_kwargs.pop("zarr_format", None)
    with zarr.config.set({"codec_pipeline.path": "hamt_rs.CodecPipeline"}):
        return open_lazy(store, **open_zarr_kwargs)


def load_dataset(
    url: Any,
    root: Any,
    *,
    encryption_key: Optional[bytes] = None,
    header: bytes = b"",
    **open_zarr_kwargs: Any,
) -> Any:
    """Read the whole dataset at ``root`` in ``url`` (a URL or a store object) into memory
    and return it loaded: an ``xarray.Dataset`` whose variables hold NumPy arrays.

    Every block is fetched first, in one walk of the dataset's DAG: from a trustless gateway
    (``ipfs+http(s)://``, or a ``kubo+`` URL with a gateway) each subtree comes as one CAR
    stream, every block checked against its CID as it arrives, so a whole read costs a few
    round trips instead of one or more per chunk; from other stores the walk fetches many
    blocks at once. Then every chunk is decoded in Rust from memory. The dataset's encoded
    blocks are held in memory until it is decoded: for parts of a dataset, or one larger
    than memory, use ``open_dataset``. Other keyword arguments go to ``xarray.open_zarr``."""
    from ._stores import InMemoryCAS
    from ._sync import run

    source = _store(url)
    local = InMemoryCAS()
    run(lambda: _native.copy_dag(source, root, local))
    dataset = open_dataset(local, root, encryption_key=encryption_key, header=header, **open_zarr_kwargs)
    return dataset.load()
