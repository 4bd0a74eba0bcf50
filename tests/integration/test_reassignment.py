"""Reassignment and decommission (issue 13 item 5): replicas move with their data, nothing lost.

Goal: `brook partitions reassign --execute` moves a partition that is being written to a new broker
set (the leader among the ones leaving): the new replicas copy the log, join the ISR, the move
completes, the removed broker deletes its copy, and every acknowledged write is read back exactly
once at its offset with identical bytes on the new replicas. `brook brokers decommission` drains a
broker the same way. Method: a real 3-controller, 3-broker cluster; a background idempotent writer
(acks=all) runs through the move; then the checks of tests/support.py.
"""

from __future__ import annotations

import json
import signal

import pytest

from cluster.cli.launcher import LocalCluster
from tests.integration.conftest import run_cli_process
from tests.support import (
    Writer,
    admin,
    check_exactly_once,
    create_topic,
    partition_state,
    read_all,
    replica_bytes,
    wait_until,
)

OVERRIDES = {
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
    "auto.leader.rebalance.enable": "false",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("reassign"), 3, 3, overrides=OVERRIDES)
    try:
        c.start(timeout_s=90)
        yield c
    finally:
        c.stop()
        assert not c.pids


def holders(cluster, topic: str, partition: int = 0) -> set[int]:
    """The brokers that hold a replica of the partition on disk (their ReplicaStates lists it)."""
    return set(replica_bytes(cluster, topic, partition))


@pytest.mark.timeout(300)
def test_reassign_moves_a_loaded_partition_with_nothing_lost(cluster, tmp_path):
    topic = "moving"
    create_topic(cluster, topic, partitions=1, rf=2)
    before = partition_state(cluster, topic)
    leaving = before.leader
    staying = next(r for r in before.replicas if r != leaving)
    joining = next(b for b in cluster.broker_ids if b not in before.replicas)
    target = [joining, staying]
    writer = Writer(cluster, topic)
    writer.start(prefix="m")
    try:
        wait_until(lambda: len(writer.acked) >= 300, 60, 0.05, "300 writes before the move")
        plan = tmp_path / "plan.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": topic, "partition": 0, "replicas": target, "log_dirs": ["any", "any"]}]}))
        started = run_cli_process(cluster, "partitions", "reassign", "--execute", "--plan", str(plan))
        assert started.returncode == 0, started.stderr
        assert "Successfully started partition reassignments for moving-0" in started.stdout
        rollback = json.loads(started.stdout.split("\n\n")[1])
        assert rollback["partitions"][0]["replicas"] == list(before.replicas)
        verified = run_cli_process(cluster, "partitions", "reassign", "--verify", "--plan", str(plan), "--wait",
                                   "--wait-timeout", "120", "--output", "json", timeout_s=180)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert json.loads(verified.stdout)[0]["state"] == "completed"
        acked_at_completion = len(writer.acked)
        wait_until(lambda: len(writer.acked) >= acked_at_completion + 200, 60, 0.05, "writes after the move")
    finally:
        writer.stop()
    after = partition_state(cluster, topic)
    assert list(after.replicas) == target
    assert after.leader in target and set(after.isr) == set(target)
    listed = run_cli_process(cluster, "partitions", "reassign", "--list")
    assert "No reassignment in progress." in listed.stdout
    check_exactly_once(writer.acked, read_all(cluster, topic))
    # the broker that left deleted its copy; the two new replicas hold identical bytes
    def only_target_holds() -> dict | None:
        copies = replica_bytes(cluster, topic)
        return copies if set(copies) == set(target) else None

    copies = wait_until(only_target_holds, 30, 0.2, f"only {target} holding {topic}-0")
    assert len({blob for blob, _ in copies.values()}) == 1
    assert leaving not in holders(cluster, topic)


