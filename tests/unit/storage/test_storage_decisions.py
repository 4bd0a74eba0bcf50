"""Pure decisions: segment roll, retention selection, epoch cache, producer state, compaction plan."""

from __future__ import annotations

import pytest

from storage.batch import Record, build_batch, decode_batch, parse_header, rewrite_offsets
from storage.compaction import plan_compaction
from storage.epoch_cache import EpochCache
from storage.log import EpochEntry, LogConfig, ProducerCheckResult
from storage.producer_state import ProducerStateTable
from storage.segments import Segment, select_segments_to_delete, should_roll

ROLL_CASES = [
    # (active segment, append bytes, now, config, expected, why)
    (Segment(0, 0, -1), 5000, 0, LogConfig(segment_bytes=1000), False, "empty segment takes any append"),
    (Segment(0, 900, 0), 50, 10, LogConfig(segment_bytes=1000), False, "still fits"),
    (Segment(0, 900, 0), 100, 10, LogConfig(segment_bytes=1000), False, "exactly full fits"),
    (Segment(0, 900, 0), 101, 10, LogConfig(segment_bytes=1000), True, "would pass segment.bytes"),
    (Segment(0, 10, 0), 10, 99, LogConfig(segment_ms=100), False, "younger than segment.ms"),
    (Segment(0, 10, 0), 10, 100, LogConfig(segment_ms=100), True, "segment.ms reached"),
]


@pytest.mark.parametrize(("active", "size", "now", "config", "expected", "why"), ROLL_CASES)
def test_should_roll(active, size, now, config, expected, why):
    assert should_roll(active, size, now, config) is expected, why


def _segments(*specs: tuple[int, int, int]) -> list[Segment]:
    return [Segment(base, size, 0, max_ts) for base, size, max_ts in specs]


THREE = _segments((0, 100, 1000), (10, 100, 2000), (20, 100, 3000), (30, 50, 4000))
RETENTION_CASES = [
    # (segments, log start, hw, now, config, expected count, why)
    (THREE, 0, 40, 10_000, LogConfig(retention_ms=-1), 0, "unlimited keeps everything"),
    (THREE, 0, 40, 2500, LogConfig(retention_ms=1000), 1, "only the first is older than 1s"),
    (THREE, 0, 40, 99_999, LogConfig(retention_ms=1000), 3, "all closed expire, active never"),
    (THREE, 0, 15, 99_999, LogConfig(retention_ms=1000), 1, "not past the high watermark"),
    (THREE, 0, 40, 0, LogConfig(retention_ms=-1, retention_bytes=200), 1, "350 bytes -> drop 100 to reach >=200"),
    (THREE, 0, 40, 0, LogConfig(retention_ms=-1, retention_bytes=0), 3, "zero bytes keeps the active segment"),
    (THREE, 0, 40, 0, LogConfig(retention_ms=-1, retention_bytes=260), 0, "dropping one would go below 260"),
    (THREE, 25, 40, 0, LogConfig(retention_ms=-1), 2, "wholly below the log start"),
    (THREE, 25, 40, 99_999, LogConfig(retention_ms=1, cleanup_policy="compact"), 2, "compact: only below start"),
    (THREE, 0, 40, 2500, LogConfig(retention_ms=1000, cleanup_policy="compact,delete"), 1, "compact,delete deletes"),
    (_segments((0, 0, -1)), 0, 0, 99_999, LogConfig(retention_ms=1), 0, "a lone active segment stays"),
]


@pytest.mark.parametrize(("segments", "start", "hw", "now", "config", "expected", "why"), RETENTION_CASES)
def test_select_segments_to_delete(segments, start, hw, now, config, expected, why):
    assert select_segments_to_delete(segments, start, hw, now, config) == expected, why


EPOCHS = [EpochEntry(1, 0), EpochEntry(3, 10), EpochEntry(4, 25)]
END_OFFSET_CASES = [
    (0, (0, 0)), (1, (1, 10)), (2, (1, 10)), (3, (3, 25)), (4, (4, 40)), (5, (-1, -1)), (-1, (-1, -1)),
]


@pytest.mark.parametrize(("epoch", "expected"), END_OFFSET_CASES)
def test_end_offset_for_epoch(epoch, expected):
    assert EpochCache(EPOCHS).end_offset_for_epoch(epoch, 40) == expected


