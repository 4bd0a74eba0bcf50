"""Chaos smoke run: a fixed set of (scenario, seed) pairs against one local 3+3 cluster, in about
two minutes, each asserting zero anomalies.

Method: one module-scoped LocalCluster with the chaos overrides (short session timeout, RF 3,
min.insync.replicas=2), stopped by PID in a finalizer; each test runs `cluster.chaos.runner.run`
on a fresh topic and prints the report. A failure names its seed: replay it with
`brook chaos run --scenario NAME --duration Ns --seed N`.
"""

from __future__ import annotations

import pytest

from cluster.chaos.runner import CHAOS_OVERRIDES, SESSION_TIMEOUT_MS, run
from cluster.cli.launcher import LocalCluster

# The first run is also run against the ack-before-replication mutant (test_chaos_mutant.py), which
# it must catch every time: the stall-followers round SIGSTOPs both followers of a partition (they stay
# in the ISR), SIGKILLs the leader during the stall and resumes them, so whatever that leader
# acknowledged during the stall is lost when a follower is elected (a correct leader cannot move its HW
# past the stalled followers and acknowledges nothing meanwhile). The rejoin round (a follower back in
# the ISR while the leader dies) caught it only when the election picked the joiner: CI once saw it
# pick the other follower, which had fetched everything. The replica sweep runs once, after the last run.
SMOKE_RATE_PER_S = 1000.0
SMOKE = [
    ("stall-followers", 10.0, 11),
    ("rejoin", 20.0, 17),
    ("kill-follower", 12.0, 12),
    ("pause-leader", 15.0, 13),
    ("reassign-kill", 10.0, 15),  # one round: a replica dropped and moved back, a broker killed mid-move
    ("kill-active-controller", 12.0, 14),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):  # noqa: ANN001, ANN201
    local = LocalCluster(tmp_path_factory.mktemp("chaos-smoke"), 3, 3, overrides=CHAOS_OVERRIDES)
    request.addfinalizer(local.stop)  # every process, by PID, even when start() fails halfway
    local.start(wait=True, timeout_s=90)
    return local


@pytest.mark.timeout(150)
@pytest.mark.parametrize(("scenario", "duration_s", "seed"), SMOKE, ids=[s for s, _, _ in SMOKE])
def test_chaos_smoke(cluster, scenario, duration_s, seed):  # noqa: ANN001
    report = run(scenario, duration_s, seed, cluster=cluster, session_timeout_s=SESSION_TIMEOUT_MS / 1000.0,
                 rate_per_s=SMOKE_RATE_PER_S, sweep=scenario == SMOKE[-1][0])
    print(report.to_text())
    assert report.anomaly_count == 0, report.to_text()
    assert report.exit_code == 0, report.to_text()
    assert report.totals["acks_ok"] > 0 and report.totals["faults"] >= 1


# The transactional workload (`--workload txn`) beside the default one, through leader kills (which
# also move __transaction_state partitions: coordinator failover). test_chaos_txn_mutant.py runs the
# same against a build whose read_committed ignores the aborted-transaction index, which it must catch.
TXN_SMOKE = ("kill-leader", 15.0, 16)


@pytest.mark.timeout(240)
def test_chaos_smoke_transactions(cluster):  # noqa: ANN001
    scenario, duration_s, seed = TXN_SMOKE
    report = run(scenario, duration_s, seed, cluster=cluster, session_timeout_s=SESSION_TIMEOUT_MS / 1000.0,
                 rate_per_s=SMOKE_RATE_PER_S, sweep=False, workload="txn")
    print(report.to_text())
    assert report.anomaly_count == 0, report.to_text()
    assert report.exit_code == 0, report.to_text()
    info = report.result.info
    assert info.get("txns_committed", 0) > 0 and info.get("txns_aborted", 0) > 0, info
    assert info.get("txns_committed_ctp", 0) > 0 and report.totals["txn_reads_drain"] > 0, report.totals
