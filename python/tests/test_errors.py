"""Bad input gives a clear Python exception, never a crash: wrong key or header (in
test_zarr), missing blocks, a non-HAMT root, an unknown URL scheme, a closed store, a bad CID,
a CAS that fails, and a panic inside the extension."""

from __future__ import annotations

import asyncio

import pytest
from multiformats import CID

import hamt_rs
from hamt_rs import HAMT, InMemoryCAS, ShardedZarrStore, ZarrHAMTStore, open_store

from conftest import run


def test_unknown_url_scheme_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown store URL") as info:
        open_store("ftp://example/blocks")
    for form in ("sled:PATH", "mem:", "kubo+http://", "s3://", "ipfs-embedded:"):
        assert form in str(info.value)
    assert "sled:PATH" in hamt_rs.store_usage()
    with pytest.raises(ValueError):
        open_store("mem:with-a-path")


def test_a_root_not_in_the_store_is_not_found():
    async def go():
        other = InMemoryCAS()
        hamt = await HAMT.build(cas=other, values_are_bytes=True)
        await hamt.set("a", b"1")
        await hamt.make_read_only()
        with pytest.raises(hamt_rs.NotFoundError) as info:
            await HAMT.build(cas=InMemoryCAS(), root_node_id=hamt.root_node_id, read_only=True)
        assert info.value.cid == str(hamt.root_node_id)

    run(go())


def test_a_missing_value_block_is_not_found_not_a_missing_key(cid_store):
    async def go():
        hamt = await HAMT.build(cas=cid_store, values_are_bytes=True)
        await hamt.set("a", b"value")
        await hamt.make_read_only()
        pointer = await hamt.get_pointer("a")
        del cid_store.blocks[pointer]
        reader = await HAMT.build(cas=cid_store, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True)
        with pytest.raises(hamt_rs.NotFoundError):
            await reader.get("a")
        with pytest.raises(KeyError):
            await reader.get("b")

    run(go())


def test_a_non_hamt_root_is_a_format_error():
    async def go():
        store = InMemoryCAS()
        raw = await store.save(b"not a node", "raw")
        with pytest.raises(hamt_rs.FormatError):
            await HAMT.build(cas=store, root_node_id=raw, read_only=True)
        cbor = await store.save(b"\xa1\x61a\x01", "dag-cbor")  # {"a": 1}
        with pytest.raises(hamt_rs.FormatError):
            await HAMT.build(cas=store, root_node_id=cbor, read_only=True)
        with pytest.raises(hamt_rs.FormatError):
            await hamt_rs.open_zarr_store(store, raw)

    run(go())


def test_corrupt_blocks_are_refused(cid_store):
    async def go():
        hamt = await HAMT.build(cas=cid_store, values_are_bytes=True)
        await hamt.set("a", b"value")
        await hamt.make_read_only()
        pointer = await hamt.get_pointer("a")
        cid_store.blocks[pointer] = b"tampered"
        reader = await HAMT.build(cas=cid_store, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True)
        with pytest.raises(hamt_rs.CorruptBlockError):
            await reader.get("a")

    run(go())


def test_a_block_whose_hash_cannot_be_checked_is_unverifiable(cid_store):
    """py-hamt's GatewayContentUnverifiable (a CorruptBlockError here): a Rust store checks
    every block it takes, and a CID whose hash hamt_rs cannot compute cannot be checked. (A
    user's Python CAS may use any hash: its blocks pass unchecked.)"""
    import hashlib

    from multiformats import multihash

    from hamt_rs import _native

    data = b"a value under a sha2-512 CID"
    odd = CID("base32", 1, "raw", multihash.wrap(hashlib.sha512(data).digest(), "sha2-512"))
    cid_store.blocks[odd] = data

    async def go():
        with pytest.raises(hamt_rs.GatewayContentUnverifiable, match="unsupported multihash"):
            await _native.copy_dag(cid_store, odd, InMemoryCAS())

    run(go())
    assert issubclass(hamt_rs.GatewayContentUnverifiable, hamt_rs.CorruptBlockError)


