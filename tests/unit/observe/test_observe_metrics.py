"""The broker's and controller's collectors over fake role state: the JMX exporter's Kafka names with the
values the state implies, the hot-path counters, and the controller-only semantics of cluster-wide counts."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from broker import metrics as bm
from broker.api import FetchPartition, FetchResult, ProduceResult
from broker.groups.api import DescribedGroup, DescribedMember, ListedGroup
from broker.groups.offsets import OffsetValue
from broker.partition import LeaderState
from cluster.config import Config
from cluster.errors import ErrorCode
from cluster.image import MetadataImage, replay_all
from cluster.records import ClusterRecord, PartitionRecord, RegisterBroker, TopicRecord, UnfenceBroker
from controller.metrics import ControllerObserver
from storage.batch import build_batch
from storage.records import Record

T1 = b"\x01" * 16


def scrape(observer) -> dict[str, float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(observer.collector())
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_count_records_over_batches():
    def batch(n: int) -> bytes:
        return build_batch([Record(key=None, value=b"v" * i) for i in range(n)])
    assert bm.count_records(batch(3) + batch(2)) == 5
    assert bm.count_records(batch(4)[:30]) == 0  # a partial header counts nothing
    assert bm.count_records(b"") == 0


@pytest.mark.parametrize("values, q, expected", [
    ([], 0.99, 0.0), ([5.0], 0.5, 5.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0), ([1.0, 2.0, 3.0, 4.0], 0.99, 4.0),
    (list(map(float, range(1, 1001))), 0.999, 999.0), (list(map(float, range(1, 101))), 0.95, 95.0),
])
def test_quantile(values, q, expected):
    assert bm.quantile(values, q) == expected


def _image() -> MetadataImage:
    return replay_all(MetadataImage(), [
        ClusterRecord("c"), RegisterBroker(1, 5, "i", "h", 9092, 9192), UnfenceBroker(1, 5),
        TopicRecord("t", T1),
        PartitionRecord(T1, 0, (1, 2, 3), (1, 2), 1), PartitionRecord(T1, 1, (1, 2), (1, 2), 1),
        PartitionRecord(T1, 2, (2, 1), (2, 1), 2),
    ])


def _partition(index: int, leader: LeaderState | None) -> SimpleNamespace:
    log = SimpleNamespace(log_end_offset=10 + index, log_start_offset=0, high_watermark=8)
    return SimpleNamespace(topic="t", index=index, leader=leader, log=log)


def _fake_broker(epoch: int = 5) -> SimpleNamespace:
    image = _image()
    partitions = {
        (T1, 0): _partition(0, LeaderState(1, 0, 0, (1, 2, 3), (1, 2), 7)),   # under-replicated, at min ISR 2
        (T1, 1): _partition(1, LeaderState(1, 0, 0, (1, 2), (1,), 9)),        # under-replicated, under min ISR
        (T1, 2): _partition(2, None),                                          # a follower: not counted
    }
    replicas = SimpleNamespace(partitions=partitions, topic_value=lambda img, topic, key: "2",
                               lookup=lambda topic, index: partitions.get((T1, index)) if topic == "t" else None,
                               divergences_after_truncation=2)
    session = SimpleNamespace(broker_epoch=epoch, want_shutdown=False)
    return SimpleNamespace(broker_id=1, session=session, image=lambda: image, replicas=replicas,
                           controller_id=lambda: -1, controllers=SimpleNamespace(current="c:9093"))


def test_broker_collector_counts_from_replica_state():
    observer = bm.BrokerObserver(_fake_broker(), stats=bm.BrokerStats())
    m = scrape(observer)
    assert m["kafka_server_replicamanager_partitioncount"] == 3
    assert m["kafka_server_replicamanager_leadercount"] == 2
    assert m["kafka_server_replicamanager_underreplicatedpartitions"] == 2
    assert m["kafka_server_replicamanager_underminisrpartitioncount"] == 1
    assert m["kafka_server_replicamanager_atminisrpartitioncount"] == 1
    assert m['kafka_cluster_partition_underreplicated{partition="1",topic="t"}'] == 1
    assert m['kafka_log_log_logendoffset{partition="2",topic="t"}'] == 12
    assert m["kafka_server_kafkaserver_brokerstate"] == bm.BROKER_STATE_RUNNING
    assert m["kafka_server_replicamanager_isrshrinks_total"] == 0
    assert m["brook_replica_divergences_after_truncation_total"] == 2  # the safety-net tripwire's broker total
    assert observer.readiness()[0]


def test_broker_not_ready_until_registered_and_unfenced():
    assert not bm.BrokerObserver(_fake_broker(epoch=-1)).readiness()[0]
    assert not bm.BrokerObserver(_fake_broker(epoch=6)).readiness()[0]  # metadata lacks this registration


def fake_coordinator(group_id: str, offsets: dict[tuple[str, int], int], members: int = 1) -> SimpleNamespace:
    """The GroupCoordinator operations the broker observer uses, answering for one group."""
    member = DescribedMember("m", None, "c", "h", b"", b"")
    return SimpleNamespace(
        list_groups=lambda: (ErrorCode.none, [ListedGroup(group_id, "consumer", "Stable")]),
        describe_groups=lambda ids: [DescribedGroup(group_id, ErrorCode.none, "Stable", "consumer", "range",
                                                    (member,) * members)],
        fetch_offsets=lambda gid, topics: (ErrorCode.none, {k: (OffsetValue(o), ErrorCode.none)
                                                            for k, o in offsets.items()}))


def test_group_lag_is_the_local_high_watermark_minus_the_committed_offset():
    coordinator = fake_coordinator("g", {("t", 0): 3, ("t", 2): 8, ("gone", 0): 1})
    observer = bm.BrokerObserver(_fake_broker(), coordinator, stats=bm.BrokerStats())
    (g,) = observer.groups()
    assert [(p["topic"], p["partition"], p["lag"]) for p in g["partitions"]] == [("gone", 0, None), ("t", 0, 4),
                                                                                ("t", 2, 0)]
    assert g["lag"] == 4
    m = scrape(observer)
    assert m['kafka_consumergroup_lag{consumergroup="g",partition="0",topic="t"}'] == 4
    assert m['kafka_consumergroup_lag_sum{consumergroup="g",topic="t"}'] == 4
    assert m['kafka_consumergroup_members{consumergroup="g"}'] == 1


class _Manager:
    """Decorated like ReplicaManager's methods."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    @bm.track_produce
    async def produce(self, topic, partition, records, acks, timeout_ms):
        return ProduceResult(ErrorCode.none if topic != "bad" else ErrorCode.not_leader_or_follower)

    @bm.track_fetch
    async def fetch(self, reqs, max_wait_ms, min_bytes, max_bytes):
        await self.release.wait()
        return [FetchResult(records=b"x" * 7), FetchResult()]

    @bm.track_isr_change(lambda self, p: p)
    def on_alter_partition_result(self, p, error, isr):
        if p.leader.pending_isr == isr:  # the answer to the request in flight
            p.leader.isr, p.leader.pending_isr = isr, None

    @bm.track_isr_change(lambda self, p: p)
    def _update(self, p, isr):  # a metadata record: the leader's proposal or the controller's own change
        p.leader.isr = isr
        if p.leader.pending_isr == isr:
            p.leader.pending_isr = None


