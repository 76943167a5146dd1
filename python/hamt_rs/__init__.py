"""hamt_rs: py-hamt's HAMT, stores and Zarr stores with the work done in Rust.

Migrating from py-hamt 3.6 is an import change::

    from hamt_rs import HAMT, KuboCAS, ZarrHAMTStore

    async with KuboCAS(rpc_base_url=rpc, gateway_base_url=gateway) as cas:
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        ds.to_zarr(store=ZarrHAMTStore(hamt), mode="w", zarr_format=3)
        await hamt.make_read_only()
        print(hamt.root_node_id)  # the CID py-hamt gives for the same dataset

Readers open a dataset in one call, layout detected and chunks decoded in Rust::

    ds = hamt_rs.open_dataset("kubo+http://127.0.0.1:5001", root)

or keep ``xr.open_zarr(store)`` and turn the Rust decoding on with
``zarr.config.set({"codec_pipeline.path": "hamt_rs.CodecPipeline"})``.

Versions and parallel writers: a ``Repository`` keeps commits, branches and tags beside the
blocks; ``to_hamt(ds, session)`` writes a dask-backed dataset from many workers through forks
of a session and merges them, and ``session.commit(message)`` makes it a version::

    repo = hamt_rs.Repository("s3://bucket/era5?endpoint=http://127.0.0.1:9000")
    session = repo.writable_session("main")
    hamt_rs.to_hamt(ds, session, mode="w")
    session.commit("ERA5 2024")
"""

from ._native import (
    HAMT,
    Capabilities,
    ConflictError,
    CorruptBlockError,
    DecryptionError,
    FormatError,
    GatewayContentUnverifiable,
    HamtError,
    NotFoundError,
    PanicError,
    ReadOnlyError,
    Store,
    StoreError,
    __version__,
    store_usage,
)
from ._convert import convert_hamt_to_sharded, sharded_converter_cli
from ._pipeline import CodecPipeline
from ._stores import ContentAddressedStore, InMemoryCAS, KuboCAS, open_store
from ._versions import Fork, Repository, Session
from ._xarray import to_hamt
from ._zarr import (
    ShardReadMode,
    ShardedZarrStore,
    ShardedZarrV1DeprecationWarning,
    SimpleEncryptedZarrHAMTStore,
    ZarrHAMTStore,
    load_dataset,
    open_dataset,
    open_zarr_store,
)

GatewayContentMismatch = CorruptBlockError
"""py-hamt's name for a block whose bytes do not hash to its CID: here every store checks
every block it reads (py-hamt's ``verify_content``, always on) and raises this,
``hamt_rs.CorruptBlockError``."""


def blake3_hashfn(input_bytes: bytes) -> bytes:
    """py-hamt's key hash: the 32-byte BLAKE3 digest of ``input_bytes``. hamt_rs computes it
    in Rust; this exists so code that passes ``hash_fn=blake3_hashfn`` keeps working."""
    import blake3  # type: ignore[import-not-found]

    return blake3.blake3(input_bytes).digest()


__all__ = [
    "HAMT",
    "Capabilities",
    "CodecPipeline",
    "ConflictError",
    "ContentAddressedStore",
    "CorruptBlockError",
    "DecryptionError",
    "Fork",
    "FormatError",
    "GatewayContentMismatch",
    "GatewayContentUnverifiable",
    "HamtError",
    "InMemoryCAS",
    "KuboCAS",
    "NotFoundError",
    "PanicError",
    "ReadOnlyError",
    "Repository",
    "Session",
    "ShardReadMode",
    "ShardedZarrStore",
    "ShardedZarrV1DeprecationWarning",
    "SimpleEncryptedZarrHAMTStore",
    "Store",
    "StoreError",
    "ZarrHAMTStore",
    "__version__",
    "blake3_hashfn",
    "convert_hamt_to_sharded",
    "load_dataset",
    "open_dataset",
    "open_store",
    "open_zarr_store",
    "sharded_converter_cli",
    "store_usage",
    "to_hamt",
]
