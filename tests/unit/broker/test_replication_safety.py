"""Regression tests for the acknowledged-write loss paths of issue 10, at unit level.

Goal: each test replays one loss scenario message by message with the real ReplicaManager,
LeaderSide, BrokerServicer and FetcherLoop over MemoryLog (broker_harness), and checks the safety
property the scenario used to break. Method: the harness decides exactly which fetch or metadata
change happens when, so every interleaving here is deterministic.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from broker_harness import TOPIC, TOPIC_ID, Cluster, batch, batch_summary, run

from broker.core import Broker
from cluster.errors import ErrorCode
from cluster.records import PartitionChange


def _assert_prefix_agrees(cluster: Cluster, leader_id: int, follower_id: int) -> None:
    """The follower holds exactly the leader's batches below the leader's HW (what it has of them)."""
    leader = cluster.nodes[leader_id]
    follower = cluster.nodes[follower_id]
    hw = leader.partition.leader.high_watermark
    upto = min(hw, follower.log.log_end_offset)
    assert batch_summary(follower.log, upto) == batch_summary(leader.log, upto), (
        f"broker {follower_id} diverges from leader {leader_id} below HW {hw}")


async def _three_replicas_hold_0_to_9(c: Cluster) -> None:
    c.create(replicas=(1, 2, 3), leader=1)
    c.sync()
    await c.produce(1, batch(10, b"a"))
    for follower in (2, 3):
        await c.rounds(follower, 3)  # truncation exchange, fetch 0-9, report LEO 10
    assert c.nodes[1].partition.leader.high_watermark == 10


# -- fix 1: KAFKA-7415 and KIP-320 ---------------------------------------------------------------

def test_new_leader_records_its_epoch_so_the_old_leaders_tail_is_truncated():
    """B leads at E+1 and appends 10-14 that C never fetched; C is elected at E+2. B must cut 10-14
    in its OffsetsForLeaderEpoch exchange with C: C has to know that its own epoch starts at 10."""
    async def body() -> None:
        c = Cluster()
        await _three_replicas_hold_0_to_9(c)
        c.change(leader=2, isr=(2, 3))
        c.sync(2, 3)
        await c.produce(2, batch(5, b"b-unreplicated"))
        c.change(leader=3, isr=(2, 3))
        c.sync(2, 3)
        assert c.nodes[3].log.epoch_entries()[-1].epoch == c.registration.leader_epoch
        await c.round(2)  # B's truncation exchange with C
        assert not c.nodes[2].partition.needs_truncation
        assert c.nodes[2].log.log_end_offset == 10, "B kept records C never had"
    run(body)


def test_acknowledged_write_is_identical_on_the_isr_after_the_leader_change():
    """The whole KAFKA-7415 scenario to the end: C's client write at 10-14 is acknowledged only once
    B holds C's records there, never B's own stale 10-14."""
    async def body() -> None:
        c = Cluster()
        await _three_replicas_hold_0_to_9(c)
        c.change(leader=2, isr=(2, 3))
        c.sync(2, 3)
        await c.produce(2, batch(5, b"b-unreplicated"))
        c.change(leader=3, isr=(2, 3))
        c.sync(2, 3)
        await c.round(2)
        await c.produce(3, batch(5, b"c-client"))
        await c.rounds(2, 4)
        assert c.nodes[3].partition.leader.high_watermark == 15
        _assert_prefix_agrees(c, 3, 2)
    run(body)


def test_fetch_with_a_diverging_last_epoch_is_answered_with_the_divergence():
    """KIP-320: even when a follower skipped truncation, its fetch carries its last fetched epoch and
    the leader answers the diverging epoch instead of appending on top of a different history."""
    async def body() -> None:
        c = Cluster()
        await _three_replicas_hold_0_to_9(c)
        c.change(leader=2, isr=(2, 3))
        c.sync(2, 3)
        await c.produce(2, batch(5, b"b-unreplicated"))
        c.change(leader=3, isr=(2, 3))
        c.sync(2, 3)
        await c.produce(3, batch(5, b"c-client"))
        c.nodes[2].partition.needs_truncation = False  # as if the epoch exchange had been skipped
        await c.rounds(2, 6)
        assert c.nodes[3].partition.leader.high_watermark == 15
        _assert_prefix_agrees(c, 3, 2)
    run(body)


# -- fix 2: KIP-279 ------------------------------------------------------------------------------

async def _diverged_histories(c: Cluster) -> None:
    """Leader 1 holds epochs {0@0, 2@5, 4@15}; follower 2 holds {0@0, 3@10}; both LEO 20."""
    c.create(replicas=(1, 2), leader=1)
    for leader in (2, 1, 2, 1, 2, 1):  # leader epoch 6, led by broker 1
        c.change(leader=leader, isr=(1, 2))
    leader_log = c.nodes[1].logs.get_or_create(b"t".ljust(16, b"\0"), TOPIC, 0, None)
    leader_log.append_as_leader(batch(5, b"common"), 0, 0)
    leader_log.append_as_leader(batch(5, b"l2"), 2, 0)
    leader_log.append_as_leader(batch(5, b"l2"), 2, 0)
    leader_log.append_as_leader(batch(5, b"l4"), 4, 0)
    follower_log = c.nodes[2].logs.get_or_create(b"t".ljust(16, b"\0"), TOPIC, 0, None)
    follower_log.append_as_leader(batch(5, b"common"), 0, 0)
    follower_log.append_as_leader(batch(5, b"f0"), 0, 0)
    follower_log.append_as_leader(batch(10, b"f3"), 3, 0)
    assert [(e.epoch, e.start_offset) for e in follower_log.epoch_entries()] == [(0, 0), (3, 10)]
    c.sync()


def test_truncation_repeats_until_the_epochs_agree():
    async def body() -> None:
        c = Cluster(broker_ids=(1, 2))
        await _diverged_histories(c)
        for _ in range(5):
            if not c.nodes[2].partition.needs_truncation:
                break
            await c.round(2)
        assert c.nodes[2].log.log_end_offset == 5, "the follower kept epoch-0 records where the leader has epoch 2"
    run(body)


def test_follower_ends_with_the_leaders_log_after_multi_round_truncation():
    async def body() -> None:
        c = Cluster(broker_ids=(1, 2))
        await _diverged_histories(c)
        await c.rounds(2, 12)
        assert c.nodes[2].log.log_end_offset == c.nodes[1].log.log_end_offset
        assert batch_summary(c.nodes[2].log, 20) == batch_summary(c.nodes[1].log, 20)
    run(body)


# -- fix 3: HW over the maximal ISR ----------------------------------------------------------------

def test_high_watermark_waits_for_a_replica_whose_isr_addition_is_in_flight():
    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1, isr=(1, 2))
        c.sync()
        await c.produce(1, batch(10))
        await c.rounds(2, 3)
        await c.rounds(3, 3)  # broker 3 reaches the HW (10): the leader asks to add it
        leader = c.nodes[1]
        leader.manager.isr_maintenance()
        assert leader.alter_requests and leader.alter_requests[-1][1] == (1, 2, 3)
        await c.produce(1, batch(10))
        await c.rounds(2, 2)  # broker 2 has 0-19; broker 3 still 0-9
        assert leader.partition.leader.high_watermark == 10, (
            "the HW passed a replica the controller may be committing into the ISR")
        c.commit_alter_partition(1)
        await c.rounds(3, 2)
        assert leader.partition.leader.high_watermark == 20
    run(body)


class _HeldController:
    """The controller end of `ControllerSession`'s AlterPartition calls: each call waits until the
    test answers it, so an answer can arrive after newer metadata and after a newer request."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, asyncio.Future]] = []

    async def call(self, role: str, method: str, request: Any, timeout: float) -> Any:
        assert method == "AlterPartition"
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.calls.append((request, future))
        return await future

    def answer(self, index: int, reg: Any) -> None:
        from brookpb import controller_pb2 as cpb
        request, future = self.calls[index]
        reply = cpb.AlterPartitionResponse()
        item = request.items[0]
        reply.results.add(topic_id=item.topic_id, partition=item.partition, error_code=0, isr=reg.isr,
                          leader=reg.leader, leader_epoch=reg.leader_epoch, partition_epoch=reg.partition_epoch)
        future.set_result(reply)

    def answer_error(self, index: int, code: ErrorCode) -> None:
        """A top-level error and no per-partition result: the controller's quorum write failed."""
        from brookpb import controller_pb2 as cpb
        _, future = self.calls[index]
        future.set_result(cpb.AlterPartitionResponse(error_code=int(code), error_message="quorum write timed out"))


