"""The safety-net tripwire (broker/fetcher.py): a divergence after a finished truncation is counted.

Goal: once a follower has finished truncating against leader L at leader epoch E, L at E can never
answer its fetch with a diverging epoch (KIP-320); when one comes anyway, the follower counts it
(per partition and per broker), logs one error line, and still truncates. It must not fire when no
truncation finished against that leader and epoch. Method: a table of answer sequences applied to a
real Partition over MemoryLog with the pure `apply_epoch_answer` / `apply_fetch_answer`; then the
real FetcherLoop and LeaderSide of the unit harness (broker_harness) with the KIP-279 scenario
{0@0, 2@5, 4@15} leader vs {0@0, 3@10} follower, once with the normal code (0) and once with the
loss-2 mutant of tests/mutants/brook_mutants.py, whose truncation stops after one round (1); and a
follower that never learns two leader changes, whose stale fetch reaches its returned leader: fenced
by the normal leader (0), served with a divergence by the no-fetch-epoch-check mutant (1).
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from broker_harness import Cluster, batch, batch_summary
from test_replication_safety import _diverged_histories

from broker.fetcher import apply_epoch_answer, apply_fetch_answer
from broker.replica_manager import Partition
from brookpb import broker_pb2 as bpb
from cluster.errors import ErrorCode
from storage.log import LogConfig
from storage.memory_log import MemoryLog
from tests.sim.mutants import applied

LEADER, EPOCH = 1, 6


def _follower(empty: bool = False) -> Partition:
    """A follower replica holding epochs {0@0, 3@10}, log end 20 (the KIP-279 scenario's follower),
    one record per batch so that every cut lands where it is asked; or an empty one."""
    log = MemoryLog(LogConfig())
    for offset in range(0 if empty else 20):
        log.append_as_leader(batch(1, b"f%d" % offset), 0 if offset < 10 else 3, 0)
    return Partition("t", b"t".ljust(16, b"\0"), 0, log)


def _step(p: Partition, step: tuple) -> None:
    match step:
        case ("follow", leader_id, leader_epoch):  # what ReplicaManager._become_follower does
            p.leader_id, p.leader_epoch = leader_id, leader_epoch
            p.start_truncation()
        case ("epoch", leader_id, epoch, end_offset):  # an OffsetsForLeaderEpoch answer
            apply_epoch_answer(p, ErrorCode.none, epoch, end_offset, leader_id, 0)
        case ("epoch_error", leader_id, error):
            apply_epoch_answer(p, error, -1, -1, leader_id, 0)
        case ("skip",):  # truncation declared finished without a (further) answer: a broken build
            p.needs_truncation = False
        case ("retruncate",):  # "append not contiguous; re-truncating" or OFFSET_OUT_OF_RANGE
            p.start_truncation()
        case ("diverge", leader_id, epoch, end_offset):  # a ReplicaFetch answer with a diverging epoch
            answer = bpb.ReplicaFetchPartitionResult(topic_id=p.topic_id, partition=0, high_watermark=0)
            answer.diverging_epoch.epoch = epoch
            answer.diverging_epoch.end_offset = end_offset
            assert not p.needs_truncation, "the fetcher applies fetch answers only to a partition done truncating"
            apply_fetch_answer(p, answer, leader_id, 0)
        case _:
            raise AssertionError(f"unknown step {step}")


# (name, empty log at the start, steps, expected divergences_after_truncation, log end after the steps)
CASES = [
    ("finished in two rounds, then a divergence from the same leader and epoch", False,
     [("follow", LEADER, EPOCH), ("epoch", LEADER, 2, 15), ("epoch", LEADER, 0, 5), ("diverge", LEADER, 0, 3)], 1, 3),
    ("one round only (the loss-2 mutant), then the divergence that repairs it", False,
     [("follow", LEADER, EPOCH), ("epoch", LEADER, 2, 15), ("skip",), ("diverge", LEADER, 0, 5)], 1, 5),
    ("an empty history finishes at once; a later divergence from that leader and epoch", True,
     [("follow", LEADER, EPOCH), ("epoch", LEADER, 4, 15), ("diverge", LEADER, 0, 0)], 1, 0),
    ("a divergence that finishes truncation arms it for the next one", False,
     [("follow", LEADER, EPOCH), ("skip",), ("diverge", LEADER, 0, 5), ("diverge", LEADER, 0, 3)], 1, 3),
    ("no truncation finished at all (skipped): the divergence is the defence, not a tripwire", False,
     [("follow", LEADER, EPOCH), ("skip",), ("diverge", LEADER, 0, 5)], 0, 5),
    ("an error answer finishes nothing", False,
     [("follow", LEADER, EPOCH), ("epoch_error", LEADER, ErrorCode.fenced_leader_epoch), ("skip",),
      ("diverge", LEADER, 0, 5)], 0, 5),
    ("finished against another leader at an older epoch, then follows this one", False,
     [("follow", 2, 5), ("epoch", 2, 0, 5), ("follow", LEADER, EPOCH), ("skip",), ("diverge", LEADER, 0, 3)], 0, 3),
    ("finished against this leader at an older epoch, then re-truncates for a new epoch", False,
     [("follow", LEADER, 5), ("epoch", LEADER, 0, 5), ("follow", LEADER, EPOCH), ("skip",),
      ("diverge", LEADER, 0, 3)], 0, 3),
    ("finished, then re-truncates (append not contiguous) at the same leader and epoch", False,
     [("follow", LEADER, EPOCH), ("epoch", LEADER, 0, 5), ("retruncate",), ("skip",), ("diverge", LEADER, 0, 3)],
     0, 3),
    ("becomes follower again at the same leader and epoch", False,
     [("follow", LEADER, EPOCH), ("epoch", LEADER, 0, 5), ("follow", LEADER, EPOCH), ("skip",),
      ("diverge", LEADER, 0, 3)], 0, 3),
    ("finished against this leader and epoch; the divergence names another leader", False,
     [("follow", LEADER, EPOCH), ("epoch", LEADER, 0, 5), ("diverge", 3, 0, 3)], 0, 3),
]


@pytest.mark.parametrize("empty, steps, expected, log_end", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tripwire_table(empty, steps, expected, log_end, caplog):
    p = _follower(empty)
    with caplog.at_level(logging.INFO, logger="brook.fetcher"):
        for step in steps:
            _step(p, step)
    assert p.divergences_after_truncation == expected
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == expected, errors
    if expected:
        assert f"safety net: leader {LEADER} at epoch {EPOCH} reports a divergence" in errors[0]
        assert "KIP-279 postcondition broken" in errors[0] and errors[0].startswith("t-0: ")
    # The defence keeps working: the follower truncates to where the leader says the epoch ends.
    assert p.log.log_end_offset == log_end
    assert not p.needs_truncation


def _kip279_scenario(mutant: str | None) -> tuple[Cluster, bpb.ReplicaStateResponse]:
    """Leader 1 {0@0, 2@5, 4@15} (and its own epoch 6 at 20), follower 2 {0@0, 3@10}: 12 rounds of
    the follower's real FetcherLoop against the leader's real LeaderSide, `mutant` patched in; then
    the follower's ReplicaStates answer (what `brook chaos` samples)."""
    async def body() -> tuple[Cluster, bpb.ReplicaStateResponse]:
        c = Cluster(broker_ids=(1, 2))
        await _diverged_histories(c)
        await c.rounds(2, 12)
        return c, await c.nodes[2].servicer.ReplicaStates(bpb.ReplicaStateRequest(), None)
    with applied(mutant):
        return asyncio.run(body())


def test_normal_build_never_trips_in_the_kip279_scenario():
    c, states = _kip279_scenario(None)
    follower = c.nodes[2]
    assert (follower.partition.divergences_after_truncation, follower.manager.divergences_after_truncation) == (0, 0)
    assert [r.divergences_after_truncation for r in states.replicas] == [0]
    assert batch_summary(follower.log, 20) == batch_summary(c.nodes[1].log, 20)


def test_one_truncation_round_trips_once_and_kip320_still_repairs():
    """The loss-2 mutant: the follower stops after asking for epoch 3 (cut to 10, epoch 0 there, where
    the leader's epoch 0 ends at 5); its first fetch draws the divergence (0, 5) from the leader it
    just finished truncating against: counted once, and the follower ends with the leader's log."""
    c, states = _kip279_scenario("loss2-one-truncation-round")
    follower = c.nodes[2]
    assert (follower.partition.divergences_after_truncation, follower.manager.divergences_after_truncation) == (1, 1)
    assert [(r.topic, r.partition, r.divergences_after_truncation) for r in states.replicas] == [("t", 0, 1)]
    assert batch_summary(follower.log, 20) == batch_summary(c.nodes[1].log, 20)


def _stale_follower_fetches_the_returned_leader(mutant: str | None) -> tuple[Cluster, int]:
    """Broker 3 finished truncating against leader 1 at epoch 0 and holds 0-14; broker 2 has only
    0-9 when it is elected (epoch 1), so broker 1 truncates to 10 under it and takes 10-11 at epoch
    1; broker 1 leads again (epoch 2). Broker 3 never learns either change: its next fetch still says
    epoch 0 and reaches broker 1 at epoch 2. Returns the cluster and broker 3's ReplicaFetch error."""
    async def body() -> tuple[Cluster, int]:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)
        c.sync()
        await c.produce(1, batch(10, b"a"))
        for follower in (2, 3):
            await c.rounds(follower, 3)
        await c.produce(1, batch(5, b"only-1-and-3"))
        await c.rounds(3, 2)
        assert c.nodes[3].log.log_end_offset == 15 and c.nodes[2].log.log_end_offset == 10
        c.change(leader=2, isr=(1, 2))
        c.sync(1, 2)
        await c.rounds(1, 1)  # broker 1's truncation exchange with broker 2: cut to 10
        await c.produce(2, batch(2, b"epoch-1"))
        await c.rounds(1, 2)
        c.change(leader=1, isr=(1, 2))
        c.sync(1, 2)
        assert c.nodes[1].log.log_end_offset == 12 and c.nodes[3].partition.leader_epoch == 0
        await c.round(3)
        return c, c.nodes[3].partition.paused_until_ms
    with applied(mutant):
        return asyncio.run(body())


def test_normal_leader_fences_the_stale_follower_and_nothing_trips():
    c, paused_until_ms = _stale_follower_fetches_the_returned_leader(None)
    follower = c.nodes[3]
    assert paused_until_ms > c.clock.now_ms, "FENCED_LEADER_EPOCH pauses the partition until metadata settles"
    assert follower.log.log_end_offset == 15 and follower.partition.divergences_after_truncation == 0


def test_leader_without_the_fetch_epoch_check_trips_the_stale_follower():
    """no-fetch-epoch-check: broker 1 at epoch 2 serves the epoch-0 fetch; KIP-320 answers the
    divergence (its epoch 0 ends at 10, the fetch is at 15), which broker 1 at epoch 0 could never
    have sent to a replica that finished truncating against it: the tripwire counts it."""
    c, _ = _stale_follower_fetches_the_returned_leader("no-fetch-epoch-check")
    follower = c.nodes[3]
    assert follower.partition.divergences_after_truncation == 1
    assert follower.manager.divergences_after_truncation == 1
    assert follower.log.log_end_offset == 10, "the divergence still cut the follower back"
