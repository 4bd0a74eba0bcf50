"""Issue 4 acceptance: acknowledged writes survive broker failures (RF=3, min.insync.replicas=2, acks=all).

A writer sends unique values and records every acknowledgement; after each scenario every
acknowledged value must be read back exactly once, in offset order, at its acknowledged offset, and
all replicas must hold identical bytes up to the HW. Real processes, real signals; one cluster per
module, every process stopped by PID in the fixture's finalizer.
"""

from __future__ import annotations

import signal
import time

import pytest

from cluster.cli.launcher import LocalCluster
from tests.integration.conftest import run_cli_process
from tests.support import (
    Writer,
    admin,
    check_exactly_once,
    check_replicas_identical,
    create_topic,
    partition_state,
    read_all,
    wait_until,
)

SESSION_TIMEOUT_MS = 3000
LAG_TIME_MS = 3000
OVERRIDES = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
    "replica.lag.time.max.ms": str(LAG_TIME_MS),
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "auto.leader.rebalance.enable": "false",
    "leader.imbalance.check.interval.seconds": "1",
    "offsets.topic.replication.factor": "3",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("replication"), 3, 3, overrides=OVERRIDES)
    try:
        c.start(timeout_s=60)
        yield c
    finally:
        c.stop()


def verify(cluster, topic: str, writer: Writer) -> None:
    cluster.wait_healthy(30)
    wait_until(lambda: len(partition_state(cluster, topic).isr) == 3, 30, 0.2, "a full ISR")
    check_exactly_once(writer.acked, read_all(cluster, topic))
    check_replicas_identical(cluster, topic)


def run_writer(cluster, topic: str, seconds: float, writer: Writer | None = None, prefix: str = "") -> Writer:
    writer = writer or Writer(cluster, topic)
    writer.start(prefix=prefix or topic)
    time.sleep(seconds)
    return writer


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["clean", "hard"])
def test_bounce_the_leader_three_times(cluster, sig):
    topic = f"bounce-{sig.name.lower()}"
    create_topic(cluster, topic)
    writer = run_writer(cluster, topic, 1.0)
    gaps = []
    try:
        for _ in range(3):
            leader = partition_state(cluster, topic).leader
            acked_before = len(writer.acked)
            killed_at = time.monotonic()
            cluster.kill(leader, sig)
            wait_until(lambda killed_at=killed_at: writer.ack_times and writer.ack_times[-1] > killed_at, 30, 0.01, "an ack after the kill")
            gaps.append(next(t for t in writer.ack_times if t > killed_at) - killed_at)
            cluster.start_node(leader)
            cluster.wait_healthy(30)
            wait_until(lambda: len(partition_state(cluster, topic).isr) == 3, 30, 0.2, "the ISR to re-expand")
            wait_until(lambda acked_before=acked_before: len(writer.acked) > acked_before + 20, 20, 0.1, "writes to resume")
    finally:
        writer.stop()
    # Reported, not asserted tightly: speed is measured by `make bench`. A SIGTERM runs a controlled
    # shutdown (leaderships move first); a SIGKILL waits for the session timeout.
    print(f"{sig.name}: write unavailability after each leader stop (s): {[round(g, 3) for g in gaps]}")
    assert writer.acked, "nothing was acknowledged"
    verify(cluster, topic, writer)


@pytest.mark.timeout(180)
def test_follower_death_shrinks_then_reexpands_the_isr(cluster):
    topic = "follower-death"
    create_topic(cluster, topic)
    writer = run_writer(cluster, topic, 0.5)
    try:
        state = partition_state(cluster, topic)
        follower = next(r for r in state.replicas if r != state.leader)
        cluster.kill(follower, signal.SIGKILL)
        wait_until(lambda: follower not in partition_state(cluster, topic).isr,
                   (SESSION_TIMEOUT_MS + LAG_TIME_MS) / 1000 + 3, 0.1, "the ISR to shrink")
        acked = len(writer.acked)
        wait_until(lambda: len(writer.acked) > acked + 20, 10, 0.1, "writes to go on with 2 replicas")
        cluster.start_node(follower)
        wait_until(lambda: follower in partition_state(cluster, topic).isr, 30, 0.2, "the ISR to re-expand")
    finally:
        writer.stop()
    verify(cluster, topic, writer)


