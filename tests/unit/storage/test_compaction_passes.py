"""Compaction with a bounded key map (log.cleaner.dedupe.buffer.size) and as a job planned elsewhere.

- Passes: with a map that holds only a few keys, repeated passes reach exactly what one unbounded pass
  gives, and no pass's map exceeds the bound.
- Jobs: a job planned from a snapshot and then overtaken by a truncation (or retention) is not applied;
  both log implementations.
"""

from __future__ import annotations

import random

import pytest

from storage.batch import Record, build_batch, decode_batch, rewrite_offsets
from storage.compaction import DEDUPE_ENTRY_OVERHEAD_BYTES, CompactionAction, compaction_pass, plan_compaction
from storage.log import LogConfig


def _log_of(rng: random.Random, keys: int, batches: int) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    for _ in range(batches):
        records = [Record(b"k%02d" % rng.randrange(keys), b"v%d" % (offset + i), 1000)
                   for i in range(rng.randint(1, 4))]
        out.append((offset, rewrite_offsets(build_batch(records), offset, 0)))
        offset += len(records)
    return out


def _apply(log: list[tuple[int, bytes]], actions: list[CompactionAction]) -> list[tuple[int, bytes]]:
    by = {a.base_offset: a.batch for a in actions}
    return [(o, by.get(o, b)) for o, b in log if by.get(o, b) is not None]


def _records(log: list[tuple[int, bytes]]) -> list[tuple[int, bytes | None, bytes | None]]:
    out = []
    for _, batch in log:
        header, records = decode_batch(batch)
        out += [(header.base_offset + r.offset_delta, r.key, r.value) for r in records]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_passes_with_a_small_map_reach_the_unbounded_result(seed):
    rng = random.Random(seed)
    log = _log_of(rng, keys=12, batches=40)
    expected = _records(_apply(log, plan_compaction(lambda: log, 0, 0)))
    bound = 3 * (3 + DEDUPE_ENTRY_OVERHEAD_BYTES)  # three 3-byte keys
    dirty, passes = 0, 0
    while True:
        current = list(log)
        cpass = compaction_pass(lambda current=current: current, 0, 0, dirty_offset=dirty, dedupe_bytes_max=bound)
        assert cpass.keys <= max(3, 4), f"map of {cpass.keys} keys over the bound"  # a first batch always fits
        log = _apply(log, list(cpass.actions()))
        passes += 1
        if cpass.upto is None:
            break
        assert cpass.upto > dirty
        dirty = cpass.upto
    assert passes > 3, "the bound forced several passes"
    assert _records(log) == expected
    assert len({k for _, k, _ in expected}) == len(expected), "one record per key"


def _config() -> LogConfig:
    return LogConfig(cleanup_policy="compact", segment_bytes=200, delete_retention_ms=0,
                     dedupe_bytes_max=2 * (3 + DEDUPE_ENTRY_OVERHEAD_BYTES))


def _fill(log, rounds: int) -> None:
    for i in range(rounds):
        log.append_as_leader(build_batch([Record(b"k%02d" % (i % 5), b"v%03d" % i, 1000)]), 0, 1000)
    log.set_high_watermark(log.log_end_offset)


def test_the_log_compacts_in_passes_to_the_unbounded_result(make_log):
    from storage.memory_log import MemoryLog  # the reference (both logs behave alike: test_storage_model)

    bounded, unbounded = make_log(_config()), MemoryLog(LogConfig(cleanup_policy="compact", segment_bytes=200,
                                                                  delete_retention_ms=0))
    for log in (bounded, unbounded):
        _fill(log, 60)
    assert unbounded.maybe_compact(2000) > 0 and unbounded.compaction_job(2000) is None, "one pass covers it all"
    passes = 0
    while bounded.compaction_job(2000) is not None:
        bounded.maybe_compact(2000)
        passes += 1
        assert passes < 100
    assert passes >= 3, "the 2-key map needs several passes over 5 keys"
    read = [log.read(0, 1 << 20, log.log_end_offset).records for log in (bounded, unbounded)]
    assert read[0] == read[1]
    assert len(_iter(read[0])) < 60


def _iter(records: bytes):
    from storage.batch import iter_batches
    return [(h, bytes(v)) for h, v in iter_batches(records)]


@pytest.mark.parametrize("change", ["truncate", "retention"])
def test_a_job_overtaken_by_a_truncation_or_retention_is_not_applied(make_log, change):
    log = make_log(LogConfig(cleanup_policy="compact,delete", segment_bytes=200, delete_retention_ms=0,
                             retention_ms=500))
    _fill(log, 40)
    job = log.compaction_job(2000)
    assert job is not None
    cpass = job.plan()
    actions = list(cpass.actions())
    assert actions
    before = log.read(log.log_start_offset, 1 << 20, log.log_end_offset).records
    if change == "truncate":
        log.truncate_to(job.end - 1)
    else:
        assert log.apply_retention(10_000) > 0
    after_change = log.read(log.log_start_offset, 1 << 20, log.log_end_offset).records
    assert after_change != before
    assert log.apply_compaction(job, actions) is False
    assert log.finish_compaction(job, cpass.upto) is False
    assert log.read(log.log_start_offset, 1 << 20, log.log_end_offset).records == after_change


def test_expired_producers_are_gone_after_a_reopen(log_dir):
    """producer.id.expiration.ms on the durable log: the expiry is written, not only forgotten in memory."""
    from storage.rocksdb_log import LogManager

    manager = LogManager(log_dir)
    log = manager.get_or_create(bytes(16), "topic", 0, LogConfig())
    for pid, ts in ((1, 1_000), (2, 50_000)):
        log.append_as_leader(build_batch([Record(b"k", b"v", ts)], producer_id=pid, producer_epoch=0,
                                         base_sequence=0), 0, ts)
    assert log.expire_producers(1_000 + 59_999, 60_000) == 0
    assert log.expire_producers(1_000 + 60_000, 60_000) == 1
    assert sorted(log.producer_entries()) == [2]
    manager.close()
    manager = LogManager(log_dir)
    try:
        reopened = manager.get_or_create(bytes(16), "topic", 0, LogConfig())
        assert sorted(reopened.producer_entries()) == [2]
        assert reopened.producer_entries()[2].last_timestamp_ms == 50_000
    finally:
        manager.close()
