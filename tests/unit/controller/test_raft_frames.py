"""The Raft port's framing (issue 11, item 7): bounded before authentication, linear buffering."""

from __future__ import annotations

import struct

import pytest

from controller.raft_frames import PREAUTH_FRAME_BYTES_MAX, RaftFrameBuffer, RaftFrameError


def _frame(payload: bytes) -> bytes:
    return struct.pack("i", len(payload)) + payload


def test_a_2_gib_prefix_is_refused_as_soon_as_it_arrives() -> None:
    frames = RaftFrameBuffer()
    with pytest.raises(RaftFrameError, match="unauthenticated"):
        frames.feed(struct.pack("i", 2**31 - 1))


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(RaftFrameError):
        RaftFrameBuffer(authenticated=True).feed(struct.pack("i", -5))


def test_large_frames_only_after_authentication() -> None:
    big = _frame(b"x" * (PREAUTH_FRAME_BYTES_MAX + 1))
    with pytest.raises(RaftFrameError):
        RaftFrameBuffer().feed(big[:4])
    frames = RaftFrameBuffer()
    frames.feed(_frame(b"hello") + big[:4])  # the second frame's size is checked once the first is read
    assert frames.next_frame() == b"hello"
    frames.authenticated = True
    frames.recheck()
    frames.feed(big[4:])
    assert frames.next_frame() == b"x" * (PREAUTH_FRAME_BYTES_MAX + 1)
    assert frames.next_frame() is None and len(frames) == 0


def test_frames_split_across_reads_in_any_chunking() -> None:
    payloads = [bytes([i]) * (i * 37 % 500) for i in range(60)]
    stream = b"".join(_frame(p) for p in payloads)
    for chunk in (1, 3, 64, 1000):
        frames = RaftFrameBuffer(authenticated=True)
        got = []
        for i in range(0, len(stream), chunk):
            frames.feed(stream[i:i + chunk])
            while (f := frames.next_frame()) is not None:
                got.append(f)
        assert got == payloads


def test_buffering_is_linear() -> None:
    """The buffer never holds more than what is unread plus one chunk (it is compacted as frames are
    consumed), unlike pysyncobj's bytes concatenation."""
    frames = RaftFrameBuffer(authenticated=True)
    payload = b"p" * 1000
    for _ in range(10_000):
        frames.feed(_frame(payload))
        assert frames.next_frame() == payload
        assert len(frames._buffer) <= 2 * (len(payload) + 4)
