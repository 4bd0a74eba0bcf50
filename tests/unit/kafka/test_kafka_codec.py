"""Every advertised API version round-trips through kio, requests and responses alike.

Goal: the listener advertises only versions it can decode and encode. Method: for each (api_key,
version) in API_VERSIONS, encode a sample request, decode it with the listener's codec, run the real
handler over the fake core, encode the response, decode it again with kio, and compare.
"""

from __future__ import annotations

import asyncio

import pytest
from kio.schema.errors import ErrorCode
from wire_helpers import FakeCore, error_codes, make_batch, sample_request

from broker.api import NewTopic
from broker.kafka.codec import (
    RequestDecodeError,
    UnsupportedRequest,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    response_class,
)
from broker.kafka.framing import FrameBuffer
from broker.kafka.handlers import API_VERSIONS, KafkaHandlers, check_batches

pytestmark = pytest.mark.timeout(30)

ADVERTISED = [(key, version) for key, (low, high) in sorted(API_VERSIONS.items()) for version in range(low, high + 1)]

# Errors a sample request may legitimately get from the fake core.
EXPECTED_ERRORS = {
    43: {ErrorCode.election_not_needed},
    # SASL requests on a listener without SASL; security admin without a controller; an unknown user.
    17: {ErrorCode.illegal_sasl_state},
    36: {ErrorCode.illegal_sasl_state},
    30: {ErrorCode.request_timed_out},
    31: {ErrorCode.request_timed_out},
    50: {ErrorCode.resource_not_found},
    51: {ErrorCode.request_timed_out},
}


def _frame_payload(frame: bytes) -> bytes:
    buffer = FrameBuffer()
    buffer.feed(frame)
    payload = buffer.next_frame()
    assert payload is not None and len(buffer) == 0
    return payload


@pytest.mark.parametrize(("api_key", "version"), ADVERTISED)
def test_advertised_version_round_trips(api_key: int, version: int) -> None:
    async def run() -> None:
        core = FakeCore()
        await core.create_topics([NewTopic("t", 1, 1)], False, 1000)
        await core.produce("t", 0, make_batch(3), -1, 1000)
        handlers = KafkaHandlers(core)

        request = sample_request(api_key, version)
        decoded = decode_request(_frame_payload(encode_request(request, 42)), API_VERSIONS)
        assert decoded.body == request
        assert (decoded.api_key, decoded.api_version, decoded.correlation_id) == (api_key, version, 42)
        assert decoded.header.client_id == "brook-test"

        response = await handlers.handle(api_key, version, decoded.body)
        assert type(response) is response_class(api_key, version)
        correlation_id, again = decode_response(_frame_payload(encode_response(api_key, version, 42, response)),
                                                api_key, version)
        assert correlation_id == 42
        assert again == response
        unexpected = set(error_codes(response)) - {ErrorCode.none} - EXPECTED_ERRORS.get(api_key, set())
        assert not unexpected, response

    asyncio.run(run())


def test_unsupported_versions_and_keys_are_reported_with_the_correlation_id() -> None:
    request = sample_request(3, 12)
    payload = _frame_payload(encode_request(request, 7))
    with pytest.raises(UnsupportedRequest) as info:
        decode_request(payload, {3: (0, 11)})
    assert (info.value.api_key, info.value.api_version, info.value.correlation_id) == (3, 12, 7)
    with pytest.raises(UnsupportedRequest):
        decode_request(payload, {})


@pytest.mark.parametrize("payload", [b"", b"\x00\x03", b"\x00\x03\x00\x0c\x00\x00\x00", ])
def test_short_headers_are_decode_errors(payload: bytes) -> None:
    with pytest.raises(RequestDecodeError):
        decode_request(payload, API_VERSIONS)


def test_truncated_body_is_a_decode_error_with_correlation_id() -> None:
    payload = _frame_payload(encode_request(sample_request(0, 9), 5))
    with pytest.raises(RequestDecodeError) as info:
        decode_request(payload[:-10], API_VERSIONS)
    assert info.value.correlation_id == 5


def test_api_versions_response_header_is_v0_even_when_flexible() -> None:
    handlers = KafkaHandlers(FakeCore())
    frame = encode_response(18, 3, 9, handlers.api_versions_response(3))
    payload = _frame_payload(frame)
    assert payload[:4] == (9).to_bytes(4, "big")
    # v0 header: the body (error code 0, then a compact array) starts right after the correlation id.
    assert payload[4:6] == b"\x00\x00"
    flexible = encode_response(3, 12, 9, asyncio.run(handlers.handle(3, 12, sample_request(3, 12))))
    assert _frame_payload(flexible)[4] == 0  # v1 header: an empty tagged-field section


@pytest.mark.parametrize(
    ("records", "error"),
    [
        (make_batch(1), None),
        (make_batch(1) + make_batch(3), None),
        (None, ErrorCode.invalid_record),
        (b"", ErrorCode.invalid_record),
        (make_batch(1)[:40], ErrorCode.corrupt_message),
        (make_batch(1) + b"\x00", ErrorCode.corrupt_message),
        (make_batch(1, magic=1), ErrorCode.unsupported_for_message_format),
        (make_batch(1, attributes=0x10), ErrorCode.invalid_record),
        (make_batch(1, attributes=0x20), ErrorCode.invalid_record),
        (make_batch(1, attributes=0x04), None),  # zstd-compressed batches are opaque
    ],
)
def test_check_batches(records: bytes | None, error: ErrorCode | None) -> None:
    result = check_batches(records)
    assert (result[0] if result else None) == error
