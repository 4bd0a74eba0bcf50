"""A small private Kafka RecordBatch v2 encoder/decoder for `__consumer_offsets`.

The coordinator writes its own batches (uncompressed, magic 2, no producer id) and reads back the
batches of its partitions when it loads them. `storage/batch.py` was not there when this was
written, so this module does the little that is needed; it should be replaced by the storage
helpers once they exist.

Batch layout (big-endian):
    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 | crc uint32 |
    attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 | maxTimestamp int64 |
    producerId int64 | producerEpoch int16 | baseSequence int32 | recordCount int32 | records...
The CRC-32C covers everything from `attributes` to the end of the batch.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import crc32c

__all__ = ["Batch", "BatchRecord", "RecordsError", "build_batch", "iter_batches", "iter_records"]

_HEADER = struct.Struct(">qiiBIhiqqqhii")
HEADER_BYTES = _HEADER.size  # 61
_CRC_START = 21  # offset of `attributes`
_ATTR_COMPRESSION_MASK = 0x07
_ATTR_CONTROL = 0x20
# A batch of the coordinator's own never holds more than this many records (one per committed
# partition plus a group record); a decoded batch claiming more is corrupt.
RECORDS_PER_BATCH_MAX = 1 << 20


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


def _put_varint(value: int, out: bytearray) -> None:
    zigzag = ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def _get_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise RecordsError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _put_nullable(data: bytes | None, out: bytearray) -> None:
    if data is None:
        _put_varint(-1, out)
    else:
        _put_varint(len(data), out)
        out += data


def build_batch(records: Sequence[tuple[bytes, bytes | None]], timestamp_ms: int) -> bytes:
    """An uncompressed v2 batch of (key, value) records, base offset 0, all stamped `timestamp_ms`."""
    if not records:
        raise ValueError("a batch needs at least one record")
    body = bytearray()
    for offset_delta, (key, value) in enumerate(records):
        record = bytearray(b"\x00")  # attributes
        _put_varint(0, record)  # timestamp delta
        _put_varint(offset_delta, record)
        _put_nullable(key, record)
        _put_nullable(value, record)
        _put_varint(0, record)  # no headers
        _put_varint(len(record), body)
        body += record
    count = len(records)
    header = bytearray(_HEADER.pack(0, HEADER_BYTES - 12 + len(body), -1, 2, 0, 0, count - 1,
                                    timestamp_ms, timestamp_ms, -1, -1, -1, count))
    batch = header + body
    crc = crc32c.crc32c(bytes(batch[_CRC_START:]))
    struct.pack_into(">I", batch, 17, crc)
    return bytes(batch)


def _decompress(codec: int, data: bytes) -> bytes:
    # Batches written by Brook's coordinator are never compressed; decompress anyway so a batch
    # written by another implementation still loads.
    from storage.compression import decompress

    return decompress(codec, data)


def iter_batches(data: bytes | memoryview) -> Iterator[Batch]:
    """Every complete batch in `data` (concatenated batches), with its data records.

    Control batches come back with no records. A trailing partial batch (a read cut at
    `max_bytes`) is ignored; a batch whose CRC does not match raises RecordsError.
    """
    view = memoryview(data)
    pos = 0
    while pos + HEADER_BYTES <= len(view):
        (base_offset, batch_length, _epoch, magic, crc, attributes, last_delta, base_timestamp,
         _max_timestamp, _pid, _pepoch, _seq, count) = _HEADER.unpack_from(view, pos)
        end = pos + 12 + batch_length
        if batch_length < HEADER_BYTES - 12 or end > len(view):
            return
        if magic != 2:
            raise RecordsError(f"unsupported magic {magic} at offset {base_offset}")
        if crc32c.crc32c(bytes(view[pos + _CRC_START:end])) != crc:
            raise RecordsError(f"CRC mismatch in batch at offset {base_offset}")
        if count < 0 or count > RECORDS_PER_BATCH_MAX:
            raise RecordsError(f"record count {count} out of range")
        records: tuple[BatchRecord, ...] = ()
        if not attributes & _ATTR_CONTROL:
            payload: bytes | memoryview = view[pos + HEADER_BYTES:end]
            codec = attributes & _ATTR_COMPRESSION_MASK
            if codec:
                payload = _decompress(codec, bytes(payload))
            records = tuple(_decode_records(payload, count, base_offset, base_timestamp))
        yield Batch(base_offset, base_offset + last_delta, records)
        pos = end


def iter_records(data: bytes | memoryview) -> Iterator[BatchRecord]:
    """Every data record of the complete batches in `data`, in offset order."""
    for batch in iter_batches(data):
        yield from batch.records


def _decode_records(buf: bytes | memoryview, count: int, base_offset: int,
                    base_timestamp: int) -> Iterator[BatchRecord]:
    pos = 0
    for _ in range(count):
        length, pos = _get_varint(buf, pos)
        limit = pos + length
        if length < 0 or limit > len(buf):
            raise RecordsError("record runs past its batch")
        pos += 1  # attributes
        timestamp_delta, pos = _get_varint(buf, pos)
        offset_delta, pos = _get_varint(buf, pos)
        key, pos = _get_nullable(buf, pos, limit)
        value, pos = _get_nullable(buf, pos, limit)
        yield BatchRecord(base_offset + offset_delta, base_timestamp + timestamp_delta, key, value)
        pos = limit  # headers are not used by the coordinator


def _get_nullable(buf: bytes | memoryview, pos: int, limit: int) -> tuple[bytes | None, int]:
    length, pos = _get_varint(buf, pos)
    if length < 0:
        return None, pos
    if pos + length > limit:
        raise RecordsError("record field runs past its record")
    return bytes(buf[pos:pos + length]), pos + length
