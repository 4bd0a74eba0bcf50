"""Idempotent-producer state per producer id (pure): epoch and its last 5 batches.

The broker asks `check` before appending an idempotent batch; every append (leader and follower)
then calls `update`, so followers have the same state when they become leader.

Expiry (Kafka's producer.id.expiration.ms, default 1 day): each entry remembers the max timestamp of its
producer's last batch (Kafka's lastTimestamp: the batch's own, so every replica computes the same), and
`expire(now_ms, expiration_ms)` forgets the producers idle that long, so the table stays bounded by the
producers active within the window. A forgotten producer's next batch is accepted as new (KIP-360).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from storage.batch import BatchHeader
from storage.log import ProducerCheck, ProducerCheckResult

__all__ = [
    "BATCHES_PER_PRODUCER_MAX",
    "REBUILD_SCAN_BATCHES_MAX",
    "ProducerBatch",
    "ProducerEntry",
    "ProducerStateTable",
    "check_request",
]

# Kafka keeps 5 because a producer has at most max.in.flight.requests.per.connection = 5 batches
# in flight with idempotence enabled; a retry can only duplicate one of those.
BATCHES_PER_PRODUCER_MAX = 5
# After a truncation removed every batch the table remembered for a producer, its state is rebuilt
# from the batches still in the log (Kafka reloads snapshot + log). The scan walks back from the
# truncation point and stops after this many batches, so a truncation never reads a whole partition
# on the event loop; a producer not found within it is unknown again (Kafka's rule for an unknown
# producer since KIP-360: its next batch is accepted).
REBUILD_SCAN_BATCHES_MAX = 1000
_SEQUENCE_MODULUS = 1 << 31
_HEAD = struct.Struct(">hB")
_BATCH = struct.Struct(">hiiqq")
_LAST_TIMESTAMP = struct.Struct(">q")  # appended after the batches (entries written before expiry lack it)


@dataclass(frozen=True, slots=True)
class ProducerBatch:
    producer_epoch: int
    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class ProducerEntry:
    producer_epoch: int
    batches: tuple[ProducerBatch, ...]
    last_timestamp_ms: int = -1  # max timestamp of the producer's last batch; -1: unknown (never expires)

    def encode(self) -> bytes:
        head = _HEAD.pack(self.producer_epoch, len(self.batches))
        return head + b"".join(
            _BATCH.pack(b.producer_epoch, b.first_sequence, b.last_sequence, b.first_offset, b.last_offset)
            for b in self.batches
        ) + _LAST_TIMESTAMP.pack(self.last_timestamp_ms)

    @classmethod
    def decode(cls, value: bytes) -> ProducerEntry:
        producer_epoch, count = _HEAD.unpack_from(value, 0)
        batches = tuple(
            ProducerBatch(*_BATCH.unpack_from(value, _HEAD.size + i * _BATCH.size)) for i in range(count)
        )
        end = _HEAD.size + count * _BATCH.size
        last = _LAST_TIMESTAMP.unpack_from(value, end)[0] if len(value) >= end + _LAST_TIMESTAMP.size else -1
        return cls(producer_epoch, batches, last)


class ProducerStateTable:
    """producer id -> ProducerEntry. Mutators return the ids they changed (or removed)."""

    def __init__(self, entries: dict[int, ProducerEntry] | None = None) -> None:
        self._entries: dict[int, ProducerEntry] = dict(entries or {})

    def entries(self) -> dict[int, ProducerEntry]:
        return dict(self._entries)

    def get(self, producer_id: int) -> ProducerEntry | None:
        return self._entries.get(producer_id)

    def check(self, producer_id: int, producer_epoch: int, base_sequence: int, last_sequence: int) -> ProducerCheck:
        """Classify an incoming idempotent batch against what this log has stored."""
        if producer_id < 0:
            return ProducerCheck(ProducerCheckResult.NEW)
        entry = self._entries.get(producer_id)
        if entry is None:
            return ProducerCheck(ProducerCheckResult.NEW)
        if producer_epoch < entry.producer_epoch:
            return ProducerCheck(ProducerCheckResult.INVALID_PRODUCER_EPOCH)
        if producer_epoch > entry.producer_epoch or not entry.batches:
            # A bumped epoch restarts sequences at 0 (Kafka's rule for a new epoch).
            ok = base_sequence == 0 or not entry.batches
            return ProducerCheck(ProducerCheckResult.NEW if ok else ProducerCheckResult.OUT_OF_ORDER_SEQUENCE)
        for batch in entry.batches:
            if batch.first_sequence == base_sequence and batch.last_sequence == last_sequence:
                return ProducerCheck(ProducerCheckResult.DUPLICATE, batch.first_offset, batch.last_offset)
        expected = (entry.batches[-1].last_sequence + 1) % _SEQUENCE_MODULUS
        if base_sequence == expected:
            return ProducerCheck(ProducerCheckResult.NEW)
        return ProducerCheck(ProducerCheckResult.OUT_OF_ORDER_SEQUENCE)

    def update(self, headers: Iterable[BatchHeader]) -> set[int]:
        """Record stored batches (offsets assigned). Non-idempotent batches (id -1) are skipped."""
        changed: set[int] = set()
        for header in headers:
            if header.producer_id < 0:
                continue
            entry = self._entries.get(header.producer_id)
            if entry is not None and header.producer_epoch < entry.producer_epoch:
                continue  # a fenced epoch; the leader would not have stored it
            batches: tuple[ProducerBatch, ...] = ()
            if entry is not None and entry.producer_epoch == header.producer_epoch:
                batches = entry.batches
            if header.base_sequence >= 0:
                batch = ProducerBatch(
                    header.producer_epoch, header.base_sequence, header.last_sequence,
                    header.base_offset, header.last_offset,
                )
                batches = (batches + (batch,))[-BATCHES_PER_PRODUCER_MAX:]
            last = max(header.max_timestamp, entry.last_timestamp_ms if entry is not None else -1)
            self._entries[header.producer_id] = ProducerEntry(header.producer_epoch, batches, last)
            changed.add(header.producer_id)
        return changed

    def expire(self, now_ms: int, expiration_ms: int, keep: Iterable[int] = ()) -> set[int]:
        """Forget every producer whose last batch's timestamp is `expiration_ms` or more before `now_ms`
        (Kafka's ProducerStateManager.removeExpiredProducers), except those in `keep` (producers with an
        open transaction, as Kafka keeps them); returns the ids removed."""
        kept = set(keep)
        expired = {pid for pid, e in self._entries.items()
                   if pid not in kept and e.last_timestamp_ms >= 0 and now_ms - e.last_timestamp_ms >= expiration_ms}
        for producer_id in expired:
            del self._entries[producer_id]
        return expired

    def truncate(self, end_offset: int, headers_newest_first: Iterable[BatchHeader] = ()) -> set[int]:
        """Forget batches at or after `end_offset`; returns the producer ids whose entry changed.

        A producer left with no remembered batch is rebuilt from `headers_newest_first`: the
        batches the log still holds below `end_offset`, newest first (at most
        REBUILD_SCAN_BATCHES_MAX are read). Without this, a producer whose last five batches were
        truncated would be forgotten although older batches of it remain, and its next batch would
        be accepted with any sequence (or a duplicate of a surviving batch appended again).
        """
        changed: set[int] = set()
        lost: set[int] = set()
        for producer_id, entry in list(self._entries.items()):
            kept = tuple(b for b in entry.batches if b.first_offset < end_offset)
            if kept == entry.batches:
                continue
            changed.add(producer_id)
            if kept:
                self._entries[producer_id] = ProducerEntry(kept[-1].producer_epoch, kept, entry.last_timestamp_ms)
            else:
                del self._entries[producer_id]
                lost.add(producer_id)
        if lost:
            self._rebuild(lost, end_offset, headers_newest_first)
        return changed

    def _rebuild(self, lost: set[int], end_offset: int, headers_newest_first: Iterable[BatchHeader]) -> None:
        found: dict[int, list[BatchHeader]] = {producer_id: [] for producer_id in lost}
        complete: set[int] = set()
        for scanned, header in enumerate(headers_newest_first):
            if scanned >= REBUILD_SCAN_BATCHES_MAX or len(complete) == len(lost):
                break
            assert header.last_offset < end_offset, "rebuild must only see batches below the truncation point"
            batches = found.get(header.producer_id)
            if batches is None or header.producer_id in complete:
                continue
            if batches and header.producer_epoch < batches[-1].producer_epoch:
                complete.add(header.producer_id)  # older epochs do not matter once a newer one is known
                continue
            batches.append(header)
            if len(batches) >= BATCHES_PER_PRODUCER_MAX:
                complete.add(header.producer_id)
        for producer_id in sorted(found):
            self.update(reversed(found[producer_id]))

    def clear(self) -> set[int]:
        removed = set(self._entries)
        self._entries.clear()
        return removed


def check_request(
    check: Callable[[int, int, int, int], ProducerCheck], headers: Iterable[BatchHeader]
) -> tuple[int, ProducerCheck] | None:
    """Kafka's sequence rules for one produce request that may hold several batches.

    `check(producer_id, producer_epoch, base_sequence, last_sequence)` answers from the stored
    state. Each later batch of the same producer in the request is checked against the batch before
    it (same epoch, next sequence), as Kafka's ProducerAppendInfo does, because those are not stored
    yet. Returns (index of the batch, the check) for the first batch that is not NEW, or None.
    """
    previous: dict[int, tuple[int, int]] = {}  # producer id -> (epoch, last sequence) in this request
    for index, header in enumerate(headers):
        producer_id = header.producer_id
        if producer_id < 0:
            continue
        last_sequence = header.last_sequence
        earlier = previous.get(producer_id)
        if earlier is None:
            result = check(producer_id, header.producer_epoch, header.base_sequence, last_sequence)
        elif header.producer_epoch < earlier[0]:
            result = ProducerCheck(ProducerCheckResult.INVALID_PRODUCER_EPOCH)
        elif header.producer_epoch > earlier[0]:
            ok = header.base_sequence == 0
            result = ProducerCheck(ProducerCheckResult.NEW if ok else ProducerCheckResult.OUT_OF_ORDER_SEQUENCE)
        else:
            ok = header.base_sequence == (earlier[1] + 1) % _SEQUENCE_MODULUS
            result = ProducerCheck(ProducerCheckResult.NEW if ok else ProducerCheckResult.OUT_OF_ORDER_SEQUENCE)
        if result.result != ProducerCheckResult.NEW:
            return index, result
        previous[producer_id] = (header.producer_epoch, last_sequence)
    return None
