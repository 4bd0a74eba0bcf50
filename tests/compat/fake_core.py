"""A fake single-broker `BrokerCore` for wire-protocol tests: in-memory partition logs, no replication.

Append assigns offsets by rewriting each v2 batch's baseOffset (bytes 0..8, big-endian int64); the
high watermark is the log-end offset; unknown topics are auto-created on Metadata (when
`auto.create.topics.enable`); there are no groups. Batches are stored opaquely, so compressed
batches of every codec pass through unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.api import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    AlterConfigOp,
    ConfigValue,
    DeleteRecordsResult,
    ElectionOutcome,
    EpochEndOffset,
    FetchPartition,
    FetchResult,
    LogDirInfo,
    LogDirPartition,
    NewTopic,
    OffsetResult,
    ProduceResult,
    ProducerIdResult,
    ProducersResult,
    ResourceConfigResult,
    TopicOutcome,
)
from cluster.errors import ErrorCode
from cluster.image import MetadataImage, replay_all
from cluster.records import (
    ClusterRecord,
    ConfigRecord,
    PartitionRecord,
    RegisterBroker,
    RemoveTopic,
    TopicRecord,
    UnfenceBroker,
)
from controller.topics import PARTITIONS_PER_TOPIC_MAX

_BATCH = struct.Struct(">qi")  # baseOffset, batchLength
_LAST_OFFSET_DELTA = struct.Struct(">i")
_MAX_TIMESTAMP = struct.Struct(">q")

TOPIC_CONFIG_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "max.message.bytes": "1048588",
}


@dataclass
class _PartitionLog:
    batches: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # base, last, max_ts, batch
    log_end_offset: int = 0
    log_start_offset: int = 0


class FakeCore:
    """Implements broker.api.BrokerCore for one broker (id 1) in memory."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, auto_create: bool = True,
                 num_partitions: int = 1) -> None:
        self.broker_id = 1
        self.host = host
        self.port = port
        self.config: dict[str, object] = {
            "auto.create.topics.enable": auto_create,
            "num.partitions": num_partitions,
        }
        self._image = replay_all(MetadataImage(), [
            ClusterRecord("fake-cluster-id"),
            RegisterBroker(1, 1, "incarnation", host, port, 0),
            UnfenceBroker(1, 1),
        ])
        self._logs: dict[tuple[str, int], _PartitionLog] = {}
        self._appended = asyncio.Event()
        self._producer_ids = itertools.count(1000)
        self.produce_calls: list[tuple[str, int, int]] = []  # (topic, partition, acks)

    def set_port(self, port: int) -> None:
        """The listener's port, known only after it binds port 0: re-register with it."""
        self.port = port
        self._image = replay_all(self._image, [RegisterBroker(1, 2, "incarnation", self.host, port, 0),
                                               UnfenceBroker(1, 2)])

    # ---------------------------------------------------------------- metadata

    def image(self) -> MetadataImage:
        return self._image

    def advertised_kafka_address(self, broker_id: int, listener: str = "") -> tuple[str, int] | None:
        b = self._image.brokers.get(broker_id)
        return None if b is None else (b.host, b.kafka_port)

    def controller_id(self) -> int:
        return 1

    def server_config(self, name: str) -> object:
        return self.config[name]

    def is_leader(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._logs

    def add_leadership_listener(self, callback: object) -> None:
        pass

    def read_local(self, topic: str, partition: int, offset: int, max_bytes: int) -> tuple[bytes, int]:
        log = self._logs[(topic, partition)]
        data = self._read(log, offset, max_bytes)
        return data, log.log_end_offset

    def _create(self, topic: NewTopic) -> TopicOutcome:
        if self._image.topic_by_name(topic.name) is not None:
            return TopicOutcome(topic.name, ErrorCode.topic_already_exists, f"topic {topic.name!r} already exists")
        partitions = topic.partitions if topic.partitions > 0 else int(self.config["num.partitions"])  # type: ignore[call-overload]
        if partitions > PARTITIONS_PER_TOPIC_MAX:  # as the controller refuses it (a fuzzed request may ask 2^31)
            return TopicOutcome(topic.name, ErrorCode.invalid_partitions,
                                f"number of partitions {partitions} is larger than the limit of {PARTITIONS_PER_TOPIC_MAX}")
        if topic.replication_factor not in (-1, 1):
            return TopicOutcome(topic.name, ErrorCode.invalid_replication_factor,
                                "the fake cluster has one broker")
        topic_id = uuid.uuid4().bytes
        records: list = [TopicRecord(topic.name, topic_id)]
        records += [PartitionRecord(topic_id, i, (1,), (1,), 1) for i in range(partitions)]
        records += [ConfigRecord(2, topic.name, k, v) for k, v in topic.configs.items()]
        self._image = replay_all(self._image, records)
        for i in range(partitions):
            self._logs[(topic.name, i)] = _PartitionLog()
        return TopicOutcome(topic.name, topic_id=topic_id)

    async def admin_call(self, method: str, request: Any) -> Any:
        """Reassignment and UnregisterBroker run on the fake's image; no controller answers the rest
        (the security admin APIs answer REQUEST_TIMED_OUT)."""
        if method in ("AlterPartitionReassignments", "ListPartitionReassignments", "UnregisterBroker"):
            return await self._reassignment_admin(method, request)
        return None

    async def ensure_topic(self, name: str) -> ErrorCode:
        if self._image.topic_by_name(name) is not None:
            return ErrorCode.none
        if not self.config["auto.create.topics.enable"]:
            return ErrorCode.unknown_topic_or_partition
        return self._create(NewTopic(name)).error

    # ---------------------------------------------------------------- data

    def _log(self, topic: str, partition: int) -> _PartitionLog | None:
        return self._logs.get((topic, partition))

    async def produce(self, topic: str, partition: int, records: bytes, acks: int,
                      timeout_ms: int) -> ProduceResult:
        self.produce_calls.append((topic, partition, acks))
        log = self._log(topic, partition)
        if log is None:
            return ProduceResult(ErrorCode.unknown_topic_or_partition)
        base = log.log_end_offset
        offset = 0
        appended = []
        next_offset = base
        while offset < len(records):
            _, length = _BATCH.unpack_from(records, offset)
            batch = bytearray(records[offset:offset + 12 + length])
            (last_delta,) = _LAST_OFFSET_DELTA.unpack_from(batch, 23)
            (max_ts,) = _MAX_TIMESTAMP.unpack_from(batch, 35)
            struct.pack_into(">q", batch, 0, next_offset)
            appended.append((next_offset, next_offset + last_delta, max_ts, bytes(batch)))
            next_offset += last_delta + 1
            offset += 12 + length
        log.batches.extend(appended)
        log.log_end_offset = next_offset
        self._appended.set()
        self._appended = asyncio.Event()
        return ProduceResult(base_offset=base, log_start_offset=0)

    @staticmethod
    def _read(log: _PartitionLog, offset: int, max_bytes: int) -> bytes:
        out = bytearray()
        for _base, last, _ts, batch in log.batches:
            if last < offset:
                continue
            if out and len(out) + len(batch) > max_bytes:
                break
            out += batch
        return bytes(out)

    def _fetch_now(self, partitions: Sequence[FetchPartition], max_bytes: int) -> list[FetchResult]:
        results = []
        budget = max_bytes
        for p in partitions:
            log = self._log(p.topic, p.partition)
            if log is None:
                results.append(FetchResult(ErrorCode.unknown_topic_or_partition))
                continue
            if p.offset < 0 or p.offset > log.log_end_offset:
                results.append(FetchResult(ErrorCode.offset_out_of_range, log.log_end_offset, log.log_end_offset, 0))
                continue
            data = self._read(log, p.offset, min(p.max_bytes, budget)) if budget > 0 else b""
            budget -= len(data)
            results.append(FetchResult(ErrorCode.none, log.log_end_offset, log.log_end_offset, 0, data))
        return results

    async def fetch(self, partitions: Sequence[FetchPartition], max_wait_ms: int, min_bytes: int,
                    max_bytes: int, read_committed: bool = False) -> list[FetchResult]:
        # No transactions here: read_committed reads what read_uncommitted reads.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_ms / 1000
        while True:
            results = self._fetch_now(partitions, max_bytes)
            size = sum(len(r.records) for r in results)
            remaining = deadline - loop.time()
            if size >= max(1, min_bytes) or remaining <= 0 or any(r.error != ErrorCode.none for r in results):
                return results
            try:
                await asyncio.wait_for(self._appended.wait(), remaining)
            except TimeoutError:
                pass

    def list_offsets(self, topic: str, partition: int, timestamp: int,
                     current_leader_epoch: int = -1, read_committed: bool = False) -> OffsetResult:
        log = self._log(topic, partition)
        if log is None:
            return OffsetResult(ErrorCode.unknown_topic_or_partition)
        if timestamp == EARLIEST_TIMESTAMP:
            return OffsetResult(offset=0, leader_epoch=0)
        if timestamp == LATEST_TIMESTAMP:
            return OffsetResult(offset=log.log_end_offset, leader_epoch=0)
        for base, _last, max_ts, _batch in log.batches:
            if max_ts >= timestamp:
                return OffsetResult(offset=base, timestamp=max_ts, leader_epoch=0)
        return OffsetResult(offset=-1, timestamp=-1)

    def offset_for_leader_epoch(self, topic: str, partition: int, current_leader_epoch: int,
                                leader_epoch: int) -> EpochEndOffset:
        log = self._log(topic, partition)
        if log is None:
            return EpochEndOffset(ErrorCode.unknown_topic_or_partition)
        return EpochEndOffset(leader_epoch=0, end_offset=log.log_end_offset)

    async def init_producer_id(self) -> ProducerIdResult:
        return ProducerIdResult(producer_id=next(self._producer_ids), producer_epoch=0)

    # ---------------------------------------------------------------- admin

    async def create_topics(self, topics: Sequence[NewTopic], validate_only: bool,
                            timeout_ms: int) -> list[TopicOutcome]:
        if validate_only:
            return [TopicOutcome(t.name) for t in topics]
        return [self._create(t) for t in topics]

    async def describe_quorum(self):
        from broker.api import QuorumInfo

        return QuorumInfo(ErrorCode.none, "", 1, 3, self._image.offset, ((1, self._image.offset),), ())

    async def create_partitions(self, topics, validate_only: bool, timeout_ms: int) -> list[TopicOutcome]:
        out = []
        for t in topics:
            topic = self._image.topic_by_name(t.name)
            if topic is None:
                out.append(TopicOutcome(t.name, ErrorCode.unknown_topic_or_partition))
            elif not len(topic.partitions) < t.count <= 1000:  # the real limit is the controller's
                out.append(TopicOutcome(t.name, ErrorCode.invalid_partitions, "the count must grow, to 1000 at most"))
            else:
                if not validate_only:
                    self._image = replay_all(self._image, [
                        PartitionRecord(topic.topic_id, i, (1,), (1,), 1, 0, 0)
                        for i in range(len(topic.partitions), t.count)])
                out.append(TopicOutcome(t.name, topic_id=topic.topic_id))
        return out

    async def delete_topics(self, names: Sequence[str], timeout_ms: int) -> list[TopicOutcome]:
        out = []
        for name in names:
            topic = self._image.topic_by_name(name)
            if topic is None:
                out.append(TopicOutcome(name, ErrorCode.unknown_topic_or_partition))
                continue
            for index in topic.partitions:
                self._logs.pop((name, index), None)
            self._image = replay_all(self._image, [RemoveTopic(topic.topic_id)])
            out.append(TopicOutcome(name, topic_id=topic.topic_id))
        return out

    async def describe_configs(self, resources: Sequence[tuple[int, str]]) -> list[ResourceConfigResult]:
        out = []
        for resource_type, name in resources:
            if resource_type == 2 and self._image.topic_by_name(name) is None:
                out.append(ResourceConfigResult(resource_type, name, ErrorCode.unknown_topic_or_partition))
                continue
            dynamic = self._image.config(resource_type, name)
            defaults = TOPIC_CONFIG_DEFAULTS if resource_type == 2 else {"num.partitions": "1"}
            entries = [ConfigValue(k, dynamic.get(k, v), k not in dynamic) for k, v in sorted(defaults.items())]
            entries += [ConfigValue(k, v, False) for k, v in sorted(dynamic.items()) if k not in defaults]
            out.append(ResourceConfigResult(resource_type, name, entries=entries))
        return out

    async def alter_configs(self, resource_type: int, resource_name: str, ops: Sequence[AlterConfigOp],
                            validate_only: bool) -> ResourceConfigResult:
        if not validate_only:
            self._image = replay_all(self._image, [
                ConfigRecord(resource_type, resource_name, op.name, op.value if op.op == 0 else None) for op in ops
            ])
        return ResourceConfigResult(resource_type, resource_name)

    async def _reassignment_admin(self, method: str, request: Any) -> Any:
        """The AdminService calls the Kafka handlers forward (reassignments), on the fake's image."""
        from brookpb import admin_pb2 as apb
        from controller import reassignment

        if method == "AlterPartitionReassignments":
            moves = [(p.topic, p.partition, None if p.cancel else tuple(p.replicas)) for p in request.partitions]
            records, outcomes = reassignment.alter_reassignments(self._image, moves)
            self._image = replay_all(self._image, records)
            reply = apb.AlterPartitionReassignmentsResponse()
            for o in outcomes:
                reply.results.add(topic=o.topic, partition=o.partition, error_code=int(o.error),
                                  error_message=o.message)
            return reply
        if method == "ListPartitionReassignments":
            reply = apb.ListPartitionReassignmentsResponse()
            wanted = {t.topic: list(t.partitions) for t in request.topics} if request.topics else None
            for r in reassignment.list_reassignments(self._image, wanted):
                reply.reassignments.add(topic=r.topic, partition=r.partition, replicas=r.replicas,
                                        adding_replicas=r.adding_replicas, removing_replicas=r.removing_replicas)
            return reply
        if method == "UnregisterBroker":
            records, (error, message) = reassignment.unregister_broker(self._image, request.broker_id)
            self._image = replay_all(self._image, records)
            return apb.UnregisterBrokerResponse(error=apb.Error(code=int(error), message=message))
        raise NotImplementedError(method)

    async def delete_records(self, topic: str, partition: int, offset: int, timeout_ms: int) -> DeleteRecordsResult:
        log = self._log(topic, partition)
        if log is None:
            return DeleteRecordsResult(ErrorCode.unknown_topic_or_partition)
        target = log.log_end_offset if offset == -1 else offset
        if not 0 <= target <= log.log_end_offset:
            return DeleteRecordsResult(ErrorCode.offset_out_of_range)
        log.log_start_offset = max(log.log_start_offset, target)
        return DeleteRecordsResult(ErrorCode.none, log.log_start_offset)

    def describe_log_dirs(self, wanted) -> list[LogDirInfo]:
        parts = tuple(LogDirPartition(t, p, sum(len(b[3]) for b in log.batches))
                      for (t, p), log in sorted(self._logs.items())
                      if wanted is None or (t in wanted and (not wanted[t] or p in wanted[t])))
        return [LogDirInfo("/fake/log-dir", ErrorCode.none, parts, 1 << 30, 1 << 29)]

    def describe_producers(self, topic: str, partition: int) -> ProducersResult:
        if self._log(topic, partition) is None:
            return ProducersResult(ErrorCode.unknown_topic_or_partition)
        return ProducersResult(ErrorCode.none)

    async def elect_leaders(self, election_type: int,
                            partitions: Sequence[tuple[str, int]] | None) -> list[ElectionOutcome]:
        if partitions is None:
            partitions = sorted(self._logs)
        return [ElectionOutcome(t, p, ErrorCode.election_not_needed) for t, p in partitions]
