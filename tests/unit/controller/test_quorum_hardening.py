"""The Raft port and the metadata directory (issue 11, item 7), against a real one-node pysyncobj quorum."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct

import pytest

from cluster.cli.launcher import free_ports
from cluster.records import ClusterRecord
from controller.quorum import Quorum, QuorumError, QuorumSettings, _private_dir, is_loopback_host

pytestmark = pytest.mark.timeout(60)
SECRET = "unit-test-secret-0123456789"


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("10.1.2.3", False), ("controller-1", False), ("", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_insecure_dev_is_refused_off_loopback(tmp_path) -> None:
    settings = QuorumSettings(1, [(1, "10.1.2.3:9093")], None, str(tmp_path / "raft"))
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(QuorumError, match="only allowed on loopback"):
            Quorum(settings, loop)
    finally:
        loop.close()


def test_a_metadata_dir_another_user_owns_is_refused(tmp_path) -> None:
    path = tmp_path / "theirs"
    path.mkdir()
    if os.getuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    os.chown(path, 54321, 54321)
    with pytest.raises(QuorumError, match="owned by uid 54321"):
        _private_dir(str(path))


def _single_node(tmp_path, loop) -> tuple[Quorum, int]:
    port = free_ports(1)[0]
    settings = QuorumSettings(1, [(1, f"127.0.0.1:{port}")], SECRET, str(tmp_path / "raft"))
    return Quorum(settings, loop), port


def test_a_2_gib_prefix_is_dropped_and_the_quorum_keeps_committing(tmp_path) -> None:
    async def body() -> None:
        quorum, port = _single_node(tmp_path, asyncio.get_running_loop())
        try:
            for _ in range(200):
                if quorum.is_leader():
                    break
                await asyncio.sleep(0.05)
            first = await quorum.submit([ClusterRecord("c")], quorum.state.image.offset)
            assert first.status == "ok"

            def flood() -> tuple[bool, int]:
                sent = 0
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    try:
                        sock.sendall(struct.pack("i", 2**31 - 1))
                        while sent < 64 << 20:
                            sock.sendall(b"\x00" * 65536)
                            sent += 65536
                    except (BrokenPipeError, ConnectionResetError):
                        return True, sent
                    except TimeoutError:
                        return False, sent
                return False, sent

            closed, sent = await asyncio.to_thread(flood)
            assert closed, f"the Raft port buffered {sent} bytes of a 2 GiB frame without dropping the connection"
            assert sent < 64 << 20
            after = await quorum.submit([ClusterRecord("c")], quorum.state.image.offset)
            assert after.status == "ok"
            # The directory is private; `brook server` also sets umask 077, so every file in it is 0600.
            assert stat.S_IMODE(os.stat(tmp_path / "raft").st_mode) == 0o700
        finally:
            quorum.close()

    asyncio.run(body())
