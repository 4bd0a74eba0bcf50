"""Pure: incremental replica fetch sessions (Kafka's KIP-227 applied between brokers).

No clock, no I/O. A follower's fetcher loop keeps one session with each leader broker. The leader
remembers, per session, every partition's fetch position (offset, leader epoch, last fetched epoch)
and what it last answered (HW, log start offset); the follower remembers what the leader holds. So a
request lists only the partitions whose position changed, the leader reads only those plus the ones
that changed on its side (an append, a HW move: `LeaderSession.changed`, fed by the replica
manager), and an answer carries only partitions with news.

Rules:
- session_id 0 with epoch 0 opens a new session: a full request, answered in full; it replaces the
  follower's previous session.
- Any other request must name the follower's current session, from the same broker epoch, with the
  next session epoch; otherwise FETCH_SESSION_ID_NOT_FOUND / INVALID_FETCH_SESSION_EPOCH, the
  session is dropped, and the follower opens a new one.
- The follower drops its session (next request is full) after any failed or cancelled round: it
  cannot know whether the leader applied the request.
Safety does not depend on the session: a partition the follower does not list is one whose log did
not change, so the cached position is the follower's true one (the HW and the KIP-320 check use it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cluster.errors import ErrorCode

PartitionKey = tuple[bytes, int]
NEW_SESSION_ID = 0


@dataclass(frozen=True, slots=True)
class Position:
    """Where a follower fetches one partition from."""

    fetch_offset: int
    current_leader_epoch: int
    last_fetched_epoch: int
    log_start_offset: int = 0  # the follower's (DeleteRecords waits for it, see LeaderState)


@dataclass(slots=True)
class SessionPartition:
    position: Position
    sent_high_watermark: int = -2   # what the leader last answered (-2: never)
    sent_log_start_offset: int = -2


@dataclass(eq=False)
class LeaderSession:
    """The leader's side of one follower's session."""

    follower_id: int
    broker_epoch: int
    session_id: int
    next_epoch: int = 1
    partitions: dict[PartitionKey, SessionPartition] = field(default_factory=dict)
    changed: set[PartitionKey] = field(default_factory=set)  # news on the leader's side
    last_round_ms: int = -1        # when the previous round was answered
    on_change: Callable[[], None] | None = None  # wakes the session's one parked poll

    def mark(self, key: PartitionKey, wake: bool = True) -> None:
        """News on the leader's side for `key`. Without `wake` (a HW move) the parked poll is not
        ended: the partition is read again, and its news sent, with the next answer."""
        if key in self.partitions:
            self.changed.add(key)
            if wake and self.on_change is not None:
                self.on_change()

    def news(self, key: PartitionKey, high_watermark: int, log_start_offset: int, records: bool,
             error: bool) -> bool:
        """Whether an incremental answer must carry this partition; notes what was sent."""
        entry = self.partitions.get(key)
        if entry is None:
            return False
        moved = entry.sent_high_watermark != high_watermark or entry.sent_log_start_offset != log_start_offset
        entry.sent_high_watermark, entry.sent_log_start_offset = high_watermark, log_start_offset
        return records or error or moved


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """The outcome of a request against the session cache."""

    error: ErrorCode
    session: LeaderSession | None = None
    full: bool = False
    to_read: tuple[PartitionKey, ...] = ()   # listed partitions first, then the leader's changes
    opened: tuple[PartitionKey, ...] = ()    # partitions newly in the session (to watch)
    closed: tuple[PartitionKey, ...] = ()    # partitions no longer in the session (to unwatch)


class LeaderSessions:
    """The leader's sessions, one per follower."""

    def __init__(self) -> None:
        self.by_follower: dict[int, LeaderSession] = {}
        self.next_id = 1

    def update(self, follower_id: int, broker_epoch: int, session_id: int, session_epoch: int,
               listed: list[tuple[PartitionKey, Position]], forgotten: list[PartitionKey]) -> SessionUpdate:
        old = self.by_follower.get(follower_id)
        if session_id == NEW_SESSION_ID:
            session = LeaderSession(follower_id, broker_epoch, self.next_id)
            self.next_id += 1
            self.by_follower[follower_id] = session
            for key, position in listed:
                session.partitions[key] = SessionPartition(position)
            closed = tuple(k for k in old.partitions if k not in session.partitions) if old else ()
            return SessionUpdate(ErrorCode.none, session, True, tuple(session.partitions),
                                 tuple(session.partitions), closed)
        if old is None or old.session_id != session_id or old.broker_epoch != broker_epoch:
            return SessionUpdate(ErrorCode.fetch_session_id_not_found)
        if session_epoch != old.next_epoch:
            del self.by_follower[follower_id]
            return SessionUpdate(ErrorCode.invalid_fetch_session_epoch, closed=tuple(old.partitions))
        old.next_epoch += 1
        opened: list[PartitionKey] = []
        closed_now: list[PartitionKey] = []
        for key in forgotten:
            if old.partitions.pop(key, None) is not None:
                closed_now.append(key)
            old.changed.discard(key)
        read: dict[PartitionKey, None] = {}
        for key, position in listed:
            entry = old.partitions.get(key)
            if entry is None:
                old.partitions[key] = SessionPartition(position)
                opened.append(key)
            else:
                entry.position = position
            read[key] = None
        for key in old.changed:
            read[key] = None
        old.changed.clear()
        return SessionUpdate(ErrorCode.none, old, False, tuple(read), tuple(opened), tuple(closed_now))

    def drop(self, follower_id: int) -> LeaderSession | None:
        return self.by_follower.pop(follower_id, None)


