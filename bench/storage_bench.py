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
from storage.rocksdb_log import WRITE_PATH_VARIANTS, LogManager

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


# Write path (issue 12): write amplification of the broker-like append workload per RocksDB variant.
WRITE_PATH_PARTITIONS = 4
WRITE_PATH_BYTES = {1024: 96 << 20, 16 * 1024: 512 << 20}
WRITE_PATH_SEGMENT_BYTES = 8 << 20
WRITE_PATH_RETENTION_BYTES = 32 << 20  # per partition: live data stays ~4 x 32 MiB
WRITE_PATH_RETENTION_EVERY = 64  # appends per partition between retention runs
WRITE_PATH_SETTLE_SECONDS = 60.0


@dataclass(frozen=True)
class WritePath:
    variant: str
    batch_bytes: int
    appended: int
    seconds: float
    disk_bytes: int  # /proc/self/io write_bytes - cancelled_write_bytes over the run + settle
    wal_bytes: int
    flush_bytes: int
    compaction_bytes: int
    blob_bytes: int
    stall_ms: float
    space_bytes: int  # the directory's size after the run: retention must free blob files too
    p50_us: float
    p99_us: float
    max_us: float
    read_mb_per_s: float

    @property
    def write_amp(self) -> float:
        """Bytes RocksDB wrote to files (WAL, flushes with their blob files, compactions) per byte
        appended. `disk_bytes` (what the kernel saw) is lower when a WAL is deleted before
        writeback and higher when writeback of a slow run catches it, so it is shown beside."""
        return (self.wal_bytes + self.flush_bytes + self.compaction_bytes) / self.appended

    @property
    def mb_per_s(self) -> float:
        return self.appended / self.seconds / 1e6


def _disk_write_bytes() -> int:
    """Bytes this process (every thread, RocksDB's background ones too) sent to the block layer."""
    fields = {}
    with open("/proc/self/io") as handle:
        for line in handle:
            name, value = line.split(":")
            fields[name] = int(value)
    return fields["write_bytes"] - fields["cancelled_write_bytes"]


def _ticker(statistics: str, name: str) -> int:
    for line in statistics.splitlines():
        if line.startswith(name + " COUNT"):
            return int(line.rsplit(":", 1)[1])
    return 0


def _percentile(sorted_values: list[int], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))] / 1000


def bench_write_path(base_directory: str, variant: str, batch_bytes: int) -> WritePath:
    """Round-robin appends of one `batch_bytes` batch per call to a few partitions, retention
    deleting whole segments as it would in the broker; every append is one WriteBatch (bodies,
    index entries, segment, log end and producer state). Disk bytes include the final memtable
    flush and the compactions it triggers, so bytes still only in the WAL are not flattered."""
    directory = tempfile.mkdtemp(dir=base_directory)
    batch = make_batch(batch_bytes)
    config = LogConfig(
        segment_bytes=WRITE_PATH_SEGMENT_BYTES, retention_ms=-1, retention_bytes=WRITE_PATH_RETENTION_BYTES,
        max_message_bytes=4 << 20,
    )
    manager = LogManager(directory, write_path=variant, statistics=True)
    logs = [manager.get_or_create(TOPIC, "bench", p, config) for p in range(WRITE_PATH_PARTITIONS)]
    appends = WRITE_PATH_BYTES[batch_bytes] // len(batch)
    latencies = [0] * appends
    disk_before = _disk_write_bytes()
    start = time.perf_counter()
    for i in range(appends):
        log = logs[i % WRITE_PATH_PARTITIONS]
        before = time.perf_counter_ns()
        log.append_as_leader(batch, 0, i)
        latencies[i] = time.perf_counter_ns() - before
        log.set_high_watermark(log.log_end_offset)
        if i % (WRITE_PATH_RETENTION_EVERY * WRITE_PATH_PARTITIONS) < WRITE_PATH_PARTITIONS:
            log.apply_retention(i)
    seconds = time.perf_counter() - start
    manager.settle(WRITE_PATH_SETTLE_SECONDS)
    disk = _disk_write_bytes() - disk_before
    statistics = manager.rocksdb_statistics()
    space = sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))
    read = bench_log_read_partitions(logs)
    manager.close()
    shutil.rmtree(directory, ignore_errors=True)
    latencies.sort()
    return WritePath(
        variant, batch_bytes, appends * len(batch), seconds, disk,
        _ticker(statistics, "rocksdb.wal.bytes"), _ticker(statistics, "rocksdb.flush.write.bytes"),
        _ticker(statistics, "rocksdb.compact.write.bytes"), _ticker(statistics, "rocksdb.blobdb.blob.file.bytes.written"),
        _ticker(statistics, "rocksdb.stall.micros") / 1000, space,
        _percentile(latencies, 0.5), _percentile(latencies, 0.99), latencies[-1] / 1000, read,
    )


