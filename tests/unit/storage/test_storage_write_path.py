"""RocksDB write-path variants (issue 12): data flushed to SST and blob files reads back exactly,
across a reopen with another variant (a broker upgraded to new defaults opens old directories)."""

from __future__ import annotations

import os

import pytest

from storage.batch import Record, build_batch
from storage.log import LogConfig
from storage.rocksdb_log import DEFAULT_WRITE_PATH, WRITE_PATH_VARIANTS, LogManager

TOPIC = bytes(range(16))
CONFIG = LogConfig(segment_bytes=64 * 1024, retention_ms=-1, retention_bytes=128 * 1024)


def _batches() -> list[bytes]:
    """Small (stay in the LSM) and large (blob-sized) batches alternating, contents from their index."""
    return [
        build_batch([Record(b"k%d" % i, bytes([i % 251]) * (100 if i % 2 else 20_000), 1000 + i)])
        for i in range(40)
    ]


@pytest.mark.parametrize("reopen_with", ["baseline", DEFAULT_WRITE_PATH])
@pytest.mark.parametrize("written_with", sorted(WRITE_PATH_VARIANTS))
def test_flushed_batches_read_back_after_reopen_with_another_variant(log_dir, written_with, reopen_with):
    manager = LogManager(log_dir, write_path=written_with)
    log = manager.get_or_create(TOPIC, "t", 0, CONFIG)
    for batch in _batches():
        log.append_as_leader(batch, 0, 0)
    log.set_high_watermark(log.log_end_offset)
    assert log.apply_retention(0) > 0, "retention must delete leading segments in this scenario"
    start = log.log_start_offset
    expected = log.read(start, 1 << 30, log.log_end_offset).records
    manager.settle(30)  # memtable -> SST (and blob) files, so the reads below come from files
    manager.close()
    reopened = LogManager(log_dir, write_path=reopen_with)
    try:
        log = reopened.get_or_create(TOPIC, "t", 0, CONFIG)
        assert log.log_start_offset == start
        assert log.read(start, 1 << 30, log.log_end_offset).records == expected
        assert len(expected) > 100_000
    finally:
        reopened.close()


def test_blob_variant_writes_blob_files_for_large_batches(log_dir):
    """The default variant really moves large batch bodies out of the LSM (else it measures nothing)."""
    manager = LogManager(log_dir, write_path=DEFAULT_WRITE_PATH)
    log = manager.get_or_create(TOPIC, "t", 0, CONFIG)
    for batch in _batches():
        log.append_as_leader(batch, 0, 0)
    manager.settle(30)
    manager.close()
    blob_files = [name for name in os.listdir(log_dir) if name.endswith(".blob")]
    assert blob_files if DEFAULT_WRITE_PATH.startswith("blob") else not blob_files
