"""One `__consumer_offsets` partition this broker leads: its loader, tailer and writer.

The coordinator (`coordinator.py`) keeps one `OffsetsPartition` per offsets partition it leads and
owns what the records mean; this module owns the log:

    loading   read the partition from its log start with `read_local`, decode every record and hand
              it to the coordinator's `apply` (requests answer COORDINATOR_LOAD_IN_PROGRESS meanwhile)
    loaded    one writer task appends the partition's records (offset commits, group metadata,
              tombstones) in order, batching whatever queued up while the previous append waited
              for acks=-1
    closed    on losing leadership: queued writes are answered NOT_COORDINATOR

`OffsetsPartitions` keeps one `OffsetsPartition` per partition this broker leads, following the
core's leadership callbacks and, because a callback may be missed, `reconcile` against the image;
a new leader epoch means a fresh load (another leader may have written in between).

`read_local` stops at the high watermark, and a new leader's high watermark can briefly trail
records the old leader acknowledged. So after the load a loaded partition keeps "tailing" its
log (`tail`, called on every coordinator tick), replaying records written by the previous leader,
until it reaches the first batch it wrote itself (everything from there on is already applied in
memory, in log order).

A bad record never stops a partition: a batch whose records cannot be decoded (say a CRC-valid
batch of garbage a client produced), a key of a version that does not exist or a value that does
not match its schema is skipped with one logged error, and the load goes on with the next record.
Only a failure to read the log at all fails the load (the coordinator then retries it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from broker.api import EARLIEST_TIMESTAMP, BrokerCore
from broker.groups._records import build_batch, iter_batches
from broker.groups.offsets import (
    GroupKey,
    GroupMetadataValue,
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    decode_group_value,
    decode_key,
    decode_offset_value,
)
from broker.groups.state import Group
from cluster.errors import ErrorCode
from cluster.limits import OFFSETS_WRITE_BATCH_BYTES_MAX

__all__ = [
    "OFFSETS_TOPIC",
    "Apply",
    "OffsetsPartition",
    "OffsetsPartitions",
    "WriteCallback",
    "map_produce_error",
]

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"

# Kafka's `offsets.commit.timeout.ms` default: how long an append waits for acks=-1.
OFFSETS_COMMIT_TIMEOUT_MS = 5000
# Kafka's `offsets.load.buffer.size` default: bytes per read while loading a partition.
LOAD_READ_BYTES_MAX = 5 * 1024 * 1024
# One append carries at most OFFSETS_WRITE_BATCH_BYTES_MAX bytes of queued records (cluster/limits.py);
# a single request larger than this still goes alone in one batch.
# Records queued per partition behind the append in flight; beyond it commits fail fast with
# COORDINATOR_NOT_AVAILABLE (retriable) instead of growing memory without bound.
WRITE_QUEUE_RECORDS_MAX = 100_000

# `apply(partition, key, value)`: one decoded record, in log order; value None is a tombstone.
Apply = Callable[["OffsetsPartition", OffsetKey | GroupKey, OffsetValue | GroupMetadataValue | None], None]
# `on_done(error, base_offset)` of an append, run in log order before its future resolves.
WriteCallback = Callable[[ErrorCode, int], None]


def map_produce_error(code: ErrorCode) -> ErrorCode:
    """Kafka `GroupMetadataManager` mapping of an append error to what group clients understand."""
    if code in (ErrorCode.unknown_topic_or_partition, ErrorCode.not_enough_replicas,
                ErrorCode.not_enough_replicas_after_append, ErrorCode.request_timed_out):
        return ErrorCode.coordinator_not_available
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if code in (ErrorCode.message_too_large, ErrorCode.record_list_too_large, ErrorCode.invalid_fetch_size):
        return ErrorCode.invalid_commit_offset_size
    return code


@dataclass(slots=True)
class _Write:
    records: list[tuple[bytes, bytes | None]]
    size: int
    on_done: WriteCallback | None
    future: asyncio.Future[ErrorCode]
    producer: tuple[int, int] | None = None  # (producer id, epoch): a transactional offset commit


class OffsetsPartition:
    """The groups hashed to one offsets partition, and that partition's log I/O."""

    def __init__(self, core: BrokerCore, index: int, leader_epoch: int, apply: Apply, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.core = core
        self.index = index
        self.leader_epoch = leader_epoch
        self.groups: dict[str, Group] = {}  # the coordinator's, kept here per partition
        self.loading = True
        self.closed = False
        self.next_offset = 0  # next log offset to replay
        self.first_own_offset: int | None = None  # base offset of the first batch this leader appended
        self._apply = apply
        self._wall_clock = wall_clock
        self._queue: list[_Write] = []
        self._queued_records = 0
        self._writer: asyncio.Task[None] | None = None
        self._loader: asyncio.Task[None] | None = None
        # Transactional offset commits (TxnOffsetCommit) not yet ended by a marker, per producer id,
        # in log order: applied on a COMMIT marker, dropped on ABORT (Kafka's pendingTransactionalOffsetCommits).
        self.txn_pending: dict[int, list[tuple[OffsetKey, OffsetValue | None]]] = {}

    @property
    def name(self) -> str:
        return f"{OFFSETS_TOPIC}-{self.index}"

    @property
    def tailing(self) -> bool:
        return self.first_own_offset is None or self.next_offset < self.first_own_offset

    # -- loading and tailing --------------------------------------------------------------------

    def start_loading(self, on_failed: Callable[[OffsetsPartition], None]) -> None:
        """Load in a task; if the log cannot be read, log it and call `on_failed` (to retry later)."""

        async def run() -> None:
            try:
                await self.load()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("loading %s failed; will retry", self.name)
                on_failed(self)

        self._loader = asyncio.get_running_loop().create_task(run(), name=f"group-load-{self.index}")

    async def load(self) -> None:
        """Replay the partition from its log start; `loading` turns False at the end."""
        started = time.monotonic()
        start = self.core.list_offsets(OFFSETS_TOPIC, self.index, EARLIEST_TIMESTAMP)
        self.next_offset = max(start.offset, 0) if start.error == ErrorCode.none else 0
        while not self.closed and self._read_and_replay(None):
            await asyncio.sleep(0)  # let requests for other partitions run
        if self.closed:
            return
        self.loading = False
        log.info("loaded %s: %d groups up to offset %d in %.0f ms", self.name, len(self.groups),
                 self.next_offset, (time.monotonic() - started) * 1000)

    def tail(self) -> None:
        """Replay what the previous leader wrote that became readable since the load."""
        if self.loading or self.closed or not self.tailing:
            return
        try:
            while self._read_and_replay(self.first_own_offset):
                pass
        except Exception:
            log.exception("tailing %s failed", self.name)

    def _read_and_replay(self, stop_offset: int | None) -> bool:
        """Replay one read from `next_offset`; False when nothing more is readable."""
        data, next_offset = self.core.read_local(OFFSETS_TOPIC, self.index, self.next_offset, LOAD_READ_BYTES_MAX)
        if not data:
            return False
        last = -1
        for batch in iter_batches(data, skip_bad=True):
            if stop_offset is not None and batch.base_offset >= stop_offset:
                self.next_offset = stop_offset
                return False
            last = batch.last_offset
            if batch.error is not None:
                if batch.last_offset >= self.next_offset:
                    log.error("skipping the undecodable batch at offsets %d-%d of %s: %s", batch.base_offset,
                              batch.last_offset, self.name, batch.error)
                continue
            if batch.commit is not None:
                if batch.base_offset >= self.next_offset:
                    self.end_txn(batch.producer_id, batch.commit)
                continue
            for record in batch.records:
                if record.offset < self.next_offset:
                    continue
                if stop_offset is not None and record.offset >= stop_offset:
                    self.next_offset = stop_offset
                    return False
                self._replay(record.offset, record.key, record.value,
                             batch.producer_id if batch.transactional else None)
        if last >= self.next_offset:
            self.next_offset = last + 1
        elif next_offset > self.next_offset:
            self.next_offset = next_offset
        else:
            return False
        return True

    def end_txn(self, producer_id: int, commit: bool) -> None:
        """A transaction marker of `producer_id`: its pending offset commits become committed offsets
        (COMMIT, in log order) or are dropped (ABORT)."""
        pending = self.txn_pending.pop(producer_id, [])
        if not commit:
            return
        for key, value in pending:
            try:
                self._apply(self, key, value)
            except Exception:
                log.exception("applying a transactional offset commit to %s failed", self.name)

    def pending_txn_keys(self, group_id: str) -> set[tuple[str, int]]:
        """(topic, partition)s of `group_id` with a transactional commit not yet ended."""
        return {(key.topic, key.partition) for pending in self.txn_pending.values()
                for key, _ in pending if key.group == group_id}

    def _replay(self, offset: int, key_bytes: bytes | None, value_bytes: bytes | None,
                producer_id: int | None = None) -> None:
        """Decode one record and apply it; a bad record is skipped with one logged error. A record of
        a transactional batch (`producer_id`) waits for its transaction's marker."""
        value: OffsetValue | GroupMetadataValue | None = None
        try:
            if key_bytes is None:
                raise RecordFormatError("record without a key")
            key = decode_key(key_bytes)
            if key is None:
                return  # another coordinator's record type (transactions, share groups)
            if value_bytes is not None:
                value = decode_offset_value(value_bytes) if isinstance(key, OffsetKey) \
                    else decode_group_value(value_bytes)
        except (RecordFormatError, UnicodeDecodeError) as error:
            log.error("skipping the bad record at offset %d of %s: %s", offset, self.name, error)
            return
        if producer_id is not None and isinstance(key, OffsetKey):
            assert value is None or isinstance(value, OffsetValue)
            self.txn_pending.setdefault(producer_id, []).append((key, value))
            return
        try:
            self._apply(self, key, value)
        except Exception:
            log.exception("skipping the record at offset %d of %s: applying it failed", offset, self.name)

    # -- writing ------------------------------------------------------------------------------------

    def append(self, records: Sequence[tuple[bytes, bytes | None]],
               on_done: WriteCallback | None = None,
               producer: tuple[int, int] | None = None) -> asyncio.Future[ErrorCode]:
        """Queue records for the partition's writer; the future resolves after acks=-1.

        `on_done(error, base_offset)` runs first, in log order, so in-memory state follows the log.
        With `producer` (id, epoch) the records go alone in one transactional batch.
        """
        future: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        if self.closed:
            future.set_result(ErrorCode.not_coordinator)
            return future
        if self._queued_records + len(records) > WRITE_QUEUE_RECORDS_MAX:
            future.set_result(ErrorCode.coordinator_not_available)
            return future
        size = sum(len(k) + len(v or b"") + 16 for k, v in records)
        self._queue.append(_Write(list(records), size, on_done, future, producer))
        self._queued_records += len(records)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_loop(),
                                                                  name=f"group-write-{self.index}")
        return future

    async def _write_loop(self) -> None:
        while self._queue and not self.closed:
            writes: list[_Write] = []
            size = 0
            while self._queue and (not writes or size + self._queue[0].size <= OFFSETS_WRITE_BATCH_BYTES_MAX):
                if writes and (writes[0].producer is not None or self._queue[0].producer is not None):
                    break  # a transactional commit is a batch of its own producer
                write = self._queue.pop(0)
                writes.append(write)
                size += write.size
            self._queued_records -= sum(len(w.records) for w in writes)
            records = [record for write in writes for record in write.records]
            try:
                result = await self.core.produce(OFFSETS_TOPIC, self.index,
                                                 build_batch(records, int(self._wall_clock() * 1000),
                                                             writes[0].producer), -1,
                                                 OFFSETS_COMMIT_TIMEOUT_MS)
                error, base_offset = map_produce_error(result.error), result.base_offset
            except asyncio.CancelledError:
                for write in writes:  # stopping: never leave a commit waiting forever
                    if not write.future.done():
                        write.future.set_result(ErrorCode.not_coordinator)
                raise
            except Exception:
                log.exception("append to %s failed", self.name)
                error, base_offset = ErrorCode.coordinator_not_available, -1
            if error == ErrorCode.none and not self.closed and self.first_own_offset is None:
                self.first_own_offset = base_offset
            offset = base_offset
            for write in writes:
                if write.on_done is not None and not self.closed:
                    try:
                        write.on_done(error, offset)
                    except Exception:
                        log.exception("applying an append to %s failed", self.name)
                offset += len(write.records)
                if not write.future.done():
                    write.future.set_result(error if not self.closed else ErrorCode.not_coordinator)

    # -- closing ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Leadership is gone: stop loading, answer queued writes NOT_COORDINATOR.

        An append already in flight finishes (its callers then see NOT_COORDINATOR); `stop` cancels it.
        """
        self.closed = True
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
        for write in self._queue:
            if not write.future.done():
                write.future.set_result(ErrorCode.not_coordinator)
        self._queue.clear()

    def stop(self) -> asyncio.Task[None] | None:
        """Close and cancel the writer; returns its task for the caller to await."""
        self.close()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            return self._writer
        return None


class OffsetsPartitions:
    """The offsets partitions this broker leads: loaded on gaining leadership, closed on losing it.

    `on_unload(partition)` runs after a partition is closed, for the owner to shut its groups down.
    A load that cannot read the log unloads the partition; the next `reconcile` loads it again.
    """

    def __init__(self, core: BrokerCore, apply: Apply, on_unload: Callable[[OffsetsPartition], None], *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.core = core
        self._apply = apply
        self._on_unload = on_unload
        self._wall_clock = wall_clock
        self._by_index: dict[int, OffsetsPartition] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listening = False

    def get(self, index: int) -> OffsetsPartition | None:
        return self._by_index.get(index)

    def all(self) -> list[OffsetsPartition]:
        return list(self._by_index.values())

    def start(self) -> None:
        """Follow leadership from now on (call on the event loop)."""
        self._loop = asyncio.get_running_loop()
        if not self._listening:
            self.core.add_leadership_listener(self._on_leadership_change)
            self._listening = True
        self.reconcile()

    def stop(self) -> list[asyncio.Task[None]]:
        """Unload every partition; returns the cancelled writer tasks for the caller to await."""
        writers = []
        for part in self.all():
            self.unload(part.index)
            writer = part.stop()
            if writer is not None:
                writers.append(writer)
        return writers

    def _on_leadership_change(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        if topic != OFFSETS_TOPIC or self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._apply_leadership(partition, is_leader, leader_epoch)
        else:
            self._loop.call_soon_threadsafe(self._apply_leadership, partition, is_leader, leader_epoch)

    def _apply_leadership(self, index: int, is_leader: bool, leader_epoch: int) -> None:
        current = self._by_index.get(index)
        if not is_leader:
            if current is not None:
                self.unload(index)
            return
        if current is not None and current.leader_epoch == leader_epoch:
            return
        if current is not None:
            self.unload(index)  # a new epoch: another leader may have written in between
        self._load(index, leader_epoch)

    def reconcile(self) -> None:
        """Make the loaded partitions match what this broker leads (callbacks may be missed)."""
        topic = self.core.image().topic_by_name(OFFSETS_TOPIC)
        led: dict[int, int] = {}
        if topic is not None:
            for index, registration in topic.partitions.items():
                if self.core.is_leader(OFFSETS_TOPIC, index):
                    led[index] = registration.leader_epoch
        for index in [i for i in self._by_index if i not in led]:
            self.unload(index)
        for index, epoch in led.items():
            if index not in self._by_index:
                self._load(index, epoch)

    def _load(self, index: int, leader_epoch: int) -> None:
        part = OffsetsPartition(self.core, index, leader_epoch, self._apply, wall_clock=self._wall_clock)
        self._by_index[index] = part
        part.start_loading(self._load_failed)

    def _load_failed(self, part: OffsetsPartition) -> None:
        if self._by_index.get(part.index) is part:
            self.unload(part.index)

    def unload(self, index: int) -> None:
        part = self._by_index.pop(index, None)
        if part is None:
            return
        part.close()
        self._on_unload(part)
        log.info("unloaded %s (%d groups)", part.name, len(part.groups))