def test_epoch_cache_truncations_and_assign():
    cache = EpochCache(EPOCHS)
    assert not cache.assign(3, 50) and cache.assign(6, 40) and cache.latest_epoch() == 6
    cache.truncate_from_end(25)
    assert cache.entries() == EPOCHS[:2]
    cache.truncate_from_start(12)
    assert cache.entries() == [EpochEntry(3, 12)]
    exact = EpochCache(EPOCHS)
    assert exact.truncate_from_start(25) and exact.entries() == [EpochEntry(4, 25)], "start on an epoch boundary"
    assert not exact.truncate_from_start(20), "already starts later"
    assert EpochCache.decode(cache.encode()).entries() == cache.entries()
    assert EpochCache().end_offset_for_epoch(0, 5) == (-1, -1)


def _header(producer_id, epoch, sequence, offset, count=1):
    batch = build_batch(
        [Record(b"k", b"v")] * count, producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence
    )
    return parse_header(rewrite_offsets(batch, offset, 0))


def test_producer_state_classifies_batches():
    table = ProducerStateTable()
    assert table.check(5, 0, 0, 0).result is ProducerCheckResult.NEW
    for i in range(7):
        table.update([_header(5, 0, i * 2, 100 + i * 2, count=2)])
    assert table.check(-1, 0, 99, 99).result is ProducerCheckResult.NEW
    duplicate = table.check(5, 0, 12, 13)
    assert (duplicate.result, duplicate.first_offset, duplicate.last_offset) == (ProducerCheckResult.DUPLICATE, 112, 113)
    assert table.check(5, 0, 2, 3).result is ProducerCheckResult.OUT_OF_ORDER_SEQUENCE, "only 5 batches kept"
    assert table.check(5, 0, 14, 15).result is ProducerCheckResult.NEW
    assert table.check(5, 0, 16, 16).result is ProducerCheckResult.OUT_OF_ORDER_SEQUENCE
    assert table.check(5, 1, 0, 0).result is ProducerCheckResult.NEW
    assert table.check(5, 1, 3, 3).result is ProducerCheckResult.OUT_OF_ORDER_SEQUENCE
    table.update([_header(5, 1, 0, 200)])
    assert table.check(5, 0, 14, 14).result is ProducerCheckResult.INVALID_PRODUCER_EPOCH
    table.update([_header(5, 1, 1, 201)])
    assert table.truncate(201) == {5} and table.get(5).producer_epoch == 1
    assert table.truncate(0) == {5} and table.get(5) is None, "no batch left: the producer is forgotten"


def _batch_at(offset, records, **kwargs):
    return offset, rewrite_offsets(build_batch(records, **kwargs), offset, 0)


def test_compaction_plan_keeps_latest_per_key_and_drops_old_tombstones():
    batches = [
        _batch_at(0, [Record(b"a", b"1", 100), Record(b"b", b"1", 100)]),
        _batch_at(2, [Record(b"a", b"2", 100), Record(b"c", None, 100)]),
        _batch_at(4, [Record(b"d", None, 5000), Record(None, b"keyless", 100)]),
        _batch_at(6, [Record(b"a", b"3", 100)], transactional=True, producer_id=1, producer_epoch=0, base_sequence=0),
    ]
    actions = {a.base_offset: a.batch for a in plan_compaction(lambda: batches, 6000, 2000)}
    assert set(actions) == {0, 2}, "batch 4 unchanged: fresh tombstone and keyless record stay"
    header, records = decode_batch(actions[0])
    assert [(r.key, r.offset_delta) for r in records] == [(b"b", 1)]
    assert header.last_offset_delta == 1 and header.base_offset == 0, "offset span preserved"
    assert actions[2] is not None
    assert [(r.key, r.value) for r in decode_batch(actions[2])[1]] == [(b"a", b"2")], "old tombstone c dropped"
    all_deleted = plan_compaction(lambda: [_batch_at(0, [Record(b"x", b"1")]), _batch_at(1, [Record(b"x", b"2")])], 0, 0)
    assert [(a.base_offset, a.batch) for a in all_deleted] == [(0, None)]
