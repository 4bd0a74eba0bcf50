"""Broker session tracking on the active controller: soft state with an injected clock.

Kafka `BrokerHeartbeatManager`: last-contact times are not in the metadata log, only the active
controller keeps them, and they are reset when a controller becomes active so that every broker gets
a full session timeout from then (no broker is fenced because the controller failed over). The clock
is the caller's: every method takes `now_ms`.

Beyond Kafka: a broker whose connection to the active controller drops (its FetchMetadata long poll is
cancelled because the peer went away — what a SIGKILL or a crash looks like) is stale as soon as
`disconnect_grace_ms` passes without a new contact, instead of after the whole session timeout. A live
broker whose call merely failed calls again within ~200 ms and clears the mark; a hung or partitioned
broker keeps its connection open, so only the session timeout catches it (as in Kafka).

`suspect` says whether the controller has reason to doubt a broker's session *now* (before fencing
acts on it): the active controller refuses to add such a broker to an ISR (`alter_partition`'s
`suspect`), as Kafka refuses fenced brokers (KIP-841). A broker that crashed may already have lost
the unsynced tail of its log; until it is fenced or registers again, an ISR naming it would name a
log that lacks what it fetched.
"""

from __future__ import annotations

from collections.abc import Iterable

# A live broker retries a failed metadata call after 200 ms; five times that is a safe margin on a busy box.
DISCONNECT_GRACE_MS = 1000


class BrokerHeartbeatTracker:
    def __init__(self, session_timeout_ms: int, disconnect_grace_ms: int | None = None) -> None:
        if session_timeout_ms <= 0:
            raise ValueError(f"session_timeout_ms must be positive, got {session_timeout_ms}")
        self.session_timeout_ms = session_timeout_ms
        # Never longer than the session itself: the mark can only make detection faster.
        grace = DISCONNECT_GRACE_MS if disconnect_grace_ms is None else disconnect_grace_ms
        self.disconnect_grace_ms = min(max(grace, 0), session_timeout_ms)
        self._last_contact_ms: dict[int, int] = {}
        self._disconnected_ms: dict[int, int] = {}
        self._reset_ms: int | None = None
        self._heard: set[int] = set()  # brokers that called since the last reset

    def touch(self, broker_id: int, now_ms: int) -> None:
        """A heartbeat (or registration) from the broker arrived at `now_ms`."""
        previous = self._last_contact_ms.get(broker_id)
        self._last_contact_ms[broker_id] = now_ms if previous is None else max(previous, now_ms)
        self._heard.add(broker_id)
        if self._disconnected_ms.get(broker_id, now_ms + 1) <= now_ms:
            del self._disconnected_ms[broker_id]

    def disconnected(self, broker_id: int, now_ms: int) -> None:
        """The broker's connection dropped at `now_ms`: stale after the grace unless it calls again."""
        self._disconnected_ms[broker_id] = now_ms

    def reset_all(self, broker_ids: Iterable[int], now_ms: int) -> None:
        """On becoming active: forget old contact times; everyone counts as seen at `now_ms`."""
        self._reset_ms = now_ms
        self._last_contact_ms = {broker_id: now_ms for broker_id in broker_ids}
        self._disconnected_ms = {}
        self._heard = set()

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
            gone = self._disconnected_ms.get(broker_id)
            if now_ms - last > self.session_timeout_ms or (
                    gone is not None and last <= gone and now_ms - gone > self.disconnect_grace_ms):
                found.append((last, broker_id))
        return [broker_id for _, broker_id in sorted(found)]

    def suspect(self, now_ms: int, broker_id: int) -> str:
        """Why the broker's session is in doubt at `now_ms`, or "" when it is not. In doubt:

        - "not heard from since this controller became active": no contact since the last
          `reset_all` (or ever). The reset gives it a full session before fencing, not a clean bill;
        - "controller connection lost N ms ago": a disconnect was noted and nothing came since
          (fencing follows after the grace — a crashed broker's log may already lack its unsynced tail);
        - "no contact for N ms": the session expired and the broker is not fenced yet (one broker is
          fenced per periodic check).
        """
        last = self._last_contact_ms.get(broker_id)
        if last is None or broker_id not in self._heard:
            return "not heard from since this controller became active"
        gone = self._disconnected_ms.get(broker_id)
        if gone is not None and last <= gone:
            return f"controller connection lost {now_ms - gone} ms ago"
        if now_ms - last > self.session_timeout_ms:
            return f"no contact for {now_ms - last} ms"
        return ""

    def suspects(self, now_ms: int, candidates: Iterable[int]) -> frozenset[int]:
        """The candidates whose session is in doubt (`suspect`)."""
        return frozenset(b for b in candidates if self.suspect(now_ms, b))

    def forget(self, broker_id: int) -> None:
        self._last_contact_ms.pop(broker_id, None)
        self._disconnected_ms.pop(broker_id, None)
        self._heard.discard(broker_id)


__all__ = ["BrokerHeartbeatTracker"]
