"""Incremental replica fetch sessions (issue 16 item 1; KIP-227 between brokers).

Goal: a replica-fetch round costs O(partitions that changed): the request lists only partitions whose
position changed, the leader reads only those and the ones that changed on its side, the answer
carries only partitions with news; any mismatch resets the session. Method: the pure session rules
as tables, then the real FetcherLoop/LeaderSide/BrokerServicer over the in-process harness with 40
partitions, counting what each round lists, reads and answers.
"""

from __future__ import annotations

import asyncio

import pytest
from broker_harness import Cluster, FetcherLoop, InProcessStub, batch, run

from broker.fetch_session import NEW_SESSION_ID, FollowerSession, LeaderSessions, Position
from broker.replica_manager import LeaderSide
from brookpb import broker_pb2 as bpb
from cluster.errors import ErrorCode
from cluster.records import PartitionRecord, TopicRecord

A, B, C = (b"a" * 16, 0), (b"a" * 16, 1), (b"a" * 16, 2)
P0, P1 = Position(0, 1, -1), Position(5, 1, 1)


def opened(sessions: LeaderSessions, follower: int = 2, epoch: int = 10):
    update = sessions.update(follower, epoch, NEW_SESSION_ID, 0, [(A, P0), (B, P0)], [])
    assert update.error == ErrorCode.none and update.full
    return update.session


@pytest.mark.parametrize("case, session_id, broker_epoch, session_epoch, error", [
    ("the current session, next epoch", "current", 10, 1, ErrorCode.none),
    ("an unknown session id", 999, 10, 1, ErrorCode.fetch_session_id_not_found),
    ("another broker epoch (a restarted follower)", "current", 11, 1, ErrorCode.fetch_session_id_not_found),
    ("a repeated epoch", "current", 10, 0, ErrorCode.invalid_fetch_session_epoch),
    ("a skipped epoch", "current", 10, 2, ErrorCode.invalid_fetch_session_epoch),
])
def test_leader_accepts_only_the_current_session_at_the_next_epoch(case, session_id, broker_epoch, session_epoch,
                                                                    error):
    sessions = LeaderSessions()
    session = opened(sessions)
    sid = session.session_id if session_id == "current" else session_id
    update = sessions.update(2, broker_epoch, sid, session_epoch, [], [])
    assert update.error == error, case
    if error == ErrorCode.invalid_fetch_session_epoch:
        assert 2 not in sessions.by_follower, "a session out of step is dropped"


def test_leader_reads_listed_and_changed_partitions_only():
    sessions = LeaderSessions()
    session = opened(sessions)
    session.partitions[C] = session.partitions[A]  # (as if listed earlier)
    session.mark(B)
    session.mark((b"z" * 16, 0))  # not in the session: ignored
    update = sessions.update(2, 10, session.session_id, 1, [(A, P1)], [C])
    assert update.error == ErrorCode.none and not update.full
    assert update.to_read == (A, B)
    assert update.closed == (C,) and C not in session.partitions
    assert session.partitions[A].position == P1 and not session.changed


def test_new_session_replaces_the_old_one_and_unwatches_what_it_dropped():
    sessions = LeaderSessions()
    old = opened(sessions)
    update = sessions.update(2, 10, NEW_SESSION_ID, 0, [(A, P0)], [])
    assert update.session is not old and update.session.session_id != old.session_id
    assert update.closed == (B,) and update.to_read == (A,) and update.opened == (A,)
    assert sessions.update(2, 10, old.session_id, 1, [], []).error == ErrorCode.fetch_session_id_not_found


@pytest.mark.parametrize("sent, now, news", [
    ((-2, -2, False, False), (5, 0, False, False), True),   # never answered
    ((5, 0, False, False), (5, 0, False, False), False),   # nothing new
    ((5, 0, False, False), (6, 0, False, False), True),    # HW moved
    ((5, 0, False, False), (5, 3, False, False), True),    # log start moved
    ((5, 0, False, False), (5, 0, True, False), True),     # data
    ((5, 0, False, False), (5, 0, False, True), True),     # error or divergence
])
def test_answer_carries_only_partitions_with_news(sent, now, news):
    sessions = LeaderSessions()
    session = opened(sessions)
    if sent[0] != -2:
        session.news(A, *sent)
    assert session.news(A, *now) == news


