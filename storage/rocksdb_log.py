"""The durable PartitionLog on RocksDB: the only module that imports rocksdict.

One RocksDB per log directory, opened by one process (RocksDB's LOCK file). Each partition gets a
small internal number; all its keys share that prefix (see storage.keys). Every mutation of a log
is one WriteBatch: batch bodies, their index entries, the segment record, the log end offset, the
epoch cache and producer state change together or not at all, so a SIGKILL at any point reopens
to a prefix of what was written. Metadata lives in memory too and is only updated after the write
succeeded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence

import rocksdict

from cluster.errors import ErrorCode, LogError
from storage import keys
from storage.append import (
    PreparedAppend,
    find_record_at_or_after,
    prepare_follower_append,
    prepare_leader_append,
)
from storage.batch import BatchHeader, parse_header
from storage.compaction import CompactionAction, CompactionJob
from storage.compression import decompressed_bytes_max
from storage.epoch_cache import EpochCache
from storage.log import AppendInfo, EpochEntry, LogConfig, ProducerCheck, ReadResult
from storage.producer_state import ProducerEntry, ProducerStateTable
from storage.segments import Segment, decode_segment, encode_segment, select_segments_to_delete, should_roll
from storage.tail import TailBudget, read_tail
from storage.txn_index import AbortedTxn, TxnIndex

__all__ = ["LogDirectoryInUseError", "LogManager", "RocksDBLog"]

_META_END = b"leo"
_META_START = b"start"
_META_HW = b"hw"
_META_EPOCHS = b"epochs"
_META_CLEANER = b"cleaner"
_META_TXN = b"txn"  # storage.txn_index: open and ended transactions (written only when they change)
_NO_RETENTION = LogConfig(retention_ms=-1, retention_bytes=-1)


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class LogDirectoryInUseError(LogError):
    """Another process (or another LogManager in this one) holds the directory's lock."""

    code = ErrorCode.kafka_storage_error


def _base_options() -> rocksdict.Options:
    """Options shared by every write-path variant: no RocksDB compression (batches are usually
    compressed by producers, and CPU is the bottleneck) and big memtables."""
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_compression_type(rocksdict.DBCompressionType.none())
    options.set_write_buffer_size(64 << 20)
    options.set_max_write_buffer_number(4)
    options.set_max_background_jobs(2)
    options.set_level_compaction_dynamic_level_bytes(True)
    return options


def _options_baseline() -> rocksdict.Options:
    """The options before the issue-12 write-path work (level compaction, values in the LSM)."""
    return _base_options()


def _options_blob() -> rocksdict.Options:
    """BlobDB: batch bodies (>= 512 bytes) go to blob files at flush, compaction moves only keys."""
    options = _base_options()
    options.set_enable_blob_files(True)
    options.set_min_blob_size(512)
    options.set_blob_file_size(64 << 20)
    options.set_blob_compression_type(rocksdict.DBCompressionType.none())
    options.set_enable_blob_gc(True)
    options.set_blob_gc_age_cutoff(0.25)
    return options


def _options_blob_mmap() -> rocksdict.Options:
    """BlobDB with memory-mapped reads (blob reads skip a pread + copy per batch)."""
    options = _options_blob()
    options.set_allow_mmap_reads(True)
    return options


def _options_blob_4k() -> rocksdict.Options:
    """BlobDB for batches >= 4 KiB only: small batches stay in the LSM (cheaper to read)."""
    options = _options_blob()
    options.set_min_blob_size(4096)
    return options


def _options_blob_4k_mmap() -> rocksdict.Options:
    """The default: batch bodies >= 4 KiB in blob files (level compaction then rewrites only keys
    and small values: 16 KiB appends cost 2.0 instead of 2.9 bytes written per byte appended), and
    memory-mapped reads so a blob read is not a pread + copy per batch (without them 16 KiB reads
    fell to about half). Crash safety is unchanged: every WriteBatch still goes through the WAL,
    blob files are written and synced by the memtable flush before the WAL is released. Mapped
    file pages count in the broker's RSS (as page cache, reclaimable). See docs/PERFORMANCE.md."""
    options = _options_blob_4k()
    options.set_allow_mmap_reads(True)
    return options


def _options_universal() -> rocksdict.Options:
    """Universal (tiered) compaction: fewer rewrites than levels, more space while merging."""
    options = _base_options()
    options.set_compaction_style(rocksdict.DBCompactionStyle.universal())
    return options


def _options_small_memtable() -> rocksdict.Options:
    options = _base_options()
    options.set_write_buffer_size(16 << 20)
    return options


def _options_big_memtable() -> rocksdict.Options:
    options = _base_options()
    options.set_write_buffer_size(256 << 20)
    options.set_max_write_buffer_number(3)
    return options


WRITE_PATH_VARIANTS = {
    "baseline": _options_baseline,
    "blob": _options_blob,
    "blob-mmap": _options_blob_mmap,
    "blob-4k": _options_blob_4k,
    "blob-4k-mmap": _options_blob_4k_mmap,
    "universal": _options_universal,
    "memtable-16M": _options_small_memtable,
    "memtable-256M": _options_big_memtable,
}
DEFAULT_WRITE_PATH = "blob-4k-mmap"


