"""Done when: a data engineer's xarray → ZarrHAMTStore → Kubo script runs unchanged with the
import changed from py_hamt to hamt_rs, with the same root CID, against the IPFS node xtask
starts."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
import xarray as xr
from multiformats import CID

import hamt_rs

from conftest import required_env, run

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "to_kubo.py"


def run_script(text: str, rpc: str, gateway: str, tmp_path: pathlib.Path) -> dict:
    path = tmp_path / "script.py"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, str(path), rpc, gateway], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.pyhamt
def test_the_py_hamt_script_runs_unchanged_on_hamt_rs_with_the_same_root(tmp_path):
    rpc = required_env("HAMT_TEST_KUBO_RPC")
    gateway = required_env("HAMT_TEST_KUBO_GATEWAY")
    original = SCRIPT.read_text()
    assert "from py_hamt import HAMT, KuboCAS, ZarrHAMTStore" in original
    migrated = original.replace("from py_hamt import", "from hamt_rs import")
    theirs = run_script(original, rpc, gateway, tmp_path)
    ours = run_script(migrated, rpc, gateway, tmp_path)
    # The same CID (the JavaScript node answers in base58, hamt_rs prints base32).
    assert CID.decode(ours["root"]) == CID.decode(theirs["root"])
    assert CID.decode(ours["root"]).encode("base32") == CID.decode(theirs["root"]).encode("base32")
    print(f"py-hamt {theirs['seconds']:.2f} s, hamt_rs {ours['seconds']:.2f} s")

    # Read it back from the node. (The JavaScript node's gateway cannot serve DAG-CBOR
    # blocks, for py-hamt or anyone, so the read goes through its RPC API.)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from to_kubo import load_dataset
    finally:
        sys.path.pop(0)

    async def open_back():
        cas = hamt_rs.KuboCAS(rpc_base_url=rpc, gateway_base_url=gateway, read="rpc")
        hamt = await hamt_rs.HAMT.build(cas=cas, root_node_id=ours["root"], read_only=True, values_are_bytes=True)
        return hamt_rs.ZarrHAMTStore(hamt, read_only=True)

    back = xr.open_zarr(run(open_back()))
    xr.testing.assert_identical(back.load(), load_dataset())
