"""Pure: consumer fetch sessions (Kafka's KIP-227) on the Kafka listener.

No clock, no I/O: the caller passes `now_ms` and a source of session ids. A consumer of many
partitions opens a session with a full Fetch; afterwards each request lists only the partitions whose
fetch position changed (and forgets the ones it dropped), and each answer carries only partitions
with news (records, an error, or a changed high watermark / last stable offset / log start offset).
The broker remembers, per session, every partition's fetch parameters and what it last answered.

The rules are Kafka's (`FetchManager.newContext`, `FetchSession.scala`):

| request (session_id, session_epoch) | what happens                                                   |
|-------------------------------------|----------------------------------------------------------------|
| (any, -1)  FINAL_EPOCH              | close session_id if it names one; a full answer, session id 0  |
| (any, 0)   INITIAL_EPOCH            | close session_id if it names one; a full answer; a new session  |
|                                     | if a slot is free or one can be evicted (else session id 0)     |
| (id, n > 0)                         | unknown id (or another principal's): FETCH_SESSION_ID_NOT_FOUND |
|                                     | n is not the session's next epoch: INVALID_FETCH_SESSION_EPOCH  |
|                                     | else: apply listed + forgotten, read every session partition,  |
|                                     | answer the ones with news; partitions that returned records     |
|                                     | move to the back of the session (fair reads under a byte cap)   |

The cache is bounded twice: `slots_max` sessions (Kafka's max.incremental.fetch.session.cache.slots)
and `partitions_max` partitions held by all sessions together (Brook's: each cached partition costs
memory, and a client may list partitions that do not exist). A new session that does not fit evicts,
as Kafka does, first the least recently used session if it has been idle longer than `eviction_ms`
(Kafka's min.incremental.fetch.session.eviction.ms), else the smallest session if it is smaller than
the new one; otherwise the fetch is answered without a session. An incremental request that would
grow a session past `partitions_max` drops the session (FETCH_SESSION_ID_NOT_FOUND; the client starts
over with a full request). Brook does not open a session for a fetch of no partitions.

Sessions are bound to the principal that opened them: another principal naming the id is answered
FETCH_SESSION_ID_NOT_FOUND (Kafka does not check; a session id is 31 random bits there as here).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cluster.errors import ErrorCode

__all__ = [
    "FINAL_EPOCH",
    "INITIAL_EPOCH",
    "INVALID_SESSION_ID",
    "ConsumerSession",
    "FetchParams",
    "FetchPlan",
    "FetchSessionCache",
    "Mode",
    "PartitionKey",
]

INVALID_SESSION_ID = 0
INITIAL_EPOCH = 0
FINAL_EPOCH = -1
_EPOCH_MAX = 2**31 - 1

PartitionKey = tuple[str, int]  # (topic name, partition index): Fetch v4..12 names topics


@dataclass(frozen=True, slots=True)
class FetchParams:
    """What the client asks of one partition (cached by the session until it lists it again)."""

    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1


@dataclass(slots=True)
class CachedPartition:
    params: FetchParams
    high_watermark: int = -2       # what the broker last answered (-2: never)
    last_stable_offset: int = -2
    log_start_offset: int = -2


@dataclass(eq=False, slots=True)
class ConsumerSession:
    session_id: int
    owner: str                      # the principal that opened it
    next_epoch: int = 1
    last_used_ms: int = 0
    partitions: dict[PartitionKey, CachedPartition] = field(default_factory=dict)


class Mode(enum.Enum):
    SESSIONLESS = "sessionless"     # full request, full answer, no session (session id 0)
    FULL = "full"                   # full request, full answer, a new session
    INCREMENTAL = "incremental"     # changes only, both ways


@dataclass(slots=True)
class FetchPlan:
    """The outcome of a request against the cache: what to read, and how to answer each partition."""

    mode: Mode
    error: ErrorCode = ErrorCode.none
    session: ConsumerSession | None = None
    partitions: list[tuple[PartitionKey, FetchParams]] = field(default_factory=list)  # to read, in order

    @property
    def response_session_id(self) -> int:
        return self.session.session_id if self.session is not None else INVALID_SESSION_ID

    def answered(self, key: PartitionKey, high_watermark: int, last_stable_offset: int, log_start_offset: int,
                 has_records: bool, error: bool) -> bool:
        """Whether the answer carries this partition; the session notes what the client now knows."""
        session = self.session
        if session is None:
            return True
        entry = session.partitions.get(key)
        if entry is None:  # forgotten by a later request while this one waited
            return self.mode is not Mode.INCREMENTAL
        moved = (entry.high_watermark != high_watermark or entry.last_stable_offset != last_stable_offset
                 or entry.log_start_offset != log_start_offset)
        entry.high_watermark, entry.last_stable_offset, entry.log_start_offset = (
            high_watermark, last_stable_offset, log_start_offset)
        if self.mode is not Mode.INCREMENTAL:
            return True
        if has_records:  # to the back: the next read under a byte cap starts with the others
            del session.partitions[key]
            session.partitions[key] = entry
        return has_records or error or moved


class FetchSessionCache:
    """The broker's consumer fetch sessions, bounded by slots and by partitions held."""

    def __init__(self, slots_max: int, partitions_max: int, eviction_ms: int, new_id: Callable[[], int]) -> None:
        if slots_max < 0 or partitions_max < 0 or eviction_ms < 0:
            raise ValueError("fetch session cache limits must not be negative")
        self.slots_max = slots_max
        self.partitions_max = partitions_max
        self.eviction_ms = eviction_ms
        self._new_id = new_id
        self.sessions: dict[int, ConsumerSession] = {}
        self.partitions_held = 0
        self.evictions = 0

    # ------------------------------------------------------------------ requests

    def begin(self, session_id: int, session_epoch: int, listed: Iterable[tuple[PartitionKey, FetchParams]],
              forgotten: Iterable[PartitionKey], owner: str, now_ms: int) -> FetchPlan:
        """Resolve one Fetch request: an error, or the partitions to read and the session to answer in."""
        if session_epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id != INVALID_SESSION_ID:
                existing = self.sessions.get(session_id)
                if existing is not None and existing.owner == owner:
                    self._remove(existing)
            wanted = dict(listed)  # a partition listed twice: the last entry wins, as in Kafka's map
            plan = FetchPlan(Mode.SESSIONLESS, partitions=list(wanted.items()))
            if session_epoch == INITIAL_EPOCH and wanted:
                session = self._maybe_create(wanted, owner, now_ms)
                if session is not None:
                    plan.mode, plan.session = Mode.FULL, session
            return plan
        if session_epoch < 0:
            return FetchPlan(Mode.SESSIONLESS, ErrorCode.invalid_fetch_session_epoch)
        session = self.sessions.get(session_id)
        if session is None or session.owner != owner:
            return FetchPlan(Mode.INCREMENTAL, ErrorCode.fetch_session_id_not_found)
        if session_epoch != session.next_epoch:
            return FetchPlan(Mode.INCREMENTAL, ErrorCode.invalid_fetch_session_epoch)
        for key, params in listed:
            entry = session.partitions.get(key)
            if entry is not None:
                entry.params = params
                continue
            if self.partitions_held >= self.partitions_max:
                self._remove(session)
                return FetchPlan(Mode.INCREMENTAL, ErrorCode.fetch_session_id_not_found)
            session.partitions[key] = CachedPartition(params)
            self.partitions_held += 1
        for key in forgotten:
            if session.partitions.pop(key, None) is not None:
                self.partitions_held -= 1
        session.next_epoch = 1 if session.next_epoch == _EPOCH_MAX else session.next_epoch + 1
        session.last_used_ms = now_ms
        return FetchPlan(Mode.INCREMENTAL, session=session,
                         partitions=[(key, entry.params) for key, entry in session.partitions.items()])

    # ------------------------------------------------------------------ the cache

    def _maybe_create(self, wanted: dict[PartitionKey, FetchParams], owner: str, now_ms: int) -> ConsumerSession | None:
        size = len(wanted)
        if size > self.partitions_max or self.slots_max == 0:
            return None
        while len(self.sessions) >= self.slots_max or self.partitions_held + size > self.partitions_max:
            victim = self._evictable(size, now_ms)
            if victim is None:
                return None
            self._remove(victim)
            self.evictions += 1
        session_id = self._fresh_id()
        session = ConsumerSession(session_id, owner, last_used_ms=now_ms,
                                  partitions={key: CachedPartition(params) for key, params in wanted.items()})
        self.sessions[session_id] = session
        self.partitions_held += size
        return session

    def _evictable(self, size: int, now_ms: int) -> ConsumerSession | None:
        """Kafka's order: a session idle longer than eviction_ms (the least recently used), else the
        smallest session if the new one (of `size` partitions) is larger."""
        if not self.sessions:
            return None
        oldest = min(self.sessions.values(), key=lambda s: s.last_used_ms)
        if now_ms - oldest.last_used_ms > self.eviction_ms:
            return oldest
        smallest = min(self.sessions.values(), key=lambda s: (len(s.partitions), s.last_used_ms))
        return smallest if len(smallest.partitions) < size else None

    def _fresh_id(self) -> int:
        for _ in range(1000):
            candidate = self._new_id()
            if candidate != INVALID_SESSION_ID and 0 < candidate <= _EPOCH_MAX and candidate not in self.sessions:
                return candidate
        raise RuntimeError("the session id source keeps returning used or invalid ids")

    def _remove(self, session: ConsumerSession) -> None:
        if self.sessions.pop(session.session_id, None) is not None:
            self.partitions_held -= len(session.partitions)
