"""JoinGroup and SyncGroup requests parked until their group's rebalance answers them.

The state machine (`state.py`) names the members to answer in its `Effects`; this shell keeps one
future per (group, member) and resolves it from those effects, or with a fallback answer when the
wait times out. A retried request replaces the one its client abandoned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from broker.groups.state import Effects, JoinResult, SyncResult
from cluster.aio import wait_for

__all__ = ["ParkedRequests"]

T = TypeVar("T")


class ParkedRequests:
    def __init__(self) -> None:
        self._joins: dict[tuple[str, str], asyncio.Future[JoinResult]] = {}
        self._syncs: dict[tuple[str, str], asyncio.Future[SyncResult]] = {}

    def answer(self, group_id: str, effects: Effects) -> None:
        """Resolve the parked requests that `effects` answers."""
        for member_id, join in effects.joins:
            future = self._joins.pop((group_id, member_id), None)
            if future is not None and not future.done():
                future.set_result(join)
        for member_id, sync in effects.syncs:
            sync_future = self._syncs.pop((group_id, member_id), None)
            if sync_future is not None and not sync_future.done():
                sync_future.set_result(sync)

    async def join(self, group_id: str, member_id: str, timeout_ms: int, on_timeout: JoinResult,
                   deliver: Callable[[], None]) -> JoinResult:
        return await _park(self._joins, (group_id, member_id), timeout_ms, on_timeout, deliver)

    async def sync(self, group_id: str, member_id: str, timeout_ms: int, on_timeout: SyncResult,
                   deliver: Callable[[], None]) -> SyncResult:
        return await _park(self._syncs, (group_id, member_id), timeout_ms, on_timeout, deliver)


async def _park(waiters: dict[tuple[str, str], asyncio.Future[T]], key: tuple[str, str], timeout_ms: int,
                on_timeout: T, deliver: Callable[[], None]) -> T:
    """Wait for `waiters[key]`; `deliver()` runs once the future is registered (it may answer it)."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    previous = waiters.get(key)
    if previous is not None and not previous.done():
        previous.set_result(on_timeout)  # a retried request replaces the one it abandoned
    waiters[key] = future
    deliver()
    try:
        return await wait_for(asyncio.shield(future), timeout_ms / 1000)
    except TimeoutError:
        return on_timeout
    finally:
        if waiters.get(key) is future:
            del waiters[key]
