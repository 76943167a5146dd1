"""The HAMT: py-hamt's API and behaviour, and parity with real py-hamt 3.6 (same root CIDs for
the same operations, each reading what the other wrote)."""

from __future__ import annotations

import asyncio
import pickle
import random

import pytest
from multiformats import CID

import hamt_rs
from hamt_rs import HAMT, InMemoryCAS, open_store

from conftest import required_env, run


def value(i: int, as_bytes: bool):
    if as_bytes:
        return f"value-{i}".encode() * (1 + i % 3)
    return {"i": i, "s": f"v{i}", "l": [i, -i, 1.5], "b": bytes([i % 256]), "n": None, "t": i % 2 == 0}


async def workload(module, cas, n: int, bucket: int, as_bytes: bool):
    """Inserts in a shuffled order, deletes every third key, overwrites every fifth; returns
    the HAMT after make_read_only."""
    hamt = await module.HAMT.build(cas=cas, max_bucket_size=bucket, values_are_bytes=as_bytes)
    order = list(range(n))
    random.Random(7).shuffle(order)
    for i in order:
        await hamt.set(f"key-{i}", value(i, as_bytes))
    for i in range(0, n, 3):
        await hamt.delete(f"key-{i}")
    for i in range(1, n, 5):
        await hamt.set(f"key-{i}", value(i + n, as_bytes))
    await hamt.make_read_only()
    return hamt


def expected(n: int, as_bytes: bool) -> dict:
    out = {f"key-{i}": value(i, as_bytes) for i in range(n) if i % 3}
    for i in range(1, n, 5):
        out[f"key-{i}"] = value(i + n, as_bytes)
    return out


async def contents(hamt) -> dict:
    return {k: await hamt.get(k) async for k in hamt.keys()}


@pytest.mark.pyhamt
@pytest.mark.parametrize("bucket", [1, 4])
@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "cbor"])
def test_same_root_as_py_hamt_and_each_reads_the_other(bucket, as_bytes, cid_store):
    import py_hamt

    n = 600

    async def go():
        theirs = await workload(py_hamt, cid_store, n, bucket, as_bytes)
        ours_store = InMemoryCAS()
        ours = await workload(hamt_rs, ours_store, n, bucket, as_bytes)
        assert isinstance(ours.root_node_id, CID)
        assert ours.root_node_id == theirs.root_node_id
        want = expected(n, as_bytes)
        # hamt_rs reads py-hamt's blocks through py-hamt's own CAS object (a Python CAS).
        read_theirs = await HAMT.build(
            cas=cid_store, root_node_id=theirs.root_node_id, read_only=True, values_are_bytes=as_bytes
        )
        assert await contents(read_theirs) == want
        assert await read_theirs.len() == len(want)
        # py-hamt reads hamt_rs's blocks through the hamt_rs store (it has save/load).
        read_ours = await py_hamt.HAMT.build(
            cas=ours_store, root_node_id=ours.root_node_id, read_only=True, values_are_bytes=as_bytes
        )
        assert await contents(read_ours) == want

    run(go())


@pytest.mark.pyhamt
def test_hamt_rs_writes_through_a_python_cas_with_py_hamts_root(cid_store):
    import py_hamt

    async def go():
        ours = await workload(hamt_rs, cid_store, 200, 4, True)
        theirs = await workload(py_hamt, type(cid_store)(), 200, 4, True)
        assert ours.root_node_id == theirs.root_node_id
        back = await py_hamt.HAMT.build(
            cas=cid_store, root_node_id=ours.root_node_id, read_only=True, values_are_bytes=True
        )
        assert await contents(back) == expected(200, True)

    run(go())


@pytest.mark.pyhamt
def test_py_hamt_in_memory_cas_digest_ids_work():
    import py_hamt

    async def go():
        cas = py_hamt.InMemoryCAS()
        ours = await HAMT.build(cas=cas, values_are_bytes=True)
        await ours.set("a", b"1")
        await ours.make_read_only()
        back = await HAMT.build(cas=cas, root_node_id=ours.root_node_id, read_only=True, values_are_bytes=True)
        assert await back.get("a") == b"1"

    run(go())


