"""Issue 5 acceptance: real Kafka clients against a real 3-broker Brook cluster, unchanged.

confluent-kafka (librdkafka), kafka-python and aiokafka produce with acks=all and idempotence, with
every codec, and read everything back; a consumer group rebalances on join and on member death and
resumes from committed offsets; leaders and the group coordinator are SIGKILLed under load. One
cluster per module; every process (brokers, controllers, consumer processes) is stopped by PID.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from brookpb import admin_pb2 as apb
from cluster.client import ControllerClient
from tests.support import admin, create_topic, partition_state, wait_until

# The module's `cluster` fixture is in tests/compat/conftest.py.

GROUP_SESSION_TIMEOUT_S = 6.0
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.fixture
def procs():
    """Consumer processes started by a test, killed by PID whatever happens."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def expected_records(tag: str, n: int) -> list[tuple[bytes, bytes, list]]:
    return [(f"k{i}".encode(), f"{tag}-v{i}".encode(), [("h", f"{i}".encode())]) for i in range(n)]


def read_partition_confluent(bootstrap: str, topic: str, count: int, timeout_s: float = 30):
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append((m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])]))
    c.close()
    return got


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_round_trip(cluster, codec):
    from confluent_kafka import Producer

    topic = f"ck-{codec}"
    create_topic(cluster, topic)
    want = expected_records(topic, 300)
    p = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                  "compression.type": codec, "linger.ms": 10})
    errors = []
    for k, v, h in want:
        p.produce(topic, key=k, value=v, headers=h, partition=0,
                  on_delivery=lambda err, msg: err and errors.append(err))
    assert p.flush(30) == 0 and not errors
    assert read_partition_confluent(cluster.kafka_bootstrap, topic, len(want)) == want


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_round_trip(cluster, codec):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = f"kp-{codec}"
    create_topic(cluster, topic)
    want = expected_records(topic, 200)
    p = KafkaProducer(bootstrap_servers=cluster.kafka_bootstrap, acks="all", enable_idempotence=True,
                      compression_type=None if codec == "none" else codec, linger_ms=10)
    futures = [p.send(topic, key=k, value=v, headers=h, partition=0) for k, v, h in want]
    for f in futures:
        f.get(timeout=30)
    p.close()
    c = KafkaConsumer(bootstrap_servers=cluster.kafka_bootstrap, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=5000)
    c.assign([TopicPartition(topic, 0)])
    c.seek_to_beginning()
    got = []
    for m in c:
        got.append((m.key, m.value, [(k, v) for k, v in m.headers]))
        if len(got) == len(want):
            break
    c.close()
    assert got == want


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_round_trip(cluster, codec):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"aio-{codec}"
    create_topic(cluster, topic)
    want = expected_records(topic, 200)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=cluster.kafka_bootstrap, acks="all", enable_idempotence=True,
                             compression_type=None if codec == "none" else codec, linger_ms=10)
        await p.start()
        try:
            for k, v, h in want:
                await p.send(topic, key=k, value=v, headers=h, partition=0)
            await p.flush()
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=cluster.kafka_bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
        await c.start()
        try:
            c.assign([TopicPartition(topic, 0)])
            await c.seek_to_beginning()
            got = []
            deadline = time.monotonic() + 30
            while len(got) < len(want) and time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=500)
                for msgs in batch.values():
                    got.extend((m.key, m.value, [(k, v) for k, v in m.headers]) for m in msgs)
            return got
        finally:
            await c.stop()

    assert asyncio.run(run()) == want


def _events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line cut by a kill
    return out


def _assignment(path: Path) -> list[int] | None:
    current = None
    for e in _events(path):
        if "assign" in e:
            current = e["assign"]
        elif "revoke" in e:
            current = None
    return current


def _start_consumer(cluster, group: str, topic: str, out: Path, procs: list) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, str(Path(__file__).with_name("consumer_proc.py")), cluster.kafka_bootstrap,
                          group, topic, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    procs.append(p)
    return p


def _balanced(paths: list[Path], partitions: int) -> bool:
    assignments = [_assignment(p) for p in paths]
    if any(a is None for a in assignments):
        return False
    flat = [x for a in assignments for x in a]
    return sorted(flat) == list(range(partitions)) and all(a for a in assignments)


