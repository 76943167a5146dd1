"""Interop peer for the zarr crate's tests: real xarray + zarr-python + py-hamt (from PyPI).

Blocks travel as JSON {root, blocks: {cid: base64}} on stdin/stdout, through the CidStore of
hamt/tests/pyhamt/vectors.py (CIDv1, BLAKE3, raw values and dag-cbor nodes, as KuboCAS with a
BLAKE3 Kubo node gives).

  peer.py write                     -> {root, blocks, arrays}   a dataset written with xarray
  peer.py write-encrypted KEY HDR   -> {root, blocks, arrays}   group public/ clear, private/ sealed
  peer.py read                      <- {root, blocks}  -> {arrays, rebuilt_root}
  peer.py write-dir DIR              -> the dataset of `write` as a Zarr v3 directory store
  peer.py compare-dirs A B          -> "identical" when xarray opens both as the same dataset
  peer.py read-encrypted KEY HDR    <- {root, blocks, names}  -> {arrays}   names: array paths

`arrays` maps each variable path to {shape, dtype, values (flattened, C order)}. KEY is hex.
`rebuilt_root` is the root py-hamt gets when it inserts every key/value it read into a new HAMT.
"""

import asyncio
import base64
import json
import os
import sys

import numpy as np
import xarray as xr
import zarr

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "hamt", "tests", "pyhamt"))
from vectors import CidStore  # noqa: E402
from multiformats import CID  # noqa: E402
from py_hamt import HAMT, SimpleEncryptedZarrHAMTStore, ZarrHAMTStore  # noqa: E402


def dataset(scale):
    t, y, x = 6, 10, 12
    temp = (np.arange(t * y * x, dtype="float32").reshape(t, y, x) * 0.25 + scale).astype("float32")
    prec = np.sin(np.arange(t * y * x, dtype="float64")).reshape(t, y, x) * scale
    count = (np.arange(t * y * x, dtype="int32") % 97).reshape(t, y, x)
    ds = xr.Dataset(
        {
            "temp": (("time", "lat", "lon"), temp),
            "precip": (("time", "lat", "lon"), prec),
            "count": (("time", "lat", "lon"), count),
        },
        coords={
            "time": np.arange(t, dtype="int64"),
            "lat": np.linspace(-45.0, 45.0, y),
            "lon": np.linspace(0.0, 330.0, x),
        },
        attrs={"title": "interop", "source": "py-hamt"},
    )
    encoding = {v: {"chunks": (2, 5, 4)} for v in ("temp", "precip", "count")}
    return ds, encoding


def arrays_of(ds, prefix=""):
    out = {}
    for name, var in ds.variables.items():
        values = np.asarray(var.values)
        out[prefix + name] = {
            "shape": list(values.shape),
            "dtype": str(values.dtype),
            "values": values.ravel().tolist(),
        }
    return out


def dump(store, root, arrays):
    blocks = {str(c): base64.b64encode(d).decode() for c, d in store.blocks.items()}
    json.dump({"root": str(root), "blocks": blocks, "arrays": arrays}, sys.stdout)


doc_names = []


def load():
    doc = json.load(sys.stdin)
    doc_names.extend(doc.get("names", []))
    store = CidStore()
    for c, d in doc["blocks"].items():
        store.blocks[CID.decode(c)] = base64.b64decode(d)
    return store, CID.decode(doc["root"])


async def write():
    store = CidStore()
    hamt = await HAMT.build(cas=store, values_are_bytes=True)
    ds, encoding = dataset(1.0)
    ds.to_zarr(store=ZarrHAMTStore(hamt, read_only=False), mode="w", zarr_format=3, encoding=encoding)
    await hamt.make_read_only()
    dump(store, hamt.root_node_id, arrays_of(ds))


async def write_encrypted(key, header):
    store = CidStore()
    hamt = await HAMT.build(cas=store, values_are_bytes=True)
    public, enc = dataset(2.0)
    private, _ = dataset(3.0)
    plain = ZarrHAMTStore(hamt, read_only=False)
    sealed = SimpleEncryptedZarrHAMTStore(hamt, False, key, header)
    # Not consolidated: zarr-python lists a subgroup's members with a prefix lacking its
    # trailing "/", which py-hamt's list_dir does not match (consolidating recurses forever).
    public.to_zarr(store=plain, group="public", mode="w", zarr_format=3, encoding=enc, consolidated=False)
    private.to_zarr(store=sealed, group="private", mode="w", zarr_format=3, encoding=enc, consolidated=False)
    await hamt.make_read_only()
    dump(store, hamt.root_node_id, {**arrays_of(public, "public/"), **arrays_of(private, "private/")})


async def read():
    store, root = load()
    hamt = await HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True)
    ds = xr.open_zarr(ZarrHAMTStore(hamt, read_only=True), zarr_format=3, consolidated=False)
    arrays = arrays_of(ds.load())
    rebuilt = await HAMT.build(cas=CidStore(), values_are_bytes=True)
    async for key in hamt.keys():
        await rebuilt.set(key, await hamt.get(key))
    await rebuilt.make_read_only()
    json.dump({"arrays": arrays, "rebuilt_root": str(rebuilt.root_node_id)}, sys.stdout)


async def read_encrypted(key, header):
    store, root = load()
    hamt = await HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True)
    plain = ZarrHAMTStore(hamt, read_only=True)
    sealed = SimpleEncryptedZarrHAMTStore(hamt, True, key, header)
    arrays = {}
    # For the same list_dir mismatch, open each array by path rather than listing groups.
    for path in doc_names:
        store = plain if path.startswith("public/") else sealed
        values = np.asarray(zarr.open_array(store=store, path=path, mode="r", zarr_format=3)[...])
        arrays[path] = {"shape": list(values.shape), "dtype": str(values.dtype), "values": values.ravel().tolist()}
    json.dump({"arrays": arrays}, sys.stdout)


def write_dir(path):
    ds, encoding = dataset(1.0)
    ds.to_zarr(path, mode="w", zarr_format=3, encoding=encoding)


def compare_dirs(a, b):
    xr.testing.assert_identical(
        xr.open_zarr(a, zarr_format=3).load(), xr.open_zarr(b, zarr_format=3).load()
    )
    print("identical")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "write":
        asyncio.run(write())
    elif cmd == "write-encrypted":
        asyncio.run(write_encrypted(bytes.fromhex(sys.argv[2]), sys.argv[3].encode()))
    elif cmd == "read":
        asyncio.run(read())
    elif cmd == "read-encrypted":
        asyncio.run(read_encrypted(bytes.fromhex(sys.argv[2]), sys.argv[3].encode()))
    elif cmd == "write-dir":
        write_dir(sys.argv[2])
    elif cmd == "compare-dirs":
        compare_dirs(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
