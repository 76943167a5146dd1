"""Shared fixtures of hamt_rs's tests: the services `cargo xtask test` starts (a test that needs
one fails, not skips, without it), a realistic small dataset, and the CID-addressed CAS that
gives py-hamt the CIDs a Kubo node would (CIDv1, BLAKE3, dag-cbor nodes, raw values)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import socket
import subprocess
import tempfile
import time
import uuid

import numpy as np
import pandas as pd
import pytest
import xarray as xr


def pytest_configure(config):
    config.addinivalue_line("markers", "pyhamt: needs py-hamt 3.6 (only in the zarr 3.0.9 venv)")


def required_env(name: str) -> str:
    """The value of a variable `cargo xtask test` sets; fails the test without it."""
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests with `cargo xtask test hamt-python`")
    return value


@pytest.fixture
def scratch(tmp_path: pathlib.Path) -> pathlib.Path:
    """A fresh directory for databases (under the xtask scratch directory when set)."""
    base = os.environ.get("HAMT_TEST_SCRATCH")
    if not base:
        return tmp_path
    path = pathlib.Path(base) / uuid.uuid4().hex
    path.mkdir(parents=True)
    return path


def cluster_client(n_workers: int):
    """A dask client on a LocalCluster of `n_workers` worker processes on loopback, one thread
    each (a generator for module fixtures)."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(
        processes=True,
        n_workers=n_workers,
        threads_per_worker=1,
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster, Client(cluster) as client:
        yield client


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def hamt_serve(db: pathlib.Path):
    """`hamt serve` over the sled database `db` on a free loopback port, for the length of
    the block; yields its URL. The database must be closed in this process first."""
    hamt_bin = required_env("HAMT_TEST_HAMT_BIN")
    port = free_port()
    # A file, not a pipe: a pipe nobody reads would stall the server once full.
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [hamt_bin, "--store", f"sled:{db}", "serve", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"hamt serve exited: {log.read().decode(errors='replace')}")
                assert time.monotonic() < deadline, "hamt serve did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def run(coro):
    """Runs a coroutine on a fresh event loop."""
    return asyncio.run(coro)


def write_hamt(store, ds: xr.Dataset, encoding: dict, **to_zarr) -> object:
    """Writes ``ds`` into a new HAMT on ``store`` through ``ZarrHAMTStore`` (other keyword
    arguments go to ``to_zarr``) and returns the durable root."""
    from hamt_rs import HAMT, ZarrHAMTStore

    async def go():
        hamt = await HAMT.build(cas=store, values_are_bytes=True)
        ds.to_zarr(ZarrHAMTStore(hamt), mode="w", zarr_format=3, encoding=encoding, **to_zarr)
        await hamt.make_read_only()
        return hamt.root_node_id

    return run(go())


def hamt_reader(store, root):
    """A read-only ``ZarrHAMTStore`` on the dataset at ``root`` in ``store``."""
    from hamt_rs import HAMT, ZarrHAMTStore

    async def go():
        hamt = await HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True)
        return ZarrHAMTStore(hamt, read_only=True)

    return run(go())


def dataset(times: int = 24, start: str = "2000-01-01") -> tuple[xr.Dataset, dict]:
    """time × lat × lon: float32 with NaNs, int16 with scale_factor and _FillValue, datetime64
    time, several chunks per variable; and the encoding that writes it so."""
    lat, lon = 16, 24
    rng = np.random.default_rng(times)
    temp = (rng.normal(15, 8, size=(times, lat, lon))).astype("float32")
    temp[rng.random(temp.shape) < 0.05] = np.nan
    # Tenths of a millimetre, as int16 * scale_factor decodes them, so a round trip is exact.
    precip = rng.integers(0, 500, size=(times, lat, lon)).astype("int16") * 0.1
    precip[0, :2, :2] = np.nan
    ds = xr.Dataset(
        {
            "temp": (("time", "lat", "lon"), temp, {"units": "degC", "long_name": "temperature"}),
            "precip": (("time", "lat", "lon"), precip, {"units": "mm"}),
        },
        coords={
            "time": pd.date_range(start, periods=times, freq="D"),
            "lat": np.linspace(-60.0, 60.0, lat),
            "lon": np.linspace(-180.0, 172.5, lon),
        },
        attrs={"title": "hamt_rs test dataset", "source": "synthetic"},
    )
    encoding = {
        "temp": {"chunks": (6, 8, 12)},
        "precip": {"chunks": (6, 8, 12), "dtype": "int16", "scale_factor": 0.1, "_FillValue": -32768},
    }
    return ds, encoding


class CidStore:
    """A py-hamt ContentAddressedStore in memory that returns the CIDs a Kubo node gives."""

    def __init__(self):
        self.blocks: dict = {}

    async def save(self, data, codec):
        from blake3 import blake3
        from multiformats import CID, multihash

        digest = blake3(bytes(data)).digest(length=32)
        cid = CID("base32", 1, codec, multihash.wrap(digest, "blake3"))
        self.blocks[cid] = bytes(data)
        return cid

    async def load(self, id, offset=None, length=None, suffix=None):
        from multiformats import CID

        data = self.blocks[id if isinstance(id, CID) else CID.decode(str(id))]
        if offset is not None:
            end = None if length is None else offset + length
            return data[offset:end]
        if suffix is not None:
            return data[-suffix:] if suffix else b""
        return data


@pytest.fixture
def cid_store() -> CidStore:
    return CidStore()
