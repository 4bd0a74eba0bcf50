"""The simulated cluster: 3 controllers over one simulated Raft log, 3 brokers, a client, a network.

What runs is production code: `broker.core.Broker` (registration, heartbeats, metadata replay via
`cluster.image.replay_all`, ISR maintenance, AlterPartition), `ReplicaManager`/`LeaderState`,
`LeaderSide.replica_fetch` (the long poll), `FetcherLoop._run` (truncation and fetching), the gRPC
servicers' request handling, `ControllerRuntime` + `ControllerServicer` (fencing, elections,
AlterPartition, heartbeats), all over `storage.memory_log.MemoryLog`. Only the transports are
simulated: gRPC stubs become `Rpc` waits on the simulated network, pysyncobj becomes `SimRaft` (a
linearizable log with a leader that can fail over), RocksDB becomes MemoryLog kept across crashes.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from broker.controller_channel import ControllerChannel
from broker.core import Broker
from broker.fetcher import FetcherLoop
from broker.grpc_service import BrokerServicer
from brookpb import broker_pb2 as bpb
from cluster.codec import encode_command
from cluster.config import Config
from cluster.errors import ErrorCode
from cluster.image import MetadataImage
from cluster.records import Record
from controller import replication
from controller.commands import STATUS_OK, ApplyResult, QuorumError, RequestIds, apply_command
from controller.service import ControllerRuntime, ControllerServicer
from controller.topics import TopicRequest, create_topics
from storage.batch import build_batch, decode_batch
from storage.epoch_cache import EpochCache
from storage.log import AppendInfo, LogConfig
from storage.memory_log import MemoryLog
from storage.producer_state import ProducerStateTable
from storage.records import Record as LogRecord
from tests.sim.sched import EPOCH_MS, Node, Rpc, Sim, SimRpcError, Sleep, patched

TOPIC = "t"
BROKER_IDS = (1, 2, 3)
CONTROLLER_IDS = (101, 102, 103)

# Simulated-time settings (ms): small, so one seed is a few hundred to a few thousand events.
HEARTBEAT_MS = 50
SESSION_MS = 300
LAG_MS = 300
# Production's RPC timeouts (5-10 s) scaled to the simulated run; the replica long poll waits less.
RPC_TIMEOUT_MAX_S = 0.5
FETCH_WAIT_MS = 200
DISCONNECT_GRACE_MS = 60  # a crashed broker's dropped connection: fenced after this (production: 1 s of 9)


ALL_KINDS = ("crash", "crash_leader", "pause", "partition", "isolate_leader", "controller_failover",
             "preferred_election", "slow_link", "leader_bounce", "leader_return", "power_loss", "power_loss_leader",
             "power_outage", "outage_during_catchup")
LEADERSHIP_KINDS = ("leader_bounce", "leader_return", "pause", "slow_link")
CHURN_KINDS = ("crash_leader", "crash_leader", "crash", "pause", "isolate_leader", "power_loss_leader")
POWER_KINDS = ("power_loss", "power_loss_leader", "power_outage", "outage_during_catchup")


@dataclass
class Faults:
    """The fault mix. Probabilities are per message; counts per seed (drawn from the seed)."""

    loss: float = 0.01
    duplicate: float = 0.01
    slow: float = 0.05              # a message takes 10-150 ms instead of 1-4 (reordering)
    fault_window_ms: tuple[int, int] = (300, 2500)
    heal_ms: int = 2500             # faults stop, everything heals and restarts
    end_ms: int = 4000
    faults: tuple[int, int] = (3, 9)  # how many discrete faults per seed
    churn: float = 0.25             # chance that a broker becoming leader is crashed right after
    slow_commit: float = 0.03       # chance that a metadata commit takes 200-800 ms (callers time out first)
    kinds: tuple[str, ...] = ALL_KINDS
    leadership_profile: float = 0.25  # share of seeds that draw only from LEADERSHIP_KINDS
    churn_profile: float = 0.25       # share of seeds that draw only from CHURN_KINDS, with churn 0.6
    synced: float = 0.5               # share of seeds whose topic has flush.messages=1 (appends fsynced);
                                      # only those see power losses (see DurableMemoryLog)


class DurableMemoryLog(MemoryLog):
    """MemoryLog plus what a power loss keeps of the RocksDB log (storage/rocksdb_log.py).

    Every RocksDB write goes to the WAL before it returns, so a process crash keeps everything; only
    a WAL sync makes it survive a power loss, and the WAL is one sequential file, so a sync makes every
    earlier write durable too (RocksDB recovers a prefix of it). `RocksDBLog._write` syncs an append
    at once with flush.messages=1, else once flush.messages records or flush.ms have accumulated (and
    the broker's flush loop syncs idle partitions past flush.ms); the HW checkpoint, the epoch entry
    a new leader records, truncations and deletions are written unsynced. So the durable state is the
    log as of the last sync: `power_loss` rolls the whole log (batches, epoch cache, producer state,
    HW checkpoint) back to it.
    """

    def __init__(self, config: LogConfig, clock_ms: Callable[[], int]) -> None:
        super().__init__(config)
        self._clock_ms = clock_ms
        self._unflushed_records = 0
        self._last_flush_ms = clock_ms()
        self._durable: tuple[Any, ...] = ()  # a new partition's first write is unsynced too
        self._durable_empty = self._state()

    def _state(self) -> tuple[Any, ...]:
        return (list(self._batches), list(self._segments), EpochCache(self._epochs.entries()),
                ProducerStateTable(self._producers.entries()), self._log_start_offset, self._log_end_offset,
                self._high_watermark, self._cleaner_offset, copy.deepcopy(getattr(self, "_txns", None)))

    def _written(self, records_count: int) -> None:
        """RocksDBLog._write's flush policy, after an append of `records_count` records."""
        config = self._config
        if config.flush_messages == 1 and records_count > 0:
            self.flush()
            return
        self._unflushed_records += records_count
        if (self._unflushed_records >= config.flush_messages
                or self._clock_ms() - self._last_flush_ms >= config.flush_ms):
            self.flush()

    def append_as_leader(self, records: bytes, leader_epoch: int, now_ms: int, **kwargs: Any) -> AppendInfo:
        info = super().append_as_leader(records, leader_epoch, now_ms, **kwargs)
        self._written(info.last_offset - info.first_offset + 1)
        return info

    def append_as_follower(self, records: bytes, now_ms: int | None = None) -> AppendInfo:
        info = super().append_as_follower(records, now_ms)
        self._written(info.last_offset - info.first_offset + 1)
        return info

    def flush_due(self) -> bool:
        return self._unflushed_records > 0 and self._clock_ms() - self._last_flush_ms >= self._config.flush_ms

    def flush(self) -> None:
        self._durable = self._state()
        self._unflushed_records = 0
        self._last_flush_ms = self._clock_ms()

    def power_loss(self) -> None:
        state = self._durable or self._durable_empty
        (batches, segments, epochs, producers, self._log_start_offset, self._log_end_offset,
         self._high_watermark, self._cleaner_offset, txns) = state
        if txns is not None:
            self._txns = copy.deepcopy(txns)  # the transaction index is in the same WriteBatches
        self._batches, self._segments = list(batches), list(segments)
        self._epochs, self._producers = EpochCache(epochs.entries()), ProducerStateTable(producers.entries())
        self._unflushed_records = 0


class SimLogManager:
    """The broker's log directory: survives crashes (the logs are what a process restart keeps)."""

    def __init__(self, clock_ms: Callable[[], int]) -> None:
        self.logs: dict[tuple[bytes, int], DurableMemoryLog] = {}
        self.clock_ms = clock_ms

    def get_or_create(self, topic_id: bytes, topic: str, partition: int, config: LogConfig) -> MemoryLog:
        key = (topic_id, partition)
        log = self.logs.get(key)
        if log is None:
            log = self.logs[key] = DurableMemoryLog(config, self.clock_ms)
        return log

    def delete(self, topic_id: bytes, partition: int) -> None:
        self.logs.pop((topic_id, partition), None)

    def power_loss(self) -> None:
        for log in self.logs.values():
            log.power_loss()

    def close(self) -> None:
        """Nothing to release."""


# -- the network ---------------------------------------------------------------------------------

class SimNet:
    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.sim = cluster.sim
        self.cuts: set[tuple[str, str]] = set()  # (a, b) with a < b: no traffic either way
        # (src, dst) -> extra delay up to this many ms for messages from src to dst (a congested link
        # may be slow one way only: a follower's requests arrive at once, the leader's answers late)
        self.slow: dict[tuple[str, str], int] = {}
        self.serving: dict[Any, tuple[Node, int]] = {}  # server task -> the calling process
        self.faults_on = True

    def blocked(self, a: Node, b: Node) -> bool:
        return (min(a.name, b.name), max(a.name, b.name)) in self.cuts

    def _delay(self, src: Node, dst: Node) -> int:
        rng = self.sim.rng
        f = self.cluster.faults
        extra = 0
        if self.slow:
            slow = self.slow.get((src.name, dst.name), 0)
            extra = rng.randint(slow // 4, slow) if slow else 0
        if self.faults_on and rng.random() < f.slow:
            return extra + rng.randint(10, 150)
        return extra + rng.randint(1, 4)

    def send(self, src: Node, src_gen: int, dst: Node, dst_gen: int, deliver: Callable[[], None]) -> None:
        """One message on the connection between two incarnations; dropped if either has changed."""
        rng, f = self.sim.rng, self.cluster.faults
        if self.blocked(src, dst) or (self.faults_on and rng.random() < f.loss):
            return
        copies = 2 if self.faults_on and rng.random() < f.duplicate else 1
        for _ in range(copies):
            self.sim.at(self.sim.now + self._delay(src, dst), self._arrive, src, src_gen, dst, dst_gen, deliver)

    def _arrive(self, src: Node, src_gen: int, dst: Node, dst_gen: int, deliver: Callable[[], None]) -> None:
        if dst.gen != dst_gen or not dst.up or src.gen != src_gen or self.blocked(src, dst):
            return
        if dst.paused_until > self.sim.now:
            self.sim.at(dst.paused_until, self._arrive, src, src_gen, dst, dst_gen, deliver)
            return
        deliver()

    def call(self, src: Node, dst: Node, method: str, request: Any, handler: Callable[[Any, Any], Any],
             on_reply: Callable[[Any], None], timeout_ms: int) -> None:
        src_gen, dst_gen = src.gen, dst.gen
        context = SimContext(self.sim, self.sim.now + timeout_ms)

        def serve() -> None:
            def done(task: Any) -> None:
                self.serving.pop(task, None)
                if task.error is None:
                    self.send(dst, dst_gen, src, src_gen, lambda: on_reply(task.result))
            task = dst.spawn(handler(request, context), f"serve {method}", done)
            self.serving[task] = (src, src_gen)

        self.send(src, src_gen, dst, dst_gen, serve)

    def crashed(self, node: Node) -> None:
        """gRPC cancels the server side of every call a crashed process had open (its connections close)."""
        for task, (src, gen) in list(self.serving.items()):
            if src is node and gen != node.gen:
                self.serving.pop(task, None)
                task.cancel()


# -- transports the production code calls ----------------------------------------------------------

class SimContext:
    """The part of grpc.aio.ServicerContext the servicers use."""

    def __init__(self, sim: Sim, deadline_ms: int) -> None:
        self.sim, self.deadline_ms = sim, deadline_ms

    def time_remaining(self) -> float:
        return max(0.0, (self.deadline_ms - self.sim.now) / 1000.0)


class _Stub:
    """A gRPC stub: each method returns an `Rpc` wait to the node that owns `address`."""

    def __init__(self, cluster: SimCluster, src: Node, target: Callable[[], tuple[Node | None, Any]]) -> None:
        self._cluster, self._src, self._target = cluster, src, target

    def __getattr__(self, method: str) -> Callable[..., Rpc]:
        def call(request: Any, timeout: float = 5.0) -> Rpc:
            node, servicer_of = self._target()
            timeout = min(timeout, RPC_TIMEOUT_MAX_S)

            def handler(req: Any, context: Any) -> Any:
                servicer = servicer_of()
                if servicer is None:
                    raise RuntimeError("no server")
                return getattr(servicer, method)(req, context)
            return Rpc(self._src, node, method, request, timeout, handler)
        return call


class SimControllerChannel(ControllerChannel):
    def __init__(self, cluster: SimCluster, src: Node, bootstrap: list[str]) -> None:
        super().__init__(bootstrap)
        self._cluster, self._src = cluster, src

    def controller_stub(self, address: str) -> Any:
        controller = self._cluster.controller_by_address(address)
        return _Stub(self._cluster, self._src, lambda: (controller.node if controller else None,
                                                        lambda: controller.servicer if controller else None))

    async def close(self) -> None:
        """No channels to close."""


class SimFetcherLoop(FetcherLoop):
    """The production follower loop (`_run`, `_truncate`, `_fetch`) with a simulated stub."""

    cluster: SimCluster  # set by SimCluster while it runs

    def __init__(self, manager: Any, broker_id: int, broker_epoch: Callable[[], int], leader_id: int,
                 address: str) -> None:
        import asyncio
        self.m = manager
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.leader_id = leader_id
        self.address = address
        cluster = SimFetcherLoop.cluster
        self.node = cluster.sim.current_node
        assert self.node is not None
        leader = cluster.brokers[leader_id]
        self.stub = _Stub(cluster, self.node, lambda: (leader.node, lambda: leader.servicer))
        self.task = None
        self.wake = asyncio.Event()
        # Backoff state of the production loop (where it has it): seeded jitter, simulated sleep.
        self.rng = random.Random(cluster.sim.rng.getrandbits(32))
        self.sleep = Sleep
        self.failures = 0
        self.last_error = None

    def start(self) -> None:
        self.task = self.node.spawn(self._run(), f"fetcher {self.broker_id}<-{self.leader_id}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


# -- simulated Raft --------------------------------------------------------------------------------

class SimRaft:
    """The controller quorum as Raft promises it: one linearizable log, at most one leader at a time."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.image = MetadataImage()
        self.recent: list[tuple[int, Record]] = []
        self.request_ids = RequestIds()
        self.leader = -1
        self.views: dict[int, SimQuorum] = {}

    # MetadataStateMachine's reader API
    @property
    def state(self) -> SimRaft:
        return self

    def records_since(self, offset: int, limit: int) -> tuple[MetadataImage, list[Record] | None]:
        image = self.image
        if offset >= image.offset:
            return image, []
        if offset + 1 < 0:
            return image, None
        return image, [r for _, r in self.recent[offset + 1: offset + 1 + limit]]

    def set_leader(self, node_id: int) -> None:
        self.leader = node_id
        self.cluster.sim.note(f"raft: controller leader is {node_id}")
        for view in list(self.views.values()):
            view.notify_state()

    def commit(self, records: list[Record], base_offset: int, request_id: str | None) -> ApplyResult:
        """What every controller does with a committed command (the pure controller.commands core)."""
        applied = apply_command(self.image, self.request_ids,
                                encode_command(request_id or self.cluster.sim.uuid4().hex, base_offset, records))
        if applied.result.status != STATUS_OK:
            return applied.result
        for index, record in enumerate(applied.records):
            self.recent.append((base_offset + 1 + index, record))
        self.image = image = applied.image
        self.request_ids.add(applied.request_id)
        self.cluster.on_metadata_commit(applied.records, image)
        for view in list(self.views.values()):
            view.notify_change()
        return ApplyResult("ok", image.offset)


class SimQuorum:
    """controller.quorum.Quorum's interface for one controller node over SimRaft."""

    def __init__(self, raft: SimRaft, node: Node, node_id: int) -> None:
        self.raft = raft
        self.node = node
        self.settings = SimpleNamespace(node_id=node_id)
        self.self_address = f"c{node_id}:raft"
        self._state_listeners: list[Callable[[], None]] = []
        self._change_listeners: list[Callable[[], None]] = []

    @property
    def state(self) -> SimRaft:
        return self.raft

    def add_state_listener(self, callback: Callable[[], None]) -> None:
        self._state_listeners.append(callback)

    def add_change_listener(self, callback: Callable[[], None]) -> None:
        self._change_listeners.append(callback)

    def _as_node(self, callbacks: list[Callable[[], None]]) -> None:
        sim = self.node.sim
        previous, sim.current_node = sim.current_node, self.node
        try:
            for callback in callbacks:
                callback()
        finally:
            sim.current_node = previous
            sim.after_step(self.node)

    def notify_state(self) -> None:
        if self.node.up:
            self._as_node(self._state_listeners)

    def notify_change(self) -> None:
        if self.node.up:
            self._as_node(self._change_listeners)

    def is_leader(self) -> bool:
        return self.raft.leader == self.settings.node_id and self.node.up

    def leader_node_id(self) -> int:
        return self.raft.leader

    def status(self) -> dict:
        return {"leader": f"c{self.raft.leader}:raft" if self.raft.leader >= 0 else None}

    async def submit(self, records: Any, base_offset: int, request_id: str | None = None,
                     timeout_s: float = 5.0) -> ApplyResult:
        cluster, rng = self.raft.cluster, self.node.sim.rng
        slow = cluster.faults_active and rng.random() < cluster.faults.slow_commit
        # A Raft round trip; sometimes a slow one (a lagging majority), which callers give up on
        # while the command still commits (pysyncobj does not cancel a timed-out call).
        await Sleep((rng.randint(200, 800) if slow else rng.randint(1, 5)) / 1000.0)
        if not self.is_leader():
            raise QuorumError("this controller is not the leader")
        return self.raft.commit(list(records), base_offset, request_id)


# -- processes ---------------------------------------------------------------------------------------

class SimController:
    def __init__(self, cluster: SimCluster, node_id: int) -> None:
        self.cluster = cluster
        self.node_id = node_id
        self.address = f"c{node_id}:9200"
        self.node = Node(cluster.sim, f"c{node_id}")
        self.runtime: ControllerRuntime | None = None
        self.servicer: ControllerServicer | None = None

    def boot(self) -> None:
        config = Config.from_mapping({
            "process.roles": "controller", "node.id": str(self.node_id), "cluster.id": "simcluster",
            "broker.session.timeout.ms": str(SESSION_MS), "broker.heartbeat.interval.ms": str(HEARTBEAT_MS),
            "auto.leader.rebalance.enable": "false",
        }, validate=False)
        quorum = SimQuorum(self.cluster.raft, self.node, self.node_id)
        self.cluster.raft.views[self.node_id] = quorum
        sim = self.cluster.sim
        previous, sim.current_node = sim.current_node, self.node
        try:
            self.runtime = ControllerRuntime(config, quorum, self.address, clock_ms=lambda: sim.now)  # type: ignore[arg-type]
            self.servicer = ControllerServicer(self.runtime)
            self.runtime.start()
        finally:
            sim.current_node = previous

    def crash(self) -> None:
        self.node.crash()
        self.cluster.net.crashed(self.node)
        self.cluster.raft.views.pop(self.node_id, None)
        self.runtime = self.servicer = None

    def restart(self) -> None:
        self.node.up = True
        self.boot()


class SimBroker:
    def __init__(self, cluster: SimCluster, broker_id: int) -> None:
        self.cluster = cluster
        self.broker_id = broker_id
        self.node = Node(cluster.sim, f"b{broker_id}")
        self.logs = SimLogManager(lambda: cluster.sim.now)
        self.b: Broker | None = None
        self.servicer: BrokerServicer | None = None

    def boot(self) -> None:
        bid = self.broker_id
        config = Config.from_mapping({
            "process.roles": "broker", "node.id": str(bid),
            "listeners": f"PLAINTEXT://b{bid}:9092,GRPC://b{bid}:9100",
            "controller.quorum.bootstrap.servers": ",".join(c.address for c in self.cluster.controllers.values()),
            "log.dirs": f"/nonexistent/sim/b{bid}", "replica.lag.time.max.ms": str(LAG_MS),
            "replica.fetch.wait.max.ms": str(FETCH_WAIT_MS),
            "broker.heartbeat.interval.ms": str(HEARTBEAT_MS), "broker.session.timeout.ms": str(SESSION_MS),
            "min.insync.replicas": "2", "default.replication.factor": "3",
        }, validate=False)
        sim = self.cluster.sim
        previous, sim.current_node = sim.current_node, self.node
        try:
            b = Broker(config, self.logs)
            b.controllers = SimControllerChannel(self.cluster, self.node, list(config.controller_bootstrap))
            b.session.controllers = b.controllers
            b.session.cluster_id = "simcluster"  # as read from meta.properties: never write the file
            b.replicas.leadership_listeners.append(self._on_leadership)
            if hasattr(b.replicas, "monotonic_ms"):  # injected clocks
                b.replicas.monotonic_ms = lambda: sim.now
                b.replicas.wall_ms = lambda: EPOCH_MS + sim.now
            self.b, self.servicer = b, BrokerServicer(b)
            self.node.spawn(b.start(), "broker start")
        finally:
            sim.current_node = previous

    def _on_leadership(self, topic: str, index: int, is_leader: bool, epoch: int) -> None:
        self.cluster.sim.note(f"b{self.broker_id}: {'leads' if is_leader else 'stops leading'} {topic}-{index} "
                              f"at epoch {epoch}")
        if is_leader:
            self.cluster.on_new_leader(self)

    def crash(self) -> None:
        self.node.crash()
        self.cluster.net.crashed(self.node)
        self.b = self.servicer = None

    def restart(self) -> None:
        self.node.up = True
        self.boot()


# -- the cluster ---------------------------------------------------------------------------------------

@dataclass
class Acked:
    offset: int
    value: bytes
    at_ms: int


@dataclass
class ClusterState:
    acked: list[Acked] = field(default_factory=list)
    acked_at: dict[int, bytes] = field(default_factory=dict)


class SimCluster:
    def __init__(self, seed: int, faults: Faults | None = None, verbose: bool = False) -> None:
        self.sim = Sim(seed)
        self.sim.verbose = verbose
        self.faults = faults or Faults()
        self.net = SimNet(self)
        self.sim.net = self.net
        self.raft = SimRaft(self)
        self.controllers = {i: SimController(self, i) for i in CONTROLLER_IDS}
        self.brokers = {i: SimBroker(self, i) for i in BROKER_IDS}
        self.broker_list = [self.brokers[i] for i in BROKER_IDS]
        self.client = Node(self.sim, "client")
        self.state = ClusterState()
        self.topic_id = b""
        self.faults_active = False
        self.kinds = self.faults.kinds
        self.synced = False  # drawn when the topic is created
        self.churn = self.faults.churn
        self.bounce_until = -1  # no churn while a leader bounce plays out
        self.return_victim = -1  # a leader return: crash this broker as soon as it leads
        self.workload_on = True
        self.violations: list[str] = []
        self.metadata_listeners: list[Callable[[list[Record], MetadataImage], None]] = []
        self.ack_listeners: list[Callable[[list[bytes], int], None]] = []
        self._values = 0

    # -- lookups --------------------------------------------------------------------------------
    def controller_by_address(self, address: str) -> SimController | None:
        for c in self.controllers.values():
            if c.address == address:
                return c
        return None

    def active_runtime(self) -> ControllerRuntime | None:
        c = self.controllers.get(self.raft.leader)
        if c is None or c.runtime is None or not c.runtime.active:
            return None
        return c.runtime

    # -- hooks ----------------------------------------------------------------------------------
    def on_metadata_commit(self, records: list[Record], image: MetadataImage) -> None:
        for listener in self.metadata_listeners:
            listener(records, image)
        for r in records:
            if self.sim.verbose or type(r).__name__ in ("PartitionChange", "FenceBroker", "UnfenceBroker",
                                                        "RegisterBroker"):
                self.sim.note(f"metadata {image.offset}: {r}")

    def on_new_leader(self, broker: SimBroker) -> None:
        if self.faults_active and broker.broker_id == self.return_victim:
            self.return_victim = -1
            delay = self.sim.rng.randint(50, 100)
            self.sim.note(f"nemesis: return: crash new leader b{broker.broker_id} in {delay} ms")
            self.sim.at(self.sim.now + delay, self._crash_broker, broker.broker_id, self.sim.rng.randint(200, 600))
            return
        if self.faults_active and self.sim.now > self.bounce_until and self.sim.rng.random() < self.churn:
            delay = self.sim.rng.randint(0, 30)
            power = self.synced and self.sim.rng.random() < 0.25
            self.sim.note(f"nemesis: will {'cut the power of' if power else 'crash'} new leader "
                          f"b{broker.broker_id} in {delay} ms")
            self.sim.at(self.sim.now + delay, self._crash_broker, broker.broker_id, self.sim.rng.randint(20, 600),
                        power)

    # -- setup ----------------------------------------------------------------------------------
    def start(self) -> None:
        for c in self.controllers.values():
            c.boot()
        self.sim.at(self.sim.rng.randint(5, 50), self.raft.set_leader, CONTROLLER_IDS[0])
        for b in self.brokers.values():
            self.sim.at(self.sim.rng.randint(0, 30), b.boot)
        self.client.spawn(self._create_topic(), "create topic")

    async def _create_topic(self) -> None:
        self.synced = self.sim.rng.random() < self.faults.synced
        while True:
            await Sleep(0.02)
            rt = self.active_runtime()
            if rt is None or len(rt.image.active_broker_ids()) < 3:
                continue
            configs = {"min.insync.replicas": "2"}
            if self.synced:
                configs["flush.messages"] = "1"

            def compute(img: MetadataImage, configs: dict[str, str] = configs) -> tuple[list[Record], Any]:
                return create_topics(img, [TopicRequest(TOPIC, 1, 3, configs)],
                                     default_partitions=1, default_replication_factor=3,
                                     new_topic_id=lambda: b"\x01" * 16, validate_config=lambda k, v: v)
            try:
                # The admin request runs on the controller node (a CreateTopics RPC in production).
                await rt.write(compute)
            except Exception as e:  # noqa: BLE001 - retried
                self.sim.note(f"create topic failed: {e}")
                continue
            topic = self.raft.image.topic_by_name(TOPIC)
            if topic is not None:
                self.topic_id = topic.topic_id
                self.sim.note("topic created")
                self._schedule_faults()
                for i in range(3):
                    self.client.spawn(self._producer(1000 + i), f"producer {1000 + i}")
                self.client.spawn(self._producer(-1), "producer plain")
                return

    # -- workload -------------------------------------------------------------------------------
    def _client_leader(self) -> SimBroker | None:
        """Where a client would send: the leader in some live broker's (possibly stale) metadata."""
        live = [b for b in self.brokers.values() if b.b is not None]
        if not live:
            return None
        view = self.sim.rng.choice(live).b
        assert view is not None
        t = view.session.image.topic_by_name(TOPIC)
        reg = t.partitions.get(0) if t else None
        if reg is None or reg.leader < 0:
            return None
        return self.brokers.get(reg.leader)

    async def _producer(self, producer_id: int) -> None:
        rng = self.sim.rng
        sequence = 0
        while self.workload_on:
            count = rng.randint(1, 3)
            values = []
            for _ in range(count):
                self._values += 1
                values.append(f"{producer_id}:{sequence + len(values)}:{self._values}".encode())
            batch = build_batch([LogRecord(None, v, self.sim.now) for v in values], producer_id=producer_id,
                                producer_epoch=0 if producer_id >= 0 else -1,
                                base_sequence=sequence if producer_id >= 0 else -1)
            while self.workload_on:
                leader = self._client_leader()
                if leader is None:
                    await Sleep(0.02)
                    continue
                request = bpb.ProduceRequest(topic=TOPIC, partition=0, records=batch, acks=-1, timeout_ms=400)
                stub = _Stub(self, self.client, lambda leader=leader: (leader.node, lambda: leader.servicer))
                try:
                    reply = await stub.Produce(request, timeout=1.0)
                except SimRpcError:
                    if producer_id < 0:
                        break  # unknown outcome; a plain producer moves on
                    continue
                if reply.error_code == 0:
                    self.on_ack(values, reply.base_offset, producer_id)
                    break
                if producer_id < 0:
                    break
                if reply.error_code in (ErrorCode.out_of_order_sequence_number, ErrorCode.invalid_producer_epoch):
                    self.sim.note(f"producer {producer_id}: {reply.error_message}; stops")
                    return
                await Sleep(rng.randint(5, 40) / 1000.0)
            sequence += count
            await Sleep(rng.randint(0, 20) / 1000.0)

    def on_ack(self, values: list[bytes], base_offset: int, producer_id: int) -> None:
        self.sim.note(f"client: acked {len(values)} from producer {producer_id} at {base_offset}")
        for listener in self.ack_listeners:
            listener(values, base_offset)
        for i, value in enumerate(values):
            offset = base_offset + i
            before = self.state.acked_at.get(offset)
            if before is not None and before != value:
                self.violation(f"offset {offset} acknowledged twice: {before!r} and {value!r}")
            self.state.acked_at[offset] = value
            self.state.acked.append(Acked(offset, value, self.sim.now))

    def violation(self, message: str) -> None:
        self.sim.note(f"VIOLATION: {message}")
        self.violations.append(f"t={self.sim.now}: {message}")

    # -- nemesis --------------------------------------------------------------------------------
    def _crash_broker(self, broker_id: int, down_ms: int, power_loss: bool = False) -> None:
        broker = self.brokers[broker_id]
        if not self.faults_active or broker.b is None:
            return
        broker.crash()
        if power_loss:
            # The machine loses power: the process dies and the disk keeps only what was synced.
            before = {k: (log.log_end_offset, log.high_watermark) for k, log in broker.logs.logs.items()}
            broker.logs.power_loss()
            after = {k: (log.log_end_offset, log.high_watermark) for k, log in broker.logs.logs.items()}
            self.sim.note(f"nemesis: power loss of b{broker_id} for {down_ms} ms: (LEO, HW) "
                          f"{list(before.values())} -> {list(after.values())}")
        else:
            self.sim.note(f"nemesis: crash b{broker_id} for {down_ms} ms")
        self.sim.at(self.sim.now + down_ms, self._restart_broker, broker_id)

    def _restart_broker(self, broker_id: int) -> None:
        broker = self.brokers[broker_id]
        if broker.b is None and not broker.node.up:
            self.sim.note(f"nemesis: restart b{broker_id}")
            broker.restart()

    def _leader_id(self) -> int:
        t = self.raft.image.topic_by_name(TOPIC)
        reg = t.partitions.get(0) if t else None
        return reg.leader if reg else -1

    def _fault(self) -> None:
        if not self.faults_active:
            return
        rng = self.sim.rng
        kind = rng.choice(self.kinds)
        duration = rng.choice((rng.randint(20, SESSION_MS - 50), rng.randint(SESSION_MS + 50, 900)))
        nodes = [b.node for b in self.brokers.values()] + [c.node for c in self.controllers.values()]
        if kind == "crash":
            self._crash_broker(rng.choice(BROKER_IDS), duration)
        elif kind in ("crash_leader", "power_loss_leader"):
            leader = self._leader_id()
            if leader > 0:
                self._crash_broker(leader, duration, kind == "power_loss_leader")
        elif kind == "power_loss":
            self._crash_broker(rng.choice(BROKER_IDS), duration, power_loss=True)
        elif kind == "power_outage":
            self._power_outage()
        elif kind == "outage_during_catchup":
            self._outage_during_catchup()
        elif kind == "pause":
            broker = self.brokers[rng.choice(BROKER_IDS)]
            self.sim.note(f"nemesis: pause b{broker.broker_id} for {duration} ms")
            broker.node.paused_until = max(broker.node.paused_until, self.sim.now + duration)
        elif kind in ("partition", "isolate_leader"):
            if kind == "isolate_leader" and self._leader_id() > 0:
                victim = self.brokers[self._leader_id()].node
            else:
                victim = rng.choice(nodes[:3] + [self.controllers[self.raft.leader].node]
                                    if self.raft.leader > 0 else nodes[:3])
            others = [n for n in nodes + [self.client] if n is not victim]
            cut = [n for n in others if rng.random() < 0.7] or others
            pairs = {(min(victim.name, n.name), max(victim.name, n.name)) for n in cut}
            new = pairs - self.net.cuts
            self.net.cuts |= new
            self.sim.note(f"nemesis: cut {victim.name} from {sorted(n.name for n in cut)} for {duration} ms")
            self.sim.at(self.sim.now + duration, self._heal_cut, new)
        elif kind == "controller_failover":
            self._controller_failover(rng.random() < 0.5)
        elif kind == "preferred_election":
            self.client.spawn(self._preferred_election(), "preferred election")
        elif kind == "slow_link":
            # A slow (not cut) link: a follower that lags without leaving, or a HW that reaches a
            # follower late — the new leader's HW then lags what the old one acknowledged.
            # Half the time one way only (a congested queue in one direction): a follower's requests
            # arrive at once while the leader's answers, and the HW they carry, come late.
            a, b = rng.sample(BROKER_IDS, 2)
            links = [(a, b)] if rng.random() < 0.5 else [(a, b), (b, a)]
            slow = rng.randint(30, 250)
            self.sim.note(f"nemesis: link b{a}{'->' if len(links) == 1 else '-'}b{b} slow (up to {slow} ms) "
                          f"for {duration} ms")
            self._slow_links(links, slow, self.sim.now + duration)
        elif kind == "leader_bounce":
            self._leader_bounce()
        elif kind == "leader_return":
            self._leader_return()

    def _power_outage(self) -> None:
        """A rack loses power: every broker dies within a few ms and keeps only what it synced; they
        come back one by one. The ISR shrinks to the last broker fenced, which leads again with the
        HW its disk had (it lags what was acknowledged: the HW checkpoint is not synced)."""
        rng = self.sim.rng
        self.sim.note("nemesis: power outage of every broker")
        for bid in rng.sample(BROKER_IDS, len(BROKER_IDS)):
            self.sim.at(self.sim.now + rng.randint(0, 3), self._crash_broker, bid, rng.randint(100, 700), True)

    def _outage_during_catchup(self) -> None:
        """A follower that fell out of the ISR (paused past replica.lag.time.max.ms) resumes and
        catches up; the outage strikes while its LEO is a few batches short of the leader's HW —
        KAFKA-7128's window: after the outage the new leader's HW (its unsynced checkpoint) lags what
        was acknowledged, and the follower's LEO may sit between the two. Its links are slow afterwards (a congested switch port), so the data that would complete
        it takes long to come back."""
        rng = self.sim.rng
        leader = self._leader_id()
        if leader <= 0:
            return
        follower = rng.choice([b for b in BROKER_IDS if b != leader])
        pause = LAG_MS + rng.randint(20, 150)
        node = self.brokers[follower].node
        node.paused_until = max(node.paused_until, self.sim.now + pause)
        self.sim.note(f"nemesis: b{follower} paused {pause} ms (leaves the ISR); a power outage as it catches up")
        self.sim.at(self.sim.now + pause, self._watch_catchup, follower, self.sim.now + pause + 1000)

    def _watch_catchup(self, follower: int, until: int) -> None:
        if not self.faults_active or self.sim.now > until:
            return
        leader = self.brokers.get(self._leader_id())
        b = self.brokers[follower].b
        lp = leader.b.replicas.partitions.get((self.topic_id, 0)) if leader is not None and leader.b else None
        fp = b.replicas.partitions.get((self.topic_id, 0)) if b is not None else None
        state = lp.leader if lp is not None else None
        if (state is not None and fp is not None and follower not in state.isr and len(state.isr) >= 2
                and 0 < state.high_watermark - fp.log.log_end_offset <= 12):
            self.sim.note(f"nemesis: b{follower} (LEO {fp.log.log_end_offset}) a few batches behind leader "
                          f"b{leader.broker_id}'s HW {state.high_watermark}, outside the ISR {list(state.isr)}")
            self._power_outage()
            for other in BROKER_IDS:
                if other != follower:
                    self._slow_pair(follower, other, rng_slow := self.sim.rng.randint(80, 250))
            self.sim.note(f"nemesis: b{follower}'s links slow (up to {rng_slow} ms)")
            self.sim.at(self.sim.now + self.sim.rng.randint(600, 1000), self.net.slow.clear)
            return
        self.sim.at(self.sim.now + 2, self._watch_catchup, follower, until)

    def _leader_bounce(self) -> None:
        """Leadership moves away from the preferred replica P and back while the interim leader I
        stays in the ISR (KAFKA-7128's schedule). P is crashed briefly; once I leads, the third
        replica T is paused just long enough to leave the ISR and then chases I's log over congested
        links: I's answers reach P late (P's HW, which rides on I's next answer, lags what I
        acknowledged by a slow round) and reach T later still (T stays a round behind I's HW, so I
        does not add it back, and its log end sits between P's HW and what I acknowledged). Then
        preferred elections move leadership back to P. As P's follower, T's requests arrive at
        once and its answers late, while I's requests to P are slow: T's first fetch reaches P
        before I's, and T's log stays short while P decides whether to add it to the ISR."""
        rng = self.sim.rng
        preferred = BROKER_IDS[0]
        if self._leader_id() <= 0:
            return
        self.sim.note(f"nemesis: leader bounce away from and back to b{preferred}")
        if self._leader_id() == preferred:
            self._crash_broker(preferred, rng.randint(30, 150))
        self.sim.at(self.sim.now + rng.randint(150, 300), self._bounce_lag, preferred)

    def _leader_return(self) -> None:
        """Leadership leaves the current leader L for the preferred replica P and comes straight back
        (P dies right after taking over; L, still in the ISR and never told to truncate by P, is
        elected again), while the link from a follower F to L is slow one way and P lags behind L.
        F learns of P's epoch and truncates L's unreplicated tail while requests it sent in L's
        old epoch are still on their way to L; they arrive in L's new epoch. Fetches from an older
        leader epoch must not count (Kafka's FENCED_LEADER_EPOCH on Fetch): F's log no longer holds
        what they say it does."""
        rng = self.sim.rng
        preferred, leader = BROKER_IDS[0], self._leader_id()
        if leader <= 0 or not self.faults_active:
            return
        if leader == preferred:  # move leadership away first; try again once P is back in the ISR
            self.sim.note(f"nemesis: leader return: b{preferred} leads; crash it first")
            self._crash_broker(preferred, rng.randint(30, 150))
            self.sim.at(self.sim.now + rng.randint(400, 700), self._leader_return)
            return
        follower = next(b for b in BROKER_IDS if b not in (preferred, leader))
        slow, late = rng.randint(200, 350), rng.randint(250, 450)
        start = self.sim.now + rng.randint(50, 250)
        until = start + 700
        self.sim.note(f"nemesis: leader return: b{leader} -> b{preferred} -> b{leader} from t={start}; "
                      f"b{leader}->b{preferred} slow (up to {slow} ms), b{follower}->b{leader} from then on "
                      f"(up to {late} ms)")
        self._slow_links([(leader, preferred)], slow, until)
        self.sim.at(start, self._slow_links, [(follower, leader)], late, until)
        self.bounce_until = until
        self.sim.at(start, self._arm_return, preferred)
        for delay in range(0, 120, rng.randint(10, 30)):
            self.sim.at(start + delay, self._spawn_preferred_election)

    def _arm_return(self, preferred: int) -> None:
        self.return_victim = preferred
        self.sim.at(self.sim.now + 200, self._disarm_return, preferred)

    def _disarm_return(self, preferred: int) -> None:
        if self.return_victim == preferred:
            self.return_victim = -1

    def _bounce_lag(self, preferred: int) -> None:
        rng = self.sim.rng
        interim = self._leader_id()
        if not self.faults_active or interim <= 0 or interim == preferred:
            return
        third = next(b for b in BROKER_IDS if b not in (preferred, interim))
        pause = rng.randint(330, 450)
        node = self.brokers[third].node
        node.paused_until = max(node.paused_until, self.sim.now + pause)
        resume = self.sim.now + pause
        back = resume + rng.randint(300, 600)  # the latest moment the elections start
        slow_p = rng.randint(100, 250)
        slow_t = 2 * slow_p
        self.sim.note(f"nemesis: bounce: b{third} paused {pause} ms under leader b{interim} (leaves the ISR); "
                      f"b{interim}->b{preferred} and b{preferred}->b{third} slow (up to {slow_p} ms), "
                      f"b{interim}->b{third} slower (up to {slow_t} ms)")
        self.bounce_until = back + 700
        start = resume - rng.randint(50, 200)
        self.sim.at(start, self._slow_links, [(interim, preferred), (preferred, third)], slow_p, back + 700)
        self.sim.at(start, self._slow_links, [(interim, third)], slow_t, back + 700)
        self.sim.at(resume, self._watch_bounce, preferred, interim, third, back)

    def _watch_bounce(self, preferred: int, interim: int, third: int, deadline: int) -> None:
        """Move leadership back to P (preferred elections every 10-40 ms for 200 ms) as soon as T,
        outside I's ISR, has a log end between P's HW and I's (T a few batches short of what I
        acknowledged, P not yet told of it), or at `deadline`."""
        if not self.faults_active or self._leader_id() != interim:
            return
        state = self._leader_state(interim)
        p_log = self.brokers[preferred].logs.logs.get((self.topic_id, 0))
        t_log = self.brokers[third].logs.logs.get((self.topic_id, 0))
        ready = (state is not None and p_log is not None and t_log is not None and third not in state.isr
                 and p_log.high_watermark <= t_log.log_end_offset < state.high_watermark)
        if not ready and self.sim.now < deadline:
            self.sim.at(self.sim.now + 2, self._watch_bounce, preferred, interim, third, deadline)
            return
        if ready and state is not None and p_log is not None and t_log is not None:
            self.sim.note(f"nemesis: bounce: b{third} (LEO {t_log.log_end_offset}) between b{preferred}'s HW "
                          f"{p_log.high_watermark} and leader b{interim}'s HW {state.high_watermark}")
        rng = self.sim.rng
        self.bounce_until = self.sim.now + 700
        for delay in range(0, 200, rng.randint(10, 40)):
            self.sim.at(self.sim.now + delay, self._spawn_preferred_election)

    def _leader_state(self, broker_id: int) -> Any:
        b = self.brokers[broker_id].b
        p = b.replicas.partitions.get((self.topic_id, 0)) if b is not None else None
        return p.leader if p is not None else None

    def _slow_pair(self, a: int, b: int, slow_ms: int) -> None:
        if self.faults_active:
            self.net.slow[(f"b{a}", f"b{b}")] = self.net.slow[(f"b{b}", f"b{a}")] = slow_ms

    def _slow_links(self, links: list[tuple[int, int]], slow_ms: int, until_ms: int) -> None:
        """Messages from a to b (for each (a, b)) take up to `slow_ms` longer until `until_ms`."""
        if not self.faults_active:
            return
        keys = [(f"b{a}", f"b{b}") for a, b in links]
        for key in keys:
            self.net.slow[key] = slow_ms
        self.sim.at(until_ms, self._unslow, keys, slow_ms)

    def _unslow(self, keys: list[tuple[str, str]], slow_ms: int) -> None:
        for key in keys:
            if self.net.slow.get(key) == slow_ms:
                del self.net.slow[key]

    def _heal_cut(self, pairs: set[tuple[str, str]]) -> None:
        self.net.cuts -= pairs

    def _controller_failover(self, crash: bool) -> None:
        old = self.raft.leader
        rng = self.sim.rng
        candidates = [i for i in CONTROLLER_IDS if i != old and self.controllers[i].node.up]
        if not candidates:
            return  # no other live controller: no majority would elect one either
        self.sim.note(f"nemesis: controller failover from {old} ({'crash' if crash else 'leadership loss'})")
        if crash and old in self.controllers:
            self.controllers[old].crash()
            self.sim.at(self.sim.now + rng.randint(100, 600), self._restart_controller, old)
        self.raft.set_leader(-1)
        self.sim.at(self.sim.now + rng.randint(20, 300), self._elect_controller, rng.choice(candidates))

    def _elect_controller(self, node_id: int) -> None:
        if self.raft.leader < 0 and self.controllers[node_id].node.up:
            self.raft.set_leader(node_id)
        elif self.raft.leader < 0:
            live = [i for i in CONTROLLER_IDS if self.controllers[i].node.up]
            if live:
                self.raft.set_leader(live[0])
            else:
                self.sim.at(self.sim.now + 50, self._elect_controller, node_id)

    def _restart_controller(self, node_id: int) -> None:
        if not self.controllers[node_id].node.up:
            self.controllers[node_id].restart()

    def _spawn_preferred_election(self) -> None:
        if self.faults_active:
            self.client.spawn(self._preferred_election(), "preferred election")

    async def _preferred_election(self) -> None:
        rt = self.active_runtime()
        if rt is None:
            return
        self.sim.note("nemesis: preferred leader election")
        try:
            await rt.write(lambda img: replication.elect_leaders(img, replication.Election.PREFERRED, [(TOPIC, 0)]))
        except Exception as e:  # noqa: BLE001 - a failed admin call is fine
            self.sim.note(f"preferred election failed: {e}")

    def heal(self) -> None:
        self.sim.note("heal: faults stop; partitions heal; everything restarts")
        self.faults_active = False
        self.net.faults_on = False
        self.net.cuts.clear()
        self.net.slow.clear()
        for b in self.brokers.values():
            b.node.paused_until = min(b.node.paused_until, self.sim.now)
            if b.b is None:
                b.restart()
        for c in self.controllers.values():
            if not c.node.up:
                c.restart()
        if self.raft.leader < 0:
            self.raft.set_leader(CONTROLLER_IDS[0])

    def stop_workload(self) -> None:
        self.workload_on = False

    def _schedule_faults(self) -> None:
        rng, faults = self.sim.rng, self.faults
        self.faults_active = True
        lo, hi = faults.fault_window_ms
        count = rng.randint(*faults.faults)
        draw = rng.random()
        if faults.kinds == ALL_KINDS and draw < faults.leadership_profile:
            # The leadership profile: many leader moves with lagging followers (KAFKA-7128's schedule).
            self.kinds = LEADERSHIP_KINDS
            count = rng.randint(6, 12)
        elif faults.kinds == ALL_KINDS and draw < faults.leadership_profile + faults.churn_profile:
            # The churn profile: leaders die soon after taking over, leaving divergent unreplicated
            # tails in many epochs (what multi-round truncation, KIP-279, is for).
            self.kinds = CHURN_KINDS
            self.churn = 0.6
            count = rng.randint(8, 14)
        if not self.synced:  # an unsynced log loses its tail in a power loss: see docs/CHAOS.md, Limits
            self.kinds = tuple(k for k in self.kinds if k not in POWER_KINDS) or ("crash",)
        self.sim.note(f"nemesis: {count} faults from {', '.join(self.kinds)}; "
                      f"appends {'fsynced (flush.messages=1)' if self.synced else 'not fsynced'}")
        for _ in range(count):
            self.sim.at(max(self.sim.now, rng.randint(lo, hi)), self._fault)

    # -- running ----------------------------------------------------------------------------------
    def run(self, checker: Any) -> None:
        faults = self.faults
        SimFetcherLoop.cluster = self
        import broker.controller_session
        import broker.fetcher
        import controller.heartbeats
        swaps = {(broker.fetcher, "FetcherLoop"): SimFetcherLoop, (broker.fetcher, "FETCH_WAIT_MS"): FETCH_WAIT_MS,
                 (broker.controller_session, "CONTROLLER_CALL_TIMEOUT_S"): RPC_TIMEOUT_MAX_S,
                 (controller.heartbeats, "DISCONNECT_GRACE_MS"): DISCONNECT_GRACE_MS}
        with patched(self.sim, swaps), _captured_logs(self.sim):
            self.start()
            self.sim.at(faults.heal_ms, self.heal)
            self.sim.at(faults.heal_ms + 300, self.stop_workload)
            self.sim.step_hooks.append(checker.check_step)
            self.sim.run_until(faults.end_ms, stop=lambda: bool(self.violations))
            if not self.violations:
                checker.check_end()


class _TraceHandler(logging.Handler):
    def __init__(self, sim: Sim) -> None:
        super().__init__(logging.INFO)
        self.sim = sim

    def emit(self, record: logging.LogRecord) -> None:
        node = self.sim.current_node
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        self.sim.note(f"{node.name if node else '-'}: {message}")


class _captured_logs:
    """Production log lines (truncations, ISR changes, elections) go into the trace."""

    def __init__(self, sim: Sim) -> None:
        self.handler = _TraceHandler(sim)
        self.logger = logging.getLogger("brook")

    def __enter__(self) -> None:
        self.saved = (self.logger.level, self.logger.propagate)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self.handler)

    def __exit__(self, *exc: Any) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.saved[0])
        self.logger.propagate = self.saved[1]


def decode_values(batch: bytes) -> list[tuple[int, bytes]]:
    header, records = decode_batch(batch)
    return [(header.base_offset + r.offset_delta, r.value or b"") for r in records]