async def _leader_with_broker_3_caught_up_outside_the_isr(c: Cluster, tmp_path: Any) -> tuple[Any, _HeldController]:
    """Leader 1 with a ControllerSession over a held controller; broker 3 shrunk out (the shrink
    committed and answered), then caught up to the HW of 20: the next ISR check proposes adding it."""
    from broker.controller_session import ControllerSession

    c.create(replicas=(1, 2, 3), leader=1)
    c.sync()
    leader = c.nodes[1]
    held = _HeldController()
    session = ControllerSession(SimpleNamespace(node_id=1, log_dirs=[str(tmp_path)]), held,  # type: ignore[arg-type]
                                leader.manager)
    leader.manager.alter_partition = session.send_alter_partition
    await c.produce(1, batch(10))
    await c.rounds(2, 3)
    await c.rounds(3, 3)
    c.clock.advance(31_000)
    await c.produce(1, batch(10))
    await c.rounds(2, 2)
    leader.manager.isr_maintenance()
    await asyncio.sleep(0)
    c.change(isr=(1, 2))
    held.answer(0, c.registration)
    c.sync()
    await asyncio.sleep(0)
    await c.rounds(3, 2)
    state = leader.partition.leader
    assert state.isr == (1, 2) and state.pending_isr is None and state.high_watermark == 20
    return state, held