def test_a_chunk_block_missing_or_corrupt_fails_the_rust_pipelines_read(cid_store):
    import numpy as np
    import zarr

    async def write():
        hamt = await HAMT.build(cas=cid_store, values_are_bytes=True)
        arr = zarr.create_array(ZarrHAMTStore(hamt), name="a", shape=(40, 40), chunks=(4, 4), dtype="f4")
        arr[:] = np.arange(1600, dtype="f4").reshape(40, 40)
        await hamt.make_read_only()
        return hamt, await hamt.get_pointer("a/c/3/7")

    hamt, chunk = run(write())
    good = cid_store.blocks[chunk]

    def read():
        with zarr.config.set({"codec_pipeline.path": "hamt_rs.CodecPipeline"}):
            return zarr.open_array(ZarrHAMTStore(hamt, read_only=True), path="a", mode="r")[:]

    assert read()[13, 29] == 13 * 40 + 29
    # One chunk of a hundred, read on the extension's threads beside the others: its error
    # is the whole read's, after every other task has finished.
    del cid_store.blocks[chunk]
    with pytest.raises(hamt_rs.NotFoundError):
        read()
    cid_store.blocks[chunk] = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(hamt_rs.CorruptBlockError):
        read()
    cid_store.blocks[chunk] = good
    assert read()[13, 29] == 13 * 40 + 29


def test_bad_cids_and_arguments():
    async def go():
        with pytest.raises(ValueError, match="invalid CID"):
            await HAMT.build(cas=InMemoryCAS(), root_node_id="not-a-cid")
        with pytest.raises(TypeError):
            await HAMT.build(cas=InMemoryCAS(), root_node_id=12)
        with pytest.raises(TypeError):
            await HAMT.build(cas=object())
        with pytest.raises(ValueError):
            await HAMT.build(cas=InMemoryCAS(), max_bucket_size=0)
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=False)
        with pytest.raises(ValueError, match="values_are_bytes"):
            ZarrHAMTStore(hamt)
        with pytest.raises(ValueError, match="must match"):
            ZarrHAMTStore(await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True), read_only=True)

    run(go())


def test_a_closed_store_says_so(scratch):
    async def go():
        store = open_store(f"sled:{scratch / 'db'}")
        hamt = await HAMT.build(cas=store, values_are_bytes=True)
        await hamt.set("a", b"1")
        await hamt.make_read_only()
        await store.aclose()
        assert store.closed
        with pytest.raises(hamt_rs.StoreError, match="closed") as info:
            await HAMT.build(cas=store, root_node_id=hamt.root_node_id, read_only=True)
        assert info.value.is_temporary is False
        # Closed, the database is free for the next opener.
        again = open_store(f"sled:{scratch / 'db'}")
        back = await HAMT.build(cas=again, root_node_id=hamt.root_node_id, read_only=True, values_are_bytes=True)
        assert await back.get("a") == b"1"
        again.close()

    run(go())


def test_sled_held_by_another_opener_is_a_store_error(scratch):
    store = open_store(f"sled:{scratch / 'db'}")
    with pytest.raises(hamt_rs.StoreError) as info:
        open_store(f"sled:{scratch / 'db'}")
    assert "sled" in str(info.value)
    store.close()


def test_a_failing_python_cas_raises_its_own_exception():
    class Broken:
        async def save(self, data, codec):
            raise ConnectionError("the CAS is down")

        async def load(self, id, offset=None, length=None, suffix=None):
            raise ConnectionError("the CAS is down")

    async def go():
        hamt = await HAMT.build(cas=Broken(), values_are_bytes=True)
        with pytest.raises(ConnectionError, match="the CAS is down"):
            await hamt.set("a", b"1")

    run(go())


def test_a_cas_returning_wrong_ids_is_refused():
    class Liar:
        async def save(self, data, codec):
            return CID.decode("bafkr4igwhpm2qjvpsha75i3rszngjyi64ihrhzdll5jmlgibcntalm5eq4")

        async def load(self, id, offset=None, length=None, suffix=None):
            raise KeyError(id)

    async def go():
        hamt = await HAMT.build(cas=Liar(), values_are_bytes=True)
        await hamt.set("a", b"1")  # a value's ID is whatever the CAS says, as in py-hamt
        with pytest.raises(hamt_rs.StoreError, match="BLAKE3"):
            await hamt.make_read_only()  # a node's ID must be its CID

    run(go())


def test_async_methods_called_without_an_event_loop_wait_to_be_awaited():
    hamt = HAMT(InMemoryCAS())
    pending = hamt.len()
    assert asyncio.iscoroutine(pending)
    assert asyncio.run(pending) == 0
    with pytest.raises(RuntimeError, match="already awaited"):
        asyncio.run(pending)
    # Stepped by hand outside a loop, it still needs one to run on.
    with pytest.raises(RuntimeError):
        hamt.len().send(None)


def test_sharded_v1_creation_is_refused_not_replaced_by_v2():
    async def go():
        # py-hamt makes its deprecated v1 layout from shapes without a manifest version.
        with pytest.raises(NotImplementedError, match="v1"):
            await ShardedZarrStore.open(
                cas=InMemoryCAS(), read_only=False, array_shape=(4,), chunk_shape=(2,), chunks_per_shard=4
            )
        with pytest.raises(NotImplementedError, match="v1"):
            await ShardedZarrStore.open(
                cas=InMemoryCAS(), read_only=False, chunks_per_shard=4, manifest_version="sharded_zarr_v1"
            )
        v2 = await ShardedZarrStore.open(
            cas=InMemoryCAS(),
            read_only=False,
            array_shape=(4,),
            chunk_shape=(2,),
            chunks_per_shard=4,
            manifest_version="sharded_zarr_v2",
        )
        assert isinstance(await v2.flush(), str)

    run(go())


