"""The coordinator shell over a fake broker core, driven with kio request objects (through the Kafka
adapter, `broker/kafka/group_handlers.py`).

Method: `FakeCore` is one broker that leads every partition, with an in-memory log per partition
(`produce` stamps base offsets, `read_local` returns whole batches). Time is a fake monotonic
clock the test advances and `coordinator.tick()` is called by hand. Every response is also
serialised with kio's writer, so a wrong field type fails here rather than on the wire.
Failover is simulated by building a second coordinator over the same logs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import inspect
import io
import logging
import struct

import crc32c
import pytest
from kio.index import load_payload_module
from kio.serial import entity_writer
from kio.static.constants import EntityType

from broker.api import OffsetResult, ProduceResult
from broker.groups._records import build_batch
from broker.groups.coordinator import OFFSETS_TOPIC, GroupCoordinator, partition_for
from broker.groups.offsets import OffsetValue, encode_offset_key, encode_offset_value
from broker.kafka.group_handlers import SUPPORTED_VERSIONS, GroupHandlers
from broker.kafka.server import RequestContext
from cluster.errors import ErrorCode
from cluster.image import MetadataImage, PartitionRegistration, TopicImage

pytestmark = pytest.mark.timeout(20)

OFFSETS_PARTITIONS = 4
SESSION_MS = 10_000
ms = lambda n: datetime.timedelta(milliseconds=n)  # noqa: E731


def make_image(*, with_offsets_topic=True, leader=1):
    topics, ids = {}, {}
    specs = [("events", 3)] + ([(OFFSETS_TOPIC, OFFSETS_PARTITIONS)] if with_offsets_topic else [])
    for number, (name, count) in enumerate(specs):
        topic_id = bytes([number + 1]) * 16
        partitions = {i: PartitionRegistration(replicas=(1,), isr=(1,), leader=leader) for i in range(count)}
        topics[topic_id] = TopicImage(name, topic_id, partitions)
        ids[name] = topic_id
    return MetadataImage(offset=1, topics=topics, topic_ids=ids)


class FakeCore:
    """One broker that leads everything; an in-memory log per partition."""

    broker_id = 1

    def __init__(self, logs=None, *, with_offsets_topic=True):
        self.logs: dict[tuple[str, int], list[tuple[int, bytes]]] = logs if logs is not None else {}
        self._image = make_image(with_offsets_topic=with_offsets_topic)
        self.leading = True
        self.listeners = []
        self.ensured = []
        self.produce_error = ErrorCode.none
        self.config = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 6000,
                       "group.max.session.timeout.ms": 300_000, "offsets.retention.minutes": 10080}

    def image(self):
        return self._image

    def advertised_kafka_address(self, broker_id):
        return ("broker-1.local", 9092) if broker_id == 1 else None

    def server_config(self, name):
        return self.config[name]

    def is_leader(self, topic, partition):
        return self.leading

    def add_leadership_listener(self, callback):
        self.listeners.append(callback)

    async def ensure_topic(self, name):
        self.ensured.append(name)
        self._image = make_image()
        return ErrorCode.none

    def list_offsets(self, topic, partition, timestamp, current_leader_epoch=-1):
        return OffsetResult(offset=0)

    async def produce(self, topic, partition, records, acks, timeout_ms):
        assert acks == -1
        await asyncio.sleep(0)
        if self.produce_error != ErrorCode.none:
            return ProduceResult(error=self.produce_error)
        log = self.logs.setdefault((topic, partition), [])
        base = log[-1][0] + struct.unpack_from(">i", log[-1][1], 23)[0] + 1 if log else 0
        log.append((base, struct.pack(">q", base) + records[8:]))
        return ProduceResult(base_offset=base)

    def read_local(self, topic, partition, offset, max_bytes):
        out, next_offset = b"", offset
        for base, batch in self.logs.get((topic, partition), []):
            last = base + struct.unpack_from(">i", batch, 23)[0]
            if last < offset:
                continue
            if out and len(out) + len(batch) > max_bytes:
                break
            out += batch
            next_offset = last + 1
        return out, next_offset


class Clock:
    def __init__(self):
        self.seconds = 1000.0

    def __call__(self):
        return self.seconds

    def advance(self, milliseconds):
        self.seconds += milliseconds / 1000


def req(api_key, version, class_name, **values):
    module = load_payload_module(api_key, version, EntityType.request)
    cls = getattr(module, class_name)
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in fields})


def check_wire(response):
    """The response must serialise with kio (right types for this version)."""
    entity_writer(type(response))(io.BytesIO(), response)
    return response


def aio(test):
    """Run an async test on a fresh loop (no pytest-asyncio here); `env` is injected, not a fixture.

    `env` is (core, coordinator, clock): a started coordinator over a FakeCore with a fake clock.
    """
    signature = inspect.signature(test)
    wants_env = "env" in signature.parameters

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        async def main():
            if not wants_env:
                return await test(*args, **kwargs)
            clock = Clock()
            core = FakeCore()
            coordinator = GroupCoordinator(core, clock=clock, tick_interval_ms=3_600_000)
            await coordinator.start()
            await settle()
            try:
                return await test((core, coordinator, clock), *args, **kwargs)
            finally:
                await coordinator.stop()

        asyncio.run(asyncio.wait_for(main(), 15))

    wrapper.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name != "env"])
    return wrapper


async def settle(rounds=20):
    for _ in range(rounds):
        await asyncio.sleep(0)


async def call(coordinator, api_key, version, request, context=None):
    response = await GroupHandlers(coordinator).handlers()[api_key](request, version, context)
    return check_wire(response)


def protocols(version, topics=("events",)):
    # ConsumerProtocolSubscription v0 with the given topics.
    body = b"\x00\x00" + struct.pack(">i", len(topics))
    for topic in topics:
        body += struct.pack(">h", len(topic)) + topic.encode()
    body += struct.pack(">i", -1)
    return (req(11, version, "JoinGroupRequestProtocol", name="range", metadata=body),)


def join_request(version, group="g1", member_id="", instance=None):
    return req(11, version, "JoinGroupRequest", group_id=group, session_timeout=ms(SESSION_MS),
               rebalance_timeout=ms(30_000), member_id=member_id, group_instance_id=instance,
               protocol_type="consumer", protocols=protocols(version), reason=None)


async def join_new(coordinator, version=7, group="g1", context=None):
    """Full JoinGroup flow for one member, returning a task that resolves to the parked response."""
    first = await call(coordinator, 11, version, join_request(version, group), context)
    if version >= 4:
        assert first.error_code == ErrorCode.member_id_required
        member_id = first.member_id
    else:
        return first
    return asyncio.create_task(call(coordinator, 11, version, join_request(version, group, member_id), context))


async def sync(coordinator, version, group, member_id, generation, assignments=()):
    assignment_objs = tuple(req(14, version, "SyncGroupRequestAssignment", member_id=m, assignment=a)
                            for m, a in assignments)
    return await call(coordinator, 14, version, req(
        14, version, "SyncGroupRequest", group_id=group, generation_id=generation, member_id=member_id,
        group_instance_id=None, protocol_type="consumer", protocol_name="range", assignments=assignment_objs))


async def commit(coordinator, version, group, member_id, generation, offsets):
    part_cls = "OffsetCommitRequestPartition"
    topics = {}
    for (topic, partition), offset in offsets.items():
        topics.setdefault(topic, []).append(req(8, version, part_cls, partition_index=partition,
                                                committed_offset=offset, committed_leader_epoch=3,
                                                committed_metadata="meta"))
    topic_objs = tuple(req(8, version, "OffsetCommitRequestTopic", name=t, partitions=tuple(ps))
                       for t, ps in topics.items())
    return await call(coordinator, 8, version, req(
        8, version, "OffsetCommitRequest", group_id=group, generation_id_or_member_epoch=generation,
        member_id=member_id, group_instance_id=None, retention_time=ms(-1), topics=topic_objs))


async def fetch(coordinator, version, group, partitions=(("events", (0, 1, 2)),)):
    if version >= 8:
        topics = None if partitions is None else tuple(
            req(9, version, "OffsetFetchRequestTopics", name=t, partition_indexes=ps) for t, ps in partitions)
        group_obj = req(9, version, "OffsetFetchRequestGroup", group_id=group, member_id=None,
                        member_epoch=-1, topics=topics)
        response = await call(coordinator, 9, version, req(9, version, "OffsetFetchRequest", groups=(group_obj,)))
        (group_response,) = response.groups
        return group_response.error_code, _offsets(group_response.topics)
    topics = None if partitions is None else tuple(
        req(9, version, "OffsetFetchRequestTopic", name=t, partition_indexes=ps) for t, ps in partitions)
    response = await call(coordinator, 9, version, req(9, version, "OffsetFetchRequest", group_id=group,
                                                       topics=topics))
    return getattr(response, "error_code", ErrorCode.none), _offsets(response.topics)


def _offsets(topics):
    return {(t.name, p.partition_index): (p.committed_offset, p.error_code) for t in topics for p in t.partitions}


# -- tests ---------------------------------------------------------------------------------------


def test_versions_are_backed_by_kio_schemas():
    coordinator = GroupHandlers(GroupCoordinator(FakeCore()))  # the Kafka adapter over the coordinator
    assert coordinator.versions() == SUPPORTED_VERSIONS
    assert set(coordinator.handlers()) == set(SUPPORTED_VERSIONS)
    for api_key, (low, high) in SUPPORTED_VERSIONS.items():
        for version in range(low, high + 1):
            load_payload_module(api_key, version, EntityType.request)
            load_payload_module(api_key, version, EntityType.response)


@pytest.mark.parametrize("version", [0, 1, 3, 4, 5])
@aio
async def test_find_coordinator_returns_the_offsets_partition_leader(env, version):
    core, coordinator, _ = env
    if version >= 4:
        request = req(10, version, "FindCoordinatorRequest", key_type=0, coordinator_keys=("g1", "g2"))
        response = await call(coordinator, 10, version, request)
        assert [(c.key, c.node_id, c.host, c.port, c.error_code) for c in response.coordinators] == [
            ("g1", 1, "broker-1.local", 9092, ErrorCode.none), ("g2", 1, "broker-1.local", 9092, ErrorCode.none)]
    else:
        response = await call(coordinator, 10, version, req(10, version, "FindCoordinatorRequest", key="g1",
                                                            key_type=0))
        assert (response.error_code, response.node_id, response.host, response.port) == (
            ErrorCode.none, 1, "broker-1.local", 9092)


@aio
async def test_find_coordinator_creates_the_offsets_topic_first():
    core = FakeCore(with_offsets_topic=False)
    coordinator = GroupCoordinator(core, tick_interval_ms=3_600_000)
    await coordinator.start()
    try:
        response = await call(coordinator, 10, 3, req(10, 3, "FindCoordinatorRequest", key="g1", key_type=0))
        assert response.error_code == ErrorCode.coordinator_not_available
        await settle()
        assert core.ensured == [OFFSETS_TOPIC]
        response = await call(coordinator, 10, 3, req(10, 3, "FindCoordinatorRequest", key="g1", key_type=0))
        assert response.error_code == ErrorCode.none
    finally:
        await coordinator.stop()


@aio
async def test_not_coordinator_when_not_leading(env):
    core, coordinator, _ = env
    core.leading = False
    response = await call(coordinator, 12, 4, req(12, 4, "HeartbeatRequest", group_id="g1", generation_id=1,
                                                  member_id="m", group_instance_id=None))
    assert response.error_code == ErrorCode.not_coordinator
    coordinator.tick()  # reconcile unloads every partition
    core.leading = True
    coordinator.reconcile()  # loading starts again...
    response = await call(coordinator, 12, 4, req(12, 4, "HeartbeatRequest", group_id="g1", generation_id=1,
                                                  member_id="m", group_instance_id=None))
    assert response.error_code == ErrorCode.coordinator_load_in_progress
    await settle()
    response = await call(coordinator, 12, 4, req(12, 4, "HeartbeatRequest", group_id="g1", generation_id=1,
                                                  member_id="m", group_instance_id=None))
    assert response.error_code == ErrorCode.unknown_member_id


@pytest.mark.parametrize(("join_v", "sync_v", "hb_v", "commit_v", "fetch_v"), [
    (7, 5, 4, 8, 8),  # librdkafka 2.x (and kafka-python 3.0's maxima)
    (5, 3, 3, 7, 7),
    (2, 1, 1, 2, 1),  # aiokafka / old clients
    (0, 0, 0, 2, 1),
])
@aio
async def test_two_member_group_lifecycle(env, join_v, sync_v, hb_v, commit_v, fetch_v):
    core, coordinator, clock = env
    ctx = RequestContext("client-a", "/10.0.0.1")
    if join_v >= 4:
        a_task = await join_new(coordinator, join_v, context=ctx)
        a = await a_task
    else:
        a = await join_new(coordinator, join_v, context=ctx)
    assert a.error_code == ErrorCode.none and a.generation_id == 1 and a.leader == a.member_id
    assert len(a.members) == 1
    ok = await sync(coordinator, sync_v, "g1", a.member_id, 1, [(a.member_id, b"all")])
    assert (ok.error_code, ok.assignment) == (ErrorCode.none, b"all")

    # A second member joins: the first learns through its heartbeat and rejoins.
    if join_v >= 4:
        b_task = await join_new(coordinator, join_v)
    else:
        b_task = asyncio.create_task(call(coordinator, 11, join_v, join_request(join_v)))
    await settle()
    hb = await call(coordinator, 12, hb_v, req(12, hb_v, "HeartbeatRequest", group_id="g1", generation_id=1,
                                               member_id=a.member_id, group_instance_id=None))
    assert hb.error_code == ErrorCode.rebalance_in_progress
    a2 = await call(coordinator, 11, join_v, join_request(join_v, member_id=a.member_id))
    b = await b_task
    assert a2.generation_id == b.generation_id == 2
    assert a2.leader == a.member_id and len(a2.members) == 2 and not b.members
    b_sync = asyncio.create_task(sync(coordinator, sync_v, "g1", b.member_id, 2))
    await settle()
    a_sync = await sync(coordinator, sync_v, "g1", a.member_id, 2, [(a.member_id, b"A"), (b.member_id, b"B")])
    assert a_sync.assignment == b"A" and (await b_sync).assignment == b"B"

    # Offsets: commit with the group generation, fetch back.
    response = await commit(coordinator, commit_v, "g1", b.member_id, 2, {("events", 0): 10, ("events", 2): 30})
    assert {p.error_code for t in response.topics for p in t.partitions} == {ErrorCode.none}
    stale = await commit(coordinator, commit_v, "g1", b.member_id, 1, {("events", 0): 99})
    assert stale.topics[0].partitions[0].error_code == ErrorCode.illegal_generation
    error, offsets = await fetch(coordinator, fetch_v, "g1")
    assert error == ErrorCode.none
    assert offsets == {("events", 0): (10, ErrorCode.none), ("events", 1): (-1, ErrorCode.none),
                       ("events", 2): (30, ErrorCode.none)}

    # DescribeGroups shows both members; ListGroups lists the group.
    described = await call(coordinator, 15, 5, req(15, 5, "DescribeGroupsRequest", groups=("g1", "nope"),
                                                   include_authorized_operations=False))
    g1, nope = described.groups
    assert (g1.group_state, g1.protocol_data, len(g1.members)) == ("Stable", "range", 2)
    assert nope.group_state == "Dead"
    member_a = next(m for m in g1.members if m.member_id == a.member_id)
    assert (member_a.client_id, member_a.client_host, member_a.member_assignment) == ("client-a", "/10.0.0.1", b"A")
    listed = await call(coordinator, 16, 4, req(16, 4, "ListGroupsRequest", states_filter=()))
    assert [(g.group_id, g.group_state) for g in listed.groups] == [("g1", "Stable")]

    # b's session expires: a rebalance; a rejoins alone.
    clock.advance(SESSION_MS - 1)
    await call(coordinator, 12, hb_v, req(12, hb_v, "HeartbeatRequest", group_id="g1", generation_id=2,
                                          member_id=a.member_id, group_instance_id=None))
    clock.advance(2)
    coordinator.tick()
    a3 = await call(coordinator, 11, join_v, join_request(join_v, member_id=a.member_id))
    assert a3.generation_id == 3 and [m.member_id for m in a3.members] == [a.member_id]

    # a leaves; the group is Empty and can be deleted, offsets and all.
    leave = await call(coordinator, 13, 2, req(13, 2, "LeaveGroupRequest", group_id="g1", member_id=a.member_id))
    assert leave.error_code == ErrorCode.none
    deleted = await call(coordinator, 42, 2, req(42, 2, "DeleteGroupsRequest", groups_names=("g1", "g-unknown")))
    assert [(r.group_id, r.error_code) for r in deleted.results] == [
        ("g1", ErrorCode.none), ("g-unknown", ErrorCode.group_id_not_found)]
    error, offsets = await fetch(coordinator, fetch_v, "g1")
    assert offsets[("events", 0)][0] == -1


@aio
async def test_join_timeout_of_a_member_that_never_rejoins(env):
    core, coordinator, clock = env
    a = await (await join_new(coordinator))
    await sync(coordinator, 5, "g1", a.member_id, 1, [(a.member_id, b"x")])
    b_task = await join_new(coordinator)
    await settle()
    assert not b_task.done()  # waits for a to rejoin...
    for _ in range(4):  # ...a keeps heartbeating but never rejoins
        clock.advance(7_500)
        await call(coordinator, 12, 4, req(12, 4, "HeartbeatRequest", group_id="g1", generation_id=1,
                                           member_id=a.member_id, group_instance_id=None))
        coordinator.tick()
    b = await asyncio.wait_for(b_task, 1)
    assert b.error_code == ErrorCode.none and b.leader == b.member_id and len(b.members) == 1


@aio
async def test_leave_group_v3_batch_and_static_member(env):
    core, coordinator, _ = env
    task = asyncio.create_task(call(coordinator, 11, 7, join_request(7, instance="inst-1")))
    static = await task
    assert static.error_code == ErrorCode.none  # static members skip MEMBER_ID_REQUIRED
    response = await call(coordinator, 13, 4, req(13, 4, "LeaveGroupRequest", group_id="g1", members=(
        req(13, 4, "MemberIdentity", member_id="", group_instance_id="inst-1"),
        req(13, 4, "MemberIdentity", member_id="ghost", group_instance_id=None))))
    assert [m.error_code for m in response.members] == [ErrorCode.none, ErrorCode.unknown_member_id]


@aio
async def test_standalone_commit_and_offset_fetch_all_topics_v8(env):
    core, coordinator, _ = env
    response = await commit(coordinator, 9, "solo", "", -1, {("events", 1): 5})
    assert response.topics[0].partitions[0].error_code == ErrorCode.none
    error, offsets = await fetch(coordinator, 8, "solo", partitions=None)
    assert offsets == {("events", 1): (5, ErrorCode.none)}
    unknown = await commit(coordinator, 9, "solo", "", -1, {("no-such-topic", 0): 5})
    assert unknown.topics[0].partitions[0].error_code == ErrorCode.unknown_topic_or_partition


@aio
async def test_commit_errors_are_mapped_and_nothing_is_cached(env):
    core, coordinator, _ = env
    core.produce_error = ErrorCode.not_enough_replicas
    response = await commit(coordinator, 8, "solo", "", -1, {("events", 0): 5})
    assert response.topics[0].partitions[0].error_code == ErrorCode.coordinator_not_available
    core.produce_error = ErrorCode.not_leader_or_follower
    response = await commit(coordinator, 8, "solo", "", -1, {("events", 0): 5})
    assert response.topics[0].partitions[0].error_code == ErrorCode.not_coordinator
    _, offsets = await fetch(coordinator, 8, "solo")
    assert offsets[("events", 0)][0] == -1


@aio
async def test_offset_delete(env):
    core, coordinator, _ = env
    await commit(coordinator, 8, "solo", "", -1, {("events", 0): 5, ("events", 1): 6})
    response = await call(coordinator, 47, 0, req(47, 0, "OffsetDeleteRequest", group_id="solo", topics=(
        req(47, 0, "OffsetDeleteRequestTopic", name="events", partitions=(
            req(47, 0, "OffsetDeleteRequestPartition", partition_index=0),)),)))
    assert response.error_code == ErrorCode.none
    _, offsets = await fetch(coordinator, 8, "solo")
    assert offsets[("events", 0)][0] == -1 and offsets[("events", 1)][0] == 6
    missing = await call(coordinator, 47, 0, req(47, 0, "OffsetDeleteRequest", group_id="none", topics=()))
    assert missing.error_code == ErrorCode.group_id_not_found


@aio
async def test_failover_a_fresh_coordinator_loads_offsets_and_the_group(env):
    core, coordinator, _ = env
    a = await (await join_new(coordinator))
    await sync(coordinator, 5, "g1", a.member_id, 1, [(a.member_id, b"assignment")])
    await commit(coordinator, 8, "g1", a.member_id, 1, {("events", 0): 11, ("events", 1): 12})
    await commit(coordinator, 8, "g1", a.member_id, 1, {("events", 0): 21})
    await commit(coordinator, 8, "other", "", -1, {("events", 2): 7})
    await call(coordinator, 47, 0, req(47, 0, "OffsetDeleteRequest", group_id="other", topics=(
        req(47, 0, "OffsetDeleteRequestTopic", name="events", partitions=(
            req(47, 0, "OffsetDeleteRequestPartition", partition_index=2),)),)))
    await settle()
    # The broker dies; another broker (same replicated logs) becomes leader of every partition.
    await coordinator.stop()
    clock = Clock()
    successor = GroupCoordinator(FakeCore(core.logs), clock=clock, tick_interval_ms=3_600_000)
    await successor.start()
    try:
        await settle()
        _, offsets = await fetch(successor, 8, "g1")
        assert offsets[("events", 0)][0] == 21 and offsets[("events", 1)][0] == 12
        _, other = await fetch(successor, 8, "other")
        assert other[("events", 2)][0] == -1
        # The member carries on with its generation: heartbeats and commits succeed.
        hb = await call(successor, 12, 4, req(12, 4, "HeartbeatRequest", group_id="g1", generation_id=1,
                                              member_id=a.member_id, group_instance_id=None))
        assert hb.error_code == ErrorCode.none
        again = await sync(successor, 5, "g1", a.member_id, 1)
        assert again.assignment == b"assignment"
    finally:
        await successor.stop()


@aio
async def test_tailing_picks_up_records_that_became_visible_after_the_load(env):
    core, coordinator, _ = env
    index = partition_for("late", OFFSETS_PARTITIONS)
    # The previous leader's last commit is not yet below this leader's high watermark.
    writer_core = FakeCore()
    writer = GroupCoordinator(writer_core, tick_interval_ms=3_600_000)
    await writer.start()
    await settle()
    await commit(writer, 8, "late", "", -1, {("events", 0): 42})
    await writer.stop()
    core.logs[(OFFSETS_TOPIC, index)] = list(writer_core.logs[(OFFSETS_TOPIC, index)])
    _, offsets = await fetch(coordinator, 8, "late")
    assert offsets[("events", 0)][0] == -1
    coordinator.tick()
    _, offsets = await fetch(coordinator, 8, "late")
    assert offsets[("events", 0)][0] == 42


@aio
async def test_leadership_loss_answers_parked_joins_with_not_coordinator():
    core = FakeCore()
    core.config["group.initial.rebalance.delay.ms"] = 60_000
    coordinator = GroupCoordinator(core, clock=Clock(), tick_interval_ms=3_600_000)
    await coordinator.start()
    try:
        await settle()
        task = await join_new(coordinator)
        await settle()
        assert not task.done()
        for listener in core.listeners:
            listener(OFFSETS_TOPIC, partition_for("g1", OFFSETS_PARTITIONS), False, 1)
        response = await asyncio.wait_for(task, 1)
        assert response.error_code == ErrorCode.not_coordinator
    finally:
        await coordinator.stop()


@aio
async def test_invalid_session_timeout(env):
    core, coordinator, _ = env
    request = req(11, 7, "JoinGroupRequest", group_id="g1", session_timeout=ms(10), rebalance_timeout=ms(100),
                  member_id="", group_instance_id=None, protocol_type="consumer", protocols=protocols(7))
    response = await call(coordinator, 11, 7, request)
    assert response.error_code == ErrorCode.invalid_session_timeout


@aio
async def test_periodic_task_completes_a_delayed_first_rebalance():
    """Real clock: the background tick ends group.initial.rebalance.delay.ms without help."""
    core = FakeCore()
    core.config["group.initial.rebalance.delay.ms"] = 100
    coordinator = GroupCoordinator(core, tick_interval_ms=20)
    await coordinator.start()
    try:
        await settle()
        task = await join_new(coordinator)
        response = await asyncio.wait_for(task, 3)
        assert response.error_code == ErrorCode.none and response.generation_id == 1
    finally:
        await coordinator.stop()


def _append_raw(core, index, batch):
    """Append a batch to the fake offsets log as a client Produce would (base offset stamped)."""
    log = core.logs.setdefault((OFFSETS_TOPIC, index), [])
    base = log[-1][0] + struct.unpack_from(">i", log[-1][1], 23)[0] + 1 if log else 0
    log.append((base, struct.pack(">q", base) + batch[8:]))


def _garbage_batch(count):
    """A CRC-valid v2 batch of `count` records whose record bytes are garbage."""
    batch = bytearray(build_batch([(b"k", b"v")] * count, 0))
    batch[61:] = b"\xff" * (len(batch) - 61)
    struct.pack_into(">I", batch, 17, crc32c.crc32c(bytes(batch[21:])))
    return bytes(batch)


@aio
async def test_bad_records_in_the_offsets_log_are_skipped_with_one_error_each(caplog):
    """Issue 11: a garbage batch must not make the partition's load fail (and retry) forever."""
    caplog.set_level(logging.WARNING)
    index = partition_for("g1", OFFSETS_PARTITIONS)
    writer_core = FakeCore()
    writer = GroupCoordinator(writer_core, tick_interval_ms=3_600_000)
    await writer.start()
    await settle()
    await commit(writer, 8, "g1", "", -1, {("events", 0): 5})
    _append_raw(writer_core, index, _garbage_batch(3))
    _append_raw(writer_core, index, build_batch([
        (struct.pack(">h", -7) + b"junk", b"x"),  # a key version that does not exist
        (encode_offset_key("g1", "events", 1), struct.pack(">h", 99) + b"junk"),  # unknown value version
        (encode_offset_key("g1", "events", 3), encode_offset_value(OffsetValue(9))),  # good, same batch
    ], 0))
    await commit(writer, 8, "g1", "", -1, {("events", 2): 7})
    await writer.stop()

    coordinator = GroupCoordinator(FakeCore(writer_core.logs), clock=Clock(), tick_interval_ms=3_600_000)
    await coordinator.start()
    try:
        await settle()
        for _ in range(3):  # later ticks neither reload the partition nor log the bad records again
            coordinator.tick()
            await settle()
        error, offsets = await fetch(coordinator, 8, "g1", partitions=(("events", (0, 1, 2, 3)),))
        assert error == ErrorCode.none
        assert offsets == {("events", 0): (5, ErrorCode.none), ("events", 1): (-1, ErrorCode.none),
                           ("events", 2): (7, ErrorCode.none), ("events", 3): (9, ErrorCode.none)}
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 3, errors
        assert all(f"{OFFSETS_TOPIC}-{index}" in message for message in errors), errors
    finally:
        await coordinator.stop()