def test_the_py_hamt_api_on_a_sled_store(scratch):
    async def go():
        store = open_store(f"sled:{scratch / 'db'}")
        hamt = await HAMT.build(cas=store)
        assert not hamt.read_only and not hamt.values_are_bytes and hamt.max_bucket_size == 4
        await hamt.set("a", {"x": [1, 2.5, "three", None, True, b"\x00"]})
        await hamt.set("big", 2**64 - 1)
        await hamt.set("neg", -(2**64))
        assert await hamt.get("a") == {"x": [1, 2.5, "three", None, True, b"\x00"]}
        assert await hamt.get("big") == 2**64 - 1 and await hamt.get("neg") == -(2**64)
        assert await hamt.len() == 3
        await hamt.delete("neg")
        with pytest.raises(KeyError):
            await hamt.get("neg")
        with pytest.raises(KeyError):
            await hamt.delete("neg")
        assert sorted([k async for k in hamt.keys()]) == ["a", "big"]
        await hamt.make_read_only()
        root = hamt.root_node_id
        with pytest.raises(hamt_rs.ReadOnlyError):
            await hamt.set("b", 1)
        with pytest.raises(hamt_rs.ReadOnlyError):
            await hamt.delete("a")
        await hamt.enable_write()
        await hamt.set("c", "x")
        await hamt.make_read_only()
        assert hamt.root_node_id != root
        # The root as text opens the same tree.
        again = await HAMT.build(cas=store, root_node_id=str(root), read_only=True)
        assert await again.get("big") == 2**64 - 1
        with pytest.raises(KeyError):
            await again.get("c")
        assert isinstance(await again.get_pointer("a"), CID)
        store.close()

    run(go())


def test_values_are_bytes_returns_ranges_like_py_hamt():
    async def go():
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
        await hamt.set("k", b"0123456789")
        assert await hamt.get("k", offset=2, length=3) == b"234"
        assert await hamt.get("k", offset=7) == b"789"
        assert await hamt.get("k", suffix=2) == b"89"
        assert await hamt.get("k", suffix=0) == b""

    run(go())


@pytest.mark.pyhamt
def test_every_range_reads_what_py_hamts_in_memory_cas_slices():
    """Negative and past-the-end positions included: Python's slice semantics, exactly as
    py-hamt applies them (its InMemoryCAS), through our CAS's load and the HAMT's get."""
    import py_hamt

    data = b"0123456789"
    positions = [None, -12, -10, -3, -1, 0, 1, 3, 9, 10, 11, 2**40, -(2**40)]

    async def go():
        theirs = py_hamt.InMemoryCAS()
        their_id = await theirs.save(data, "raw")
        cas = InMemoryCAS()
        our_id = await cas.save(data, "raw")
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        await hamt.set("k", data)
        for offset in positions:
            for length in positions:
                for suffix in positions:
                    want = await theirs.load(their_id, offset=offset, length=length, suffix=suffix)
                    args = {"offset": offset, "length": length, "suffix": suffix}
                    assert await cas.load(our_id, **args) == want, args
                    assert await hamt.get("k", **args) == want, args

    run(go())


def test_values_not_dag_cbor_are_refused():
    async def go():
        hamt = await HAMT.build(cas=InMemoryCAS())
        with pytest.raises(TypeError):
            await hamt.set("k", object())
        with pytest.raises(ValueError):
            await hamt.set("k", float("nan"))
        with pytest.raises(ValueError):
            await hamt.set("k", 2**64)
        with pytest.raises(TypeError):
            await hamt.set("k", {1: "int key"})

    run(go())


def test_many_concurrent_gets_share_one_tree():
    import asyncio

    async def go():
        hamt = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
        for i in range(500):
            await hamt.set(f"k{i}", str(i).encode())
        await hamt.make_read_only()
        got = await asyncio.gather(*(hamt.get(f"k{i}") for i in range(500)))
        assert got == [str(i).encode() for i in range(500)]

    run(go())


