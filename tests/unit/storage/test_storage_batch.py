"""RecordBatch v2 codec: building, validating, rewriting and decoding, checked against kafka-python."""

from __future__ import annotations

import struct

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.errors import ErrorCode, LogError
from storage.batch import (
    BATCH_HEADER_BYTES,
    Codec,
    Record,
    build_batch,
    decode_batch,
    iter_batches,
    parse_header,
    rewrite_offsets,
    with_log_append_time,
)
from storage.compression import decompress
from storage.records import decode_varint, encode_varint

RECORDS = [
    Record(b"k1", b"v1" * 50, 1_700_000_000_123, (("h", b"x"), ("null", None))),
    Record(None, b"no key", 1_700_000_000_100),
    Record(b"k3", None, 1_700_000_000_999),
]


@pytest.mark.parametrize("codec", list(Codec))
def test_build_then_decode_round_trips_with_each_codec(codec):
    batch = build_batch(RECORDS, compression=codec, producer_id=7, producer_epoch=1, base_sequence=10)
    [(header, view)] = list(iter_batches(batch))
    assert header.compression == codec and header.records_count == 3 and header.last_offset_delta == 2
    assert header.max_timestamp == 1_700_000_000_999 and header.base_timestamp == 1_700_000_000_123
    assert header.producer_id == 7 and header.last_sequence == 12 and len(view) == header.size_bytes
    _, records = decode_batch(batch)
    assert [(r.key, r.value, r.timestamp_ms, r.headers) for r in records] == [
        (r.key, r.value, r.timestamp_ms, r.headers) for r in RECORDS
    ]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # kafka-python's own importlib use
@pytest.mark.parametrize("codec", [Codec.NONE, Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD])
def test_kafka_python_reads_our_batches(codec):
    """An independent implementation must accept our CRC, varints and compression framing."""
    from kafka.record.default_records import DefaultRecordBatch

    batch = rewrite_offsets(build_batch(RECORDS, compression=codec), 40, 3)
    parsed = DefaultRecordBatch(batch)
    assert parsed.validate_crc()
    got = [(r.offset, r.key, r.value, r.timestamp) for r in parsed]
    assert got == [(40 + i, r.key, r.value, r.timestamp_ms) for i, r in enumerate(RECORDS)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_we_read_kafka_python_batches():
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    builder.append(0, 1_700_000_000_555, b"k", b"v", [("a", b"b")])
    builder.append(1, 1_700_000_000_556, None, b"w", [])
    batch = bytes(builder.build())
    [(header, _)] = list(iter_batches(batch))
    _, records = decode_batch(batch)
    assert header.records_count == 2
    assert [(r.key, r.value, r.timestamp_ms) for r in records] == [
        (b"k", b"v", 1_700_000_000_555), (None, b"w", 1_700_000_000_556)
    ]


def test_every_single_bit_flip_in_the_crc_range_is_rejected():
    batch = build_batch(RECORDS)
    for position in range(17, len(batch)):
        corrupted = bytearray(batch)
        corrupted[position] ^= 0x10
        with pytest.raises(LogError) as caught:
            list(iter_batches(bytes(corrupted)))
        assert caught.value.code in (ErrorCode.corrupt_message, ErrorCode.invalid_record), position


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b[:-1], ErrorCode.corrupt_message),  # truncated body
        (lambda b: b[:30], ErrorCode.corrupt_message),  # partial header
        (lambda b: b + b"\x00" * 10, ErrorCode.corrupt_message),  # trailing garbage
        (lambda b: b[:16] + b"\x01" + b[17:], ErrorCode.corrupt_message),  # magic 1
        (lambda b: b[:8] + struct.pack(">i", 10) + b[12:], ErrorCode.corrupt_message),  # tiny length
        (lambda b: b"", ErrorCode.corrupt_message),
    ],
)
def test_malformed_buffers_are_rejected_with_kafka_codes(mutate, code):
    with pytest.raises(LogError) as caught:
        list(iter_batches(mutate(build_batch(RECORDS))))
    assert caught.value.code == code


def _with_header_field(batch: bytes, position: int, fmt: str, value: int) -> bytes:
    """Change a field inside the CRC range and recompute the CRC, making a structurally bad batch."""
    import crc32c

    out = bytearray(batch)
    struct.pack_into(fmt, out, position, value)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


def test_structural_problems_are_invalid_record():
    batch = build_batch(RECORDS)
    for bad in (_with_header_field(batch, 57, ">i", 0), _with_header_field(batch, 23, ">i", 5)):
        with pytest.raises(LogError) as caught:
            list(iter_batches(bad))
        assert caught.value.code == ErrorCode.invalid_record
    # A compacted batch (a gap at the end) is fine for followers, not for producers.
    gapped = _with_header_field(batch, 23, ">i", 5)
    assert len(list(iter_batches(gapped, strict=False))) == 1


def test_oversized_batch_is_message_too_large():
    batch = build_batch([Record(b"k", b"x" * 2000)])
    with pytest.raises(LogError) as caught:
        list(iter_batches(batch, batch_bytes_max=1000))
    assert caught.value.code == ErrorCode.message_too_large


def test_rewrite_offsets_keeps_crc_and_content():
    batch = build_batch(RECORDS)
    rewritten = rewrite_offsets(batch, 123456789, 42)
    [(header, _)] = list(iter_batches(rewritten))
    assert (header.base_offset, header.partition_leader_epoch) == (123456789, 42)
    assert rewritten[16:] == batch[16:]


def test_log_append_time_sets_type_and_timestamp():
    stamped = with_log_append_time(build_batch(RECORDS), 5_000)
    [(header, _)] = list(iter_batches(stamped))
    assert header.is_log_append_time and header.max_timestamp == 5_000
    assert {r.timestamp_ms for r in decode_batch(stamped)[1]} == {5_000}


def test_xerial_snappy_from_java_producers_is_accepted():
    payload = b"hello snappy " * 100
    block = bytes(cramjam.snappy.compress_raw(payload))
    xerial = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + struct.pack(">i", len(block)) + block
    assert decompress(Codec.SNAPPY, xerial) == payload


def test_headers_are_not_decoded_on_parse():
    batch = build_batch(RECORDS)
    assert parse_header(batch).size_bytes == len(batch) and len(batch) > BATCH_HEADER_BYTES


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1))
def test_varint_round_trip(value):
    out = bytearray()
    encode_varint(value, out)
    assert decode_varint(bytes(out), 0) == (value, len(out))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.none() | st.binary(max_size=20), st.none() | st.binary(max_size=50), st.integers(0, 1 << 42)),
        min_size=1, max_size=8,
    ),
    st.sampled_from(list(Codec)),
)
def test_any_records_round_trip(records, codec):
    built = build_batch([Record(k, v, t) for k, v, t in records], compression=codec)
    decoded = decode_batch(built)[1]
    assert [(r.key, r.value, r.timestamp_ms) for r in decoded] == records