@dataclass(slots=True)
class FollowerSession:
    """The follower's side: the session it holds with one leader and what the leader remembers."""

    session_id: int = NEW_SESSION_ID
    next_epoch: int = 0
    held: dict[PartitionKey, Position] = field(default_factory=dict)  # what the leader holds

    def reset(self) -> None:
        self.session_id, self.next_epoch = NEW_SESSION_ID, 0
        self.held = {}

    def request(self, wanted: dict[PartitionKey, Position]) -> tuple[int, int, list[PartitionKey], list[PartitionKey]]:
        """(session id, epoch, partitions to list, partitions to forget) for fetching `wanted`."""
        if self.session_id == NEW_SESSION_ID:
            return NEW_SESSION_ID, 0, list(wanted), []
        held = self.held
        listed = [key for key, position in wanted.items() if held.get(key) != position]
        forgotten = [key for key in held if key not in wanted]
        return self.session_id, self.next_epoch, listed, forgotten

    def request_changed(self, wanted: dict[PartitionKey, Position],
                        changed: set[PartitionKey]) -> tuple[int, int, list[PartitionKey], list[PartitionKey]]:
        """`request` in O(`changed`): the same answer when `changed` holds every key whose entry in
        `wanted` was added, changed or removed since the last request the leader accepted (or
        cancelled: a failed round resets the session, and a new session lists everything)."""
        if self.session_id == NEW_SESSION_ID:
            return NEW_SESSION_ID, 0, list(wanted), []
        held = self.held
        listed, forgotten = [], []
        for key in changed:
            position = wanted.get(key)
            if position is None:
                if key in held:
                    forgotten.append(key)
            elif held.get(key) != position:
                listed.append(key)
        return self.session_id, self.next_epoch, listed, forgotten

    def answered(self, session_id: int, wanted: dict[PartitionKey, Position], listed: list[PartitionKey],
                 forgotten: list[PartitionKey]) -> None:
        """The leader accepted the request built from `wanted`."""
        if self.session_id == NEW_SESSION_ID:
            self.held = dict(wanted)
            self.next_epoch = 1
        else:
            for key in forgotten:
                self.held.pop(key, None)
            for key in listed:
                self.held[key] = wanted[key]
            self.next_epoch += 1
        self.session_id = session_id
