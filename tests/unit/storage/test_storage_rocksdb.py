"""RocksDB-only behaviour: reopen, the directory lock, partition registry, deletion, flush policy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from storage import keys
from storage.batch import Record, build_batch
from storage.log import LogConfig, ProducerCheckResult
from storage.rocksdb_log import LogDirectoryInUseError, LogManager

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TOPIC = bytes(range(16))
OTHER = bytes(range(16, 32))


def _fill(manager: LogManager) -> None:
    log = manager.get_or_create(TOPIC, "orders", 0, LogConfig(segment_bytes=200))
    for i in range(10):
        records = [Record(b"k", b"v%d" % i, 1000 + i)]
        log.append_as_leader(build_batch(records, producer_id=3, producer_epoch=0, base_sequence=i), i // 4, 0)
    log.set_high_watermark(8)
    log.delete_records_before(2)


def test_reopen_restores_everything(log_dir):
    manager = LogManager(log_dir)
    _fill(manager)
    log = manager.get(TOPIC, 0)
    state = (log.log_start_offset, log.log_end_offset, log.high_watermark, log.epoch_entries(), log.segments(),
             log.read(2, 1 << 20, 10), log.producer_entries())
    manager.close()
    reopened = LogManager(log_dir).get_or_create(TOPIC, "orders", 0, LogConfig(segment_bytes=200))
    assert (reopened.log_start_offset, reopened.log_end_offset, reopened.high_watermark, reopened.epoch_entries(),
            reopened.segments(), reopened.read(2, 1 << 20, 10), reopened.producer_entries()) == state
    assert reopened.check_producer_batch(3, 0, 9, 9).result is ProducerCheckResult.DUPLICATE


def test_registry_and_delete(log_dir):
    manager = LogManager(log_dir)
    _fill(manager)
    other = manager.get_or_create(OTHER, "audit", 5, LogConfig())
    other.append_as_leader(build_batch([Record(None, b"x")]), 0, 0)
    assert sorted(manager.partitions()) == sorted([(TOPIC, "orders", 0), (OTHER, "audit", 5)])
    assert manager.delete(TOPIC, 0) and not manager.delete(TOPIC, 0)
    assert manager.partitions() == [(OTHER, "audit", 5)] and manager.get(TOPIC, 0) is None
    recreated = manager.get_or_create(TOPIC, "orders", 0, LogConfig())
    assert recreated.log_end_offset == 0 and other.log_end_offset == 1
    manager.close()
    # Nothing of the deleted partition's number range is left behind.
    reopened = LogManager(log_dir)
    assert len(reopened.partitions()) == 2
    reopened.close()


def test_key_order_is_offset_order():
    numbers = [0, 1, 255, 256, 70_000, 1 << 40]
    encoded = [keys.partition_key(3, keys.BATCH, n) for n in numbers]
    assert encoded == sorted(encoded)
    lower, upper = keys.kind_range(3, keys.BATCH)
    assert all(lower <= k < upper for k in encoded)
    assert keys.partition_key(4, keys.BATCH, 0) >= keys.partition_range(3)[1]


def test_second_process_gets_a_clear_error(log_dir):
    LogManager(log_dir).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from storage.rocksdb_log import LogManager
            manager = LogManager({log_dir!r})
            print("ready", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, start_new_session=True, cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == b"ready"
        with pytest.raises(LogDirectoryInUseError) as caught:
            LogManager(log_dir)
        message = caught.value.message
        assert "in use by another process" in message and f"pid {holder.pid}" in message and "\n" not in message
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    LogManager(log_dir).close()  # the kernel released the lock with the process


def test_flush_messages_one_syncs_every_append(log_dir, monkeypatch):
    manager = LogManager(log_dir)
    log = manager.get_or_create(TOPIC, "t", 0, LogConfig(flush_messages=1))
    synced: list[bool] = []
    real_write = log._db.write
    monkeypatch.setattr(log, "_db", _Spy(log._db, synced, real_write))
    log.append_as_leader(build_batch([Record(None, b"x")]), 0, 0)
    log.update_config(LogConfig(flush_messages=3))
    for _ in range(3):
        log.append_as_leader(build_batch([Record(None, b"x")]), 0, 0)
    assert synced == [True, False, False, False, "flush_wal"]
    manager.close()


class _Spy:
    """Records whether each write was synced and each WAL flush; forwards everything else."""

    def __init__(self, db, calls, real_write):
        self._db, self._calls, self._real_write = db, calls, real_write

    def write(self, batch, options=None):
        self._calls.append(bool(options is not None and options.sync))
        return self._real_write(batch, options) if options is not None else self._real_write(batch)

    def flush_wal(self, sync):
        self._calls.append("flush_wal")
        return self._db.flush_wal(sync)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_get_or_create_many_registers_in_one_write_and_keeps_existing_logs(log_dir):
    """A metadata image bringing thousands of partitions creates their logs in one WriteBatch: each
    gets its own number (no two logs share a key range), an existing log keeps its data, and a
    reopened directory has them all."""
    manager = LogManager(log_dir)
    _fill(manager)  # TOPIC-0 exists with data
    manager.get_or_create_many([(TOPIC, "orders", 0, LogConfig()), (OTHER, "audit", 0, LogConfig()),
                                (OTHER, "audit", 1, LogConfig()), (OTHER, "audit", 1, LogConfig())])
    assert manager.get(TOPIC, 0).log_end_offset == 10
    logs = [manager.get_or_create(OTHER, "audit", i, LogConfig()) for i in (0, 1)]
    later = manager.get_or_create(OTHER, "audit", 2, LogConfig())
    for i, log in enumerate([*logs, later]):
        assert (log.log_start_offset, log.log_end_offset) == (0, 0)
        log.append_as_leader(build_batch([Record(None, b"x%d" % i)] * (i + 1)), 0, 0)
    assert [log.log_end_offset for log in (*logs, later)] == [1, 2, 3], "each log has its own key range"
    assert manager.get(TOPIC, 0).log_end_offset == 10
    manager.close()
    reopened = LogManager(log_dir)
    assert sorted(reopened.partitions()) == sorted([(TOPIC, "orders", 0)] + [(OTHER, "audit", i) for i in range(3)])
    assert [reopened.get_or_create(OTHER, "audit", i, LogConfig()).log_end_offset for i in range(3)] == [1, 2, 3]
    reopened.close()
