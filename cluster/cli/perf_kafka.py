"""`brook perf produce|consume --bootstrap-server`: the load tests over the Kafka protocol, measured
as kafka-producer-perf-test / kafka-consumer-perf-test measure (confluent-kafka's Producer and
Consumer, `--command-config` for TLS/SASL), so the listener's own cost (TLS, SASL, the Kafka codec)
is in the figures. The gRPC variants are in cluster/cli/perf.py; both report through the same
`ProduceResult` / `ConsumeResult`.

produce: one Producer, records of `--record-size` random bytes (no key); a record's latency runs from
`produce()` to its delivery report, as in kafka-producer-perf-test. consume: a Consumer assigned every
partition from its log start (no group, nothing committed); bytes are key + value, as in
kafka-consumer-perf-test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from cluster.cli.perf import (
    ACKS,
    PROGRESS_INTERVAL_S,
    ConsumeResult,
    ProduceResult,
    _Window,
    throttle_delay,
)
from cluster.errors import BrookError, ErrorCode


def _metadata_partitions(client: Any, bootstrap: str, topic: str, timeout_s: float) -> list[int]:
    from cluster.cli.groups import _kafka_error

    try:
        metadata = client.list_topics(timeout=timeout_s)
    except Exception as e:
        raise _kafka_error(e, f"no metadata from the brokers at {bootstrap}") from None
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise BrookError(f"topic {topic!r} does not exist", ErrorCode.unknown_topic_or_partition)
    return sorted(info.partitions)


def run_produce_kafka(bootstrap: str, topic: str, num_records: int, record_size: int, *,
                      security: Mapping[str, str] | None = None, throughput: int = -1, acks: str = "all",
                      timeout_s: float = 10.0, request_timeout_ms: int = 30_000,
                      progress: Callable[[str], None] | None = None,
                      progress_interval_s: float = PROGRESS_INTERVAL_S) -> ProduceResult:
    from confluent_kafka import Producer

    from cluster.cli.kafka_client import CONNECTION_ERRORS, client_config

    if acks not in ACKS:
        raise BrookError(f"bad acks {acks!r}: expected 0, 1 or all", ErrorCode.invalid_request)
    producer = CONNECTION_ERRORS.track(Producer(client_config(bootstrap, timeout_s, security, **{
        "acks": str(ACKS[acks]), "enable.idempotence": False, "message.timeout.ms": request_timeout_ms,
        "linger.ms": 5})))
    _metadata_partitions(producer, bootstrap, topic, timeout_s)
    result = ProduceResult(topic, record_size, acks, 0)
    window = _Window()
    value = os.urandom(record_size)
    start = last = time.perf_counter()

    def delivered(err: Any, _msg: Any, sent: float) -> None:
        if err is not None:
            message = f"{err.str()} ({err.name()})"
            result.failed += 1
            result.errors[message] = result.errors.get(message, 0) + 1
        else:
            window.add((time.perf_counter() - sent) * 1000.0, 1, record_size)

    def report(now: float) -> None:
        nonlocal last
        window.drain_into(result, progress, now - last)
        last = now

    for i in range(num_records):
        delay = throttle_delay(i, 1, throughput, time.perf_counter() - start)
        if delay > 0:
            producer.poll(delay)
        sent = time.perf_counter()
        while True:
            try:
                producer.produce(topic, value=value,
                                 on_delivery=lambda err, msg, sent=sent: delivered(err, msg, sent))
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
        producer.poll(0)
        now = time.perf_counter()
        if now - last >= progress_interval_s:
            report(now)
    deadline = time.monotonic() + request_timeout_ms / 1000 + timeout_s
    while len(producer) and time.monotonic() < deadline:
        producer.poll(0.1)
    left = len(producer)
    if left:
        result.failed += left
        result.errors["not acknowledged in time"] = left
    result.elapsed_s = time.perf_counter() - start
    window.drain_into(result)
    return result


def run_consume_kafka(bootstrap: str, topic: str, messages: int, *, security: Mapping[str, str] | None = None,
                      timeout_s: float = 10.0, idle_timeout_s: float = 10.0,
                      progress: Callable[[str], None] | None = None,
                      progress_interval_s: float = PROGRESS_INTERVAL_S) -> ConsumeResult:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from cluster.cli.kafka_client import CONNECTION_ERRORS, client_config

    consumer = CONNECTION_ERRORS.track(Consumer(client_config(bootstrap, timeout_s, security, **{
        "group.id": "brook-perf-consumer", "enable.auto.commit": False, "auto.offset.reset": "earliest"})))
    result = ConsumeResult(topic, decoded=True)
    try:
        partitions = _metadata_partitions(consumer, bootstrap, topic, timeout_s)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        start = last = last_record = time.perf_counter()
        window_records = window_bytes = 0
        while result.records < messages:
            batch = consumer.consume(min(500, messages - result.records), timeout=0.2)
            now = time.perf_counter()
            for msg in batch:
                if msg.error() is not None:
                    continue  # partition EOF and the like; a real failure shows as idleness
                size = len(msg.value() or b"") + len(msg.key() or b"")
                result.records += 1
                result.bytes += size
                window_records += 1
                window_bytes += size
                last_record = now
            if now - last_record >= idle_timeout_s:
                result.error = (f"only {result.records} of {messages} records within {idle_timeout_s:g}s "
                                "without a new record")
                break
            if now - last >= progress_interval_s:
                if progress is not None:
                    seconds = max(now - last, 1e-9)
                    progress(f"{window_records} records consumed, {window_records / seconds:.1f} records/sec "
                             f"({window_bytes / seconds / 1e6:.2f} MB/sec).")
                window_records = window_bytes = 0
                last = now
        result.elapsed_s = time.perf_counter() - start
    finally:
        consumer.close()
    return result
