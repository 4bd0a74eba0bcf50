"""Evidence that the transactional chaos smoke can fail: it catches a build whose read_committed
fetches ignore the aborted-transaction index (aborted records are delivered).

Method: as test_chaos_mutant.py, a 3+3 LocalCluster whose servers run the `txn-ignore-aborted-index`
mutant (tests/mutants/brook_mutants.py; every node's log must show it active); the transactional
smoke run (test_chaos_smoke.TXN_SMOKE, same scenario, duration, seed) must report txn_aborted_read.
"""

from __future__ import annotations

import pytest

from cluster.chaos.runner import SESSION_TIMEOUT_MS, run
from tests.chaos.mutant_cluster import assert_mutant_active, start_mutant_cluster
from tests.chaos.test_chaos_smoke import SMOKE_RATE_PER_S, TXN_SMOKE

MUTANT = "txn-ignore-aborted-index"


@pytest.fixture(scope="module")
def mutant_cluster(tmp_path_factory, request):  # noqa: ANN001, ANN201
    return start_mutant_cluster(tmp_path_factory.mktemp("chaos-txn-mutant"), MUTANT, request)


@pytest.mark.timeout(240)
def test_txn_smoke_catches_read_committed_without_aborted_index(mutant_cluster):  # noqa: ANN001
    assert_mutant_active(mutant_cluster, MUTANT)
    scenario, duration_s, seed = TXN_SMOKE
    report = run(scenario, duration_s, seed, cluster=mutant_cluster, session_timeout_s=SESSION_TIMEOUT_MS / 1000.0,
                 rate_per_s=SMOKE_RATE_PER_S, sweep=False, workload="txn")
    print(report.to_text())
    assert report.result.counts().get("txn_aborted_read", 0) > 0, report.to_text()
    assert report.exit_code == 1
