"""Listener limits (issue 11, item 8): max.connections(.per.ip), fetch.max.bytes, internal topics."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from wire_helpers import FakeCore, WireClient, make_batch, sample_request

from broker.api import NewTopic
from broker.kafka.codec import build, request_class
from broker.kafka.server import accept_refusal, start_kafka_listener

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("total", "from_ip", "refused"), [
    (0, 0, None), (9, 1, None), (10, 0, "max.connections=10"), (5, 3, "max.connections.per.ip=3"),
])
def test_accept_refusal_table(total: int, from_ip: int, refused: str | None) -> None:
    reason = accept_refusal(total, from_ip, 10, 3)
    assert (reason is None) if refused is None else (refused in str(reason))


def test_connections_per_ip_are_capped_and_slots_come_back() -> None:
    async def main() -> None:
        core = FakeCore()
        listener = await start_kafka_listener(core, "127.0.0.1", 0, connections_max=100, connections_per_ip_max=2)
        core.set_port(listener.port)
        try:
            first, second = await WireClient.connect(listener.port), await WireClient.connect(listener.port)
            for client in (first, second):
                assert (await client.call(sample_request(18, 3))).error_code == ErrorCode.none
            third = await WireClient.connect(listener.port)
            await third.send(sample_request(18, 3))
            assert await third.read_frame(timeout=5) is None  # closed at accept
            assert listener.refused_connections == 1
            await first.close()
            for _ in range(100):
                if len(listener._connections) < 2:
                    break
                await asyncio.sleep(0.02)
            fourth = await WireClient.connect(listener.port)
            assert (await fourth.call(sample_request(18, 3))).error_code == ErrorCode.none
            await fourth.close()
            await second.close()
        finally:
            await listener.close()

    asyncio.run(main())


def test_fetch_max_bytes_caps_what_a_client_asks_for() -> None:
    async def main() -> None:
        core = FakeCore()
        core.config["fetch.max.bytes"] = 4096
        await core.create_topics([NewTopic("t", 1, 1)], False, 1000)
        asked: list[int] = []
        fetch = core.fetch

        async def recording(partitions: Any, max_wait_ms: int, min_bytes: int, max_bytes: int) -> Any:
            asked.append(max_bytes)
            return await fetch(partitions, max_wait_ms, min_bytes, max_bytes)

        core.fetch = recording  # type: ignore[method-assign]
        listener = await start_kafka_listener(core, "127.0.0.1", 0)
        core.set_port(listener.port)
        try:
            client = await WireClient.connect(listener.port)
            m = importlib.import_module(request_class(1, 12).__module__)
            part = build(m.FetchPartition, partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
            request = build(request_class(1, 12), max_wait=0 * sample_request(1, 12).max_wait, min_bytes=0,
                            max_bytes=1 << 30, topics=(build(m.FetchTopic, topic="t", partitions=(part,)),),
                            forgotten_topics_data=())
            await client.call(request)
            assert asked == [4096]
            await client.close()
        finally:
            await listener.close()

    asyncio.run(main())


def test_a_client_cannot_produce_to_an_internal_topic() -> None:
    async def main() -> None:
        core = FakeCore()
        await core.create_topics([NewTopic("__consumer_offsets", 1, 1)], False, 1000)
        listener = await start_kafka_listener(core, "127.0.0.1", 0)
        core.set_port(listener.port)
        try:
            client = await WireClient.connect(listener.port)
            m = importlib.import_module(request_class(0, 9).__module__)
            part = build(m.PartitionProduceData, index=0, records=make_batch(1))
            request = build(request_class(0, 9), transactional_id=None, acks=1, timeout=sample_request(0, 9).timeout,
                            topic_data=(build(m.TopicProduceData, name="__consumer_offsets", partition_data=(part,)),))
            response = await client.call(request)
            assert response.responses[0].partition_responses[0].error_code == ErrorCode.invalid_topic_exception
            await client.close()
        finally:
            await listener.close()

    asyncio.run(main())
