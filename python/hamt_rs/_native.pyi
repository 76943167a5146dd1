"""Type stubs of the extension module ``hamt_rs._native`` (the Rust half of hamt_rs)."""

from collections.abc import AsyncIterator, Awaitable
from typing import Any, Literal, Optional, Sequence

from multiformats import CID

__version__: str

class HamtError(Exception):
    """Base class of every hamt_rs error."""

class NotFoundError(HamtError):
    """A block the tree needs is not in the store."""

    cid: str

class CorruptBlockError(HamtError):
    """A block's bytes do not hash to its CID."""

    cid: str

class GatewayContentUnverifiable(CorruptBlockError):
    """A block's CID uses a hash hamt_rs cannot compute, so its bytes cannot be verified."""

class DecryptionError(HamtError, ValueError):
    """A value did not authenticate: wrong encryption key or header, or altered data."""

class StoreError(HamtError):
    """The block store failed."""

    is_temporary: bool

class FormatError(HamtError):
    """A block is not what it should be: not a HAMT node, not a sharded manifest, bad metadata."""

class ReadOnlyError(HamtError):
    """A write to a HAMT or store opened read-only."""

class ConflictError(HamtError):
    """Writers changed the same keys differently, or a ref moved under a compare-and-swap."""

    keys: tuple[str, ...]
    arrays: tuple[str, ...]

class PanicError(HamtError):
    """An internal error (a Rust panic, caught)."""

class Capabilities:
    """What a store can do."""

    write: bool
    durable: bool
    shared: bool
    pin: bool
    check: bool
    import_car: bool

class Store:
    """A block store opened from a URL, or a Python CAS wrapped."""

    def __init__(self, url: str) -> None: ...
    @property
    def url(self) -> Optional[str]:
        """The URL it was opened from (None for a wrapped Python CAS)."""
    @property
    def scheme(self) -> str:
        """The URL scheme."""
    @property
    def closed(self) -> bool:
        """True once closed."""
    def capabilities(self) -> Capabilities:
        """What the store can do."""
    def sync(self) -> Awaitable[None]:
        """Makes every write durable."""
    def aclose(self) -> Awaitable[None]:
        """Syncs and lets go of the store."""
    def close(self) -> None:
        """``aclose()`` from synchronous code."""
    async def __aenter__(self) -> "Store": ...
    async def __aexit__(self, *args: Any) -> None: ...
    def __enter__(self) -> "Store": ...
    def __exit__(self, *args: Any) -> None: ...
    def save(self, data: bytes, codec: Literal["raw", "dag-cbor"] = "raw") -> Awaitable[CID]:
        """py-hamt's ``ContentAddressedStore.save``."""
    def load(
        self,
        id: CID | str,
        offset: Optional[int] = None,
        length: Optional[int] = None,
        suffix: Optional[int] = None,
    ) -> Awaitable[bytes]:
        """py-hamt's ``ContentAddressedStore.load``."""

class HAMT:
    """py-hamt's HAMT over the Rust tree."""

    def __init__(
        self,
        cas: Any,
        hash_fn: Any = None,
        root_node_id: CID | str | None = None,
        read_only: bool = False,
        max_bucket_size: int = 4,
        values_are_bytes: bool = False,
    ) -> None: ...
    @classmethod
    def build(
        cls,
        cas: Any,
        hash_fn: Any = None,
        root_node_id: CID | str | None = None,
        read_only: bool = False,
        max_bucket_size: int = 4,
        values_are_bytes: bool = False,
    ) -> Awaitable["HAMT"]:
        """Opens or creates a HAMT."""
    def set(self, key: str, val: Any) -> Awaitable[None]:
        """Maps ``key`` to ``val``."""
    def get(
        self,
        key: str,
        offset: Optional[int] = None,
        length: Optional[int] = None,
        suffix: Optional[int] = None,
    ) -> Awaitable[Any]:
        """The value of ``key``; ``KeyError`` when absent."""
    def get_pointer(self, key: str) -> Awaitable[CID]:
        """The CID of ``key``'s value block."""
    def delete(self, key: str) -> Awaitable[None]:
        """Removes ``key``; ``KeyError`` when absent."""
    def keys(self) -> AsyncIterator[str]:
        """Every key."""
    def len(self) -> Awaitable[int]:
        """The number of keys."""
    def make_read_only(self) -> Awaitable[None]:
        """Writes every change, makes it durable, switches to read-only."""
    def enable_write(self) -> Awaitable[None]:
        """Allows writes again."""
    def flush(self) -> Awaitable[CID]:
        """Writes every change and returns the root, staying writable."""
    def cache_size(self) -> Awaitable[int]:
        """Bytes held by the node cache: the store's, which every HAMT on the same store shares."""
    def cache_vacate(self) -> Awaitable[None]:
        """Empties the node cache: the store's, which every HAMT on the same store shares."""
    @property
    def root_node_id(self) -> Optional[CID]:
        """The root CID as of the last open, flush or make_read_only."""
    @property
    def read_only(self) -> bool:
        """True in read-only mode."""
    @property
    def values_are_bytes(self) -> bool:
        """True when values are stored as given bytes."""
    @property
    def max_bucket_size(self) -> int:
        """Most keys in a bucket before it splits."""
    @property
    def cas(self) -> Store:
        """The store the tree lives in."""

