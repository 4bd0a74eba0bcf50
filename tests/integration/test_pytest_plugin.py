"""The pytest plugin (cluster/testing/pytest_plugin.py) runs the example suite in examples/pytest_plugin.

Goal: a user's test suite gets a real replicated Brook cluster from the `brook_cluster` /
`brook_bootstrap` fixtures, and every process of it is gone after the session, pass or fail.
Method: run pytest on the example directory in a subprocess (the plugin loaded by `-p`, as the
pytest11 entry point does once installed), check every example test passed, then check that no
process runs with a config under the session's base temp directory; a second run whose test fails
on purpose must leave no process either.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cluster.testing.pytest_plugin import ClusterSpec, spec_from

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "pytest_plugin"
RUN_TIMEOUT_S = 600.0


def brook_processes_under(base: Path) -> list[int]:
    """PIDs of live processes whose command line names a path under `base` (our nodes' configs)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(str(base).encode()) for arg in argv):
            found.append(int(proc.name))
    return found


def run_pytest(args: list[str], cwd: Path, basetemp: Path) -> subprocess.CompletedProcess[str]:
    # -p no:brook: the installed entry point would register the same module under another name.
    argv = [sys.executable, "-m", "pytest", "-p", "no:brook", "-p", "cluster.testing.pytest_plugin",
            "-p", "no:cacheprovider", f"--basetemp={basetemp}", "-v", *args]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_the_example_suite_passes_and_leaves_no_process(tmp_path: Path) -> None:
    basetemp = tmp_path / "example"
    result = run_pytest([str(EXAMPLE)], EXAMPLE, basetemp)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "5 passed" in result.stdout, output[-6000:]
    assert brook_processes_under(basetemp) == []


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_a_failing_suite_still_stops_its_cluster(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\nbrook_brokers = 1\n", encoding="utf-8")
    (suite / "test_fails.py").write_text(
        "def test_fails(brook_cluster):\n"
        "    assert brook_cluster.pids\n"
        "    raise RuntimeError('on purpose')\n", encoding="utf-8")
    basetemp = tmp_path / "run"
    result = run_pytest([str(suite)], suite, basetemp)
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    assert "RuntimeError: on purpose" in result.stdout
    assert brook_processes_under(basetemp) == []


def test_the_entry_point_names_the_plugin() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == {"brook": "cluster.testing.pytest_plugin"}
    assert "pytest>=8" in project["optional-dependencies"]["testing"]


@pytest.mark.parametrize(("ini", "marker", "expected"), [
    ({}, None, ClusterSpec(1, 1, ())),
    ({"brook_controllers": "3", "brook_brokers": "3"}, None, ClusterSpec(3, 3, ())),
    ({"brook_brokers": "3", "brook_overrides": ["a=1", "b = 2"]}, {"controllers": 3},
     ClusterSpec(3, 3, (("a", "1"), ("b", "2")))),
    ({"brook_overrides": ["a=1"]}, {"overrides": {"a": "2", "c": 3}}, ClusterSpec(1, 1, (("a", "2"), ("c", "3")))),
    ({"brook_start_timeout": "30"}, {"brokers": 2}, ClusterSpec(1, 2, (), 30.0)),
])
def test_spec_from_ini_and_marker(ini, marker, expected) -> None:
    assert spec_from(ini, marker) == expected


@pytest.mark.parametrize(("ini", "marker"), [
    ({"brook_brokers": "zero"}, None),
    ({"brook_brokers": "0"}, None),
    ({"brook_overrides": ["novalue"]}, None),
    ({}, {"size": 3}),
    ({}, {"overrides": 5}),
    ({"brook_start_timeout": "soon"}, None),
])
def test_spec_from_refuses_bad_settings(ini, marker) -> None:
    with pytest.raises(pytest.UsageError):
        spec_from(ini, marker)
