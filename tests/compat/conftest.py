"""The compat tests' cluster: a real 3-controller, 3-broker Brook cluster of local processes, one per
test module (the same launcher as tests/integration/conftest.py), with timings tightened so that
failovers and group rebalances in these tests take seconds. Every process is stopped by PID."""

from __future__ import annotations

import pytest

from cluster.cli.launcher import LocalCluster

SESSION_TIMEOUT_MS = 3000
OVERRIDES = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": str(SESSION_TIMEOUT_MS),
    "replica.lag.time.max.ms": "3000",
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "group.initial.rebalance.delay.ms": "0",
    "auto.leader.rebalance.enable": "false",
    "log.retention.check.interval.ms": "1000",
    # Kafka's 50 transaction-log partitions x RF 3 is a lot of replicas for three Python brokers on CI.
    "transaction.state.log.num.partitions": "5",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("compat"), 3, 3, overrides=OVERRIDES)
    try:
        c.start(timeout_s=90)
        yield c
    finally:
        c.stop()