@pytest.mark.parametrize("held, wanted, listed, forgotten", [
    ({A: P0, B: P0}, {A: P0, B: P0}, [], []),            # nothing moved: an empty request
    ({A: P0, B: P0}, {A: P1, B: P0}, [A], []),           # A appended
    ({A: P0, B: P0}, {A: P0}, [], [B]),                   # B no longer fetched (paused, moved)
    ({A: P0}, {A: P0, C: P0}, [C], []),                   # C newly followed
    ({A: P0}, {A: Position(0, 2, -1)}, [A], []),          # a new leader epoch
])
def test_follower_lists_only_what_the_leader_does_not_hold(held, wanted, listed, forgotten):
    f = FollowerSession(session_id=7, next_epoch=3, held=dict(held))
    assert f.request(wanted) == (7, 3, listed, forgotten)
    f.answered(7, wanted, listed, forgotten)
    assert f.held == wanted and f.next_epoch == 4
    # The O(changed) form gives the same request when told which keys changed (here: all of them).
    g = FollowerSession(session_id=7, next_epoch=3, held=dict(held))
    session_id, epoch, got_listed, got_forgotten = g.request_changed(wanted, set(held) | set(wanted))
    assert (session_id, epoch, sorted(got_listed), sorted(got_forgotten)) == (7, 3, sorted(listed), sorted(forgotten))
    assert g.request_changed(wanted, set()) == (7, 3, [], []), "an unchanged key is never listed"


def test_follower_without_a_session_sends_everything_and_reset_starts_over():
    f = FollowerSession()
    assert f.request({A: P0, B: P1}) == (NEW_SESSION_ID, 0, [A, B], [])
    f.answered(42, {A: P0, B: P1}, [A, B], [])
    assert (f.session_id, f.next_epoch, f.held) == (42, 1, {A: P0, B: P1})
    f.reset()
    assert f.request({A: P0}) == (NEW_SESSION_ID, 0, [A], [])


# -- the real loop and leader over the in-process harness -------------------------------------------

MANY = 40
TOPIC_M, TOPIC_M_ID = "m", b"m".ljust(16, b"\0")


class CountingStub(InProcessStub):
    def __init__(self, cluster, leader_id):
        super().__init__(cluster, leader_id)
        self.rounds: list[tuple[int, int]] = []  # (partitions listed, partitions answered)

    async def ReplicaFetch(self, request, timeout=None):
        reply = await super().ReplicaFetch(request, timeout)
        self.rounds.append((len(request.partitions), len(reply.partitions)))
        return reply


def test_an_idle_session_lists_and_reads_only_what_changed(monkeypatch):
    async def body() -> None:
        c = Cluster()
        c.commit([TopicRecord(TOPIC_M, TOPIC_M_ID)]
                 + [PartitionRecord(TOPIC_M_ID, i, (1, 2), (1, 2), 1) for i in range(MANY)])
        c.sync()
        reads: list[tuple[bytes, int]] = []
        real_read = LeaderSide.read_for_follower

        def counting_read(self, replica_id, item, budget, broker_epoch=-1):
            reads.append((item.topic_id, item.partition))
            return real_read(self, replica_id, item, budget, broker_epoch)

        monkeypatch.setattr(LeaderSide, "read_for_follower", counting_read)
        follower = c.nodes[2]
        loop = FetcherLoop(follower.manager, 2, lambda: c.image.brokers[2].broker_epoch, 1, "in-process")
        stub = CountingStub(c, 1)
        loop.stub = stub
        try:
            for _ in range(3):  # truncation exchange, then the full request opening the session
                await loop.run_once(loop.partitions())
            assert stub.rounds[0] == (MANY, MANY), "a new session is full both ways"
            reads.clear()
            await loop.run_once(loop.partitions())
            assert stub.rounds[-1] == (0, 0) and reads == [], "an idle round lists, reads and answers nothing"

            await c.nodes[1].manager.produce(TOPIC_M, 7, batch(2), 1, 1000)
            reads.clear()
            await loop.run_once(loop.partitions())
            assert stub.rounds[-1] == (0, 1) and reads == [(TOPIC_M_ID, 7)], "only the partition with data"
            assert follower.manager.lookup(TOPIC_M, 7).log.log_end_offset == 2
            reads.clear()
            await loop.run_once(loop.partitions())
            assert stub.rounds[-1] == (1, 1), "the follower's new position, answered with the HW it moved"
            assert reads == [(TOPIC_M_ID, 7)]
            assert c.nodes[1].manager.lookup(TOPIC_M, 7).leader.high_watermark == 2
            assert follower.manager.lookup(TOPIC_M, 7).log.high_watermark == 2
        finally:
            await loop.channel.close(grace=None)
    run(body)