def bench_log_read_partitions(logs: list) -> float:
    """MB/s of 1 MiB fetches over what retention left of every partition (reads hit SSTs or blobs)."""
    total = 0
    start = time.perf_counter()
    for log in logs:
        offset = log.log_start_offset
        while offset < log.log_end_offset:
            result = log.read(offset, 1 << 20, log.log_end_offset)
            total += len(result.records)
            offset = result.next_offset
    return total / (time.perf_counter() - start) / 1e6


def bench_read_variant(base_directory: str, variant: str, batch_bytes: int) -> tuple[float, float]:
    """One partition, 256 MiB (16 KiB batches) or 32 MiB (smaller) appended, flushed to files, then
    two scans with 1 MiB fetches; MB/s of each scan."""
    directory = tempfile.mkdtemp(dir=base_directory)
    batch = make_batch(batch_bytes)
    manager = LogManager(directory, write_path=variant)
    log = manager.get_or_create(TOPIC, "bench", 0, LogConfig(segment_bytes=64 << 20, max_message_bytes=4 << 20))
    for i in range(((256 if batch_bytes >= 16 * 1024 else 32) << 20) // len(batch)):
        log.append_as_leader(batch, 0, i)
    manager.settle(WRITE_PATH_SETTLE_SECONDS)
    scans = (bench_log_read(manager, 1 << 20, len(batch)).mb_per_s, bench_log_read(manager, 1 << 20, len(batch)).mb_per_s)
    manager.close()
    shutil.rmtree(directory, ignore_errors=True)
    return scans


def print_write_path(rows: list[WritePath]) -> None:
    print(
        f"{'variant':<15}{'batch':>7}{'write amp':>10}{'disk':>6}{'WAL':>6}{'flush':>7}{'compact':>8}{'blob':>6}"
        f"{'stall ms':>9}{'MB/s':>7}{'p50 us':>8}{'p99 us':>8}{'max ms':>8}{'read MB/s':>10}{'disk MiB':>9}"
    )
    for row in rows:
        a = row.appended
        print(
            f"{row.variant:<15}{row.batch_bytes // 1024:>5}Ki{row.write_amp:>10.2f}{row.disk_bytes / a:>6.2f}{row.wal_bytes / a:>6.2f}"
            f"{row.flush_bytes / a:>7.2f}{row.compaction_bytes / a:>8.2f}{row.blob_bytes / a:>6.2f}"
            f"{row.stall_ms:>9.0f}{row.mb_per_s:>7.0f}{row.p50_us:>8.0f}{row.p99_us:>8.0f}{row.max_us / 1000:>8.1f}{row.read_mb_per_s:>10.0f}{row.space_bytes >> 20:>9}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir under ./.data or /tmp)")
    parser.add_argument(
        "--write-path", nargs="*", metavar="VARIANT", default=None,
        help=f"only the write-path table, for these variants (default all: {' '.join(WRITE_PATH_VARIANTS)})",
    )
    parser.add_argument(
        "--read-path", nargs="*", metavar="VARIANT", default=None,
        help="only read throughput of data flushed to files, for these variants (default all)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="write-path runs per variant, alternating")
    parser.add_argument("--batch", type=int, nargs="*", default=sorted(WRITE_PATH_BYTES), help="write-path batch sizes")
    arguments = parser.parse_args()
    base = arguments.dir or tempfile.gettempdir()
    os.makedirs(base, exist_ok=True)
    if arguments.read_path is not None:
        for _ in range(arguments.repeat):
            for size in arguments.batch:
                for variant in arguments.read_path or list(WRITE_PATH_VARIANTS):
                    first, second = bench_read_variant(base, variant, size)
                    print(f"read {variant:<15}{size // 1024:>5}Ki{first:>8.0f}{second:>8.0f} MB/s  load {os.getloadavg()[0]:.1f}")
        return
    if arguments.write_path is not None:
        variants = arguments.write_path or list(WRITE_PATH_VARIANTS)
        print(f"write path in {base}; load average {os.getloadavg()}; {WRITE_PATH_PARTITIONS} partitions")
        rows = []
        for _ in range(arguments.repeat):
            for size in arguments.batch:
                for variant in variants:
                    rows.append(bench_write_path(base, variant, size))
                    print_write_path(rows[-1:])
        print(f"load average at the end {os.getloadavg()}")
        return
    print(f"storage bench in {base}; ceiling = plain sequential file (write / write+fsync / read)")
    print_table(run(base, SIZES))


if __name__ == "__main__":
    main()
