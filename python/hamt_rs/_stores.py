"""Block stores under py-hamt's names: ``KuboCAS``, ``InMemoryCAS``, ``ContentAddressedStore``,
and ``open_store`` for every URL the Rust registry opens."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal, Optional
from urllib.parse import quote, urlsplit, urlunsplit

from ._native import Store

__all__ = ["ContentAddressedStore", "InMemoryCAS", "KuboCAS", "Store", "open_store"]


def open_store(url: str) -> Store:
    """Open the block store ``url`` names.

    ``sled:PATH[?cache=SIZE]`` (a local database, one process at a time), ``mem:``,
    ``kubo+http://HOST:PORT[?gateway=URL&read=rpc]`` (a Kubo node), ``s3://BUCKET/PREFIX
    [?endpoint=URL]`` (AWS variables give the credentials), ``ipfs+http://HOST:PORT`` /
    ``ipfs+https://HOST`` (trustless gateways, read-only) and ``ipfs-embedded:PATH``;
    ``hamt_rs.store_usage()`` lists what this build opens. An unknown scheme raises
    ``ValueError``.
    """
    return Store(url)


class ContentAddressedStore(ABC):
    """py-hamt's CAS interface: subclass it (or py-hamt's own) and pass an instance as a
    HAMT's ``cas``. Its coroutines run on the event loop that awaits the HAMT call. IDs must
    be CIDs (``multiformats.CID``) with BLAKE3, as Kubo gives py-hamt's ``KuboCAS``."""

    CodecInput = Literal["raw", "dag-cbor"]

    @abstractmethod
    async def save(self, data: bytes, codec: CodecInput) -> Any:
        """Store ``data`` and return its ID (a CID)."""

    @abstractmethod
    async def load(
        self,
        id: Any,
        offset: Optional[int] = None,
        length: Optional[int] = None,
        suffix: Optional[int] = None,
    ) -> bytes:
        """Return the bytes of ``id`` (or a slice, in Python slice semantics)."""


class InMemoryCAS(Store):
    """Blocks in this process's memory (``mem:``), addressed by CIDv1/BLAKE3 like Kubo's.

    Unlike py-hamt's ``InMemoryCAS``, whose IDs are bare digests, IDs here are CIDs, so
    roots are the same CIDs a Kubo node gives.
    """

    def __new__(cls) -> "InMemoryCAS":
        return super().__new__(cls, "mem:")

    def __init__(self) -> None:
        pass


def _kubo_url(
    rpc_base_url: str,
    gateway_base_urls: list[str],
    hasher: str,
    concurrency: int,
    auth: tuple[str, str] | None,
    read: str | None,
) -> str:
    parts = urlsplit(rpc_base_url.rstrip("/"))
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"rpc_base_url {rpc_base_url!r}: expected http:// or https://")
    netloc = parts.netloc
    if auth is not None:
        user, password = auth
        netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{netloc.rsplit('@', 1)[-1]}"
    query = [f"gateway={quote(g.rstrip('/'), safe=':/')}" for g in gateway_base_urls]
    query.append(f"concurrency={int(concurrency)}")
    query.append(f"hash={hasher}")
    if read is not None:
        query.append(f"read={read}")
    return urlunsplit((f"kubo+{parts.scheme}", netloc, parts.path, "&".join(query), ""))


class KuboCAS(Store):
    """A Kubo (IPFS) node, with py-hamt's parameters: writes through the RPC API
    (``/api/v0/add`` with BLAKE3 and CIDv1, values over 1 MiB as UnixFS files, as py-hamt),
    reads from the gateway(s), every block checked against its CID.

    ``read="rpc"`` (not in py-hamt) reads blocks through the RPC API instead of a gateway.
    Use it as py-hamt's: ``async with KuboCAS(...) as cas:`` closes it at the end.
    """

    def __new__(
        cls,
        hasher: str = "blake3",
        client: Any = None,
        rpc_base_url: str | None = None,
        gateway_base_url: str | None = None,
        concurrency: int = 32,
        *,
        gateway_base_urls: list[str] | None = None,
        verify_content: bool = False,
        client_factory: Any = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        pin_on_add: bool = False,
        chunker: str = "size-1048576",
        max_retries: int = 3,
        initial_delay: float = 1.0,
        backoff_factor: float = 2.0,
        read: str | None = None,
    ) -> "KuboCAS":
        if hasher not in ("blake3", "sha2-256"):
            raise ValueError(f"hasher {hasher!r}: expected 'blake3' or 'sha2-256'")
        if chunker != "size-1048576":
            raise NotImplementedError("hamt_rs writes with py-hamt's default chunker, size-1048576")
        if headers or client is not None or client_factory is not None:
            raise NotImplementedError(
                "hamt_rs talks to Kubo itself: pass auth=(user, password) instead of an httpx "
                "client or headers"
            )
        if pin_on_add:
            raise NotImplementedError("pin_on_add: pin the root after writing instead")
        rpc = rpc_base_url or "http://127.0.0.1:5001"
        gateways = list(gateway_base_urls or [])
        if gateway_base_url is not None:
            gateways.insert(0, gateway_base_url)
        if not gateways:
            gateways = ["http://127.0.0.1:8080"]
        self = super().__new__(cls, _kubo_url(rpc, gateways, hasher, concurrency, auth, read))
        self.rpc_base_url = rpc
        self.gateway_base_urls = gateways
        return self

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass
