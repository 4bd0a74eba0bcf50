"""Kafka wire framing, sans I/O: length-prefixed frames and the request header.

Every Kafka request and response is a frame: a big-endian int32 size followed by `size` bytes.
A request frame starts with the request header:

    v1: api_key int16, api_version int16, correlation_id int32, client_id nullable-string(int16 length)
    v2: v1 + tagged fields (used when the API version is "flexible")

`client_id` keeps its int16 length even in header v2 (RequestHeader.json: flexibleVersions "none"
for ClientId), which is why the header is parsed here with `struct` rather than with kio.

Nothing here touches a socket: `FrameBuffer.feed(bytes)` buffers input and `next_frame()` returns a
complete frame or None. The buffer never holds more than one frame plus one read chunk, and a frame
larger than `frame_bytes_max` (`socket.request.max.bytes`) raises `FrameTooLarge` before any of it is
buffered, so a peer cannot make the broker allocate what it announces.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from cluster.limits import KAFKA_REQUEST_BYTES_DEFAULT

__all__ = [
    "FrameBuffer",
    "FrameError",
    "FrameTooLarge",
    "HeaderError",
    "RequestHeader",
    "encode_frame",
    "parse_request_header",
    "peek_request_prefix",
]

_SIZE = struct.Struct(">i")
_PREFIX = struct.Struct(">hhi")  # api_key, api_version, correlation_id
_INT16 = struct.Struct(">h")

# Kafka's default `socket.request.max.bytes` (100 MiB).
FRAME_BYTES_MAX_DEFAULT = KAFKA_REQUEST_BYTES_DEFAULT
# A header's tagged fields are tiny in practice; this caps how many a malformed header may announce.
HEADER_TAGGED_FIELDS_MAX = 64


class FrameError(Exception):
    """The byte stream is not a valid sequence of frames; the connection must be closed."""


class FrameTooLarge(FrameError):
    """A frame announced more bytes than `socket.request.max.bytes`."""

    def __init__(self, size: int, size_max: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds socket.request.max.bytes={size_max}")
        self.size = size
        self.size_max = size_max


class HeaderError(FrameError):
    """A request header could not be parsed."""


class FrameBuffer:
    """Accumulates bytes from a stream and cuts them into frames (payloads without the size prefix).

    The chunks fed are kept as they came (no growing buffer to copy into): a frame inside one chunk
    is one slice of it, a frame spanning chunks one join of the pieces — each frame byte is copied
    once, whatever the frame's size (a 1 MiB produce request arrives in several reads).
    """

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT) -> None:
        if frame_bytes_max <= 0:
            raise ValueError("frame_bytes_max must be positive")
        self.frame_bytes_max = frame_bytes_max
        self._chunks: deque[bytes] = deque()
        self._start = 0  # bytes of _chunks[0] already cut off
        self._size = 0  # bytes buffered and not yet cut off
        self._known = -1  # the current frame's size once its prefix was read and checked, else -1

    def __len__(self) -> int:
        return self._size

    def feed(self, data: bytes) -> None:
        """Append bytes read from the stream. Raises FrameTooLarge / FrameError on a bad size prefix."""
        if data:
            self._chunks.append(bytes(data))  # no copy for bytes
            self._size += len(data)
        self._check_size()

    def _frame_size(self) -> int | None:
        """The current frame's size prefix, None until its 4 bytes are here."""
        if self._known >= 0:
            return self._known
        if self._size < 4:
            return None
        first = self._chunks[0]
        if len(first) - self._start < 4:  # the prefix spans reads: join just enough chunks (rare)
            pieces = [memoryview(first)[self._start:]]
            have = len(first) - self._start
            self._chunks.popleft()
            while have < 4:
                chunk = self._chunks.popleft()
                pieces.append(memoryview(chunk))
                have += len(chunk)
            first = b"".join(pieces)
            self._chunks.appendleft(first)
            self._start = 0
        return int(_SIZE.unpack_from(first, self._start)[0])

    def _check_size(self) -> None:
        size = self._frame_size()
        if size is None:
            return
        if size < 0:
            raise FrameError(f"negative frame size {size}")
        if size > self.frame_bytes_max:
            raise FrameTooLarge(size, self.frame_bytes_max)
        self._known = size

    def next_frame(self) -> bytes | None:
        """The next complete frame's payload, or None when more bytes are needed."""
        size = self._frame_size()
        if size is None:
            return None
        assert 0 <= size <= self.frame_bytes_max, "feed() checks every size prefix"
        if self._size < 4 + size:
            return None
        first = self._chunks[0]
        begin = self._start + 4
        end = begin + size
        if end <= len(first):
            frame = first[begin:end]
            if end == len(first):
                self._chunks.popleft()
                self._start = 0
            else:
                self._start = end
        else:
            pieces = [memoryview(first)[begin:]]
            need = end - len(first)
            self._chunks.popleft()
            self._start = 0
            while need:
                chunk = self._chunks[0]
                if len(chunk) <= need:
                    pieces.append(memoryview(chunk))
                    need -= len(chunk)
                    self._chunks.popleft()
                else:
                    pieces.append(memoryview(chunk)[:need])
                    self._start = need
                    need = 0
            frame = b"".join(pieces)
        self._size -= 4 + size
        self._known = -1
        self._check_size()
        return frame

    def bytes_needed(self) -> int:
        """How many more bytes complete the current frame (at least 1 when nothing is buffered)."""
        size = self._frame_size()
        if size is None:
            return 4 - self._size
        return max(0, 4 + size - self._size)


