"""py-hamt's KuboCAS (from PyPI) against the test node, for the store-kubo interop tests.

  pyhamt_kubo.py write RPC_URL N   -> JSON {"root": CID}: N keys written through KuboCAS
  pyhamt_kubo.py read GATEWAY ROOT -> JSON {key: base64 value}, read through a gateway
  pyhamt_kubo.py add RPC_URL SIZE  -> JSON {"cid": CID} of a SIZE-byte value saved by KuboCAS
"""

import asyncio
import base64
import json
import sys

from multiformats import CID
from py_hamt import HAMT, KuboCAS


def value(i):
    return f"kubo value {i}".encode()


def big(size):
    return bytes((i * 7) % 251 for i in range(size))


async def main(mode, url, arg):
    if mode == "write":
        async with KuboCAS(rpc_base_url=url, gateway_base_url=url) as cas:
            hamt = await HAMT.build(cas=cas, values_are_bytes=True)
            for i in range(int(arg)):
                await hamt.set(f"k/{i}", value(i))
            await hamt.make_read_only()
            json.dump({"root": str(hamt.root_node_id)}, sys.stdout)
    elif mode == "read":
        async with KuboCAS(gateway_base_url=url, verify_content=True) as cas:
            hamt = await HAMT.build(
                cas=cas, root_node_id=CID.decode(arg), read_only=True, values_are_bytes=True
            )
            out = {}
            async for key in hamt.keys():
                out[key] = base64.b64encode(await hamt.get(key)).decode()
            json.dump(out, sys.stdout)
    elif mode == "add":
        async with KuboCAS(rpc_base_url=url, gateway_base_url=url) as cas:
            cid = await cas.save(big(int(arg)), codec="raw")
            json.dump({"cid": str(cid)}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
