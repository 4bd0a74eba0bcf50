"""Idempotent-producer state per producer id (pure): epoch and its last 5 batches.

The broker asks `check` before appending an idempotent batch; every append (leader and follower)
then calls `update`, so followers have the same state when they become leader.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from storage.batch import BatchHeader
from storage.log import ProducerCheck, ProducerCheckResult

__all__ = ["BATCHES_PER_PRODUCER_MAX", "ProducerBatch", "ProducerEntry", "ProducerStateTable"]

# Kafka keeps 5 because a producer has at most max.in.flight.requests.per.connection = 5 batches
# in flight with idempotence enabled; a retry can only duplicate one of those.
BATCHES_PER_PRODUCER_MAX = 5
_SEQUENCE_MODULUS = 1 << 31
_HEAD = struct.Struct(">hB")
_BATCH = struct.Struct(">hiiqq")


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

    def encode(self) -> bytes:
        head = _HEAD.pack(self.producer_epoch, len(self.batches))
        return head + b"".join(
            _BATCH.pack(b.producer_epoch, b.first_sequence, b.last_sequence, b.first_offset, b.last_offset)
            for b in self.batches
        )

    @classmethod
    def decode(cls, value: bytes) -> ProducerEntry:
        producer_epoch, count = _HEAD.unpack_from(value, 0)
        batches = tuple(
            ProducerBatch(*_BATCH.unpack_from(value, _HEAD.size + i * _BATCH.size)) for i in range(count)
        )
        return cls(producer_epoch, batches)


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
            self._entries[header.producer_id] = ProducerEntry(header.producer_epoch, batches)
            changed.add(header.producer_id)
        return changed

    def truncate(self, end_offset: int) -> set[int]:
        """Forget batches at or after `end_offset`; a producer left with none is forgotten."""
        changed: set[int] = set()
        for producer_id, entry in list(self._entries.items()):
            kept = tuple(b for b in entry.batches if b.first_offset < end_offset)
            if kept == entry.batches:
                continue
            changed.add(producer_id)
            if kept:
                self._entries[producer_id] = ProducerEntry(kept[-1].producer_epoch, kept)
            else:
                del self._entries[producer_id]
        return changed

    def clear(self) -> set[int]:
        removed = set(self._entries)
        self._entries.clear()
        return removed