def _open_options(variant: str = DEFAULT_WRITE_PATH, statistics: bool = False) -> rocksdict.Options:
    """The RocksDB options of a log directory; `variant` names one of WRITE_PATH_VARIANTS (the
    benchmark compares them, the broker uses the default). See docs/PERFORMANCE.md."""
    options = WRITE_PATH_VARIANTS[variant]()
    if statistics:
        options.enable_statistics()
    return options


class RocksDBLog:
    """One partition's log inside a shared RocksDB. Created by LogManager, not directly."""

    def __init__(self, db: rocksdict.Rdict, number: int, config: LogConfig,
                 tail_budget: TailBudget | None = None, new_in: rocksdict.WriteBatch | None = None) -> None:
        """`new_in`: the number was just allocated (nothing stored under it); the initial state is
        put into that batch, which the caller writes (LogManager.get_or_create_many)."""
        self._db = db
        self._number = number
        self._config = config
        self._sync_options = rocksdict.WriteOptions()
        self._sync_options.sync = True
        self._unflushed_records = 0
        self._last_flush_ms = _monotonic_ms()
        self._closed = False
        # Bumped by every change that removes or rewrites stored batches other than an append (truncation,
        # retention, DeleteRecords, compaction): a compaction planned before it is not applied.
        self._generation = 0
        # The batches of the last append, served by `read` from memory (storage/tail.py); valid while
        # `_generation` is `_tail_generation` (an append never bumps it, everything else that changes
        # stored batches does).
        self._tail: Sequence[tuple[BatchHeader, bytes]] = ()
        self._tail_generation = -1
        self._tail_budget = tail_budget if tail_budget is not None else TailBudget()
        self._load(new_in)

    # Loading and persistence helpers.
    def _meta(self, name: bytes) -> bytes | None:
        value = self._db.get(keys.meta_key(self._number, name))
        return value if value is None else bytes(value)

    def _load(self, new_in: rocksdict.WriteBatch | None = None) -> None:
        end = self._meta(_META_END) if new_in is None else None
        if end is None:  # a new partition: write its initial state
            self._segments = [Segment(0)]
            self._epochs = EpochCache()
            self._producers = ProducerStateTable()
            self._txns = TxnIndex()
            self._log_start_offset = self._log_end_offset = self._high_watermark = self._cleaner_offset = 0
            batch = rocksdict.WriteBatch(raw_mode=True) if new_in is None else new_in
            self._put_offsets(batch)
            batch.put(keys.partition_key(self._number, keys.SEGMENT, 0), encode_segment(self._segments[0]))
            if new_in is None:
                self._db.write(batch)
            return
        self._log_end_offset = keys.decode_u64(end)
        self._log_start_offset = keys.decode_u64(self._meta(_META_START) or b"")
        self._high_watermark = keys.decode_u64(self._meta(_META_HW) or b"")
        self._cleaner_offset = keys.decode_u64(self._meta(_META_CLEANER) or b"")
        self._epochs = EpochCache.decode(self._meta(_META_EPOCHS))
        self._segments = [decode_segment(keys.decode_offset(k), v) for k, v in self._scan(keys.SEGMENT)]
        self._producers = ProducerStateTable(
            {keys.decode_producer_id(k): ProducerEntry.decode(v) for k, v in self._scan(keys.PRODUCER)}
        )
        self._txns = TxnIndex.decode(self._meta(_META_TXN))
        assert self._segments, "a stored partition always has an active segment"
        assert self._log_start_offset <= self._high_watermark <= self._log_end_offset

    def _scan(self, kind: bytes, start: int = 0, end: int = keys.OFFSET_MAX) -> Iterator[tuple[bytes, bytes]]:
        """Keys and values of one kind in [start, end), through a bounded iterator."""
        lower, upper = keys.kind_range(self._number, kind, start, end)
        options = rocksdict.ReadOptions()
        options.set_iterate_upper_bound(upper)
        iterator = self._db.iter(options)
        iterator.seek(lower)
        while iterator.valid():
            yield iterator.key(), iterator.value()
            iterator.next()

    def _get_required(self, key: bytes) -> bytes:
        """A value that must exist (an index entry's batch, say); its absence is corruption."""
        value = self._db.get(key)
        if value is None:
            raise LogError(f"missing key {key.hex()} in log directory", ErrorCode.kafka_storage_error)
        return bytes(value)

    def _get_many(self, wanted: list[bytes]) -> list[bytes]:
        """One multi-get; every key must exist."""
        values = self._db.get(list[str | int | float | bytes | bool](wanted))
        if values is None or any(value is None for value in values):
            raise LogError("batch index entry without its batch", ErrorCode.kafka_storage_error)
        return [value for value in values if value is not None]

    def _put_offsets(self, batch: rocksdict.WriteBatch) -> None:
        number = self._number
        batch.put(keys.meta_key(number, _META_END), keys.encode_u64(self._log_end_offset))
        batch.put(keys.meta_key(number, _META_START), keys.encode_u64(self._log_start_offset))
        batch.put(keys.meta_key(number, _META_HW), keys.encode_u64(self._high_watermark))
        batch.put(keys.meta_key(number, _META_CLEANER), keys.encode_u64(self._cleaner_offset))
        batch.put(keys.meta_key(number, _META_EPOCHS), self._epochs.encode())

    def _put_producers(self, batch: rocksdict.WriteBatch, producer_ids: set[int]) -> None:
        for producer_id in producer_ids:
            entry = self._producers.get(producer_id)
            key = keys.producer_key(self._number, producer_id)
            if entry is None:
                batch.delete(key)
            else:
                batch.put(key, entry.encode())

    def _put_segment(self, batch: rocksdict.WriteBatch, segment: Segment) -> None:
        batch.put(keys.partition_key(self._number, keys.SEGMENT, segment.base_offset), encode_segment(segment))

    def _delete_kind(self, batch: rocksdict.WriteBatch, kind: bytes, start: int, end: int = keys.OFFSET_MAX) -> None:
        lower, upper = keys.kind_range(self._number, kind, start, end)
        batch.delete_range(lower, upper)

    def _write(self, batch: rocksdict.WriteBatch, records_count: int = 0) -> None:
        """Write one WriteBatch and apply the flush policy (flush.messages / flush.ms).

        The WAL is written before `write` returns, so the data survives a process kill either way;
        a sync makes it survive an OS crash too. flush.messages=1 syncs this very write; otherwise
        the WAL is synced once flush.messages records or flush.ms (monotonic clock) have passed.
        """
        if self._closed:
            raise LogError("log is closed", ErrorCode.kafka_storage_error)
        if self._config.flush_messages == 1 and records_count > 0:
            self._db.write(batch, self._sync_options)
            self._unflushed_records = 0
            self._last_flush_ms = _monotonic_ms()
            return
        self._db.write(batch)
        if records_count == 0:
            return
        self._unflushed_records += records_count
        if (
            self._unflushed_records >= self._config.flush_messages
            or _monotonic_ms() - self._last_flush_ms >= self._config.flush_ms
        ):
            self.flush()

    # Offsets and configuration.
    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @property
    def config(self) -> LogConfig:
        return self._config

    def segments(self) -> list[Segment]:
        return list(self._segments)

    def update_config(self, config: LogConfig) -> None:
        """Takes effect at the next append, retention run or compaction."""
        self._config = config

    def set_high_watermark(self, high_watermark: int) -> None:
        """Checkpoint the high watermark, clamped to [log start, log end]. Not synced: after an OS
        crash it may come back lower, which is safe (Kafka's checkpoint behaves the same)."""
        clamped = min(max(high_watermark, self._log_start_offset), self._log_end_offset)
        if clamped == self._high_watermark:
            return
        self._high_watermark = clamped
        batch = rocksdict.WriteBatch(raw_mode=True)
        batch.put(keys.meta_key(self._number, _META_HW), keys.encode_u64(clamped))
        self._write(batch)

    # Appends.
    def append_as_leader(self, records: bytes, leader_epoch: int, now_ms: int,
                         compressed_checked: bool = False) -> AppendInfo:
        """Validate every batch, assign offsets from the log end, store all in one WriteBatch."""
        prepared = prepare_leader_append(
            records, leader_epoch, now_ms, self._config, self._log_end_offset, self._epochs.latest_epoch(),
            compressed_checked,
        )
        return self._apply(prepared, now_ms)

    def append_as_follower(self, records: bytes, now_ms: int | None = None) -> AppendInfo:
        """Store batches copied from the leader; they must start at the log end and be contiguous.

        Without `now_ms`, segment.ms is measured on the batches' own max timestamp.
        """
        prepared = prepare_follower_append(records, self._config, self._log_end_offset, self._epochs.latest_epoch())
        return self._apply(prepared, prepared.max_timestamp if now_ms is None else now_ms)

    def _apply(self, prepared: PreparedAppend, now_ms: int) -> AppendInfo:
        number = self._number
        segments = self._segments
        rolled = should_roll(segments[-1], prepared.size_bytes, now_ms, self._config)
        active = Segment(self._log_end_offset) if rolled else segments[-1]
        active = active.with_append(prepared.size_bytes, prepared.max_timestamp, now_ms)
        batch = rocksdict.WriteBatch(raw_mode=True)
        for header, body in prepared.batches:
            batch.put(keys.partition_key(number, keys.BATCH, header.base_offset), body)
            batch.put(
                keys.partition_key(number, keys.INDEX, header.base_offset),
                keys.index_value(header.last_offset, header.max_timestamp, header.size_bytes),
            )
        self._put_segment(batch, active)
        epochs = EpochCache(self._epochs.entries()) if prepared.epoch_starts else self._epochs
        for epoch, start_offset in prepared.epoch_starts:
            epochs.assign(epoch, start_offset)
        if prepared.epoch_starts:
            batch.put(keys.meta_key(number, _META_EPOCHS), epochs.encode())
        producers = ProducerStateTable(self._producers.entries())
        changed = producers.update(header for header, _ in prepared.batches)
        log_end_offset = prepared.batches[-1][0].next_offset
        batch.put(keys.meta_key(number, _META_END), keys.encode_u64(log_end_offset))
        saved_producers, self._producers = self._producers, producers
        self._put_producers(batch, changed)
        saved_txns = self._txns
        if self._txns.would_change(header for header, _ in prepared.batches):
            txns = self._txns.copy()
            if txns.update(prepared.batches):
                self._txns = txns
                batch.put(keys.meta_key(number, _META_TXN), txns.encode())
        try:
            self._write(batch, prepared.records_count)
        except BaseException:
            self._producers, self._txns = saved_producers, saved_txns
            raise
        if rolled:
            segments.append(active)
        else:
            segments[-1] = active
        self._epochs = epochs
        self._log_end_offset = log_end_offset
        if self._tail_budget.admit(self._number, self, prepared.size_bytes):
            self._tail, self._tail_generation = prepared.batches, self._generation
        else:
            self._tail = ()
        return AppendInfo(
            prepared.first_offset, prepared.last_offset, prepared.log_append_time_ms,
            tuple(header for header, _ in prepared.batches), prepared.size_bytes,
        )

    # Reads.
    def _check_readable(self, offset: int) -> None:
        if offset < self._log_start_offset or offset > self._log_end_offset:
            raise LogError(
                f"offset {offset} outside [{self._log_start_offset}, {self._log_end_offset}]",
                ErrorCode.offset_out_of_range,
            )

    def _index_iterator(self, offset: int) -> tuple[rocksdict.RdictIter, rocksdict.ReadOptions]:
        """An iterator over the batch index, positioned at the batch containing `offset` if any,
        else at the first batch after it.

        The ReadOptions is returned too and must outlive the iterator: RocksDB keeps a pointer to
        the bound, and a freed bound makes iteration stop at random places.
        """
        lower, upper = keys.kind_range(self._number, keys.INDEX)
        options = rocksdict.ReadOptions()
        options.set_iterate_upper_bound(upper)
        iterator = self._db.iter(options)
        iterator.seek_for_prev(keys.partition_key(self._number, keys.INDEX, offset))
        if not iterator.valid() or iterator.key() < lower:
            iterator.seek(lower)
        return iterator, options

    def read(self, offset: int, max_bytes: int, upper_bound: int, min_one: bool = True) -> ReadResult:
        """Whole batches from the one containing `offset`, up to `max_bytes` and below `upper_bound`
        (a batch is returned only if its last offset is below it). With `min_one` the first batch is
        returned even when it alone exceeds `max_bytes`, so a consumer can always progress.

        The small index entries choose the batches; their bodies are then fetched with one
        multi-get, so no body is read only to be thrown away.
        """
        self._check_readable(offset)
        first_offset = next_offset = offset
        if offset >= min(upper_bound, self._log_end_offset):
            return ReadResult(b"", first_offset, next_offset)
        if self._tail_generation == self._generation:
            found = read_tail(self._tail, offset, max_bytes, upper_bound, min_one)
            if found is not None:
                bodies, first_offset, next_offset = found
                if not bodies:
                    return ReadResult(b"", first_offset, next_offset)
                return ReadResult(bodies[0] if len(bodies) == 1 else b"".join(bodies), first_offset, next_offset)
        chosen: list[bytes] = []
        total = 0
        iterator, _options = self._index_iterator(offset)
        while iterator.valid():
            last_offset, _, size_bytes = keys.parse_index_value(iterator.value())
            if last_offset >= upper_bound:
                break
            if last_offset >= offset:
                if total + size_bytes > max_bytes and (chosen or not min_one):
                    break
                if not chosen:
                    first_offset = keys.decode_offset(iterator.key())
                chosen.append(iterator.key()[:-9] + keys.BATCH + iterator.key()[-8:])
                total += size_bytes
                next_offset = last_offset + 1
            iterator.next()
        if not chosen:
            return ReadResult(b"", first_offset, next_offset)
        bodies = self._get_many(chosen)
        return ReadResult(bodies[0] if len(bodies) == 1 else b"".join(bodies), first_offset, next_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """ListOffsets by time: the first record at or after the log start with timestamp >=
        `timestamp_ms`. Segments whose max timestamp is lower are skipped without reading; within
        a segment the index (not the batch bodies) is scanned; one batch is decoded at the end."""
        for body in self.timestamp_candidates(timestamp_ms):
            found = find_record_at_or_after(body, timestamp_ms, self._log_start_offset,
                                            decompressed_bytes_max(self._config.max_message_bytes))
            if found is not None:
                return found
        return None

    def timestamp_candidates(self, timestamp_ms: int) -> Iterator[bytes]:
        """The batch bodies that may hold the first record with timestamp >= `timestamp_ms`, lazily in
        offset order, read from a snapshot (the index, not the bodies, is scanned; segments whose max
        timestamp is lower are skipped). Decoding them is `find_record_at_or_after`'s job, which the broker
        runs off its event loop; consuming this iterator across awaits is safe (a snapshot)."""
        snapshot = self._db.snapshot()
        number, log_start = self._number, self._log_start_offset
        ends = [s.base_offset for s in self._segments[1:]] + [keys.OFFSET_MAX]
        segments = list(zip(self._segments, ends, strict=True))

        def bodies() -> Iterator[bytes]:
            for segment, end in segments:
                if segment.max_timestamp < timestamp_ms or end <= log_start:
                    continue
                lower, upper = keys.kind_range(number, keys.INDEX, segment.base_offset, end)
                options = rocksdict.ReadOptions()
                options.set_iterate_upper_bound(upper)
                iterator = snapshot.iter(options)
                iterator.seek(lower)
                while iterator.valid() and iterator.key() < upper:
                    last_offset, max_timestamp, _ = keys.parse_index_value(iterator.value())
                    if last_offset >= log_start and max_timestamp >= timestamp_ms:
                        try:
                            body = snapshot[keys.partition_key(number, keys.BATCH, keys.decode_offset(iterator.key()))]
                        except KeyError:
                            raise LogError("batch index entry without its batch",
                                           ErrorCode.kafka_storage_error) from None
                        yield bytes(body)
                    iterator.next()
        return bodies()

    # Epochs and producers.
    def latest_epoch(self) -> int:
        return self._epochs.latest_epoch()

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        return self._epochs.end_offset_for_epoch(epoch, self._log_end_offset)

    def epoch_entries(self) -> list[EpochEntry]:
        return self._epochs.entries()

    def check_producer_batch(
        self, producer_id: int, producer_epoch: int, base_sequence: int, last_sequence: int
    ) -> ProducerCheck:
        return self._producers.check(producer_id, producer_epoch, base_sequence, last_sequence)

    def expire_producers(self, now_ms: int, expiration_ms: int) -> int:
        """producer.id.expiration.ms: forget producers idle for `expiration_ms`; returns how many."""
        producers = ProducerStateTable(self._producers.entries())
        expired = producers.expire(now_ms, expiration_ms, keep=self.ongoing_transactions())
        if expired:
            batch = rocksdict.WriteBatch(raw_mode=True)
            self._producers = producers
            self._put_producers(batch, expired)
            self._write(batch)
        return len(expired)

    def producer_entries(self) -> dict[int, ProducerEntry]:
        return self._producers.entries()

    # Transactions.
    def first_unstable_offset(self) -> int | None:
        return self._txns.first_unstable_offset()

    def ongoing_transactions(self) -> dict[int, int]:
        return self._txns.ongoing()

    def aborted_transactions(self, start_offset: int, upper_offset: int) -> list[AbortedTxn]:
        return self._txns.aborted(start_offset, upper_offset)

    # Truncation and deletion.
    def _straddling_base(self, offset: int) -> int | None:
        """Base offset of the batch with base < offset <= last offset, if there is one."""
        if offset <= 0:
            return None
        iterator, _options = self._index_iterator(offset - 1)
        if not iterator.valid():
            return None
        base_offset = keys.decode_offset(iterator.key())
        last_offset = keys.parse_index_value(iterator.value())[0]
        return base_offset if base_offset < offset <= last_offset else None

    def truncate_to(self, offset: int) -> None:
        """Drop every batch with an offset >= `offset` (a batch straddling it goes whole).

        At or past the log end no data goes, but an epoch entry starting at the log end (recorded
        on election, nothing appended) does: it belongs to no leader's history (Kafka does the same).
        """
        if offset >= self._log_end_offset:
            epochs = EpochCache(self._epochs.entries())
            if epochs.truncate_from_end(self._log_end_offset):
                batch = rocksdict.WriteBatch(raw_mode=True)
                saved, self._epochs = self._epochs, epochs
                self._put_offsets(batch)
                try:
                    self._write(batch)
                except Exception:
                    self._epochs = saved
                    raise
            return
        straddling = self._straddling_base(offset)
        new_end = straddling if straddling is not None else offset
        if offset < self._log_start_offset or new_end < self._log_start_offset:
            self.truncate_fully_and_start_at(min(offset, self._log_start_offset))
            return
        segments = [s for s in self._segments if s.base_offset <= new_end] or [Segment(new_end)]
        active = segments[-1]
        kept = [keys.parse_index_value(v) for _, v in self._scan(keys.INDEX, active.base_offset, new_end)]
        segments[-1] = Segment(
            active.base_offset, sum(size for _, _, size in kept), active.created_ms,
            max((ts for _, ts, _ in kept), default=-1),
        )
        epochs = EpochCache(self._epochs.entries())
        epochs.truncate_from_end(new_end)
        producers = ProducerStateTable(self._producers.entries())
        changed = producers.truncate(new_end, self._headers_newest_first(new_end))
        batch = rocksdict.WriteBatch(raw_mode=True)
        txns = self._txns.copy()
        if txns.truncate(new_end):
            batch.put(keys.meta_key(self._number, _META_TXN), txns.encode())
        self._txns = txns
        for kind in (keys.BATCH, keys.INDEX):
            self._delete_kind(batch, kind, new_end)
        self._delete_kind(batch, keys.SEGMENT, active.base_offset + 1)
        self._put_segment(batch, segments[-1])
        self._segments, self._epochs, self._producers = segments, epochs, producers
        self._log_end_offset = new_end
        self._high_watermark = min(self._high_watermark, new_end)
        self._cleaner_offset = min(self._cleaner_offset, new_end)
        self._generation += 1
        self._put_offsets(batch)
        self._put_producers(batch, changed)
        self._write(batch)

    def _headers_newest_first(self, end_offset: int) -> Iterator[BatchHeader]:
        """Headers of the stored batches below `end_offset`, newest first (read lazily, one batch
        body per step, so the caller decides how far back to look)."""
        lower, upper = keys.kind_range(self._number, keys.INDEX, 0, end_offset)
        options = rocksdict.ReadOptions()
        options.set_iterate_upper_bound(upper)
        iterator = self._db.iter(options)
        iterator.seek_to_last()
        while iterator.valid() and iterator.key() >= lower:
            key = iterator.key()
            yield parse_header(self._get_required(key[:-9] + keys.BATCH + key[-8:]))
            iterator.prev()

    def assign_epoch(self, epoch: int, start_offset: int) -> bool:
        """Record that leader `epoch` starts at `start_offset` (a new leader does this on election,
        KAFKA-7415); durable before it returns. False when the cache already has a newer epoch."""
        epochs = EpochCache(self._epochs.entries())
        if not epochs.assign(epoch, start_offset):
            return False
        batch = rocksdict.WriteBatch(raw_mode=True)
        saved, self._epochs = self._epochs, epochs
        self._put_offsets(batch)
        try:
            self._write(batch)
        except Exception:
            self._epochs = saved
            raise
        return True

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop everything; the log restarts empty at `offset` (a follower far behind the leader's
        log start does this)."""
        assert offset >= 0, f"negative start offset {offset}"
        batch = rocksdict.WriteBatch(raw_mode=True)
        for kind in (keys.BATCH, keys.INDEX, keys.SEGMENT, keys.PRODUCER):
            self._delete_kind(batch, kind, 0)
        self._segments = [Segment(offset)]
        self._put_segment(batch, self._segments[0])
        self._epochs = EpochCache()
        self._producers = ProducerStateTable()
        self._txns = TxnIndex()
        batch.delete(keys.meta_key(self._number, _META_TXN))
        self._log_start_offset = self._log_end_offset = self._high_watermark = self._cleaner_offset = offset
        self._generation += 1
        self._put_offsets(batch)
        self._write(batch)

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: advance the log start to `offset` (<= high watermark); returns the new
        log start. Whole segments below it are deleted at once; the rest just becomes unreadable."""
        if offset > self._high_watermark or offset < 0:
            raise LogError(
                f"cannot delete before {offset}: high watermark is {self._high_watermark}", ErrorCode.offset_out_of_range
            )
        if offset > self._log_start_offset:
            count = select_segments_to_delete(self._segments, offset, self._high_watermark, 0, _NO_RETENTION)
            self._delete_leading_segments(count, offset)
        return self._log_start_offset

    def apply_retention(self, now_ms: int) -> int:
        """Delete closed segments past retention.ms / retention.bytes (or below the log start);
        returns how many. The broker calls this every log.retention.check.interval.ms."""
        count = select_segments_to_delete(
            self._segments, self._log_start_offset, self._high_watermark, now_ms, self._config
        )
        if count:
            self._delete_leading_segments(count, self._log_start_offset)
        return count

    def _delete_leading_segments(self, count: int, log_start_offset: int) -> None:
        """Delete `count` leading segments and set the log start to max(`log_start_offset`, the
        first kept segment's base), in one WriteBatch."""
        segments = self._segments[count:]
        assert segments, "the active segment is never deleted"
        new_start = max(log_start_offset, segments[0].base_offset)
        batch = rocksdict.WriteBatch(raw_mode=True)
        if count:
            for kind in (keys.BATCH, keys.INDEX, keys.SEGMENT):
                self._delete_kind(batch, kind, 0, segments[0].base_offset)
        epochs = EpochCache(self._epochs.entries())
        epochs.truncate_from_start(new_start)
        self._segments, self._epochs = segments, epochs
        self._log_start_offset = new_start
        self._generation += 1
        self._high_watermark = max(self._high_watermark, new_start)
        txns = self._txns.copy()
        if txns.drop_before(new_start):
            self._txns = txns
            batch.put(keys.meta_key(self._number, _META_TXN), txns.encode())
        self._put_offsets(batch)
        self._write(batch)

    # Compaction: a job planned off the event loop (CompactionJob.plan reads a RocksDB snapshot), applied
    # here in chunks, each only if nothing changed the closed range since the job was made.
    def compaction_job(self, now_ms: int) -> CompactionJob | None:
        """With cleanup.policy compact and new closed segments since the last pass: a job over the closed
        range, reading a snapshot of the database (safe from another thread)."""
        end = self._segments[-1].base_offset
        if not self._config.compact or end <= self._cleaner_offset or self._closed:
            return None
        start = self._segments[0].base_offset
        snapshot = self._db.snapshot()
        number = self._number

        def closed() -> Iterator[tuple[int, bytes]]:
            lower, upper = keys.kind_range(number, keys.BATCH, start, end)
            options = rocksdict.ReadOptions()
            options.set_iterate_upper_bound(upper)
            iterator = snapshot.iter(options)
            iterator.seek(lower)
            while iterator.valid() and iterator.key() < upper:
                yield keys.decode_offset(iterator.key()), bytes(iterator.value())
                iterator.next()

        return CompactionJob(self._generation, start, end, max(self._cleaner_offset, start), closed, now_ms,
                             self._config.delete_retention_ms, decompressed_bytes_max(self._config.max_message_bytes),
                             self._config.dedupe_bytes_max)

    def apply_compaction(self, job: CompactionJob, actions: Sequence[CompactionAction]) -> bool:
        """Write one chunk of the job's rewrites; False (nothing written) if the job is stale."""
        if job.generation != self._generation or self._closed:
            return False
        self.drop_tail()  # it lies in the active segment, which compaction never touches: only to be safe
        batch = rocksdict.WriteBatch(raw_mode=True)
        size_change: dict[int, int] = {}
        for action in actions:
            batch_key = keys.partition_key(self._number, keys.BATCH, action.base_offset)
            index_key = keys.partition_key(self._number, keys.INDEX, action.base_offset)
            old_size = keys.parse_index_value(self._get_required(index_key))[2]
            segment_index = self._segment_index(action.base_offset)
            new_size = 0 if action.batch is None else len(action.batch)
            size_change[segment_index] = size_change.get(segment_index, 0) + new_size - old_size
            if action.batch is None:
                batch.delete(batch_key)
                batch.delete(index_key)
                continue
            header = parse_header(action.batch)
            batch.put(batch_key, action.batch)
            batch.put(index_key, keys.index_value(header.last_offset, header.max_timestamp, header.size_bytes))
        segments = list(self._segments)
        for segment_index, change in size_change.items():
            old = segments[segment_index]
            segments[segment_index] = Segment(old.base_offset, old.size_bytes + change, old.created_ms, old.max_timestamp)
            self._put_segment(batch, segments[segment_index])
        self._segments = segments
        self._write(batch)
        return True

    def finish_compaction(self, job: CompactionJob, upto: int | None) -> bool:
        """The pass covered the closed range up to `upto` (None: to the job's end): the next pass starts
        there. False if the job is stale."""
        if job.generation != self._generation or self._closed:
            return False
        self._cleaner_offset = job.end if upto is None else upto
        self._generation += 1
        batch = rocksdict.WriteBatch(raw_mode=True)
        self._put_offsets(batch)
        self._write(batch)
        return True

    def maybe_compact(self, now_ms: int) -> int:
        """One compaction pass in the caller's thread (tests, tools). Returns batches rewritten or dropped.
        The broker runs the same job with the planning off its event loop (broker/offload.py)."""
        job = self.compaction_job(now_ms)
        if job is None:
            return 0
        cpass = job.plan()
        actions = list(cpass.actions())
        self.apply_compaction(job, actions)
        self.finish_compaction(job, cpass.upto)
        return len(actions)

    def _segment_index(self, offset: int) -> int:
        """Index of the segment holding `offset` (segments are few: a linear scan is fine)."""
        index = 0
        while index + 1 < len(self._segments) and self._segments[index + 1].base_offset <= offset:
            index += 1
        return index

    # Durability and lifecycle.
    def flush_due(self) -> bool:
        """Unsynced records older than flush.ms (the broker checks idle partitions with this)."""
        return self._unflushed_records > 0 and _monotonic_ms() - self._last_flush_ms >= self._config.flush_ms

    def flush(self) -> None:
        """Sync the RocksDB WAL (shared by every partition of this log directory)."""
        self._db.flush_wal(True)
        self._unflushed_records = 0
        self._last_flush_ms = _monotonic_ms()

    def drop_tail(self) -> None:
        """Forget the in-memory tail (TailBudget makes room for another log's)."""
        self._tail = ()

    def close(self) -> None:
        """Stop using the log; the LogManager owns (and closes) the database."""
        self._closed = True
        self.drop_tail()
        self._tail_budget.release(self._number)


class LogManager:
    """Owns the one RocksDB of a log directory and every partition log in it.

    A second process opening the same directory gets LogDirectoryInUseError with a one-line
    message (RocksDB's LOCK file is an fcntl lock, released by the kernel when the owner dies, so a
    crashed broker never leaves the directory stuck).
    """

    def __init__(self, log_dir: str, write_path: str = DEFAULT_WRITE_PATH, statistics: bool = False) -> None:
        os.makedirs(log_dir, exist_ok=True)
        self._log_dir = log_dir
        self._options = _open_options(write_path, statistics)
        try:
            self._db = rocksdict.Rdict(log_dir, self._options)
        except Exception as error:  # rocksdict raises a bare Exception carrying RocksDB's status
            text = str(error)
            if "lock" in text.lower():
                raise LogDirectoryInUseError(
                    f"log directory {log_dir} is in use by another process{_lock_holder_hint(log_dir)}"
                ) from error
            raise LogError(f"cannot open log directory {log_dir}: {text}", ErrorCode.kafka_storage_error) from error
        self._logs: dict[tuple[bytes, int], RocksDBLog] = {}
        self._tail_budget = TailBudget()
        self._write_pid_file()

    def _write_pid_file(self) -> None:
        """Only for the error message of a second opener: the lock itself is RocksDB's."""
        with open(os.path.join(self._log_dir, "brook.pid"), "w") as handle:
            handle.write(f"{os.getpid()}\n")

    @property
    def log_dir(self) -> str:
        return self._log_dir

    def _number_of(self, topic_id: bytes, partition: int) -> tuple[int, str] | None:
        value = self._db.get(keys.registry_key(topic_id, partition))
        if value is None:
            return None
        value = bytes(value)
        return keys.decode_u32(value), value[4:].decode()

    def get_or_create(self, topic_id: bytes, topic_name: str, partition: int, config: LogConfig) -> RocksDBLog:
        """Open (creating if needed) a partition's log. The config given replaces any earlier one."""
        log = self._logs.get((topic_id, partition))
        if log is not None:
            log.update_config(config)
            return log
        found = self._number_of(topic_id, partition)
        if found is None:
            next_value = self._db.get(keys.NEXT_NUMBER_KEY)
            number = keys.decode_u32(bytes(next_value)) if next_value is not None else 0
            batch = rocksdict.WriteBatch(raw_mode=True)
            batch.put(keys.NEXT_NUMBER_KEY, keys.encode_u32(number + 1))
            batch.put(keys.registry_key(topic_id, partition), keys.encode_u32(number) + topic_name.encode())
            self._db.write(batch)
        else:
            number = found[0]
        log = RocksDBLog(self._db, number, config, self._tail_budget)
        self._logs[(topic_id, partition)] = log
        return log

    def get_or_create_many(self, wanted: list[tuple[bytes, str, int, LogConfig]]) -> None:
        """`get_or_create` for many partitions at once (a metadata image that brings thousands): the
        new ones are registered and initialised in one WriteBatch, not two writes each. Afterwards
        `get_or_create` of each returns the open log."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        next_value = self._db.get(keys.NEXT_NUMBER_KEY)
        number = keys.decode_u32(bytes(next_value)) if next_value is not None else 0
        first = number
        created: dict[tuple[bytes, int], RocksDBLog] = {}
        for topic_id, topic_name, partition, config in wanted:
            key = (topic_id, partition)
            if key in self._logs or key in created:
                continue
            found = self._number_of(topic_id, partition)
            if found is not None:
                created[key] = RocksDBLog(self._db, found[0], config, self._tail_budget)
                continue
            batch.put(keys.registry_key(topic_id, partition), keys.encode_u32(number) + topic_name.encode())
            created[key] = RocksDBLog(self._db, number, config, self._tail_budget, new_in=batch)
            number += 1
        if number != first:
            batch.put(keys.NEXT_NUMBER_KEY, keys.encode_u32(number))
            self._db.write(batch)
        self._logs.update(created)

    def get(self, topic_id: bytes, partition: int) -> RocksDBLog | None:
        """The open log of a partition, or None if get_or_create was not called for it."""
        return self._logs.get((topic_id, partition))

    def partitions(self) -> list[tuple[bytes, str, int]]:
        """Every (topic id, topic name, partition) with a log on disk, for startup reconciliation."""
        prefix = keys.registry_prefix()
        options = rocksdict.ReadOptions()
        options.set_iterate_upper_bound(prefix[:-1] + bytes([prefix[-1] + 1]))
        iterator = self._db.iter(options)  # `options` stays alive until the loop ends
        iterator.seek(prefix)
        found: list[tuple[bytes, str, int]] = []
        while iterator.valid():
            key, value = bytes(iterator.key()), bytes(iterator.value())
            found.append((key[2:18], value[4:].decode(), keys.decode_u32(key, 18)))
            iterator.next()
        return found

    def delete(self, topic_id: bytes, partition: int) -> bool:
        """Delete a partition's log entirely (one delete_range); returns whether it existed."""
        found = self._number_of(topic_id, partition)
        log = self._logs.pop((topic_id, partition), None)
        if log is not None:
            log.close()
        if found is None:
            return False
        lower, upper = keys.partition_range(found[0])
        batch = rocksdict.WriteBatch(raw_mode=True)
        batch.delete_range(lower, upper)
        batch.delete(keys.registry_key(topic_id, partition))
        self._db.write(batch)
        return True

    def flush(self) -> None:
        self._db.flush_wal(True)

    def rocksdb_statistics(self) -> str:
        """RocksDB's statistics dump ("" unless opened with statistics=True); for benchmarks."""
        return self._options.get_statistics() or ""

    def rocksdb_property(self, name: str) -> str:
        """A RocksDB property such as "rocksdb.stats" ("" if unknown); for benchmarks."""
        return self._db.property_value(name) or ""

    def settle(self, seconds_max: float) -> None:
        """Flush the memtables and wait (up to `seconds_max`) for pending compactions; for
        benchmarks that count every byte an append eventually costs."""
        self._db.flush(True)
        deadline = time.monotonic() + seconds_max
        while time.monotonic() < deadline and (
            self._db.property_int_value("rocksdb.compaction-pending")
            or self._db.property_int_value("rocksdb.num-running-compactions")
            or self._db.property_int_value("rocksdb.num-running-flushes")
        ):
            time.sleep(0.05)

    def close(self) -> None:
        """Close every log and the database (releasing the directory lock)."""
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        self._db.close()


def _lock_holder_hint(log_dir: str) -> str:
    try:
        with open(os.path.join(log_dir, "brook.pid")) as handle:
            return f" (pid {int(handle.read().strip())}?)"
    except (OSError, ValueError):
        return ""
