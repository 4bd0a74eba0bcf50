"""`brook chaos run --target local --data-dir DIR` drives a cluster that `brook dev` (`make run`) runs.

Method: `brook dev` runs as a subprocess in its own session on a temp data dir; `brook chaos run
--scenario kill-follower` is pointed at that data dir as another subprocess. Afterwards every node
must be running again (some as new processes the chaos run started), and stopping `brook dev` with
SIGTERM must stop them all, restarted ones included: `make run` still owns the cluster. Every
process is stopped by its PID in a finalizer, and only when its command line is still the node's.
The PID checks of `LocalCluster.adopt` are tested without a cluster: a PID file naming a process
that is not the node, a zombie, a partly running cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.chaos.runner import CHAOS_OVERRIDES
from cluster.cli.launcher import AdoptedProcess, LaunchError, LocalCluster, NodeSpec

ROOT = Path(__file__).resolve().parents[2]
DEV_START_S = 90.0
CHAOS_RUN_S = 120.0
DEV_STOP_S = 40.0


def _brook(*args: str) -> list[str]:
    return [sys.executable, "-m", "cluster.cli.main", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("BROOK_BOOTSTRAP_CONTROLLER", None)
    return env


def _node_pids(data_dir: Path) -> dict[int, int]:
    """node id -> PID of the running node process named by its server.pid (checked against /proc)."""
    out = {}
    for directory in sorted(data_dir.glob("node-*")):
        proc = AdoptedProcess.from_pid_file(NodeSpec(int(directory.name[5:]), (), directory))
        if proc is not None:
            out[int(directory.name[5:])] = proc.pid
    return out


def _stop_by_pid(pid: int, config: Path) -> None:
    """SIGKILL `pid` if it is still the node's process (its command line names `config`)."""
    try:
        AdoptedProcess(pid, config, []).send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    pytest.fail(f"`brook dev` did not print {text!r} (exit code {proc.poll()}):\n{path.read_text(errors='replace')}")


@pytest.mark.timeout(180)
def test_chaos_drives_a_running_make_run_cluster(tmp_path, request):  # noqa: ANN001
    data_dir = tmp_path / "dev"
    dev_out = tmp_path / "dev.out"
    overrides = [arg for key, value in CHAOS_OVERRIDES.items() for arg in ("--override", f"{key}={value}")]
    with open(dev_out, "wb") as out:
        dev = subprocess.Popen(_brook("dev", "--data-dir", str(data_dir), *overrides), stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=str(tmp_path),
                               start_new_session=True)
    seen: set[tuple[int, int]] = set()  # (node id, PID) of every node process seen, stopped by PID at the end

    def cleanup() -> None:
        for node_id, pid in seen | set(_node_pids(data_dir).items()):
            _stop_by_pid(pid, data_dir / f"node-{node_id}" / "server.properties")
        if dev.poll() is None:
            dev.kill()
        dev.wait(timeout=10)

    request.addfinalizer(cleanup)
    _wait_for(dev_out, "Brook is running", dev, DEV_START_S)
    before = _node_pids(data_dir)
    seen.update(before.items())
    assert sorted(before) == [1, 2, 3, 101, 102, 103]

    chaos = subprocess.run(
        _brook("chaos", "run", "--target", "local", "--data-dir", str(data_dir), "--scenario", "kill-follower",
               "--duration", "15s", "--seed", "3"),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=_env(), cwd=str(tmp_path),
        timeout=CHAOS_RUN_S, start_new_session=True)
    output = f"--- stdout\n{chaos.stdout}\n--- stderr\n{chaos.stderr}"
    print(output)
    after = _node_pids(data_dir)
    seen.update(after.items())
    assert chaos.returncode == 0, output
    assert "driving the cluster running under" in chaos.stderr, output
    assert "PASS" in chaos.stdout, output

    # Every node runs again; the killed followers as new processes, the others untouched.
    assert sorted(after) == sorted(before), output
    restarted = sorted(i for i in after if after[i] != before[i])
    assert restarted and set(restarted) <= {101, 102, 103}, (before, after)
    for node_id in restarted:
        assert f"SIGKILL node {node_id}" in chaos.stderr, output
    adopted = LocalCluster.adopt(data_dir)
    assert adopted is not None and set(adopted.pids) == set(before)
    assert dev.poll() is None, "brook dev exited during the chaos run"

    # `make run` still owns the cluster: its SIGTERM stops every node, the restarted ones included.
    dev.send_signal(signal.SIGTERM)
    dev.wait(timeout=DEV_STOP_S)
    time.sleep(0.5)  # the restarted nodes' new parent (init or a subreaper) reaps them
    still = {i: pid for i, pid in after.items()
             if AdoptedProcess(pid, data_dir / f"node-{i}" / "server.properties", []).poll() is None}
    assert not still, f"nodes left running after brook dev stopped: {still}\n{dev_out.read_text()}"


@pytest.mark.timeout(30)
def test_adopt_checks_every_pid(tmp_path):  # noqa: ANN001
    cluster = LocalCluster(tmp_path / "dev", 1, 1, insecure=True)
    cluster.prepare()  # configs only, no process
    assert LocalCluster.adopt(tmp_path / "dev") is None
    assert LocalCluster.adopt(tmp_path / "nothing-here") is None
    controller, broker_id = cluster.node(1), cluster.broker_ids[0]

    # A PID file naming a live process that is not the node (this test) is not adopted.
    controller.pid_path.write_text(f"{os.getpid()}\n")
    assert AdoptedProcess.from_pid_file(controller) is None
    assert LocalCluster.adopt(tmp_path / "dev") is None

    # A process whose command line names the config is; with the broker not running, adopt refuses.
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "--config",
                             str(controller.config_path)])
    try:
        controller.pid_path.write_text(f"{fake.pid}\n")
        deadline = time.monotonic() + 10
        while AdoptedProcess.from_pid_file(controller) is None and time.monotonic() < deadline:
            time.sleep(0.05)  # until the exec shows the new command line
        adopted = AdoptedProcess.from_pid_file(controller)
        assert adopted is not None and adopted.poll() is None
        with pytest.raises(LaunchError, match=f"nodes {broker_id} are not"):
            LocalCluster.adopt(tmp_path / "dev")
        # Killed and not reaped yet (a zombie): no longer running, and never signalled again.
        adopted.send_signal(signal.SIGKILL)
        assert adopted.wait(timeout=10) == -signal.SIGKILL
        assert fake.returncode is None  # still unreaped: the zombie was recognised through /proc
        adopted.send_signal(signal.SIGTERM)  # a no-op, like Popen's after the exit
    finally:
        fake.kill()
        fake.wait(timeout=10)


def test_cli_local_target_options(tmp_path, capsys):  # noqa: ANN001
    from cluster.chaos.runner import main

    assert main(["run", "--fresh", "--data-dir", str(tmp_path)]) == 2
    assert "--fresh" in capsys.readouterr().err
    # No cluster runs under the data dir and the tester would start its own: a controller address is refused.
    assert main(["run", "--data-dir", str(tmp_path), "--bootstrap-controller", "127.0.0.1:1", "--duration", "1s",
                 "--seed", "1"]) == 3
    err = capsys.readouterr().err
    assert "no cluster is running under" in err and "--bootstrap-controller" in err
