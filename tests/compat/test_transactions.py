"""Transactions (KIP-98) with a real client: confluent-kafka (librdkafka) against a 3-broker cluster.

A committed transaction is visible whole to read_committed consumers, an aborted one never; a
second producer with the same transactional.id fences the first and aborts its open transaction;
consume-transform-produce with send_offsets_to_transaction is exactly once; an open transaction
past transaction.timeout.ms is aborted by the coordinator; SIGKILL of the broker leading the
transactional id's `__transaction_state` partition mid-transaction and mid-commit leaves the
transaction either whole or absent. One cluster for the module; every process stopped by PID.
"""

from __future__ import annotations

import signal
import time
import uuid

import pytest

from broker.groups.placement import partition_for
from cluster.cli.launcher import LocalCluster
from tests.compat.conftest import OVERRIDES
from tests.support import admin, create_topic

TXN_PARTITIONS = 5
TXN_OVERRIDES = {
    **OVERRIDES,
    "transaction.state.log.num.partitions": str(TXN_PARTITIONS),
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("txn"), 3, 3, overrides=TXN_OVERRIDES)
    try:
        c.start(timeout_s=90)
        yield c
    finally:
        c.stop()


def _producer(cluster, tid: str, **extra):
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": cluster.kafka_bootstrap, "transactional.id": tid, "linger.ms": 5,
            "transaction.timeout.ms": 60000, "message.timeout.ms": 60000}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(60)
    return p


def _read(cluster, topic: str, partitions: int, isolation: str, idle_s: float = 3.0, timeout_s: float = 60.0,
          expect: int | None = None) -> list[bytes]:
    """Every record value of `topic` (all partitions, from the start) with the given isolation level."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": f"r-{uuid.uuid4()}",
                  "isolation.level": isolation, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                if time.monotonic() - last > idle_s and (expect is None or len(values) >= expect):
                    break
                continue
            if msg.error():
                continue
            values.append(msg.value())
            last = time.monotonic()
        return values
    finally:
        c.close()


def _txn_leader(cluster, tid: str) -> int:
    with admin(cluster) as client:
        topic = client.describe_topics(["__transaction_state"], include_internal=True).topics[0]
    index = partition_for(tid, len(topic.partitions))
    return next(p.leader for p in topic.partitions if p.partition == index)


@pytest.mark.timeout(180)
def test_committed_visible_whole_aborted_never(cluster):
    topic = "txn-basic"
    create_topic(cluster, topic, partitions=3)
    p = _producer(cluster, "tid-basic")
    p.begin_transaction()
    for i in range(90):
        p.produce(topic, value=f"c1-{i}".encode(), partition=i % 3)
    p.commit_transaction(60)
    p.begin_transaction()
    for i in range(60):
        p.produce(topic, value=f"a-{i}".encode(), partition=i % 3)
    p.flush(30)
    p.abort_transaction(60)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, value=f"c2-{i}".encode(), partition=i % 3)
    p.commit_transaction(60)
    committed = _read(cluster, topic, 3, "read_committed", expect=120)
    assert sorted(committed) == sorted([f"c1-{i}".encode() for i in range(90)] +
                                       [f"c2-{i}".encode() for i in range(30)])
    uncommitted = _read(cluster, topic, 3, "read_uncommitted", expect=180)
    assert len(uncommitted) == 180  # the aborted records are in the log, only hidden


@pytest.mark.timeout(180)
def test_open_transaction_holds_back_read_committed_until_commit(cluster):
    topic = "txn-lso"
    create_topic(cluster, topic)
    p = _producer(cluster, "tid-lso")
    p.begin_transaction()
    for i in range(20):
        p.produce(topic, value=f"open-{i}".encode(), partition=0)
    p.flush(30)
    assert _read(cluster, topic, 1, "read_committed", idle_s=2.0) == []
    assert len(_read(cluster, topic, 1, "read_uncommitted", expect=20)) == 20
    p.commit_transaction(60)
    assert len(_read(cluster, topic, 1, "read_committed", expect=20)) == 20


@pytest.mark.timeout(180)
def test_second_producer_fences_the_first_and_aborts_its_transaction(cluster):
    from confluent_kafka import KafkaException

    topic = "txn-fence"
    create_topic(cluster, topic, partitions=2)
    first = _producer(cluster, "tid-fence")
    first.begin_transaction()
    for i in range(40):
        first.produce(topic, value=f"zombie-{i}".encode(), partition=i % 2)
    first.flush(30)
    second = _producer(cluster, "tid-fence")  # bumps the epoch and aborts the open transaction
    second.begin_transaction()
    for i in range(40):
        second.produce(topic, value=f"second-{i}".encode(), partition=i % 2)
    second.commit_transaction(60)
    with pytest.raises(KafkaException) as raised:
        first.produce(topic, value=b"zombie-late", partition=0)
        first.commit_transaction(30)
    assert raised.value.args[0].fatal() or "fenced" in str(raised.value).lower()
    committed = _read(cluster, topic, 2, "read_committed", expect=40)
    assert sorted(committed) == sorted(f"second-{i}".encode() for i in range(40))


_ZOMBIE = """
import sys, time
from confluent_kafka import Producer
bootstrap, topic, tid = sys.argv[1:4]
p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, "transaction.timeout.ms": 900000})
p.init_transactions(60)
p.begin_transaction()
for i in range(30):
    p.produce(topic, value=f"killed-{i}".encode(), partition=i % 2)
