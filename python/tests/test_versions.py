"""Versions and parallel writes from Python: a dask LocalCluster of four worker processes
writes a dataset of 2000 chunks to the S3 server through forks of a session, merged and
committed, and gets the tree a serial write gets; a worker killed after uploading and its task
retried changes nothing; two sessions committing to one branch at once rebase or conflict."""

from __future__ import annotations

import inspect
import os
import pathlib
import pickle
import time
import uuid

import dask
import numpy as np
import pytest
import xarray as xr
import zarr

import hamt_rs
from hamt_rs import HAMT, ConflictError, Repository, ZarrHAMTStore, open_store, to_hamt

from conftest import cluster_client, dataset, required_env, run


def s3_url(name: str) -> str:
    endpoint = required_env("HAMT_TEST_S3_ENDPOINT")
    bucket = required_env("HAMT_TEST_S3_BUCKET")
    return f"s3://{bucket}/{name}-{uuid.uuid4().hex[:12]}?endpoint={endpoint}"


def without_chunks(encoding: dict) -> dict:
    """The encoding with the chunk shapes left to the dask chunks."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "chunks"} for k, v in encoding.items()}


def serial_root(store, ds, encoding, **to_zarr) -> object:
    """The root one process gets writing `ds` with `to_zarr` (dask's threads, no cluster)."""

    async def go():
        hamt = await HAMT.build(cas=store, values_are_bytes=True, root_node_id=to_zarr.pop("root", None))
        with dask.config.set(scheduler="threads"):
            ds.to_zarr(ZarrHAMTStore(hamt), zarr_format=3, encoding=encoding, **to_zarr)
        await hamt.make_read_only()
        return hamt.root_node_id

    return run(go())


def load(store) -> xr.Dataset:
    """The dataset in `store`, read in this process (the cluster is for writing)."""
    with dask.config.set(scheduler="threads"):
        return xr.open_zarr(store).load()


def chunk_keys(repo: Repository, revision: str) -> list[str]:
    async def go():
        _, root = repo.resolve(revision)
        hamt = await HAMT.build(cas=repo.store, root_node_id=root, read_only=True, values_are_bytes=True)
        return [k async for k in hamt.keys() if "/c/" in k]

    return run(go())


@pytest.fixture(scope="module")
def client():
    yield from cluster_client(4)


def test_four_worker_processes_write_2000_chunks_through_forks_as_one_serial_writer(client):
    # 250 days × 2 × 2 chunks × 2 variables = 2000 chunks, one dask block each.
    ds, encoding = dataset(times=250)
    lazy = ds.chunk({"time": 1, "lat": 8, "lon": 12})
    encoding = without_chunks(encoding)
    repo = Repository(s3_url("forks"))
    session = repo.writable_session("main")
    started = time.perf_counter()
    root = to_hamt(lazy, session, mode="w", encoding=encoding)
    forked = time.perf_counter() - started
    pids = set(client.run(os.getpid).values())
    assert len(pids) == 4 and os.getpid() not in pids
    commit = session.commit("250 days", author="pytest")
    assert session.last_commit["rebased"] == 0

    assert repo.resolve("main") == (commit, root)
    assert len(chunk_keys(repo, "main")) >= 2000
    started = time.perf_counter()
    assert root == serial_root(repo.store, lazy, encoding, mode="w")
    print(f"2000 chunks: 4 workers through forks {forked:.1f} s, one process {time.perf_counter() - started:.1f} s")
    xr.testing.assert_identical(load(repo.readonly_store("main")), ds)

    # Appending along time through forks gives the serial append's tree too.
    more, _ = dataset(times=250 + 8)
    more = more.isel(time=slice(250, None)).chunk({"time": 1, "lat": 8, "lon": 12})
    appended = to_hamt(more, session, append_dim="time")
    assert appended == serial_root(repo.store, more, None, append_dim="time", root=root)
    second = session.commit("8 more days")
    log = repo.log("main")
    assert [e["commit"] for e in log] == [second, commit]
    assert [e["message"] for e in log] == ["8 more days", "250 days"]
    assert log[1]["author"] == "pytest" and log[0]["parents"] == [commit]
    back = load(repo.readonly_store("main"))
    assert back.sizes["time"] == 258
    xr.testing.assert_identical(back.isel(time=slice(250, None)), more.compute())
    xr.testing.assert_identical(load(repo.readonly_store("main~1")), ds)


def write_region(fork, part: xr.Dataset, region: dict, crash_marker: str | None):
    """A worker's task: write `part` into `region` of a fork of its own. With a marker that
    does not exist yet, the worker process dies after its writes reached the store and before
    it answers, so the scheduler retries the task on another worker."""
    mine = fork.copy()
    part.to_zarr(mine.store, region=region, zarr_format=3)
    if crash_marker is not None and not os.path.exists(crash_marker):
        pathlib.Path(crash_marker).touch()
        pickle.dumps(mine)  # flushes and syncs: the blocks are in the store
        os._exit(1)
    return mine


def test_a_worker_killed_after_uploading_and_its_task_retried_changes_nothing(client, scratch):
    ds, encoding = dataset(times=24)
    lazy = ds.chunk({"time": 6, "lat": 8, "lon": 12})
    encoding = without_chunks(encoding)
    repo = Repository(s3_url("retry"))
    session = repo.writable_session("main")
    # The coordinator writes the metadata and coordinates; workers write the data by region.
    with dask.config.set(scheduler="threads"):
        lazy.to_zarr(session.store, mode="w", zarr_format=3, encoding=encoding, compute=False)
    fork = session.fork()
    marker = str(scratch / "crashed")
    futures = []
    for i, start in enumerate(range(0, 24, 6)):
        region = {"time": slice(start, start + 6)}
        part = ds[["temp", "precip"]].isel(time=region["time"]).drop_vars(["time", "lat", "lon"])
        futures.append(
            client.submit(write_region, fork, part, region, marker if i == 2 else None, pure=False)
        )
    forks = client.gather(futures)
    assert os.path.exists(marker), "the task never crashed: the test tested nothing"
    client.wait_for_workers(4)
    root = session.merge(*forks)
    session.commit("written by regions, one task retried")
    assert root == serial_root(repo.store, lazy, encoding, mode="w")
    xr.testing.assert_identical(load(repo.readonly_store("main")), ds)


def region_part(ds: xr.Dataset, start: int, scale: float = 1.0) -> xr.Dataset:
    part = ds[["temp"]].isel(time=slice(start, start + 6)).drop_vars(["time", "lat", "lon"])
    return part * scale if scale != 1.0 else part


def test_two_sessions_on_one_branch_rebase_or_conflict():
    ds, encoding = dataset(times=24)
    repo = Repository(s3_url("race"))
    first = repo.writable_session("main")
    with dask.config.set(scheduler="threads"):
        ds.to_zarr(first.store, mode="w", zarr_format=3, encoding=encoding)
    start = first.commit("base")

    # Disjoint regions: the one that commits second is rebased onto the first.
    a, b = repo.writable_session("main"), repo.writable_session("main")
    changed = ds.copy(deep=True)
    changed["temp"][0:6] = changed["temp"][0:6] + 1
    changed["temp"][12:18] = changed["temp"][12:18] - 1
    region_part(changed, 0).to_zarr(a.store, region={"time": slice(0, 6)}, zarr_format=3)
    region_part(changed, 12).to_zarr(b.store, region={"time": slice(12, 18)}, zarr_format=3)
    a_commit = a.commit("days 0-5")
    b_commit = b.commit("days 12-17")
    assert a.last_commit["rebased"] == 0 and b.last_commit["rebased"] == 1
    assert b.last_commit["parent"] == a_commit and repo.head("main") == b_commit
    xr.testing.assert_identical(load(repo.readonly_store("main")), changed)

    # The same chunk changed differently: the second commit reports the conflict, and the
    # branch keeps the first.
    c, d = repo.writable_session("main"), repo.writable_session("main")
    region_part(changed, 6, 2.0).to_zarr(c.store, region={"time": slice(6, 12)}, zarr_format=3)
    region_part(changed, 6, 3.0).to_zarr(d.store, region={"time": slice(6, 12)}, zarr_format=3)
    c_commit = c.commit("double days 6-11")
    with pytest.raises(ConflictError, match="temp/c/1/0/0") as raised:
        d.commit("triple days 6-11")
    assert "temp/c/1/0/0" in raised.value.keys
    assert repo.head("main") == c_commit
    assert repo.log("main")[-1]["commit"] == start


def test_sessions_stay_in_their_process_and_sled_forks_say_why_they_cannot_travel(scratch):
    store = open_store(f"sled:{scratch / 'db'}")
    repo = Repository(store)
    session = repo.writable_session("main")
    with pytest.raises(pickle.PicklingError, match="send session.fork"):
        pickle.dumps(session)
    with pytest.raises(pickle.PicklingError, match="one process at a time"):
        pickle.dumps(session.fork())
    # In one process a fork works on any store, and a merge of forks that made one array
    # differently names its keys and the array.
    one, two = session.fork(), session.fork()
    zarr.create_array(one.store, name="x", shape=(4,), chunks=(4,), dtype="int8", fill_value=0)[:] = 1
    zarr.create_array(two.store, name="x", shape=(8,), chunks=(4,), dtype="int8", fill_value=0)[:] = 2
    session.merge(one)
    with pytest.raises(ConflictError) as raised:
        session.merge(two)
    assert {"x/zarr.json", "x/c/0"} <= set(raised.value.keys)
    assert raised.value.arrays == ("x",)
    session.commit("x is ones")
    got = zarr.open_array(repo.readonly_store("main"), path="x", mode="r")[:]
    np.testing.assert_array_equal(got, np.ones(4, dtype="int8"))
    store.close()


def test_every_public_name_has_a_docstring():
    missing = []
    for name in hamt_rs.__all__:
        obj = getattr(hamt_rs, name)
        if callable(obj) and not (obj.__doc__ or "").strip():
            missing.append(name)
        if isinstance(obj, type):
            for attr, member in vars(obj).items():
                routine = inspect.isroutine(member) or isinstance(member, property)
                if not attr.startswith("_") and routine and not (member.__doc__ or "").strip():
                    missing.append(f"{name}.{attr}")
    assert missing == []
