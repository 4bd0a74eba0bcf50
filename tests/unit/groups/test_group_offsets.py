"""The `__consumer_offsets` record format, the private batch codec, and Kafka's group placement.

Method: golden bytes written out by hand from Kafka's JSON schemas for the exact formats, older
and flexible versions built by hand for the decoder, and Hypothesis round trips.
"""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.groups._records import RecordsError, build_batch, iter_batches, iter_records
from broker.groups.offsets import (
    GroupKey,
    GroupMetadataValue,
    MemberMetadata,
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
)
from broker.groups.placement import java_string_hashcode, partition_for

pytestmark = pytest.mark.timeout(20)


def test_offset_key_golden_bytes():
    assert encode_offset_key("g", "t", 7) == bytes.fromhex("0001" "0001" "67" "0001" "74" "00000007")
    assert decode_key(encode_offset_key("g", "t", 7)) == OffsetKey("g", "t", 7)


def test_group_key_golden_bytes():
    assert encode_group_key("grp") == bytes.fromhex("0002" "0003") + b"grp"
    assert decode_key(encode_group_key("grp")) == GroupKey("grp")


def test_offset_value_v3_golden_bytes():
    value = OffsetValue(offset=42, leader_epoch=5, metadata="m", commit_timestamp_ms=1000)
    assert encode_offset_value(value) == (
        struct.pack(">hqih", 3, 42, 5, 1) + b"m" + struct.pack(">q", 1000))
    assert decode_offset_value(encode_offset_value(value)) == value


@pytest.mark.parametrize(("raw", "expected"), [
    (struct.pack(">hqh", 0, 9, 2) + b"md" + struct.pack(">q", 77), OffsetValue(9, -1, "md", 77)),
    (struct.pack(">hqh", 1, 9, 0) + struct.pack(">qq", 77, 88), OffsetValue(9, -1, "", 77, 88)),
    (struct.pack(">hqh", 2, 9, 0) + struct.pack(">q", 77), OffsetValue(9, -1, "", 77)),
    # v4 flexible: compact string (length + 1) and an empty tagged-field section.
    (struct.pack(">hqi", 4, 9, 3) + b"\x02x" + struct.pack(">q", 77) + b"\x00", OffsetValue(9, 3, "x", 77)),
])
def test_offset_value_older_and_flexible_versions(raw, expected):
    assert decode_offset_value(raw) == expected


def test_unknown_key_versions_are_skipped_and_bad_values_raise():
    assert decode_key(struct.pack(">h", 3) + b"\x00\x01x") is None  # a transaction-log-style key
    with pytest.raises(RecordFormatError):
        decode_offset_value(struct.pack(">h", 9))
    with pytest.raises(RecordFormatError):
        decode_offset_value(struct.pack(">hq", 3, 1))  # truncated


def test_group_value_v3_golden_layout():
    member = MemberMetadata("m1", "inst", "cid", "/h", 300, 100, b"S", b"A")
    value = GroupMetadataValue("consumer", 2, "range", "m1", 555, (member,))
    expected = (b"\x00\x03" + b"\x00\x08consumer" + struct.pack(">i", 2) + b"\x00\x05range" + b"\x00\x02m1"
                + struct.pack(">q", 555) + struct.pack(">i", 1)
                + b"\x00\x02m1" + b"\x00\x04inst" + b"\x00\x03cid" + b"\x00\x02/h" + struct.pack(">ii", 300, 100)
                + struct.pack(">i", 1) + b"S" + struct.pack(">i", 1) + b"A")
    assert encode_group_value(value) == expected
    assert decode_group_value(expected) == value


def test_group_value_v0_decodes():
    raw = (b"\x00\x00" + b"\x00\x08consumer" + struct.pack(">i", 1) + b"\xff\xff" + b"\xff\xff"
           + struct.pack(">i", 1) + b"\x00\x01m" + b"\x00\x01c" + b"\x00\x01h" + struct.pack(">i", 10)
           + struct.pack(">i", 0) + struct.pack(">i", 0))
    value = decode_group_value(raw)
    assert value.protocol is None and value.leader is None and value.current_state_timestamp_ms == -1
    assert value.members == (MemberMetadata("m", None, "c", "h", 10, 10, b"", b""),)


_text = st.text(max_size=20)
_member = st.builds(MemberMetadata, _text, st.none() | _text, _text, _text, st.integers(0, 2**31 - 1),
                    st.integers(0, 2**31 - 1), st.binary(max_size=30), st.binary(max_size=30))


@settings(max_examples=100, deadline=None)
@given(st.builds(GroupMetadataValue, _text, st.integers(0, 2**31 - 1), st.none() | _text, st.none() | _text,
                 st.integers(-1, 2**62), st.lists(_member, max_size=4).map(tuple)))
def test_group_value_round_trip(value):
    assert decode_group_value(encode_group_value(value)) == value


