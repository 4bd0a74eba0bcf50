"""RocksDB key layout (pure). Fixed-width big-endian numbers so byte order is numeric order.

    0x00 'N'                                      -> next internal partition number (u32)
    0x00 'P' topic_id(16) partition(u32)          -> internal number (u32) + topic name (utf-8)
    0x01 number(u32) kind(1) suffix               -> per-partition data, kinds:
        'B' offset(u64)   one record batch, exactly as stored (one key per batch, never per record)
        'I' offset(u64)   batch index: last offset, max timestamp, size (lets retention, truncation
                          and ListOffsets work without reading batch bodies)
        'S' offset(u64)   segment at that base offset: size, created clock, max timestamp
        'Q' id(u64)       producer state (id + 2^63 so negative ids would still sort)
        'M' name          metadata: log end offset, log start offset, high watermark, epochs, the
                          transaction index ('txn', storage/txn_index.py)...
The internal number keeps keys short and lets `delete` drop a partition with one delete_range.
"""

from __future__ import annotations

import struct

__all__ = [
    "BATCH", "INDEX", "META", "PRODUCER", "SEGMENT", "decode_offset", "index_value", "parse_index_value",
    "partition_key", "partition_prefix", "partition_range", "registry_key", "registry_prefix",
    "NEXT_NUMBER_KEY",
]

BATCH = b"B"
INDEX = b"I"
SEGMENT = b"S"
PRODUCER = b"Q"
META = b"M"
NEXT_NUMBER_KEY = b"\x00N"
_REGISTRY = b"\x00P"
_PARTITION = b"\x01"
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_INDEX_VALUE = struct.Struct(">qqi")  # last offset, max timestamp, size bytes
OFFSET_MAX = (1 << 64) - 1


def registry_prefix() -> bytes:
    return _REGISTRY


def registry_key(topic_id: bytes, partition: int) -> bytes:
    assert len(topic_id) == 16, "topic ids are 16-byte UUIDs"
    assert 0 <= partition < (1 << 31), f"partition {partition} out of range"
    return _REGISTRY + topic_id + _U32.pack(partition)


def partition_prefix(number: int) -> bytes:
    return _PARTITION + _U32.pack(number)


def partition_range(number: int) -> tuple[bytes, bytes]:
    """[start, end) covering every key of one partition."""
    return partition_prefix(number), partition_prefix(number + 1)


def partition_key(number: int, kind: bytes, offset: int) -> bytes:
    """A kind + u64 key; `offset` must be non-negative (producer ids are shifted by the caller)."""
    assert 0 <= offset <= OFFSET_MAX, f"offset {offset} out of range"
    return _PARTITION + _U32.pack(number) + kind + _U64.pack(offset)


def kind_range(number: int, kind: bytes, start: int = 0, end: int = OFFSET_MAX) -> tuple[bytes, bytes]:
    """[start, end) keys of one kind; `end` exclusive (OFFSET_MAX means to the end of the kind)."""
    prefix = _PARTITION + _U32.pack(number) + kind
    upper = prefix + _U64.pack(end) if end < OFFSET_MAX else _PARTITION + _U32.pack(number) + bytes([kind[0] + 1])
    return prefix + _U64.pack(start), upper


def meta_key(number: int, name: bytes) -> bytes:
    return _PARTITION + _U32.pack(number) + META + name


def decode_offset(key: bytes) -> int:
    """The u64 at the end of a kind key."""
    return int(_U64.unpack_from(key, len(key) - 8)[0])


def producer_key(number: int, producer_id: int) -> bytes:
    return partition_key(number, PRODUCER, producer_id + (1 << 63))


def decode_producer_id(key: bytes) -> int:
    return decode_offset(key) - (1 << 63)


def index_value(last_offset: int, max_timestamp: int, size_bytes: int) -> bytes:
    return _INDEX_VALUE.pack(last_offset, max_timestamp, size_bytes)


def parse_index_value(value: bytes) -> tuple[int, int, int]:
    last_offset, max_timestamp, size_bytes = _INDEX_VALUE.unpack(value)
    return last_offset, max_timestamp, size_bytes


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def decode_u64(value: bytes) -> int:
    return int(_U64.unpack(value)[0])


def encode_u32(value: int) -> bytes:
    return _U32.pack(value)


def decode_u32(value: bytes, pos: int = 0) -> int:
    return int(_U32.unpack_from(value, pos)[0])
