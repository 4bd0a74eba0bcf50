"""User mistakes give one stderr line and a non-zero exit, never a traceback.

Goal: the documented exit codes hold for the installed console entry point. Method: run
`python -m cluster.cli.main` as a subprocess against a port nobody listens on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from cluster.client import ControllerClient, describe_rpc_error, parse_addresses
from cluster.errors import BrookError


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with-block ends


def run_cli(*argv: str, env_extra: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BROOK_BOOTSTRAP_CONTROLLER"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "cluster.cli.main", *argv], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv", [
    ["cluster", "describe"],
    ["cluster", "health"],
    ["quorum", "status"],
    ["topics", "create", "demo"],
    ["topics", "list", "-o", "json"],
    ["produce", "demo"],
    ["consume", "demo"],
])
def test_unreachable_controller_is_one_line_and_exit_1(argv):
    a, b = closed_port(), closed_port()
    result = run_cli("--bootstrap-controller", f"127.0.0.1:{a},127.0.0.1:{b}", "--timeout", "3", *argv)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert result.stderr == (f"brook: error: no controller reachable at 127.0.0.1:{a},127.0.0.1:{b} "
                             "(connection refused)\n")
    assert result.stdout == ""


@pytest.mark.timeout(60)
def test_env_bootstrap_is_used():
    port = closed_port()
    result = run_cli("brokers", "list", env_extra={"BROOK_BOOTSTRAP_CONTROLLER": f"127.0.0.1:{port}"})
    assert result.returncode == 1 and f"127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_usage_error_in_a_subprocess_exits_2():
    result = run_cli("topics", "create", "t", "--partitions", "-3")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.timeout(60)
def test_server_subcommand_is_dispatched(tmp_path):
    bad = tmp_path / "bad.properties"
    bad.write_text("no.such.key=1\n")
    result = run_cli("server", "--check-config", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no.such.key" in result.stderr


def test_parse_addresses():
    assert parse_addresses("a:1, b:2,,") == ["a:1", "b:2"]
    assert parse_addresses(["a:1,b:2", "c:3"]) == ["a:1", "b:2", "c:3"]
    for bad in ("a", "a:", ":1", "a:99999", "a:x"):
        with pytest.raises(BrookError, match="expected host:port"):
            parse_addresses(bad)


def test_controller_client_needs_an_address():
    with pytest.raises(BrookError, match="no controller address"):
        ControllerClient([])


def test_controller_client_in_process_refused():
    port = closed_port()
    with ControllerClient([f"127.0.0.1:{port}"], timeout_s=2.0) as client, \
            pytest.raises(BrookError, match=r"no controller reachable at 127\.0\.0\.1:\d+ \(connection refused\)"):
        client.describe_cluster()


def test_describe_rpc_error_deadline():
    import grpc

    class Fake(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.DEADLINE_EXCEEDED

        def details(self):
            return "Deadline Exceeded"
    assert describe_rpc_error(Fake(), 2.5) == "timed out after 2.5s"
