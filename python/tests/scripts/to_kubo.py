"""A typical dClimate write script: an xarray dataset into a HAMT on a Kubo node through
py-hamt's ZarrHAMTStore. The migration test runs it as written and with the import changed to
hamt_rs; nothing else differs.

  to_kubo.py RPC_URL GATEWAY_URL  -> prints {"root": ..., "seconds": ...}
"""

import asyncio
import json
import sys
import time

import numpy as np
import pandas as pd
import xarray as xr

from py_hamt import HAMT, KuboCAS, ZarrHAMTStore


def load_dataset() -> xr.Dataset:
    times, lat, lon = 48, 32, 48
    rng = np.random.default_rng(2024)
    temp = rng.normal(285, 10, size=(times, lat, lon)).astype("float32")
    temp[rng.random(temp.shape) < 0.02] = np.nan
    return xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), temp, {"units": "K"})},
        coords={
            "time": pd.date_range("2024-01-01", periods=times, freq="h"),
            "latitude": np.linspace(90, -90, lat),
            "longitude": np.linspace(0, 352.5, lon),
        },
        attrs={"dataset": "era5-sample"},
    )


async def main(rpc: str, gateway: str) -> None:
    ds = load_dataset().chunk({"time": 12, "latitude": 16, "longitude": 24})
    start = time.perf_counter()
    async with KuboCAS(rpc_base_url=rpc, gateway_base_url=gateway) as kubo_cas:
        hamt = await HAMT.build(cas=kubo_cas, values_are_bytes=True)
        zhs = ZarrHAMTStore(hamt)
        ds.to_zarr(store=zhs, mode="w", zarr_format=3)
        await hamt.make_read_only()
        root = hamt.root_node_id
    print(json.dumps({"root": str(root), "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