p.flush(30)
print("sent", flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(180)
def test_producer_killed_mid_transaction_is_fenced_and_its_transaction_aborted(cluster):
    """A producer process SIGKILLed with an open transaction: its successor with the same
    transactional.id aborts it at once; read_committed never sees it and reads past it (the last
    stable offset moves). The killed producer's transaction.timeout.ms is 15 minutes (Kafka's
    transaction.max.timeout.ms), far past this test's timeout, so only the successor's fencing can
    end the transaction in time: a coordinator that waited for the timeout fails the test."""
    import subprocess
    import sys

    topic, tid = "txn-killed", "tid-killed"
    create_topic(cluster, topic, partitions=2)
    proc = subprocess.Popen([sys.executable, "-c", _ZOMBIE, cluster.kafka_bootstrap, topic, tid],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "sent"
        assert len(_read(cluster, topic, 2, "read_uncommitted", expect=30)) == 30
    finally:
        proc.kill()
        proc.wait(timeout=30)
    successor = _producer(cluster, tid)
    successor.begin_transaction()
    for i in range(10):
        successor.produce(topic, value=f"successor-{i}".encode(), partition=i % 2)
    successor.commit_transaction(60)
    committed = _read(cluster, topic, 2, "read_committed", expect=10)
    assert sorted(committed) == sorted(f"successor-{i}".encode() for i in range(10))


@pytest.mark.timeout(240)
def test_consume_transform_produce_is_exactly_once(cluster):
    from confluent_kafka import Consumer, TopicPartition

    source, sink, group = "txn-in", "txn-out", "txn-ctp"
    create_topic(cluster, source, partitions=2)
    create_topic(cluster, sink, partitions=2)
    src = _producer(cluster, "tid-src")
    src.begin_transaction()
    for i in range(300):
        src.produce(source, value=f"in-{i}".encode(), partition=i % 2)
    src.commit_transaction(60)

    def run(limit_batches: int | None, abort_batch: int | None) -> int:
        c = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": group,
                      "isolation.level": "read_committed", "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
        p = _producer(cluster, "tid-ctp")
        c.subscribe([source])
        batches = 0
        idle_since = time.monotonic()
        try:
            while limit_batches is None or batches < limit_batches:
                msgs = c.consume(50, 1.0)
                msgs = [m for m in msgs if not m.error()]
                if not msgs:
                    if time.monotonic() - idle_since > 8:
                        break
                    continue
                idle_since = time.monotonic()
                p.begin_transaction()
                for m in msgs:
                    p.produce(sink, value=m.value().replace(b"in-", b"out-"), partition=m.partition())
                positions = c.position(c.assignment())
                p.send_offsets_to_transaction(positions, c.consumer_group_metadata(), 30)
                if batches == abort_batch:
                    p.abort_transaction(60)
                    # Rewind to the committed offsets: the aborted batch is processed again.
                    committed = c.committed(c.assignment(), 30)
                    for tp in committed:
                        c.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else 0))
                else:
                    p.commit_transaction(60)
                batches += 1
        finally:
            c.close()
        return batches

    run(limit_batches=3, abort_batch=1)  # a first worker stops early (one batch aborted)
    run(limit_batches=None, abort_batch=None)  # a second one resumes from the committed offsets
    out = _read(cluster, sink, 2, "read_committed", expect=300)
    assert sorted(out) == sorted(f"out-{i}".encode() for i in range(300))
    from confluent_kafka import Consumer as C2

    check = C2({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": group})
    try:
        committed = check.committed([TopicPartition(source, 0), TopicPartition(source, 1)], 30)
    finally:
        check.close()
    assert sum(tp.offset for tp in committed) >= 300  # every input offset committed (markers included)


@pytest.mark.timeout(180)
def test_transaction_past_its_timeout_is_aborted(cluster):
    topic = "txn-timeout"
    create_topic(cluster, topic)
    p = _producer(cluster, "tid-timeout", **{"transaction.timeout.ms": 2000, "message.timeout.ms": 2000})
    p.begin_transaction()
    for i in range(10):
        p.produce(topic, value=f"expired-{i}".encode(), partition=0)
    p.flush(30)
    later = _producer(cluster, "tid-after-timeout")
    later.begin_transaction()
    later.produce(topic, value=b"after", partition=0)
    later.commit_transaction(60)
    # The expired transaction is aborted by the coordinator: the LSO moves past it, and its
    # records are never visible to read_committed.
    assert _read(cluster, topic, 1, "read_committed", expect=1, timeout_s=30) == [b"after"]


def _kill_txn_coordinator_mid(cluster, tid: str, topic: str, commit_first: bool) -> None:
    p = _producer(cluster, tid)
    p.begin_transaction()
    for i in range(50):
        p.produce(topic, value=f"{tid}-{i}".encode(), partition=i % 2)
    p.flush(30)
    coordinator = _txn_leader(cluster, tid)
    outcome = "unknown"
    if commit_first:
        import threading

        def commit() -> None:
            nonlocal outcome
            try:
                p.commit_transaction(90)
                outcome = "committed"
            except Exception as e:  # noqa: BLE001 - any client outcome is allowed; the log decides
                outcome = f"failed: {e}"

        t = threading.Thread(target=commit)
        t.start()
        cluster.kill(coordinator, signal.SIGKILL)
        t.join(120)
    else:
        cluster.kill(coordinator, signal.SIGKILL)
        try:
            p.commit_transaction(90)
            outcome = "committed"
        except Exception as e:  # noqa: BLE001
            outcome = f"failed: {e}"
    # A successor producer (same id) resolves anything left open: nothing stays half-visible.
    successor = _producer(cluster, tid)
    successor.begin_transaction()
    successor.produce(topic, value=f"{tid}-successor".encode(), partition=0)
    successor.commit_transaction(60)
    visible = [v for v in _read(cluster, topic, 2, "read_committed", expect=1) if v.startswith(tid.encode())]
    mine = [v for v in visible if v != f"{tid}-successor".encode()]
    assert f"{tid}-successor".encode() in visible
    assert len(mine) in (0, 50), f"half a transaction visible: {len(mine)} of 50 ({outcome})"
    if outcome == "committed":
        assert len(mine) == 50, "an acknowledged commit was lost"
    cluster.start_node(coordinator)
    cluster.wait_healthy(60)


@pytest.mark.timeout(300)
def test_coordinator_sigkill_mid_transaction_and_mid_commit(cluster):
    topic = "txn-coord-kill"
    create_topic(cluster, topic, partitions=2)
    _kill_txn_coordinator_mid(cluster, "tid-kill-open", topic, commit_first=False)
    _kill_txn_coordinator_mid(cluster, "tid-kill-commit", topic, commit_first=True)


@pytest.mark.timeout(300)
def test_new_coordinator_finishes_an_acknowledged_commit_whose_markers_were_pending(cluster):
    """Deterministic mid-commit failover: the commit is acknowledged (PrepareCommit written) while the
    data partition's only replica is stopped, so no marker can be written; then the coordinator is
    SIGKILLed. The broker that takes over the `__transaction_state` partition must load PrepareCommit
    and finish the markers once the data partition is back: the acknowledged transaction appears whole."""
    import threading

    from tests.support import partition_state

    topic = "txn-pending-markers"
    create_topic(cluster, topic, partitions=1, rf=1, configs={"min.insync.replicas": "1"})
    data_leader = partition_state(cluster, topic).leader
    _producer(cluster, "tid-warm-up")  # __transaction_state exists from here on
    tid = next(t for t in (f"tid-pending-{i}" for i in range(200)) if _txn_leader(cluster, t) != data_leader)
    coordinator = _txn_leader(cluster, tid)
    p = _producer(cluster, tid)
    p.begin_transaction()
    for i in range(50):
        p.produce(topic, value=f"pending-{i}".encode(), partition=0)
    p.flush(30)
    outcome: list[str] = []

    def commit() -> None:
        try:
            p.commit_transaction(90)
            outcome.append("committed")
        except Exception as e:  # noqa: BLE001 - reported below
            outcome.append(f"failed: {e}")

    cluster.send_signal(data_leader, signal.SIGSTOP)
    try:
        t = threading.Thread(target=commit)
        t.start()
        t.join(120)
        assert outcome == ["committed"], outcome  # PrepareCommit is durable; the markers are not written
        cluster.kill(coordinator, signal.SIGKILL)
        time.sleep(2.0)
    finally:
        cluster.send_signal(data_leader, signal.SIGCONT)
    values = _read(cluster, topic, 1, "read_committed", expect=50, timeout_s=120)
    assert sorted(values) == sorted(f"pending-{i}".encode() for i in range(50))
    cluster.start_node(coordinator)
    cluster.wait_healthy(60)
