"""Interop peer for the Rust tests: real py-hamt (from PyPI) writing and reading HAMTs.

py-hamt's InMemoryCAS returns bare BLAKE3 digests; this store returns the CIDs a Kubo node
gives py-hamt's KuboCAS instead: CIDv1, BLAKE3-256, codec dag-cbor for nodes, raw for values.

  vectors.py write N BUCKET MODE   -> JSON {root, blocks} on stdout (MODE: bytes | cbor)
  vectors.py read BUCKET MODE      <- JSON {root, blocks} on stdin, JSON {key: value} on stdout
"""

import asyncio
import base64
import json
import random
import sys

import dag_cbor
from blake3 import blake3
from multiformats import CID, multihash
from py_hamt import HAMT, ContentAddressedStore


class CidStore(ContentAddressedStore):
    def __init__(self):
        self.blocks = {}

    async def save(self, data, codec):
        digest = blake3(bytes(data)).digest(length=32)
        cid = CID("base32", 1, codec, multihash.wrap(digest, "blake3"))
        self.blocks[cid] = bytes(data)
        return cid

    async def load(self, id, offset=None, length=None, suffix=None):
        data = self.blocks[id if isinstance(id, CID) else CID.decode(id)]
        if offset is not None:
            end = None if length is None else offset + length
            return data[offset:end]
        if suffix is not None:
            return data[-suffix:] if suffix else b""
        return data


def value(i, mode):
    if mode == "bytes":
        return f"value-{i}".encode() * (1 + i % 3)
    return {"i": i, "s": f"v{i}", "l": [i, -i, 1.5], "b": bytes([i % 256])}


async def write(n, bucket, mode):
    store = CidStore()
    hamt = await HAMT.build(cas=store, max_bucket_size=bucket, values_are_bytes=(mode == "bytes"))
    order = list(range(n))
    random.Random(7).shuffle(order)
    for i in order:
        await hamt.set(f"key-{i}", value(i, mode))
    # Deletes exercise py-hamt 3.6's collapse of small subtrees.
    for i in range(0, n, 3):
        await hamt.delete(f"key-{i}")
    # Overwrites keep the key, change the value CID.
    for i in range(1, n, 5):
        await hamt.set(f"key-{i}", value(i + n, mode))
    await hamt.make_read_only()
    blocks = {str(c): base64.b64encode(d).decode() for c, d in store.blocks.items()}
    json.dump({"root": str(hamt.root_node_id), "blocks": blocks}, sys.stdout)


async def read(bucket, mode):
    doc = json.load(sys.stdin)
    store = CidStore()
    for c, d in doc["blocks"].items():
        store.blocks[CID.decode(c)] = base64.b64decode(d)
    hamt = await HAMT.build(
        cas=store,
        root_node_id=CID.decode(doc["root"]),
        read_only=True,
        max_bucket_size=bucket,
        values_are_bytes=(mode == "bytes"),
    )
    out = {}
    async for key in hamt.keys():
        v = await hamt.get(key)
        raw = v if mode == "bytes" else dag_cbor.encode(v)
        out[key] = base64.b64encode(raw).decode()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        asyncio.run(write(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
    else:
        asyncio.run(read(int(sys.argv[2]), sys.argv[3]))
