"""Kafka record (v2) varint codec: the records inside a RecordBatch.

Pure and off the hot path: append and read never decode records. It is used by compaction, by
`offset_for_timestamp` on the one batch it lands in, by the CLI and by tests. kio's record codec
truncates timestamps to seconds, hence this small one.

Record layout (all varints are zigzag):
    length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
    keyLength varint | key | valueLength varint | value | headerCount varint |
    (headerKeyLength varint | headerKey | headerValueLength varint | headerValue)*
A length of -1 means null.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cluster.errors import ErrorCode, LogError

__all__ = ["Record", "decode_records", "encode_record", "encode_varint", "decode_varint"]

Header = tuple[str, bytes | None]


@dataclass(frozen=True, slots=True)
class Record:
    """One record. `offset_delta` and `timestamp_ms` are absolute-within-batch coordinates.

    When building a batch the caller may leave `offset_delta` as -1 (assigned by position).
    """

    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0
    headers: tuple[Header, ...] = ()
    offset_delta: int = -1


def encode_varint(value: int, out: bytearray) -> None:
    """Append the zigzag varint encoding of a signed 64-bit `value` to `out`."""
    zigzag = (value << 1) ^ (value >> 63)
    zigzag &= 0xFFFFFFFFFFFFFFFF
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a zigzag varint at `pos`; return (value, next position). Raises LogError if truncated."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end or shift > 63:
            raise LogError("truncated or oversized varint in record", ErrorCode.corrupt_message)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    return (result >> 1) ^ -(result & 1), pos


def _encode_nullable(data: bytes | None, out: bytearray) -> None:
    if data is None:
        encode_varint(-1, out)
    else:
        encode_varint(len(data), out)
        out += data


def encode_record(record: Record, offset_delta: int, timestamp_delta: int, out: bytearray) -> None:
    """Append one encoded record (with its length prefix) to `out`."""
    body = bytearray(b"\x00")  # attributes: unused in v2, always 0
    encode_varint(timestamp_delta, body)
    encode_varint(offset_delta, body)
    _encode_nullable(record.key, body)
    _encode_nullable(record.value, body)
    encode_varint(len(record.headers), body)
    for header_key, header_value in record.headers:
        _encode_nullable(header_key.encode(), body)
        _encode_nullable(header_value, body)
    encode_varint(len(body), out)
    out += body


def _decode_nullable(buf: bytes | memoryview, pos: int, limit: int) -> tuple[bytes | None, int]:
    length, pos = decode_varint(buf, pos)
    if length < 0:
        return None, pos
    if pos + length > limit:
        raise LogError("record field runs past the record", ErrorCode.corrupt_message)
    return bytes(buf[pos : pos + length]), pos + length


def decode_records(
    buf: bytes | memoryview, count: int, base_timestamp_ms: int, count_max: int = 1 << 24
) -> Iterator[Record]:
    """Decode `count` records from the (decompressed) records section of a batch."""
    if count < 0 or count > count_max:
        raise LogError(f"record count {count} out of range", ErrorCode.invalid_record)
    pos = 0
    for _ in range(count):
        length, pos = decode_varint(buf, pos)
        limit = pos + length
        if length < 0 or limit > len(buf):
            raise LogError("record length runs past the batch", ErrorCode.corrupt_message)
        pos += 1  # attributes
        timestamp_delta, pos = decode_varint(buf, pos)
        offset_delta, pos = decode_varint(buf, pos)
        key, pos = _decode_nullable(buf, pos, limit)
        value, pos = _decode_nullable(buf, pos, limit)
        header_count, pos = decode_varint(buf, pos)
        if header_count > (limit - pos) // 2:  # each header is at least two (null) lengths
            raise LogError(f"record claims {header_count} headers", ErrorCode.corrupt_message)
        headers: list[Header] = []
        for _ in range(max(header_count, 0)):
            header_key, pos = _decode_nullable(buf, pos, limit)
            header_value, pos = _decode_nullable(buf, pos, limit)
            headers.append(((header_key or b"").decode("utf-8", "replace"), header_value))
        if pos != limit:
            raise LogError("record length does not match its fields", ErrorCode.corrupt_message)
        yield Record(key, value, base_timestamp_ms + timestamp_delta, tuple(headers), offset_delta)
    if pos != len(buf):
        raise LogError("bytes left after the last record of a batch", ErrorCode.corrupt_message)