def _produce(cluster, topic: str, values: list[str]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(topic, key=str(i).encode(), value=v.encode())
    assert p.flush(30) == 0


def _consumed(paths: list[Path]) -> set[str]:
    return {e["v"] for p in paths for e in _events(p) if "v" in e}


@pytest.mark.timeout(240)
def test_consumer_group_rebalances_and_resumes(cluster, procs, tmp_path):
    topic, group = "group-six", "g-six"
    create_topic(cluster, topic, partitions=6)
    first = [f"a{i}" for i in range(600)]
    _produce(cluster, topic, first)
    outs = [tmp_path / f"c{i}.jsonl" for i in range(4)]
    members = [_start_consumer(cluster, group, topic, outs[i], procs) for i in range(3)]
    wait_until(lambda: _balanced(outs[:3], 6), 60, 0.2, "3 consumers to share 6 partitions")
    # A 4th member joins: a rebalance gives every partition to exactly one of 4 members.
    start = time.monotonic()
    members.append(_start_consumer(cluster, group, topic, outs[3], procs))
    wait_until(lambda: _balanced(outs, 6), 30, 0.1, "a rebalance after a join")
    join_s = time.monotonic() - start
    # One member dies (SIGKILL, no LeaveGroup): the others take over its partitions.
    wait_until(lambda: set(first) <= _consumed(outs), 60, 0.2, "the first records to be consumed")
    victim = members.pop(0)
    victim.kill()
    victim.wait(timeout=10)
    start = time.monotonic()
    wait_until(lambda: _balanced(outs[1:], 6), GROUP_SESSION_TIMEOUT_S + 10, 0.1, "a rebalance after a death")
    death_s = time.monotonic() - start
    print(f"rebalance after join {join_s:.2f}s, after member death {death_s:.2f}s "
          f"(group session timeout {GROUP_SESSION_TIMEOUT_S}s)")
    assert death_s <= GROUP_SESSION_TIMEOUT_S + 5
    # All consumers stop cleanly (committing), new ones resume from the committed offsets.
    second = [f"b{i}" for i in range(300)]
    _produce(cluster, topic, second)
    wait_until(lambda: set(second) <= _consumed(outs), 60, 0.2, "the second records to be consumed")
    time.sleep(1.0)  # let the auto-commit after the last poll go out
    for m in members:
        m.send_signal(signal.SIGTERM)
        m.wait(timeout=30)
    before_restart = _consumed(outs)
    third = [f"c{i}" for i in range(300)]
    _produce(cluster, topic, third)
    new_outs = [tmp_path / f"r{i}.jsonl" for i in range(3)]
    for i in range(3):
        _start_consumer(cluster, group, topic, new_outs[i], procs)
    wait_until(lambda: set(third) <= _consumed(new_outs), 60, 0.2, "restarted consumers to read new records")
    replayed = _consumed(new_outs) & (set(first) | set(second))
    assert len(replayed) < 50, f"{len(replayed)} already-committed records re-read: offsets were not resumed"
    assert set(first) | set(second) | set(third) <= before_restart | _consumed(new_outs), "a record was skipped"


@pytest.mark.timeout(240)
def test_group_survives_coordinator_kill(cluster, procs, tmp_path):
    from broker.groups.coordinator import partition_for

    topic, group = "coord-kill", "g-coord"
    create_topic(cluster, topic, partitions=3)
    outs = [tmp_path / f"c{i}.jsonl" for i in range(2)]
    for o in outs:
        _start_consumer(cluster, group, topic, o, procs)
    wait_until(lambda: _balanced(outs, 3), 60, 0.2, "2 consumers to share 3 partitions")
    before = [f"x{i}" for i in range(300)]
    _produce(cluster, topic, before)
    wait_until(lambda: set(before) <= _consumed(outs), 60, 0.2, "records before the kill")
    time.sleep(1.0)
    with admin(cluster) as client:
        offsets_topic = client.describe_topics(["__consumer_offsets"], include_internal=True).topics[0]
    coordinator = next(p.leader for p in offsets_topic.partitions
                       if p.partition == partition_for(group, len(offsets_topic.partitions)))
    cluster.kill(coordinator, signal.SIGKILL)
    after = [f"y{i}" for i in range(300)]
    _produce(cluster, topic, after)
    wait_until(lambda: set(after) <= _consumed(outs), 90, 0.2, "records after the coordinator kill")
    time.sleep(1.0)
    for o in procs:
        o.send_signal(signal.SIGTERM)
        o.wait(timeout=30)
    # A new member resumes from offsets committed through the new coordinator: nothing old re-read.
    final = tmp_path / "final.jsonl"
    last = [f"z{i}" for i in range(30)]
    _produce(cluster, topic, last)
    _start_consumer(cluster, group, topic, final, procs)
    wait_until(lambda: set(last) <= _consumed([final]), 60, 0.2, "a resumed member")
    assert len(_consumed([final]) & (set(before) | set(after))) < 30
    cluster.start_node(coordinator)
    cluster.wait_healthy(30)


@pytest.mark.timeout(180)
def test_leader_kill_under_idempotent_producer_loses_and_duplicates_nothing(cluster):
    from confluent_kafka import Producer

    topic = "ck-leader-kill"
    create_topic(cluster, topic)
    leader = partition_state(cluster, topic).leader
    p = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": 60000})
    delivered, errors = [], []
    for i in range(4000):
        p.produce(topic, value=f"lk{i}".encode(), partition=0,
                  on_delivery=lambda err, msg: errors.append(err) if err else delivered.append(msg.value()))
        if i == 2000:
            cluster.kill(leader, signal.SIGKILL)
        if i % 200 == 0:
            p.poll(0)
            time.sleep(0.02)
    assert p.flush(90) == 0 and not errors
    values = [v for _, v, _ in read_partition_confluent(cluster.kafka_bootstrap, topic, 4000, 60)]
    assert len(values) == len(set(values)) == 4000, f"read {len(values)} ({len(set(values))} distinct) of 4000"
    assert set(values) == set(delivered)
    cluster.start_node(leader)
    cluster.wait_healthy(30)


@pytest.mark.timeout(60)
def test_admin_client_creates_describes_and_deletes(cluster):
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    a = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
    fs = a.create_topics([NewTopic("admin-made", num_partitions=2, replication_factor=3,
                                   config={"retention.ms": "3600000"})])
    fs["admin-made"].result(timeout=20)
    configs = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, "admin-made")])
    entries = next(iter(configs.values())).result(timeout=20)
    assert entries["retention.ms"].value == "3600000"
    assert len(a.list_topics(timeout=10).topics["admin-made"].partitions) == 2
    a.delete_topics(["admin-made"])["admin-made"].result(timeout=20)
    wait_until(lambda: "admin-made" not in a.list_topics(timeout=10).topics, 20, 0.2, "the topic to go")
    bad = a.create_topics([NewTopic("bad name!", num_partitions=1, replication_factor=1)])
    with pytest.raises(Exception) as error:
        bad["bad name!"].result(timeout=20)
    assert "TOPIC_EXCEPTION" in str(error.value) and "249" in str(error.value)  # INVALID_TOPIC_EXCEPTION (17), one line


