"""py-hamt + zarr-python reading every chunk of the dataset `zarr_read` wrote, for
`cargo xtask bench zarr`.

  zarr_bench.py CAR ROOT DIR REPS -> JSON {"pyhamt_s", "zarr_dir_s", "checksum"}

The HAMT's blocks are loaded from the CAR into memory before timing (py-hamt's fastest case);
DIR is the same dataset as a plain Zarr v3 directory store. Times are the best of REPS.
"""

import asyncio
import json
import os
import sys
import time

import numpy as np
import zarr

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hamt", "tests", "pyhamt"))
from vectors import CidStore  # noqa: E402
from multiformats import CID  # noqa: E402
from py_hamt import HAMT, ZarrHAMTStore  # noqa: E402


def varint(buf, pos):
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def read_car(path):
    """The blocks of a CAR v1 file: header, then (length, CID, data) sections."""
    buf = open(path, "rb").read()
    n, pos = varint(buf, 0)
    pos += n
    blocks = {}
    while pos < len(buf):
        n, pos = varint(buf, pos)
        end = pos + n
        start = pos
        _, pos = varint(buf, pos)  # CID version
        _, pos = varint(buf, pos)  # codec
        _, pos = varint(buf, pos)  # multihash code
        digest_len, pos = varint(buf, pos)
        pos += digest_len
        blocks[CID.decode(bytes(buf[start:pos]))] = bytes(buf[pos:end])
        pos = end
    return blocks


def best(reps, f):
    times, value = [], None
    for _ in range(reps):
        start = time.perf_counter()
        value = f()
        times.append(time.perf_counter() - start)
    return min(times), value


def main(car, root, directory, reps):
    store = CidStore()
    store.blocks.update(read_car(car))
    root = CID.decode(root)

    def via_hamt():
        hamt = asyncio.run(HAMT.build(cas=store, root_node_id=root, read_only=True, values_are_bytes=True))
        array = zarr.open_array(store=ZarrHAMTStore(hamt, read_only=True), path="data", mode="r", zarr_format=3)
        return float(np.asarray(array[...], dtype="float64").sum())

    def via_dir():
        array = zarr.open_array(store=directory, path="data", mode="r", zarr_format=3)
        return float(np.asarray(array[...], dtype="float64").sum())

    pyhamt_s, checksum = best(reps, via_hamt)
    dir_s, dir_sum = best(reps, via_dir)
    assert abs(dir_sum - checksum) < 1e-3 * max(abs(checksum), 1.0), (dir_sum, checksum)
    json.dump({"pyhamt_s": pyhamt_s, "zarr_dir_s": dir_s, "checksum": checksum}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
