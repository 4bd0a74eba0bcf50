"""The shared integration fixture: a real 3-controller, 3-broker cluster of local processes.

The same launcher as `make run` / `brook dev` (cluster.cli.launcher.LocalCluster): free ports on
127.0.0.1, data in a temp dir, every process stopped by PID in the finalizer, even when a test
fails. On a failed start the log tails of the nodes are in the error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from cluster.cli.launcher import LocalCluster

# A cold start of 3+3 takes a few seconds here; the bound leaves room for a loaded CI machine.
CLUSTER_START_TIMEOUT_S = 90.0
CLI_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A running, healthy LocalCluster(3 controllers, 3 brokers), one per test module."""
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), controllers=3, brokers=3)
    try:
        local.start(wait=True, timeout_s=CLUSTER_START_TIMEOUT_S)
        yield local
    finally:
        codes = local.stop()
        leftover = local.pids
        assert not leftover, f"processes still running after stop(): {leftover} (exit codes {codes})"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def run_cli_process(cluster: LocalCluster | None, *argv: str, stdin: str = "",
                    timeout_s: float = CLI_TIMEOUT_S, env: dict[str, str] | None = None) -> CliResult:
    """Run `brook ARGV...` as a subprocess with BROOK_BOOTSTRAP_CONTROLLER set to the cluster's."""
    full_env = dict(os.environ)
    full_env.pop("BROOK_BOOTSTRAP_CONTROLLER", None)
    if cluster is not None:
        full_env["BROOK_BOOTSTRAP_CONTROLLER"] = cluster.controller_bootstrap
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "cluster.cli.main", *argv], input=stdin, capture_output=True,
                          text=True, env=full_env, timeout=timeout_s)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def brook(cluster: LocalCluster):
    """`brook("topics", "list")` → CliResult, against the module's cluster."""
    def run(*argv: str, stdin: str = "", timeout_s: float = CLI_TIMEOUT_S) -> CliResult:
        return run_cli_process(cluster, *argv, stdin=stdin, timeout_s=timeout_s)
    return run
