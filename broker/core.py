"""The broker: lifecycle and wiring of the logs, the replicas, the controller session and the servers.

Start: register with the active controller and keep the session's heartbeat and metadata loops
(broker/controller_session.py); each new image is reconciled by the ReplicaManager. The broker's own
periodic duties are ISR maintenance, retention and idle flushes. SIGTERM runs a controlled shutdown:
the session asks the controller to move this broker's leaderships away, and the broker exits once it
leads nothing (bounded wait). The rest of the class is the `BrokerCore` API the Kafka and gRPC
listeners call; admin requests are forwarded to the active controller.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any

from broker.api import (
    AlterConfigOp,
    ConfigValue,
    DeleteRecordsResult,
    ElectionOutcome,
    EpochEndOffset,
    FetchPartition,
    FetchResult,
    LogDirInfo,
    LogDirPartition,
    NewPartitions,
    NewTopic,
    OffsetResult,
    ProduceResult,
    ProducerIdResult,
    ProducerInfo,
    ProducersResult,
    QuorumInfo,
    ResourceConfigResult,
    TopicOutcome,
)
from broker.clock import system_monotonic_ms, system_wall_ms
from broker.controller_channel import ControllerChannel, ControllerUnavailable
from broker.controller_session import CONTROLLER_CALL_TIMEOUT_S, ControllerSession
from broker.fetcher import FetcherManager
from broker.offload import Offload
from broker.replica_manager import LeaderSide, ReplicaManager
from broker.topic_configs import TopicConfigs
from brookpb import admin_pb2 as apb
from brookpb import controller_pb2 as cpb
from cluster.aio import wait_for
from cluster.config import Config
from cluster.errors import ErrorCode, LogError
from cluster.image import MetadataImage

log = logging.getLogger("brook.broker")

OFFSETS_TOPIC = "__consumer_offsets"
TXN_TOPIC = "__transaction_state"
# How often idle partitions are checked against flush.ms.
FLUSH_CHECK_INTERVAL_S = 1.0
FLUSH_CHECK_SLICE = 256


def _offsets_partition(replicas: ReplicaManager, topic: str, partition: int, current_leader_epoch: int) -> Any:
    """The led partition for ListOffsets, or the OffsetResult refusing the request."""
    p = replicas.lookup(topic, partition)
    if p is None or p.leader is None:
        return OffsetResult(replicas._not_leader_error(topic, partition))
    if current_leader_epoch >= 0 and current_leader_epoch != p.leader_epoch:
        return OffsetResult(ErrorCode.fenced_leader_epoch if current_leader_epoch < p.leader_epoch
                            else ErrorCode.unknown_leader_epoch)
    return p


class Broker:
    def __init__(self, config: Config, log_manager: Any) -> None:
        self.config = config
        self.broker_id: int = config.node_id
        self.logs = log_manager
        self.controllers = ControllerChannel(list(config.controller_bootstrap))
        self.topic_configs = TopicConfigs(config)
        self.replicas = ReplicaManager(self.broker_id, log_manager, config,
                                       lambda requests: self.session.send_alter_partition(requests),
                                       self.topic_configs.log_config_for, self.topic_configs.topic_value,
                                       monotonic_ms=system_monotonic_ms, wall_ms=system_wall_ms)
        self.session = ControllerSession(config, self.controllers, self.replicas)
        self.leader_side = LeaderSide(self.replicas)
        self.fetchers = FetcherManager(self.replicas, self.broker_id, lambda: self.session.broker_epoch)
        self.replicas.fetcher_changed = self.fetchers.reconcile
        self._tasks: list[asyncio.Task] = []
        self._producer_ids: list[int] = []  # [next, end)
        # Called after a transaction marker is written here: (topic, partition, producer id, commit).
        # The group coordinator makes transactional offset commits visible (or drops them) with it.
        self.marker_listeners: list[Any] = []
        self._producer_id_lock = asyncio.Lock()
        # Compressed produce validation, ListOffsets-by-time decoding and compaction run on worker threads.
        self.offload = Offload()
        self.replicas.offload = self.offload

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.session.register()
        self.session.start()
        for coro in (self._isr_loop(), self._retention_loop(), self._flush_loop(), self._producer_expiry_loop()):
            self._tasks.append(loop.create_task(coro))

    async def controlled_shutdown(self, timeout_s: float) -> None:
        """Ask the controller to move leaderships away; wait (bounded) until it says we are done."""
        self.session.request_shutdown()
        try:
            await wait_for(self.session.shutdown_ready.wait(), timeout_s)
            log.info("controlled shutdown complete: no leaderships left")
        except TimeoutError:
            log.warning("controlled shutdown did not complete within %.1fs; stopping anyway", timeout_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.session.stop()
        await self.fetchers.stop()
        await self.controllers.close()
        self.offload.close()  # workers may read snapshots of the database: they finish first
        self.logs.close()

    # -- periodic duties -------------------------------------------------------------------------
    async def _isr_loop(self) -> None:
        period_s = max(0.1, min(1.0, self.config.getint("replica.lag.time.max.ms") / 4000.0))
        while True:
            await asyncio.sleep(period_s)
            try:
                self.replicas.isr_maintenance()
            except Exception:
                log.exception("ISR maintenance failed")

    async def _retention_loop(self) -> None:
        interval_s = max(0.1, self.config.getint("log.retention.check.interval.ms") / 1000.0)
        while True:
            await asyncio.sleep(interval_s)
            for p in list(self.replicas.partitions.values()):
                try:
                    # Retention works on segment metadata and deletes key ranges (no decoding): on the loop.
                    p.log.apply_retention(system_wall_ms())
                    if p.log.config.compact and self.replicas.partitions.get((p.topic_id, p.index)) is p:
                        await self.offload.compact(p.log, system_wall_ms())
                except Exception:
                    log.exception("retention of %s-%d failed", p.topic, p.index)
                await asyncio.sleep(0)

    async def _producer_expiry_loop(self) -> None:
        """Kafka's producer.id.expiration.check.interval.ms: drop idle producer ids from every log."""
        interval_s = max(0.1, self.config.getint("producer.id.expiration.check.interval.ms") / 1000.0)
        expiration_ms = self.config.getint("producer.id.expiration.ms")
        while True:
            await asyncio.sleep(interval_s)
            try:
                expired = self.replicas.expire_producers(expiration_ms)
                if expired:
                    log.info("expired %d idle producer ids (producer.id.expiration.ms=%d)", expired, expiration_ms)
            except Exception:
                log.exception("producer id expiration failed")

    async def _flush_loop(self) -> None:
        """flush.ms is checked on append by the log; this syncs idle partitions whose time has come.
        The walk yields every FLUSH_CHECK_SLICE partitions, so with 10,000 partitions it never holds
        the event loop (and every request waiting on it) for the whole walk."""
        while True:
            await asyncio.sleep(FLUSH_CHECK_INTERVAL_S)
            for i, p in enumerate(list(self.replicas.partitions.values())):
                if i % FLUSH_CHECK_SLICE == FLUSH_CHECK_SLICE - 1:
                    await asyncio.sleep(0)
                if p.log.flush_due() and self.replicas.partitions.get((p.topic_id, p.index)) is p:
                    try:
                        p.log.flush()
                    except Exception:
                        log.exception("flush of %s-%d failed", p.topic, p.index)

    # -- BrokerCore ------------------------------------------------------------------------------
    def image(self) -> MetadataImage:
        return self.session.image

    def advertised_kafka_address(self, broker_id: int, listener: str = "") -> tuple[str, int] | None:
        """Where clients of Kafka listener `listener` reach `broker_id` (its first listener when "")."""
        b = self.session.image.brokers.get(broker_id)
        return None if b is None else b.kafka_address(listener)

    def controller_id(self) -> int:
        return self.controllers.active_controller_id

    def server_config(self, name: str) -> object:
        return self.config[name]

    def is_leader(self, topic: str, partition: int) -> bool:
        p = self.replicas.lookup(topic, partition)
        return p is not None and p.is_leader

    def add_leadership_listener(self, callback: Any) -> None:
        self.replicas.leadership_listeners.append(callback)

    def read_local(self, topic: str, partition: int, offset: int, max_bytes: int) -> tuple[bytes, int]:
        p = self.replicas.lookup(topic, partition)
        if p is None or p.leader is None:
            raise LogError(f"not the leader of {topic}-{partition}", ErrorCode.not_leader_or_follower)
        hw = p.leader.high_watermark
        offset = max(offset, p.log.log_start_offset)
        if offset >= hw:
            return b"", offset
        result = p.log.read(offset, max_bytes, hw)
        return result.records, result.next_offset

    async def produce(self, topic: str, partition: int, records: bytes, acks: int, timeout_ms: int) -> ProduceResult:
        if acks not in (0, 1, -1):
            return ProduceResult(ErrorCode.invalid_required_acks, message=f"acks must be 0, 1 or -1 (all), not {acks}")
        return await self.replicas.produce(topic, partition, records, acks, timeout_ms)

    async def fetch(self, partitions: Sequence[FetchPartition], max_wait_ms: int, min_bytes: int,
                    max_bytes: int, read_committed: bool = False) -> list[FetchResult]:
        return await self.replicas.fetch(partitions, max_wait_ms, min_bytes, max_bytes, read_committed)

    async def append_marker(self, topic: str, partition: int, producer_id: int, producer_epoch: int,
                            coordinator_epoch: int, commit: bool, timeout_ms: int) -> ErrorCode:
        error = await self.replicas.append_marker(topic, partition, producer_id, producer_epoch, coordinator_epoch,
                                                  commit, timeout_ms)
        if error == ErrorCode.none:
            for listener in list(self.marker_listeners):
                try:
                    listener(topic, partition, producer_id, commit)
                except Exception:
                    log.exception("transaction marker listener failed")
        return error

    def partition_transactions(self, topic: str, partition: int) -> dict[int, int] | None:
        """Open transactions of a partition this broker leads (producer id -> first offset), None if not."""
        p = self.replicas.lookup(topic, partition)
        if p is None or p.leader is None:
            return None
        return p.log.ongoing_transactions()

    async def list_offsets_async(self, topic: str, partition: int, timestamp: int,
                                 current_leader_epoch: int = -1, read_committed: bool = False) -> OffsetResult:
        """ListOffsets with a timestamp: the candidate batch is decoded on a worker thread (a compressed
        batch may expand to 32 x max.message.bytes); the special timestamps are answered at once."""
        if timestamp < 0:
            return self.list_offsets(topic, partition, timestamp, current_leader_epoch, read_committed)
        p = _offsets_partition(self.replicas, topic, partition, current_leader_epoch)
        if isinstance(p, OffsetResult):
            return p
        found = await self.offload.offset_for_timestamp(p.log, timestamp)
        p = _offsets_partition(self.replicas, topic, partition, current_leader_epoch)  # leadership may have moved
        if isinstance(p, OffsetResult):
            return p
        bound = self.replicas.last_stable_offset(p) if read_committed else p.leader.high_watermark
        if found is None or found[0] >= bound:
            return OffsetResult(ErrorCode.none, -1, -1, p.leader_epoch)
        return OffsetResult(ErrorCode.none, found[0], found[1], p.leader_epoch)

    def list_offsets(self, topic: str, partition: int, timestamp: int, current_leader_epoch: int = -1,
                     read_committed: bool = False) -> OffsetResult:
        p = _offsets_partition(self.replicas, topic, partition, current_leader_epoch)
        if isinstance(p, OffsetResult):
            return p
        hw = p.leader.high_watermark
        if timestamp == -1:
            if not p.leader.offsets_available:
                # KIP-207: a new leader's HW may lag what the previous one acknowledged.
                return OffsetResult(ErrorCode.offset_not_available, -1, -1, p.leader_epoch)
            if read_committed:
                return OffsetResult(ErrorCode.none, self.replicas.last_stable_offset(p), -1, p.leader_epoch)
            return OffsetResult(ErrorCode.none, hw, -1, p.leader_epoch)
        if timestamp == -2:
            return OffsetResult(ErrorCode.none, p.log.log_start_offset, -1, p.leader_epoch)
        found = p.log.offset_for_timestamp(timestamp)
        if read_committed:
            hw = self.replicas.last_stable_offset(p)
        if found is None or found[0] >= hw:
            return OffsetResult(ErrorCode.none, -1, -1, p.leader_epoch)
        return OffsetResult(ErrorCode.none, found[0], found[1], p.leader_epoch)

    def offset_for_leader_epoch(self, topic: str, partition: int, current_leader_epoch: int,
                                leader_epoch: int) -> EpochEndOffset:
        p = self.replicas.lookup(topic, partition)
        if p is None:
            return EpochEndOffset(self.replicas._not_leader_error(topic, partition))
        error, epoch, end = self.leader_side.end_offset_for_epoch(p.topic_id, partition, current_leader_epoch,
                                                                  leader_epoch)
        return EpochEndOffset(error, epoch, end)

    async def delete_records(self, topic: str, partition: int, offset: int, timeout_ms: int) -> DeleteRecordsResult:
        return await self.replicas.delete_records(topic, partition, offset, timeout_ms)

    def describe_log_dirs(self, wanted: Mapping[str, Sequence[int]] | None) -> list[LogDirInfo]:
        """The one log directory (see OPERATIONS.md) with every local replica asked for. Offset lag is
        Kafka's: max(0, HW - LEO) of the replica's own log, 0 for a current (non-future) replica."""
        path = self.logs.log_dir
        try:
            usage = shutil.disk_usage(path)
            total, usable = usage.total, usage.free
        except OSError as e:
            log.warning("disk usage of %s: %s", path, e)
            return [LogDirInfo(path, ErrorCode.kafka_storage_error)]
        parts = []
        for p in sorted(self.replicas.partitions.values(), key=lambda q: (q.topic, q.index)):
            if wanted is not None:
                indexes = wanted.get(p.topic)
                if indexes is None or (indexes and p.index not in indexes):
                    continue
            size = sum(s.size_bytes for s in p.log.segments())
            lag = max(0, p.log.high_watermark - p.log.log_end_offset)
            parts.append(LogDirPartition(p.topic, p.index, size, lag))
        return [LogDirInfo(path, ErrorCode.none, tuple(parts), total, usable)]

    def describe_producers(self, topic: str, partition: int) -> ProducersResult:
        p = self.replicas.lookup(topic, partition)
        if p is None or p.leader is None:
            return ProducersResult(self.replicas._not_leader_error(topic, partition))
        producers = []
        open_txns = p.log.ongoing_transactions()
        for producer_id, entry in sorted(p.log.producer_entries().items()):
            last = entry.batches[-1].last_sequence if entry.batches else -1
            producers.append(ProducerInfo(producer_id, entry.producer_epoch, last,
                                          current_txn_start_offset=open_txns.get(producer_id, -1)))
        return ProducersResult(ErrorCode.none, producers=tuple(producers))

    async def init_producer_id(self) -> ProducerIdResult:
        async with self._producer_id_lock:
            if not self._producer_ids or self._producer_ids[0] >= self._producer_ids[1]:
                request = cpb.AllocateProducerIdsRequest(broker_id=self.broker_id, broker_epoch=self.session.broker_epoch)
                try:
                    reply = await self.controllers.call("controller", "AllocateProducerIds", request,
                                                        CONTROLLER_CALL_TIMEOUT_S)
                except ControllerUnavailable:
                    return ProducerIdResult(ErrorCode.coordinator_not_available)
                if reply.error_code != ErrorCode.none:
                    return ProducerIdResult(ErrorCode(reply.error_code))
                self._producer_ids = [reply.first_producer_id, reply.first_producer_id + reply.count]
            producer_id = self._producer_ids[0]
            self._producer_ids[0] += 1
            return ProducerIdResult(ErrorCode.none, producer_id, 0)

    # -- admin, forwarded to the active controller -----------------------------------------------
    async def _admin(self, method: str, request: Any) -> Any:
        return await self.controllers.call("admin", method, request, CONTROLLER_CALL_TIMEOUT_S)

    async def admin_call(self, method: str, request: Any) -> Any:
        """An AdminService call on the active controller (the Kafka security APIs use it); None when
        no controller answers."""
        try:
            return await self._admin(method, request)
        except ControllerUnavailable as e:
            log.warning("admin %s: %s", method, e)
            return None

    async def create_topics(self, topics: Sequence[NewTopic], validate_only: bool, timeout_ms: int) -> list[TopicOutcome]:
        request = apb.CreateTopicsRequest(validate_only=validate_only)
        for t in topics:
            request.topics.add(name=t.name, partitions=t.partitions, replication_factor=t.replication_factor,
                               configs=dict(t.configs))
        try:
            reply = await self._admin("CreateTopics", request)
        except ControllerUnavailable as e:
            return [TopicOutcome(t.name, ErrorCode.request_timed_out, str(e)) for t in topics]
        if reply.error.code:
            return [TopicOutcome(t.name, ErrorCode(reply.error.code), reply.error.message) for t in topics]
        outcomes = [TopicOutcome(r.name, ErrorCode(r.error_code), r.error_message, r.topic_id) for r in reply.results]
        if not validate_only:
            await self._wait_for_topics([o.name for o in outcomes if o.error == ErrorCode.none], timeout_ms)
        return outcomes

    async def _wait_for_topics(self, names: list[str], timeout_ms: int) -> None:
        """Answer after this broker's metadata has the new topics, so a Metadata call right after sees them."""
        deadline = time.monotonic() + min(max(timeout_ms, 0), 10_000) / 1000.0
        while time.monotonic() < deadline:
            if all(self.session.image.topic_by_name(n) is not None for n in names):
                return
            await asyncio.sleep(0.01)

    async def describe_quorum(self) -> QuorumInfo:
        try:
            reply = await self._admin("QuorumStatus", apb.QuorumStatusRequest())
        except ControllerUnavailable as e:
            return QuorumInfo(ErrorCode.request_timed_out, str(e))
        if reply.error.code:
            return QuorumInfo(ErrorCode(reply.error.code), reply.error.message)
        leader_view = reply.state == "leader"  # match indexes are known on the leader only
        voters = tuple((v.node_id, v.match_index if leader_view else -1) for v in reply.voters)
        observers = tuple((b, -1) for b in sorted(self.session.image.brokers)
                          if b not in {v.node_id for v in reply.voters})
        return QuorumInfo(ErrorCode.none, "", reply.leader_id, int(reply.term), int(reply.commit_index), voters,
                          observers)

    async def create_partitions(self, topics: Sequence[NewPartitions], validate_only: bool,
                                timeout_ms: int) -> list[TopicOutcome]:
        request = apb.CreatePartitionsRequest(validate_only=validate_only)
        for t in topics:
            item = request.topics.add(name=t.name, count=t.count)
            for replicas in t.assignments or ():
                item.assignments.add(broker_ids=replicas)
        try:
            reply = await self._admin("CreatePartitions", request)
        except ControllerUnavailable as e:
            return [TopicOutcome(t.name, ErrorCode.request_timed_out, str(e)) for t in topics]
        if reply.error.code:
            return [TopicOutcome(t.name, ErrorCode(reply.error.code), reply.error.message) for t in topics]
        outcomes = [TopicOutcome(r.name, ErrorCode(r.error_code), r.error_message, r.topic_id) for r in reply.results]
        if not validate_only:  # answer once this broker's metadata has the new partitions
            want = {t.name: t.count for t in topics}
            deadline = time.monotonic() + min(max(timeout_ms, 0), 10_000) / 1000.0
            ok = [o.name for o in outcomes if o.error == ErrorCode.none]
            while time.monotonic() < deadline and not all(
                    len(getattr(self.session.image.topic_by_name(n), "partitions", ())) >= want[n] for n in ok):
                await asyncio.sleep(0.01)
        return outcomes

    async def delete_topics(self, names: Sequence[str], timeout_ms: int) -> list[TopicOutcome]:
        try:
            reply = await self._admin("DeleteTopics", apb.DeleteTopicsRequest(names=list(names)))
        except ControllerUnavailable as e:
            return [TopicOutcome(n, ErrorCode.request_timed_out, str(e)) for n in names]
        if reply.error.code:
            return [TopicOutcome(n, ErrorCode(reply.error.code), reply.error.message) for n in names]
        return [TopicOutcome(r.name, ErrorCode(r.error_code), r.error_message, r.topic_id) for r in reply.results]

    async def describe_configs(self, resources: Sequence[tuple[int, str]]) -> list[ResourceConfigResult]:
        request = apb.DescribeConfigsRequest()
        for resource_type, name in resources:
            request.resources.add(type=resource_type, name=name)
        try:
            reply = await self._admin("DescribeConfigs", request)
        except ControllerUnavailable as e:
            return [ResourceConfigResult(t, n, ErrorCode.request_timed_out, str(e)) for t, n in resources]
        out = []
        for r in reply.results:
            entries = [ConfigValue(e.name, e.value, e.is_default, sensitive=False) for e in r.entries]
            out.append(ResourceConfigResult(r.resource.type, r.resource.name, ErrorCode(r.error_code), r.error_message,
                                            entries))
        return out

    async def alter_configs(self, resource_type: int, resource_name: str, ops: Sequence[AlterConfigOp],
                            validate_only: bool) -> ResourceConfigResult:
        request = apb.AlterConfigsRequest(validate_only=validate_only)
        item = request.items.add(resource=apb.ConfigResource(type=resource_type, name=resource_name))
        for op in ops:
            item.ops.add(name=op.name, value=op.value or "", op=op.op)
        try:
            reply = await self._admin("AlterConfigs", request)
        except ControllerUnavailable as e:
            return ResourceConfigResult(resource_type, resource_name, ErrorCode.request_timed_out, str(e))
        if reply.error.code:
            return ResourceConfigResult(resource_type, resource_name, ErrorCode(reply.error.code), reply.error.message)
        r = reply.results[0]
        return ResourceConfigResult(resource_type, resource_name, ErrorCode(r.error_code), r.error_message)

    async def elect_leaders(self, election_type: int, partitions: Sequence[tuple[str, int]] | None) -> list[ElectionOutcome]:
        request = apb.ElectLeadersRequest(election_type="unclean" if election_type == 1 else "preferred")
        for topic, index in partitions or ():
            request.partitions.add(topic=topic, partition=index)
        try:
            reply = await self._admin("ElectLeaders", request)
        except ControllerUnavailable as e:
            return [ElectionOutcome(t, i, ErrorCode.request_timed_out, str(e)) for t, i in partitions or ()]
        return [ElectionOutcome(r.topic, r.partition, ErrorCode(r.error_code), r.error_message) for r in reply.results]

    async def ensure_topic(self, name: str) -> ErrorCode:
        if self.session.image.topic_by_name(name) is not None:
            return ErrorCode.none
        if name == OFFSETS_TOPIC:
            # As Kafka: wait (COORDINATOR_NOT_AVAILABLE, which clients retry) until enough brokers are
            # up, never create a permanently under-replicated offsets topic because a group came early.
            rf = self.config.getint("offsets.topic.replication.factor")
            live = len(self.session.image.active_broker_ids())
            if live < rf:
                return ErrorCode.coordinator_not_available
            topic = NewTopic(name, self.config.getint("offsets.topic.num.partitions"), rf,
                             {"cleanup.policy": "compact"})
        elif name == TXN_TOPIC:
            # The transaction state log, as Kafka creates it: compacted, min.insync.replicas from
            # transaction.state.log.min.isr, and only once enough brokers are up.
            rf = self.config.getint("transaction.state.log.replication.factor")
            if len(self.session.image.active_broker_ids()) < rf:
                return ErrorCode.coordinator_not_available
            min_isr = min(self.config.getint("transaction.state.log.min.isr"), rf)
            topic = NewTopic(name, self.config.getint("transaction.state.log.num.partitions"), rf,
                             {"cleanup.policy": "compact", "min.insync.replicas": str(min_isr)})
        elif not bool(self.config["auto.create.topics.enable"]):
            return ErrorCode.unknown_topic_or_partition
        else:
            topic = NewTopic(name)
        outcomes = await self.create_topics([topic], False, 5000)
        error = outcomes[0].error if outcomes else ErrorCode.unknown_server_error
        if error in (ErrorCode.none, ErrorCode.topic_already_exists):
            return ErrorCode.none
        return error
