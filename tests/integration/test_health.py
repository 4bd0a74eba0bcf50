"""Issue 6: `brook cluster health --exit-when-healthy` returns 0 only after a killed broker is back
and its partitions are fully replicated again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from cluster.cli.launcher import LocalCluster
from tests.support import admin, create_topic, wait_until

OVERRIDES = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "3000",
    "default.replication.factor": "3",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("health"), 3, 3, overrides=OVERRIDES)
    try:
        c.start(timeout_s=60)
        yield c
    finally:
        c.stop()


def health(cluster, *args: str) -> subprocess.Popen:
    env = dict(os.environ, BROOK_BOOTSTRAP_CONTROLLER=cluster.controller_bootstrap)
    return subprocess.Popen([sys.executable, "-m", "cluster.cli.main", "cluster", "health", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.mark.timeout(120)
def test_exit_when_healthy_waits_for_the_broker_and_full_replication(cluster):
    create_topic(cluster, "health-topic", partitions=3, rf=3)
    assert health(cluster).wait(timeout=30) == 0
    victim = cluster.broker_ids[1]
    cluster.kill(victim, signal.SIGKILL)
    with admin(cluster) as client:
        wait_until(lambda: any(b.fenced for b in client.describe_cluster().brokers if b.broker_id == victim),
                   10, 0.1, "the broker to be fenced")
    assert health(cluster).wait(timeout=30) == 1
    waiter = health(cluster, "--exit-when-healthy", "--timeout", "90")
    try:
        time.sleep(2.0)
        assert waiter.poll() is None, "reported healthy while a broker is down"
        cluster.start_node(victim)
        assert waiter.wait(timeout=90) == 0, waiter.stderr.read() if waiter.stderr else ""
        with admin(cluster) as client:
            parts = client.describe_topics(["health-topic"]).topics[0].partitions
            assert all(len(p.isr) == len(p.replicas) for p in parts)
            assert not any(b.fenced for b in client.describe_cluster().brokers)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait(timeout=10)
