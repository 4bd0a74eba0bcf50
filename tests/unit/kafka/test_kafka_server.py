"""The listener's connection behaviour over raw sockets: ordering, acks=0, limits, failures, groups.

Goal: each rule of server.py holds on a real socket. Method: start the listener on a free port over
the fake core inside the test's event loop and speak to it with a minimal wire client.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from wire_helpers import FakeCore, WireClient, make_batch, sample_request

from broker.kafka.codec import build, request_class, response_class
from broker.kafka.framing import encode_frame
from broker.kafka.server import KafkaListener, start_kafka_listener

pytestmark = pytest.mark.timeout(30)

_MS = datetime.timedelta(milliseconds=1)


def run_with_listener(body: Callable[[FakeCore, KafkaListener], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        core = FakeCore()
        listener = await start_kafka_listener(core, "127.0.0.1", 0, **options)
        core.set_port(listener.port)
        try:
            await body(core, listener)
        finally:
            await listener.close()

    asyncio.run(main())


def _fetch(topic: str, offset: int, max_wait_ms: int, version: int = 12) -> Any:
    m = importlib.import_module(request_class(1, version).__module__)
    part = build(m.FetchPartition, partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)
    return build(request_class(1, version), max_wait=max_wait_ms * _MS, min_bytes=1, max_bytes=1 << 20,
                 topics=(build(m.FetchTopic, topic=topic, partitions=(part,)),), forgotten_topics_data=())


def _produce(topic: str, acks: int, version: int = 9, records: bytes | None = None, transactional_id: str | None = None) -> Any:
    m = importlib.import_module(request_class(0, version).__module__)
    part = build(m.PartitionProduceData, index=0, records=make_batch(1) if records is None else records)
    return build(request_class(0, version), transactional_id=transactional_id, acks=acks, timeout=1000 * _MS,
                 topic_data=(build(m.TopicProduceData, name=topic, partition_data=(part,)),))


def test_api_versions_lists_only_implemented_apis() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        response = await client.call(sample_request(18, 3))
        assert response.error_code == ErrorCode.none
        keys = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
        assert keys[0] == (3, 11) and keys[1] == (4, 12) and keys[18] == (0, 3)
        assert not keys.keys() & {8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 42, 47}
        await client.close()

    run_with_listener(body)


def test_unknown_api_versions_version_gets_v0_error_with_the_list() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        # ApiVersions v7 (unknown), header v2 with a client id and no tagged fields, then some body.
        header = (18).to_bytes(2, "big") + (7).to_bytes(2, "big") + (77).to_bytes(4, "big") + b"\x00\x01x\x00"
        await client.send_raw(encode_frame(header + b"\x01\x02\x03"))
        correlation_id, response = await client.read(18, 0)
        assert correlation_id == 77
        assert response.error_code == ErrorCode.unsupported_version
        assert {k.api_key for k in response.api_keys} >= {0, 1, 3, 18}
        # The connection stays usable.
        assert (await client.call(sample_request(18, 0))).error_code == ErrorCode.none
        await client.close()

    run_with_listener(body)


def test_responses_keep_request_order_while_a_fetch_long_polls() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        await client.call(sample_request(3, 12, topic="ordered"))  # auto-creates the topic
        fetch_id = await client.send(_fetch("ordered", 0, 2000))
        metadata_id = await client.send(sample_request(3, 12, topic="ordered"))
        await asyncio.sleep(0.2)
        # The metadata response is ready but must wait for the fetch; a produce completes the fetch.
        producer = await WireClient.connect(listener.port)
        produced = await producer.call(_produce("ordered", -1))
        assert produced.responses[0].partition_responses[0].error_code == ErrorCode.none
        first_id, fetched = await client.read(1, 12)
        second_id, _ = await client.read(3, 12)
        assert (first_id, second_id) == (fetch_id, metadata_id)
        assert fetched.responses[0].partitions[0].records
        assert fetched.session_id == 0 and fetched.responses[0].partitions[0].preferred_read_replica == -1
        await client.close()
        await producer.close()

    run_with_listener(body)


def test_acks_zero_produce_gets_no_response() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        await client.call(sample_request(3, 12, topic="fire"))
        await client.send(_produce("fire", 0))
        metadata_id = await client.send(sample_request(3, 12, topic="fire"))
        correlation_id, _ = await client.read(3, 12)
        assert correlation_id == metadata_id
        assert core.produce_calls == [("fire", 0, 0)]
        await client.close()

    run_with_listener(body)


def test_invalid_acks_and_transactional_produce_are_refused_per_partition() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        await client.call(sample_request(3, 12, topic="p"))
        bad_acks = await client.call(_produce("p", 2))
        assert bad_acks.responses[0].partition_responses[0].error_code == ErrorCode.invalid_required_acks
        txn = await client.call(_produce("p", -1, records=make_batch(1, attributes=0x10), transactional_id="tx"))
        partition = txn.responses[0].partition_responses[0]
        assert partition.error_code == ErrorCode.invalid_record
        assert "transactional" in partition.error_message
        assert core.produce_calls == []
        await client.close()

    run_with_listener(body)


def test_init_producer_id_refuses_transactional_ids() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        m = request_class(22, 4)
        idempotent = await client.call(build(m, transactional_id=None, transaction_timeout=60000 * _MS))
        assert idempotent.error_code == ErrorCode.none and idempotent.producer_id >= 0
        txn = await client.call(build(m, transactional_id="tx", transaction_timeout=60000 * _MS))
        assert txn.error_code == ErrorCode.invalid_request and txn.producer_id == -1
        await client.close()

    run_with_listener(body)


def test_metadata_unknown_topic_without_auto_create() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        core.config["auto.create.topics.enable"] = False
        client = await WireClient.connect(listener.port)
        response = await client.call(sample_request(3, 12, topic="missing"))
        assert response.topics[0].error_code == ErrorCode.unknown_topic_or_partition
        invalid = await client.call(sample_request(3, 12, topic="bad/name"))
        assert invalid.topics[0].error_code == ErrorCode.invalid_topic_exception
        assert response.brokers[0].port == listener.port and response.controller_id == 1
        assert response.cluster_id == "fake-cluster-id"
        await client.close()

    run_with_listener(body)


def test_oversize_frame_closes_only_that_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        other = await WireClient.connect(listener.port)
        client = await WireClient.connect(listener.port)
        await client.send_raw((10_000).to_bytes(4, "big"))
        assert await client.read_frame() is None
        assert (await other.call(sample_request(18, 3))).error_code == ErrorCode.none
        await other.close()

    with caplog.at_level(logging.WARNING, logger="broker.kafka"):
        run_with_listener(body, frame_bytes_max=4096)
    assert sum("socket.request.max.bytes" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    "payload",
    [
        encode_frame(b"\x00"),                                    # shorter than a header
        encode_frame((99).to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x01\xff\xff"),  # unknown api key
        encode_frame((3).to_bytes(2, "big") + (99).to_bytes(2, "big") + b"\x00\x00\x00\x01\xff\xff"),  # bad version
        encode_frame((3).to_bytes(2, "big") + (12).to_bytes(2, "big") + b"\x00\x00\x00\x01\xff\xff\x00\x05"),
        (-5).to_bytes(4, "big", signed=True),                     # negative size
    ],
)
def test_malformed_requests_close_the_connection(payload: bytes) -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        await client.send_raw(payload)
        assert await client.read_frame() is None
        fresh = await WireClient.connect(listener.port)
        assert (await fresh.call(sample_request(18, 3))).error_code == ErrorCode.none
        await fresh.close()

    run_with_listener(body)


def test_idle_connections_are_closed() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        assert (await client.call(sample_request(18, 3))).error_code == ErrorCode.none
        started = asyncio.get_running_loop().time()
        assert await client.read_frame(timeout=5) is None
        assert asyncio.get_running_loop().time() - started < 2

    run_with_listener(body, idle_ms=300)


def test_a_long_poll_is_not_idle() -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        await client.call(sample_request(3, 12, topic="slow"))
        response = await client.call(_fetch("slow", 0, 900))  # three idle periods long
        assert response.responses[0].partitions[0].error_code == ErrorCode.none

    run_with_listener(body, idle_ms=300)


def test_a_failing_handler_closes_only_its_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def body(core: FakeCore, listener: KafkaListener) -> None:
        def broken(*args: Any) -> Any:
            raise RuntimeError("boom")

        core.list_offsets = broken  # type: ignore[method-assign]
        client = await WireClient.connect(listener.port)
        await client.call(sample_request(3, 12, topic="t"))
        await client.send(sample_request(2, 7))
        assert await client.read_frame() is None
        fresh = await WireClient.connect(listener.port)
        assert (await fresh.call(sample_request(18, 3))).error_code == ErrorCode.none
        await fresh.close()

    with caplog.at_level(logging.ERROR, logger="broker.kafka"):
        run_with_listener(body)
    assert any("boom" in r.getMessage() for r in caplog.records)


def test_group_handlers_are_advertised_and_dispatched() -> None:
    seen: list[tuple[Any, int]] = []

    async def find_coordinator(request: Any, api_version: int, context: Any = None) -> Any:
        seen.append((request, api_version))
        return build(response_class(10, api_version), throttle_time=0 * _MS, error_code=ErrorCode.none,
                     error_message=None, node_id=1, host="127.0.0.1", port=1, coordinators=())

    async def body(core: FakeCore, listener: KafkaListener) -> None:
        client = await WireClient.connect(listener.port)
        versions = await client.call(sample_request(18, 3))
        keys = {k.api_key: (k.min_version, k.max_version) for k in versions.api_keys}
        assert keys[10] == (0, 3)
        request = build(request_class(10, 3), key="g", key_type=0)
        response = await client.call(request)
        assert response.node_id == 1
        assert seen == [(request, 3)]
        # A group API without a handler is not served.
        await client.send_raw(encode_frame((11).to_bytes(2, "big") + b"\x00\x05\x00\x00\x00\x09\xff\xff"))
        assert await client.read_frame() is None

    run_with_listener(body, group_handlers={10: find_coordinator}, group_versions={10: (0, 3)})


def test_close_cancels_long_polls() -> None:
    async def main() -> None:
        core = FakeCore()
        listener = await start_kafka_listener(core, "127.0.0.1", 0)
        client = await WireClient.connect(listener.port)
        await client.call(sample_request(3, 12, topic="t"))
        await client.send(_fetch("t", 0, 20_000))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(listener.close(), 2)
        assert await client.read_frame() is None

    asyncio.run(main())