class ZarrCore:
    """The Rust half of a Zarr store."""

    def get(self, key: str, byte_range: Optional[tuple] = None) -> Awaitable[Optional[bytes]]: ...
    def get_many(self, requests: list[tuple[str, Optional[tuple]]]) -> Awaitable[list[Optional[bytes]]]: ...
    def set(self, key: str, value: bytes) -> Awaitable[None]: ...
    def set_pointer(self, key: str, pointer: CID | str) -> Awaitable[None]: ...
    def set_if_not_exists(self, key: str, value: bytes) -> Awaitable[None]: ...
    def delete(self, key: str) -> Awaitable[None]: ...
    def delete_dir(self, prefix: str) -> Awaitable[None]: ...
    def exists(self, key: str) -> Awaitable[bool]: ...
    def getsize(self, key: str) -> Awaitable[Optional[int]]: ...
    def list_prefix(self, prefix: str) -> Awaitable[list[str]]: ...
    def list_dir(self, prefix: str) -> Awaitable[list[str]]: ...
    def flush(self) -> Awaitable[CID]: ...
    @property
    def root(self) -> Optional[CID]: ...
    @property
    def manifest_version(self) -> Optional[str]:
        """``"sharded_zarr_v1"`` or ``"sharded_zarr_v2"`` for a sharded store, None for a HAMT."""
    @property
    def read_only(self) -> bool: ...
    @property
    def blocks(self) -> Store: ...
    @property
    def python_blocks(self) -> bool:
        """True when the blocks come from a Python CAS object (read only from an event loop)."""
    def capabilities(self) -> Capabilities: ...
    def reopen_args(self) -> tuple[str, str, Optional[str], dict]: ...

def hamt_core(hamt: HAMT, encryption_key: Optional[bytes] = None, header: Optional[bytes] = None) -> ZarrCore:
    """The core of a ZarrHAMTStore on ``hamt``."""

def sharded_core(
    cas: Any,
    read_only: bool,
    root_cid: Any = None,
    chunks_per_shard: Optional[int] = None,
    max_cache_memory_bytes: int = ...,
    shard_read_mode: str = "auto",
) -> Awaitable[ZarrCore]:
    """Opens or creates a sharded store."""

def convert_hamt_to_sharded(cas: Any, hamt_root_cid: CID | str, chunks_per_shard: int) -> Awaitable[str]:
    """py-hamt's converter: the HAMT dataset as a sharded_zarr_v2 root (the same CID), chunks reused."""

def detect_layout(cas: Any, root: CID | str) -> Awaitable[Literal["hamt", "sharded"]]:
    """The layout of the dataset at ``root``."""

def copy_dag(source: Any, root: CID | str, target: Any) -> Awaitable[tuple[int, int]]:
    """Copies every block reachable from ``root`` in ``source`` into ``target``; returns the
    blocks and bytes copied."""

def read_chunks(
    core: ZarrCore,
    items: list[tuple[str, Sequence[int], Sequence[int], Sequence[int]]],
    out: Any,
    out_shape: list[int],
    itemsize: int,
) -> Awaitable[list[int]]:
    """Reads chunks into ``out``; one status a chunk (0 missing, 1 read, 2 not handled)."""

def read_chunks_sync(
    core: ZarrCore,
    items: list[tuple[str, Sequence[int], Sequence[int], Sequence[int]]],
    out: Any,
    out_shape: list[int],
    itemsize: int,
) -> list[int]:
    """``read_chunks`` for synchronous callers, the GIL released while it waits; not for stores on a Python CAS object."""

def write_chunks(
    core: ZarrCore,
    items: list[tuple[str, Sequence[int], bool]],
    value: Any,
    value_shape: list[int],
    itemsize: int,
    kind: str,
    signed_zeros: bool,
) -> Awaitable[list[int]]:
    """Cuts whole chunks out of ``value`` (keys, box starts, whether a chunk all fill value is erased), encodes and stores them; one status a chunk (0 erased, 1 stored, 2 not handled). ``kind`` is the numpy dtype kind, which decides how elements compare with the fill value; ``signed_zeros``: -0.0 is not a 0.0 fill value (newer zarr-python)."""

class Repository:
    """A dataset's versions: commits and the branches and tags that name them."""

    def __init__(self, store: Store | str | Any, refs: Optional[str] = None, max_bucket_size: int = 4) -> None: ...
    @property
    def store(self) -> Store: ...
    @property
    def max_bucket_size(self) -> int: ...
    def head(self, branch: str) -> Optional[CID]: ...
    def resolve(self, spec: str) -> tuple[Optional[CID], CID]: ...
    def root_of(self, commit: CID | str) -> CID: ...
    def empty_root(self) -> CID: ...
    def merge(self, base: CID | str, ours: CID | str, theirs: CID | str) -> CID: ...
    def commit(
        self,
        branch: str,
        root: CID | str,
        expected: Optional[CID | str],
        message: str,
        author: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
    ) -> dict[str, Any]: ...
    def log(self, revision: str, limit: Optional[int] = None) -> list[dict[str, Any]]: ...
    def branches(self) -> dict[str, CID]: ...
    def tags(self) -> dict[str, CID]: ...
    def create_branch(self, name: str, commit: CID | str) -> None: ...
    def create_tag(self, name: str, commit: CID | str) -> None: ...

def store_usage() -> str:
    """The URL forms this build opens."""

def _panic_for_tests(in_future: bool) -> Any: ...
