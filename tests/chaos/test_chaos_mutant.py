"""Evidence that the chaos smoke can fail: its first run catches a build that acknowledges acks=all
writes before replicating them.

Method: a 3+3 LocalCluster whose server processes run the `ack-before-replication` mutant
(tests/mutants: PYTHONPATH with its sitecustomize and BROOK_MUTANT, set for these processes only; the
leader answers acks=all right after its own append); the first smoke run (test_chaos_smoke.SMOKE[0],
same scenario, duration, seed and settings) must report at least one anomaly. Every node's log must
show the mutant active, so the test cannot pass on a cluster that runs the normal build.
"""

from __future__ import annotations

import pytest

from cluster.chaos.runner import SESSION_TIMEOUT_MS, run
from tests.chaos.mutant_cluster import assert_mutant_active, start_mutant_cluster
from tests.chaos.test_chaos_smoke import SMOKE, SMOKE_RATE_PER_S

MUTANT = "ack-before-replication"


@pytest.fixture(scope="module")
def mutant_cluster(tmp_path_factory, request):  # noqa: ANN001, ANN201
    return start_mutant_cluster(tmp_path_factory.mktemp("chaos-mutant"), MUTANT, request)


@pytest.mark.timeout(240)
def test_smoke_catches_ack_before_replication(mutant_cluster):  # noqa: ANN001
    assert_mutant_active(mutant_cluster, MUTANT)
    scenario, duration_s, seed = SMOKE[0]
    report = run(scenario, duration_s, seed, cluster=mutant_cluster, session_timeout_s=SESSION_TIMEOUT_MS / 1000.0,
                 rate_per_s=SMOKE_RATE_PER_S, sweep=False)
    print(report.to_text())
    assert report.anomaly_count > 0, report.to_text()
    assert report.exit_code == 1
