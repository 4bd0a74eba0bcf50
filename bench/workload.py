"""One librdkafka workload for every Kafka-protocol cluster we measure (Brook, Apache Kafka).

`make bench` runs it against Brook, `make bench-peers` against Brook and Apache Kafka 4.4.0 on the same
machine in the same run, so every figure compares like with like. Everything goes through the Kafka
protocol only (confluent-kafka's AdminClient, Producer, Consumer): the cluster under test is just a
bootstrap string plus, for failover, a way to kill and restart a broker by id.

Client settings (printed by the benchmarks, identical on both sides of a comparison):
- producer: acks=all, enable.idempotence=true, linger.ms=5, queue.buffering.max.kbytes=4096 (a bounded
  queue: unthrottled, a 1 GiB queue turns latency into queueing time);
- consumer: fetch.queue.backoff.ms=10 (librdkafka's default of 1 s caps any broker at ~135k rec/s once
  100k messages are queued; see docs/PERFORMANCE.md);
- every producer is warmed up (it has its producer id and metadata) before anything is timed.
Latency is librdkafka's Message.latency(): produce() call to delivery report.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PRODUCER = {"acks": "all", "enable.idempotence": True, "linger.ms": 5, "queue.buffering.max.kbytes": 4096,
            "log_level": 0}
CONSUMER = {"fetch.queue.backoff.ms": 10, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "log_level": 0}
SETTINGS = ("producer acks=all enable.idempotence=true linger.ms=5 queue.buffering.max.kbytes=4096; "
            "consumer fetch.queue.backoff.ms=10; RF=3 min.insync.replicas=2")


def percentiles(values: list[float], points: tuple[float, ...] = (50.0, 99.0, 99.9)) -> dict[float, float]:
    if not values:
        return {p: float("nan") for p in points}
    ordered = sorted(values)
    return {p: ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))] for p in points}


@dataclass
class Throughput:
    records: int
    seconds: float
    size: int
    errors: int
    latencies_ms: list[float]

    @property
    def per_s(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.per_s * self.size / 1e6


@dataclass
class Latency:
    rate: int
    records: int
    errors: int
    p50: float
    p99: float
    p999: float
    max: float


def admin(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def create_topic(bootstrap: str, name: str, partitions: int, timeout_s: float = 60.0) -> float:
    """Create an RF=3 topic (min.insync.replicas=2) and wait until every partition has a leader.

    Returns the monotonic time at which CreateTopics returned.
    """
    from confluent_kafka.admin import NewTopic

    client = admin(bootstrap)
    deadline = time.monotonic() + timeout_s
    while True:
        futures = client.create_topics([NewTopic(name, partitions, 3, config={"min.insync.replicas": "2"})],
                                       operation_timeout=30)
        try:
            futures[name].result(timeout=30)
            break
        except Exception as e:  # the cluster may still be electing its controller or fencing brokers
            if "TOPIC_ALREADY_EXISTS" in str(e) or time.monotonic() > deadline:
                if "TOPIC_ALREADY_EXISTS" in str(e):
                    break
                raise
            time.sleep(0.5)
    created = time.monotonic()
    while time.monotonic() < deadline:
        try:
            md = client.list_topics(name, timeout=10).topics.get(name)
        except Exception:  # a broker busy applying a large metadata change may answer late
            time.sleep(0.5)
            continue
        if md is not None and md.error is None and len(md.partitions) == partitions \
                and all(p.leader >= 0 for p in md.partitions.values()):
            return created
        time.sleep(0.1)
    raise TimeoutError(f"{name}: partitions have no leader after {timeout_s:g}s")


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    md = admin(bootstrap).list_topics(topic, timeout=10).topics[topic]
    return md.partitions[partition].leader


def warm_producer(bootstrap: str, topic: str, extra: dict[str, Any] | None = None) -> Any:
    """A producer that already has its producer id and the topic's metadata."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER, **(extra or {})})
    producer.produce(topic, b"warm-up")
    if producer.flush(30):
        raise TimeoutError(f"warm-up produce to {topic} not acknowledged in 30 s")
    return producer


def produce(bootstrap: str, topic: str, size: int, seconds: float, records_max: int,
            producer: Any = None) -> Throughput:
    """As fast as acks allow, round robin over the topic's partitions (no key); `producer`: a warm one."""
    producer = producer or warm_producer(bootstrap, topic)
    latencies: list[float] = []
    errors = [0]

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors[0] += 1
        else:
            latencies.append(msg.latency() * 1000.0)

    value = b"x" * size
    sent = 0
    start = time.perf_counter()
    while sent < records_max and time.perf_counter() - start < seconds:
        try:
            producer.produce(topic, value, on_delivery=delivered)
            sent += 1
        except BufferError:
            producer.poll(0.005)
        if sent % 1000 == 0:
            producer.poll(0)
    left = producer.flush(60)
    elapsed = time.perf_counter() - start
    return Throughput(len(latencies), elapsed, size, errors[0] + left, latencies)


