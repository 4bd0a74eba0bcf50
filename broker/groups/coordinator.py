"""The group coordinator's I/O shell: Kafka group APIs over the pure state machine in `state.py`.

Placement: the coordinator of group G is the leader of partition
`java_abs(java_string_hashcode(G)) % partitions(__consumer_offsets)`, exactly Kafka's
`Utils.abs(groupId.hashCode()) % groupMetadataTopicPartitionCount`, so a group lands on the same
partition number as in Kafka.

Per `__consumer_offsets` partition this broker leads there is one `_OffsetsPartition`:

    loading   read the partition from its log start with `read_local`, replay every record
              (requests answer COORDINATOR_LOAD_IN_PROGRESS meanwhile)
    loaded    serve its groups from memory; one writer task appends the partition's records
              (offset commits, group metadata, tombstones) in order, batching whatever queued up
              while the previous append waited for acks=-1
    unloaded  on losing leadership: every group goes Dead, parked requests get NOT_COORDINATOR

`read_local` stops at the high watermark, and a new leader's high watermark can briefly trail
records the old leader acknowledged. So after the load a loaded partition keeps "tailing" its
log on every tick, replaying records written by the previous leader, until it reaches the first
batch it wrote itself (everything from there on is already applied in memory, in log order).

A periodic task (every `tick_interval_ms`) reconciles loaded partitions with leadership, tails,
calls `Group.tick` (session expiry, rebalance deadlines), drops empty groups and expires old
offsets of empty groups (`offsets.retention.minutes`). JoinGroup and SyncGroup requests that must
wait are futures answered from the group's effects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kio.index import load_payload_module
from kio.static.constants import EntityType

from broker.api import EARLIEST_TIMESTAMP, BrokerCore
from broker.groups._records import RecordsError, build_batch, iter_batches
from broker.groups.offsets import (
    GroupKey,
    OffsetKey,
    OffsetValue,
    RecordFormatError,
    decode_group_value,
    decode_key,
    decode_offset_value,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
)
from broker.groups.state import Group, GroupState, JoinResult, SyncResult
from cluster.errors import ErrorCode

__all__ = [
    "OFFSETS_TOPIC",
    "SUPPORTED_VERSIONS",
    "GroupCoordinator",
    "RequestContext",
    "java_string_hashcode",
    "partition_for",
]

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"

FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, OFFSET_COMMIT, OFFSET_FETCH = 15, 16, 8, 9
DELETE_GROUPS, OFFSET_DELETE = 42, 47

# Version ranges served, each checked against the kio schema classes (tests pin them). Lower ends
# are kio's lowest (kio has no OffsetCommit v0-1 or OffsetFetch v0). Upper ends stop before
# versions that need the KIP-848 protocol or topic ids (OffsetCommit v10, OffsetFetch v10),
# share groups (FindCoordinator v6) or error messages we do not produce yet (DescribeGroups v6).
SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    FIND_COORDINATOR: (0, 5),
    JOIN_GROUP: (0, 9),
    HEARTBEAT: (0, 4),
    LEAVE_GROUP: (0, 5),
    SYNC_GROUP: (0, 5),
    DESCRIBE_GROUPS: (0, 5),
    LIST_GROUPS: (0, 5),
    OFFSET_COMMIT: (2, 9),
    OFFSET_FETCH: (1, 9),
    DELETE_GROUPS: (0, 2),
    OFFSET_DELETE: (0, 0),
}

# Kafka's `offset.metadata.max.bytes` default.
OFFSET_METADATA_BYTES_MAX = 4096
# Kafka's `offsets.commit.timeout.ms` default: how long an append waits for acks=-1.
OFFSETS_COMMIT_TIMEOUT_MS = 5000
# Kafka's `offsets.load.buffer.size` default: bytes per read while loading a partition.
LOAD_READ_BYTES_MAX = 5 * 1024 * 1024
# One append carries at most this many bytes of queued records (below message.max.bytes ~1 MiB);
# a single request larger than this still goes alone in one batch.
WRITE_BATCH_BYTES_MAX = 512 * 1024
# Records queued per partition behind the append in flight; beyond it commits fail fast with
# COORDINATOR_NOT_AVAILABLE (retriable) instead of growing memory without bound.
WRITE_QUEUE_RECORDS_MAX = 100_000
# How often expired offsets of empty groups are looked for.
OFFSETS_RETENTION_CHECK_MS = 60_000
# Slack added to a parked JoinGroup/SyncGroup wait beyond the group's own deadlines.
PARKED_SLACK_MS = 5000

_ZERO = datetime.timedelta(0)
_AUTHORIZED_OPERATIONS_OMITTED = -(2**31)

Handler = Callable[..., Awaitable[Any]]


def java_string_hashcode(text: str) -> int:
    """Java's `String.hashCode()` (over UTF-16 code units, int32 wrap-around)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, partition_count: int) -> int:
    """Kafka `Utils.abs(groupId.hashCode()) % partitionCount` (`Utils.abs(MIN_VALUE)` is 0)."""
    h = java_string_hashcode(group_id)
    return (0 if h == -(2**31) else abs(h)) % partition_count


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who sent a request: the listener passes it as the third handler argument when it can."""

    client_id: str = ""
    client_host: str = ""


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


def _ms(value: datetime.timedelta | int) -> int:
    if isinstance(value, datetime.timedelta):
        return int(value / datetime.timedelta(milliseconds=1))
    return int(value)


def _make(cls: type, **values: Any) -> Any:
    """Build a kio dataclass from the subset of `values` that this version has."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def _schema(api_key: int, version: int, *names: str) -> Any:
    module = load_payload_module(api_key, version, EntityType.response)
    for name in names:
        cls = getattr(module, name, None)
        if cls is not None:
            return cls
    raise LookupError(f"kio has none of {names} for api {api_key} v{version}")


