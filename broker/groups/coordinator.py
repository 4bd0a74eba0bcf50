"""The group coordinator: consumer groups (classic protocol) and committed offsets, as typed operations.

Modules of `broker/groups/` (none knows the Kafka wire format; `broker/kafka/group_handlers.py`
turns Kafka requests into calls of this module's methods, with the dataclasses of `api.py`):

    state.py              the pure group state machine (one `Group`)
    offsets.py            the key/value schemas of `__consumer_offsets` records (pure)
    placement.py          group -> offsets partition, as Kafka computes it (pure)
    offsets_partition.py  per offsets partition this broker leads: load, tail and write its log,
                          following leadership
    parked.py             JoinGroup/SyncGroup requests waiting for a rebalance
    coordinator.py        this module: the operations, what each record means, the periodic tick

While an offsets partition loads, its groups answer COORDINATOR_LOAD_IN_PROGRESS; on losing
leadership every group goes Dead and parked requests get NOT_COORDINATOR. A periodic task (every
`tick_interval_ms`) reconciles loaded partitions with leadership, tails, calls `Group.tick`
(session expiry, rebalance deadlines), drops empty groups and expires old offsets of empty groups
(`offsets.retention.minutes`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from broker.api import BrokerCore
from broker.groups.api import (
    CommitRequest,
    CoordinatorAnswer,
    DescribedGroup,
    DescribedMember,
    FetchedOffsets,
    HeartbeatRequest,
    JoinRequest,
    ListedGroup,
    PartitionKey,
    SyncRequest,
)
from broker.groups.offsets import (
    GroupKey,
    GroupMetadataValue,
    OffsetKey,
    OffsetValue,
    encode_group_key,
    encode_group_value,
    encode_offset_key,
    encode_offset_value,
)
from broker.groups.offsets_partition import OFFSETS_TOPIC, OffsetsPartition, OffsetsPartitions
from broker.groups.parked import ParkedRequests
from broker.groups.placement import partition_for
from broker.groups.state import Group, GroupState, JoinResult, SyncResult
from cluster.errors import ErrorCode

__all__ = [
    "OFFSETS_TOPIC",
    "GroupCoordinator",
    "partition_for",
]

log = logging.getLogger(__name__)

# Kafka's `offset.metadata.max.bytes` default.
OFFSET_METADATA_BYTES_MAX = 4096
# How often expired offsets of empty groups are looked for.
OFFSETS_RETENTION_CHECK_MS = 60_000
# Slack added to a parked JoinGroup/SyncGroup wait beyond the group's own deadlines.
PARKED_SLACK_MS = 5000


class GroupCoordinator:
    """Consumer groups (classic protocol) and committed offsets for the partitions this broker leads."""

    def __init__(self, core: BrokerCore, *, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, tick_interval_ms: int = 200) -> None:
        self.core = core
        self._clock = clock
        self._wall_clock = wall_clock
        self.tick_interval_ms = tick_interval_ms
        self._partitions = OffsetsPartitions(core, self._apply_record, self._unloaded, wall_clock=wall_clock)
        self._parked = ParkedRequests()
        self._tick_task: asyncio.Task[None] | None = None
        self._ensure_task: asyncio.Task[Any] | None = None
        self._waiting_logged = False  # the offsets topic waits for brokers: logged once
        self._last_retention_check_ms = 0
        # FindCoordinator(key_type=1): the transaction coordinator's answer, when this broker has one.
        self.find_txn_coordinator: Callable[[str], CoordinatorAnswer] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        listeners = getattr(self.core, "marker_listeners", None)
        if listeners is not None and self._on_marker not in listeners:
            listeners.append(self._on_marker)
        self._partitions.start()
        if self._tick_task is None:
            self._tick_task = asyncio.create_task(self._run_ticks(), name="group-coordinator-tick")

    async def stop(self) -> None:
        tasks = [t for t in (self._tick_task, self._ensure_task) if t is not None]
        self._tick_task = self._ensure_task = None
        for task in tasks:
            task.cancel()
        tasks.extend(self._partitions.stop())
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- config and time ---------------------------------------------------------------------------

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

    # -- loading -----------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Make the loaded partitions match what this broker leads (callbacks may be missed)."""
        self._partitions.reconcile()

    def _unloaded(self, part: OffsetsPartition) -> None:
        """The partition's leadership is gone: its groups go Dead, parked requests get NOT_COORDINATOR."""
        now_ms = self._now_ms()
        for group in part.groups.values():
            group.shutdown(now_ms, ErrorCode.not_coordinator)
            self._flush(part, group)

    def _apply_record(self, part: OffsetsPartition, key: OffsetKey | GroupKey,
                      value: OffsetValue | GroupMetadataValue | None) -> None:
        """One record of the partition's log, loaded or tailed, in log order (None: a tombstone)."""
        group = part.groups.get(key.group)
        if isinstance(key, OffsetKey):
            if value is None:
                if group is not None:
                    group.offsets.pop((key.topic, key.partition), None)
                return
            if group is None:
                group = part.groups[key.group] = self._new_group(key.group)
            assert isinstance(value, OffsetValue)
            group.offsets[(key.topic, key.partition)] = value
            return
        now_ms = self._now_ms()
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
        assert isinstance(value, GroupMetadataValue)
        group.restore(now_ms, value)

    # -- effects -----------------------------------------------------------------------------------

    def _offset_values(self, partitions: Any) -> tuple[dict[PartitionKey, ErrorCode], dict[PartitionKey, OffsetValue]]:
        """An (Txn)OffsetCommit's partitions split into per-partition errors (unknown partition, metadata
        too large) and the offset values to store."""
        results: dict[PartitionKey, ErrorCode] = {}
        values: dict[PartitionKey, OffsetValue] = {}
        image = self.core.image()
        wall_ms = self._wall_ms()
        for p in partitions:
            key = (p.topic, p.partition)
            registration = image.topic_by_name(p.topic)
            if registration is None or p.partition not in registration.partitions:
                results[key] = ErrorCode.unknown_topic_or_partition
            elif len(p.metadata.encode()) > OFFSET_METADATA_BYTES_MAX:
                results[key] = ErrorCode.offset_metadata_too_large
            else:
                values[key] = OffsetValue(p.offset, p.leader_epoch, p.metadata, wall_ms)
        return results, values

    def _store_group(self, part: OffsetsPartition, group: Group) -> None:
        """Persist the group's metadata (best effort: offsets are the durable part)."""
        record = (encode_group_key(group.group_id), encode_group_value(group.to_metadata(self._wall_ms())))

        def done(error: ErrorCode, _offset: int) -> None:
            if error != ErrorCode.none:
                log.warning("storing group %r failed: %s", group.group_id, error.name)

        part.append([record], done)

    def _flush(self, part: OffsetsPartition, group: Group) -> None:
        """Deliver a group's effects: answer parked requests, persist its metadata."""
        effects = group.take_effects()
        self._parked.answer(group.group_id, effects)
        if effects.store_group and not part.closed and group.state is not GroupState.DEAD:
            self._store_group(part, group)

    # -- locating groups ---------------------------------------------------------------------------

    def _partition_count(self) -> int | None:
        topic = self.core.image().topic_by_name(OFFSETS_TOPIC)
        if topic is None or not topic.partitions:
            return None
        return len(topic.partitions)

    def _locate(self, group_id: str) -> tuple[ErrorCode, OffsetsPartition | None]:
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

    # -- FindCoordinator ---------------------------------------------------------------------------

    def find_coordinator(self, key: str, key_type: int) -> CoordinatorAnswer:
        if key_type == 1 and self.find_txn_coordinator is not None:
            return self.find_txn_coordinator(key)
        if key_type != 0:
            return CoordinatorAnswer(ErrorCode.invalid_request, f"unknown coordinator key type {key_type}")
        topic = self.core.image().topic_by_name(OFFSETS_TOPIC)
        if topic is None or not topic.partitions:
            self._ensure_offsets_topic()
            return CoordinatorAnswer(ErrorCode.coordinator_not_available,
                                     "the offsets topic is being created (once offsets.topic.replication.factor "
                                     "brokers are up)")
        registration = topic.partitions.get(partition_for(key, len(topic.partitions)))
        if registration is None or registration.leader < 0:
            return CoordinatorAnswer(ErrorCode.coordinator_not_available, "the group's offsets partition has no leader")
        address = self.core.advertised_kafka_address(registration.leader)
        if address is None:
            return CoordinatorAnswer(ErrorCode.coordinator_not_available, "the coordinator's address is unknown")
        return CoordinatorAnswer(ErrorCode.none, None, registration.leader, address[0], address[1])

    def _ensure_offsets_topic(self) -> None:
        if self._ensure_task is not None and not self._ensure_task.done():
            return

        async def ensure() -> None:
            try:
                error = await self.core.ensure_topic(OFFSETS_TOPIC)
                if error == ErrorCode.coordinator_not_available:
                    if not self._waiting_logged:  # clients retry FindCoordinator often: say it once
                        log.info("%s waits until offsets.topic.replication.factor brokers are up", OFFSETS_TOPIC)
                        self._waiting_logged = True
                elif error != ErrorCode.none:
                    log.warning("creating %s: %s", OFFSETS_TOPIC, error.name)
            except Exception:
                log.exception("creating %s failed", OFFSETS_TOPIC)

        self._ensure_task = asyncio.get_running_loop().create_task(ensure(), name="ensure-offsets-topic")

    # -- JoinGroup / SyncGroup / Heartbeat / LeaveGroup --------------------------------------------

    async def join(self, request: JoinRequest) -> JoinResult:
        group_id, member_id = request.group_id, request.member_id
        session_ms = request.session_timeout_ms
        rebalance_ms = request.rebalance_timeout_ms if request.rebalance_timeout_ms >= 0 else session_ms
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
        instance_id = request.group_instance_id
        fresh = f"{instance_id or request.client_id or 'member'}-{uuid.uuid4()}"
        outcome = group.join(
            self._now_ms(), member_id=member_id, group_instance_id=instance_id, client_id=request.client_id,
            client_host=request.client_host, session_timeout_ms=session_ms, rebalance_timeout_ms=rebalance_ms,
            protocol_type=request.protocol_type, protocols=list(request.protocols),
            require_known_member_id=request.require_known_member_id, fresh_member_id=fresh)
        if outcome.reply is not None:
            self._flush(part, group)
            return outcome.reply
        timeout_ms = max(rebalance_ms, group.rebalance_deadline_ms - self._now_ms()) + PARKED_SLACK_MS
        return await self._parked.join(group_id, outcome.member_id, timeout_ms,
                                       JoinResult(ErrorCode.rebalance_in_progress, outcome.member_id),
                                       lambda: self._flush(part, group))

    async def sync(self, request: SyncRequest) -> SyncResult:
        group_id, member_id = request.group_id, request.member_id
        if not group_id:
            return SyncResult(ErrorCode.invalid_group_id)
        error, part = self._locate(group_id)
        if part is None:
            return SyncResult(error)
        group = part.groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.unknown_member_id)
        result = group.sync(self._now_ms(), member_id=member_id, group_instance_id=request.group_instance_id,
                            generation_id=request.generation_id, protocol_type=request.protocol_type,
                            protocol_name=request.protocol_name, assignments=dict(request.assignments))
        if result is not None:
            self._flush(part, group)
            return result
        member = group.members.get(member_id)
        timeout_ms = (member.rebalance_timeout_ms if member else 0) + PARKED_SLACK_MS
        return await self._parked.sync(group_id, member_id, timeout_ms, SyncResult(ErrorCode.rebalance_in_progress),
                                       lambda: self._flush(part, group))

    def heartbeat(self, request: HeartbeatRequest) -> ErrorCode:
        if not request.group_id:
            return ErrorCode.invalid_group_id
        error, part = self._locate(request.group_id)
        if part is None:
            return error
        group = part.groups.get(request.group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        error = group.heartbeat(self._now_ms(), member_id=request.member_id,
                                group_instance_id=request.group_instance_id, generation_id=request.generation_id)
        self._flush(part, group)
        return error

    def leave(self, group_id: str, leaving: Sequence[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        """(group error, one error per (member_id, group_instance_id) in `leaving`)."""
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

    async def commit_offsets(self, request: CommitRequest) -> dict[PartitionKey, ErrorCode]:
        keys = [(p.topic, p.partition) for p in request.partitions]
        group_id = request.group_id
        if not group_id:
            return dict.fromkeys(keys, ErrorCode.invalid_group_id)
        error, part = self._locate(group_id)
        if part is None:
            return dict.fromkeys(keys, error)
        group = part.groups.get(group_id)
        if group is None:
            if request.generation_id >= 0:
                return dict.fromkeys(keys, ErrorCode.illegal_generation)
            group = part.groups[group_id] = self._new_group(group_id)
        error = group.validate_offset_commit(request.member_id, request.group_instance_id, request.generation_id)
        if error != ErrorCode.none:
            return dict.fromkeys(keys, error)
        group.touch(self._now_ms(), request.member_id)
        results, values = self._offset_values(request.partitions)
        if values:
            records = [(encode_offset_key(group_id, t, i), encode_offset_value(v)) for (t, i), v in values.items()]

            def apply(error: ErrorCode, _base_offset: int) -> None:
                if error == ErrorCode.none and group.state is not GroupState.DEAD:
                    group.offsets.update(values)

            error = await part.append(records, apply)
            results.update(dict.fromkeys(values, error))
        return results

    def fetch_offsets(self, group_id: str, topics: Sequence[tuple[str, Sequence[int]]] | None,
                      require_stable: bool = False) -> tuple[ErrorCode, FetchedOffsets]:
        """The group's committed offsets of `topics` ((name, partitions) pairs), or all when None.

        `require_stable` (KIP-447): a partition with a transactional commit not yet ended answers
        UNSTABLE_OFFSET_COMMIT (retriable), so a new consumer never starts from an offset an open
        transaction is about to replace."""
        requested = [(name, index) for name, indexes in topics or () for index in indexes]
        error, part = self._locate(group_id)
        if part is None:
            return error, {key: (None, ErrorCode.none) for key in requested}
        group = part.groups.get(group_id)
        offsets = group.offsets if group is not None and group.state is not GroupState.DEAD else {}
        unstable = part.pending_txn_keys(group_id) if require_stable else set()

        def error_of(key: PartitionKey) -> ErrorCode:
            return ErrorCode.unstable_offset_commit if key in unstable else ErrorCode.none

        if topics is None:
            return ErrorCode.none, {key: (value, error_of(key)) for key, value in sorted(offsets.items())}
        return ErrorCode.none, {key: (offsets.get(key), error_of(key)) for key in requested}

    async def txn_commit_offsets(self, request: CommitRequest, producer_id: int,
                                 producer_epoch: int) -> dict[PartitionKey, ErrorCode]:
        """TxnOffsetCommit (KIP-98, KIP-447): the offsets are written to the group's offsets partition
        in a transactional batch of the producer and stay pending until the transaction's marker
        reaches that partition (COMMIT: they become the group's offsets; ABORT: dropped)."""
        keys = [(p.topic, p.partition) for p in request.partitions]
        group_id = request.group_id
        if not group_id:
            return dict.fromkeys(keys, ErrorCode.invalid_group_id)
        error, part = self._locate(group_id)
        if part is None:
            return dict.fromkeys(keys, error)
        group = part.groups.get(group_id)
        if request.generation_id >= 0 or request.member_id:
            # KIP-447 (v3): the producer's consumer must still be a member of this generation.
            if group is None:
                return dict.fromkeys(keys, ErrorCode.illegal_generation)
            error = group.validate_offset_commit(request.member_id, request.group_instance_id, request.generation_id)
            if error != ErrorCode.none:
                return dict.fromkeys(keys, error)
        results, values = self._offset_values(request.partitions)
        if values:
            records = [(encode_offset_key(group_id, t, i), encode_offset_value(v)) for (t, i), v in values.items()]

            def pend(error: ErrorCode, _base_offset: int) -> None:
                if error == ErrorCode.none:
                    pending = part.txn_pending.setdefault(producer_id, [])
                    pending.extend((OffsetKey(group_id, t, i), v) for (t, i), v in values.items())

            error = await part.append(records, pend, producer=(producer_id, producer_epoch))
            results.update(dict.fromkeys(values, error))
        return results

    def _on_marker(self, topic: str, partition: int, producer_id: int, commit: bool) -> None:
        """A transaction marker was written to an offsets partition this broker leads."""
        if topic != OFFSETS_TOPIC:
            return
        part = self._partitions.get(partition)
        if part is None or part.loading or part.closed:
            return  # the load reads the marker from the log
        part.end_txn(producer_id, commit)

    async def delete_offsets(self, group_id: str, keys: Sequence[PartitionKey]
                             ) -> tuple[ErrorCode, dict[PartitionKey, ErrorCode]]:
        error, part = self._locate(group_id)
        if part is None:
            return error, {}
        group = part.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found, {}
        if group.state is not GroupState.EMPTY and group.protocol_type != "consumer":
            return ErrorCode.non_empty_group, {}
        subscribed = frozenset() if group.state is GroupState.EMPTY else group.subscribed_topics()
        results: dict[PartitionKey, ErrorCode] = {}
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
            error = await part.append([(encode_offset_key(group_id, t, i), None) for t, i in deletable])
            if error != ErrorCode.none:
                return error, {}
        return ErrorCode.none, results

    # -- ListGroups / DescribeGroups / DeleteGroups ------------------------------------------------

    def list_groups(self, states: Sequence[str] = (), types: Sequence[str] = ()) -> tuple[ErrorCode, list[ListedGroup]]:
        """Live groups, filtered by state and type names (case-insensitive; empty: no filter)."""
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        error = ErrorCode.none
        listed = []
        for part in self._partitions.all():
            if part.loading:
                error = ErrorCode.coordinator_load_in_progress
                continue
            for group in part.groups.values():
                if group.state is GroupState.DEAD:
                    continue
                if wanted_states and group.state.value.lower() not in wanted_states:
                    continue
                if wanted_types and "classic" not in wanted_types:
                    continue
                listed.append(ListedGroup(group.group_id, group.protocol_type or "", group.state.value))
        return error, listed

    def describe_groups(self, group_ids: Sequence[str]) -> list[DescribedGroup]:
        described = []
        for group_id in group_ids:
            error, part = self._locate(group_id)
            group = part.groups.get(group_id) if part is not None else None
            if group is None or group.state is GroupState.DEAD:
                described.append(DescribedGroup(group_id, error,
                                                GroupState.DEAD.value if error == ErrorCode.none else ""))
                continue
            stable = group.state is GroupState.STABLE
            members = tuple(
                DescribedMember(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                                m.metadata(group.protocol_name) if stable else b"", m.assignment if stable else b"")
                for m in group.members.values())
            described.append(DescribedGroup(group_id, ErrorCode.none, group.state.value, group.protocol_type or "",
                                            (group.protocol_name or "") if stable else "", members))
        return described

    async def delete_groups(self, group_ids: Sequence[str]) -> list[ErrorCode]:
        return list(await asyncio.gather(*(self._delete_group(group_id) for group_id in group_ids)))

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
        return await part.append(records)

    # -- periodic work -----------------------------------------------------------------------------

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
        for part in self._partitions.all():
            if part.loading or part.closed:
                continue
            part.tail()
            for group in list(part.groups.values()):
                group.tick(now_ms)
                self._flush(part, group)
                if check_retention:
                    self._expire_offsets(part, group, wall_ms, retention_ms)
                if group.state is GroupState.EMPTY and group.is_empty() and not group.offsets:
                    del part.groups[group.group_id]
                    if group.generation > 0:
                        part.append([(encode_group_key(group.group_id), None)])

    def _expire_offsets(self, part: OffsetsPartition, group: Group, wall_ms: int, retention_ms: int) -> None:
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
        part.append(tombstones)
