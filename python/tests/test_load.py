"""`load_dataset`: a whole dataset read into memory after one walk of its blocks. Through
`hamt serve` the walk is one CAR stream (counted at the gateway: one request, where reading
chunk by chunk takes one or more per chunk); through the JavaScript IPFS node's
gateway, which serves no CARs, it falls back to fetching blocks; encrypted and sharded
datasets load too. Every result is compared whole with the dataset written."""

from __future__ import annotations

import math
import re
import urllib.request

import pytest
import xarray as xr

import hamt_rs
from hamt_rs import HAMT, ShardedZarrStore, SimpleEncryptedZarrHAMTStore, ZarrHAMTStore, open_store

from conftest import dataset, hamt_serve, required_env, run

KEY = bytes(range(32))
HEADER = b"load-test"


def write(store, ds, encoding, key=None):
    async def go():
        hamt = await HAMT.build(cas=store, values_are_bytes=True)
        zs = SimpleEncryptedZarrHAMTStore(hamt, False, key, HEADER) if key else ZarrHAMTStore(hamt)
        ds.to_zarr(zs, mode="w", zarr_format=3, encoding=encoding)
        await hamt.make_read_only()
        return hamt.root_node_id

    return run(go())


def requests_served(url: str) -> int:
    """Every request the gateway at `url` has answered, from its /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(int(n) for n in re.findall(r"^hamt_gateway_requests_total\{[^}]*\} (\d+)$", text, re.M))


def test_through_hamt_serve_the_whole_dataset_is_one_car_walk(scratch):
    ds, encoding = dataset()
    db = scratch / "db"
    store = open_store(f"sled:{db}")
    root = write(store, ds, encoding)
    store.close()
    chunks = sum(
        math.prod(math.ceil(n / c) for n, c in zip(v.shape, encoding[name]["chunks"]))
        for name, v in ds.data_vars.items()
        if "chunks" in encoding.get(name, {})
    )
    assert chunks > 4
    with hamt_serve(db) as url:
        gateway = f"ipfs+{url}"
        # (`/metrics` itself is not counted.)
        before = requests_served(url)
        xr.testing.assert_identical(hamt_rs.load_dataset(gateway, root), ds)
        walk = requests_served(url) - before
        # One CAR of the root's whole DAG (a retry at most).
        assert 1 <= walk <= 2, f"load_dataset took {walk} requests"
        # Reading chunk by chunk asks for at least one block per chunk.
        before = requests_served(url)
        xr.testing.assert_identical(hamt_rs.open_dataset(gateway, root).load(), ds)
        by_chunk = requests_served(url) - before
        assert by_chunk > max(chunks, 10 * walk), (walk, by_chunk)
        # A store object works as a URL does.
        xr.testing.assert_identical(hamt_rs.load_dataset(open_store(gateway), root), ds)


def test_through_a_gateway_without_cars_the_walk_fetches_blocks():
    cas = hamt_rs.KuboCAS(
        rpc_base_url=required_env("HAMT_TEST_KUBO_RPC"),
        gateway_base_url=required_env("HAMT_TEST_KUBO_GATEWAY"),
    )
    ds, encoding = dataset(times=12)
    root = write(cas, ds, encoding)
    xr.testing.assert_identical(hamt_rs.load_dataset(cas, root), ds)


def test_encrypted_and_sharded_datasets_load():
    ds, encoding = dataset(times=12)
    store = open_store("mem:")
    root = write(store, ds, encoding, key=KEY)
    xr.testing.assert_identical(hamt_rs.load_dataset(store, root, encryption_key=KEY, header=HEADER), ds)
    with pytest.raises(hamt_rs.DecryptionError):
        hamt_rs.load_dataset(store, root, encryption_key=bytes(32), header=HEADER)

    async def sharded():
        zs = await ShardedZarrStore.open(cas=store, read_only=False, chunks_per_shard=4)
        ds.to_zarr(zs, mode="w", zarr_format=3, encoding=encoding, group="0")
        return await zs.flush()

    sharded_root = run(sharded())
    xr.testing.assert_identical(hamt_rs.load_dataset(store, sharded_root, group="0"), ds)


def test_a_missing_block_is_a_clear_error():
    ds, encoding = dataset(times=6)
    root = write(open_store("mem:"), ds, encoding)
    with pytest.raises(hamt_rs.NotFoundError, match=str(root)):
        hamt_rs.load_dataset(open_store("mem:"), root)
