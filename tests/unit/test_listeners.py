"""Listeners as in Kafka (issue 13): every advertised listener is registered, and a client is answered
with the addresses of the listener it connected to — never one listener's host with another's port.

The compose bug this guards: a broker registered its GRPC host (`broker-1`) with its PLAINTEXT port
(`19092`), so a client on the Docker host was sent to broker-1:19092.
"""

from __future__ import annotations

import asyncio
import importlib

import pytest

from broker.groups.coordinator import OFFSETS_TOPIC, GroupCoordinator
from broker.kafka.codec import build, request_class
from broker.kafka.group_handlers import GroupHandlers
from broker.kafka.handlers import KafkaHandlers
from broker.kafka.session import RequestContext
from cluster import codec
from cluster.image import MetadataImage, image_from_records, image_to_records, replay_all
from cluster.records import (
    BrokerListener,
    PartitionRecord,
    RegisterBroker,
    TopicRecord,
    UnfenceBroker,
)

pytestmark = pytest.mark.timeout(30)

COMPOSE_BROKER_1 = (
    BrokerListener("INTERNAL", "broker-1", 9092, "PLAINTEXT"),
    BrokerListener("EXTERNAL", "localhost", 19092, "PLAINTEXT"),
)
COMPOSE_BROKER_2 = (
    BrokerListener("INTERNAL", "broker-2", 9092, "PLAINTEXT"),
    BrokerListener("EXTERNAL", "localhost", 29092, "PLAINTEXT"),
)


def _image() -> MetadataImage:
    topic_id = b"\x07" * 16
    return replay_all(MetadataImage(), [
        RegisterBroker(101, 0, "a", "broker-1", 9092, 9192, "", COMPOSE_BROKER_1),
        RegisterBroker(102, 1, "b", "broker-2", 9092, 9192, "", COMPOSE_BROKER_2),
        UnfenceBroker(101, 0),
        UnfenceBroker(102, 1),
        TopicRecord(OFFSETS_TOPIC, topic_id),
        *[PartitionRecord(topic_id, i, (102,), (102,), 102, 0, 0) for i in range(4)],
    ])


def test_register_broker_listeners_survive_codec_and_snapshot() -> None:
    record = RegisterBroker(101, 5, "inc", "broker-1", 9092, 9192, "r1", COMPOSE_BROKER_1)
    assert codec.record_from_pb(codec.record_to_pb(record)) == record
    image = replay_all(MetadataImage(), [record])
    rebuilt = image_from_records([codec.record_from_pb(codec.record_to_pb(r)) for r in image_to_records(image)],
                                 image.offset)
    assert rebuilt.brokers[101].listeners == COMPOSE_BROKER_1


def test_a_record_without_listeners_replays_as_its_host_and_kafka_port() -> None:
    image = replay_all(MetadataImage(), [RegisterBroker(1, 0, "inc", "h1", 9092, 9192)])
    b = image.brokers[1]
    assert b.kafka_address() == ("h1", 9092) and b.grpc_address == "h1:9192"


def test_kafka_address_is_the_named_listener_only() -> None:
    b = _image().brokers[101]
    assert b.kafka_address("EXTERNAL") == ("localhost", 19092)
    assert b.kafka_address("INTERNAL") == ("broker-1", 9092)
    assert b.kafka_address() == ("broker-1", 9092)  # the first Kafka listener


def _metadata_request(version: int = 12):
    m = importlib.import_module(request_class(3, version).__module__)
    return build(request_class(3, version), topics=(build(m.MetadataRequestTopic, name=OFFSETS_TOPIC, topic_id=None),),
                 allow_auto_topic_creation=False, include_cluster_authorized_operations=False,
                 include_topic_authorized_operations=False)


class _Core:
    """Just what Metadata and FindCoordinator read: the image and the advertised addresses."""

    broker_id = 101

    def __init__(self) -> None:
        self._image = _image()

    def image(self) -> MetadataImage:
        return self._image

    def advertised_kafka_address(self, broker_id: int, listener: str = ""):
        b = self._image.brokers.get(broker_id)
        return None if b is None else b.kafka_address(listener)

    def controller_id(self) -> int:
        return 1

    def server_config(self, name: str) -> object:
        return {"auto.create.topics.enable": False}.get(name)

    def add_leadership_listener(self, callback: object) -> None:
        pass


@pytest.mark.parametrize("listener,expected", [
    ("EXTERNAL", [(101, "localhost", 19092), (102, "localhost", 29092)]),
    ("INTERNAL", [(101, "broker-1", 9092), (102, "broker-2", 9092)]),
])
def test_metadata_answers_with_the_listener_the_client_used(listener, expected) -> None:
    handlers = KafkaHandlers(_Core())  # type: ignore[arg-type]
    ctx = RequestContext("c", "10.0.0.9", listener=listener)
    response = asyncio.run(handlers.handle(3, 12, _metadata_request(), ctx))
    assert [(b.node_id, b.host, b.port) for b in response.brokers] == expected


@pytest.mark.parametrize("listener,expected", [
    ("EXTERNAL", (102, "localhost", 29092)),
    ("INTERNAL", (102, "broker-2", 9092)),
])
def test_find_coordinator_answers_with_the_listener_the_client_used(listener, expected) -> None:
    async def main():
        adapter = GroupHandlers(GroupCoordinator(_Core()))  # type: ignore[arg-type]
        m = importlib.import_module(request_class(10, 3).__module__)
        request = build(m.FindCoordinatorRequest, key="g1", key_type=0)
        return await adapter.find_coordinator(request, 3, RequestContext("c", "10.0.0.9", listener=listener))

    response = asyncio.run(main())
    assert (response.node_id, response.host, response.port) == expected
