"""Record-batch compression codecs (Kafka attribute bits 0-2), backed by cramjam.

Snappy: Java producers frame snappy the xerial way (a magic header then length-prefixed raw
blocks); librdkafka sends raw snappy. We accept both on read and always write raw snappy, which
every client accepts. LZ4 is the LZ4 frame format, as Kafka uses since magic 1.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import cramjam

from cluster.errors import ErrorCode, LogError

__all__ = ["Codec", "compress", "decompress"]

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_BYTES = 16  # magic (8) + version (4) + compatible version (4)


class Codec(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


def compress(codec: int, data: bytes) -> bytes:
    """Compress `data` with `codec` (a Kafka compression id)."""
    if codec == Codec.NONE:
        return data
    if codec == Codec.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == Codec.SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    if codec == Codec.LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == Codec.ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise LogError(f"unknown compression codec {codec}", ErrorCode.invalid_record)


def _decompress_xerial(data: bytes) -> bytes:
    """Unwrap xerial-framed snappy: after the header, (int32 length, raw snappy block)*."""
    out = bytearray()
    pos = _XERIAL_HEADER_BYTES
    while pos < len(data):
        if pos + 4 > len(data):
            raise LogError("truncated xerial snappy block", ErrorCode.corrupt_message)
        (length,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if length < 0 or pos + length > len(data):
            raise LogError("bad xerial snappy block length", ErrorCode.corrupt_message)
        out += bytes(cramjam.snappy.decompress_raw(data[pos : pos + length]))
        pos += length
    return bytes(out)


def decompress(codec: int, data: bytes) -> bytes:
    """Decompress `data`; any codec failure is a CORRUPT_MESSAGE."""
    try:
        if codec == Codec.NONE:
            return data
        if codec == Codec.GZIP:
            return bytes(cramjam.gzip.decompress(data))
        if codec == Codec.SNAPPY:
            if data[:8] == _XERIAL_MAGIC:
                return _decompress_xerial(data)
            return bytes(cramjam.snappy.decompress_raw(data))
        if codec == Codec.LZ4:
            return bytes(cramjam.lz4.decompress(data))
        if codec == Codec.ZSTD:
            return bytes(cramjam.zstd.decompress(data))
    except LogError:
        raise
    except Exception as error:  # cramjam raises its own DecompressionError and ValueError
        raise LogError(f"cannot decompress batch ({Codec(codec).name}): {error}", ErrorCode.corrupt_message) from error
    raise LogError(f"unknown compression codec {codec}", ErrorCode.invalid_record)