def consume(bootstrap: str, topic: str, partitions: int, records: int, seconds: float) -> Throughput:
    """One consumer reads `records` from the start of every partition (assign, no group rebalance).
    The clock starts at the first record: the client's start-up (metadata, connections, the first
    fetch's round trips) is not throughput."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}", **CONSUMER})
    got = nbytes = errors = 0
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        batch = consumer.consume(num_messages=1, timeout=30.0)
        start = time.perf_counter()
        while True:
            for m in batch:
                if m.error() is None:
                    got += 1
                    nbytes += len(m.value() or b"")
                else:
                    errors += 1
            if got >= records or time.perf_counter() - start >= seconds:
                break
            batch = consumer.consume(num_messages=10_000, timeout=0.5)
        elapsed = time.perf_counter() - start
    finally:
        consumer.close()
    return Throughput(got, elapsed, nbytes // got if got else 0, errors, [])


def paced(bootstrap: str, topic: str, rate: int, seconds: float, size: int = 100, producer: Any = None) -> Latency:
    """acks=all latency at a fixed offered rate (records/s), one record per produce() call."""
    producer = producer or warm_producer(bootstrap, topic)
    latencies: list[float] = []
    errors = [0]

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors[0] += 1
        else:
            latencies.append(msg.latency() * 1000.0)

    value = b"x" * size
    interval = 1.0 / rate
    start = time.perf_counter()
    nxt = start
    while True:
        now = time.perf_counter()
        if now - start >= seconds:
            break
        if now < nxt:
            producer.poll(min(nxt - now, 0.001))
            continue
        # Catch up in a burst if the client fell behind (the offered rate stays the rate asked for).
        while nxt <= now:
            try:
                producer.produce(topic, value, on_delivery=delivered)
            except BufferError:
                errors[0] += 1
            nxt += interval
        producer.poll(0)
    producer.flush(60)
    p = percentiles(latencies)
    return Latency(rate, len(latencies), errors[0], p[50.0], p[99.0], p[99.9], max(latencies, default=float("nan")))


def one_at_a_time(bootstrap: str, topic: str, seconds: float, size: int = 100, producer: Any = None) -> Latency:
    """acks=all latency of one record per request with nothing else in flight (closed loop, linger.ms=0):
    the cluster's own round trip, and a fixed number of requests to divide CPU time by. `rate` in
    the result is the number of requests per second achieved."""
    producer = producer or warm_producer(bootstrap, topic, {"linger.ms": 0})
    latencies: list[float] = []
    errors = [0]
    done = [False]

    def delivered(err: Any, msg: Any) -> None:
        done[0] = True
        if err is not None:
            errors[0] += 1
        else:
            latencies.append(msg.latency() * 1000.0)

    value = b"x" * size
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        done[0] = False
        producer.produce(topic, value, partition=0, on_delivery=delivered)
        while not done[0]:
            producer.poll(0.05)
    elapsed = time.perf_counter() - start
    p = percentiles(latencies)
    return Latency(int(len(latencies) / elapsed), len(latencies), errors[0], p[50.0], p[99.0], p[99.9],
                   max(latencies, default=float("nan")))


def creation_to_first_ack(bootstrap: str, warm_topic: str, partitions: int = 3) -> float:
    """Seconds from CreateTopics to the first acks=all acknowledgement on the new topic.

    The producer is warmed up on another topic first, so its own start-up (producer id, first metadata)
    is not counted: what remains is the cluster's start-up of the new partitions.
    """
    producer = warm_producer(bootstrap, warm_topic, {"topic.metadata.refresh.interval.ms": 100})
    name = f"fresh-{uuid.uuid4().hex[:8]}"
    acked: list[float] = []
    t0 = time.monotonic()
    create_topic(bootstrap, name, partitions)
    producer.produce(name, b"first", partition=0, on_delivery=lambda err, msg: acked.append(time.monotonic())
                     if err is None else None)
    producer.flush(60)
    if not acked:
        raise TimeoutError(f"no acknowledgement on {name}")
    return acked[0] - t0


class FailoverWriter:
    """One acks=all record every 10 ms to partition 0; the monotonic time of every acknowledgement."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = warm_producer(bootstrap, topic, {"message.timeout.ms": 60_000,
                                                          "topic.metadata.refresh.interval.ms": 250,
                                                          "retry.backoff.max.ms": 100})
        self.topic = topic
        self.acks: list[float] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="failover-writer", daemon=True)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            with self.lock:
                self.acks.append(time.monotonic())

    def _run(self) -> None:
        while not self.stop.is_set():
            self.producer.produce(self.topic, b"f", partition=0, on_delivery=self._delivered)
            self.producer.poll(0.01)
        self.producer.flush(30)

    def first_ack_after(self, t: float) -> float | None:
        with self.lock:
            return next((a for a in self.acks if a > t), None)


def failover(bootstrap: str, topic: str, runs: int, kill: Callable[[int], object], restart: Callable[[int], object],
             healthy: Callable[[], bool], resume_max_s: float = 45.0) -> list[float | None]:
    """Kill partition 0's leader `runs` times; seconds from each kill to the first acknowledgement after it."""
    writer = FailoverWriter(bootstrap, topic)
    writer.thread.start()
    out: list[float | None] = []
    try:
        for _ in range(runs):
            leader = leader_of(bootstrap, topic, 0)
            killed = time.monotonic()
            kill(leader)
            ack = None
            while ack is None and time.monotonic() - killed < resume_max_s:
                time.sleep(0.01)
                ack = writer.first_ack_after(killed)
            out.append(None if ack is None else ack - killed)
            restart(leader)
            deadline = time.monotonic() + 90
            while not healthy():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"broker {leader} did not come back and catch up in 90 s")
                time.sleep(0.2)
    finally:
        writer.stop.set()
        writer.thread.join(timeout=40)
    return out


def fully_replicated(bootstrap: str, topic: str) -> bool:
    try:
        md = admin(bootstrap).list_topics(topic, timeout=5).topics[topic]
    except Exception:
        return False
    return all(len(p.isrs) == 3 for p in md.partitions.values())