def test_hamts_on_one_store_share_its_node_cache():
    async def go():
        store = InMemoryCAS()
        hamt = await HAMT.build(cas=store, values_are_bytes=True)
        for i in range(2000):
            await hamt.set(f"k{i}", str(i).encode())
        await hamt.make_read_only()
        root = hamt.root_node_id
        del hamt
        first = await HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True)
        for i in range(0, 2000, 7):
            assert await first.get(f"k{i}") == str(i).encode()
        held = await first.cache_size()
        assert held > 0
        # A second HAMT on the same store starts warm; one on another store does not.
        second = await HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True)
        assert await second.cache_size() == held
        other = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True)
        assert await other.cache_size() == 0
        await second.cache_vacate()
        assert await first.cache_size() == 0
        assert await first.get("k1999") == b"1999"

    run(go())


def test_read_only_hamt_pickles_by_url_and_root(scratch):
    # An S3 store is shared between processes; sled is not, and the error says so.
    import os

    async def go():
        sled = open_store(f"sled:{scratch / 'db'}")
        hamt = await HAMT.build(cas=sled, values_are_bytes=True)
        await hamt.set("a", b"1")
        with pytest.raises(pickle.PicklingError, match="writable"):
            pickle.dumps(hamt)
        await hamt.make_read_only()
        with pytest.raises(pickle.PicklingError, match="one process at a time"):
            pickle.dumps(hamt)
        assert sled.capabilities().shared is False
        sled.close()

        endpoint = required_env("HAMT_TEST_S3_ENDPOINT")
        bucket = required_env("HAMT_TEST_S3_BUCKET")
        s3 = open_store(f"s3://{bucket}/pickle-{os.getpid()}?endpoint={endpoint}")
        assert s3.capabilities().shared is True
        hamt = await HAMT.build(cas=s3, values_are_bytes=True)
        await hamt.set("a", b"1")
        await hamt.make_read_only()
        return pickle.dumps(hamt), hamt.root_node_id

    blob, root = run(go())
    back = pickle.loads(blob)
    assert back.root_node_id == root and back.read_only

    async def read():
        return await back.get("a")

    assert run(read()) == b"1"


@pytest.mark.parametrize("bucket", [1, 4])
def test_zarr_store_lists_keys_in_the_trees_order(bucket):
    """The Zarr store computes the listing order from the keys (it must not read nodes back
    while writing); it equals the order of a walk of the stored tree."""

    async def go():
        store = InMemoryCAS()
        hamt = await HAMT.build(cas=store, values_are_bytes=True, max_bucket_size=bucket)
        zs = hamt_rs.ZarrHAMTStore(hamt)
        from zarr.core.buffer import default_buffer_prototype

        proto = default_buffer_prototype()
        for i in range(400):
            await zs.set(f"v{i % 7}/c/{i}/{i % 3}", proto.buffer.from_bytes(b"x"))
        listed = [k async for k in zs.list()]
        await hamt.make_read_only()
        walked = [k async for k in (await HAMT.build(cas=store, root_node_id=hamt.root_node_id, read_only=True)).keys()]
        assert listed == walked and len(listed) == 400

    run(go())


