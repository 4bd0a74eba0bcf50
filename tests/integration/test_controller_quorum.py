"""Issue 2 acceptance: the controller quorum under real kills, with real processes on 127.0.0.1.

One 3-controller + 3-broker cluster is shared by this module (scenarios restore what they break);
every process is stopped by PID in the fixture's finalizer, also when a test fails.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import statistics
import struct
import time
import zlib

import pytest

from brookpb import admin_pb2 as apb
from cluster.cli.launcher import LocalCluster
from cluster.errors import BrookError
from tests.support import admin, create_topic, wait_until

SESSION_TIMEOUT_MS = 3000
OVERRIDES = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
    "replica.lag.time.max.ms": "3000",
    "default.replication.factor": "3",
    "auto.leader.rebalance.enable": "false",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("quorum"), 3, 3, overrides=OVERRIDES)
    try:
        c.start(timeout_s=60)
        yield c
    finally:
        c.stop()


def active_controller(cluster) -> int:
    with admin(cluster) as client:
        return wait_until(lambda: (r := client.describe_cluster()).active_controller_id >= 0
                          and r.active_controller_id, 10, what="an active controller")


def topics_snapshot(cluster, prefer: str | None = None) -> dict:
    """Topic → [(partition, replicas)] as one controller has applied them (`prefer`: ask it first)."""
    with admin(cluster) as client:
        reply = client.call("DescribeTopics", apb.DescribeTopicsRequest(include_internal=False), prefer=prefer)
    return {t.name: [(p.partition, tuple(p.replicas)) for p in t.partitions] for t in reply.topics}


def quorum_statuses(cluster) -> str:
    """Each controller's Raft view (state, term, leader, commit index, last applied, metadata offset):
    printed when a test about the quorum fails."""
    lines = []
    for c in cluster.controller_ids:
        try:
            with admin(cluster) as client:
                s = client.call("QuorumStatus", apb.QuorumStatusRequest(), prefer=cluster.node(c).controller_address)
            lines.append(f"asked {c}, answered {s.answering_node_id}: {s.state} term {s.term} leader {s.leader_id} "
                         f"commit {s.commit_index} applied {s.last_applied} metadata offset {s.metadata_offset} "
                         f"voters {[(v.node_id, v.match_index, v.connected) for v in s.voters]}")
        except BrookError as e:
            lines.append(f"asked {c}: {e}")
    return "\n".join(lines)


def write_succeeds(cluster, name: str) -> bool:
    try:
        with admin(cluster) as client:
            reply = client.create_topics([apb.CreateTopicRequest(name=name, partitions=1, replication_factor=1)])
        return reply.results[0].error_code in (0, 36)  # created, or created by an earlier attempt
    except BrookError:
        return False


def fenced_brokers(cluster) -> set[int]:
    with admin(cluster) as client:
        return {b.broker_id for b in client.describe_cluster().brokers if b.fenced}


@pytest.mark.timeout(240)
def test_active_controller_failover_under_3s(cluster):
    create_topic(cluster, "failover-base", partitions=3, rf=3)
    before = topics_snapshot(cluster)
    times = []
    for run in range(5):
        victim = active_controller(cluster)
        fenced_seen: set[int] = set()
        cluster.kill(victim, signal.SIGKILL)
        start = time.monotonic()
        wait_until(lambda run=run: write_succeeds(cluster, f"after-failover-{run}"), 15, 0.02, "a metadata write")
        times.append(time.monotonic() - start)
        # No broker is fenced because of the failover: sample for a full session timeout.
        deadline = time.monotonic() + SESSION_TIMEOUT_MS / 1000 + 1
        while time.monotonic() < deadline:
            fenced_seen |= fenced_brokers(cluster)
            time.sleep(0.2)
        assert not fenced_seen, f"brokers {fenced_seen} fenced after controller failover {run}"
        cluster.start_node(victim)
        wait_until(lambda: all(v.connected for v in admin(cluster).quorum_status().voters), 20, 0.2,
                   "the restarted controller to rejoin")
    median = statistics.median(times)
    print(f"controller failover times (s): {[round(t, 3) for t in times]}; median {median:.3f}")
    assert median < 3.0
    after = topics_snapshot(cluster)
    assert all(after[name] == parts for name, parts in before.items())


@pytest.mark.timeout(120)
def test_two_of_three_controllers_down_refuses_writes_then_recovers(cluster):
    create_topic(cluster, "minority", partitions=1, rf=3)
    leader = active_controller(cluster)
    others = [c for c in cluster.controller_ids if c != leader]
    survivor = others[0]
    victims = [leader, others[1]]

    def survivor_has_the_topic() -> bool:
        # A follower controller applies a command once it learns the commit index (the next append
        # from the leader): killing the leader at once may leave the survivor's image without it.
        with admin(cluster) as client:
            reply = client.call("DescribeTopics", apb.DescribeTopicsRequest(names=["minority"]),
                                prefer=cluster.node(survivor).controller_address)
        return reply.topics[0].error_code == 0

    wait_until(survivor_has_the_topic, 15, 0.1, "the surviving controller to apply the topic")
    for v in victims:
        cluster.kill(v, signal.SIGKILL)
    try:
        start = time.monotonic()
        assert not write_succeeds(cluster, "no-quorum-topic")
        assert time.monotonic() - start < 15, "a write without quorum must fail within its deadline"
        with admin(cluster) as client:
            # Reads still answer from the last image (no split brain: the survivor does not lead).
            reply = client.call("DescribeTopics", apb.DescribeTopicsRequest(names=["minority"]),
                                prefer=cluster.node(survivor).controller_address)
            assert reply.topics[0].name == "minority" and reply.topics[0].error_code == 0
            with pytest.raises(BrookError) as error:
                client.create_topics([apb.CreateTopicRequest(name="no-quorum-2", partitions=1, replication_factor=1)])
            assert "\n" not in error.value.message
    finally:
        for v in victims:
            cluster.start_node(v)
    wait_until(lambda: write_succeeds(cluster, "quorum-restored"), 30, 0.1, "writes after restoring the quorum")


@pytest.mark.timeout(120)
def test_all_controllers_restarted_keep_metadata(cluster):
    create_topic(cluster, "survives-restart", partitions=2, rf=3, configs={"retention.ms": "123456"})
    # What the quorum has committed, read from the active controller: a follower may not have applied
    # the newest commit yet (it learns the commit index with the leader's next append), and a `before`
    # without "survives-restart" could never match what the restarted leader reads (CI once failed so).
    leader_address = cluster.node(active_controller(cluster)).controller_address
    before = wait_until(lambda: (s := topics_snapshot(cluster, prefer=leader_address)).get("survives-restart") and s,
                        10, 0.1, "the active controller to read the new topic")
    for c in cluster.controller_ids:
        cluster.kill(c, signal.SIGKILL)
    for c in cluster.controller_ids:
        cluster.start_node(c)
    # The committed metadata survives: the new active controller has every topic. (A restarted follower
    # answers reads from what it has applied; it learns the commit index of its journal's tail from the
    # leader later: CI once saw a follower's reads stale for 30 s, printed below, not asserted.)
    seen: list[dict] = []

    def has_every_topic(snapshot: dict) -> bool:
        # Every committed topic, unchanged. (An entry a client saw time out may still commit later,
        # so topics beyond `before` are allowed; none were lost.)
        return all(snapshot.get(name) == parts for name, parts in before.items())

    def active_has_every_topic() -> bool:
        address = cluster.node(active_controller(cluster)).controller_address
        seen.append(topics_snapshot(cluster, prefer=address))
        return has_every_topic(seen[-1])

    try:
        wait_until(active_has_every_topic, 30, 0.2, "the new active controller to apply its journal")
    except AssertionError:
        print(quorum_statuses(cluster))
        assert seen and {n: seen[-1].get(n) for n in before} == before  # shows which topics differ
    started = time.monotonic()
    for c in cluster.controller_ids:
        address = cluster.node(c).controller_address
        try:
            wait_until(lambda a=address: has_every_topic(topics_snapshot(cluster, prefer=a)), 30, 0.2, "")
            print(f"controller {c} reads every topic {time.monotonic() - started:.1f}s after the check")
        except AssertionError:
            print(f"controller {c} still reads a stale image 30 s later")
    with admin(cluster) as client:
        configs = client.describe_configs([(2, "survives-restart")]).results[0]
    assert {e.name: e.value for e in configs.entries}["retention.ms"] == "123456"
    cluster.wait_healthy(30)


@pytest.mark.timeout(120)
def test_killed_broker_is_fenced_and_replaced_then_rejoins(cluster):
    create_topic(cluster, "broker-kill", partitions=3, rf=3)
    with admin(cluster) as client:
        parts = client.describe_topics(["broker-kill"]).topics[0].partitions
    victim = parts[0].leader
    led = [p.partition for p in parts if p.leader == victim]
    old_epoch = next(b.broker_epoch for b in admin(cluster).describe_cluster().brokers if b.broker_id == victim)
    cluster.kill(victim, signal.SIGKILL)
    start = time.monotonic()
    wait_until(lambda: victim in fenced_brokers(cluster), SESSION_TIMEOUT_MS / 1000 + 3, 0.05, "fencing")
    fenced_after = time.monotonic() - start
    print(f"broker {victim} fenced {fenced_after:.2f}s after SIGKILL (session timeout {SESSION_TIMEOUT_MS} ms)")
    assert fenced_after <= SESSION_TIMEOUT_MS / 1000 + 1
    with admin(cluster) as client:
        after = client.describe_topics(["broker-kill"]).topics[0].partitions
    for p in after:
        assert victim not in p.isr
        if p.partition in led:
            assert p.leader not in (victim, -1) and p.leader in p.isr
    cluster.start_node(victim)
    cluster.wait_healthy(30)
    new_epoch = next(b.broker_epoch for b in admin(cluster).describe_cluster().brokers if b.broker_id == victim)
    assert new_epoch > old_epoch


def _forged_frame(marker: str) -> bytes:
    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    data = zlib.compress(pickle.dumps(Exploit()), 3)
    return struct.pack("i", len(data)) + data


def _send_frame(host: str, port: int, frame: bytes) -> None:
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(frame)
        time.sleep(0.5)


@pytest.mark.timeout(60)
def test_forged_raft_frame_cannot_run_code(cluster, tmp_path):
    marker = tmp_path / "pwned"
    victim = cluster.controller_ids[0]
    host, port = cluster.node(victim).raft_address.rsplit(":", 1)
    _send_frame(host, int(port), _forged_frame(str(marker)))
    time.sleep(1.0)
    assert not marker.exists(), "a forged pickle frame ran code on a controller with a secret"
    assert cluster.is_running(victim)
    assert write_succeeds(cluster, "after-forged-frame")


@pytest.mark.timeout(60)
def test_forged_frame_would_run_code_without_a_secret(tmp_path):
    """The control case: the same frame against an insecure dev controller does run code, which is
    why a controller refuses to start without a secret (see test_controller_requires_secret)."""
    marker = tmp_path / "pwned"
    c = LocalCluster(tmp_path / "insecure", 1, 1, insecure=True)
    try:
        c.start(wait=False)
        host, port = c.node(c.controller_ids[0]).raft_address.rsplit(":", 1)
        wait_until(lambda: _port_open(host, int(port)), 20, 0.1, "the raft port")
        _send_frame(host, int(port), _forged_frame(str(marker)))
        wait_until(marker.exists, 5, 0.1, "the forged frame to run")
    finally:
        c.stop()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
