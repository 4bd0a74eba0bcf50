"""Example: test your Kafka code against a real Brook cluster with confluent-kafka, no Docker or JVM.

Run with `pytest examples/pytest_plugin` (the plugin comes with `pip install brook[testing]`).
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30.0


def create_topic(bootstrap: str, partitions: int = 3, replication_factor: int = 3) -> str:
    name = f"orders-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, replication_factor)],
                                  operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
    futures[name].result(timeout=TIMEOUT_S)
    return name


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=str(i).encode(),
                         on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
    assert producer.flush(TIMEOUT_S) == 0, "messages still in flight"
    assert errors == []


def consume(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        # Bounded by the number of polls, not by a clock: the test timeout catches a hang.
        for _ in range(300):
            if len(got) >= count:
                break
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            got.append(msg.value())
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return got


def test_the_cluster_is_replicated(brook_bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": brook_bootstrap})
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    assert len(metadata.brokers) == 3
    topic = create_topic(brook_bootstrap)
    metadata = admin.list_topics(topic, timeout=TIMEOUT_S)
    assert [len(p.replicas) for p in metadata.topics[topic].partitions.values()] == [3, 3, 3]


def test_what_is_produced_is_consumed(brook_bootstrap: str) -> None:
    topic = create_topic(brook_bootstrap)
    values = [f"order {i}".encode() for i in range(100)]
    produce(brook_bootstrap, topic, values)
    assert sorted(consume(brook_bootstrap, topic, "billing", len(values))) == sorted(values)


def test_a_group_resumes_from_its_committed_offsets(brook_bootstrap: str) -> None:
    topic = create_topic(brook_bootstrap)
    produce(brook_bootstrap, topic, [b"first"] * 10)
    assert len(consume(brook_bootstrap, topic, "audit", 10)) == 10
    produce(brook_bootstrap, topic, [b"second"] * 5)
    assert consume(brook_bootstrap, topic, "audit", 5) == [b"second"] * 5


def test_a_broker_loss_loses_nothing(brook_cluster, brook_bootstrap: str) -> None:
    """The fixture's LocalCluster also stops and restarts nodes (by PID), for failure tests."""
    topic = create_topic(brook_bootstrap)
    produce(brook_bootstrap, topic, [b"before"] * 20)
    victim = brook_cluster.broker_ids[-1]
    brook_cluster.kill(victim)
    try:
        produce(brook_bootstrap, topic, [b"during"] * 20)
    finally:
        brook_cluster.restart(victim)
        brook_cluster.wait_healthy(60)
    assert sorted(consume(brook_bootstrap, topic, "recovery", 40)) == [b"before"] * 20 + [b"during"] * 20


@pytest.mark.brook(brokers=1, overrides={"num.partitions": "1"})
def test_a_marker_asks_for_another_cluster(brook_cluster, brook_bootstrap: str) -> None:
    assert brook_cluster.broker_ids == [101]
    topic = create_topic(brook_bootstrap, partitions=1, replication_factor=1)
    produce(brook_bootstrap, topic, [b"solo"])
    assert consume(brook_bootstrap, topic, "solo", 1) == [b"solo"]