@settings(max_examples=100, deadline=None)
@given(st.integers(-1, 2**62), st.integers(-1, 2**31 - 1), _text, st.integers(-1, 2**62))
def test_offset_value_round_trip(offset, epoch, metadata, timestamp):
    value = OffsetValue(offset, epoch, metadata, timestamp)
    assert decode_offset_value(encode_offset_value(value)) == value


# -- batches -------------------------------------------------------------------------------------


def _rebase(batch: bytes, base_offset: int) -> bytes:
    return struct.pack(">q", base_offset) + batch[8:]


def test_batch_round_trip_with_tombstones_and_offsets():
    first = _rebase(build_batch([(b"k1", b"v1"), (b"k2", None)], 1234), 10)
    second = _rebase(build_batch([(b"k3", b"v3")], 1235), 12)
    batches = list(iter_batches(first + second))
    assert [(b.base_offset, b.last_offset) for b in batches] == [(10, 11), (12, 12)]
    records = list(iter_records(first + second))
    assert [(r.offset, r.key, r.value) for r in records] == [(10, b"k1", b"v1"), (11, b"k2", None), (12, b"k3", b"v3")]
    assert records[0].timestamp_ms == 1234


def test_batch_header_is_valid_v2():
    batch = build_batch([(b"k", b"v")], 5)
    base, length, epoch, magic = struct.unpack_from(">qiib", batch)
    assert (base, length + 12, epoch, magic) == (0, len(batch), -1, 2)


def test_partial_trailing_batch_is_ignored_and_corruption_raises():
    batch = build_batch([(b"k", b"v")], 5)
    assert len(list(iter_records(batch + batch[:30]))) == 1
    corrupt = bytearray(batch)
    corrupt[-1] ^= 0xFF
    with pytest.raises(RecordsError):
        list(iter_records(bytes(corrupt)))


def test_skip_bad_reports_an_undecodable_batch_and_walks_on():
    good = _rebase(build_batch([(b"k1", b"v1")], 5), 0)
    garbage = bytearray(_rebase(build_batch([(b"k", b"v"), (b"k", b"v")], 5), 1))
    garbage[61:] = b"\xff" * (len(garbage) - 61)  # records unreadable, CRC recomputed: a valid batch
    struct.pack_into(">I", garbage, 17, crc32c.crc32c(bytes(garbage[21:])))
    after = _rebase(build_batch([(b"k3", b"v3")], 5), 3)
    data = good + bytes(garbage) + after
    with pytest.raises(RecordsError):
        list(iter_batches(data))
    batches = list(iter_batches(data, skip_bad=True))
    assert [(b.base_offset, b.last_offset, len(b.records), b.error is not None) for b in batches] == [
        (0, 0, 1, False), (1, 2, 0, True), (3, 3, 1, False)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=40), st.none() | st.binary(max_size=200)), min_size=1, max_size=20))
def test_batch_round_trip_property(records):
    assert [(r.key, r.value) for r in iter_records(build_batch(records, 0))] == records


# -- placement -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "java_hash"), [
    ("", 0),
    ("a", 97),
    ("hello", 99162322),
    ("console-consumer-12345", None),
    ("polygenelubricants", -(2**31)),  # the classic Integer.MIN_VALUE hash
    ("é€😀", None),
])
def test_java_string_hashcode(text, java_hash):
    # Reference: s[0]*31^(n-1) + ... over UTF-16 code units, wrapped to int32.
    units = [int.from_bytes(text.encode("utf-16-be")[i:i + 2], "big") for i in range(0, len(text.encode("utf-16-be")), 2)]
    h = 0
    for unit in units:
        h = (h * 31 + unit) % 2**32
    reference = h - 2**32 if h >= 2**31 else h
    assert java_string_hashcode(text) == reference
    if java_hash is not None:
        assert java_string_hashcode(text) == java_hash


def test_partition_for_matches_kafka_utils_abs():
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) == 0
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("a", 10) == 7
    assert all(0 <= partition_for(f"group-{i}", 10) < 10 for i in range(200))


def test_private_batches_agree_with_storage_batch_helpers():
    """Cross-check against storage/batch.py (the broker validates what we produce with it)."""
    storage_batch = pytest.importorskip("storage.batch")
    storage_records = pytest.importorskip("storage.records")
    ours = build_batch([(b"k1", b"v1"), (b"k2", None)], 1234)
    ((header, raw),) = list(storage_batch.iter_batches(ours, strict=True))
    _, records = storage_batch.decode_batch(raw)
    assert [(r.key, r.value, r.timestamp_ms) for r in records] == [(b"k1", b"v1", 1234), (b"k2", None, 1234)]
    theirs = storage_batch.build_batch([storage_records.Record(b"a", b"b", 99), storage_records.Record(b"c", None, 99)])
    assert [(r.key, r.value, r.offset) for r in iter_records(theirs)] == [(b"a", b"b", 0), (b"c", None, 1)]
