"""Storage benchmark: RocksDB partition-log append and read throughput beside plain files.

Run from the repository root: `python -m bench.storage_bench` (also `make bench`). For each batch
size (16 KiB, 256 KiB, 1 MiB) it measures append without sync, append with sync
(flush.messages=1) and read, and the same on a plain sequential file (write, write+fsync, read)
in the same directory as the ceiling. Goals from issue 3: unsynced 256 KiB appends at >= 25 % of
the plain-file ceiling, reads >= 1 GB/s. Each cell runs for a fixed byte budget with a time cap,
so the whole run stays under a minute on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from storage.batch import Record, build_batch
from storage.log import LogConfig
from storage.rocksdb_log import LogManager

SIZES = [16 * 1024, 256 * 1024, 1024 * 1024]
UNSYNCED_BYTES_MAX = 1024 * 1024 * 1024
SYNCED_BYTES_MAX = 48 * 1024 * 1024
CELL_SECONDS_MAX = 4.0
TOPIC = b"\x42" * 16


@dataclass(frozen=True)
class Measurement:
    bytes_total: int
    batches: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.bytes_total / self.seconds / 1e6

    @property
    def batches_per_s(self) -> float:
        return self.batches / self.seconds


def make_batch(size: int) -> bytes:
    """One uncompressed v2 batch of about `size` bytes (16 records of random data)."""
    value_bytes = max(1, size // 16 - 30)
    return build_batch([Record(b"key-%d" % i, os.urandom(value_bytes), 1_700_000_000_000 + i) for i in range(16)])


def bench_log_append(directory: str, batch: bytes, sync: bool, bytes_max: int) -> tuple[Measurement, LogManager]:
    manager = LogManager(directory)
    config = LogConfig(segment_bytes=64 << 20, max_message_bytes=4 << 20, flush_messages=1 if sync else 1 << 62)
    log = manager.get_or_create(TOPIC, "bench", 0, config)
    count = 0
    start = time.perf_counter()
    while count * len(batch) < bytes_max and time.perf_counter() - start < CELL_SECONDS_MAX:
        log.append_as_leader(batch, 0, count)
        count += 1
    return Measurement(count * len(batch), count, time.perf_counter() - start), manager


def bench_log_read(manager: LogManager, fetch_bytes: int, batch_bytes: int) -> Measurement:
    """Sequential consumer-style reads of `fetch_bytes` per call over everything appended."""
    log = manager.get(TOPIC, 0)
    assert log is not None
    offset, total, calls = 0, 0, 0
    start = time.perf_counter()
    while offset < log.log_end_offset:
        result = log.read(offset, fetch_bytes, log.log_end_offset)
        total += len(result.records)
        offset = result.next_offset
        calls += 1
    seconds = time.perf_counter() - start
    assert calls > 0
    return Measurement(total, total // batch_bytes, seconds)


def bench_file(directory: str, batch: bytes, sync: bool, bytes_max: int) -> tuple[Measurement, Measurement]:
    """Plain sequential write (optionally fsync per batch) and read-back of the same file."""
    path = os.path.join(directory, "plain.bin")
    count = 0
    start = time.perf_counter()
    with open(path, "wb", buffering=0) as handle:
        while count * len(batch) < bytes_max and time.perf_counter() - start < CELL_SECONDS_MAX:
            handle.write(batch)
            if sync:
                os.fsync(handle.fileno())
            count += 1
    written = Measurement(count * len(batch), count, time.perf_counter() - start)
    start = time.perf_counter()
    total = 0
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(len(batch)):
            total += len(chunk)
    read = Measurement(total, count, time.perf_counter() - start)
    os.unlink(path)
    return written, read


def run(base_directory: str, sizes: list[int]) -> list[tuple[str, int, Measurement, Measurement]]:
    rows: list[tuple[str, int, Measurement, Measurement]] = []
    for size in sizes:
        batch = make_batch(size)
        for sync in (False, True):
            bytes_max = SYNCED_BYTES_MAX if sync else UNSYNCED_BYTES_MAX
            directory = tempfile.mkdtemp(dir=base_directory)
            file_write, file_read = bench_file(directory, batch, sync, bytes_max)
            append, manager = bench_log_append(directory, batch, sync, bytes_max)
            read = bench_log_read(manager, max(1 << 20, len(batch)), len(batch))
            manager.close()
            shutil.rmtree(directory, ignore_errors=True)
            label = "sync" if sync else "no sync"
            rows.append((f"append {label}", size, append, file_write))
            if not sync:
                rows.append(("read (1 MiB fetches)", size, read, file_read))
    return rows


def print_table(rows: list[tuple[str, int, Measurement, Measurement]]) -> None:
    print(f"{'operation':<22}{'batch':>9}{'MB/s':>10}{'batches/s':>11}{'file MB/s':>11}{'ratio':>8}")
    for name, size, log, ceiling in rows:
        print(
            f"{name:<22}{size // 1024:>7}Ki{log.mb_per_s:>10.0f}{log.batches_per_s:>11.0f}"
            f"{ceiling.mb_per_s:>11.0f}{log.mb_per_s / ceiling.mb_per_s:>8.0%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir under ./.data or /tmp)")
    arguments = parser.parse_args()
    base = arguments.dir or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    print(f"storage bench in {base}; ceiling = plain sequential file (write / write+fsync / read)")
    print_table(run(base, SIZES))


if __name__ == "__main__":
    main()
