"""The broker: one object that owns the logs, the replicas, the controller session and the servers.

Lifecycle: bind the gRPC and Kafka listeners, register with the active controller (a new broker epoch
per process start), then keep two loops with the controller — heartbeats every
`broker.heartbeat.interval.ms` (liveness; the reply carries missing metadata) and a FetchMetadata long
poll (so leadership changes reach this broker within milliseconds). Each new image is reconciled by
the ReplicaManager. SIGTERM runs a controlled shutdown: heartbeats ask the controller to move this
broker's leaderships away, and the broker exits once it leads nothing (bounded wait).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Sequence
from typing import Any

from broker.api import (
    AlterConfigOp,
    ConfigValue,
    ElectionOutcome,
    EpochEndOffset,
    FetchPartition,
    FetchResult,
    NewTopic,
    OffsetResult,
    ProduceResult,
    ProducerIdResult,
    ResourceConfigResult,
    TopicOutcome,
)
from broker.controller_channel import ControllerChannel, ControllerUnavailable
from broker.fetcher import FetcherManager
from broker.replica_manager import LeaderSide, Partition, ReplicaManager, now_ms
from brookpb import admin_pb2 as apb
from brookpb import controller_pb2 as cpb
from cluster import codec
from cluster.config import TOPIC_TO_SERVER_DEFAULT, topic_config_defaults
from cluster.errors import BrookError, ErrorCode, LogError
from cluster.image import MetadataImage, PartitionRegistration, image_from_records, replay_all
from cluster.records import RESOURCE_BROKER, RESOURCE_TOPIC
from storage.log import LogConfig

log = logging.getLogger("brook.broker")

OFFSETS_TOPIC = "__consumer_offsets"
CONTROLLER_CALL_TIMEOUT_S = 5.0
METADATA_WAIT_MS = 1000
LONG_MAX = (1 << 63) - 1
# How often idle partitions are checked against flush.ms.
FLUSH_CHECK_INTERVAL_S = 1.0


def _read_cluster_id(path: str) -> str:
    """The cluster this log directory belongs to (Kafka's meta.properties), or "" when new."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "cluster.id":
                    return value
    except FileNotFoundError:
        pass
    return ""


def _write_cluster_id(path: str, cluster_id: str, node_id: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# Written by Brook on first registration: the cluster these logs belong to.\n"
                f"cluster.id={cluster_id}\nnode.id={node_id}\nversion=1\n")
    os.replace(tmp, path)


def _int(value: Any) -> int:
    return int(str(value).strip())


class Broker:
    def __init__(self, config: Any, log_manager: Any) -> None:
        self.config = config
        self.broker_id: int = config.node_id
        self.logs = log_manager
        self.incarnation_id = uuid.uuid4().hex
        self.broker_epoch = -1
        self.meta_path = os.path.join(config.log_dirs[0], "meta.properties")
        self.cluster_id = _read_cluster_id(self.meta_path)
        self.image_: MetadataImage = MetadataImage()
        self.controllers = ControllerChannel(list(config.controller_bootstrap))
        self.replicas = ReplicaManager(self.broker_id, log_manager, config, self._send_alter_partition,
                                       self.log_config_for, self.topic_value)
        self.leader_side = LeaderSide(self.replicas)
        self.fetchers = FetcherManager(self.replicas, self.broker_id, lambda: self.broker_epoch)
        self.replicas.fetcher_changed = self.fetchers.reconcile
        self.want_shutdown = False
        self.shutdown_ready = asyncio.Event()
        self.registered = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._producer_ids: list[int] = []  # [next, end)
        self._producer_id_lock = asyncio.Lock()
        self._heartbeat_now = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self._register()
        for coro in (self._heartbeat_loop(), self._metadata_loop(), self._isr_loop(), self._retention_loop(),
                     self._flush_loop()):
            self._tasks.append(loop.create_task(coro))

    async def _register(self) -> None:
        grpc_ep = self.config.advertised_listener("GRPC")
        # The first Kafka listener is the one registered (and answered in Metadata).
        kafka_ep = self.config.advertised_listener(next(iter(self.config.kafka_listeners())))
        request = cpb.RegisterBrokerRequest(
            broker_id=self.broker_id, incarnation_id=self.incarnation_id, host=grpc_ep.host,
            kafka_port=kafka_ep.port if kafka_ep else 0, grpc_port=grpc_ep.port,
            rack=str(self.config["broker.rack"] or ""), cluster_id=self.cluster_id)
        delay = 0.1
        while True:
            try:
                reply = await self.controllers.call("controller", "RegisterBroker", request, CONTROLLER_CALL_TIMEOUT_S)
                if reply.error_code == ErrorCode.none:
                    self.broker_epoch = reply.broker_epoch
                    if reply.cluster_id != self.cluster_id:
                        _write_cluster_id(self.meta_path, reply.cluster_id, self.broker_id)
                    self.cluster_id = reply.cluster_id
                    self.registered.set()
                    log.info("broker %d registered: epoch %d, cluster %s", self.broker_id, self.broker_epoch,
                             self.cluster_id)
                    return
                log.warning("registration refused: %s", reply.error_message or ErrorCode(reply.error_code).name)
                if reply.error_code == ErrorCode.inconsistent_cluster_id:
                    raise BrookError(reply.error_message)
            except ControllerUnavailable as e:
                log.info("waiting for the controller quorum: %s", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def controlled_shutdown(self, timeout_s: float) -> None:
        """Ask the controller to move leaderships away; wait (bounded) until it says we are done."""
        self.want_shutdown = True
        self._heartbeat_now.set()
        try:
            await asyncio.wait_for(self.shutdown_ready.wait(), timeout_s)
            log.info("controlled shutdown complete: no leaderships left")
        except TimeoutError:
            log.warning("controlled shutdown did not complete within %.1fs; stopping anyway", timeout_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.fetchers.stop()
        await self.controllers.close()
        self.logs.close()

    # -- controller session ----------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval_s = _int(self.config["broker.heartbeat.interval.ms"]) / 1000.0
        while True:
            request = cpb.BrokerHeartbeatRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch,
                                                 metadata_offset=self.image_.offset, want_shutdown=self.want_shutdown)
            for p in self.replicas.partitions.values():
                if p.registration is not None and p.registration.leader < 0:
                    request.offline_replicas.add(topic_id=p.topic_id, partition=p.index,
                                                 log_end_offset=p.log.log_end_offset)
            try:
                reply = await self.controllers.call("controller", "BrokerHeartbeat", request, CONTROLLER_CALL_TIMEOUT_S)
                if reply.error_code in (ErrorCode.stale_broker_epoch, ErrorCode.broker_id_not_registered):
                    log.warning("heartbeat rejected (%s): registering again", ErrorCode(reply.error_code).name)
                    self.incarnation_id = uuid.uuid4().hex
                    await self._register()
                    continue
                if reply.error_code == ErrorCode.none:
                    self._apply_metadata(request.metadata_offset, reply)
                    if reply.shutdown_ready and self.want_shutdown:
                        self.shutdown_ready.set()
            except ControllerUnavailable as e:
                log.debug("heartbeat failed: %s", e)
            except Exception:
                log.exception("heartbeat failed")
            self._heartbeat_now.clear()
            try:
                await asyncio.wait_for(self._heartbeat_now.wait(), interval_s if not self.want_shutdown else 0.1)
            except TimeoutError:
                pass

    async def _metadata_loop(self) -> None:
        while True:
            request = cpb.BrokerHeartbeatRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch,
                                                 metadata_offset=self.image_.offset, max_wait_ms=METADATA_WAIT_MS)
            try:
                reply = await self.controllers.call("controller", "FetchMetadata", request,
                                                    METADATA_WAIT_MS / 1000.0 + CONTROLLER_CALL_TIMEOUT_S)
                if reply.error_code == ErrorCode.none:
                    self._apply_metadata(request.metadata_offset, reply)
                    continue
            except ControllerUnavailable as e:
                log.debug("metadata fetch failed: %s", e)
            except Exception:
                log.exception("metadata fetch failed")
            await asyncio.sleep(0.2)

    def _apply_metadata(self, base_offset: int, reply: Any) -> None:
        current = self.image_
        if reply.full_image:
            if reply.metadata_offset <= current.offset and current.offset >= 0:
                return
            records = [codec.record_from_pb(r) for r in reply.records]
            image = image_from_records(records, reply.metadata_offset)
        else:
            if not reply.records or base_offset != current.offset:
                return  # nothing new, or another reply already moved us past this one
            image = replay_all(current, [codec.record_from_pb(r) for r in reply.records])
            if image.offset != reply.metadata_offset:
                log.error("metadata offsets disagree (%d != %d); asking for a full image", image.offset,
                          reply.metadata_offset)
                self.image_ = MetadataImage(offset=-1)
                return
        self.image_ = image
        self.replicas.apply_image(image)
        me = image.brokers.get(self.broker_id)
        if me is not None and me.broker_epoch == self.broker_epoch and me.fenced and not self.want_shutdown:
            self._heartbeat_now.set()  # ask to be unfenced as soon as we have caught up

    async def _send_alter_partition_async(self, requests: list[tuple[Partition, tuple[int, ...]]]) -> None:
        request = cpb.AlterPartitionRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch)
        by_key: dict[tuple[bytes, int], Partition] = {}
        for p, isr in requests:
            state = p.leader
            if state is None:
                continue
            by_key[(p.topic_id, p.index)] = p
            request.items.add(topic_id=p.topic_id, partition=p.index, leader_epoch=state.leader_epoch,
                              partition_epoch=state.partition_epoch, new_isr=isr)
        try:
            reply = await self.controllers.call("controller", "AlterPartition", request, CONTROLLER_CALL_TIMEOUT_S)
        except Exception as e:
            log.info("AlterPartition failed: %s", e)
            for pending in by_key.values():
                if pending.leader is not None:
                    pending.leader.pending_isr = None
            return
        for r in reply.results:
            if (r.topic_id, r.partition) not in by_key:
                continue
            p = by_key.pop((r.topic_id, r.partition))
            reg = None
            if r.error_code == ErrorCode.none:
                assert p.registration is not None
                reg = PartitionRegistration(p.registration.replicas, tuple(r.isr), r.leader, r.leader_epoch,
                                            r.partition_epoch, p.registration.unclean_elections)
            self.replicas.on_alter_partition_result(p, ErrorCode(r.error_code), reg)
        for pending in by_key.values():
            if pending.leader is not None:
                pending.leader.pending_isr = None

    def _send_alter_partition(self, requests: list[tuple[Partition, tuple[int, ...]]]) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._send_alter_partition_async(requests)))
        self._tasks = [t for t in self._tasks if not t.done()]

    async def _isr_loop(self) -> None:
        period_s = max(0.1, min(1.0, _int(self.config["replica.lag.time.max.ms"]) / 4000.0))
        while True:
            await asyncio.sleep(period_s)
            try:
                self.replicas.isr_maintenance()
            except Exception:
                log.exception("ISR maintenance failed")

    async def _retention_loop(self) -> None:
        interval_s = max(0.1, _int(self.config["log.retention.check.interval.ms"]) / 1000.0)
        while True:
            await asyncio.sleep(interval_s)
            for p in list(self.replicas.partitions.values()):
                try:
                    p.log.apply_retention(now_ms())
                    p.log.maybe_compact(now_ms())
                except Exception:
                    log.exception("retention of %s-%d failed", p.topic, p.index)
                await asyncio.sleep(0)

    async def _flush_loop(self) -> None:
        """flush.ms is checked on append by the log; this syncs idle partitions whose time has come."""
        while True:
            await asyncio.sleep(FLUSH_CHECK_INTERVAL_S)
            for p in list(self.replicas.partitions.values()):
                if p.log.flush_due():
                    try:
                        p.log.flush()
                    except Exception:
                        log.exception("flush of %s-%d failed", p.topic, p.index)

    # -- configuration ---------------------------------------------------------------------------
    def topic_value(self, image: MetadataImage, topic: str, key: str) -> str:
        explicit = image.config(RESOURCE_TOPIC, topic).get(key)
        if explicit is not None:
            return explicit
        server_key = TOPIC_TO_SERVER_DEFAULT.get(key)
        if server_key:
            dynamic = image.config(RESOURCE_BROKER, "").get(server_key)
            if dynamic is not None:
                return dynamic
        return str(topic_config_defaults(self.config)[key])

    def log_config_for(self, image: MetadataImage, topic: str) -> LogConfig:
        def v(key: str) -> str:
            return self.topic_value(image, topic, key)
        flush_ms = _int(v("flush.ms"))
        return LogConfig(
            segment_bytes=_int(v("segment.bytes")), segment_ms=_int(v("segment.ms")),
            retention_ms=_int(v("retention.ms")), retention_bytes=_int(v("retention.bytes")),
            cleanup_policy=v("cleanup.policy"), delete_retention_ms=_int(v("delete.retention.ms")),
            max_message_bytes=_int(v("max.message.bytes")), flush_messages=_int(v("flush.messages")),
            flush_ms=flush_ms if flush_ms >= 0 else LONG_MAX,
            message_timestamp_type=v("message.timestamp.type"))

    # -- BrokerCore ------------------------------------------------------------------------------
    def image(self) -> MetadataImage:
        return self.image_

    def advertised_kafka_address(self, broker_id: int) -> tuple[str, int] | None:
        b = self.image_.brokers.get(broker_id)
        return None if b is None else (b.host, b.kafka_port)

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
                    max_bytes: int) -> list[FetchResult]:
        return await self.replicas.fetch(partitions, max_wait_ms, min_bytes, max_bytes)

    def list_offsets(self, topic: str, partition: int, timestamp: int, current_leader_epoch: int = -1) -> OffsetResult:
        p = self.replicas.lookup(topic, partition)
        if p is None or p.leader is None:
            return OffsetResult(self.replicas._not_leader_error(topic, partition))
        if current_leader_epoch >= 0 and current_leader_epoch != p.leader_epoch:
            return OffsetResult(ErrorCode.fenced_leader_epoch if current_leader_epoch < p.leader_epoch
                                else ErrorCode.unknown_leader_epoch)
        hw = p.leader.high_watermark
        if timestamp == -1:
            return OffsetResult(ErrorCode.none, hw, -1, p.leader_epoch)
        if timestamp == -2:
            return OffsetResult(ErrorCode.none, p.log.log_start_offset, -1, p.leader_epoch)
        found = p.log.offset_for_timestamp(timestamp)
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

    async def init_producer_id(self) -> ProducerIdResult:
        async with self._producer_id_lock:
            if not self._producer_ids or self._producer_ids[0] >= self._producer_ids[1]:
                request = cpb.AllocateProducerIdsRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch)
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
            if all(self.image_.topic_by_name(n) is not None for n in names):
                return
            await asyncio.sleep(0.01)

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
        if self.image_.topic_by_name(name) is not None:
            return ErrorCode.none
        if name == OFFSETS_TOPIC:
            live = len(self.image_.active_broker_ids())
            rf = max(1, min(_int(self.config["offsets.topic.replication.factor"]), live))
            topic = NewTopic(name, _int(self.config["offsets.topic.num.partitions"]), rf,
                             {"cleanup.policy": "compact"})
        elif not bool(self.config["auto.create.topics.enable"]):
            return ErrorCode.unknown_topic_or_partition
        else:
            topic = NewTopic(name)
        outcomes = await self.create_topics([topic], False, 5000)
        error = outcomes[0].error if outcomes else ErrorCode.unknown_server_error
        if error in (ErrorCode.none, ErrorCode.topic_already_exists):
            return ErrorCode.none
        return error
