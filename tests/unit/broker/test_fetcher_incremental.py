"""The follower's round re-derives only the partitions that changed (issue 16).

Goal: after a round whose answer carried data for one partition, the next round recomputes the
position of that partition only, not of every partition it follows from that leader; and a metadata
change (a partition moving to another leader, a new leader epoch) reaches the loop's partition set
without a rescan, so no round fetches at a stale epoch or keeps a partition it no longer follows from
that leader. Method: the real FetcherLoop of broker 2 against broker 1's real servicer over the
in-process harness, driven round by round with `run_once()` (which, unlike `partitions()`, does not
re-derive everything), with `position_of` counted.
"""

from __future__ import annotations

import pytest
from broker_harness import Cluster, FetcherLoop, InProcessStub, batch, run

import broker.fetcher
from cluster.records import PartitionChange, PartitionRecord, TopicRecord

TOPIC_M, TOPIC_M_ID = "m", b"m".ljust(16, b"\0")
MANY = 40


def _cluster() -> Cluster:
    c = Cluster()
    c.commit([TopicRecord(TOPIC_M, TOPIC_M_ID)]
             + [PartitionRecord(TOPIC_M_ID, i, (1, 2, 3), (1, 2, 3), 1) for i in range(MANY)])
    c.sync()
    return c


def _loop(c: Cluster) -> FetcherLoop:
    loop = FetcherLoop(c.nodes[2].manager, 2, lambda: c.image.brokers[2].broker_epoch, 1, "in-process")
    loop.stub = InProcessStub(c, 1)
    return loop


@pytest.mark.timeout(60)
def test_a_round_after_data_recomputes_only_the_partition_with_data(monkeypatch):
    async def body() -> None:
        c = _cluster()
        monkeypatch.setattr(broker.fetcher, "AUDIT_PER_ROUND", 0)
        derived: list[int] = []
        real_position_of = broker.fetcher.position_of

        def counting_position_of(p):
            derived.append(p.index)
            return real_position_of(p)

        monkeypatch.setattr(broker.fetcher, "position_of", counting_position_of)
        loop = _loop(c)
        try:
            for _ in range(3):  # truncation exchange, the full request opening the session, an idle round
                assert await loop.run_once() is None
            assert len(loop.view.positions) == MANY
            derived.clear()
            await c.nodes[1].manager.produce(TOPIC_M, 7, batch(2), 1, 1000)
            assert await loop.run_once() is None  # answered with the data of m-7
            assert c.nodes[2].manager.lookup(TOPIC_M, 7).log.log_end_offset == 2
            assert await loop.run_once() is None  # lists m-7's new position
            assert await loop.run_once() is None
            assert derived == [7], f"re-derived {derived} after data on m-7 alone"
            assert loop.session.held[(TOPIC_M_ID, 7)].fetch_offset == 2
        finally:
            await loop.channel.close(grace=None)
    run(body)


@pytest.mark.timeout(60)
def test_metadata_changes_reach_the_incremental_loop():
    async def body() -> None:
        c = _cluster()
        loop = _loop(c)
        leader_sessions = c.nodes[1].leader_side.sessions
        try:
            for _ in range(3):
                assert await loop.run_once() is None
            session = leader_sessions.by_follower[2]
            assert (TOPIC_M_ID, 3) in session.partitions

            # m-3 moves to leader 3: broker 2 stops fetching it from 1 (the session forgets it).
            c.commit([PartitionChange(TOPIC_M_ID, 3, leader=3)])
            c.sync()
            assert await loop.run_once() is None
            assert (TOPIC_M_ID, 3) not in loop.view.positions
            assert (TOPIC_M_ID, 3) not in leader_sessions.by_follower[2].partitions

            # m-3 comes back to leader 1 at a newer epoch: truncation first, then a fetch at that epoch.
            c.commit([PartitionChange(TOPIC_M_ID, 3, leader=1)])
            c.sync()
            epoch = c.image.partition(TOPIC_M_ID, 3).leader_epoch
            assert c.nodes[2].manager.lookup(TOPIC_M, 3).needs_truncation
            for _ in range(2):
                assert await loop.run_once() is None
            assert not c.nodes[2].manager.lookup(TOPIC_M, 3).needs_truncation
            assert loop.view.positions[(TOPIC_M_ID, 3)].current_leader_epoch == epoch
            held = leader_sessions.by_follower[2].partitions[(TOPIC_M_ID, 3)]
            assert held.position.current_leader_epoch == epoch

            # Data at the new epoch replicates and moves the leader's HW.
            await c.nodes[1].manager.produce(TOPIC_M, 3, batch(3), 1, 1000)
            for _ in range(2):
                assert await loop.run_once() is None
            assert c.nodes[2].manager.lookup(TOPIC_M, 3).log.log_end_offset == 3
        finally:
            await loop.channel.close(grace=None)
    run(body)
