"""`brook server`: bad configs are one-line errors; a controller refuses to run without a quorum
secret; a second broker on the same log directory exits with a clear error. Real subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest


def brook(*argv: str, timeout_s: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cluster.cli.main", *argv], capture_output=True, text=True,
                          timeout=timeout_s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(tmp_path, text: str) -> str:
    path = tmp_path / "server.properties"
    path.write_text(text)
    return str(path)


CONTROLLER = """process.roles=controller
node.id=1
listeners=CONTROLLER://127.0.0.1:{grpc}
controller.quorum.voters=1@127.0.0.1:{raft}
log.dirs={dir}
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text, fragment", [
    ("process.roles=broker\nnode.id=1\nlog.retension.ms=5\n", "did you mean 'log.retention.ms'"),
    ("process.roles=broker\nnode.id=abc\n", "node.id"),
    ("process.roles=wizard\nnode.id=1\n", "process.roles"),
    ("this line has no separator\n", "server.properties:1"),
    (CONTROLLER, "controller.quorum.secret"),
])
def test_bad_config_is_one_line(tmp_path, text, fragment):
    path = write(tmp_path, text.format(grpc=free_port(), raft=free_port(), dir=tmp_path / "d"))
    for argv in (("server", "--check-config", path), ("server", "--config", path)):
        result = brook(*argv)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert fragment in result.stderr


SEVERAL_DIRS = {
    "broker,controller": """process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{raft}
controller.quorum.secret=x-test-secret-16-chars
listeners=PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{ctl},GRPC://127.0.0.1:{grpc}
controller.quorum.bootstrap.servers=127.0.0.1:{ctl}
log.dirs={dirs}
""",
    "broker": """process.roles=broker
node.id=2
listeners=PLAINTEXT://127.0.0.1:{kafka},GRPC://127.0.0.1:{grpc}
controller.quorum.bootstrap.servers=127.0.0.1:{ctl}
log.dirs={dirs}
""",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("roles", list(SEVERAL_DIRS))
def test_several_log_dirs_are_refused_not_silently_cut_to_one(tmp_path, roles):
    """Issue 13 item 8: `log.dirs` with two directories is refused by --check-config and at start-up (one
    line, exit 1, no directory created) instead of the first one being used silently; one is valid."""
    a, b = tmp_path / "a", tmp_path / "b"
    ports = {k: free_port() for k in ("raft", "kafka", "ctl", "grpc")}
    path = write(tmp_path, SEVERAL_DIRS[roles].format(dirs=f"{a},{b}", **ports))
    for argv in (("server", "--check-config", path), ("server", "--config", path)):
        result = brook(*argv)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "log.dirs lists 2 directories" in result.stderr and "Kafka's JBOD is not supported" in result.stderr
    assert not a.exists() and not b.exists()
    path = write(tmp_path, SEVERAL_DIRS[roles].format(dirs=str(a), **ports))
    result = brook("server", "--check-config", path)
    assert result.returncode == 0, result.stderr


@pytest.mark.timeout(30)
def test_missing_config_file_is_one_line(tmp_path):
    result = brook("server", "--config", str(tmp_path / "nope.properties"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.timeout(30)
def test_valid_config_checks_ok(tmp_path):
    text = CONTROLLER.format(grpc=free_port(), raft=free_port(), dir=tmp_path / "d") + "controller.quorum.secret=x-test-secret-16-chars\n"
    result = brook("server", "--check-config", write(tmp_path, text))
    assert result.returncode == 0, result.stderr


@pytest.mark.timeout(60)
def test_second_broker_on_the_same_log_dir_exits_with_a_clear_error(tmp_path):
    def config(n: int) -> str:
        path = tmp_path / f"b{n}.properties"
        path.write_text(f"""process.roles=broker
node.id=101
listeners=PLAINTEXT://127.0.0.1:{free_port()},GRPC://127.0.0.1:{free_port()}
controller.quorum.bootstrap.servers=127.0.0.1:{free_port()}
log.dirs={tmp_path / 'shared'}
""")
        return str(path)
    first = subprocess.Popen([sys.executable, "-m", "cluster.cli.main", "server", "--config", config(1)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "shared" / "LOCK").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        second = brook("server", "--config", config(2))
        assert second.returncode == 1, second
        assert "in use by another process" in second.stderr and "Traceback" not in second.stderr
        assert first.poll() is None, "the first broker must keep running"
    finally:
        os.killpg(first.pid, 9)
        first.wait(timeout=10)


def test_a_slow_stop_logs_every_pending_task_and_thread(caplog, capfd):
    """A stop that outlives STOP_REPORT_S says where it is: each pending task's stack in the log and
    each thread's stack on stderr (how the fetcher that lost its cancellation was found)."""
    import asyncio
    import faulthandler

    from cluster.cli import server

    async def stuck_somewhere_recognisable() -> None:
        await asyncio.sleep(30)

    async def body() -> None:
        task = asyncio.ensure_future(stuck_somewhere_recognisable())
        server._report_slow_stop(asyncio.get_running_loop(), 0.05)
        await asyncio.sleep(0.5)
        task.cancel()

    try:
        with caplog.at_level("ERROR", logger="brook.server"):
            asyncio.run(body())
    finally:
        faulthandler.cancel_dump_traceback_later()
    text = caplog.text
    assert "still stopping" in text and "tasks pending" in text
    assert "stuck_somewhere_recognisable" in text
    err = capfd.readouterr().err
    assert "Thread 0x" in err or "Current thread" in err
