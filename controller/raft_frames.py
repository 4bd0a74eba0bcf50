"""Framing of the Raft (pysyncobj) port, bounded and linear (pure, sans I/O).

pysyncobj frames each message as a native int32 length and the (encrypted, zlib'd pickle) bytes.
Its own reader appends every received chunk to an immutable `bytes` buffer (quadratic copying) and
waits for however many bytes the length claims, before the HMAC check: a 2 GiB length prefix
made a controller buffer whatever a stranger sent, copying it again on every read, and stall.

`RaftFrameBuffer` is what `controller.quorum` plugs into pysyncobj's connections instead:

  - the buffer is a bytearray consumed from a read offset and compacted when half is consumed, so
    buffering is linear;
  - a frame larger than `preauth_bytes_max` (64 KiB) is refused until the peer has proved it knows
    the secret (the first message that decrypts, `authenticated = True`); afterwards frames may be
    up to `frame_bytes_max` (256 MiB: appendEntries and snapshot parts are far smaller). A refused
    size raises `RaftFrameError` as soon as its 4-byte prefix arrives, before any of it is buffered.
"""

from __future__ import annotations

import struct

__all__ = ["FRAME_BYTES_MAX", "PREAUTH_FRAME_BYTES_MAX", "RaftFrameBuffer", "RaftFrameError"]

_SIZE = struct.Struct("i")  # pysyncobj's: native byte order, 4 bytes
PREAUTH_FRAME_BYTES_MAX = 64 * 1024
FRAME_BYTES_MAX = 256 * 1024 * 1024


class RaftFrameError(Exception):
    """The peer announced a frame this connection will not buffer; drop the connection."""


class RaftFrameBuffer:
    def __init__(self, preauth_bytes_max: int = PREAUTH_FRAME_BYTES_MAX,
                 frame_bytes_max: int = FRAME_BYTES_MAX, authenticated: bool = False) -> None:
        self.preauth_bytes_max = preauth_bytes_max
        self.frame_bytes_max = frame_bytes_max
        self.authenticated = authenticated
        self._buffer = bytearray()
        self._start = 0

    def __len__(self) -> int:
        return len(self._buffer) - self._start

    def clear(self) -> None:
        self._buffer = bytearray()
        self._start = 0

    def _limit(self) -> int:
        return self.frame_bytes_max if self.authenticated else self.preauth_bytes_max

    def _check(self) -> None:
        if len(self._buffer) - self._start < _SIZE.size:
            return
        (size,) = _SIZE.unpack_from(self._buffer, self._start)
        if size < 0 or size > self._limit():
            state = "an authenticated" if self.authenticated else "an unauthenticated"
            raise RaftFrameError(f"{state} peer announced a {size}-byte frame (limit {self._limit()})")

    def feed(self, data: bytes) -> None:
        self._buffer += data
        self._check()

    def next_frame(self) -> bytes | None:
        """The next complete frame's payload, or None. Call `feed` only after draining frames."""
        available = len(self._buffer) - self._start
        if available < _SIZE.size:
            return None
        (size,) = _SIZE.unpack_from(self._buffer, self._start)
        if available - _SIZE.size < size:
            return None
        begin = self._start + _SIZE.size
        frame = bytes(self._buffer[begin:begin + size])
        self._start = begin + size
        if self._start * 2 >= len(self._buffer):  # compact: amortised linear
            del self._buffer[:self._start]
            self._start = 0
        return frame

    def recheck(self) -> None:
        """Check the next pending frame's size again (after `authenticated` changed)."""
        self._check()
