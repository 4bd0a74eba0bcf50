"""DeleteRecords (Kafka API 21) on real ReplicaManagers over MemoryLog: the leader moves its log
start, followers follow it from their fetch answers and report theirs, and the leader answers only
when every ISR follower has reached the offset (Kafka's low watermark)."""

from __future__ import annotations

import asyncio

from broker_harness import TOPIC, Cluster, batch, run

from broker.api import DeleteRecordsResult
from cluster.errors import ErrorCode


async def _loaded(count: int = 10) -> Cluster:
    c = Cluster()
    c.create(replicas=(1, 2, 3), leader=1)
    c.sync()
    await c.produce(1, batch(count))
    for follower in (2, 3):
        await c.rounds(follower, 3)
    assert c.nodes[1].partition.leader is not None and c.nodes[1].partition.leader.high_watermark == count
    return c


def test_delete_records_waits_for_every_isr_follower_and_moves_their_log_start():
    async def body() -> None:
        c = await _loaded()
        leader = c.nodes[1].manager
        task = asyncio.ensure_future(leader.delete_records(TOPIC, 0, 6, 10_000, poll_s=0.001))
        await asyncio.sleep(0.01)
        assert not task.done(), "answered before the followers moved their log start"
        assert c.nodes[1].log.log_start_offset == 6
        await c.rounds(2, 2)
        await asyncio.sleep(0.01)
        assert c.nodes[2].log.log_start_offset == 6
        assert not task.done(), "answered before follower 3 moved its log start"
        await c.rounds(3, 2)
        assert await asyncio.wait_for(task, 5) == DeleteRecordsResult(ErrorCode.none, 6)
        assert [c.nodes[b].log.log_start_offset for b in (1, 2, 3)] == [6, 6, 6]
    run(body)


def test_delete_records_times_out_with_the_low_watermark_reached():
    async def body() -> None:
        c = await _loaded()
        task = asyncio.ensure_future(c.nodes[1].manager.delete_records(TOPIC, 0, 4, 500, poll_s=0.001))
        await asyncio.sleep(0.01)
        await c.rounds(2, 2)  # follower 3 never fetches
        await asyncio.sleep(0.01)
        c.clock.advance(501)
        result = await asyncio.wait_for(task, 5)
        assert (result.error, result.low_watermark) == (ErrorCode.request_timed_out, 0)
        assert c.nodes[2].log.log_start_offset == 4
    run(body)


def test_delete_records_to_the_high_watermark_and_out_of_range():
    async def body() -> None:
        c = await _loaded()
        leader = c.nodes[1].manager
        bad = await leader.delete_records(TOPIC, 0, 11, 0)
        assert bad.error == ErrorCode.offset_out_of_range
        task = asyncio.ensure_future(leader.delete_records(TOPIC, 0, -1, 10_000, poll_s=0.001))
        await asyncio.sleep(0.01)
        await c.rounds(2, 2)
        await c.rounds(3, 2)
        assert await asyncio.wait_for(task, 5) == DeleteRecordsResult(ErrorCode.none, 10)
        follower = await c.nodes[2].manager.delete_records(TOPIC, 0, 1, 0)
        assert follower.error == ErrorCode.not_leader_or_follower
    run(body)


def test_a_follower_never_moves_its_log_start_past_its_own_high_watermark():
    async def body() -> None:
        c = await _loaded()
        await c.produce(1, batch(5))  # 10..14, not yet on the followers
        await c.nodes[1].manager.delete_records(TOPIC, 0, 8, 0)
        await c.round(2)  # one round: gets 10..14 and the log start 8, HW still 10
        log2 = c.nodes[2].log
        assert log2.log_start_offset <= log2.high_watermark
        assert log2.log_start_offset == 8
    run(body)