@pytest.mark.timeout(180)
def test_two_replicas_down_refuses_writes_then_resumes(cluster):
    topic = "two-down"
    create_topic(cluster, topic)
    writer = run_writer(cluster, topic, 0.5)
    writer.stop()
    state = partition_state(cluster, topic)
    followers = [r for r in state.replicas if r != state.leader]
    for f in followers:
        cluster.kill(f, signal.SIGKILL)
    try:
        wait_until(lambda: len(partition_state(cluster, topic).isr) == 1, SESSION_TIMEOUT_MS / 1000 + 5, 0.1,
                   "the ISR to shrink to the leader")
        probe = Writer(cluster, topic, idempotent=False)
        acked_before = dict(writer.acked)
        from cluster.client import PartitionRouter
        with admin(cluster) as client, PartitionRouter(client) as router:
            for i in range(5):
                assert not probe.send_one(router, f"refused-{i}".encode())
        assert not probe.acked
        assert all("NOT_ENOUGH_REPLICAS" in m.upper() or "ISR" in m for _, m in probe.failed), probe.failed
    finally:
        cluster.start_node(followers[0])
    wait_until(lambda: len(partition_state(cluster, topic).isr) >= 2, 30, 0.2, "a second ISR member")
    resumed = Writer(cluster, topic)
    resumed.acked.update(acked_before)
    run_writer(cluster, topic, 1.0, resumed, prefix=f"{topic}-resumed").stop()
    assert len(resumed.acked) > len(acked_before)
    cluster.start_node(followers[1])
    verify(cluster, topic, resumed)


@pytest.mark.timeout(180)
def test_paused_leader_is_replaced_and_rejoins_as_follower(cluster):
    topic = "paused-leader"
    create_topic(cluster, topic)
    writer = run_writer(cluster, topic, 1.0)
    try:
        old = partition_state(cluster, topic)
        cluster.kill(old.leader, signal.SIGSTOP)
        wait_until(lambda: partition_state(cluster, topic).leader not in (old.leader, -1),
                   SESSION_TIMEOUT_MS / 1000 + 5, 0.1, "a new leader")
        time.sleep(1.0)
        cluster.kill(old.leader, signal.SIGCONT)
        wait_until(lambda: old.leader in partition_state(cluster, topic).isr, 30, 0.2, "the old leader to rejoin")
        time.sleep(0.5)
    finally:
        writer.stop()
    assert partition_state(cluster, topic).leader_epoch > old.leader_epoch
    verify(cluster, topic, writer)


@pytest.mark.timeout(240)
def test_unclean_election_only_when_enabled(cluster):
    topic = "unclean"
    create_topic(cluster, topic, configs={"min.insync.replicas": "1"})
    state = partition_state(cluster, topic)
    leader = state.leader
    stale, other = [r for r in state.replicas if r != leader]
    writer = run_writer(cluster, topic, 0.5)
    cluster.kill(stale, signal.SIGKILL)
    wait_until(lambda: stale not in partition_state(cluster, topic).isr, 10, 0.1, "the stale replica to leave the ISR")
    cluster.kill(other, signal.SIGKILL)
    wait_until(lambda: partition_state(cluster, topic).isr == [leader], 10, 0.1, "ISR = [leader]")
    time.sleep(0.5)
    writer.stop()
    cluster.kill(leader, signal.SIGKILL)
    wait_until(lambda: partition_state(cluster, topic).leader == -1, 10, 0.1, "the partition to go offline")
    assert partition_state(cluster, topic).isr == [leader]  # keeps its last ISR member
    cluster.start_node(stale)
    cluster.wait_healthy(30, brokers=[stale])
    time.sleep(1.5)
    assert partition_state(cluster, topic).leader == -1, "unclean election happened while disabled"
    with admin(cluster) as client:
        reply = client.alter_configs(2, topic, [("unclean.leader.election.enable", "true")])
        assert reply.results[0].error_code == 0, reply
    wait_until(lambda: partition_state(cluster, topic).leader == stale, 10, 0.1, "an unclean election")
    state = partition_state(cluster, topic)
    assert state.unclean_elections >= 1
    with admin(cluster) as client:
        assert client.describe_cluster().unclean_elections >= 1
    # Issue 10 item 7: `brook topics describe` says so on the partition's line (with the loss range
    # when a live replica reported a longer log; none here: the longer ones are dead).
    described = run_cli_process(cluster, "topics", "describe", topic)
    assert described.returncode == 0 and "UncleanElections: 1\tUncleanLoss: none known" in described.stdout, \
        described.stdout + described.stderr
    for b in (leader, other):
        cluster.start_node(b)
    cluster.wait_healthy(30)
    wait_until(lambda: len(partition_state(cluster, topic).isr) == 3, 30, 0.2, "replicas to follow the new leader")
    check_replicas_identical(cluster, topic)


