"""`__consumer_offsets` batches as the coordinator sees them, over the shared codec in `storage/batch.py`.

The coordinator writes uncompressed v2 batches of (key, value) records and reads back the batches of
the partitions it loads. This module only adapts `storage.batch` to that use: a trailing partial
batch (a read cut at `max_bytes`) is ignored, control batches carry no records, and any corruption
is a `RecordsError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cluster.errors import LogError
from storage import batch as codec
from storage.records import Record

__all__ = ["Batch", "BatchRecord", "RecordsError", "build_batch", "iter_batches", "iter_records"]

HEADER_BYTES = codec.BATCH_HEADER_BYTES  # 61
_LOG_OVERHEAD_BYTES = 12  # baseOffset + batchLength precede what batchLength counts


class RecordsError(ValueError):
    """A batch in `__consumer_offsets` could not be decoded."""


@dataclass(frozen=True, slots=True)
class BatchRecord:
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Batch:
    base_offset: int
    last_offset: int
    records: tuple[BatchRecord, ...]  # empty for control batches


def build_batch(records: Sequence[tuple[bytes, bytes | None]], timestamp_ms: int) -> bytes:
    """An uncompressed v2 batch of (key, value) records, base offset 0, all stamped `timestamp_ms`."""
    if not records:
        raise ValueError("a batch needs at least one record")
    return codec.build_batch([Record(key, value, timestamp_ms) for key, value in records])


def _complete_prefix(view: memoryview) -> memoryview:
    """`view` cut after its last complete batch (reads stop at a byte budget, not a batch edge)."""
    pos = 0
    while pos + HEADER_BYTES <= len(view):
        (batch_length,) = struct.unpack_from(">i", view, pos + 8)
        end = pos + _LOG_OVERHEAD_BYTES + batch_length
        if batch_length < HEADER_BYTES - _LOG_OVERHEAD_BYTES or end > len(view):
            break
        pos = end
    return view[:pos]


def iter_batches(data: bytes | memoryview) -> Iterator[Batch]:
    """Every complete batch in `data` (concatenated batches), with its data records.

    Control batches come back with no records. A trailing partial batch is ignored; a batch that
    fails validation (CRC, magic, structure) raises RecordsError.
    """
    complete = _complete_prefix(memoryview(data))
    if not complete:
        return
    try:
        for header, raw in codec.iter_batches(complete, strict=False):
            records: tuple[BatchRecord, ...] = ()
            if not header.is_control:
                _, decoded = codec.decode_batch(raw)
                records = tuple(
                    BatchRecord(header.base_offset + (r.offset_delta if r.offset_delta >= 0 else i),
                                r.timestamp_ms, r.key, r.value)
                    for i, r in enumerate(decoded))
            yield Batch(header.base_offset, header.base_offset + header.last_offset_delta, records)
    except (LogError, ValueError) as e:
        raise RecordsError(str(e)) from e


def iter_records(data: bytes | memoryview) -> Iterator[BatchRecord]:
    """Every data record of the complete batches in `data`, in offset order."""
    for batch in iter_batches(data):
        yield from batch.records
