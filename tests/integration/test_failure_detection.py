"""A crashed broker is detected by its lost controller connection, not only by the session timeout.

The cluster runs with a 60 s broker session so that only the connection-loss path can fence a killed
broker inside the waits below; a paused broker keeps its connection open and must not be fenced by it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from cluster.cli.launcher import LocalCluster
from tests.support import admin, wait_until

SESSION_MS = 60_000


@pytest.fixture(scope="module")
def long_session_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("detect"), controllers=3, brokers=3,
                         overrides={"broker.session.timeout.ms": str(SESSION_MS)})
    try:
        local.start(wait=True, timeout_s=90)
        yield local
    finally:
        local.stop()
        assert not local.pids, f"processes still running after stop(): {local.pids}"


def fenced(cluster: LocalCluster) -> set[int]:
    with admin(cluster) as client:
        return {b.broker_id for b in client.describe_cluster().brokers if b.fenced}


@pytest.mark.timeout(180)
def test_a_paused_broker_is_not_fenced_but_a_killed_one_is_long_before_its_session(long_session_cluster):
    cluster = long_session_cluster
    paused, killed = cluster.broker_ids[0], cluster.broker_ids[1]
    # SIGSTOP: the process is alive and its sockets stay open; the controller must wait for the session.
    cluster.kill(paused, signal.SIGSTOP)
    try:
        time.sleep(5.0)
        assert paused not in fenced(cluster)
    finally:
        cluster.kill(paused, signal.SIGCONT)
    # SIGKILL: the kernel closes the broker's connections; the controller sees its long poll cancelled.
    cluster.kill(killed, signal.SIGKILL)
    wait_until(lambda: killed in fenced(cluster), SESSION_MS / 1000 / 2, 0.1,
               f"broker {killed} fenced by its lost connection (session {SESSION_MS} ms)")
    assert paused not in fenced(cluster)
    cluster.start_node(killed)
    cluster.wait_healthy(60)
    assert not fenced(cluster)