# -- per-partition state -------------------------------------------------------------------------

WriteCallback = Callable[[ErrorCode, int], None]


@dataclass(slots=True)
class _Write:
    records: list[tuple[bytes, bytes | None]]
    size: int
    on_done: WriteCallback | None
    future: asyncio.Future[ErrorCode]


@dataclass(slots=True)
class _OffsetsPartition:
    index: int
    leader_epoch: int
    groups: dict[str, Group] = field(default_factory=dict)
    loading: bool = True
    next_offset: int = 0  # next log offset to replay
    first_own_offset: int | None = None  # base offset of the first batch this leader appended
    queue: list[_Write] = field(default_factory=list)
    queued_records: int = 0
    writer: asyncio.Task[None] | None = None
    loader: asyncio.Task[None] | None = None
    closed: bool = False

    @property
    def tailing(self) -> bool:
        return self.first_own_offset is None or self.next_offset < self.first_own_offset


class GroupCoordinator:
    """Consumer groups (classic protocol) and committed offsets for the partitions this broker leads."""

    def __init__(self, core: BrokerCore, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, tick_interval_ms: int = 200) -> None:
        self.core = core
        self._clock = clock
        self._wall_clock = wall_clock
        self.tick_interval_ms = tick_interval_ms
        self._partitions: dict[int, _OffsetsPartition] = {}
        self._join_waiters: dict[tuple[str, str], asyncio.Future[JoinResult]] = {}
        self._sync_waiters: dict[tuple[str, str], asyncio.Future[SyncResult]] = {}
        self._tick_task: asyncio.Task[None] | None = None
        self._ensure_task: asyncio.Task[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_retention_check_ms = 0
        self._listening = False

    # -- lifecycle ------------------------------------------------------------------------------

    def handlers(self) -> dict[int, Handler]:
        return {
            FIND_COORDINATOR: self.handle_find_coordinator,
            JOIN_GROUP: self.handle_join_group,
            HEARTBEAT: self.handle_heartbeat,
            LEAVE_GROUP: self.handle_leave_group,
            SYNC_GROUP: self.handle_sync_group,
            DESCRIBE_GROUPS: self.handle_describe_groups,
            LIST_GROUPS: self.handle_list_groups,
            OFFSET_COMMIT: self.handle_offset_commit,
            OFFSET_FETCH: self.handle_offset_fetch,
            DELETE_GROUPS: self.handle_delete_groups,
            OFFSET_DELETE: self.handle_offset_delete,
        }

    def versions(self) -> dict[int, tuple[int, int]]:
        return dict(SUPPORTED_VERSIONS)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if not self._listening:
            self.core.add_leadership_listener(self._on_leadership_change)
            self._listening = True
        self.reconcile()
        if self._tick_task is None:
            self._tick_task = asyncio.create_task(self._run_ticks(), name="group-coordinator-tick")

    async def stop(self) -> None:
        tasks = [t for t in (self._tick_task, self._ensure_task) if t is not None]
        self._tick_task = self._ensure_task = None
        for task in tasks:
            task.cancel()
        for index in list(self._partitions):
            part = self._partitions[index]
            self._unload(index)
            if part.writer is not None and not part.writer.done():
                part.writer.cancel()
                tasks.append(part.writer)
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- config and time ------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _wall_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    def _config_int(self, name: str, default: int) -> int:
        try:
            value = self.core.server_config(name)
        except Exception:  # an unknown key in a fake or older core: Kafka's default
            return default
        try:
            return int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            return default

    def _new_group(self, group_id: str) -> Group:
        delay = self._config_int("group.initial.rebalance.delay.ms", 3000)
        return Group(group_id, self._now_ms(), initial_rebalance_delay_ms=delay)

    # -- leadership, loading, tailing -----------------------------------------------------------

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
        current = self._partitions.get(index)
        if not is_leader:
            if current is not None:
                self._unload(index)
            return
        if current is not None and current.leader_epoch == leader_epoch:
            return
        if current is not None:
            self._unload(index)  # a new epoch: another leader may have written in between
        self._load(index, leader_epoch)

    def reconcile(self) -> None:
        """Make the loaded partitions match what this broker leads (callbacks may be missed)."""
        topic = self.core.image().topic_by_name(OFFSETS_TOPIC)
        led: dict[int, int] = {}
        if topic is not None:
            for index, registration in topic.partitions.items():
                if self.core.is_leader(OFFSETS_TOPIC, index):
                    led[index] = registration.leader_epoch
        for index in [i for i in self._partitions if i not in led]:
            self._unload(index)
        for index, epoch in led.items():
            if index not in self._partitions:
                self._load(index, epoch)

    def _load(self, index: int, leader_epoch: int) -> None:
        part = _OffsetsPartition(index, leader_epoch)
        self._partitions[index] = part
        part.loader = asyncio.get_running_loop().create_task(self._load_partition(part),
                                                             name=f"group-load-{index}")

    async def _load_partition(self, part: _OffsetsPartition) -> None:
        started = time.monotonic()
        try:
            start = self.core.list_offsets(OFFSETS_TOPIC, part.index, EARLIEST_TIMESTAMP)
            part.next_offset = max(start.offset, 0) if start.error == ErrorCode.none else 0
            while not part.closed and self._read_and_replay(part, None):
                await asyncio.sleep(0)  # let requests for other partitions run
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("loading %s-%d failed; will retry", OFFSETS_TOPIC, part.index)
            if self._partitions.get(part.index) is part:
                self._unload(part.index)  # the next reconcile loads it again
            return
        if part.closed:
            return
        part.loading = False
        log.info("loaded %s-%d: %d groups up to offset %d in %.0f ms", OFFSETS_TOPIC, part.index,
                 len(part.groups), part.next_offset, (time.monotonic() - started) * 1000)

    def _read_and_replay(self, part: _OffsetsPartition, stop_offset: int | None) -> bool:
        """Replay one read from `part.next_offset`; False when nothing more is readable."""
        data, next_offset = self.core.read_local(OFFSETS_TOPIC, part.index, part.next_offset,
                                                 LOAD_READ_BYTES_MAX)
        if not data:
            return False
        now_ms = self._now_ms()
        last = -1
        for batch in iter_batches(data):
            last = batch.last_offset
            for record in batch.records:
                if record.offset < part.next_offset:
                    continue
                if stop_offset is not None and record.offset >= stop_offset:
                    part.next_offset = stop_offset
                    return False
                self._replay(part, record.key, record.value, now_ms)
        if last >= part.next_offset:
            part.next_offset = last + 1
        elif next_offset > part.next_offset:
            part.next_offset = next_offset
        else:
            return False
        return True

    def _replay(self, part: _OffsetsPartition, key_bytes: bytes | None, value: bytes | None,
                now_ms: int) -> None:
        if key_bytes is None:
            return
        try:
            key = decode_key(key_bytes)
            if isinstance(key, OffsetKey):
                group = part.groups.get(key.group)
                if value is None:
                    if group is not None:
                        group.offsets.pop((key.topic, key.partition), None)
                    return
                if group is None:
                    group = part.groups[key.group] = self._new_group(key.group)
                group.offsets[(key.topic, key.partition)] = decode_offset_value(value)
            elif isinstance(key, GroupKey):
                group = part.groups.get(key.group)
                if value is None:
                    if group is not None:
                        group.shutdown(now_ms, ErrorCode.coordinator_not_available)
                        self._flush(part, group)
                        offsets = group.offsets
                        del part.groups[key.group]
                        if offsets:  # offsets not tombstoned (yet) stay, under a fresh empty group
                            part.groups[key.group] = self._new_group(key.group)
                            part.groups[key.group].offsets = offsets
                    return
                if group is None:
                    group = part.groups[key.group] = self._new_group(key.group)
                if group.members and not part.loading:
                    return  # tailing: live membership here is newer than the old leader's record
                group.restore(now_ms, decode_group_value(value))
        except (RecordFormatError, UnicodeDecodeError) as error:
            log.warning("skipping a malformed record in %s-%d: %s", OFFSETS_TOPIC, part.index, error)

    def _unload(self, index: int) -> None:
        part = self._partitions.pop(index, None)
        if part is None:
            return
        part.closed = True
        if part.loader is not None and not part.loader.done():
            part.loader.cancel()
        now_ms = self._now_ms()
        for group in part.groups.values():
            group.shutdown(now_ms, ErrorCode.not_coordinator)
            self._flush(part, group)
        for write in part.queue:
            if not write.future.done():
                write.future.set_result(ErrorCode.not_coordinator)
        part.queue.clear()
        log.info("unloaded %s-%d (%d groups)", OFFSETS_TOPIC, index, len(part.groups))

    # -- writing ------------------------------------------------------------------------------------

    def _append(self, part: _OffsetsPartition, records: Sequence[tuple[bytes, bytes | None]],
                on_done: WriteCallback | None = None) -> asyncio.Future[ErrorCode]:
        """Queue records for the partition's writer; the future resolves after acks=-1.

        `on_done(error, base_offset)` runs first, in log order, so in-memory state follows the log.
        """
        future: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        if part.closed:
            future.set_result(ErrorCode.not_coordinator)
            return future
        if part.queued_records + len(records) > WRITE_QUEUE_RECORDS_MAX:
            future.set_result(ErrorCode.coordinator_not_available)
            return future
        size = sum(len(k) + len(v or b"") + 16 for k, v in records)
        part.queue.append(_Write(list(records), size, on_done, future))
        part.queued_records += len(records)
        if part.writer is None or part.writer.done():
            part.writer = asyncio.get_running_loop().create_task(self._write_loop(part),
                                                                 name=f"group-write-{part.index}")
        return future

    async def _write_loop(self, part: _OffsetsPartition) -> None:
        while part.queue and not part.closed:
            writes: list[_Write] = []
            size = 0
            while part.queue and (not writes or size + part.queue[0].size <= WRITE_BATCH_BYTES_MAX):
                write = part.queue.pop(0)
                writes.append(write)
                size += write.size
            part.queued_records -= sum(len(w.records) for w in writes)
            records = [record for write in writes for record in write.records]
            try:
                result = await self.core.produce(OFFSETS_TOPIC, part.index,
                                                 build_batch(records, self._wall_ms()), -1,
                                                 OFFSETS_COMMIT_TIMEOUT_MS)
                error, base_offset = map_produce_error(result.error), result.base_offset
            except asyncio.CancelledError:
                for write in writes:  # stopping: never leave a commit waiting forever
                    if not write.future.done():
                        write.future.set_result(ErrorCode.not_coordinator)
                raise
            except Exception:
                log.exception("append to %s-%d failed", OFFSETS_TOPIC, part.index)
                error, base_offset = ErrorCode.coordinator_not_available, -1
            if error == ErrorCode.none and not part.closed and part.first_own_offset is None:
                part.first_own_offset = base_offset
            offset = base_offset
            for write in writes:
                if write.on_done is not None and not part.closed:
                    try:
                        write.on_done(error, offset)
                    except Exception:
                        log.exception("applying an append to %s-%d failed", OFFSETS_TOPIC, part.index)
                offset += len(write.records)
                if not write.future.done():
                    write.future.set_result(error if not part.closed else ErrorCode.not_coordinator)

    def _store_group(self, part: _OffsetsPartition, group: Group) -> None:
        """Persist the group's metadata (best effort: offsets are the durable part)."""
        record = (encode_group_key(group.group_id), encode_group_value(group.to_metadata(self._wall_ms())))

        def done(error: ErrorCode, _offset: int) -> None:
            if error != ErrorCode.none:
                log.warning("storing group %r failed: %s", group.group_id, error.name)

        self._append(part, [record], done)

    # -- parked requests ----------------------------------------------------------------------------

    def _flush(self, part: _OffsetsPartition, group: Group) -> None:
        """Deliver a group's effects: answer parked requests, persist its metadata."""
        effects = group.take_effects()
        for member_id, join in effects.joins:
            future = self._join_waiters.pop((group.group_id, member_id), None)
            if future is not None and not future.done():
                future.set_result(join)
        for member_id, sync in effects.syncs:
            sync_future = self._sync_waiters.pop((group.group_id, member_id), None)
            if sync_future is not None and not sync_future.done():
                sync_future.set_result(sync)
        if effects.store_group and not part.closed and group.state is not GroupState.DEAD:
            self._store_group(part, group)

    async def _park(self, waiters: dict[tuple[str, str], asyncio.Future[Any]], key: tuple[str, str],
                    timeout_ms: int, on_timeout: Any, deliver: Callable[[], None]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        previous = waiters.get(key)
        if previous is not None and not previous.done():
            previous.set_result(on_timeout)  # a retried request replaces the one it abandoned
        waiters[key] = future
        deliver()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_ms / 1000)
        except TimeoutError:
            return on_timeout
        finally:
            if waiters.get(key) is future:
                del waiters[key]

    # -- locating groups ----------------------------------------------------------------------------

    def _partition_count(self) -> int | None:
        topic = self.core.image().topic_by_name(OFFSETS_TOPIC)
        if topic is None or not topic.partitions:
            return None
        return len(topic.partitions)

    def _locate(self, group_id: str) -> tuple[ErrorCode, _OffsetsPartition | None]:
        count = self._partition_count()
        if count is None:
            return ErrorCode.coordinator_not_available, None
        index = partition_for(group_id, count)
        part = self._partitions.get(index)
        if part is None or not self.core.is_leader(OFFSETS_TOPIC, index):
            return ErrorCode.not_coordinator, None
        if part.loading:
            return ErrorCode.coordinator_load_in_progress, None
        return ErrorCode.none, part

    # -- FindCoordinator ------------------------------------------------------------------------------

    async def handle_find_coordinator(self, request: Any, api_version: int, context: Any = None) -> Any:
        if api_version >= 4:
            keys = tuple(request.coordinator_keys)
        else:
            keys = (request.key,)
        key_type = getattr(request, "key_type", 0)
        answers = [self._find_one(key, key_type) for key in keys]
        if api_version >= 4:
            cls = _schema(FIND_COORDINATOR, api_version, "Coordinator")
            coordinators = tuple(
                _make(cls, key=key, node_id=node, host=host, port=port, error_code=error, error_message=message)
                for key, (error, message, node, host, port) in zip(keys, answers, strict=True))
            return _make(_schema(FIND_COORDINATOR, api_version, "FindCoordinatorResponse"),
                         throttle_time=_ZERO, coordinators=coordinators)
        error, message, node, host, port = answers[0]
        return _make(_schema(FIND_COORDINATOR, api_version, "FindCoordinatorResponse"), throttle_time=_ZERO,
                     error_code=error, error_message=message, node_id=node, host=host, port=port)

    def _find_one(self, key: str, key_type: int) -> tuple[ErrorCode, str | None, int, str, int]:
        if key_type != 0:
            return ErrorCode.invalid_request, "Brook coordinates consumer groups only (no transactions)", \
                -1, "", -1
        image = self.core.image()
        topic = image.topic_by_name(OFFSETS_TOPIC)
        if topic is None or not topic.partitions:
            self._ensure_offsets_topic()
            return ErrorCode.coordinator_not_available, "the offsets topic is being created", -1, "", -1
        registration = topic.partitions.get(partition_for(key, len(topic.partitions)))
        if registration is None or registration.leader < 0:
            return ErrorCode.coordinator_not_available, "the group's offsets partition has no leader", -1, "", -1
        address = self.core.advertised_kafka_address(registration.leader)
        if address is None:
            return ErrorCode.coordinator_not_available, "the coordinator's address is unknown", -1, "", -1
        return ErrorCode.none, None, registration.leader, address[0], address[1]

    def _ensure_offsets_topic(self) -> None:
        if self._ensure_task is not None and not self._ensure_task.done():
            return

        async def ensure() -> None:
            try:
                error = await self.core.ensure_topic(OFFSETS_TOPIC)
                if error != ErrorCode.none:
                    log.warning("creating %s: %s", OFFSETS_TOPIC, error.name)
            except Exception:
                log.exception("creating %s failed", OFFSETS_TOPIC)

        self._ensure_task = asyncio.get_running_loop().create_task(ensure(), name="ensure-offsets-topic")

    # -- JoinGroup / SyncGroup / Heartbeat / LeaveGroup ---------------------------------------------

    async def handle_join_group(self, request: Any, api_version: int, context: Any = None) -> Any:
        result = await self._join(request, api_version, context)
        cls = _schema(JOIN_GROUP, api_version, "JoinGroupResponse")
        member_cls = _schema(JOIN_GROUP, api_version, "JoinGroupResponseMember")
        nullable = api_version >= 7
        members = tuple(_make(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                              metadata=m.metadata) for m in result.members)
        return _make(cls, throttle_time=_ZERO, error_code=result.error, generation_id=result.generation_id,
                     protocol_type=result.protocol_type,
                     protocol_name=result.protocol_name if nullable else (result.protocol_name or ""),
                     leader=result.leader_id, skip_assignment=result.skip_assignment,
                     member_id=result.member_id, members=members)

    async def _join(self, request: Any, api_version: int, context: Any) -> JoinResult:
        group_id, member_id = request.group_id, request.member_id
        instance_id = getattr(request, "group_instance_id", None)
        session_ms = _ms(request.session_timeout)
        rebalance_ms = _ms(request.rebalance_timeout) if api_version >= 1 else session_ms
        if rebalance_ms < 0:
            rebalance_ms = session_ms
        if not group_id:
            return JoinResult(ErrorCode.invalid_group_id, member_id)
        error, part = self._locate(group_id)
        if part is None:
            return JoinResult(error, member_id)
        if not (self._config_int("group.min.session.timeout.ms", 6000) <= session_ms
                <= self._config_int("group.max.session.timeout.ms", 1_800_000)):
            return JoinResult(ErrorCode.invalid_session_timeout, member_id)
        group = part.groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.unknown_member_id, member_id)
            group = part.groups[group_id] = self._new_group(group_id)
        client_id = getattr(context, "client_id", "") or ""
        client_host = getattr(context, "client_host", "") or ""
        fresh = f"{instance_id or client_id or 'member'}-{uuid.uuid4()}"
        outcome = group.join(
            self._now_ms(), member_id=member_id, group_instance_id=instance_id, client_id=client_id,
            client_host=client_host, session_timeout_ms=session_ms, rebalance_timeout_ms=rebalance_ms,
            protocol_type=request.protocol_type,
            protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
            require_known_member_id=api_version >= 4, fresh_member_id=fresh)
        if outcome.reply is not None:
            self._flush(part, group)
            return outcome.reply
        timeout_ms = max(rebalance_ms, group.rebalance_deadline_ms - self._now_ms()) + PARKED_SLACK_MS
        return await self._park(self._join_waiters, (group_id, outcome.member_id), timeout_ms,
                                JoinResult(ErrorCode.rebalance_in_progress, outcome.member_id),
                                lambda: self._flush(part, group))

    async def handle_sync_group(self, request: Any, api_version: int, context: Any = None) -> Any:
        result = await self._sync(request, api_version)
        cls = _schema(SYNC_GROUP, api_version, "SyncGroupResponse")
        return _make(cls, throttle_time=_ZERO, error_code=result.error, protocol_type=result.protocol_type,
                     protocol_name=result.protocol_name, assignment=result.assignment)

    async def _sync(self, request: Any, api_version: int) -> SyncResult:
        group_id, member_id = request.group_id, request.member_id
        if not group_id:
            return SyncResult(ErrorCode.invalid_group_id)
        error, part = self._locate(group_id)
        if part is None:
            return SyncResult(error)
        group = part.groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.unknown_member_id)
        assignments = {a.member_id: bytes(a.assignment) for a in request.assignments}
        result = group.sync(self._now_ms(), member_id=member_id,
                            group_instance_id=getattr(request, "group_instance_id", None),
                            generation_id=request.generation_id,
                            protocol_type=getattr(request, "protocol_type", None),
                            protocol_name=getattr(request, "protocol_name", None), assignments=assignments)
        if result is not None:
            self._flush(part, group)
            return result
        member = group.members.get(member_id)
        timeout_ms = (member.rebalance_timeout_ms if member else 0) + PARKED_SLACK_MS
        return await self._park(self._sync_waiters, (group_id, member_id), timeout_ms,
                                SyncResult(ErrorCode.rebalance_in_progress), lambda: self._flush(part, group))

    async def handle_heartbeat(self, request: Any, api_version: int, context: Any = None) -> Any:
        error = self._heartbeat(request)
        return _make(_schema(HEARTBEAT, api_version, "HeartbeatResponse"), throttle_time=_ZERO, error_code=error)

    def _heartbeat(self, request: Any) -> ErrorCode:
        if not request.group_id:
            return ErrorCode.invalid_group_id
        error, part = self._locate(request.group_id)
        if part is None:
            return error
        group = part.groups.get(request.group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        error = group.heartbeat(self._now_ms(), member_id=request.member_id,
                                group_instance_id=getattr(request, "group_instance_id", None),
                                generation_id=request.generation_id)
        self._flush(part, group)
        return error

    async def handle_leave_group(self, request: Any, api_version: int, context: Any = None) -> Any:
        if api_version >= 3:
            leaving = [(m.member_id, m.group_instance_id) for m in request.members]
        else:
            leaving = [(request.member_id, None)]
        top, errors = self._leave(request.group_id, leaving)
        cls = _schema(LEAVE_GROUP, api_version, "LeaveGroupResponse")
        if api_version < 3:
            return _make(cls, throttle_time=_ZERO, error_code=top if top != ErrorCode.none else errors[0])
        member_cls = _schema(LEAVE_GROUP, api_version, "MemberResponse")
        members = tuple(_make(member_cls, member_id=mid, group_instance_id=iid, error_code=err)
                        for (mid, iid), err in zip(leaving, errors, strict=True))
        return _make(cls, throttle_time=_ZERO, error_code=top, members=members if top == ErrorCode.none else ())

    def _leave(self, group_id: str, leaving: list[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        error, part = self._locate(group_id)
        if part is None:
            return error, [error] * len(leaving)
        group = part.groups.get(group_id)
        if group is None:
            return ErrorCode.none, [ErrorCode.unknown_member_id] * len(leaving)
        errors = group.leave(self._now_ms(), leaving)
        self._flush(part, group)
        return ErrorCode.none, errors

    # -- OffsetCommit / OffsetFetch / OffsetDelete -------------------------------------------------

    async def handle_offset_commit(self, request: Any, api_version: int, context: Any = None) -> Any:
        errors = await self._commit(request)
        topic_cls = _schema(OFFSET_COMMIT, api_version, "OffsetCommitResponseTopic")
        partition_cls = _schema(OFFSET_COMMIT, api_version, "OffsetCommitResponsePartition")
        topics = tuple(
            _make(topic_cls, name=t.name, partitions=tuple(
                _make(partition_cls, partition_index=p.partition_index, error_code=errors[(t.name, p.partition_index)])
                for p in t.partitions))
            for t in request.topics)
        return _make(_schema(OFFSET_COMMIT, api_version, "OffsetCommitResponse"), throttle_time=_ZERO,
                     topics=topics)

    async def _commit(self, request: Any) -> dict[tuple[str, int], ErrorCode]:
        keys = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
        group_id = request.group_id
        generation = request.generation_id_or_member_epoch
        member_id = request.member_id
        instance_id = getattr(request, "group_instance_id", None)
        if not group_id:
            return dict.fromkeys(keys, ErrorCode.invalid_group_id)
        error, part = self._locate(group_id)
        if part is None:
            return dict.fromkeys(keys, error)
        group = part.groups.get(group_id)
        if group is None:
            if generation >= 0:
                return dict.fromkeys(keys, ErrorCode.illegal_generation)
            group = part.groups[group_id] = self._new_group(group_id)
        error = group.validate_offset_commit(member_id, instance_id, generation)
        if error != ErrorCode.none:
            return dict.fromkeys(keys, error)
        group.touch(self._now_ms(), member_id)
        results: dict[tuple[str, int], ErrorCode] = {}
        values: dict[tuple[str, int], OffsetValue] = {}
        image = self.core.image()
        wall_ms = self._wall_ms()
        for topic in request.topics:
            registration = image.topic_by_name(topic.name)
            for p in topic.partitions:
                key = (topic.name, p.partition_index)
                metadata = p.committed_metadata or ""
                if registration is None or p.partition_index not in registration.partitions:
                    results[key] = ErrorCode.unknown_topic_or_partition
                elif len(metadata.encode()) > OFFSET_METADATA_BYTES_MAX:
                    results[key] = ErrorCode.offset_metadata_too_large
                else:
                    values[key] = OffsetValue(p.committed_offset, getattr(p, "committed_leader_epoch", -1),
                                              metadata, wall_ms)
        if values:
            records = [(encode_offset_key(group_id, t, i), encode_offset_value(v)) for (t, i), v in values.items()]

            def apply(error: ErrorCode, _base_offset: int) -> None:
                if error == ErrorCode.none and group.state is not GroupState.DEAD:
                    group.offsets.update(values)

            error = await self._append(part, records, apply)
            results.update(dict.fromkeys(values, error))
        return results

    async def handle_offset_fetch(self, request: Any, api_version: int, context: Any = None) -> Any:
        if api_version >= 8:
            group_cls = _schema(OFFSET_FETCH, api_version, "OffsetFetchResponseGroup")
            groups = []
            for g in request.groups:
                topics = None if g.topics is None else [(t.name, tuple(t.partition_indexes)) for t in g.topics]
                error, found = self._fetch_offsets(g.group_id, topics)
                groups.append(_make(group_cls, group_id=g.group_id, error_code=error,
                                    topics=self._fetch_topics(api_version, found, error)))
            return _make(_schema(OFFSET_FETCH, api_version, "OffsetFetchResponse"), throttle_time=_ZERO,
                         groups=tuple(groups))
        topics = None if request.topics is None else [(t.name, tuple(t.partition_indexes)) for t in request.topics]
        error, found = self._fetch_offsets(request.group_id, topics)
        if api_version < 2 and error != ErrorCode.none:
            # v1 has no top-level error: every requested partition carries it.
            found = {key: (None, error) for key in found}
        return _make(_schema(OFFSET_FETCH, api_version, "OffsetFetchResponse"), throttle_time=_ZERO,
                     error_code=error, topics=self._fetch_topics(api_version, found, error))

    def _fetch_offsets(self, group_id: str, topics: list[tuple[str, tuple[int, ...]]] | None
                       ) -> tuple[ErrorCode, dict[tuple[str, int], tuple[OffsetValue | None, ErrorCode]]]:
        requested = [(name, index) for name, indexes in topics or () for index in indexes]
        error, part = self._locate(group_id)
        if part is None:
            return error, {key: (None, ErrorCode.none) for key in requested}
        group = part.groups.get(group_id)
        offsets = group.offsets if group is not None and group.state is not GroupState.DEAD else {}
        if topics is None:
            return ErrorCode.none, {key: (value, ErrorCode.none) for key, value in sorted(offsets.items())}
        return ErrorCode.none, {key: (offsets.get(key), ErrorCode.none) for key in requested}

    def _fetch_topics(self, api_version: int, found: dict[tuple[str, int], tuple[OffsetValue | None, ErrorCode]],
                      top_error: ErrorCode) -> tuple[Any, ...]:
        topic_cls = _schema(OFFSET_FETCH, api_version, "OffsetFetchResponseTopics", "OffsetFetchResponseTopic")
        partition_cls = _schema(OFFSET_FETCH, api_version, "OffsetFetchResponsePartitions",
                                "OffsetFetchResponsePartition")
        by_topic: dict[str, list[Any]] = {}
        for (name, index), (value, error) in found.items():
            by_topic.setdefault(name, []).append(_make(
                partition_cls, partition_index=index,
                committed_offset=value.offset if value is not None else -1,
                committed_leader_epoch=value.leader_epoch if value is not None else -1,
                metadata=value.metadata if value is not None else "", error_code=error))
        return tuple(_make(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())

    async def handle_offset_delete(self, request: Any, api_version: int, context: Any = None) -> Any:
        keys = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
        top, errors = await self._offset_delete(request.group_id, keys)
        topic_cls = _schema(OFFSET_DELETE, api_version, "OffsetDeleteResponseTopic")
        partition_cls = _schema(OFFSET_DELETE, api_version, "OffsetDeleteResponsePartition")
        topics = () if top != ErrorCode.none else tuple(
            _make(topic_cls, name=t.name, partitions=tuple(
                _make(partition_cls, partition_index=p.partition_index, error_code=errors[(t.name, p.partition_index)])
                for p in t.partitions))
            for t in request.topics)
        return _make(_schema(OFFSET_DELETE, api_version, "OffsetDeleteResponse"), throttle_time=_ZERO,
                     error_code=top, topics=topics)

    async def _offset_delete(self, group_id: str, keys: list[tuple[str, int]]
                             ) -> tuple[ErrorCode, dict[tuple[str, int], ErrorCode]]:
        error, part = self._locate(group_id)
        if part is None:
            return error, {}
        group = part.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found, {}
        if group.state is not GroupState.EMPTY and group.protocol_type != "consumer":
            return ErrorCode.non_empty_group, {}
        subscribed = frozenset() if group.state is GroupState.EMPTY else group.subscribed_topics()
        results: dict[tuple[str, int], ErrorCode] = {}
        deletable = []
        for key in keys:
            if subscribed is None or key[0] in subscribed:
                results[key] = ErrorCode.group_subscribed_to_topic
            else:
                results[key] = ErrorCode.none
                if key in group.offsets:
                    deletable.append(key)
        if deletable:
            for key in deletable:
                group.offsets.pop(key, None)
            error = await self._append(part, [(encode_offset_key(group_id, t, i), None) for t, i in deletable])
            if error != ErrorCode.none:
                return error, {}
        return ErrorCode.none, results

    # -- ListGroups / DescribeGroups / DeleteGroups ------------------------------------------------

    async def handle_list_groups(self, request: Any, api_version: int, context: Any = None) -> Any:
        states = {s.lower() for s in getattr(request, "states_filter", ())}
        types = {t.lower() for t in getattr(request, "types_filter", ())}
        listed_cls = _schema(LIST_GROUPS, api_version, "ListedGroup")
        error = ErrorCode.none
        listed = []
        for part in self._partitions.values():
            if part.loading:
                error = ErrorCode.coordinator_load_in_progress
                continue
            for group in part.groups.values():
                if group.state is GroupState.DEAD:
                    continue
                if states and group.state.value.lower() not in states:
                    continue
                if types and "classic" not in types:
                    continue
                listed.append(_make(listed_cls, group_id=group.group_id, protocol_type=group.protocol_type or "",
                                    group_state=group.state.value, group_type="classic"))
        return _make(_schema(LIST_GROUPS, api_version, "ListGroupsResponse"), throttle_time=_ZERO,
                     error_code=error, groups=tuple(listed))

    async def handle_describe_groups(self, request: Any, api_version: int, context: Any = None) -> Any:
        group_cls = _schema(DESCRIBE_GROUPS, api_version, "DescribedGroup")
        member_cls = _schema(DESCRIBE_GROUPS, api_version, "DescribedGroupMember")
        described = []
        for group_id in request.groups:
            error, part = self._locate(group_id)
            group = part.groups.get(group_id) if part is not None else None
            if group is None or group.state is GroupState.DEAD:
                described.append(_make(group_cls, error_code=error, error_message=None, group_id=group_id,
                                       group_state=GroupState.DEAD.value if error == ErrorCode.none else "",
                                       protocol_type="", protocol_data="", members=(),
                                       authorized_operations=_AUTHORIZED_OPERATIONS_OMITTED))
                continue
            stable = group.state is GroupState.STABLE
            members = tuple(
                _make(member_cls, member_id=m.member_id, group_instance_id=m.group_instance_id,
                      client_id=m.client_id, client_host=m.client_host,
                      member_metadata=m.metadata(group.protocol_name) if stable else b"",
                      member_assignment=m.assignment if stable else b"")
                for m in group.members.values())
            described.append(_make(group_cls, error_code=ErrorCode.none, error_message=None, group_id=group_id,
                                   group_state=group.state.value, protocol_type=group.protocol_type or "",
                                   protocol_data=(group.protocol_name or "") if stable else "",
                                   members=members, authorized_operations=_AUTHORIZED_OPERATIONS_OMITTED))
        return _make(_schema(DESCRIBE_GROUPS, api_version, "DescribeGroupsResponse"), throttle_time=_ZERO,
                     groups=tuple(described))

    async def handle_delete_groups(self, request: Any, api_version: int, context: Any = None) -> Any:
        names = list(request.groups_names)
        errors = await asyncio.gather(*(self._delete_group(name) for name in names))
        result_cls = _schema(DELETE_GROUPS, api_version, "DeletableGroupResult")
        results = tuple(_make(result_cls, group_id=name, error_code=error)
                        for name, error in zip(names, errors, strict=True))
        return _make(_schema(DELETE_GROUPS, api_version, "DeleteGroupsResponse"), throttle_time=_ZERO,
                     results=results)

    async def _delete_group(self, group_id: str) -> ErrorCode:
        error, part = self._locate(group_id)
        if part is None:
            return error
        group = part.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found
        if group.state is not GroupState.EMPTY or not group.is_empty():
            return ErrorCode.non_empty_group
        records: list[tuple[bytes, bytes | None]] = [
            (encode_offset_key(group_id, topic, index), None) for topic, index in group.offsets]
        records.append((encode_group_key(group_id), None))
        group.shutdown(self._now_ms(), ErrorCode.coordinator_not_available)
        self._flush(part, group)
        del part.groups[group_id]
        return await self._append(part, records)

    # -- periodic work ------------------------------------------------------------------------------

    async def _run_ticks(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval_ms / 1000)
            try:
                self.tick()
            except Exception:
                log.exception("group coordinator tick failed")

    def tick(self) -> None:
        """One pass: reconcile leadership, tail, expire sessions, finish rebalances, clean up."""
        self.reconcile()
        now_ms = self._now_ms()
        wall_ms = self._wall_ms()
        check_retention = wall_ms - self._last_retention_check_ms >= OFFSETS_RETENTION_CHECK_MS
        if check_retention:
            self._last_retention_check_ms = wall_ms
        retention_ms = self._config_int("offsets.retention.minutes", 10080) * 60_000
        for part in list(self._partitions.values()):
            if part.loading or part.closed:
                continue
            if part.tailing:
                try:
                    while self._read_and_replay(part, part.first_own_offset):
                        pass
                except (RecordsError, Exception):
                    log.exception("tailing %s-%d failed", OFFSETS_TOPIC, part.index)
            for group in list(part.groups.values()):
                group.tick(now_ms)
                self._flush(part, group)
                if check_retention:
                    self._expire_offsets(part, group, wall_ms, retention_ms)
                if group.state is GroupState.EMPTY and group.is_empty() and not group.offsets:
                    del part.groups[group.group_id]
                    if group.generation > 0:
                        self._append(part, [(encode_group_key(group.group_id), None)])

    def _expire_offsets(self, part: _OffsetsPartition, group: Group, wall_ms: int, retention_ms: int) -> None:
        """Offsets of an empty group expire `offsets.retention.minutes` after their commit."""
        if group.state is not GroupState.EMPTY or not group.is_empty():
            return
        expired = [key for key, value in group.offsets.items()
                   if value.commit_timestamp_ms >= 0 and value.commit_timestamp_ms + retention_ms <= wall_ms]
        if not expired:
            return
        for key in expired:
            del group.offsets[key]
        tombstones: list[tuple[bytes, bytes | None]] = [
            (encode_offset_key(group.group_id, t, i), None) for t, i in expired]
        self._append(part, tombstones)
