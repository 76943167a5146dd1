"""Running hamt_rs coroutines from synchronous code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="hamt_rs-sync", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Await what ``make()`` returns on a private background event loop and return its
    result, from any thread, inside or outside a running event loop. ``make`` is called on
    that loop, since hamt_rs's async methods need a running loop when they are called."""

    async def main() -> T:
        return await make()

    return asyncio.run_coroutine_threadsafe(main(), _background_loop()).result()