@pytest.mark.pyhamt
@pytest.mark.parametrize("bucket", [1, 4])
def test_listing_order_is_py_hamts_after_a_flush(cid_store, bucket):
    """Keys inserted in a shuffled order, some deleted: once flushed, py-hamt lists a
    bucket's keys in DAG-CBOR order, as hamt_rs always does. (While it is writable py-hamt
    lists a bucket in the order of its in-memory dict, which hamt_rs does not reproduce.)"""
    import py_hamt

    keys = [f"key/{i}" for i in range(300)] + [f"k{i}" for i in range(100)]
    random.Random(7).shuffle(keys)

    async def go():
        ours = await HAMT.build(cas=InMemoryCAS(), values_are_bytes=True, max_bucket_size=bucket)
        theirs = await py_hamt.HAMT.build(cas=cid_store, values_are_bytes=True, max_bucket_size=bucket)
        for k in keys:
            await ours.set(k, b"v")
            await theirs.set(k, b"v")
        for k in keys[::5]:
            await ours.delete(k)
            await theirs.delete(k)
        zs = hamt_rs.ZarrHAMTStore(ours)
        listed = [k async for k in zs.list()]
        await ours.make_read_only()
        await theirs.make_read_only()
        expected = [k async for k in theirs.keys()]
        assert len(expected) == 320
        assert listed == expected
        assert [k async for k in ours.keys()] == expected

    run(go())


class SlowCas:
    """A Python CAS whose every call waits on the event loop first, so hamt_rs's calls on it
    are under way when they return (the asyncio-future path, not an immediate result)."""

    def __init__(self):
        self.inner = InMemoryCAS()

    async def save(self, data, codec):
        await asyncio.sleep(0)
        return await self.inner.save(data, codec)

    async def load(self, id, offset=None, length=None, suffix=None):
        await asyncio.sleep(0)
        return await self.inner.load(id, offset=offset, length=length, suffix=suffix)


@pytest.mark.parametrize("cas", [InMemoryCAS, SlowCas])
def test_async_methods_are_coroutines_as_py_hamts_async_defs_are(cas):
    # Made where no event loop runs, and run by asyncio.run, as `async def` methods can be.
    hamt = asyncio.run(HAMT.build(cas=cas(), values_are_bytes=True))
    assert asyncio.run(hamt.set("a", b"1")) is None
    assert asyncio.run(hamt.get("a")) == b"1"
    # A coroutine that is never awaited does nothing.
    unawaited = hamt.set("b", b"2")
    assert asyncio.iscoroutine(unawaited)
    unawaited.close()
    with pytest.raises(KeyError):
        asyncio.run(hamt.get("b"))

    async def tasks():
        # Inside a loop: tasks, task groups, gather and wait_for take them all.
        assert asyncio.iscoroutine(hamt.get("a"))
        first = asyncio.create_task(hamt.set("c", b"3"))
        async with asyncio.TaskGroup() as group:
            for i in range(20):
                group.create_task(hamt.set(f"k{i}", bytes([i])))
        await first
        got = await asyncio.gather(*(hamt.get(f"k{i}") for i in range(20)))
        assert got == [bytes([i]) for i in range(20)]
        assert await asyncio.wait_for(hamt.get("c"), timeout=30) == b"3"
        with pytest.raises(KeyError):
            await asyncio.create_task(hamt.get("missing"))
        # Awaiting one twice is an error, as it is for a coroutine.
        once = hamt.get("a")
        assert await once == b"1"
        with pytest.raises(RuntimeError):
            await once
        await hamt.make_read_only()
        return hamt.root_node_id

    root = asyncio.run(tasks())
    reader = asyncio.run(HAMT.build(cas=hamt.cas, root_node_id=root, read_only=True, values_are_bytes=True))
    assert asyncio.run(reader.len()) == 22


def test_a_cancelled_task_on_a_pending_call_is_cancelled():
    class Stuck(SlowCas):
        """Loads hang once `stuck` is set (after the root node is read)."""

        stuck = False

        async def load(self, id, offset=None, length=None, suffix=None):
            if self.stuck:
                await asyncio.sleep(3600)
            return await super().load(id, offset=offset, length=length, suffix=suffix)

    async def go():
        cas = SlowCas()
        writer = await HAMT.build(cas=cas, values_are_bytes=True)
        await writer.set("a", b"1")
        await writer.make_read_only()
        stuck = Stuck()
        stuck.inner = cas.inner
        reader = await HAMT.build(cas=stuck, root_node_id=writer.root_node_id, read_only=True, values_are_bytes=True)
        stuck.stuck = True
        task = asyncio.create_task(reader.get("a"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(go(), timeout=60))
