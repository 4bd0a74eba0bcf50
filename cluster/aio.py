"""asyncio helpers for every layer.

`wait_for` replaces `asyncio.wait_for`, which on Python 3.11 can lose a cancellation: when the task is
cancelled in the same loop iteration in which the awaited thing completes, 3.11's wait_for returns the
result instead of raising CancelledError (cpython gh-86296; 3.12 rebuilt wait_for on
`asyncio.timeout`, as this does). A loop whose cancellation is lost never stops: a broker's replica
fetcher did exactly that, and its process hung after the controlled shutdown until it was SIGKILLed.
tests/unit/test_aio.py shows the difference; no product module calls `asyncio.wait_for`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(awaitable: Awaitable[T], timeout_s: float | None) -> T:
    """Await `awaitable`; TimeoutError after `timeout_s` seconds (None: no limit). A cancellation of the
    caller always propagates, also when it arrives together with the result."""
    async with asyncio.timeout(timeout_s):
        return await awaitable
