"""Kafka RecordBatch v2: header parsing, validation, offset rewriting, building and decoding.

Pure: no I/O. The hot path (append and read) touches only the 61-byte header with `struct` and
checks the CRC-32C; records are decoded only by compaction, ListOffsets-by-time, the CLI and tests.

Header layout (big-endian):
    0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32 |
    21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64 |
    43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordsCount i32 | 61 records
batchLength counts from partitionLeaderEpoch (offset 12) to the end. The CRC covers attributes
(offset 21) to the end, so baseOffset and partitionLeaderEpoch can be rewritten without it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import crc32c

from cluster.errors import ErrorCode, LogError
from storage.compression import DECOMPRESSED_BYTES_MAX_DEFAULT, Codec, compress, decompress
from storage.records import Record, decode_records, encode_record

__all__ = [
    "BATCH_HEADER_BYTES",
    "BatchHeader",
    "Codec",
    "Record",
    "build_batch",
    "check_compressed_records",
    "decode_batch",
    "iter_batches",
    "parse_header",
    "rebuild_batch",
    "rewrite_offsets",
    "with_log_append_time",
]

BATCH_HEADER_BYTES = 61
_LOG_OVERHEAD_BYTES = 12  # baseOffset + batchLength: not counted in batchLength
_CRC_START = 21
_HEADER = struct.Struct(">qiibIhiqqqhii")
_TAIL = struct.Struct(">hiqqqhii")  # attributes .. recordsCount, written after the CRC slot

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08  # 1 = LogAppendTime
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The parsed 61-byte header of one v2 batch; `size_bytes` is the whole batch on the wire."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size_bytes(self) -> int:
        return self.batch_length + _LOG_OVERHEAD_BYTES

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_BIT)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def last_sequence(self) -> int:
        """The sequence of the last record, wrapping at int32 max like Kafka."""
        if self.base_sequence < 0:
            return -1
        return (self.base_sequence + self.last_offset_delta) % (1 << 31)


def parse_header(buf: bytes | memoryview, pos: int = 0) -> BatchHeader:
    """Parse a header at `pos` without any validation (the caller knows the bytes are whole)."""
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


def _check_structure(header: BatchHeader, strict: bool) -> None:
    """Structural checks beyond the CRC. `strict` is for producer batches (leader appends).

    A producer batch has recordsCount >= 1 and lastOffsetDelta == recordsCount - 1. Batches a
    follower copies may come from a compacted range, where records are missing but the offset span
    is kept, so there only lastOffsetDelta >= recordsCount - 1 is required.
    """
    if strict and header.records_count <= 0:
        raise LogError(f"batch at {header.base_offset} has {header.records_count} records", ErrorCode.invalid_record)
    if header.records_count < 0 or header.last_offset_delta < 0:
        raise LogError("negative recordsCount or lastOffsetDelta", ErrorCode.invalid_record)
    if strict and header.last_offset_delta != header.records_count - 1:
        raise LogError(
            f"lastOffsetDelta {header.last_offset_delta} does not match recordsCount {header.records_count}",
            ErrorCode.invalid_record,
        )
    if header.last_offset_delta < header.records_count - 1:
        raise LogError("lastOffsetDelta smaller than recordsCount - 1", ErrorCode.invalid_record)
    if header.compression > Codec.ZSTD:
        raise LogError(f"unknown compression codec {header.compression}", ErrorCode.invalid_record)


def iter_batches(
    buf: bytes | memoryview, *, strict: bool = True, batch_bytes_max: int | None = None
) -> Iterator[tuple[BatchHeader, memoryview]]:
    """Yield (header, batch bytes) for each batch of `buf`, validating as it goes.

    Raises LogError: CORRUPT_MESSAGE for a partial batch, bad length, bad magic or CRC mismatch;
    INVALID_RECORD for structural problems; MESSAGE_TOO_LARGE for a batch over `batch_bytes_max`.
    Callers that must not write anything on error should consume the whole iterator first.
    """
    view = memoryview(buf)
    end = len(view)
    pos = 0
    if end == 0:
        raise LogError("no record batch in request", ErrorCode.corrupt_message)
    while pos < end:
        if end - pos < BATCH_HEADER_BYTES:
            raise LogError(f"partial batch header: {end - pos} bytes at position {pos}", ErrorCode.corrupt_message)
        header = parse_header(view, pos)
        size = header.batch_length + _LOG_OVERHEAD_BYTES
        if size < BATCH_HEADER_BYTES or pos + size > end:
            raise LogError(f"batch length {header.batch_length} does not fit the buffer", ErrorCode.corrupt_message)
        if header.magic != 2:
            raise LogError(f"unsupported magic {header.magic} (only v2 batches)", ErrorCode.corrupt_message)
        if batch_bytes_max is not None and size > batch_bytes_max:
            raise LogError(f"batch of {size} bytes exceeds max.message.bytes {batch_bytes_max}", ErrorCode.message_too_large)
        batch = view[pos : pos + size]
        if crc32c.crc32c(batch[_CRC_START:]) != header.crc:
            raise LogError(f"CRC mismatch in batch at position {pos}", ErrorCode.corrupt_message)
        _check_structure(header, strict)
        yield header, batch
        pos += size


def rewrite_offsets(batch: bytes | memoryview, base_offset: int, leader_epoch: int) -> bytes:
    """Return `batch` with baseOffset and partitionLeaderEpoch replaced (both outside the CRC)."""
    return struct.pack(">q", base_offset) + bytes(batch[8:12]) + struct.pack(">i", leader_epoch) + bytes(batch[16:])


def _finish_crc(out: bytearray) -> bytes:
    struct.pack_into(">I", out, 17, crc32c.crc32c(memoryview(out)[_CRC_START:]))
    return bytes(out)


def with_log_append_time(batch: bytes | memoryview, now_ms: int) -> bytes:
    """Set the LogAppendTime attribute and maxTimestamp = now (Kafka's broker-side timestamps).

    Both fields are inside the CRC, so it is recomputed.
    """
    out = bytearray(batch)
    (attributes,) = struct.unpack_from(">h", out, 21)
    struct.pack_into(">h", out, 21, attributes | TIMESTAMP_TYPE_BIT)
    struct.pack_into(">q", out, 35, now_ms)
    return _finish_crc(out)


def _assemble(header: BatchHeader, records_count: int, max_timestamp: int, payload: bytes) -> bytes:
    """Lay out a batch from header fields and a (possibly compressed) records payload."""
    out = bytearray(BATCH_HEADER_BYTES)
    batch_length = BATCH_HEADER_BYTES - _LOG_OVERHEAD_BYTES + len(payload)
    struct.pack_into(">qiib", out, 0, header.base_offset, batch_length, header.partition_leader_epoch, 2)
    _TAIL.pack_into(
        out, _CRC_START, header.attributes, header.last_offset_delta, header.base_timestamp, max_timestamp,
        header.producer_id, header.producer_epoch, header.base_sequence, records_count,
    )
    out += payload
    return _finish_crc(out)


def build_batch(
    records: Sequence[Record],
    *,
    base_offset: int = 0,
    compression: int = Codec.NONE,
    partition_leader_epoch: int = -1,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    log_append_time: bool = False,
    transactional: bool = False,
    control: bool = False,
) -> bytes:
    """Build a valid v2 batch, as a producer would. Offset deltas are positions unless given."""
    if not records:
        raise ValueError("a batch needs at least one record")
    base_timestamp = records[0].timestamp_ms
    offset_deltas = [r.offset_delta if r.offset_delta >= 0 else i for i, r in enumerate(records)]
    attributes = compression | (TIMESTAMP_TYPE_BIT if log_append_time else 0)
    attributes |= (TRANSACTIONAL_BIT if transactional else 0) | (CONTROL_BIT if control else 0)
    header = BatchHeader(
        base_offset, 0, partition_leader_epoch, 2, 0, attributes, offset_deltas[-1], base_timestamp,
        0, producer_id, producer_epoch, base_sequence, len(records),
    )
    return rebuild_batch(header, records, offset_deltas)


def rebuild_batch(header: BatchHeader, records: Sequence[Record], offset_deltas: Sequence[int] | None = None) -> bytes:
    """Re-encode a batch keeping every header field except recordsCount, length and CRC.

    Used by compaction: offsets and the batch's offset span (lastOffsetDelta) are preserved, so
    the batch's place in the log does not move. Records use their own `offset_delta`.
    """
    deltas = offset_deltas if offset_deltas is not None else [r.offset_delta for r in records]
    body = bytearray()
    for record, delta in zip(records, deltas, strict=True):
        encode_record(record, delta, record.timestamp_ms - header.base_timestamp, body)
    max_timestamp = max(r.timestamp_ms for r in records) if records else header.max_timestamp
    if header.is_log_append_time:
        max_timestamp = header.max_timestamp if header.max_timestamp >= 0 else max_timestamp
    payload = compress(header.compression, bytes(body))
    return _assemble(header, len(records), max_timestamp, payload)


def check_compressed_records(header: BatchHeader, batch: bytes | memoryview, size_max: int) -> None:
    """Kafka's LogValidator checks on a compressed producer batch, in bounded memory.

    The records decompress to at most `size_max` bytes (else RECORD_TOO_LARGE); the batch holds
    exactly recordsCount records whose offset deltas are 0, 1, 2... (else INVALID_RECORD), and
    nothing follows the last one (else CORRUPT_MESSAGE). Only each record's length, attributes,
    timestamp delta and offset delta are read; keys, values and headers are skipped.
    """
    payload = decompress(header.compression, bytes(batch[BATCH_HEADER_BYTES:]), size_max)
    end = len(payload)
    pos = 0
    expected = 0
    try:  # the hot loop of a compressed produce: one-byte varints inline, IndexError = truncated
        for expected in range(header.records_count):
            if pos >= end:
                raise LogError(f"batch at {header.base_offset} claims {header.records_count} records, "
                               f"holds {expected}", ErrorCode.invalid_record)
            raw = payload[pos]
            if raw < 0x80:
                pos += 1
            else:
                raw, pos = _raw_varint(payload, pos)
            length = (raw >> 1) ^ -(raw & 1)
            record_end = pos + length
            if length <= 0 or record_end > end:
                raise LogError("record length runs past the batch", ErrorCode.corrupt_message)
            field = pos + 1  # after the attributes byte
            while payload[field] >= 0x80:  # skip the timestamp delta
                field += 1
            field += 1
            raw = payload[field]
            if raw < 0x80:
                field += 1
            else:
                raw, field = _raw_varint(payload, field)
            if field > record_end:
                raise LogError("record header runs past the record", ErrorCode.corrupt_message)
            if raw != expected << 1:  # zigzag(expected)
                delta = (raw >> 1) ^ -(raw & 1)
                raise LogError(f"record {expected} of a compressed batch has offset delta {delta}",
                               ErrorCode.invalid_record)
            pos = record_end
    except IndexError:
        raise LogError(f"record {expected} runs past the end of the batch", ErrorCode.corrupt_message) from None
    if pos != end:
        raise LogError(f"bytes left after the {header.records_count} records of a batch (recordsCount too small?)",
                       ErrorCode.invalid_record)


def _raw_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """An unsigned varint (at most 10 bytes) at `pos`: (value, next position)."""
    result = 0
    for shift in range(0, 70, 7):
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
    raise LogError("varint longer than 10 bytes in a record", ErrorCode.corrupt_message)


def decode_batch(
    batch: bytes | memoryview, size_max: int = DECOMPRESSED_BYTES_MAX_DEFAULT
) -> tuple[BatchHeader, list[Record]]:
    """Decode every record of one (already validated) batch; records carry absolute timestamps.

    With LogAppendTime every record's timestamp is the batch maxTimestamp, as Kafka clients see it.
    The records may decompress to at most `size_max` bytes (RECORD_TOO_LARGE otherwise).
    """
    header = parse_header(batch)
    payload = decompress(header.compression, bytes(batch[BATCH_HEADER_BYTES:]), size_max)
    records = list(decode_records(payload, header.records_count, header.base_timestamp))
    if header.is_log_append_time:
        records = [
            Record(r.key, r.value, header.max_timestamp, r.headers, r.offset_delta) for r in records
        ]
    return header, records
