"""``hamt_rs.open_dataset``: variables whose plain-slice reads go straight to Rust
(``read_chunks_sync``) read exactly what ``xr.open_zarr`` reads, for every kind of selection,
missing chunks and stores; what that path does not take goes through zarr-python."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

import hamt_rs
from hamt_rs import HAMT, ZarrHAMTStore, open_store

from conftest import dataset, hamt_reader as reader, run, write_hamt as write


@pytest.fixture
def calls(monkeypatch):
    """Counts the chunk reads that go straight to Rust."""
    seen = {"calls": 0, "chunks": 0}
    real = hamt_rs._native.read_chunks_sync

    def counting(core, items, *args):
        seen["calls"] += 1
        seen["chunks"] += len(items)
        return real(core, items, *args)

    monkeypatch.setattr(hamt_rs._native, "read_chunks_sync", counting)
    return seen


def test_open_dataset_reads_in_rust_what_open_zarr_reads(scratch, calls):
    ds, encoding = dataset()
    store = open_store(f"sled:{scratch / 'db'}")
    root = write(store, ds, encoding)
    lazy = hamt_rs.open_dataset(store, root)
    plain = xr.open_zarr(reader(store, root))
    assert lazy.temp.data.npartitions == plain.temp.data.npartitions > 1
    assert repr(lazy.temp.encoding) == repr(plain.temp.encoding)  # NaN fill values: no ==
    opened = calls["calls"]  # the coordinates, read as indexes when the dataset opens
    xr.testing.assert_identical(lazy.load(), ds)
    # Both data variables, every dask block of each, one call a block.
    assert calls["calls"] - opened == 2 * plain.temp.data.npartitions
    with pytest.raises(TypeError):
        hamt_rs.open_dataset(store, root, no_such_option=1)
    store.close()


def test_every_selection_reads_what_zarr_python_reads(calls):
    ds, encoding = dataset()
    store = open_store("mem:")
    root = write(store, ds, encoding)
    lazy = hamt_rs.open_dataset(store, root, chunks=None)
    plain = xr.open_zarr(reader(store, root), chunks=None)
    in_rust = [
        {"time": slice(3, 17), "lat": slice(2, 15), "lon": slice(5, 23)},
        {"time": 4},
        {"time": -1, "lat": slice(-5, None)},
        {"time": slice(20, 99)},  # past the end, clipped
    ]
    through_zarr = [
        {"time": slice(None, None, 2)},
        {"time": [0, 5, 9], "lon": 3},
        {"lat": xr.DataArray([1, 3], dims="p"), "lon": xr.DataArray([2, 4], dims="p")},
    ]
    # Nothing to read: no call at all.
    empty = {"lat": slice(7, 7)}
    xr.testing.assert_identical(lazy.temp.isel(empty).load(), plain.temp.isel(empty).load())
    for sel in in_rust + through_zarr:
        before = calls["calls"]
        for name in ("temp", "precip"):
            xr.testing.assert_identical(lazy[name].isel(sel).load(), plain[name].isel(sel).load())
        assert (calls["calls"] > before) == (sel in in_rust), sel


def test_missing_chunks_read_as_the_fill_value(calls):
    ds, encoding = dataset()
    ds["temp"][0:6, 0:8, 0:12] = np.nan
    store = open_store("mem:")

    async def go():
        # One whole chunk of NaN, the fill value: a store may hold nothing for it.
        hamt = await HAMT.build(cas=store, values_are_bytes=True)
        zs = ZarrHAMTStore(hamt)
        ds.to_zarr(zs, mode="w", zarr_format=3, encoding=encoding)
        await zs.delete("temp/c/0/0/0")
        assert not await zs.exists("temp/c/0/0/0") and await zs.exists("temp/c/0/0/1")
        await hamt.make_read_only()
        return hamt.root_node_id

    root = run(go())
    got = hamt_rs.open_dataset(store, root).load()
    assert calls["calls"] > 0
    # The array's fill value (zarr 3.0.9 gives xarray's floats 0.0, newer zarr NaN), as
    # zarr-python reads it.
    xr.testing.assert_identical(got, xr.open_zarr(reader(store, root)).load())
    fill = zarr.open_array(reader(store, root), path="temp", mode="r").fill_value
    np.testing.assert_array_equal(got.temp[0:6, 0:8, 0:12], np.full((6, 8, 12), fill, "f4"))


def test_a_python_cas_is_read_through_zarr_python(cid_store, calls):
    ds, encoding = dataset()
    root = write(cid_store, ds, encoding)
    xr.testing.assert_identical(hamt_rs.open_dataset(cid_store, root).load(), ds)
    assert calls["calls"] == 0


def test_sharded_arrays_read_in_rust(calls):
    ds, encoding = dataset()
    for name in ("temp", "precip"):
        encoding[name] = dict(encoding[name], chunks=(3, 4, 6), shards=(6, 8, 12))
    store = open_store("mem:")
    root = write(store, ds, encoding)
    lazy = hamt_rs.open_dataset(store, root)
    assert lazy.temp.encoding["shards"] == (6, 8, 12)
    xr.testing.assert_identical(lazy.load(), ds)
    assert calls["calls"] > 0


def test_rust_pipeline_off_is_plain_open_zarr(calls):
    ds, encoding = dataset()
    store = open_store("mem:")
    root = write(store, ds, encoding)
    with zarr.config.set({"codec_pipeline.path": "zarr.core.codec_pipeline.BatchedCodecPipeline"}):
        xr.testing.assert_identical(hamt_rs.open_dataset(store, root, rust_pipeline=False).load(), ds)
    assert calls["calls"] == 0
