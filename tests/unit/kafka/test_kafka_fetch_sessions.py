"""The Fetch handler with consumer fetch sessions (KIP-227, issue 16 item 4), over the fake core.

Goal: a consumer that opens a session gets a full answer once, then answers carrying only partitions
with news; it can forget partitions; a stale epoch or an unknown id is refused with Kafka's errors;
clients without sessions (librdkafka, Fetch v4..6) are served as before. Method: kio Fetch v12 (and
v6) requests through `KafkaHandlers.handle` over `FakeCore` (in-memory logs).
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
from typing import Any

import pytest
from wire_helpers import FakeCore, make_batch

from broker.api import NewTopic
from broker.kafka.codec import build, request_class
from broker.kafka.handlers import KafkaHandlers, new_fetch_session_cache
from broker.kafka.session import RequestContext
from cluster.errors import ErrorCode

pytestmark = pytest.mark.timeout(30)

_MS = datetime.timedelta(milliseconds=1)
PARTITIONS = 50


def _fetch(offsets: dict[int, int], session_id: int, epoch: int, forgotten: tuple[int, ...] = (),
           version: int = 12, topic: str = "s") -> Any:
    m = importlib.import_module(request_class(1, version).__module__)
    parts = tuple(build(m.FetchPartition, partition=p, fetch_offset=o, partition_max_bytes=1 << 20)
                  for p, o in offsets.items())
    topics = (build(m.FetchTopic, topic=topic, partitions=parts),) if parts else ()
    forget = (build(m.ForgottenTopic, topic=topic, partitions=forgotten),) if forgotten else ()
    return build(request_class(1, version), max_wait=0 * _MS, min_bytes=0, max_bytes=1 << 20, topics=topics,
                 forgotten_topics_data=forget, session_id=session_id, session_epoch=epoch)


def _answered(response: Any) -> dict[int, Any]:
    return {p.partition_index: p for t in response.responses for p in t.partitions}


def _run(body: Any) -> None:
    async def main() -> None:
        core = FakeCore()
        await core.create_topics([NewTopic("s", PARTITIONS, 1)], False, 1000)
        await body(core, KafkaHandlers(core, fetch_sessions=new_fetch_session_cache()))

    asyncio.run(main())


def test_a_session_answers_only_partitions_with_news() -> None:
    async def body(core: FakeCore, handlers: KafkaHandlers) -> None:
        offsets = dict.fromkeys(range(PARTITIONS), 0)
        full = await handlers.handle(1, 12, _fetch(offsets, 0, 0))
        assert full.error_code == ErrorCode.none and full.session_id != 0
        assert set(_answered(full)) == set(range(PARTITIONS))
        sid = full.session_id

        empty = await handlers.handle(1, 12, _fetch({}, sid, 1))
        assert empty.error_code == ErrorCode.none and empty.session_id == sid
        assert _answered(empty) == {}  # nothing changed: nothing listed, nothing answered

        await core.produce("s", 7, make_batch(3), -1, 1000)
        news = await handlers.handle(1, 12, _fetch({}, sid, 2))
        answered = _answered(news)
        assert set(answered) == {7}
        assert answered[7].records and answered[7].high_watermark == 3

        # The client moves partition 7 to offset 3 (listed) and forgets partition 0.
        await core.produce("s", 0, make_batch(1), -1, 1000)
        after = await handlers.handle(1, 12, _fetch({7: 3}, sid, 3, forgotten=(0,)))
        assert _answered(after) == {}  # 7 has nothing past 3; 0 is no longer in the session
        await core.produce("s", 7, make_batch(1), -1, 1000)
        again = _answered(await handlers.handle(1, 12, _fetch({}, sid, 4)))
        assert set(again) == {7} and again[7].high_watermark == 4

    _run(body)


def test_stale_epochs_and_unknown_ids_get_kafkas_errors() -> None:
    async def body(core: FakeCore, handlers: KafkaHandlers) -> None:
        sid = (await handlers.handle(1, 12, _fetch({0: 0}, 0, 0))).session_id
        assert (await handlers.handle(1, 12, _fetch({}, sid, 1))).error_code == ErrorCode.none
        stale = await handlers.handle(1, 12, _fetch({}, sid, 1))
        assert stale.error_code == ErrorCode.invalid_fetch_session_epoch and stale.responses == ()
        unknown = await handlers.handle(1, 12, _fetch({}, sid + 1, 1))
        assert unknown.error_code == ErrorCode.fetch_session_id_not_found
        # Another principal cannot use the session.
        other = RequestContext("c", "127.0.0.1", principal="User:mallory")
        assert (await handlers.handle(1, 12, _fetch({}, sid, 2), other)).error_code == \
            ErrorCode.fetch_session_id_not_found
        # Closing it (epoch -1) answers in full without a session; the id is gone afterwards.
        closed = await handlers.handle(1, 12, _fetch({0: 0}, sid, -1))
        assert closed.error_code == ErrorCode.none and closed.session_id == 0 and set(_answered(closed)) == {0}
        assert (await handlers.handle(1, 12, _fetch({}, sid, 2))).error_code == ErrorCode.fetch_session_id_not_found

    _run(body)


@pytest.mark.parametrize("version", [6, 12])
def test_clients_without_sessions_get_full_answers(version: int) -> None:
    async def body(core: FakeCore, handlers: KafkaHandlers) -> None:
        offsets = dict.fromkeys(range(PARTITIONS), 0)
        for _ in range(2):  # librdkafka: session 0, epoch -1 on every request (v6 has no such fields)
            response = await handlers.handle(1, version, _fetch(offsets, 0, -1, version=version))
            assert getattr(response, "error_code", ErrorCode.none) == ErrorCode.none
            assert set(_answered(response)) == set(range(PARTITIONS))
            assert getattr(response, "session_id", 0) == 0
        assert not handlers.fetch_sessions.sessions

    _run(body)