@pytest.mark.timeout(180)
def test_preferred_leaders_come_back_manually_and_automatically(cluster):
    topic = "preferred"
    create_topic(cluster, topic, partitions=6)
    victim = cluster.broker_ids[0]
    cluster.restart(victim, signal.SIGTERM)
    cluster.wait_healthy(30)
    with admin(cluster) as client:
        parts = client.describe_topics([topic]).topics[0].partitions
        assert any(p.leader != p.replicas[0] for p in parts), "the restart did not move any leadership"
        wait_until(lambda: all(len(p.isr) == 3 for p in client.describe_topics([topic]).topics[0].partitions),
                   30, 0.2, "full ISRs")
        reply = client.elect_leaders("preferred", [(topic, -1)])
        assert all(r.error_code in (0, 84) for r in reply.results), reply  # 84 = ELECTION_NOT_NEEDED
        parts = client.describe_topics([topic]).topics[0].partitions
        assert all(p.leader == p.replicas[0] for p in parts)
    # Automatic: move leaderships away again, then let the balancer bring them back.
    cluster.restart(victim, signal.SIGTERM)
    cluster.wait_healthy(30)
    with admin(cluster) as client:
        wait_until(lambda: all(len(p.isr) == 3 for p in client.describe_topics([topic]).topics[0].partitions),
                   30, 0.2, "full ISRs")
        reply = client.alter_configs(4, "", [("auto.leader.rebalance.enable", "true")])
        assert reply.results[0].error_code == 0, reply
        try:
            wait_until(lambda: all(p.leader == p.replicas[0]
                                   for p in client.describe_topics([topic]).topics[0].partitions),
                       15, 0.2, "the automatic balancer")
        finally:
            client.alter_configs(4, "", [("auto.leader.rebalance.enable", None)])


@pytest.mark.timeout(180)
def test_idempotent_producer_retries_across_failover_make_no_duplicates(cluster):
    from confluent_kafka import Producer

    topic = "idempotent"
    create_topic(cluster, topic)
    producer = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "message.timeout.ms": 60000, "retry.backoff.ms": 50})
    delivered, errors = {}, []

    def on_delivery(err, msg):
        if err:
            errors.append(err)
        else:
            delivered[msg.value()] = msg.offset()

    leader = partition_state(cluster, topic).leader
    for i in range(3000):
        producer.produce(topic, value=f"i-{i}".encode(), partition=0, on_delivery=on_delivery)
        if i == 1500:
            producer.poll(0)
            cluster.kill(leader, signal.SIGKILL)  # in-flight batches must be retried on the new leader
        if i % 100 == 0:
            producer.poll(0)
            time.sleep(0.01)
    assert producer.flush(90) == 0
    assert not errors, errors[:3]
    cluster.start_node(leader)
    records = read_all(cluster, topic)
    values = [v for _, v in records]
    assert len(values) == len(set(values)), "duplicates after retries across a failover"
    check_exactly_once(delivered, records)
    cluster.wait_healthy(30)
