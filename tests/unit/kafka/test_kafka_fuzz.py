"""Bounded fuzzing of the decoder, the handlers and the connection handler.

Goal: no byte sequence a peer sends makes the listener raise out of a connection or stop serving
others. Method (Hypothesis, seeded by its database/derandomised in CI, < 20 s):
  1. pure: random and mutated frames (truncated, bit-flipped, wrong api key/version, spliced) go
     through `decode_request`; only RequestDecodeError / UnsupportedRequest may come out, and any
     request that decodes runs through its handler over the fake core and the response encodes;
  2. socket: mutated byte streams are written to a live listener; each connection either gets
     response frames or is closed, and a valid request on a fresh connection still works afterwards.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from wire_helpers import FakeCore, WireClient, sample_request

from broker.api import NewTopic
from broker.kafka.codec import (
    RequestDecodeError,
    UnsupportedRequest,
    decode_request,
    encode_request,
    encode_response,
)
from broker.kafka.framing import FrameBuffer, FrameError
from broker.kafka.handlers import API_VERSIONS, KafkaHandlers
from broker.kafka.server import start_kafka_listener

pytestmark = pytest.mark.timeout(180)  # a fixed amount of work; a loaded 2-core box needs ~60 s

SEEDS = [
    encode_request(sample_request(key, version), correlation_id=key * 100 + version)[4:]
    for key, (low, high) in sorted(API_VERSIONS.items())
    for version in sorted({low, high, (low + high) // 2})
]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A request payload (no size prefix): a valid seed, mutated; or plain garbage."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    # Most mutations hit the body (past the 8-byte header prefix) so that many mutants still decode
    # and reach the handlers with odd values.
    kinds = ["flip"] * 4 + ["set"] * 4 + ["insert"] * 2 + ["truncate", "key", "version", "splice"]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(kinds))
        if kind == "truncate" and frame:
            del frame[draw(st.integers(0, len(frame) - 1)):]
        elif kind == "flip" and len(frame) > 8:
            i = draw(st.integers(8, len(frame) - 1))
            frame[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and len(frame) > 8:
            i = draw(st.integers(8, len(frame) - 1))
            frame[i] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            i = draw(st.integers(0, len(frame)))
            frame[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "key" and len(frame) >= 2:
            frame[0:2] = draw(st.integers(-1, 80)).to_bytes(2, "big", signed=True)
        elif kind == "version" and len(frame) >= 4:
            frame[2:4] = draw(st.integers(-1, 20)).to_bytes(2, "big", signed=True)
        elif kind == "splice":
            other = draw(st.sampled_from(SEEDS))
            frame[draw(st.integers(0, len(frame))):] = other[draw(st.integers(0, len(other))):]
    return bytes(frame)


async def _exercise(handlers: KafkaHandlers, payload: bytes) -> None:
    try:
        request = decode_request(payload, handlers.versions)
    except (RequestDecodeError, UnsupportedRequest):
        return
    # Decodable but odd requests (negative partitions, huge sizes, unknown topics) must be answered.
    try:
        response = await asyncio.wait_for(handlers.handle(request.api_key, request.api_version, request.body), 0.5)
    except TimeoutError:
        assert request.api_key == 1, "only a Fetch may wait (a long poll with a mutated max_wait)"
        return
    if response is not None:
        encode_response(request.api_key, request.api_version, request.correlation_id, response)


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(mutated_frames(), min_size=1, max_size=5))
def test_decoder_and_handlers_never_raise(payloads: list[bytes]) -> None:
    async def run() -> None:
        core = FakeCore()
        await core.create_topics([NewTopic("t", 2, 1)], False, 1000)
        handlers = KafkaHandlers(core)
        for payload in payloads:
            await _exercise(handlers, payload)

    asyncio.run(run())


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_frame_buffer_only_raises_frame_errors(chunks: list[bytes]) -> None:
    buffer = FrameBuffer(1000)
    try:
        for chunk in chunks:
            buffer.feed(chunk)
            while buffer.next_frame() is not None:
                pass
    except FrameError:
        pass
    assert len(buffer) <= 1000 + 4 + 64


def test_listener_survives_mutated_streams() -> None:
    """Many connections of mutated frames against one listener; a fresh connection always works."""
    streams: list[bytes] = []

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(mutated_frames(), min_size=1, max_size=3), st.integers(-8, 8))
    def collect(payloads: list[bytes], size_error: int) -> None:
        stream = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)
        if size_error:  # a wrong size prefix on the last frame
            last = payloads[-1]
            stream = stream[: len(stream) - len(last) - 4]
            stream += max(0, len(last) + size_error).to_bytes(4, "big") + last
        streams.append(stream)

    collect()

    async def run() -> None:
        core = FakeCore()
        await core.create_topics([NewTopic("t", 2, 1)], False, 1000)
        listener = await start_kafka_listener(core, "127.0.0.1", 0, frame_bytes_max=1 << 20)
        core.set_port(listener.port)
        try:
            for i, stream in enumerate(streams):
                client = await WireClient.connect(listener.port)
                await client.send_raw(stream)
                client.writer.write_eof()
                # Read whatever comes back until the broker closes (or stays quiet on a partial frame).
                while await client.read_frame(timeout=0.5) is not None:
                    pass
                await client.close()
                if i % 10 == 0:
                    fresh = await WireClient.connect(listener.port)
                    assert (await fresh.call(sample_request(18, 3))).error_code == ErrorCode.none
                    await fresh.close()
            fresh = await WireClient.connect(listener.port)
            assert (await fresh.call(sample_request(3, 12))).topics[0].error_code == ErrorCode.none
            await fresh.close()
        finally:
            await listener.close()

    asyncio.run(run())
