"""py-hamt 3.6 reading the dataset `net_read` wrote, through its gateway behind the proxy, for
`cargo xtask bench net`.

  net_bench.py GATEWAY_URL ROOT REGION_KEYS SINGLE_KEY
    -> JSON {"whole_s", "checksum", "region_s", "region_bytes", "get_s"}

Each read starts cold (a new KuboCAS and HAMT): the whole dataset with xarray's
`open_zarr(ZarrHAMTStore).load()`, the chunks REGION_KEYS (comma-separated) fetched together,
and the one key SINGLE_KEY.
"""

import asyncio
import json
import sys
import time

import xarray as xr
from multiformats import CID
from py_hamt import HAMT, KuboCAS, ZarrHAMTStore


async def cold_hamt(cas, root):
    return await HAMT.build(cas=cas, root_node_id=root, read_only=True, values_are_bytes=True)


async def whole(gateway, root):
    async with KuboCAS(gateway_base_url=gateway) as cas:
        start = time.perf_counter()
        hamt = await cold_hamt(cas, root)
        store = ZarrHAMTStore(hamt, read_only=True)
        # xarray's own loop runs zarr's async reads; this coroutine's loop is left alone.
        ds = await asyncio.to_thread(lambda: xr.open_zarr(store, consolidated=False).load())
        seconds = time.perf_counter() - start
        return seconds, float(ds["data"].astype("float64").sum())


async def region(gateway, root, keys):
    async with KuboCAS(gateway_base_url=gateway) as cas:
        start = time.perf_counter()
        hamt = await cold_hamt(cas, root)
        values = await asyncio.gather(*(hamt.get(k) for k in keys))
        seconds = time.perf_counter() - start
        return seconds, sum(len(v) for v in values)


async def main(gateway, root, region_keys, single_key):
    root = CID.decode(root)
    whole_s, checksum = await whole(gateway, root)
    region_s, region_bytes = await region(gateway, root, region_keys)
    get_s, _ = await region(gateway, root, [single_key])
    json.dump(
        {
            "whole_s": whole_s,
            "checksum": checksum,
            "region_s": region_s,
            "region_bytes": region_bytes,
            "get_s": get_s,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]))
