"""Real Kafka clients against the Kafka listener over a fake single-broker core.

Goal: prove the wire protocol (framing, negotiation, every advertised API the clients use) with
confluent-kafka (librdkafka), kafka-python, aiokafka and kcat, without a cluster. Method: the
listener runs in-process on its own event loop in a thread, over `FakeCore` (in-memory logs that
store batches opaquely); each client produces with every compression codec and reads back from
the beginning by manual assignment (no consumer-group APIs), comparing keys, values and headers.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest

try:
    from tests.compat.fake_core import FakeCore
except ImportError:  # pragma: no cover - run from inside tests/compat
    from fake_core import FakeCore  # type: ignore[no-redef]

from broker.kafka.server import KafkaListener, start_kafka_listener

pytestmark = pytest.mark.timeout(30)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
MESSAGES = 20


class Broker:
    """A listener over a FakeCore, served by an event loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-broker", daemon=True)
        self.thread.start()
        self.core: FakeCore = self.call(self._make_core())
        self.listener: KafkaListener = self.call(start_kafka_listener(self.core, "127.0.0.1", 0))
        self.core.set_port(self.listener.port)
        self.bootstrap = f"127.0.0.1:{self.listener.port}"

    @staticmethod
    async def _make_core() -> FakeCore:
        return FakeCore()

    def call(self, coro, timeout: float = 10):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.call(self.listener.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    b = Broker()
    try:
        yield b
    finally:
        b.close()


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _expected(codec: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    return [(f"k{i}".encode(), f"{codec}-value-{i}".encode() * 5, [("h", str(i).encode())]) for i in range(MESSAGES)]


# ---------------------------------------------------------------------- confluent-kafka (librdkafka)

@pytest.mark.parametrize("codec", CODECS)
def test_confluent_produce_consume(broker: Broker, codec: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic = _topic(f"ck-{codec}")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": False,
                         "compression.type": codec, "linger.ms": 5, "message.timeout.ms": 10000})
    errors: list[object] = []
    for key, value, headers in _expected(codec):
        producer.produce(topic, value=value, key=key, headers=headers,
                         on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert producer.flush(15) == 0
    assert errors == []

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        got = []
        while len(got) < MESSAGES:
            msg = consumer.poll(5)
            assert msg is not None, f"timed out after {len(got)} messages"
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value(), msg.headers()))
        assert got == _expected(codec)
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
        assert (low, high) == (0, MESSAGES)
    finally:
        consumer.close()


def test_confluent_idempotent_producer(broker: Broker) -> None:
    """enable.idempotence=True exercises InitProducerId; the fake does not check sequences."""
    from confluent_kafka import Producer

    topic = _topic("ck-idempotent")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "compression.type": "lz4", "message.timeout.ms": 10000})
    delivered: list[int] = []
    for i in range(10):
        producer.produce(topic, value=b"v%d" % i,
                         on_delivery=lambda err, msg: delivered.append(-1 if err else msg.offset()))
    assert producer.flush(15) == 0
    assert sorted(delivered) == list(range(10))


def test_confluent_transactional_producer_gets_a_clear_error(broker: Broker) -> None:
    from confluent_kafka import KafkaException, Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "tx-1"})
    with pytest.raises(KafkaException):
        producer.init_transactions(5)


def test_confluent_admin(broker: Broker) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = _topic("admin")
    futures = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                            config={"retention.ms": "1000"})], operation_timeout=5)
    futures[topic].result(10)
    metadata = admin.list_topics(timeout=5)
    assert len(metadata.topics[topic].partitions) == 3
    assert metadata.cluster_id == "fake-cluster-id"

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "1000"
    assert configs["cleanup.policy"].value == "delete"
    assert configs["cleanup.policy"].is_default

    duplicate = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    with pytest.raises(Exception, match="already exists"):
        duplicate[topic].result(10)

    admin.delete_topics([topic], operation_timeout=5)[topic].result(10)
    assert topic not in admin.list_topics(timeout=5).topics


# ---------------------------------------------------------------------- kafka-python

@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_produce_consume(broker: Broker, codec: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka import codec as kafka_codec

    available = {"none": True, "gzip": kafka_codec.has_gzip(), "snappy": kafka_codec.has_snappy(),
                 "lz4": kafka_codec.has_lz4(), "zstd": kafka_codec.has_zstd()}
    if not available[codec]:
        # kafka-python needs python-snappy / lz4 / zstandard, which the test extras do not pin yet.
        pytest.skip(f"kafka-python has no {codec} library installed")
    topic = _topic(f"kp-{codec}")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                             compression_type=None if codec == "none" else codec, linger_ms=5)
    try:
        futures = [producer.send(topic, value=v, key=k, headers=h) for k, v, h in _expected(codec)]
        producer.flush(15)
        offsets = [f.get(timeout=10).offset for f in futures]
        assert offsets == list(range(MESSAGES))
    finally:
        producer.close(5)

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        got = []
        for msg in consumer:
            got.append((msg.key, msg.value, [(k, v) for k, v in msg.headers]))
            if len(got) == MESSAGES:
                break
        assert got == _expected(codec)
    finally:
        consumer.close()


# ---------------------------------------------------------------------- aiokafka

@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_produce_consume(broker: Broker, codec: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = _topic(f"ak-{codec}")

    async def run() -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                                    compression_type=None if codec == "none" else codec)
        await producer.start()
        try:
            for key, value, headers in _expected(codec):
                await producer.send(topic, value=value, key=key, headers=headers)
            await producer.flush()
            meta = await producer.send_and_wait(topic, b"last", key=b"last")
            assert meta.offset == MESSAGES
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got = []
            while len(got) < MESSAGES:
                msg = await asyncio.wait_for(consumer.getone(), 5)
                got.append((msg.key, msg.value, list(msg.headers)))
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(run()) == _expected(codec)


# ---------------------------------------------------------------------- kcat

@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_list_and_round_trip(broker: Broker) -> None:
    topic = _topic("kcat")
    listing = subprocess.run(["kcat", "-b", broker.bootstrap, "-L"], capture_output=True, text=True, timeout=15)
    assert listing.returncode == 0, listing.stderr
    assert "1 brokers" in listing.stdout
    produced = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-K", ":"],
                              input="a:one\nb:two\n", capture_output=True, text=True, timeout=15)
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                               "-f", "%k=%s\n"], capture_output=True, text=True, timeout=15)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == ["a=one", "b=two"]
