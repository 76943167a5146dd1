"""xarray through the hamt_rs Zarr stores: round trips of a realistic dataset (consolidated
and not, encrypted, sharded), appends along time, region writes, the Rust codec pipeline, and
py-hamt's stores reading what hamt_rs wrote and the other way."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

import hamt_rs
from hamt_rs import HAMT, ShardedZarrStore, SimpleEncryptedZarrHAMTStore, ZarrHAMTStore, open_store

from conftest import dataset, hamt_reader as reader, run, write_hamt

KEY = bytes(range(32))
HEADER = b"dclimate-test"
RUST = {"codec_pipeline.path": "hamt_rs.CodecPipeline"}


@pytest.mark.parametrize("consolidated", [True, False])
@pytest.mark.parametrize("pipeline", ["default", "rust"])
def test_round_trip_is_identical(consolidated, pipeline, scratch):
    ds, encoding = dataset()
    store = open_store(f"sled:{scratch / 'db'}")
    root = write_hamt(store, ds, encoding, consolidated=consolidated)
    with zarr.config.set(RUST if pipeline == "rust" else {}):
        back = xr.open_zarr(reader(store, root), consolidated=consolidated)
        assert back.temp.encoding["chunks"] == (6, 8, 12)
        assert back.precip.encoding["dtype"] == np.dtype("int16")
        xr.testing.assert_identical(back.load(), ds)
    store.close()


def test_rust_pipeline_reads_what_the_default_reads_for_any_selection():
    ds, encoding = dataset()
    store = open_store("mem:")
    root = write_hamt(store, ds, encoding)
    plain = zarr.open_array(reader(store, root), path="temp", mode="r")
    with zarr.config.set(RUST):
        fast = zarr.open_array(reader(store, root), path="temp", mode="r")
        assert type(fast._async_array.codec_pipeline).__name__ == "CodecPipeline"
        for sel in [
            (slice(None),),
            (slice(3, 17), slice(2, 15), slice(5, 23)),
            (4,),  # an integer drops an axis: the default pipeline's path
            (slice(None, None, 2),),
            ([0, 5, 9], slice(None), 3),
        ]:
            np.testing.assert_array_equal(fast[sel], plain[sel])
        # A chunk never written reads as the fill value.
        arr = zarr.create_array(zarr.storage.MemoryStore(), shape=(4, 4), chunks=(2, 2), dtype="f4", fill_value=7.5)
        np.testing.assert_array_equal(arr[:], np.full((4, 4), 7.5, "f4"))


def test_rust_pipeline_fills_missing_chunks_of_a_hamt_store():
    async def go():
        hamt = await HAMT.build(cas=InMemory(), values_are_bytes=True)
        zs = ZarrHAMTStore(hamt)
        arr = zarr.create_array(zs, name="a", shape=(4, 6), chunks=(2, 3), dtype="int32", fill_value=-1)
        arr[0:2, 0:3] = np.arange(6, dtype="int32").reshape(2, 3)
        await hamt.make_read_only()
        return hamt

    InMemory = hamt_rs.InMemoryCAS
    hamt = run(go())
    with zarr.config.set(RUST):
        arr = zarr.open_array(ZarrHAMTStore(hamt, read_only=True), path="a", mode="r")
        want = np.full((4, 6), -1, "int32")
        want[0:2, 0:3] = np.arange(6).reshape(2, 3)
        np.testing.assert_array_equal(arr[:], want)


def test_encrypted_round_trip_and_wrong_key_or_header():
    ds, encoding = dataset()
    store = open_store("mem:")

    async def write():
        hamt = await HAMT.build(cas=store, values_are_bytes=True)
        zs = SimpleEncryptedZarrHAMTStore(hamt, False, KEY, HEADER)
        ds.to_zarr(zs, mode="w", zarr_format=3, encoding=encoding)
        await hamt.make_read_only()
        return hamt.root_node_id

    root = run(write())

    def open_with(key, header):
        async def go():
            hamt = await HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True)
            return SimpleEncryptedZarrHAMTStore(hamt, True, key, header)

        return run(go())

    for config in ({}, RUST):
        with zarr.config.set(config):
            xr.testing.assert_identical(xr.open_zarr(open_with(KEY, HEADER)).load(), ds)
    # Nothing is readable in the clear.
    with pytest.raises(Exception):
        xr.open_zarr(reader(store, root))
    with pytest.raises(hamt_rs.DecryptionError):
        xr.open_zarr(open_with(bytes(32), HEADER))
    with pytest.raises(hamt_rs.DecryptionError):
        xr.open_zarr(open_with(KEY, b"another header"))
    # py-hamt raises ValueError there: its users' handlers catch this one too.
    with pytest.raises(ValueError, match="authenticate|decrypt"):
        xr.open_zarr(open_with(bytes(32), HEADER))
    assert issubclass(hamt_rs.DecryptionError, hamt_rs.HamtError)
    # As py-hamt's: a ZarrHAMTStore, equal to another only under the same key and header.
    same, other_key = open_with(KEY, HEADER), open_with(bytes(32), HEADER)
    assert isinstance(same, hamt_rs.ZarrHAMTStore)
    assert same == open_with(KEY, HEADER) and hash(same) == hash(open_with(KEY, HEADER))
    assert same != other_key and same != open_with(KEY, b"another header")
    assert same != reader(store, root), "an encrypted store is not the plain one"
    assert same.encryption_key == KEY and same.header == HEADER

    # The HAMT itself holds the sealed bytes, before and after a store on it was used, as
    # py-hamt's does: its own get never decrypts, its own set never encrypts.
    async def raw_reads():
        hamt = await HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True)
        before = await hamt.get("zarr.json")
        zs = SimpleEncryptedZarrHAMTStore(hamt, True, KEY, HEADER)
        plain = await zs.get("zarr.json", zarr.core.buffer.default_buffer_prototype())
        after = await hamt.get("zarr.json")
        writer = await HAMT.build(cas=store, root_node_id=root, values_are_bytes=True)
        wz = SimpleEncryptedZarrHAMTStore(writer, False, KEY, HEADER)
        await wz.set("x/zarr.json", zarr.core.buffer.default_buffer_prototype().buffer.from_bytes(b"{}"))
        await writer.set("raw", b"as given")
        return before, plain.to_bytes(), after, await writer.get("raw"), await writer.get("x/zarr.json")

    before, plain, after, raw, sealed = run(raw_reads())
    assert before == after and before != plain and json.loads(plain)["zarr_format"] == 3
    assert raw == b"as given" and sealed != b"{}" and len(sealed) > 2
    with pytest.raises(ValueError, match="32 bytes"):
        open_with(b"short", HEADER)
    # The convenience opener takes the key too.
    xr.testing.assert_identical(
        hamt_rs.open_dataset(store, root, encryption_key=KEY, header=HEADER).load(), ds
    )


def test_append_along_time_and_region_writes():
    ds, encoding = dataset(times=12)
    more, _ = dataset(times=12, start="2000-01-13")
    store = open_store("mem:")

    async def go():
        hamt = await HAMT.build(cas=store, values_are_bytes=True)
        zs = ZarrHAMTStore(hamt)
        ds.to_zarr(zs, mode="w", zarr_format=3, encoding=encoding)
        more.to_zarr(zs, append_dim="time", zarr_format=3)
        # Overwrite a region in the middle (whole chunks along time, part of lat).
        patch = xr.full_like(ds.isel(time=slice(6, 12), lat=slice(0, 8)), 1.5)
        patch.drop_vars(["lat", "lon"]).to_zarr(
            zs, region={"time": slice(6, 12), "lat": slice(0, 8), "lon": slice(None)}
        )
        await hamt.make_read_only()
        return hamt.root_node_id

    root = run(go())
    want = xr.concat([ds, more], dim="time")
    want["temp"][6:12, 0:8, :] = 1.5
    want["precip"][6:12, 0:8, :] = 1.5
    for config in ({}, RUST):
        with zarr.config.set(config):
            back = xr.open_zarr(reader(store, root)).load()
            assert back.sizes["time"] == 24
            xr.testing.assert_identical(back, want)


def test_sharded_store_round_trip_and_open_dataset_detects_it(scratch):
    ds, encoding = dataset()
    url = f"sled:{scratch / 'db'}"
    store = open_store(url)

    async def write():
        zs = await ShardedZarrStore.open(cas=store, read_only=False, chunks_per_shard=4)
        # py-hamt's sharded_zarr_v2 keeps arrays in a group; reads find them without it.
        ds.to_zarr(zs, mode="w", zarr_format=3, encoding=encoding, group="0")
        return await zs.flush()

    root = run(write())

    async def open_ro():
        return await ShardedZarrStore.open(cas=store, read_only=True, root_cid=root)

    for config in ({}, RUST):
        with zarr.config.set(config):
            xr.testing.assert_identical(xr.open_zarr(run(open_ro()), group="0").load(), ds)
    async def layout():
        return await hamt_rs._native.detect_layout(store, root)

    assert run(layout()) == "sharded"
    xr.testing.assert_identical(hamt_rs.open_dataset(store, root, group="0").load(), ds)
    store.close()


def test_store_listing_and_byte_ranges():
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
    from zarr.core.buffer import default_buffer_prototype

    store = open_store("mem:")
    ds, encoding = dataset(times=6)
    root = write_hamt(store, ds, encoding)
    zs = reader(store, root)
    proto = default_buffer_prototype()

    async def go():
        keys = [k async for k in zs.list()]
        assert "zarr.json" in keys and "temp/zarr.json" in keys and "temp/c/0/0/0" in keys
        assert sorted([k async for k in zs.list_dir("")]) == ["lat", "lon", "precip", "temp", "time", "zarr.json"]
        assert sorted([k async for k in zs.list_dir("temp")]) == ["c", "zarr.json"]
        assert all(k.startswith("temp/") for k in [k async for k in zs.list_prefix("temp/")])
        whole = (await zs.get("temp/c/0/0/0", proto)).to_bytes()
        assert (await zs.get("temp/c/0/0/0", proto, RangeByteRequest(2, 9))).to_bytes() == whole[2:9]
        assert (await zs.get("temp/c/0/0/0", proto, OffsetByteRequest(5))).to_bytes() == whole[5:]
        assert (await zs.get("temp/c/0/0/0", proto, SuffixByteRequest(4))).to_bytes() == whole[-4:]
        got = await zs.get_partial_values(proto, [("temp/c/0/0/0", RangeByteRequest(0, 3)), ("nope", None)])
        assert got[0].to_bytes() == whole[:3] and got[1] is None
        assert await zs.get("nope", proto) is None
        assert await zs.exists("zarr.json") and not await zs.exists("nope")
        assert await zs.getsize("temp/c/0/0/0") == len(whole)
        assert zs.read_only and not zs.supports_writes
        with pytest.raises(ValueError, match="read-only"):
            await zs.set("x", proto.buffer.from_bytes(b"1"))

    run(go())


@pytest.mark.pyhamt
def test_xarray_via_hamt_rs_reads_through_py_hamt_and_back(cid_store):
    import py_hamt

    ds, encoding = dataset()

    async def go():
        # hamt_rs writes into the Python CAS; py-hamt's store reads it.
        ours = await HAMT.build(cas=cid_store, values_are_bytes=True)
        ds.to_zarr(ZarrHAMTStore(ours), mode="w", zarr_format=3, encoding=encoding)
        await ours.make_read_only()
        theirs_ro = await py_hamt.HAMT.build(
            cas=cid_store, root_node_id=ours.root_node_id, read_only=True, values_are_bytes=True
        )
        xr.testing.assert_identical(xr.open_zarr(py_hamt.ZarrHAMTStore(theirs_ro, read_only=True)).load(), ds)

        # py-hamt writes the same dataset: the same root; hamt_rs reads it.
        other = type(cid_store)()
        theirs = await py_hamt.HAMT.build(cas=other, values_are_bytes=True)
        ds.to_zarr(py_hamt.ZarrHAMTStore(theirs), mode="w", zarr_format=3, encoding=encoding)
        await theirs.make_read_only()
        assert theirs.root_node_id == ours.root_node_id
        back = await HAMT.build(cas=other, root_node_id=theirs.root_node_id, read_only=True, values_are_bytes=True)
        with zarr.config.set(RUST):
            xr.testing.assert_identical(xr.open_zarr(ZarrHAMTStore(back, read_only=True)).load(), ds)

        # Encrypted: py-hamt opens what hamt_rs sealed.
        sealed = await HAMT.build(cas=cid_store, values_are_bytes=True)
        ds.to_zarr(SimpleEncryptedZarrHAMTStore(sealed, False, KEY, HEADER), mode="w", zarr_format=3, encoding=encoding)
        await sealed.make_read_only()
        theirs_sealed = await py_hamt.HAMT.build(
            cas=cid_store, root_node_id=sealed.root_node_id, read_only=True, values_are_bytes=True
        )
        opened = py_hamt.SimpleEncryptedZarrHAMTStore(theirs_sealed, True, KEY, HEADER)
        xr.testing.assert_identical(xr.open_zarr(opened).load(), ds)

    run(go())


@pytest.mark.pyhamt
def test_py_hamt_sharded_store_and_hamt_rs_read_each_other(cid_store):
    import py_hamt

    ds, encoding = dataset()

    async def go():
        theirs = await py_hamt.ShardedZarrStore.open(
            cas=cid_store, read_only=False, chunks_per_shard=4, manifest_version="sharded_zarr_v2"
        )
        ds.to_zarr(theirs, mode="w", zarr_format=3, encoding=encoding, group="0")
        root = await theirs.flush()
        ours = await ShardedZarrStore.open(cas=cid_store, read_only=True, root_cid=root)
        with zarr.config.set(RUST):
            xr.testing.assert_identical(xr.open_zarr(ours, group="0").load(), ds)

        mine = await ShardedZarrStore.open(cas=cid_store, read_only=False, chunks_per_shard=4)
        ds.to_zarr(mine, mode="w", zarr_format=3, encoding=encoding, group="0")
        my_root = await mine.flush()
        # Text, as py-hamt's flush returns.
        assert isinstance(root, str) and isinstance(my_root, str)
        back = await py_hamt.ShardedZarrStore.open(cas=cid_store, read_only=True, root_cid=str(my_root))
        xr.testing.assert_identical(xr.open_zarr(back, group="0").load(), ds)

    run(go())


def test_rust_pipeline_writes_what_zarr_reads_back():
    ds, encoding = dataset(times=12)
    more, _ = dataset(times=12, start="2000-01-13")
    store = open_store("mem:")

    async def go():
        hamt = await HAMT.build(cas=store, values_are_bytes=True)
        zs = ZarrHAMTStore(hamt)
        with zarr.config.set(RUST):
            ds.to_zarr(zs, mode="w", zarr_format=3, encoding=encoding)
            more.to_zarr(zs, append_dim="time", zarr_format=3)
            # Part of a chunk along lat and lon: zarr-python's pipeline merges it.
            patch = xr.full_like(ds.isel(time=slice(0, 6), lat=slice(2, 5), lon=slice(1, 3)), 2.5)
            patch.drop_vars(["lat", "lon"]).to_zarr(
                zs, region={"time": slice(0, 6), "lat": slice(2, 5), "lon": slice(1, 3)}
            )
        await hamt.make_read_only()
        return hamt.root_node_id

    root = run(go())
    want = xr.concat([ds, more], dim="time")
    want["temp"][0:6, 2:5, 1:3] = 2.5
    want["precip"][0:6, 2:5, 1:3] = 2.5
    # Read with zarr-python's own decoding: what zarrs encoded is standard Zarr.
    xr.testing.assert_identical(xr.open_zarr(reader(store, root)).load(), want)
    # A chunk that is all fill value is not stored, as zarr-python does.
    arr_store = reader(store, root)

    async def keys():
        return [k async for k in arr_store.list_prefix("temp/c/")]

    assert len(run(keys())) == 4 * 2 * 2


@pytest.mark.parametrize("write_empty_chunks", [False, True])
def test_rust_writes_keep_or_erase_fill_chunks_exactly_as_zarr_python(write_empty_chunks):
    """Chunks that are all fill value as zarr-python judges it (by value: any NaN equals a NaN
    fill, -0.0 equals 0.0) are erased unless `write_empty_chunks`; the Rust write path keeps
    and erases the same chunks, so the roots are the same."""
    nan_fill = np.full((4, 6), np.nan, "float32")
    nan_fill[0:2, 3:6] = np.array([0x7FC00001, 0xFFC00000, 0x7F800001] * 2, "uint32").view("float32").reshape(2, 3)
    nan_fill[2:4, 0:3] = 1.5
    zero_fill = np.zeros((4, 6), "float64")
    zero_fill[0:2, 0:3] = -0.0
    zero_fill[2:4, 3:6] = 7.0
    complex_fill = np.full((2, 6), complex(np.nan, 0), "complex64")
    complex_fill[0:2, 0:3] = complex(1, np.nan)

    async def write(config):
        hamt = await HAMT.build(cas=hamt_rs.InMemoryCAS(), values_are_bytes=True)
        zs = ZarrHAMTStore(hamt)
        with zarr.config.set({**config, "array.write_empty_chunks": write_empty_chunks}):
            for name, data, fill in [
                ("nan", nan_fill, np.nan),
                ("zero", zero_fill, 0.0),
                ("complex", complex_fill, complex(np.nan, 0)),
            ]:
                array = zarr.create_array(zs, name=name, shape=data.shape, chunks=(2, 3), dtype=data.dtype, fill_value=fill)
                array[:] = data
        keys = sorted([k async for k in hamt.keys()])
        await hamt.make_read_only()
        return hamt.root_node_id, keys

    default_root, default_keys = run(write({}))
    rust_root, rust_keys = run(write(RUST))
    assert rust_keys == default_keys
    assert str(rust_root) == str(default_root)
    chunks = [k for k in rust_keys if "/c/" in k]
    # 4 + 4 + 2 chunks in all. Not fill value: nan/c/1/0 (1.5), zero/c/1/1 (7.0), and
    # zero/c/0/0 (-0.0) where this zarr-python tells -0.0 from a 0.0 fill.
    from hamt_rs._pipeline import _SIGNED_ZEROS

    kept = 3 if _SIGNED_ZEROS else 2
    assert len(chunks) == (10 if write_empty_chunks else kept), chunks


@pytest.mark.pyhamt
def test_every_name_py_hamt_exports_is_exported_here():
    import py_hamt

    assert sorted(set(py_hamt.__all__) - set(hamt_rs.__all__)) == []
    for name in py_hamt.__all__:
        getattr(hamt_rs, name)
    assert issubclass(hamt_rs.GatewayContentUnverifiable, hamt_rs.GatewayContentMismatch)
    assert issubclass(hamt_rs.ShardedZarrV1DeprecationWarning, FutureWarning)


@pytest.mark.pyhamt
def test_convert_hamt_to_sharded_gives_py_hamts_root(cid_store):
    import py_hamt

    ds, encoding = dataset()
    root = str(write_hamt(cid_store, ds, encoding))
    hamt = reader(cid_store, root).hamt

    async def go():
        theirs = await py_hamt.convert_hamt_to_sharded(cid_store, root, 4)
        ours = await hamt_rs.convert_hamt_to_sharded(cid_store, root, 4)
        assert isinstance(ours, str) and ours == str(theirs)
        sharded = await ShardedZarrStore.open(cas=cid_store, read_only=True, root_cid=ours)
        xr.testing.assert_identical(xr.open_zarr(sharded).load(), ds)
        with pytest.raises(PermissionError):
            await sharded.set_pointer("zarr.json", await hamt.get_pointer("zarr.json"))
        with pytest.raises(ValueError, match="positive"):
            await hamt_rs.convert_hamt_to_sharded(cid_store, root, 0)
        # set_pointer grafts a block by CID: the group document of the HAMT dataset.
        graft = await ShardedZarrStore.open(cas=cid_store, read_only=False, chunks_per_shard=4)
        await graft.set_pointer("zarr.json", str(await hamt.get_pointer("zarr.json")))
        got = await graft.get("zarr.json", zarr.core.buffer.default_buffer_prototype())
        assert got.to_bytes() == await hamt.get("zarr.json")

    run(go())


@pytest.mark.pyhamt
def test_a_v1_sharded_root_opens_with_py_hamts_deprecation_warning(cid_store):
    import warnings

    import py_hamt

    async def go():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = await py_hamt.ShardedZarrStore.open(
                cas=cid_store, read_only=False, array_shape=(4, 6), chunk_shape=(2, 3), chunks_per_shard=4
            )
            array = zarr.create_array(theirs, name="a", shape=(4, 6), chunks=(2, 3), dtype="int32", fill_value=0)
            array[:] = np.arange(24, dtype="int32").reshape(4, 6)
            root = await theirs.flush()
        with pytest.warns(hamt_rs.ShardedZarrV1DeprecationWarning, match="sharded_zarr_v1"):
            ours = await ShardedZarrStore.open(cas=cid_store, read_only=True, root_cid=root)
        np.testing.assert_array_equal(
            zarr.open_array(ours, path="a", mode="r")[:], np.arange(24, dtype="int32").reshape(4, 6)
        )

    run(go())


def test_a_store_read_through_the_pipeline_is_freed_with_its_objects():
    """The arrays the Rust pipeline opens hold their store's blocks: they go when the store
    goes, so a dropped dataset's blocks (here a Python CAS) are not kept for the process."""
    import gc
    import weakref

    from conftest import CidStore

    cas = CidStore()
    gone = weakref.ref(cas)

    async def write_and_read():
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        zs = ZarrHAMTStore(hamt)
        array = zarr.create_array(zs, name="a", shape=(4, 6), chunks=(2, 3), dtype="int32", fill_value=0)
        with zarr.config.set(RUST):
            array[:] = np.arange(24, dtype="int32").reshape(4, 6)
            await hamt.make_read_only()
            reader = ZarrHAMTStore(hamt, read_only=True)
            got = zarr.open_array(reader, path="a", mode="r")[:]
        np.testing.assert_array_equal(got, np.arange(24, dtype="int32").reshape(4, 6))

    run(write_and_read())
    del cas
    for _ in range(3):
        gc.collect()
    assert gone() is None, "something still holds the store's blocks"
