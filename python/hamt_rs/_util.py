"""Helpers the extension calls by name (unpickling)."""

from __future__ import annotations

from typing import Optional

from ._native import HAMT, Store
from ._sync import run


def reopen_hamt(url: str, root: Optional[str], values_are_bytes: bool, max_bucket_size: int) -> HAMT:
    """Unpickles a read-only HAMT: reopens its store by URL and the tree at ``root``."""
    store = Store(url)
    return run(
        lambda: HAMT.build(
            cas=store,
            root_node_id=root,
            read_only=True,
            values_are_bytes=values_are_bytes,
            max_bucket_size=max_bucket_size,
        )
    )
