"""A partition a follower starts following is fetched within one round trip (issue 16, item 2).

Goal: a follower whose long poll is parked on its idle partitions does not make a new partition wait
for that poll to end. Method: the real FetcherManager/FetcherLoop of two followers reach the leader's
real servicer in-process with the long poll kept (FETCH_WAIT_MS raised to 30 s, so waiting it out is
unambiguous); with both polls parked on an idle partition, a new RF=3 topic is created and an
acks=all produce of a non-idempotent batch to it must be acknowledged well before any poll could
have ended by itself (the bound is half the wait).
"""

from __future__ import annotations

import asyncio

import pytest
from broker_harness import Cluster, FetcherLoop, InProcessStub, batch, run

import broker.fetcher
from brookpb import broker_pb2 as bpb
from cluster.errors import ErrorCode
from cluster.records import PartitionRecord, TopicRecord

LONG_POLL_MS = 30_000
NEW_TOPIC, NEW_TOPIC_ID = "u", b"u".ljust(16, b"\0")


class LongPollStub(InProcessStub):
    """InProcessStub that keeps the follower's max_wait_ms (the leader really parks the poll)."""

    async def ReplicaFetch(self, request, timeout=None):
        wire = bpb.ReplicaFetchRequest.FromString(request.SerializeToString())
        reply = await self.cluster.nodes[self.leader_id].servicer.ReplicaFetch(wire, None)
        return bpb.ReplicaFetchResponse.FromString(reply.SerializeToString())


@pytest.mark.timeout(120)
def test_new_partition_is_fetched_without_waiting_out_the_long_poll(monkeypatch):
    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)  # the idle partition t-0

        class Loop(FetcherLoop):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.stub = LongPollStub(c, self.leader_id)

        monkeypatch.setattr(broker.fetcher, "FetcherLoop", Loop)
        monkeypatch.setattr(broker.fetcher, "FETCH_WAIT_MS", LONG_POLL_MS)
        managers = {}
        for b in (2, 3):
            fm = broker.fetcher.FetcherManager(c.nodes[b].manager, b, lambda b=b: c.image.brokers[b].broker_epoch)
            c.nodes[b].manager.fetcher_changed = fm.reconcile
            managers[b] = fm
        try:
            c.sync()
            # Both followers settle on the idle partition: their long polls are parked at the leader.
            for _ in range(200):
                if all(getattr(fm.loops.get(1), "in_rpc", False) for fm in managers.values()):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)

            c.commit([TopicRecord(NEW_TOPIC, NEW_TOPIC_ID), PartitionRecord(NEW_TOPIC_ID, 0, (1, 2, 3), (1, 2, 3), 1)])
            c.sync()
            produce = asyncio.ensure_future(c.nodes[1].manager.produce(NEW_TOPIC, 0, batch(3), -1, 60_000))
            done, _ = await asyncio.wait([produce], timeout=LONG_POLL_MS / 2000)
            assert produce in done, "acks=all waited for the followers' long poll on the idle partition"
            assert produce.result().error == ErrorCode.none
        finally:
            for fm in managers.values():
                await fm.stop()
    run(body)


@pytest.mark.timeout(120)
def test_an_append_to_an_idle_partition_ends_the_quiet_rounds(monkeypatch):
    """After empty rounds the follower reuses its partition list (no walk of every partition); data
    on one of them must still be fetched and acknowledged (polls of 300 ms, so rounds go quiet)."""
    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)

        class CountingLongPollStub(LongPollStub):
            calls = 0

            async def ReplicaFetch(self, request, timeout=None):
                CountingLongPollStub.calls += 1
                return await super().ReplicaFetch(request, timeout)

        walks = []

        class Loop(FetcherLoop):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.stub = CountingLongPollStub(c, self.leader_id)

            def partitions(self):
                walks.append(1)
                return super().partitions()

        monkeypatch.setattr(broker.fetcher, "FetcherLoop", Loop)
        monkeypatch.setattr(broker.fetcher, "FETCH_WAIT_MS", 300)
        managers = {}
        for b in (2, 3):
            fm = broker.fetcher.FetcherManager(c.nodes[b].manager, b, lambda b=b: c.image.brokers[b].broker_epoch)
            c.nodes[b].manager.fetcher_changed = fm.reconcile
            managers[b] = fm
        try:
            c.sync()
            quiet = False
            for _ in range(20):  # wait for rounds that do not walk the partitions
                calls, walked = CountingLongPollStub.calls, len(walks)
                for _ in range(150):
                    c.clock.advance(50)  # the leader's poll deadline is on the harness clock
                    await asyncio.sleep(0.01)
                if CountingLongPollStub.calls >= calls + 4 and len(walks) == walked:
                    quiet = True
                    break
            assert quiet, "idle rounds kept walking the followed partitions"
            for _ in range(2):  # twice: the second append comes after a non-quiet round
                produce = asyncio.ensure_future(c.nodes[1].manager.produce("t", 0, batch(3), -1, 60_000))
                result = await asyncio.wait_for(produce, 60)
                assert result.error == ErrorCode.none
        finally:
            for fm in managers.values():
                await fm.stop()
    run(body)
