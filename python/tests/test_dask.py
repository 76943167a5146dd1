"""dask: `xr.open_zarr(store, chunks={})` and `hamt_rs.open_dataset` computed with the
threaded scheduler and with a LocalCluster of two worker processes reading through pickled
stores, on the S3 server and on `hamt serve`'s gateway; sled, which one process holds alone,
refuses to be pickled and says so."""

from __future__ import annotations

import os
import pickle

import pytest
import xarray as xr
import zarr

import hamt_rs
from hamt_rs import open_store

from conftest import cluster_client, dataset, hamt_serve, required_env
from conftest import hamt_reader as read_only_store
from conftest import write_hamt as write

RUST = {"codec_pipeline.path": "hamt_rs.CodecPipeline"}


@pytest.fixture(scope="module")
def client():
    yield from cluster_client(2)


def test_threaded_scheduler(scratch):
    ds, encoding = dataset()
    store = open_store(f"sled:{scratch / 'db'}")
    root = write(store, ds, encoding)
    for config in ({}, RUST):
        with zarr.config.set(config):
            lazy = xr.open_zarr(read_only_store(store, root), chunks={})
            assert lazy.temp.data.npartitions > 1
            xr.testing.assert_identical(lazy.compute(scheduler="threads"), ds)
    # Variables read straight in Rust, from dask's threads at once.
    lazy = hamt_rs.open_dataset(store, root)
    assert lazy.temp.data.npartitions > 1
    xr.testing.assert_identical(lazy.compute(scheduler="threads"), ds)
    # Worker processes could not open this database: pickling says so.
    with pytest.raises(pickle.PicklingError, match="one process at a time"):
        pickle.dumps(read_only_store(store, root))
    store.close()


def test_worker_processes_on_s3(client):
    endpoint = required_env("HAMT_TEST_S3_ENDPOINT")
    bucket = required_env("HAMT_TEST_S3_BUCKET")
    ds, encoding = dataset()
    url = f"s3://{bucket}/dask-{os.getpid()}?endpoint={endpoint}"
    root = write(open_store(url), ds, encoding)
    for config in ({}, RUST):
        with zarr.config.set(config):
            lazy = xr.open_zarr(read_only_store(open_store(url), root), chunks={})
            pids = set(client.run(os.getpid).values())
            assert len(pids) == 2 and os.getpid() not in pids
            xr.testing.assert_identical(client.compute(lazy).result(), ds)


def test_worker_processes_on_the_hamt_serve_gateway(client, scratch):
    ds, encoding = dataset()
    db = scratch / "db"
    store = open_store(f"sled:{db}")
    root = write(store, ds, encoding)
    store.close()  # `hamt serve` opens the database next
    with hamt_serve(db) as url:
        # Only the gateway is used for reads; the RPC address is never contacted.
        cas = hamt_rs.KuboCAS(rpc_base_url="http://127.0.0.1:9", gateway_base_url=url)
        assert cas.capabilities().shared
        with zarr.config.set(RUST):
            lazy = xr.open_zarr(read_only_store(cas, root), chunks={})
            xr.testing.assert_identical(client.compute(lazy).result(), ds)
        # The registry's read-only gateway store, by URL: the workers reopen it from the pickle.
        gateway = open_store(url.replace("http://", "ipfs+http://"))
        assert gateway.capabilities().shared and not gateway.capabilities().write
        with zarr.config.set(RUST):
            lazy = xr.open_zarr(read_only_store(gateway, root), chunks={})
            xr.testing.assert_identical(client.compute(lazy).result(), ds)
        # Variables read straight in Rust pickle with their store and read so in the workers.
        lazy = hamt_rs.open_dataset(gateway, root)
        xr.testing.assert_identical(client.compute(lazy).result(), ds)
