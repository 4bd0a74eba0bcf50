"""Record-batch compression codecs (Kafka attribute bits 0-2), with bounded decompression.

Snappy: Java producers frame snappy the xerial way (a magic header then length-prefixed raw
blocks); librdkafka sends raw snappy. We accept both on read and always write raw snappy, which
every client accepts. LZ4 is the LZ4 frame format, as Kafka uses since magic 1.

Every decompression is bounded: `decompress(codec, data, size_max)` never produces (or allocates
for) more than `size_max + 1` bytes, whatever the compressed bytes claim, and refuses a batch that
would exceed it with RECORD_TOO_LARGE — a 32 KiB zstd frame can expand to gigabytes (a
"decompression bomb"). The cap for a topic is `decompressed_bytes_max(max.message.bytes)`. Each
codec is read incrementally with an output limit: zlib's `max_length` (gzip), the LZ4 frame
decoder's `max_length`, a zstd stream reader (whose window size is capped too), and snappy's
length header, checked before the block is decompressed.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

import cramjam
import lz4.frame
import zstandard

from cluster.errors import ErrorCode, LogError

__all__ = ["DECOMPRESSED_BYTES_MAX_DEFAULT", "Codec", "compress", "decompress", "decompressed_bytes_max"]

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_BYTES = 16  # magic (8) + version (4) + compatible version (4)

# A batch's records may decompress to at most this many times the topic's max.message.bytes. Producers
# cap a batch before compression near batch.size / message.max.bytes (1 MB by default), so 32x leaves
# room for any real producer while a bomb stops at 32 MiB (Kafka's default max.message.bytes).
DECOMPRESSION_RATIO_MAX = 32
_MESSAGE_BYTES_DEFAULT = 1_048_588  # Kafka's max.message.bytes
DECOMPRESSED_BYTES_MAX_DEFAULT = _MESSAGE_BYTES_DEFAULT * DECOMPRESSION_RATIO_MAX
# zstd's decoder allocates a window the frame header asks for (up to 2 GiB with --long); 2^27 is
# zstd's own default limit and above what any Kafka producer's level uses.
_ZSTD_WINDOW_BYTES_MAX = 1 << 27
# Output is produced in pieces of at most this size, so a small batch never pays for a buffer of the cap.
_CHUNK_BYTES = 256 * 1024


class Codec(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


def decompressed_bytes_max(max_message_bytes: int) -> int:
    """The decompressed-size cap of one batch of a topic with this max.message.bytes."""
    return max(max_message_bytes, _MESSAGE_BYTES_DEFAULT) * DECOMPRESSION_RATIO_MAX


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


class _TooLarge(Exception):
    pass


def _too_large(codec: int, size_max: int) -> LogError:
    return LogError(f"batch decompresses ({Codec(codec).name}) to more than {size_max} bytes "
                    f"({DECOMPRESSION_RATIO_MAX} x max.message.bytes)", ErrorCode.message_too_large)


def _snappy_raw(block: bytes | memoryview, room: int) -> bytes:
    if cramjam.snappy.decompress_raw_len(block) > room:
        raise _TooLarge
    return bytes(cramjam.snappy.decompress_raw(block))


def _snappy(data: bytes, size_max: int) -> bytes:
    if data[:8] != _XERIAL_MAGIC:
        return _snappy_raw(data, size_max)
    # xerial: after the header, (int32 length, raw snappy block)*
    out = bytearray()
    pos = _XERIAL_HEADER_BYTES
    view = memoryview(data)
    while pos < len(data):
        if pos + 4 > len(data):
            raise LogError("truncated xerial snappy block", ErrorCode.corrupt_message)
        (length,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if length < 0 or pos + length > len(data):
            raise LogError("bad xerial snappy block length", ErrorCode.corrupt_message)
        out += _snappy_raw(view[pos:pos + length], size_max - len(out))
        pos += length
    return bytes(out)


def _gzip(data: bytes, size_max: int) -> bytes:
    out = bytearray()
    rest = data
    while True:  # a gzip stream may hold several members (Java's GZIPInputStream reads them all)
        decoder = zlib.decompressobj(wbits=31)
        out += decoder.decompress(rest, size_max + 1 - len(out))
        if len(out) > size_max or decoder.unconsumed_tail:
            raise _TooLarge
        if not decoder.eof:
            raise LogError("truncated gzip data", ErrorCode.corrupt_message)
        rest = decoder.unused_data
        if not rest:
            return bytes(out)


def _lz4(data: bytes, size_max: int) -> bytes:
    out = bytearray()
    decoder = lz4.frame.LZ4FrameDecompressor()
    rest = data
    while True:
        piece = decoder.decompress(rest, max_length=min(_CHUNK_BYTES, size_max + 1 - len(out)))
        rest = b""
        out += piece
        if len(out) > size_max:
            raise _TooLarge
        if decoder.eof:
            rest = decoder.unused_data
            if not rest:
                return bytes(out)
            decoder = lz4.frame.LZ4FrameDecompressor()  # concatenated frames
        elif decoder.needs_input:
            raise LogError("truncated lz4 frame", ErrorCode.corrupt_message)
        elif not piece:
            raise LogError("lz4 decoder made no progress", ErrorCode.corrupt_message)


def _zstd(data: bytes, size_max: int) -> bytes:
    out = bytearray()
    decoder = zstandard.ZstdDecompressor(max_window_size=_ZSTD_WINDOW_BYTES_MAX)
    with decoder.stream_reader(data, read_across_frames=True) as reader:
        while len(out) <= size_max:
            piece = reader.read(min(_CHUNK_BYTES, size_max + 1 - len(out)))
            if not piece:
                break
            out += piece
    if len(out) > size_max:
        raise _TooLarge
    return bytes(out)


def decompress(codec: int, data: bytes, size_max: int = DECOMPRESSED_BYTES_MAX_DEFAULT) -> bytes:
    """Decompress `data` into at most `size_max` bytes.

    Raises LogError: RECORD_TOO_LARGE past `size_max`, CORRUPT_MESSAGE for any codec failure,
    INVALID_RECORD for an unknown codec.
    """
    if codec == Codec.NONE:
        return data
    if codec not in (Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD):
        raise LogError(f"unknown compression codec {codec}", ErrorCode.invalid_record)
    try:
        if codec == Codec.GZIP:
            return _gzip(data, size_max)
        if codec == Codec.SNAPPY:
            return _snappy(data, size_max)
        if codec == Codec.LZ4:
            return _lz4(data, size_max)
        return _zstd(data, size_max)
    except _TooLarge:
        raise _too_large(codec, size_max) from None
    except LogError:
        raise
    except MemoryError as error:  # a window or block the decoder cannot have
        raise _too_large(codec, size_max) from error
    except Exception as error:  # each library raises its own error types on garbage
        raise LogError(f"cannot decompress batch ({Codec(codec).name}): {error}", ErrorCode.corrupt_message) from error