@pytest.mark.timeout(300)
def test_decommission_drains_a_broker_then_it_is_unregistered(cluster):
    create_topic(cluster, "drained", partitions=3, rf=2)
    writer = Writer(cluster, "drained")
    writer.start(prefix="d")
    try:
        wait_until(lambda: len(writer.acked) >= 200, 60, 0.05, "writes before the drain")
        victim = cluster.broker_ids[-1]
        result = run_cli_process(cluster, "brokers", "decommission", str(victim), "--wait-timeout", "120",
                                 timeout_s=180)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "holds no replica now" in result.stdout
        refused = run_cli_process(cluster, "brokers", "unregister", str(victim))
        assert refused.returncode == 1 and "stop it first" in refused.stderr
    finally:
        writer.stop()
    for index in range(3):
        state = partition_state(cluster, "drained", index)
        assert victim not in state.replicas and len(state.replicas) == 2
    check_exactly_once(writer.acked, read_all(cluster, "drained"))
    wait_until(lambda: all(victim not in holders(cluster, "drained", i) for i in range(3)), 30, 0.2,
               f"broker {victim} deleting its copies")
    cluster.stop_node(victim)
    with admin(cluster) as client:
        wait_until(lambda: next(b.fenced for b in client.describe_cluster().brokers if b.broker_id == victim),
                   60, 0.2, f"broker {victim} fenced after it stopped")
    result = run_cli_process(cluster, "brokers", "unregister", str(victim))
    assert result.returncode == 0, result.stderr
    with admin(cluster) as client:
        assert victim not in {b.broker_id for b in client.describe_cluster().brokers}
    check_exactly_once(writer.acked, read_all(cluster, "drained"))


@pytest.mark.timeout(300)
def test_decommission_of_a_dead_broker_moves_its_replicas_then_unregisters_it(cluster):
    """The case decommission exists for: a broker that is gone for good. Its replicas are re-created
    from the surviving copies on the other brokers, and, the broker being fenced, decommission
    unregisters it when the moves are done; every acknowledged write is still there."""
    victim = cluster.broker_ids[-1]
    if not cluster.is_running(victim):  # the previous test unregistered it: it comes back as a new broker
        cluster.start_node(victim)
    with admin(cluster) as client:
        wait_until(lambda: any(b.broker_id == victim and not b.fenced for b in client.describe_cluster().brokers),
                   90, 0.2, f"broker {victim} registered")
    topic = "dead-drained"
    create_topic(cluster, topic, partitions=3, rf=2)
    writer = Writer(cluster, topic)
    writer.start(prefix="x")
    try:
        wait_until(lambda: len(writer.acked) >= 200, 60, 0.05, "writes before the broker dies")
    finally:
        writer.stop()
    held = [i for i in range(3) if victim in partition_state(cluster, topic, i).replicas]
    assert held, f"broker {victim} holds no replica of {topic}"
    cluster.stop_node(victim, signal.SIGKILL)
    with admin(cluster) as client:
        wait_until(lambda: next(b.fenced for b in client.describe_cluster().brokers if b.broker_id == victim),
                   60, 0.2, f"broker {victim} fenced after it died")
    result = run_cli_process(cluster, "brokers", "decommission", str(victim), "--wait-timeout", "120",
                             timeout_s=180)
    assert result.returncode == 0 and "It is unregistered." in result.stdout, result.stdout + result.stderr
    assert f"moved {len(held)} of {len(held)} replicas" in result.stdout, result.stdout
    for index in range(3):
        state = partition_state(cluster, topic, index)
        assert victim not in state.replicas and len(state.replicas) == 2 and set(state.isr) == set(state.replicas)
    with admin(cluster) as client:
        assert victim not in {b.broker_id for b in client.describe_cluster().brokers}
    check_exactly_once(writer.acked, read_all(cluster, topic))


