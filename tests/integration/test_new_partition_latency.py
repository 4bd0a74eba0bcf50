"""A new RF=3 partition is replicated without waiting out the followers' long poll (issue 16, item 2).

Goal: on brokers that already follow an idle partition (their replica fetch is parked at the leader),
an acks=all produce to a freshly created RF=3 topic is acknowledged as soon as the followers fetch it,
not when their parked long poll ends. Method: a real 3-broker cluster whose replica long poll is
`replica.fetch.wait.max.ms` = 20 s (so waiting it out is unambiguous, as Kafka's 500 ms would not be);
create an idle RF=3 topic with a partition led by each broker and let the followers park on them, then create a second RF=3 topic and send
one record with a non-idempotent librdkafka producer (no producer-id round trip): the acknowledgement
must come well inside one long poll (10 s, half of it), which only pre-emption of the parked poll allows.
"""

from __future__ import annotations

import time

import pytest

from cluster.cli.launcher import LocalCluster
from tests.support import create_topic, partition_state

LONG_POLL_MS = 20_000
OVERRIDES = {
    "default.replication.factor": "3",
    "min.insync.replicas": "3",            # the ack needs both followers to have fetched the record
    "replica.fetch.wait.max.ms": str(LONG_POLL_MS),
    "replica.lag.time.max.ms": "60000",    # above the poll: the idle followers stay in the ISR
    "replica.socket.timeout.ms": "60000",
    "auto.leader.rebalance.enable": "false",
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("new-partition"), 3, 3, overrides=OVERRIDES)
    try:
        c.start(timeout_s=90)
        yield c
    finally:
        c.stop()


@pytest.mark.timeout(180)
def test_acks_all_on_a_new_topic_does_not_wait_out_the_long_poll(cluster):
    from confluent_kafka import Producer

    # One idle partition led by each broker: every broker then has a fetch parked at every other one,
    # whichever broker leads the new partition (a follower with no loop to it would start one at once).
    create_topic(cluster, "idle", partitions=3, rf=3)
    leaders = {partition_state(cluster, "idle", i).leader for i in range(3)}
    assert leaders == set(cluster.broker_ids), f"idle partitions led by {leaders}, not by every broker"
    time.sleep(3.0)  # the followers' fetches of the idle partitions are parked at their leaders
    producer = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all",
                         "enable.idempotence": False, "linger.ms": 0, "message.timeout.ms": 60_000})
    producer.list_topics(timeout=10)  # connections and first metadata before the clock starts
    create_topic(cluster, "fresh", partitions=1, rf=3)
    outcome: list = []
    started = time.monotonic()
    producer.produce("fresh", b"first", partition=0,
                     on_delivery=lambda err, msg: outcome.append((err, time.monotonic() - started)))
    left = producer.flush(LONG_POLL_MS / 2000)
    assert left == 0 and outcome, "acks=all waited for the followers' parked long poll on the idle partition"
    error, _ = outcome[0]
    assert error is None, error
