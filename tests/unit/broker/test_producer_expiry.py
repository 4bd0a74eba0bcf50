"""producer.id.expiration.ms (Kafka's default 1 day): idle producer ids leave the producer state, so it
stays bounded by the producers active within the window. The clock is the harness's ManualClock.
"""

from __future__ import annotations

import asyncio

import pytest
from broker_harness import TOPIC, Cluster

from cluster.errors import ErrorCode
from storage.batch import Record, build_batch
from storage.producer_state import ProducerBatch, ProducerEntry, ProducerStateTable

pytestmark = pytest.mark.timeout(30)
DAY_MS = 86_400_000


def _idempotent(c: Cluster, producer_id: int, sequence: int, count: int = 1) -> bytes:
    return build_batch([Record(b"k", b"v%d" % i, c.clock.now_ms) for i in range(count)],
                       producer_id=producer_id, producer_epoch=0, base_sequence=sequence)


def _leader() -> Cluster:
    c = Cluster(broker_ids=(1,), min_insync=1)
    c.create((1,), leader=1)
    c.sync()
    return c


def test_an_idle_producer_id_expires_and_its_sequence_is_forgotten():
    async def body() -> None:
        c = _leader()
        m = c.nodes[1].manager
        assert (await m.produce(TOPIC, 0, _idempotent(c, 7, 0), 1, 1000)).error == ErrorCode.none
        c.clock.advance(DAY_MS - 1)
        assert m.expire_producers(DAY_MS) == 0, "not idle for a whole day yet"
        gap = await m.produce(TOPIC, 0, _idempotent(c, 7, 5), 1, 1000)
        assert gap.error == ErrorCode.out_of_order_sequence_number, "still remembered: the gap is refused"
        c.clock.advance(1)
        assert m.expire_producers(DAY_MS) == 1
        assert 7 not in c.nodes[1].log.producer_entries()
        # Forgotten: like an unknown producer (KIP-360), its next batch is accepted whatever its sequence.
        assert (await m.produce(TOPIC, 0, _idempotent(c, 7, 5), 1, 1000)).error == ErrorCode.none
    asyncio.run(body())


def test_producer_state_stays_bounded_by_the_active_producers():
    async def body() -> None:
        c = _leader()
        m = c.nodes[1].manager
        for producer_id in range(100):  # one new producer per hour
            assert (await m.produce(TOPIC, 0, _idempotent(c, producer_id, 0), 1, 1000)).error == ErrorCode.none
            c.clock.advance(3_600_000)
            m.expire_producers(DAY_MS)
        # Now is 100 h after the first batch; producer i wrote at i h, so it is kept while 100 - i < 24.
        assert sorted(c.nodes[1].log.producer_entries()) == list(range(77, 100))
    asyncio.run(body())


def test_the_table_expires_by_the_last_batch_timestamp_and_keeps_it_across_encoding():
    table = ProducerStateTable()
    from storage.batch import parse_header
    table.update([parse_header(build_batch([Record(b"k", b"v", 5_000)], producer_id=1, producer_epoch=0,
                                           base_sequence=0))])
    entry = table.get(1)
    assert entry is not None and entry.last_timestamp_ms == 5_000
    assert ProducerEntry.decode(entry.encode()) == entry
    # An entry stored before expiry existed has no timestamp: it never expires until its next batch.
    old_format = ProducerEntry(0, (ProducerBatch(0, 0, 0, 0, 0),)).encode()[:-8]
    assert ProducerEntry.decode(old_format).last_timestamp_ms == -1
    assert table.expire(5_000 + DAY_MS - 1, DAY_MS) == set()
    assert table.expire(5_000 + DAY_MS, DAY_MS) == {1} and table.get(1) is None


def test_a_producer_with_an_open_transaction_does_not_expire():
    table = ProducerStateTable()
    from storage.batch import parse_header
    table.update([parse_header(build_batch([Record(b"k", b"v", 5_000)], producer_id=1, producer_epoch=0,
                                           base_sequence=0))])
    assert table.expire(5_000 + DAY_MS, DAY_MS, keep={1}) == set() and table.get(1) is not None
