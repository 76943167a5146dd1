"""py-hamt on the same workload as the Rust benchmarks, for `cargo xtask bench`.

  pyhamt_bench.py N  -> JSON {"n": N, "insert_flush_s": ..., "get_all_cold_s": ...}

Keys and 8-byte values are generated exactly as `hamt_benches::Data::new(N, 8)` makes them;
blocks live in memory under the CIDs a Kubo node would give (the interop tests' store).
"""

import asyncio
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hamt", "tests", "pyhamt"))
from vectors import CidStore  # noqa: E402
from py_hamt import HAMT  # noqa: E402


def data(n):
    pairs = []
    for i in range(n):
        key = f"temperature/{i // 10_000}.{(i // 100) % 100}.{i % 100}"
        tag = struct.pack("<Q", i)
        value = bytes(tag[j % 8] ^ (j % 251) for j in range(8))
        pairs.append((key, value))
    return pairs


async def main(n):
    pairs = data(n)
    store = CidStore()
    start = time.perf_counter()
    hamt = await HAMT.build(cas=store, values_are_bytes=True)
    for key, value in pairs:
        await hamt.set(key, value)
    await hamt.make_read_only()
    insert_flush = time.perf_counter() - start
    root = hamt.root_node_id

    start = time.perf_counter()
    reader = await HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True)
    for key, value in pairs:
        got = await reader.get(key)
        assert got == value, key
    get_all = time.perf_counter() - start
    json.dump({"n": n, "root": str(root), "insert_flush_s": insert_flush, "get_all_cold_s": get_all}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
