"""py-hamt (from PyPI) reading a HAMT through this project's gateway, as users read Kubo.

  read_via_gateway.py GATEWAY_URL ROOT_CID -> JSON {"values": {key: base64}, "slices": {key: base64}}

`slices` holds bytes 1..4 of each value, read with py-hamt's ranged loads (HTTP Range).
"""

import asyncio
import base64
import json
import sys

from multiformats import CID
from py_hamt import HAMT, KuboCAS


async def main(url, root):
    async with KuboCAS(gateway_base_url=url, verify_content=True) as cas:
        hamt = await HAMT.build(
            cas=cas, root_node_id=CID.decode(root), read_only=True, values_are_bytes=True
        )
        values, slices = {}, {}
        async for key in hamt.keys():
            values[key] = base64.b64encode(await hamt.get(key)).decode()
            slices[key] = base64.b64encode(await hamt.get(key, offset=1, length=3)).decode()
    json.dump({"values": values, "slices": slices}, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