def test_an_alter_partition_settled_before_it_is_sent_is_not_sent(tmp_path):
    """The ISR check sets the pending ISR and hands the request to a task; if newer metadata (a
    higher partition epoch that leaves the ISR alone, e.g. a reassignment step) is applied before
    the task runs, the pending addition is cleared and the HW stops counting the joining broker.
    Sending the addition then, on top of the newer partition epoch, lets the controller commit a
    member the HW has passed (review of stop 20)."""
    async def body() -> None:
        c = Cluster()
        state, held = await _leader_with_broker_3_caught_up_outside_the_isr(c, tmp_path)
        c.nodes[1].manager.isr_maintenance()  # proposes (1, 2, 3); the task has not run yet
        assert state.pending_isr == (1, 2, 3)
        c.commit([PartitionChange(TOPIC_ID, 0, isr=(1, 2), leader=-2)])  # a newer partition epoch
        c.sync(1)
        assert state.pending_isr is None
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        sent = [tuple(request.items[0].new_isr) for request, _ in held.calls[1:]]
        assert sent == [], f"an addition the HW no longer counts was sent: {sent}"
    run(body)


def test_an_unanswered_alter_partition_keeps_the_pending_addition_and_is_sent_again(tmp_path, monkeypatch):
    """A top-level error (the controller's quorum write timed out: it may still commit) answers no
    partition. Clearing the pending addition then let the HW pass the joining broker while the
    controller could still commit it; Kafka keeps the pending state and re-sends (review of stop 20)."""
    import broker.controller_session

    monkeypatch.setattr(broker.controller_session, "ALTER_PARTITION_RETRY_S", 0)

    async def body() -> None:
        c = Cluster()
        state, held = await _leader_with_broker_3_caught_up_outside_the_isr(c, tmp_path)
        c.nodes[1].manager.isr_maintenance()
        await asyncio.sleep(0)
        assert len(held.calls) == 2 and tuple(held.calls[1][0].items[0].new_isr) == (1, 2, 3)
        held.answer_error(1, ErrorCode.request_timed_out)
        for _ in range(4):
            await asyncio.sleep(0)
        assert state.pending_isr == (1, 2, 3), "an unanswered AlterPartition dropped the pending addition"
        await c.produce(1, batch(10))
        await c.rounds(2, 2)
        assert state.high_watermark == 20, "the HW passed broker 3 while its addition may still commit"
        assert len(held.calls) == 3 and tuple(held.calls[2][0].items[0].new_isr) == (1, 2, 3), "not sent again"
        c.change(isr=(1, 2, 3))
        held.answer(2, c.registration)
        c.sync()
        await c.rounds(3, 2)
        assert state.isr == (1, 2, 3) and state.pending_isr is None and state.high_watermark == 30
    run(body)


