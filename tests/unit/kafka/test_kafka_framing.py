"""Framing and request-header parsing, as tables of cases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.kafka.framing import (
    FrameBuffer,
    FrameError,
    FrameTooLarge,
    HeaderError,
    encode_frame,
    parse_request_header,
)

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("chunks", "frames", "left"),
    [
        ([b""], [], 0),
        ([b"\x00\x00"], [], 2),
        ([b"\x00\x00\x00\x00"], [b""], 0),
        ([encode_frame(b"abc")], [b"abc"], 0),
        ([encode_frame(b"abc")[:5], encode_frame(b"abc")[5:]], [b"abc"], 0),
        ([encode_frame(b"a") + encode_frame(b"bc") + b"\x00"], [b"a", b"bc"], 1),
        ([bytes([b]) for b in encode_frame(b"xyz")], [b"xyz"], 0),
    ],
)
def test_frames_are_cut_at_their_size_prefix(chunks: list[bytes], frames: list[bytes], left: int) -> None:
    buffer = FrameBuffer(100)
    got = []
    for chunk in chunks:
        buffer.feed(chunk)
        while (frame := buffer.next_frame()) is not None:
            got.append(frame)
    assert got == frames
    assert len(buffer) == left


@settings(max_examples=100, deadline=None)
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_any_split_of_a_stream_gives_back_its_frames(payloads: list[bytes], cuts: list[int]) -> None:
    """Frames spanning any number of reads, several frames in one read, prefixes split across reads."""
    stream = b"".join(encode_frame(p) for p in payloads)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    buffer = FrameBuffer(1000)
    got: list[bytes] = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        buffer.feed(stream[start:end])
        while (frame := buffer.next_frame()) is not None:
            got.append(frame)
        assert len(buffer) == end - sum(4 + len(f) for f in got)
        assert buffer.bytes_needed() >= (0 if len(got) == len(payloads) else 1)
    assert got == payloads
    assert len(buffer) == 0 and buffer.bytes_needed() == 4


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ((101).to_bytes(4, "big"), FrameTooLarge),
        ((2**31 - 1).to_bytes(4, "big"), FrameTooLarge),
        ((-1).to_bytes(4, "big", signed=True), FrameError),
        (encode_frame(b"ok") + (500).to_bytes(4, "big"), FrameTooLarge),
    ],
)
def test_bad_size_prefixes_are_refused_before_buffering(data: bytes, error: type[Exception]) -> None:
    buffer = FrameBuffer(100)
    with pytest.raises(error):
        buffer.feed(data)
        while buffer.next_frame() is not None:
            pass


def test_size_exactly_at_the_limit_is_accepted() -> None:
    buffer = FrameBuffer(100)
    buffer.feed(encode_frame(b"x" * 100))
    assert buffer.next_frame() == b"x" * 100
    assert buffer.bytes_needed() == 4


def _header(api_key: int, version: int, correlation_id: int, client_id: bytes | None) -> bytes:
    out = api_key.to_bytes(2, "big") + version.to_bytes(2, "big") + correlation_id.to_bytes(4, "big", signed=True)
    if client_id is None:
        return out + b"\xff\xff"
    return out + len(client_id).to_bytes(2, "big") + client_id


@pytest.mark.parametrize(
    ("frame", "version", "expected", "body_offset"),
    [
        (_header(3, 4, 7, b"cli") + b"BODY", 1, (3, 4, 7, "cli", {}), 13),
        (_header(3, 4, 7, None) + b"BODY", 1, (3, 4, 7, None, {}), 10),
        (_header(3, 12, -1, b"") + b"\x00BODY", 2, (3, 12, -1, "", {}), 11),
        (_header(3, 12, 1, b"c") + b"\x02\x00\x01X\x05\x02YZ", 2, (3, 12, 1, "c", {0: b"X", 5: b"YZ"}), 19),
    ],
)
def test_request_headers(frame: bytes, version: int, expected: tuple, body_offset: int) -> None:
    header, offset = parse_request_header(frame, version)
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id, header.tagged_fields) \
        == expected
    assert offset == body_offset
    assert header.header_version == version


@pytest.mark.parametrize(
    ("frame", "version"),
    [
        (b"\x00\x03\x00", 1),
        (_header(3, 4, 7, None)[:-1], 1),
        (_header(3, 4, 7, b"abc")[:-1], 1),
        (_header(3, 4, 7, None)[:-2] + b"\xff\xfe", 1),        # length -2
        (_header(3, 4, 7, b"\xff\xfe"), 1),                    # not UTF-8
        (_header(3, 12, 7, None), 2),                          # missing tagged fields
        (_header(3, 12, 7, None) + b"\x01\x00\x05ab", 2),      # truncated tagged field
        (_header(3, 12, 7, None) + b"\xff\xff\xff\xff\xff\x01", 2),  # varint too long
        (_header(3, 12, 7, None) + b"\x7f", 2),                # too many tagged fields
    ],
)
def test_malformed_headers(frame: bytes, version: int) -> None:
    with pytest.raises(HeaderError):
        parse_request_header(frame, version)
