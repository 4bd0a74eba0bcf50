"""Broker session tracking on the active controller: soft state with an injected clock.

Kafka `BrokerHeartbeatManager`: last-contact times are not in the metadata log, only the active
controller keeps them, and they are reset when a controller becomes active so that every broker gets
a full session timeout from then (no broker is fenced because the controller failed over). The clock
is the caller's: every method takes `now_ms`.
"""

from __future__ import annotations

from collections.abc import Iterable


class BrokerHeartbeatTracker:
    def __init__(self, session_timeout_ms: int) -> None:
        if session_timeout_ms <= 0:
            raise ValueError(f"session_timeout_ms must be positive, got {session_timeout_ms}")
        self.session_timeout_ms = session_timeout_ms
        self._last_contact_ms: dict[int, int] = {}
        self._reset_ms: int | None = None

    def touch(self, broker_id: int, now_ms: int) -> None:
        """A heartbeat (or registration) from the broker arrived at `now_ms`."""
        previous = self._last_contact_ms.get(broker_id)
        self._last_contact_ms[broker_id] = now_ms if previous is None else max(previous, now_ms)

    def reset_all(self, broker_ids: Iterable[int], now_ms: int) -> None:
        """On becoming active: forget old contact times; everyone counts as seen at `now_ms`."""
        self._reset_ms = now_ms
        self._last_contact_ms = {broker_id: now_ms for broker_id in broker_ids}

    def stale(self, now_ms: int, candidates: Iterable[int]) -> list[int]:
        """Candidates whose session expired (no contact for more than the timeout), oldest first.

        A candidate never seen counts as seen at the last reset; with no reset yet, as seen now.
        """
        found: list[tuple[int, int]] = []
        for broker_id in candidates:
            last = self._last_contact_ms.get(broker_id)
            if last is None:
                last = self._reset_ms if self._reset_ms is not None else now_ms
                self._last_contact_ms[broker_id] = last
            if now_ms - last > self.session_timeout_ms:
                found.append((last, broker_id))
        return [broker_id for _, broker_id in sorted(found)]

    def forget(self, broker_id: int) -> None:
        self._last_contact_ms.pop(broker_id, None)


__all__ = ["BrokerHeartbeatTracker"]
