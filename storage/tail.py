"""The tail of a log kept in memory: the batches of its last append, served to readers without RocksDB.

An acks=all produce is read back at once by every follower (and a tailing consumer reads the same
batches a little later): from RocksDB each such read is an index iterator, a multi-get and two copies
of every body (memtable -> std::string -> bytes). The log keeps the bodies it has just written (the same
bytes objects it handed to the WriteBatch) and answers a read at or after the first of them from
memory, with the same batches the index walk would choose.

Pure: no RocksDB, no clock. Memory is bounded by one TailBudget per log directory (least recently
appended logs drop their tail first); a log drops its tail whenever anything other than an append
changes its stored batches (storage/rocksdb_log.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from storage.batch import BatchHeader

__all__ = ["TAIL_BYTES_MAX", "TailBudget", "read_tail"]

TAIL_BYTES_MAX = 8 << 20  # per log directory


class _HasTail(Protocol):
    def drop_tail(self) -> None: ...


class TailBudget:
    """The bytes held by the tails of one directory's logs, at most `bytes_max` in all."""

    def __init__(self, bytes_max: int = TAIL_BYTES_MAX) -> None:
        self.bytes_max = bytes_max
        self._held: OrderedDict[int, tuple[_HasTail, int]] = OrderedDict()
        self.total = 0

    def admit(self, number: int, owner: _HasTail, size: int) -> bool:
        """Account for log `number`'s new tail of `size` bytes (replacing its old one); False if it
        alone is larger than the budget (the log keeps no tail then). Older tails are dropped to fit."""
        self.release(number)
        if size > self.bytes_max:
            return False
        while self.total + size > self.bytes_max and self._held:
            _, (other, other_size) = self._held.popitem(last=False)
            self.total -= other_size
            other.drop_tail()
        self._held[number] = (owner, size)
        self.total += size
        return True

    def release(self, number: int) -> None:
        held = self._held.pop(number, None)
        if held is not None:
            self.total -= held[1]


def read_tail(batches: Sequence[tuple[BatchHeader, bytes]], offset: int, max_bytes: int, upper_bound: int,
              min_one: bool) -> tuple[list[bytes], int, int] | None:
    """What RocksDBLog.read would return for `offset` when `batches` are the last batches of the log, in
    order, ending at its log end: (bodies, first offset, next offset); None when `offset` is before
    the first of them (the store must answer). The same rules as the index walk: whole batches whose
    last offset is at or after `offset` and below `upper_bound`, up to `max_bytes` (the first one even if
    larger, with `min_one`)."""
    if not batches or offset < batches[0][0].base_offset:
        return None
    chosen: list[bytes] = []
    first_offset = next_offset = offset
    total = 0
    for header, body in batches:
        if header.last_offset >= upper_bound:
            break
        if header.last_offset >= offset:
            if total + header.size_bytes > max_bytes and (chosen or not min_one):
                break
            if not chosen:
                first_offset = header.base_offset
            chosen.append(body)
            total += header.size_bytes
            next_offset = header.last_offset + 1
    return chosen, first_offset, next_offset
