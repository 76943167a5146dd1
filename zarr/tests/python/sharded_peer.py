"""Interop peer for the sharded-store tests: real xarray + zarr-python + py-hamt 3.6.

  sharded_peer.py write CPS        -> {root, blocks, ops, arrays}  xarray writes groups g and h
                                      into a ShardedZarrStore; ops = every store call, in order
  sharded_peer.py read             <- {root, blocks, names} -> {arrays}  py-hamt reads by root
  sharded_peer.py write-v1         -> {root, blocks, values}  a legacy sharded_zarr_v1 root
  sharded_peer.py convert CPS      -> {hamt_root, root, blocks}  a grouped HAMT dataset, and
                                      py-hamt's converter's sharded root for it

Blocks go through the CidStore of hamt/tests/pyhamt/vectors.py (CIDv1, BLAKE3).
"""

import asyncio
import base64
import contextlib
import json
import os
import sys
import warnings

import numpy as np
import xarray as xr
import zarr

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "hamt", "tests", "pyhamt"))
sys.path.insert(0, os.path.dirname(__file__))
from vectors import CidStore  # noqa: E402
from multiformats import CID  # noqa: E402
from peer import arrays_of, dataset  # noqa: E402
from py_hamt import HAMT, ShardedZarrStore, ZarrHAMTStore, convert_hamt_to_sharded  # noqa: E402


def small(scale):
    """Group h: two small arrays, one chunked, on their own dimensions."""
    a = np.arange(24, dtype="float32").reshape(4, 6) * scale
    b = np.arange(10, dtype="int64") * 3
    return xr.Dataset({"a": (("r", "q"), a), "b": (("k",), b)}), {"a": {"chunks": (2, 4)}, "b": {"chunks": (4,)}}


def blocks_of(store):
    return {str(c): base64.b64encode(d).decode() for c, d in store.blocks.items()}


async def write(cps):
    cas = CidStore()
    st = await ShardedZarrStore.open(cas=cas, read_only=False, chunks_per_shard=cps)
    ops = []
    set_, delete, delete_dir = st.set, st.delete, st.delete_dir

    async def rec_set(key, value):
        ops.append(["set", key, base64.b64encode(value.to_bytes()).decode()])
        await set_(key, value)

    async def rec_delete(key):
        ops.append(["delete", key, ""])
        await delete(key)

    async def rec_delete_dir(prefix):
        ops.append(["delete_dir", prefix, ""])
        await delete_dir(prefix)

    st.set, st.delete, st.delete_dir = rec_set, rec_delete, rec_delete_dir
    ds, enc = dataset(1.0)
    ds.to_zarr(store=st, group="g", mode="w", zarr_format=3, encoding=enc)
    h, henc = small(2.0)
    h.to_zarr(store=st, group="h", mode="w", zarr_format=3, encoding=henc)
    root = await st.flush()
    arrays = {**arrays_of(ds, "g/"), **arrays_of(h, "h/")}
    json.dump({"root": str(root), "blocks": blocks_of(cas), "ops": ops, "arrays": arrays}, sys.stdout)


async def read():
    doc = json.load(sys.stdin)
    cas = CidStore()
    for c, d in doc["blocks"].items():
        cas.blocks[CID.decode(c)] = base64.b64decode(d)
    st = await ShardedZarrStore.open(cas=cas, read_only=True, root_cid=doc["root"])
    arrays = {}
    for path in doc["names"]:
        values = np.asarray(zarr.open_array(store=st, path=path, mode="r", zarr_format=3)[...])
        arrays[path] = {"shape": list(values.shape), "dtype": str(values.dtype), "values": values.ravel().tolist()}
    # And through xarray, by group.
    ds = xr.open_zarr(st, group="g", zarr_format=3, consolidated=False).load()
    for name, var in ds.variables.items():
        assert np.array_equal(np.asarray(var.values), np.asarray(arrays["g/" + name]["values"]).reshape(var.shape)), name
    json.dump({"arrays": arrays}, sys.stdout)


async def convert(cps):
    cas = CidStore()
    hamt = await HAMT.build(cas=cas, values_are_bytes=True)
    ds, enc = dataset(1.5)
    # Unconsolidated: py-hamt's ZarrHAMTStore cannot consolidate a subgroup (see peer.py).
    ds.to_zarr(store=ZarrHAMTStore(hamt, read_only=False), group="g", mode="w", zarr_format=3, encoding=enc, consolidated=False)
    await hamt.make_read_only()
    # The converter prints its progress on stdout, which carries the JSON here.
    with contextlib.redirect_stdout(sys.stderr):
        root = await convert_hamt_to_sharded(cas, str(hamt.root_node_id), cps)
    json.dump({"hamt_root": str(hamt.root_node_id), "root": str(root), "blocks": blocks_of(cas)}, sys.stdout)


async def write_v1():
    from zarr.core.buffer import default_buffer_prototype

    buf = default_buffer_prototype().buffer
    cas = CidStore()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = await ShardedZarrStore.open(cas=cas, read_only=False, array_shape=(4, 4), chunk_shape=(2, 2), chunks_per_shard=3)
    meta = b'{"shape":[4,4],"chunk_grid":{"name":"regular","configuration":{"chunk_shape":[2,2]}},"node_type":"array","zarr_format":3}'
    values = {"temp/zarr.json": meta, "temp/c/0/0": b"chunk00", "temp/c/1/1": b"chunk11", "time/c/0": b"timechunk"}
    for key, value in values.items():
        await st.set(key, buf.from_bytes(value))
    root = await st.flush()
    out = {k: base64.b64encode(v).decode() for k, v in values.items()}
    json.dump({"root": str(root), "blocks": blocks_of(cas), "values": out}, sys.stdout)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "write":
        asyncio.run(write(int(sys.argv[2])))
    elif cmd == "read":
        asyncio.run(read())
    elif cmd == "write-v1":
        asyncio.run(write_v1())
    elif cmd == "convert":
        asyncio.run(convert(int(sys.argv[2])))
    else:
        sys.exit(f"unknown command {cmd}")