@pytest.mark.timeout(300)
def test_kafka_admin_client_reassigns(cluster):
    """Through the Kafka protocol: kafka-python's KafkaAdminClient (confluent-kafka 2.16's AdminClient has
    no reassignment call). The move is started, listed while it runs or seen completed, and ends with
    the new replicas; a cancel of a partition that is not moving gets NO_REASSIGNMENT_IN_PROGRESS."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import NoReassignmentInProgressError

    topic = "via-kafka"
    create_topic(cluster, topic, partitions=2, rf=1)
    writer = Writer(cluster, topic)
    writer.start(prefix="k")
    client = KafkaAdminClient(bootstrap_servers=cluster.kafka_bootstrap, request_timeout_ms=30000)
    try:
        wait_until(lambda: len(writer.acked) >= 200, 60, 0.05, "writes before the move")
        before = partition_state(cluster, topic)
        target = [b for b in cluster.broker_ids if cluster.is_running(b) and b not in before.replicas][:1]
        result = client.alter_partition_reassignments({TopicPartition(topic, 0): target})
        assert result == {TopicPartition(topic, 0): None}
        listed = client.list_partition_reassignments({topic: [0, 1]})
        assert set(listed) <= {TopicPartition(topic, 0)}
        if listed:  # still moving: the adding replicas are the target
            assert listed[TopicPartition(topic, 0)]["adding_replicas"] == target
        wait_until(lambda: list(partition_state(cluster, topic).replicas) == target
                   and not client.list_partition_reassignments({topic: [0]}), 120, 0.2, "the move to complete")
        cancelled = client.alter_partition_reassignments({TopicPartition(topic, 1): None})
        assert cancelled == {TopicPartition(topic, 1): NoReassignmentInProgressError}
    finally:
        writer.stop()
        client.close()
    check_exactly_once(writer.acked, read_all(cluster, topic))


@pytest.mark.timeout(300)
def test_throttled_reassignment_moves_at_the_throttle_and_verify_removes_it(cluster, tmp_path):
    """`--execute --throttle` sets leader/follower.replication.throttled.rate cluster-wide; the joining
    replica copies ~600 kB at 25 kB/s (~24 s; unthrottled it takes well under a second), so the next
    command still sees the move in progress; `--verify --wait` sees it complete and removes the
    throttle; the data arrived whole."""
    from confluent_kafka import Producer

    topic = "throttled-move"
    create_topic(cluster, topic, partitions=1, rf=1)  # the decommission test may have left two brokers
    before = partition_state(cluster, topic)
    with admin(cluster) as client:
        live = sorted(b.broker_id for b in client.describe_cluster().brokers if not b.fenced)
    joining = next(b for b in live if b not in before.replicas)
    target = [before.leader, joining]
    p = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all", "linger.ms": 20})
    for i in range(600):
        p.produce(topic, value=b"%06d" % i + b"x" * 1018, partition=0)
    assert p.flush(60) == 0
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": target}]}))
    started = run_cli_process(cluster, "partitions", "reassign", "--execute", "--plan", str(plan),
                              "--throttle", "25000")
    assert started.returncode == 0 and "throttled at 25000 B/s" in started.stdout, started.stdout + started.stderr
    listed = run_cli_process(cluster, "partitions", "reassign", "--list")
    assert f"{topic}" in listed.stdout, listed.stdout  # ~600 kB at 25 kB/s: still copying
    configs = run_cli_process(cluster, "configs", "describe", "--cluster", "-o", "json")
    assert configs.returncode == 0, configs.stderr
    assert '"leader.replication.throttled.rate"' in configs.stdout and '"25000"' in configs.stdout
    verified = run_cli_process(cluster, "partitions", "reassign", "--verify", "--plan", str(plan), "--wait",
                               "--wait-timeout", "150", timeout_s=200)
    assert verified.returncode == 0 and "Throttle was removed." in verified.stdout, verified.stdout + verified.stderr
    configs = run_cli_process(cluster, "configs", "describe", "--cluster", "-o", "json")
    assert '"25000"' not in configs.stdout
    after = partition_state(cluster, topic)
    assert list(after.replicas) == target and set(after.isr) == set(target)  # the joining copy caught up
    values = [v for _, v in read_all(cluster, topic)]
    assert len(values) == 600 and values[-1].startswith(b"000599")