def encode_frame(payload: bytes) -> bytes:
    """Prefix a payload with its int32 size."""
    return _SIZE.pack(len(payload)) + payload


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    header_version: int
    tagged_fields: dict[int, bytes] = field(default_factory=dict)


def peek_request_prefix(frame: bytes) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id): the part every request header version shares."""
    if len(frame) < _PREFIX.size:
        raise HeaderError(f"request of {len(frame)} bytes is shorter than a header")
    api_key, api_version, correlation_id = _PREFIX.unpack_from(frame, 0)
    return api_key, api_version, correlation_id


def _read_uvarint(data: bytes, offset: int) -> tuple[int, int]:
    result = 0
    shift = 0
    for _ in range(5):
        if offset >= len(data):
            raise HeaderError("truncated varint in request header")
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, offset
        shift += 7
    raise HeaderError("varint longer than 5 bytes in request header")


def parse_request_header(frame: bytes, header_version: int) -> tuple[RequestHeader, int]:
    """Parse a v1 or v2 request header; returns the header and the offset where the body starts."""
    if header_version not in (1, 2):
        raise ValueError(f"unsupported request header version {header_version}")
    api_key, api_version, correlation_id = peek_request_prefix(frame)
    offset = _PREFIX.size
    if len(frame) < offset + 2:
        raise HeaderError("truncated client_id length")
    (length,) = _INT16.unpack_from(frame, offset)
    offset += 2
    client_id: str | None = None
    if length >= 0:
        if len(frame) < offset + length:
            raise HeaderError("truncated client_id")
        try:
            client_id = frame[offset:offset + length].decode("utf-8")
        except UnicodeDecodeError as e:
            raise HeaderError("client_id is not UTF-8") from e
        offset += length
    elif length != -1:
        raise HeaderError(f"invalid client_id length {length}")
    tagged: dict[int, bytes] = {}
    if header_version == 2:
        count, offset = _read_uvarint(frame, offset)
        if count > HEADER_TAGGED_FIELDS_MAX:
            raise HeaderError(f"{count} tagged fields in a request header")
        for _ in range(count):
            tag, offset = _read_uvarint(frame, offset)
            size, offset = _read_uvarint(frame, offset)
            if len(frame) < offset + size:
                raise HeaderError("truncated tagged field in request header")
            tagged[tag] = frame[offset:offset + size]
            offset += size
    header = RequestHeader(api_key, api_version, correlation_id, client_id, header_version, tagged)
    return header, offset
