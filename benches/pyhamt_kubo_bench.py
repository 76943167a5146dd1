"""py-hamt's KuboCAS against the IPFS test node, for `cargo xtask bench kubo`.

  pyhamt_kubo_bench.py RPC_URL GATEWAY_URL N -> JSON {"write_s", "read_s", "root"}

Writes N keys `py/{i}` -> `py value {i}` (values_are_bytes) through the node's RPC API, then
reads every key back through GATEWAY_URL (this project's gateway in front of the node: the
JavaScript node's own gateway cannot serve DAG-CBOR blocks).
"""

import asyncio
import json
import sys
import time

from py_hamt import HAMT, KuboCAS


async def main(rpc, gateway, n):
    async with KuboCAS(rpc_base_url=rpc, gateway_base_url=gateway) as cas:
        start = time.perf_counter()
        hamt = await HAMT.build(cas=cas, values_are_bytes=True)
        for i in range(n):
            await hamt.set(f"py/{i}", f"py value {i}".encode())
        await hamt.make_read_only()
        write_s = time.perf_counter() - start
        root = hamt.root_node_id

    async with KuboCAS(rpc_base_url=rpc, gateway_base_url=gateway) as cas:
        start = time.perf_counter()
        reader = await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)
        for i in range(n):
            assert await reader.get(f"py/{i}") == f"py value {i}".encode()
        read_s = time.perf_counter() - start
    json.dump({"write_s": write_s, "read_s": read_s, "root": str(root)}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
