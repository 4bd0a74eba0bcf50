"""The in-memory tail of a RocksDB log (storage/tail.py): reads it answers equal the store's, and
nothing that removed batches is ever served from it."""

from __future__ import annotations

import dataclasses
import itertools

from storage.batch import Record, build_batch, parse_header
from storage.log import LogConfig
from storage.rocksdb_log import LogManager
from storage.tail import TailBudget, read_tail

TOPIC = b"\x05" * 16


def _batch(n: int, value: bytes = b"v", sequence: int = 0) -> bytes:
    return build_batch([Record(None, value, 1_000) for _ in range(n)], producer_id=7, producer_epoch=0,
                       base_sequence=sequence, base_offset=sequence, partition_leader_epoch=0)


def _store_read(log, offset: int, max_bytes: int, upper_bound: int, min_one: bool = True):
    """The same read answered by RocksDB (the tail set aside for it)."""
    tail = log._tail
    log.drop_tail()
    try:
        return log.read(offset, max_bytes, upper_bound, min_one)
    finally:
        log._tail = tail


def test_reads_from_the_tail_equal_reads_from_the_store(log_dir):
    manager = LogManager(log_dir)
    try:
        log = manager.get_or_create(TOPIC, "t", 0, LogConfig())
        log.append_as_leader(_batch(3), 0, 1_000)
        # One append of three batches: the tail holds all three.
        log.append_as_leader(_batch(2, sequence=3) + _batch(4, sequence=5) + _batch(1, sequence=9), 0, 1_000)
        assert log.log_end_offset == 10 and len(log._tail) == 3
        size = parse_header(_batch(2)).size_bytes
        for offset, max_bytes, upper_bound, min_one in itertools.product(
            range(10), (1, size, 2 * size + 40, 1 << 20), (4, 5, 8, 9, 10, 1 << 40), (True, False)
        ):
            got = log.read(offset, max_bytes, upper_bound, min_one)
            want = _store_read(log, offset, max_bytes, upper_bound, min_one)
            assert (got.records, got.first_offset, got.next_offset) == \
                (want.records, want.first_offset, want.next_offset), (offset, max_bytes, upper_bound, min_one)
    finally:
        manager.close()


def test_a_truncation_inside_the_last_append_is_not_read_back_from_the_tail(log_dir):
    manager = LogManager(log_dir)
    try:
        log = manager.get_or_create(TOPIC, "t", 0, LogConfig())
        log.append_as_follower(_batch(2) + _batch(3, sequence=2))  # offsets 0-1 and 2-4, one append
        log.truncate_to(2)
        got = log.read(0, 1 << 20, 1 << 40)
        assert got.next_offset == 2, "a batch removed by truncation was read back from the in-memory tail"
        assert got.records == _store_read(log, 0, 1 << 20, 1 << 40).records
    finally:
        manager.close()


def test_the_budget_drops_the_least_recently_appended_tails(log_dir):
    manager = LogManager(log_dir)
    try:
        one_batch = parse_header(_batch(1, b"x" * 100)).size_bytes
        manager._tail_budget.bytes_max = 2 * one_batch
        logs = [manager.get_or_create(TOPIC, "t", i, LogConfig()) for i in range(3)]
        for log in logs:
            log.append_as_leader(_batch(1, b"x" * 100), 0, 1_000)
        assert [len(log._tail) for log in logs] == [0, 1, 1]
        assert manager._tail_budget.total == 2 * one_batch
        # Too large for the whole budget: no tail, and the read is answered by the store.
        logs[0].append_as_leader(_batch(3, b"x" * 100, sequence=1), 0, 1_000)
        assert logs[0]._tail == ()
        assert logs[0].read(1, 1 << 20, 1 << 40).next_offset == 4
    finally:
        manager.close()
    assert manager._tail_budget.total == 0


def test_read_tail_leaves_offsets_before_its_first_batch_to_the_store():
    header = dataclasses.replace(parse_header(_batch(2)), base_offset=5)  # offsets 5-6
    assert read_tail([(header, b"body")], 4, 1 << 20, 1 << 40, True) is None
    assert read_tail([], 0, 1 << 20, 1 << 40, True) is None
    assert read_tail([(header, b"body")], 6, 1 << 20, 1 << 40, True) == ([b"body"], 5, 7)
    assert read_tail([(header, b"body")], 5, 1 << 20, 6, True) == ([], 5, 5)


def test_budget_release_and_readmission():
    class Owner:
        dropped = 0

        def drop_tail(self) -> None:
            self.dropped += 1

    budget = TailBudget(100)
    a, b = Owner(), Owner()
    assert budget.admit(1, a, 60) and budget.admit(1, a, 70)  # a replacement, not an addition
    assert budget.total == 70 and a.dropped == 0
    assert budget.admit(2, b, 40) and a.dropped == 1 and budget.total == 40
    assert not budget.admit(3, a, 101) and budget.total == 40
    budget.release(2)
    assert budget.total == 0
