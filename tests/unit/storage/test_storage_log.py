"""The PartitionLog API, run against both implementations (memory and RocksDB)."""

from __future__ import annotations

import pytest

from cluster.errors import ErrorCode, LogError
from storage.batch import Codec, Record, build_batch, decode_batch, iter_batches, rewrite_offsets
from storage.log import EpochEntry, LogConfig, ProducerCheckResult


def batch(count: int = 1, timestamp_ms: int = 1000, key: bytes = b"k", **kwargs) -> bytes:
    return build_batch([Record(key, b"v%d" % i, timestamp_ms + i) for i in range(count)], **kwargs)


def offsets_of(records: bytes) -> list[tuple[int, int]]:
    return [(h.base_offset, h.last_offset) for h, _ in iter_batches(records, strict=False)]


def test_leader_append_assigns_offsets_and_epochs(make_log):
    log = make_log()
    info = log.append_as_leader(batch(3) + batch(2), leader_epoch=4, now_ms=10)
    assert (info.first_offset, info.last_offset, info.log_append_time_ms) == (0, 4, -1)
    assert [(h.base_offset, h.partition_leader_epoch) for h in info.batches] == [(0, 4), (3, 4)]
    assert log.log_end_offset == 5 and log.latest_epoch() == 4
    log.append_as_leader(batch(1), leader_epoch=6, now_ms=11)
    assert log.epoch_entries() == [EpochEntry(4, 0), EpochEntry(6, 5)]
    assert log.end_offset_for_epoch(4) == (4, 5) and log.end_offset_for_epoch(6) == (6, 6)
    assert log.end_offset_for_epoch(5) == (4, 5) and log.end_offset_for_epoch(7) == (-1, -1)
    with pytest.raises(LogError) as caught:
        log.append_as_leader(batch(1), leader_epoch=5, now_ms=12)
    assert caught.value.code == ErrorCode.fenced_leader_epoch


def test_log_append_time(make_log):
    log = make_log(LogConfig(message_timestamp_type="LogAppendTime"))
    info = log.append_as_leader(batch(2), 0, now_ms=777)
    assert info.log_append_time_ms == 777 and info.batches[0].max_timestamp == 777
    assert list(iter_batches(log.read(0, 1 << 20, 2).records))[0][0].is_log_append_time


def test_flipped_bit_is_rejected_and_log_unchanged(make_log):
    log = make_log()
    log.append_as_leader(batch(2), 0, 0)
    good, corrupt = batch(1), bytearray(batch(2))
    corrupt[70] ^= 0x01
    with pytest.raises(LogError) as caught:
        log.append_as_leader(good + bytes(corrupt), 0, 1)
    assert caught.value.code == ErrorCode.corrupt_message
    assert log.log_end_offset == 2 and offsets_of(log.read(0, 1 << 20, 10).records) == [(0, 1)]


def test_too_large_and_invalid_batches_store_nothing(make_log):
    log = make_log(LogConfig(max_message_bytes=200))
    with pytest.raises(LogError) as too_large:
        log.append_as_leader(batch(1) + build_batch([Record(b"k", b"x" * 500)]), 0, 0)
    assert too_large.value.code == ErrorCode.message_too_large and log.log_end_offset == 0


def test_follower_append_must_be_contiguous(make_log):
    log = make_log()
    leader_batches = rewrite_offsets(batch(2), 0, 3) + rewrite_offsets(batch(3), 2, 5)
    info = log.append_as_follower(leader_batches)
    assert (info.first_offset, info.last_offset, log.log_end_offset) == (0, 4, 5)
    assert log.epoch_entries() == [EpochEntry(3, 0), EpochEntry(5, 2)]
    for bad in (rewrite_offsets(batch(1), 7, 5), rewrite_offsets(batch(1), 4, 5)):
        with pytest.raises(LogError, match="not contiguous"):
            log.append_as_follower(bad)
    assert log.log_end_offset == 5


def test_read_whole_batches_bounds_and_min_one(make_log):
    log = make_log()
    for _ in range(4):
        log.append_as_leader(batch(5), 0, 0)  # batches at 0, 5, 10, 15
    size = len(log.read(0, 1, 20).records)
    assert offsets_of(log.read(7, 1 << 20, 20).records) == [(5, 9), (10, 14), (15, 19)], "mid-batch -> whole batch"
    assert log.read(7, 1 << 20, 20).first_offset == 5
    assert offsets_of(log.read(0, size * 2, 20).records) == [(0, 4), (5, 9)]
    assert offsets_of(log.read(0, 1, 20).records) == [(0, 4)], "min_one returns the oversized first batch"
    assert log.read(0, 1, 20, min_one=False).records == b""
    result = log.read(0, 1 << 20, 12)
    assert offsets_of(result.records) == [(0, 4), (5, 9)] and result.next_offset == 10, "below the upper bound"
    assert log.read(20, 100, 20).records == b"" and log.read(20, 100, 20).next_offset == 20
    for offset in (-1, 21):
        with pytest.raises(LogError) as caught:
            log.read(offset, 100, 20)
        assert caught.value.code == ErrorCode.offset_out_of_range


