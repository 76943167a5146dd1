"""Parallel writes from dask, hamt_rs against icechunk, in one run on one S3 server (the
dask half of ``cargo xtask bench versions``).

For 1, 2 and 4 worker processes (a ``dask.distributed.LocalCluster``), the same dask-backed
dataset is written by ``hamt_rs.to_hamt`` into a session (forks on the workers, merged and
committed) and by icechunk's ``to_icechunk`` (its forks, merged and committed), each into a
fresh prefix of the bucket; each write is read back and compared with the dataset.

  dask_writes.py ENDPOINT BUCKET [--quick]

Needs the S3 credentials in the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``) and the venv with icechunk (zarr >= 3.1). Prints one table.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import dask
import numpy as np
import pandas as pd
import xarray as xr


def dataset(times: int) -> xr.Dataset:
    """Temperature-like float32, time × 90 × 180 per chunk of one step (64 KiB raw)."""
    rng = np.random.default_rng(7)
    lat, lon = 180, 360
    base = 280 + 20 * np.cos(np.deg2rad(np.linspace(-90, 90, lat)))[:, None]
    temp = (base + rng.normal(0, 2, size=(times, lat, lon))).astype("float32")
    return xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), temp, {"units": "K"})},
        coords={
            "time": pd.date_range("2020-01-01", periods=times, freq="h"),
            "latitude": np.linspace(-90, 90, lat),
            "longitude": np.linspace(0, 359, lon),
        },
    ).chunk({"time": 1, "latitude": 90, "longitude": 180})


def ours(ds: xr.Dataset, endpoint: str, bucket: str) -> tuple[float, xr.Dataset]:
    import hamt_rs

    repo = hamt_rs.Repository(f"s3://{bucket}/hamt-{uuid.uuid4().hex}?endpoint={endpoint}")
    session = repo.writable_session("main")
    start = time.perf_counter()
    hamt_rs.to_hamt(ds, session, mode="w")
    session.commit("bench")
    seconds = time.perf_counter() - start
    with dask.config.set(scheduler="threads"):
        back = xr.open_zarr(repo.readonly_store("main")).load()
    return seconds, back


def icechunk_write(ds: xr.Dataset, endpoint: str, bucket: str) -> tuple[float, xr.Dataset]:
    import icechunk
    from icechunk.xarray import to_icechunk

    storage = icechunk.s3_storage(
        bucket=bucket,
        prefix=f"icechunk-{uuid.uuid4().hex}",
        endpoint_url=endpoint,
        allow_http=True,
        force_path_style=True,
        region=os.environ.get("AWS_REGION", "us-east-1"),
        access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    )
    repo = icechunk.Repository.create(storage)
    session = repo.writable_session("main")
    start = time.perf_counter()
    to_icechunk(ds, session, mode="w")
    session.commit("bench")
    seconds = time.perf_counter() - start
    with dask.config.set(scheduler="threads"):
        back = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).load()
    return seconds, back


def main() -> None:
    endpoint, bucket = sys.argv[1], sys.argv[2]
    quick = "--quick" in sys.argv[3:]
    times = 32 if quick else 500
    ds = dataset(times)
    expected = ds.compute()
    chunks = ds.t2m.data.npartitions
    mb = ds.t2m.nbytes / 1e6
    from dask.distributed import Client, LocalCluster

    rows = []
    for workers in (1, 2, 4):
        with LocalCluster(
            processes=True,
            n_workers=workers,
            threads_per_worker=1,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster, Client(cluster):
            ours_s, back = ours(ds, endpoint, bucket)
            xr.testing.assert_identical(back, expected)
            ice_s, back = icechunk_write(ds, endpoint, bucket)
            xr.testing.assert_allclose(back, expected)
            rows.append((workers, ours_s, ice_s))
    print(f"\ndask writes of {chunks} chunks ({mb:.0f} MB raw) to moto's S3 server, commit included")
    print(f"{'workers':>7} {'hamt_rs s':>10} {'icechunk s':>11} {'icechunk / hamt_rs':>19}")
    for workers, ours_s, ice_s in rows:
        print(f"{workers:>7} {ours_s:>10.2f} {ice_s:>11.2f} {ice_s / ours_s:>18.2f}x")


if __name__ == "__main__":
    main()
