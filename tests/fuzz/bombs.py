"""Decompression bombs: valid RecordBatch v2 batches whose records expand to far more than they hold.

Built by streaming compressors from small chunks, so the test process never holds the expanded bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import cramjam
import crc32c
import lz4.frame
import zstandard

from storage.batch import BATCH_HEADER_BYTES
from storage.compression import Codec
from storage.records import encode_varint

__all__ = ["bomb_batch"]

_CHUNK = 1 << 20


def _record_pieces(value_bytes: int) -> Iterator[bytes]:
    """One record (key b"k", a value of `value_bytes` zeros) as pieces: prefix, zero chunks."""
    body_head = bytearray(b"\x00")  # attributes
    encode_varint(0, body_head)     # timestamp delta
    encode_varint(0, body_head)     # offset delta
    encode_varint(1, body_head)
    body_head += b"k"
    encode_varint(value_bytes, body_head)
    tail = bytearray()
    encode_varint(0, tail)          # no headers
    prefix = bytearray()
    encode_varint(len(body_head) + value_bytes + len(tail), prefix)
    yield bytes(prefix + body_head)
    left = value_bytes
    zeros = bytes(_CHUNK)
    while left:
        n = min(left, _CHUNK)
        yield zeros if n == _CHUNK else bytes(n)
        left -= n
    yield bytes(tail)


def _compressed(codec: int, value_bytes: int) -> bytes:
    pieces = _record_pieces(value_bytes)
    if codec == Codec.ZSTD:
        c = zstandard.ZstdCompressor(level=3).compressobj()
        return b"".join(c.compress(p) for p in pieces) + c.flush()
    if codec == Codec.GZIP:
        z = zlib.compressobj(9, zlib.DEFLATED, 31)
        return b"".join(z.compress(p) for p in pieces) + z.flush()
    if codec == Codec.LZ4:
        lz = lz4.frame.LZ4FrameCompressor()
        return lz.begin() + b"".join(lz.compress(p) for p in pieces) + lz.flush()
    if codec == Codec.SNAPPY:  # raw snappy needs the whole input: keep these small
        return bytes(cramjam.snappy.compress_raw(b"".join(pieces)))
    raise ValueError(codec)


def bomb_batch(codec: int, value_bytes: int, timestamp_ms: int = 1_700_000_000_000) -> bytes:
    """A CRC-valid batch of one record (recordsCount 1) whose value is `value_bytes` zeros."""
    payload = _compressed(codec, value_bytes)
    tail = struct.pack(">hiqqqhii", codec, 0, timestamp_ms, timestamp_ms, -1, -1, -1, 1) + payload
    crc = crc32c.crc32c(tail)
    batch_length = BATCH_HEADER_BYTES - 12 + len(payload)
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + tail