def test_a_panic_becomes_an_exception():
    from hamt_rs import _native

    async def go():
        with pytest.raises(hamt_rs.PanicError, match="a panic for the tests, in a future"):
            await _native._panic_for_tests(True)

    run(go())
    # A panic in a synchronous call is pyo3's PanicException (a BaseException): caught too.
    with pytest.raises(BaseException, match="a panic for the tests"):
        run(_call_sync())


async def _call_sync():
    from hamt_rs import _native

    return _native._panic_for_tests(False)


@pytest.mark.parametrize("compressor", ["zstd", "gzip"])
def test_a_chunk_shape_its_blocks_cannot_fill_is_a_format_error(cid_store, compressor):
    """A damaged or hostile zarr.json that declares huge chunks: each chunk's read in Rust
    fails with FormatError, before allocating what the shape asks for (zstd is decoded by
    the pipeline itself, gzip by zarrs)."""
    import json

    import numpy as np
    import zarr

    async def write():
        hamt = await HAMT.build(cas=cid_store, values_are_bytes=True)
        codec = zarr.codecs.ZstdCodec() if compressor == "zstd" else zarr.codecs.GzipCodec()
        arr = zarr.create_array(
            ZarrHAMTStore(hamt), name="a", shape=(40, 40), chunks=(4, 4), dtype="f4", compressors=[codec]
        )
        arr[:] = np.arange(1600, dtype="f4").reshape(40, 40)
        meta = json.loads(await hamt.get("a/zarr.json"))
        meta["shape"] = [1 << 40, 1 << 40]
        meta["chunk_grid"]["configuration"]["chunk_shape"] = [1 << 30, 1 << 30]
        await hamt.set("a/zarr.json", json.dumps(meta).encode())
        await hamt.make_read_only()
        return hamt

    hamt = run(write())
    with zarr.config.set({"codec_pipeline.path": "hamt_rs.CodecPipeline"}):
        arr = zarr.open_array(ZarrHAMTStore(hamt, read_only=True), path="a", mode="r")
        with pytest.raises(hamt_rs.FormatError, match="cannot decode chunk a/c/0/0"):
            arr[:2, :2]


def test_a_negative_zarr_byte_request_is_a_value_error():
    import zarr
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    async def go():
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
        zs = ZarrHAMTStore(hamt)
        prototype = zarr.core.buffer.default_buffer_prototype()
        await zs.set("k", prototype.buffer.from_bytes(b"0123456789"))
        for request in (RangeByteRequest(-1, 3), OffsetByteRequest(-2), SuffixByteRequest(-2)):
            with pytest.raises(ValueError, match=">= 0"):
                await zs.get("k", prototype, request)
        got = await zs.get("k", prototype, RangeByteRequest(8, 20))
        assert got.to_bytes() == b"89"

    run(go())


def test_a_chunk_box_past_an_output_dimension_is_refused():
    """A box that runs past the last column would, in bytes, wrap into the next row, where
    another chunk's box writes: the pipeline's read refuses it before any thread writes."""
    import numpy as np
    import zarr

    from hamt_rs import _native

    async def write():
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
        zs = ZarrHAMTStore(hamt)
        array = zarr.create_array(zs, name="a", shape=(4, 4), chunks=(2, 2), dtype="int32", fill_value=0)
        array[:] = np.arange(16, dtype="int32").reshape(4, 4)
        return zs

    zs = run(write())
    out = np.zeros((4, 4), "int32")
    view = out.reshape(-1).view(np.uint8)
    items = [("a/c/0/0", [0, 0], [2, 2], [0, 3]), ("a/c/0/1", [0, 0], [2, 2], [1, 0])]
    with pytest.raises(ValueError, match="does not fit"):
        _native.read_chunks_sync(zs._core, items, view, [4, 4], 4)
    assert not out.any(), "nothing was written"
    # The same chunks in their own boxes read fine.
    good = [("a/c/0/0", [0, 0], [2, 2], [0, 0]), ("a/c/0/1", [0, 0], [2, 2], [0, 2])]
    assert list(_native.read_chunks_sync(zs._core, good, view, [4, 4], 4)) == [1, 1]
    np.testing.assert_array_equal(out[:2], np.arange(8, dtype="int32").reshape(2, 4))
