"""A LocalCluster whose server processes run one mutant of tests/mutants/brook_mutants.py.

The mutant is switched on for these processes only: PYTHONPATH gets tests/mutants (its sitecustomize
applies the patch named by BROOK_MUTANT at interpreter start); the test process and every other
cluster run the normal build. `assert_mutant_active` reads every broker's log, so a test cannot pass
on a cluster that silently runs the normal build.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cluster.chaos.runner import CHAOS_OVERRIDES
from cluster.cli.launcher import LocalCluster

MUTANTS_DIR = Path(__file__).resolve().parents[1] / "mutants"


def start_mutant_cluster(data_dir: Path, mutant: str, request: pytest.FixtureRequest) -> LocalCluster:
    """3 controllers + 3 brokers with the chaos settings, stopped by PID at the end of the fixture's
    scope, also when start() fails halfway."""
    env = {k: v for k, v in os.environ.items() if k != "BROOK_MUTANT"}
    env["PYTHONPATH"] = str(MUTANTS_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["BROOK_MUTANT"] = mutant
    local = LocalCluster(data_dir, 3, 3, overrides=CHAOS_OVERRIDES, env=env)
    request.addfinalizer(local.stop)
    local.start(wait=True, timeout_s=90)
    return local


def assert_mutant_active(cluster: LocalCluster, mutant: str) -> None:
    for node_id in cluster.broker_ids:
        text = cluster.node(node_id).log_path.read_text(errors="replace")
        assert f"brook mutant active: BROOK_MUTANT={mutant}" in text, f"node {node_id} runs the normal build"