def test_a_late_answer_to_an_older_alter_partition_keeps_the_pending_addition(tmp_path):
    """Simulator seed 29423 (found at 100,000 seeds): the leader's AlterPartition A (a shrink) is
    committed and the leader learns it from metadata; it then asks to add broker 3 back (B); A's
    answer, delayed in the network, arrives while B is in flight. Acting on it cleared B's pending
    (maximal) ISR, the HW passed broker 3's LEO, and B committed: broker 3 in the ISR without an
    acknowledged record, electable. Kafka ignores an answer whose proposed state is not the one in
    flight (Partition.handleAlterPartitionUpdate)."""
    from broker.controller_session import ControllerSession

    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)
        c.sync()
        leader = c.nodes[1]
        held = _HeldController()
        session = ControllerSession(SimpleNamespace(node_id=1, log_dirs=[str(tmp_path)]), held,  # type: ignore[arg-type]
                                    leader.manager)
        leader.manager.alter_partition = session.send_alter_partition
        await c.produce(1, batch(10))
        await c.rounds(2, 3)
        await c.rounds(3, 3)
        state = leader.partition.leader
        assert state.high_watermark == 10
        # A: broker 3 stops fetching past replica.lag.time.max.ms and is shrunk out.
        c.clock.advance(31_000)
        await c.produce(1, batch(10))
        await c.rounds(2, 2)
        leader.manager.isr_maintenance()
        await asyncio.sleep(0)
        assert len(held.calls) == 1 and tuple(held.calls[0][0].items[0].new_isr) == (1, 2)
        c.change(isr=(1, 2))  # the controller commits A; the leader learns it from metadata first
        after_a = c.registration
        c.sync()
        # B: broker 3 catches up to the HW and the leader asks to add it back.
        await c.rounds(3, 2)
        assert state.high_watermark == 20 and c.nodes[3].log.log_end_offset == 20
        leader.manager.isr_maintenance()
        await asyncio.sleep(0)
        assert len(held.calls) == 2 and tuple(held.calls[1][0].items[0].new_isr) == (1, 2, 3)
        # A's answer arrives now, late.
        held.answer(0, after_a)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert state.pending_isr == (1, 2, 3), "a late answer to an older AlterPartition dropped the one in flight"
        await c.produce(1, batch(10))
        await c.rounds(2, 2)
        assert state.high_watermark == 20, (
            "the HW passed broker 3's LEO while the controller may be committing broker 3 into the ISR")
        c.change(isr=(1, 2, 3))  # B commits
        held.answer(1, c.registration)
        c.sync()
        await c.rounds(3, 2)
        assert state.high_watermark == 30 and state.isr == (1, 2, 3) and state.pending_isr is None
    run(body)


# -- fix 4: KAFKA-7128 and KIP-207 -----------------------------------------------------------------

async def _new_leader_with_lagging_hw(c: Cluster) -> None:
    """Broker 1 leads a new epoch with LEO 10 but a checkpointed HW of 5; broker 3 holds 0-4."""
    c.create(replicas=(1, 2, 3), leader=2, isr=(1, 2))
    c.change(leader=1, isr=(1, 2))
    for broker, tags in ((1, (b"a", b"b")), (3, (b"a",))):
        log = c.nodes[broker].logs.get_or_create(b"t".ljust(16, b"\0"), TOPIC, 0, None)
        for tag in tags:
            log.append_as_leader(batch(5, tag), 0, 0)
    c.nodes[1].log.set_high_watermark(5)
    c.sync()


def test_follower_joins_the_isr_only_past_the_leaders_epoch_start():
    async def body() -> None:
        c = Cluster()
        await _new_leader_with_lagging_hw(c)
        leader = c.nodes[1]
        assert leader.partition.leader.high_watermark == 5
        await c.rounds(3, 1)  # truncation exchange: nothing to cut
        await c.rounds(3, 1)  # fetch at 5: broker 3 is at the HW, below the epoch start (10)
        leader.manager.isr_maintenance()
        assert not any(3 in isr for _, isr in leader.alter_requests), (
            "broker 3 joined the ISR without records the previous leader may have acknowledged")
        await c.rounds(3, 1)  # fetch at 10: now past the epoch start
        leader.manager.isr_maintenance()
        assert leader.alter_requests and leader.alter_requests[-1][1] == (1, 2, 3)
    run(body)


