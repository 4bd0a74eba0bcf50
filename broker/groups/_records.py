"""`__consumer_offsets` batches as the coordinator sees them, over the shared codec in `storage/batch.py`.

The coordinator writes uncompressed v2 batches of (key, value) records and reads back the batches of
the partitions it loads. This module only adapts `storage.batch` to that use: a trailing partial
batch (a read cut at `max_bytes`) is ignored, control batches carry no records, and any corruption
is a `RecordsError` — or, with `skip_bad=True` (loading), a `Batch` with no records and an `error`,
so one bad batch never hides the batches after it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cluster.errors import LogError
from storage import batch as codec
from storage.records import Record
from storage.txn_index import COMMIT, control_type

__all__ = ["Batch", "BatchRecord", "RecordsError", "build_batch", "iter_batches", "iter_records"]

HEADER_BYTES = codec.BATCH_HEADER_BYTES  # 61


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
    records: tuple[BatchRecord, ...]  # empty for control batches and bad batches
    error: str | None = None  # why the batch could not be decoded (only with `skip_bad`)
    producer_id: int = -1
    transactional: bool = False
    commit: bool | None = None  # a transaction marker: True COMMIT, False ABORT; None for data


def build_batch(records: Sequence[tuple[bytes, bytes | None]], timestamp_ms: int,
                producer: tuple[int, int] | None = None) -> bytes:
    """An uncompressed v2 batch of (key, value) records, base offset 0, all stamped `timestamp_ms`.

    `producer` = (producer id, epoch) makes it a transactional batch (TxnOffsetCommit)."""
    if not records:
        raise ValueError("a batch needs at least one record")
    built = [Record(key, value, timestamp_ms) for key, value in records]
    if producer is None:
        return codec.build_batch(built)
    return codec.build_batch(built, producer_id=producer[0], producer_epoch=producer[1], transactional=True)


def _complete_prefix(view: memoryview) -> memoryview:
    """`view` cut after its last complete batch (reads stop at a byte budget, not a batch edge)."""
    pos = 0
    while pos + HEADER_BYTES <= len(view):
        size = codec.parse_header(view, pos).size_bytes
        if size < HEADER_BYTES or pos + size > len(view):
            break
        pos += size
    return view[:pos]


def _decode(raw: memoryview) -> Batch:
    """One whole batch, validated (CRC, magic, structure) and decoded; LogError/ValueError if bad."""
    ((header, _),) = codec.iter_batches(raw, strict=False)
    records: tuple[BatchRecord, ...] = ()
    if header.is_control:
        commit = header.is_transactional and control_type(raw) == COMMIT
        return Batch(header.base_offset, header.last_offset, (), None, header.producer_id, True, commit)
    if not header.is_control:
        _, decoded = codec.decode_batch(raw)
        records = tuple(
            BatchRecord(header.base_offset + (r.offset_delta if r.offset_delta >= 0 else i),
                        r.timestamp_ms, r.key, r.value)
            for i, r in enumerate(decoded))
    return Batch(header.base_offset, header.last_offset, records, None, header.producer_id,
                 header.is_transactional)


def iter_batches(data: bytes | memoryview, *, skip_bad: bool = False) -> Iterator[Batch]:
    """Every complete batch in `data` (concatenated batches), with its data records.

    Control batches come back with no records. A trailing partial batch is ignored. A batch that
    fails validation or decoding (CRC, magic, structure, garbage records) raises RecordsError, or
    with `skip_bad` comes back with no records and its `error` set; the walk then goes on with the
    next batch, found by the bad batch's length (the log stores whole batches).
    """
    complete = _complete_prefix(memoryview(data))
    pos = 0
    while pos < len(complete):
        header = codec.parse_header(complete, pos)
        raw = complete[pos:pos + header.size_bytes]
        pos += header.size_bytes
        try:
            batch = _decode(raw)
        except (LogError, ValueError) as e:
            if not skip_bad:
                raise RecordsError(str(e)) from e
            batch = Batch(header.base_offset, header.last_offset, (), str(e))
        yield batch


def iter_records(data: bytes | memoryview) -> Iterator[BatchRecord]:
    """Every data record of the complete batches in `data`, in offset order."""
    for batch in iter_batches(data):
        yield from batch.records