def test_hot_path_decorators_count_bytes_messages_waiters_and_isr_changes():
    stats = bm.STATS
    before = (stats.messages_in.get("dec", 0), stats.bytes_out.get("dec", 0), stats.isr_shrinks, stats.isr_expands)
    manager = _Manager()
    batch = build_batch([Record(key=None, value=b"a"), Record(key=None, value=b"b")])

    async def scenario() -> None:
        await manager.produce("dec", 0, batch, -1, 1000)
        await manager.produce("bad", 0, batch, -1, 1000)
        task = asyncio.ensure_future(manager.fetch([FetchPartition("dec", 0, 0, 100), FetchPartition("dec", 1, 0, 100)],
                                                   500, 1, 100))
        await asyncio.sleep(0)
        assert stats.waiting["Fetch"] >= 1
        manager.release.set()
        await task

    asyncio.run(scenario())
    assert stats.messages_in["dec"] - before[0] == 2 and "bad" not in stats.messages_in
    assert stats.bytes_out["dec"] - before[1] == 7
    assert stats.waiting["Fetch"] == 0
    p = SimpleNamespace(leader=SimpleNamespace(isr=(1, 2, 3), pending_isr=(1, 2)))
    manager.on_alter_partition_result(p, ErrorCode.none, (1, 2))  # the leader's shrink, answered first
    manager._update(p, (1, 2))  # ... and its metadata record: not counted twice
    p.leader.pending_isr = (1, 2, 3)
    manager._update(p, (1, 2, 3))  # the leader's expansion, metadata first
    manager.on_alter_partition_result(p, ErrorCode.none, (1, 2, 3))  # ... then the answer: counted once
    manager._update(p, (1, 3))  # the controller fencing broker 2: not this leader's shrink
    assert (stats.isr_shrinks - before[2], stats.isr_expands - before[3]) == (1, 1)