@pytest.mark.timeout(90)
def test_admin_client_adds_partitions(cluster):
    """Issue 13: CreatePartitions (kafka-topics.sh --alter --partitions, AdminClient.create_partitions)."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    a = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
    a.create_topics([NewTopic("grown", num_partitions=2, replication_factor=3)])["grown"].result(timeout=20)
    a.create_partitions([NewPartitions("grown", 4)])["grown"].result(timeout=20)
    wait_until(lambda: len(a.list_topics("grown", timeout=10).topics["grown"].partitions) == 4, 20, 0.2,
               "4 partitions in Metadata")
    shrink = a.create_partitions([NewPartitions("grown", 3)])["grown"]
    with pytest.raises(Exception) as error:
        shrink.result(timeout=20)
    assert "INVALID_PARTITIONS" in str(error.value), error.value
    p = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "message.timeout.ms": 30000})
    delivered = []
    p.produce("grown", value=b"in-a-new-partition", partition=3,
              on_delivery=lambda err, msg: delivered.append(err or (msg.partition(), msg.offset())))
    assert p.flush(30) == 0 and delivered == [(3, 0)], delivered
    c = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": "grown-reader",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("grown", 3, 0)])
    deadline, got = time.monotonic() + 20, None
    while got is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        got = m.value() if m is not None and not m.error() else None
    c.close()
    assert got == b"in-a-new-partition"


@pytest.mark.timeout(180)
def test_admin_client_delete_records_survives_a_leader_kill(cluster):
    """Issue 13: DeleteRecords (AdminClient.delete_records) moves the log start of the leader and of
    every ISR follower before it answers, so after the leader is killed the new leader starts there too."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = "ck-delete-records"
    create_topic(cluster, topic)
    p = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "message.timeout.ms": 30000})
    for i in range(100):
        p.produce(topic, value=b"d%d" % i, partition=0)
    assert p.flush(30) == 0
    a = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
    done = a.delete_records([TopicPartition(topic, 0, 60)], request_timeout=20)
    result = next(iter(done.values())).result(timeout=30)
    assert result.low_watermark == 60
    beyond = a.delete_records([TopicPartition(topic, 0, 101)], request_timeout=20)
    with pytest.raises(Exception) as error:
        next(iter(beyond.values())).result(timeout=30)
    assert "OFFSET_OUT_OF_RANGE" in str(error.value), error.value

    seen: list[object] = []

    def earliest() -> int | None:
        """The partition leader's log start (ListOffsets EARLIEST), asked by a fresh consumer."""
        c = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": "ck-delete-records"})
        try:
            low, _high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
        except Exception as e:
            seen.append(e)
            return None
        finally:
            c.close()
        seen.append(low)
        return low if low >= 0 else None

    assert earliest() == 60
    leader = partition_state(cluster, topic).leader
    cluster.kill(leader, signal.SIGKILL)
    try:
        wait_until(lambda: partition_state(cluster, topic).leader not in (-1, leader), 60, 0.2, "a new leader")
        try:
            wait_until(lambda: earliest() is not None, 30, 0.2, "ListOffsets from the new leader")
        except AssertionError as e:
            raise AssertionError(f"{e}; last answers {seen[-3:]}") from None
        assert earliest() == 60, "the new leader's log start is not where DeleteRecords moved it"
    finally:
        cluster.start_node(leader)
        cluster.wait_healthy(60)