def test_a_session_from_a_previous_broker_epoch_is_not_found():
    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2), leader=1)
        c.sync()
        epoch = c.image.brokers[2].broker_epoch
        servicer = c.nodes[1].servicer
        request = bpb.ReplicaFetchRequest(replica_id=2, broker_epoch=epoch, max_wait_ms=0, session_id=0,
                                          session_epoch=0)
        first = await servicer.ReplicaFetch(request, None)
        assert first.error_code == ErrorCode.none and first.session_id > 0
        again = bpb.ReplicaFetchRequest(replica_id=2, broker_epoch=epoch, max_wait_ms=0,
                                        session_id=first.session_id, session_epoch=1)
        assert (await servicer.ReplicaFetch(again, None)).error_code == ErrorCode.none
        stale = bpb.ReplicaFetchRequest(replica_id=2, broker_epoch=epoch, max_wait_ms=0,
                                        session_id=first.session_id, session_epoch=1)
        reply = await servicer.ReplicaFetch(stale, None)
        assert reply.error_code == ErrorCode.invalid_fetch_session_epoch
        await asyncio.sleep(0)
    run(body)


def test_isr_maintenance_skips_quiescent_partitions_and_still_shrinks_a_lagging_follower():
    """Issue 16 item 3: the ISR tick visits partitions that may need a change, not every led one."""
    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)
        c.sync()
        leader = c.nodes[1].manager
        key = (c.nodes[1].partition.topic_id, 0)
        await c.produce(1, batch(3))
        await c.rounds(2, 3)
        await c.rounds(3, 3)
        leader.isr_maintenance()
        assert key not in leader.isr_watch, "everyone caught up: nothing to check until the next change"
        await c.produce(1, batch(3))
        assert key in leader.isr_watch
        await c.rounds(2, 2)  # broker 3 stops fetching
        c.clock.advance(31_000)
        leader.isr_maintenance()
        assert c.nodes[1].alter_requests and c.nodes[1].alter_requests[-1][1] == (1, 2)
    run(body)


class ParkingStub(InProcessStub):
    """Keeps the follower's max_wait_ms, so the leader's long poll really parks."""

    async def ReplicaFetch(self, request, timeout=None):
        wire = bpb.ReplicaFetchRequest.FromString(request.SerializeToString())
        reply = await self.cluster.nodes[self.leader_id].servicer.ReplicaFetch(wire, None)
        return bpb.ReplicaFetchResponse.FromString(reply.SerializeToString())


def test_a_hw_move_alone_does_not_end_a_parked_follower_poll_and_the_next_answer_carries_it(monkeypatch):
    """Issue 12: Kafka's rule for a follower's delayed fetch (it completes on data, not on a HW change),
    so an acks=all produce costs one fetch round per follower, not two. The parked poll ends with the
    next data (or its deadline) and that answer carries the HW."""
    import broker.fetcher

    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)
        c.sync()
        for f in (2, 3):
            await c.rounds(f, 3)  # truncation exchange, the session opens, an idle round
        produce = asyncio.ensure_future(c.produce(1, batch(2), acks=-1))
        await asyncio.sleep(0)
        await c.round(2)
        await c.round(3)
        assert c.nodes[2].log.log_end_offset == c.nodes[3].log.log_end_offset == 2
        # Follower 2 fetches from its new position and parks: follower 3 has not confirmed yet.
        monkeypatch.setattr(broker.fetcher, "FETCH_WAIT_MS", 30_000)
        loop2 = c.loops[(2, 1)]
        loop2.stub = ParkingStub(c, 1)
        parked = asyncio.ensure_future(loop2.run_once(loop2.partitions()))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not parked.done()
        await c.round(3)  # follower 3 confirms: the HW moves to 2 and the produce is acknowledged
        for _ in range(20):
            await asyncio.sleep(0)
        assert produce.done() and produce.result().error == ErrorCode.none
        assert c.nodes[1].partition.leader.high_watermark == 2
        assert not parked.done(), "a HW move alone ended the follower's parked poll"
        assert c.nodes[2].log.high_watermark == 0
        await c.produce(1, batch(1), acks=1)  # data ends the poll; the answer carries the HW
        assert await asyncio.wait_for(parked, 10) is None
        assert c.nodes[2].log.log_end_offset == 3 and c.nodes[2].log.high_watermark == 2
    run(body)
