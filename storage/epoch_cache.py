"""The leader-epoch cache: which leader epoch started at which offset (pure).

Followers use `end_offset_for_epoch` (OffsetsForLeaderEpoch) to find where their log diverges
from the leader's, instead of trusting their own high watermark.
"""

from __future__ import annotations

import struct

from storage.log import EpochEntry

__all__ = ["EpochCache"]

_ENTRY = struct.Struct(">iq")
UNDEFINED = -1


class EpochCache:
    """Entries sorted by epoch and by start offset, both strictly increasing."""

    def __init__(self, entries: list[EpochEntry] | None = None) -> None:
        self._entries: list[EpochEntry] = list(entries or [])
        self._check()

    def _check(self) -> None:
        for before, after in zip(self._entries, self._entries[1:], strict=False):
            assert before.epoch < after.epoch, f"epochs not increasing: {self._entries}"
            assert before.start_offset <= after.start_offset, f"start offsets decreasing: {self._entries}"

    def entries(self) -> list[EpochEntry]:
        return list(self._entries)

    def latest_epoch(self) -> int:
        return self._entries[-1].epoch if self._entries else UNDEFINED

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`; only a higher epoch adds an entry.

        Returns whether the cache changed. An entry whose start offset is not below the new one
        cannot have any data of its own any more, so it is dropped (Kafka does the same).
        """
        if epoch < 0 or epoch <= self.latest_epoch():
            return False
        while self._entries and self._entries[-1].start_offset >= start_offset:
            self._entries.pop()
        self._entries.append(EpochEntry(epoch, start_offset))
        self._check()
        return True

    def truncate_from_end(self, end_offset: int) -> bool:
        """Drop entries starting at or after `end_offset` (the log was truncated there)."""
        before = len(self._entries)
        while self._entries and self._entries[-1].start_offset >= end_offset:
            self._entries.pop()
        return len(self._entries) != before

    def truncate_from_start(self, start_offset: int) -> bool:
        """The log now starts at `start_offset`: the epoch covering it starts there; earlier go."""
        index = 0
        while index + 1 < len(self._entries) and self._entries[index + 1].start_offset <= start_offset:
            index += 1
        if not self._entries or (index == 0 and self._entries[0].start_offset >= start_offset):
            return False
        first = self._entries[index]
        self._entries = [EpochEntry(first.epoch, max(first.start_offset, start_offset))] + self._entries[index + 1 :]
        self._check()
        return True

    def clear(self) -> None:
        self._entries.clear()

    def end_offset_for_epoch(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's OffsetsForLeaderEpoch answer: (largest known epoch <= `epoch`, its end offset).

        The end offset is the start offset of the next higher epoch, or the log end offset for the
        latest epoch. If `epoch` is below every known epoch the answer is (epoch, first start
        offset), like Kafka; if nothing is known or `epoch` is above the latest, (-1, -1).
        """
        if epoch < 0 or not self._entries or epoch > self.latest_epoch():
            return UNDEFINED, UNDEFINED
        if epoch == self.latest_epoch():
            return epoch, log_end_offset
        floor: EpochEntry | None = None
        for entry in self._entries:
            if entry.epoch > epoch:
                return (floor.epoch if floor else epoch), entry.start_offset
            floor = entry
        raise AssertionError("unreachable: epoch below latest has a higher entry")

    def encode(self) -> bytes:
        return b"".join(_ENTRY.pack(e.epoch, e.start_offset) for e in self._entries)

    @classmethod
    def decode(cls, value: bytes | None) -> EpochCache:
        if not value:
            return cls()
        return cls([EpochEntry(*_ENTRY.unpack_from(value, i)) for i in range(0, len(value), _ENTRY.size)])
