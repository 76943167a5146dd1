"""py-hamt's HAMT → sharded converter: ``convert_hamt_to_sharded`` (the conversion runs in
Rust, ``hamt_zarr::hamt_to_sharded``) and its command line, ``sharded_converter_cli``."""

from __future__ import annotations

import argparse
from typing import Any

from . import _native

__all__ = ["convert_hamt_to_sharded", "sharded_converter_cli"]


async def convert_hamt_to_sharded(cas: Any, hamt_root_cid: Any, chunks_per_shard: int) -> str:
    """The ``ZarrHAMTStore`` dataset at ``hamt_root_cid`` in ``cas`` written again as a
    ``ShardedZarrStore`` (``sharded_zarr_v2``) with ``chunks_per_shard`` chunk pointers a
    shard; returns the new root as text, the CID py-hamt's converter gives. Every chunk's
    block is reused: only shards and metadata are written."""
    return await _native.convert_hamt_to_sharded(cas, hamt_root_cid, chunks_per_shard)


async def sharded_converter_cli(argv: list[str] | None = None) -> str:
    """py-hamt's converter command line: ``HAMT_CID [--chunks-per-shard N] [--rpc-url URL]
    [--gateway-url URL]`` against a Kubo node; prints and returns the new root. Unlike
    py-hamt's, a failure is raised rather than printed, so a script sees it."""
    from ._stores import KuboCAS

    parser = argparse.ArgumentParser(description="Convert a Zarr HAMT store to a Sharded Zarr store.")
    parser.add_argument("hamt_cid", type=str, help="The root CID of the source Zarr HAMT store.")
    parser.add_argument("--chunks-per-shard", type=int, default=6250, help="Chunk CIDs per shard.")
    parser.add_argument("--rpc-url", type=str, default="http://127.0.0.1:5001", help="The Kubo RPC API.")
    parser.add_argument("--gateway-url", type=str, default="http://127.0.0.1:8080", help="The IPFS gateway.")
    args = parser.parse_args(argv)
    async with KuboCAS(rpc_base_url=args.rpc_url, gateway_base_url=args.gateway_url) as cas:
        root = await convert_hamt_to_sharded(cas, args.hamt_cid, args.chunks_per_shard)
    print(f"New ShardedZarrStore Root CID: {root}")
    return root