def test_high_watermark_is_clamped(make_log):
    log = make_log()
    log.append_as_leader(batch(5), 0, 0)
    log.set_high_watermark(99)
    assert log.high_watermark == 5
    log.set_high_watermark(3)
    log.truncate_to(2)
    assert log.high_watermark == 0 and log.log_end_offset == 0, "a straddled batch goes whole"


def test_truncate_to_fixes_epochs_and_producers(make_log):
    log = make_log()
    log.append_as_leader(batch(2, producer_id=9, producer_epoch=0, base_sequence=0), 1, 0)
    log.append_as_leader(batch(2, producer_id=9, producer_epoch=0, base_sequence=2), 2, 0)
    log.append_as_leader(batch(2), 3, 0)
    log.truncate_to(4)
    assert log.log_end_offset == 4 and log.latest_epoch() == 2
    assert log.check_producer_batch(9, 0, 2, 3).result is ProducerCheckResult.DUPLICATE
    log.truncate_to(2)
    assert log.check_producer_batch(9, 0, 2, 3).result is ProducerCheckResult.NEW
    assert log.epoch_entries() == [EpochEntry(1, 0)]
    log.truncate_fully_and_start_at(50)
    assert (log.log_start_offset, log.log_end_offset, log.high_watermark, log.latest_epoch()) == (50, 50, 50, -1)
    assert log.append_as_leader(batch(1), 7, 0).first_offset == 50


def test_offset_for_timestamp(make_log):
    log = make_log(LogConfig(segment_bytes=200))
    for i in range(6):
        log.append_as_leader(batch(2, timestamp_ms=1000 * (i + 1)), 0, 0)  # ts 1000,1001,2000,2001,...
    assert log.offset_for_timestamp(0) == (0, 1000)
    assert log.offset_for_timestamp(2001) == (3, 2001)
    assert log.offset_for_timestamp(2002) == (4, 3000)
    assert log.offset_for_timestamp(9999) is None


def test_delete_records_and_retention(make_log):
    log = make_log(LogConfig(segment_bytes=150, retention_ms=-1))
    for _ in range(6):
        log.append_as_leader(batch(2), 0, 0)
    with pytest.raises(LogError):
        log.delete_records_before(3)  # above the high watermark
    log.set_high_watermark(12)
    assert log.delete_records_before(5) == 5 and log.log_start_offset == 5
    with pytest.raises(LogError) as caught:
        log.read(4, 100, 12)
    assert caught.value.code == ErrorCode.offset_out_of_range
    assert log.read(5, 1 << 20, 12).first_offset == 4, "the batch holding the log start is whole"
    log.update_config(LogConfig(segment_bytes=150, retention_bytes=0))
    deleted = log.apply_retention(0)
    assert deleted >= 1 and log.log_start_offset >= 6 and log.log_end_offset == 12
    assert log.read(log.log_start_offset, 1 << 20, 12).next_offset == 12


def test_retention_by_time_keeps_active_segment(make_log):
    log = make_log(LogConfig(segment_ms=10, retention_ms=100))
    for i in range(5):
        log.append_as_leader(batch(1, timestamp_ms=i), 0, now_ms=i * 20)
    log.set_high_watermark(5)
    assert log.apply_retention(10_000) == 4
    assert (log.log_start_offset, log.log_end_offset) == (4, 5)
    assert log.apply_retention(10_000) == 0


def test_producer_duplicate_detection_through_the_log(make_log):
    log = make_log()
    info = log.append_as_leader(batch(3, producer_id=1, producer_epoch=0, base_sequence=0), 0, 0)
    check = log.check_producer_batch(1, 0, 0, 2)
    assert (check.result, check.first_offset, check.last_offset) == (ProducerCheckResult.DUPLICATE, 0, 2)
    assert info.batches[0].producer_id == 1
    assert log.check_producer_batch(1, 0, 5, 5).result is ProducerCheckResult.OUT_OF_ORDER_SEQUENCE
    assert log.check_producer_batch(1, 0, 3, 3).result is ProducerCheckResult.NEW


@pytest.mark.parametrize("codec", [Codec.NONE, Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD])
def test_compaction_keeps_latest_value_per_key(make_log, codec):
    log = make_log(LogConfig(segment_bytes=300, cleanup_policy="compact", delete_retention_ms=0))
    expected: dict[bytes, bytes | None] = {}
    for i in range(40):
        key, value = b"key-%d" % (i % 7), (None if i % 11 == 10 else b"value-%d" % i)
        log.append_as_leader(build_batch([Record(key, value, 1000 + i)], compression=codec), 0, 0)
        expected[key] = value
    leo = log.log_end_offset
    assert log.maybe_compact(10_000) > 0 and log.maybe_compact(10_000) == 0, "nothing new to clean"
    seen: dict[bytes, bytes | None] = {}
    offsets = []
    for header, view in iter_batches(log.read(0, 1 << 30, leo).records, strict=False):
        for record in decode_batch(view)[1]:
            seen[record.key] = record.value
            offsets.append(header.base_offset + record.offset_delta)
    assert log.log_end_offset == leo and offsets == sorted(offsets), "offsets preserved, in order"
    assert {k: v for k, v in seen.items() if v is not None} == {k: v for k, v in expected.items() if v is not None}
    assert len(offsets) < 40
