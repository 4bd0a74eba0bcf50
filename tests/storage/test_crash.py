"""Crash recovery: SIGKILL a process appending heavily, reopen, check the log is consistent.

Method: a child process (its own process group) appends batches whose content is a function of
(seed, base offset) and prints the log end offset after each acknowledged append. The parent
kills it by PID at a random moment, reopens the directory and checks: the log is a contiguous
run of valid batches (no partial batch, CRCs good), each batch holds exactly what the child
generated for that offset, the log end offset is at least the last acknowledged one and equals
the end of the last batch, and the epoch cache matches the epochs stamped in the batches.
Repeated KILLS times; the seed is printed so a failure can be replayed (BROOK_CRASH_SEED).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from storage.batch import decode_batch, iter_batches
from storage.epoch_cache import EpochCache
from storage.rocksdb_log import LogManager
from tests.storage.crash_child import CONFIG, TOPIC, expected_batch

KILLS = 50
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_and_kill(log_dir: str, seed: int, run_seconds: float) -> int:
    """Start the child, let it append for `run_seconds`, SIGKILL it; return the last acked offset."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.crash_child", log_dir, str(seed)],
        stdout=subprocess.PIPE, cwd=ROOT, start_new_session=True,
    )
    acked = -1
    try:
        first = child.stdout.readline()  # the child has opened the log
        assert first.startswith(b"acked"), first
        time.sleep(run_seconds)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        output, _ = child.communicate(timeout=30)
    for line in (first + output).splitlines():
        if line.startswith(b"acked "):
            acked = int(line.split()[1])
    return acked


def _check(log_dir: str, seed: int, acked: int, checked_from: int) -> int:
    """Reopen and check the log; returns the log end offset. Decodes batches from `checked_from`."""
    manager = LogManager(log_dir)
    try:
        log = manager.get_or_create(TOPIC, "crash", 0, CONFIG)
        assert log.log_end_offset >= acked, f"acknowledged offset {acked} lost: LEO {log.log_end_offset}"
        assert log.log_start_offset <= log.high_watermark <= log.log_end_offset
        data = log.read(log.log_start_offset, 1 << 40, log.log_end_offset).records
        expected_offset, epochs = None, EpochCache()
        for header, view in iter_batches(data, strict=True):  # validates lengths and CRCs
            assert expected_offset in (None, header.base_offset), "gap or overlap between batches"
            epochs.assign(header.partition_leader_epoch, header.base_offset)
            if header.base_offset >= checked_from:
                records, codec = expected_batch(seed, header.base_offset)
                assert header.compression == codec
                assert [(r.key, r.value) for r in decode_batch(view)[1]] == [(r.key, r.value) for r in records]
            expected_offset = header.next_offset
        assert expected_offset in (None, log.log_end_offset), "log end offset is not the end of the last batch"
        epochs.truncate_from_start(log.log_start_offset)
        assert log.epoch_entries() == epochs.entries(), "epoch cache disagrees with the stored batches"
        assert sum(s.size_bytes for s in log.segments()) >= len(data)
        return log.log_end_offset
    finally:
        manager.close()


@pytest.mark.timeout(180)
def test_sigkill_during_appends_leaves_a_consistent_prefix(tmp_path):
    seed = int(os.environ.get("BROOK_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test seed: {seed}")
    rng = random.Random(seed)
    log_dir = str(tmp_path / "crash")
    log_end_offset = 0
    deadline = time.monotonic() + 100
    for kill in range(KILLS):
        acked = _run_and_kill(log_dir, seed, rng.uniform(0.0, 0.25))
        new_end = _check(log_dir, seed, acked, checked_from=max(0, log_end_offset - 50))
        assert new_end >= log_end_offset, f"kill {kill}: log end went back from {log_end_offset} to {new_end}"
        log_end_offset = new_end
        assert time.monotonic() < deadline, f"too slow: {kill} kills"
    assert log_end_offset > 0