@pytest.mark.timeout(60)
def test_describe_quorum_shows_the_controller_quorum(cluster):
    """Issue 13: DescribeQuorum (what kafka-metadata-quorum sends) answered by a broker: the quorum's
    leader and term, its voters, the brokers as observers."""
    from broker.kafka.codec import build, request_class
    from tests.unit.kafka.wire_helpers import WireClient

    async def ask(port: int):
        m = importlib.import_module(request_class(55, 1).__module__)
        request = build(request_class(55, 1), topics=(build(m.TopicData, topic_name="__cluster_metadata",
                                                             partitions=(build(m.PartitionData, partition_index=0),)),))
        client = await WireClient.connect(port)
        try:
            return await client.call(request, timeout=20)
        finally:
            await client.close()

    port = int(cluster.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
    partition = asyncio.run(ask(port)).topics[0].partitions[0]
    with ControllerClient(cluster.controller_bootstrap, timeout_s=5.0) as admin:
        status = admin.call("QuorumStatus", apb.QuorumStatusRequest(), prefer=admin.describe_cluster().active_controller)
    assert partition.error_code == 0 and partition.leader_id == status.leader_id >= 1
    assert partition.leader_epoch == status.term and partition.high_watermark >= 1
    assert sorted(v.replica_id for v in partition.current_voters) == [1, 2, 3]
    assert sorted(o.replica_id for o in partition.observers) == [101, 102, 103]


@pytest.mark.timeout(60)
def test_compacted_topic_reads_latest_value_per_key(cluster):
    """Issue 3: a compacted topic read from the beginning by kafka-python yields the latest value per key."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = "compacted"
    create_topic(cluster, topic, configs={"cleanup.policy": "compact", "segment.bytes": "2048",
                                          "min.insync.replicas": "1"})
    p = KafkaProducer(bootstrap_servers=cluster.kafka_bootstrap, acks="all", linger_ms=0)
    latest = {}
    for round_ in range(20):
        for k in range(10):
            v = f"r{round_}-k{k}".encode()
            p.send(topic, key=f"k{k}".encode(), value=v, partition=0).get(timeout=10)
            latest[f"k{k}".encode()] = v
    p.close()
    # Compaction runs on the broker's retention check interval; wait until closed segments are cleaned.
    def read() -> list:
        c = KafkaConsumer(bootstrap_servers=cluster.kafka_bootstrap, enable_auto_commit=False,
                          auto_offset_reset="earliest", consumer_timeout_ms=2000)
        c.assign([TopicPartition(topic, 0)])
        c.seek_to_beginning()
        out = [(m.key, m.value) for m in c]
        c.close()
        return out
    records = wait_until(lambda: (r := read()) and len(r) < 200 and r, 40, 1.0, "compaction")
    assert dict(records) == latest
    assert len(records) < 200


@pytest.mark.timeout(60)
def test_kcat_lists_and_round_trips(cluster):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed (.ci/run installs it)")
    listing = subprocess.run([kcat, "-b", cluster.kafka_bootstrap, "-L"], capture_output=True, text=True, timeout=20)
    assert listing.returncode == 0, listing.stderr
    assert "3 brokers" in listing.stdout
    create_topic(cluster, "kcat-topic")
    subprocess.run([kcat, "-b", cluster.kafka_bootstrap, "-P", "-t", "kcat-topic", "-p", "0"],
                   input="one\ntwo\nthree\n", text=True, check=True, timeout=20)
    out = subprocess.run([kcat, "-b", cluster.kafka_bootstrap, "-C", "-t", "kcat-topic", "-p", "0", "-o",
                          "beginning", "-c", "3", "-e"], capture_output=True, text=True, timeout=20)
    assert out.stdout.split() == ["one", "two", "three"], out.stderr


MANY_PARTITIONS = 300


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python"])
def test_a_consumer_of_many_partitions_reads_everything(cluster, client):
    """Issue 16 item 4: one consumer assigned 300 partitions reads every record. librdkafka fetches
    without sessions (session 0, epoch -1: full requests); kafka-python opens KIP-227 fetch sessions,
    so after its first full fetch per broker it lists only partitions whose position moved and the
    broker answers only partitions with news — records on a partition it did not list must still come."""
    from confluent_kafka import Producer

    topic = f"many-{client}"
    create_topic(cluster, topic, partitions=MANY_PARTITIONS)
    p = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "linger.ms": 5})
    want = {f"{topic}-{i}" for i in range(MANY_PARTITIONS * 4)}
    for i, value in enumerate(sorted(want)):
        p.produce(topic, value=value.encode(), partition=i % MANY_PARTITIONS)
    assert p.flush(60) == 0
    got: set[str] = set()
    deadline = time.monotonic() + 90
    if client == "confluent-kafka":
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": f"many-{uuid.uuid4().hex[:6]}",
                      "enable.auto.commit": False})
        c.assign([TopicPartition(topic, i, 0) for i in range(MANY_PARTITIONS)])
        while got != want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.add(m.value().decode())
        c.close()
    else:
        from kafka import KafkaConsumer, TopicPartition

        c = KafkaConsumer(bootstrap_servers=cluster.kafka_bootstrap, enable_auto_commit=False,
                          auto_offset_reset="earliest", fetch_max_wait_ms=100)
        c.assign([TopicPartition(topic, i) for i in range(MANY_PARTITIONS)])
        # Records arriving after the sessions are open: on partitions the client no longer lists.
        late = {f"{topic}-late-{i}" for i in range(0, MANY_PARTITIONS, 7)}
        sent_late = False
        while got != want | late and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.update(r.value.decode() for r in records)
            if not sent_late and got == want:
                for i, value in enumerate(sorted(late)):
                    p.produce(topic, value=value.encode(), partition=(i * 7) % MANY_PARTITIONS)
                assert p.flush(30) == 0
                sent_late = True
        sessions = [h.next_metadata.session_id for h in c._fetcher._session_handlers.values()]
        c.close()
        assert sent_late and got == want | late
        assert any(s > 0 for s in sessions), f"kafka-python opened no fetch session: {sessions}"
        return
    assert got == want
