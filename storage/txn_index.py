"""A partition's transactions (pure): open transactions, the last stable offset, aborted ranges.

Kafka keeps this in its ProducerStateManager (ongoing transactions per producer) and in the
`.txnindex` files (aborted transactions). Here it is one small value per partition:

    ongoing    producer id -> offset of its first transactional batch not yet ended by a marker
    aborted    (producer id, first offset, last offset = the ABORT marker's offset), in log order
    completed  the most recent ended transactions (commit or abort), at most COMPLETED_MAX, so a
               truncation that cuts a marker reopens its transaction

`update` reads every stored batch: a transactional data batch of a producer with no open
transaction opens one at its base offset; a control batch (a COMMIT or ABORT marker, written by
the transaction coordinator) ends it. The last stable offset (LSO) of a partition is
min(high watermark, first offset of the oldest open transaction): read_committed consumers read
only below it, and drop the records of the aborted ranges the fetch answer lists.

A truncation forgets open transactions that started at or after the cut and reopens those whose
marker was cut (the coordinator writes the marker again: its decision is in `__transaction_state`).
The value is encoded for storage (`encode`/`decode`); both logs keep it with the same rules.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from storage.batch import BatchHeader, build_batch, decode_batch
from storage.records import Record

__all__ = [
    "ABORT",
    "COMMIT",
    "COMPLETED_MAX",
    "AbortedTxn",
    "TxnIndex",
    "control_batch",
    "control_type",
]

ABORT = 0
COMMIT = 1
# Ended transactions remembered so that a truncation which cuts a marker can reopen it.
COMPLETED_MAX = 1000
_HEAD = struct.Struct(">Bii")  # version, ongoing count, ended count
_ONGOING = struct.Struct(">qq")
_ENDED = struct.Struct(">qqqB")  # producer id, first offset, last offset, aborted
_VERSION = 1
_CONTROL_KEY = struct.Struct(">hh")


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # the ABORT marker's offset


@dataclass(frozen=True, slots=True)
class _Ended:
    producer_id: int
    first_offset: int
    last_offset: int
    aborted: bool


def control_type(batch: bytes | memoryview) -> int:
    """COMMIT or ABORT: the type in a control batch's record key (version int16, type int16).

    A control batch whose key cannot be read counts as ABORT: the safe reading for a consumer.
    """
    try:
        _, records = decode_batch(batch)
        key = records[0].key if records else None
        if key is None or len(key) < _CONTROL_KEY.size:
            return ABORT
        _, kind = _CONTROL_KEY.unpack_from(key, 0)
    except Exception:  # a marker is built by the coordinator; a broken one must not stop an append
        return ABORT
    return COMMIT if kind == COMMIT else ABORT


def control_batch(producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool,
                  timestamp_ms: int) -> bytes:
    """A transaction marker as Kafka writes it: a transactional control batch of one record whose
    key is (version 0, type) and value the EndTxnMarker (version 0, coordinator epoch)."""
    key = _CONTROL_KEY.pack(0, COMMIT if commit else ABORT)
    value = struct.pack(">hi", 0, coordinator_epoch)
    return build_batch([Record(key, value, timestamp_ms)], producer_id=producer_id, producer_epoch=producer_epoch,
                       transactional=True, control=True)


class TxnIndex:
    """Open and ended transactions of one partition. Mutators return True when something changed."""

    def __init__(self, ongoing: dict[int, int] | None = None, ended: list[_Ended] | None = None) -> None:
        self._ongoing: dict[int, int] = dict(ongoing or {})
        self._ended: list[_Ended] = list(ended or [])

    # -- reading -------------------------------------------------------------------------------------
    def ongoing(self) -> dict[int, int]:
        return dict(self._ongoing)

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction, None when none is open."""
        return min(self._ongoing.values()) if self._ongoing else None

    def last_stable_offset(self, high_watermark: int) -> int:
        first = self.first_unstable_offset()
        return high_watermark if first is None else min(high_watermark, first)

    def aborted(self, start_offset: int, upper_offset: int) -> list[AbortedTxn]:
        """Aborted transactions that may hold records in [start_offset, upper_offset): Kafka's
        `collectAbortedTxns` (last offset >= start, first offset < upper)."""
        return [AbortedTxn(e.producer_id, e.first_offset, e.last_offset) for e in self._ended
                if e.aborted and e.last_offset >= start_offset and e.first_offset < upper_offset]

    # -- changing ------------------------------------------------------------------------------------
    def would_change(self, headers: Iterable[BatchHeader]) -> bool:
        """Whether `update` with these batches changes anything (a marker, or a first batch of a
        producer's transaction): the log copies and rewrites the index only then."""
        return any(h.is_transactional and h.producer_id >= 0 and (h.is_control or h.producer_id not in self._ongoing)
                   for h in headers)

    def update(self, batches: Iterable[tuple[BatchHeader, bytes | memoryview]]) -> bool:
        """Record stored batches (offsets assigned), in log order."""
        changed = False
        for header, body in batches:
            if header.producer_id < 0 or not header.is_transactional:
                continue
            pid = header.producer_id
            if header.is_control:
                first = self._ongoing.pop(pid, None)
                if first is None:
                    continue  # a marker for a transaction with no data here (or a retried marker)
                self._ended.append(_Ended(pid, first, header.base_offset, control_type(body) == ABORT))
                self._trim()
                changed = True
            elif pid not in self._ongoing:
                self._ongoing[pid] = header.base_offset
                changed = True
        return changed

    def _trim(self) -> None:
        """Keep every aborted entry (consumers need them) and the newest COMPLETED_MAX commits."""
        commits = sum(1 for e in self._ended if not e.aborted)
        if commits <= COMPLETED_MAX:
            return
        drop = commits - COMPLETED_MAX
        kept = []
        for e in self._ended:
            if not e.aborted and drop > 0:
                drop -= 1
                continue
            kept.append(e)
        self._ended = kept

    def truncate(self, end_offset: int) -> bool:
        """Forget what starts at or after `end_offset`; reopen transactions whose marker was cut."""
        changed = False
        for pid, first in list(self._ongoing.items()):
            if first >= end_offset:
                del self._ongoing[pid]
                changed = True
        kept = []
        for e in self._ended:
            if e.last_offset < end_offset:
                kept.append(e)
                continue
            changed = True
            if e.first_offset < end_offset:
                self._ongoing[e.producer_id] = e.first_offset
        self._ended = kept
        return changed

    def drop_before(self, log_start_offset: int) -> bool:
        """Retention removed everything below `log_start_offset`: forget ended ranges there."""
        kept = [e for e in self._ended if e.last_offset >= log_start_offset]
        if len(kept) == len(self._ended):
            return False
        self._ended = kept
        return True

    def clear(self) -> bool:
        changed = bool(self._ongoing or self._ended)
        self._ongoing, self._ended = {}, []
        return changed

    def copy(self) -> TxnIndex:
        return TxnIndex(self._ongoing, self._ended)

    # -- storage -------------------------------------------------------------------------------------
    def encode(self) -> bytes:
        out = bytearray(_HEAD.pack(_VERSION, len(self._ongoing), len(self._ended)))
        for pid, first in sorted(self._ongoing.items()):
            out += _ONGOING.pack(pid, first)
        for e in self._ended:
            out += _ENDED.pack(e.producer_id, e.first_offset, e.last_offset, int(e.aborted))
        return bytes(out)

    @classmethod
    def decode(cls, value: bytes | None) -> TxnIndex:
        if not value:
            return cls()
        version, ongoing_count, ended_count = _HEAD.unpack_from(value, 0)
        if version != _VERSION:
            raise ValueError(f"unknown transaction index version {version}")
        pos = _HEAD.size
        ongoing = {}
        for _ in range(ongoing_count):
            pid, first = _ONGOING.unpack_from(value, pos)
            ongoing[pid] = first
            pos += _ONGOING.size
        ended = []
        for _ in range(ended_count):
            pid, first, last, aborted = _ENDED.unpack_from(value, pos)
            ended.append(_Ended(pid, first, last, bool(aborted)))
            pos += _ENDED.size
        return cls(ongoing, ended)