def _fake_runtime(active: bool, leader_id: int = 1) -> SimpleNamespace:
    image = replay_all(_image(), [RegisterBroker(2, 6, "j", "h", 9092, 9192),
                                  PartitionRecord(T1, 3, (2,), (2,), -1)])
    status = {"raft_term": 4, "commit_idx": 20, "last_applied": 20, "leader_commit_idx": 20, "log_len": 9,
              "has_quorum": True, "match_idx_server_h:2": 17, "match_idx_server_h:3": 20}
    quorum = SimpleNamespace(status=lambda: status, leader_node_id=lambda: leader_id, is_leader=lambda: active,
                             node_by_address={"h:2": 2, "h:3": 3}, settings=SimpleNamespace(voters=[(1, "h:1"), (2, "h:2"), (3, "h:3")]))
    config = Config.from_mapping({"process.roles": "controller", "node.id": "1"}, validate=False)
    return SimpleNamespace(image=image, active=active, quorum=quorum, node_id=1 if active else 2,
                           grpc_address="h:9093", config=config)


def test_controller_collector_reports_cluster_counts_only_when_active():
    m = scrape(ControllerObserver(_fake_runtime(active=True)))
    assert m["kafka_controller_kafkacontroller_activecontrollercount"] == 1
    assert m["kafka_controller_kafkacontroller_globalpartitioncount"] == 4
    assert m["kafka_controller_kafkacontroller_offlinepartitionscount"] == 1
    assert m["kafka_controller_kafkacontroller_fencedbrokercount"] == 1
    assert m["kafka_controller_kafkacontroller_activebrokercount"] == 1
    assert m["brook_raft_term"] == 4 and m["brook_raft_commit_index"] == 20
    assert m['brook_raft_follower_lag_entries{follower="2"}'] == 3
    assert m['brook_raft_follower_lag_entries{follower="3"}'] == 0
    follower = scrape(ControllerObserver(_fake_runtime(active=False)))
    assert follower["kafka_controller_kafkacontroller_activecontrollercount"] == 0
    assert follower["kafka_controller_kafkacontroller_globalpartitioncount"] == 0
    assert follower["kafka_controller_kafkacontroller_offlinepartitionscount"] == 0
    assert not any(k.startswith("brook_raft_follower_lag_entries{") for k in follower)


def test_controller_readiness_needs_a_quorum_leader():
    assert ControllerObserver(_fake_runtime(active=False)).readiness()[0]
    assert not ControllerObserver(_fake_runtime(active=False, leader_id=-1)).readiness()[0]


def test_kafka_handlers_wrapper_counts_and_times_each_request_and_passes_everything_through():
    class Handlers:
        async def handle(self, api_key, api_version, request, context=None):
            if api_key == 99:
                raise RuntimeError("handler bug")
            return ("response", api_key, context)

    class ProduceRequest:
        pass

    handlers = Handlers()
    bm.instrument_kafka_handlers(handlers)
    before = bm.STATS.requests.get(("Produce", 9), 0)
    count_before = bm.STATS.latency_count.get("Produce", 0)

    async def scenario() -> None:
        assert await handlers.handle(0, 9, ProduceRequest(), "ctx") == ("response", 0, "ctx")
        with pytest.raises(RuntimeError):
            await handlers.handle(99, 9, ProduceRequest())  # a failing request is counted too

    asyncio.run(scenario())
    assert bm.STATS.requests[("Produce", 9)] - before == 2
    assert bm.STATS.latency_count["Produce"] - count_before == 2
