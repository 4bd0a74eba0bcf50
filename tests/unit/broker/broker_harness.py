"""A unit-level replication harness: real ReplicaManagers, LeaderSides and fetchers over MemoryLog.

No processes, no sockets: each broker is a `ReplicaManager` + `LeaderSide` behind the real
`BrokerServicer`; a follower's fetcher reaches its leader's servicer through an in-process stub that
round-trips every request and reply through protobuf bytes (as the wire would) and turns the leader's
long poll into an immediate answer (max_wait_ms = 0), so a test decides exactly which message moves
when. Metadata changes are records replayed into a `MetadataImage`, as the controller would commit
them; `sync()` hands the image to the brokers the test says are alive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.fetcher import FetcherLoop
from broker.grpc_service import BrokerServicer
from broker.replica_manager import LeaderSide, Partition, ReplicaManager
from brookpb import broker_pb2 as bpb
from cluster.errors import ErrorCode
from cluster.image import MetadataImage, replay_all
from cluster.limits import LONG_MAX
from cluster.records import (
    RESOURCE_TOPIC,
    ClusterRecord,
    PartitionChange,
    PartitionRecord,
    Record,
    RegisterBroker,
    TopicRecord,
    UnfenceBroker,
)
from storage.batch import Record as KafkaRecord
from storage.batch import build_batch, iter_batches
from storage.log import LogConfig
from storage.memory_log import MemoryLog

TOPIC = "t"
TOPIC_ID = b"t".ljust(16, b"\0")


class ManualClock:
    """A clock the test moves by hand (monotonic and wall time are the same number here)."""

    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, delta_ms: int) -> None:
        self.now_ms += delta_ms


class FakeLogManager:
    """LogManager's surface over MemoryLogs; a test may seed a log before the replica exists."""

    def __init__(self) -> None:
        self.logs: dict[tuple[bytes, int], MemoryLog] = {}

    def get_or_create(self, topic_id: bytes, topic: str, partition: int, config: LogConfig) -> MemoryLog:
        return self.logs.setdefault((topic_id, partition), MemoryLog(config))

    def delete(self, topic_id: bytes, partition: int) -> None:
        self.logs.pop((topic_id, partition), None)


def records(count: int, tag: bytes = b"v") -> list[KafkaRecord]:
    return [KafkaRecord(b"k", tag + b"%d" % i, 1000 + i) for i in range(count)]


def batch(count: int, tag: bytes = b"v", **kwargs: Any) -> bytes:
    """One producer batch of `count` records."""
    return build_batch(records(count, tag), **kwargs)


def batch_summary(log: MemoryLog, upper_bound: int) -> list[tuple[int, int, int, int]]:
    """(base offset, last offset, leader epoch, CRC) of every batch below `upper_bound`."""
    if upper_bound <= log.log_start_offset:
        return []
    data = log.read(log.log_start_offset, 1 << 30, upper_bound).records
    return [(h.base_offset, h.last_offset, h.partition_leader_epoch, h.crc) for h, _ in iter_batches(data)]


@dataclass
class Node:
    broker_id: int
    logs: FakeLogManager
    manager: ReplicaManager
    leader_side: LeaderSide
    servicer: BrokerServicer
    image: MetadataImage = field(default_factory=MetadataImage)
    alter_requests: list[tuple[Partition, tuple[int, ...]]] = field(default_factory=list)

    @property
    def partition(self) -> Partition:
        p = self.manager.lookup(TOPIC, 0)
        assert p is not None, f"broker {self.broker_id} has no replica"
        return p

    @property
    def log(self) -> MemoryLog:
        return self.logs.logs[(TOPIC_ID, 0)]


class _FakeBroker:
    """What BrokerServicer reads from a Broker for replication."""

    def __init__(self, node_ref: list[Node], cluster: Cluster) -> None:
        self._node_ref = node_ref
        self._cluster = cluster

    def image(self) -> MetadataImage:
        return self._cluster.image

    @property
    def leader_side(self) -> LeaderSide:
        return self._node_ref[0].leader_side

    @property
    def replicas(self) -> ReplicaManager:
        return self._node_ref[0].manager

    @property
    def broker_id(self) -> int:
        return self._node_ref[0].broker_id


class InProcessStub:
    """BrokerServiceStub's replication calls, answered by another node's servicer in this process."""

    def __init__(self, cluster: Cluster, leader_id: int) -> None:
        self.cluster = cluster
        self.leader_id = leader_id

    async def OffsetsForLeaderEpoch(self, request: Any, timeout: float | None = None) -> Any:
        wire = bpb.OffsetsForLeaderEpochRequest.FromString(request.SerializeToString())
        reply = await self.cluster.nodes[self.leader_id].servicer.OffsetsForLeaderEpoch(wire, None)
        return bpb.OffsetsForLeaderEpochResponse.FromString(reply.SerializeToString())

    async def ReplicaFetch(self, request: Any, timeout: float | None = None) -> Any:
        wire = bpb.ReplicaFetchRequest.FromString(request.SerializeToString())
        wire.max_wait_ms = 0  # answer at once: the test decides what moves when
        reply = await self.cluster.nodes[self.leader_id].servicer.ReplicaFetch(wire, None)
        return bpb.ReplicaFetchResponse.FromString(reply.SerializeToString())