def test_new_leader_answers_offset_not_available_until_its_hw_reaches_its_epoch_start():
    async def body() -> None:
        c = Cluster()
        await _new_leader_with_lagging_hw(c)
        broker = SimpleNamespace(replicas=c.nodes[1].manager)
        latest = Broker.list_offsets(broker, TOPIC, 0, -1)
        assert latest.error == ErrorCode.offset_not_available
        await c.rounds(2, 3)  # broker 2 (in the ISR) catches up: the HW reaches 10
        assert c.nodes[1].partition.leader.high_watermark == 10
        latest = Broker.list_offsets(broker, TOPIC, 0, -1)
        assert (latest.error, latest.offset) == (ErrorCode.none, 10)
    run(body)


# -- fix 6: idempotent producer ------------------------------------------------------------------

def _producer_batch(first_sequence: int, count: int = 1) -> bytes:
    return batch(count, b"p%d-" % first_sequence, producer_id=4242, producer_epoch=0, base_sequence=first_sequence)


def test_multi_batch_request_is_checked_batch_after_batch():
    """Kafka validates each batch of a request against the state left by the batches before it."""
    async def body() -> None:
        c = Cluster(broker_ids=(1,), min_insync=1)
        c.create(replicas=(1,), leader=1)
        c.sync()
        first = await c.produce(1, _producer_batch(0, 5))
        assert first.error == ErrorCode.none
        both = await c.produce(1, _producer_batch(5, 2) + _producer_batch(7, 3))
        assert (both.error, both.base_offset) == (ErrorCode.none, 5)
        gap = await c.produce(1, _producer_batch(10) + _producer_batch(12))
        assert gap.error == ErrorCode.out_of_order_sequence_number
        assert c.nodes[1].log.log_end_offset == 10, "a rejected request must append nothing"
    run(body)


# -- fix 5: KIP-903 broker epochs ------------------------------------------------------------------

def test_isr_addition_from_a_previous_incarnations_progress_is_refused():
    """Broker 3 fetched up to the HW, then restarted (new broker epoch, maybe an empty log). Before
    its new incarnation fetches, the leader still remembers the old progress and asks to add it; the
    request names the old broker epoch, and the controller refuses it."""
    from cluster.records import RegisterBroker, UnfenceBroker
    from controller.replication import AlterPartitionItem, alter_partition

    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1, isr=(1, 2))
        c.sync()
        await c.produce(1, batch(10))
        await c.rounds(2, 3)
        await c.rounds(3, 3)
        old_epoch = c.image.brokers[3].broker_epoch
        c.commit([RegisterBroker(3, c.image.offset + 1, "inc-3-restarted", "127.0.0.1", 9003, 9103)])
        c.commit([UnfenceBroker(3, c.image.brokers[3].broker_epoch)])
        assert c.image.brokers[3].broker_epoch != old_epoch
        c.sync(1, 2)
        leader = c.nodes[1]
        leader.manager.isr_maintenance()
        p, isr = leader.alter_requests[-1]
        epochs = p.leader.broker_epochs(isr)
        assert isr == (1, 2, 3) and epochs[2] == old_epoch
        reg = c.registration
        _, outcomes = alter_partition(c.image, 1, c.image.brokers[1].broker_epoch,
                                      [AlterPartitionItem(p.topic_id, 0, reg.leader_epoch, reg.partition_epoch,
                                                          isr, epochs)])
        assert outcomes[0].error == ErrorCode.ineligible_replica
    run(body)


def test_acks_all_needs_min_insync_replicas():
    async def body() -> None:
        c = Cluster(min_insync=2)
        c.create(replicas=(1, 2, 3), leader=1, isr=(1,))
        c.sync()
        result = await c.produce(1, batch(1), acks=-1)
        assert result.error == ErrorCode.not_enough_replicas
        assert c.nodes[1].log.log_end_offset == 0
        accepted = await c.produce(1, batch(1), acks=1)
        assert accepted.error == ErrorCode.none
    run(body)
