"""The deterministic simulator in CI: determinism, the checker's power, and a budget of seeds.

`BROOK_SIM_SEEDS` (default 2000) sets the budget; `make sim SEEDS=N` runs more outside pytest.
"""

from __future__ import annotations

import os

import pytest

from tests.sim.checker import Checker
from tests.sim.cluster import SimCluster
from tests.sim.run import report_failure, run_many, run_seed

CI_SEEDS = int(os.environ.get("BROOK_SIM_SEEDS", "2000"))


def _busy_cluster(first_seed: int) -> tuple[SimCluster, Checker]:
    """The first seed from `first_seed` on whose run acknowledged writes and ended clean (a seed
    whose partition stayed offline has nothing to check)."""
    for seed in range(first_seed, first_seed + 10):
        cluster = SimCluster(seed)
        checker = Checker(cluster)
        cluster.run(checker)
        if len(cluster.state.acked) >= 10 and not cluster.violations:
            return cluster, checker
    raise AssertionError(f"no busy clean seed in {first_seed}..{first_seed + 9}")


@pytest.mark.timeout(120)
def test_same_seed_same_trace() -> None:
    seed = _busy_cluster(7)[0].sim.seed
    first, again, other = run_seed(seed), run_seed(seed), run_seed(seed + 1)
    assert first.steps > 500 and first.acked >= 10, "the seed did too little to mean anything"
    assert first.trace_hash == again.trace_hash
    assert first.steps == again.steps
    assert other.trace_hash != first.trace_hash


@pytest.mark.timeout(120)
def test_checker_sees_a_lost_acknowledged_write() -> None:
    """Break one ISR member's log after a clean run: the checker must report the acknowledged
    record that is gone."""
    cluster, checker = _busy_cluster(3)
    image = cluster.raft.image
    reg = image.topic_by_name("t").partitions[0]
    victim = cluster.brokers[reg.isr[-1]]
    victim_log = victim.logs.logs[(cluster.topic_id, 0)]
    middle = cluster.state.acked[len(cluster.state.acked) // 2].offset
    victim_log.truncate_to(middle)
    checker.check_end()
    assert any(f"b{victim.broker_id}" in v and "acknowledged" in v for v in cluster.violations), cluster.violations


@pytest.mark.timeout(120)
def test_checker_sees_diverged_committed_prefix() -> None:
    """Replace a committed record in one replica: the prefix check must report it."""
    from storage.batch import build_batch
    from storage.records import Record

    cluster, checker = _busy_cluster(5)
    reg = cluster.raft.image.topic_by_name("t").partitions[0]
    follower = next(b for b in reg.isr if b != reg.leader)
    plog = cluster.brokers[follower].logs.logs[(cluster.topic_id, 0)]
    hw = plog.high_watermark
    assert hw > 2
    plog.truncate_to(1)
    plog.append_as_leader(build_batch([Record(None, b"impostor", 0)]), plog.latest_epoch(), 0)
    plog.set_high_watermark(hw)
    checker.last_fingerprint = ()
    checker.check_step()
    assert any("committed record" in v or "acknowledged" in v for v in cluster.violations), cluster.violations


@pytest.mark.timeout(900)
def test_seed_budget() -> None:
    """CI budget: every seed runs clean (a failure prints the seed and its trace)."""
    workers = min(2, os.cpu_count() or 1)
    outcomes = run_many(range(1, CI_SEEDS + 1), workers)
    failed = [o for o in outcomes if o.violations]
    for outcome in failed[:3]:
        report_failure(outcome)
    assert not failed, (f"{len(failed)} of {CI_SEEDS} seeds found violations: "
                        f"{[o.seed for o in failed][:20]}; replay one with `make sim SEED=n`")


@pytest.mark.timeout(120)
def test_pending_isr_survives_an_alter_partition_whose_outcome_is_unknown() -> None:
    """Found by the simulator (seed 59, leadership faults): the leader's AlterPartition adding a paused
    follower timed out in transport, the leader dropped its pending ISR and acknowledged offset 7 over
    the old ISR, then the controller committed the addition of a follower at LEO 6. The pending
    (maximal) ISR must stay until an answer or newer metadata shows the outcome."""
    from tests.sim.cluster import Faults

    outcome = run_seed(59, faults=Faults(kinds=("leader_bounce", "pause", "slow_link"), faults=(6, 12)))
    assert not outcome.violations, report_failure(outcome)