class Cluster:
    """Brokers 1..n with one partition of topic `t`. Drive it from inside `asyncio.run`."""

    def __init__(self, broker_ids: Iterable[int] = (1, 2, 3), min_insync: int = 2) -> None:
        self.clock = ManualClock()
        self.min_insync = min_insync
        self.image = replay_all(MetadataImage(), [ClusterRecord("test-cluster")])
        self.nodes: dict[int, Node] = {}
        self.loops: dict[tuple[int, int], FetcherLoop] = {}
        for b in broker_ids:
            self.commit([RegisterBroker(b, self.image.offset + 1, f"inc-{b}", "127.0.0.1", 9000 + b, 9100 + b)])
            self.commit([UnfenceBroker(b, self.image.brokers[b].broker_epoch)])
            self.nodes[b] = self._make_node(b)

    def _make_node(self, broker_id: int) -> Node:
        ref: list[Node] = []
        logs = FakeLogManager()
        requests: list[tuple[Partition, tuple[int, ...]]] = []
        manager = ReplicaManager(broker_id, logs, {"replica.lag.time.max.ms": 30_000,
                                                      "leader.replication.throttled.rate": LONG_MAX,
                                                      "follower.replication.throttled.rate": LONG_MAX},
                                 requests.extend, lambda image, topic: LogConfig(),
                                 self._topic_value,
                                 monotonic_ms=self.clock, wall_ms=self.clock)
        leader_side = LeaderSide(manager)
        node = Node(broker_id, logs, manager, leader_side, BrokerServicer(_FakeBroker(ref, self)),
                    alter_requests=requests)
        ref.append(node)
        return node

    def _topic_value(self, image: MetadataImage, topic: str, key: str) -> str:
        """min.insync.replicas from the harness; other topic keys as the image stores them ("" if unset)."""
        if key == "min.insync.replicas":
            return str(self.min_insync)
        return image.config(RESOURCE_TOPIC, topic).get(key, "")

    # -- metadata ------------------------------------------------------------------------------
    def commit(self, new_records: list[Record]) -> None:
        self.image = replay_all(self.image, new_records)

    def create(self, replicas: tuple[int, ...], leader: int, isr: tuple[int, ...] | None = None) -> None:
        self.commit([TopicRecord(TOPIC, TOPIC_ID),
                     PartitionRecord(TOPIC_ID, 0, replicas, isr or replicas, leader)])

    def change(self, leader: int | None = None, isr: tuple[int, ...] | None = None) -> None:
        """A committed PartitionChange (a new leader bumps the leader epoch)."""
        current = self.image.partition(TOPIC_ID, 0)
        assert current is not None
        new_leader = current.leader if leader is None else leader
        self.commit([PartitionChange(TOPIC_ID, 0, isr=isr, leader=new_leader if new_leader != current.leader else -2)])

    def sync(self, *broker_ids: int) -> None:
        """Brokers learn the current image (all when none are named)."""
        for b in broker_ids or tuple(self.nodes):
            node = self.nodes[b]
            node.image = self.image
            node.manager.apply_image(self.image)

    def commit_alter_partition(self, leader_id: int) -> None:
        """The controller commits the leader's pending ISR change and the leader learns it."""
        node = self.nodes[leader_id]
        p, isr = node.alter_requests.pop()
        self.change(isr=isr)
        reg = self.image.partition(TOPIC_ID, 0)
        node.manager.on_alter_partition_result(p, ErrorCode.none, reg)
        self.sync()

    @property
    def registration(self):
        reg = self.image.partition(TOPIC_ID, 0)
        assert reg is not None
        return reg

    # -- data ------------------------------------------------------------------------------------
    async def produce(self, leader_id: int, data: bytes, acks: int = 1) -> Any:
        return await self.nodes[leader_id].manager.produce(TOPIC, 0, data, acks, 1000)

    async def round(self, follower_id: int) -> None:
        """One iteration of the follower's fetcher loop against the partition's current leader.

        The loop of each (follower, leader) pair is kept between rounds, as the broker keeps it, so
        its incremental fetch session (broker/fetch_session.py) lives across the scenario's steps."""
        node = self.nodes[follower_id]
        p = node.partition
        loop = self.loops.get((follower_id, p.leader_id))
        if loop is None or loop.m is not node.manager:
            loop = FetcherLoop(node.manager, follower_id, lambda: self.image.brokers[follower_id].broker_epoch,
                               p.leader_id, "in-process")
            await loop.channel.close(grace=None)
            loop.stub = InProcessStub(self, p.leader_id)
            self.loops[(follower_id, p.leader_id)] = loop
        parts = loop.partitions()
        if parts:
            error = await loop.run_once(parts)
            assert error is None, error

    async def rounds(self, follower_id: int, count: int) -> None:
        for _ in range(count):
            await self.round(follower_id)


def run(body) -> None:
    """Run an async test body on a fresh event loop."""
    asyncio.run(body())
