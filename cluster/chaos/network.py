"""Network partitions for `brook chaos run --network netns`: the cluster in network namespaces.

The tester starts a `NetnsCluster` (one network namespace per node on a private bridge, see
cluster/chaos/netns.py; needs root, iproute2 and iptables), then moves its own process into the cluster's
client namespace (`enter`: setns(2) on the main thread before any gRPC channel or Kafka client
exists, so every thread and socket made afterwards lives there). Node processes are still signalled
by PID (the PID namespace is shared) and restarted with `ip netns exec`; cuts are iptables DROP
rules inside the node namespaces (`NetnsControl.isolate`), so a cut never touches the client's links
or anything of the host's own namespace; a slow link is a tc rate limit on one node's eth0 towards one
other node (`NetnsControl.throttle`); `heal_network` removes both.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Sequence

from cluster.errors import BrookError

__all__ = ["NetnsControl", "enter", "netns_module"]

CLONE_NEWNET = 0x40000000
STOP_WAIT_S = 20.0


def netns_module():  # noqa: ANN201
    """cluster.chaos.netns, imported on use (it is only needed for --network netns)."""
    from cluster.chaos import netns

    return netns


def enter(namespace: str) -> int:
    """Move the calling thread (call it on the main thread, before any client exists) into the named
    network namespace; returns a descriptor of the previous one (`leave` restores it)."""
    previous = os.open("/proc/self/ns/net", os.O_RDONLY)
    _setns(f"/var/run/netns/{namespace}")
    return previous


def leave(previous: int) -> None:
    try:
        _setns_fd(previous)
    finally:
        os.close(previous)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        _setns_fd(fd)
    finally:
        os.close(fd)


def _setns_fd(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


class NetnsControl:
    """The nemesis's NodeControl (and NetworkControl) over a NetnsCluster."""

    def __init__(self, cluster) -> None:  # noqa: ANN001 (netns.NetnsCluster)
        self.cluster = cluster
        self.controller_ids: list[int] = list(cluster.controller_ids)
        self.broker_ids: list[int] = list(cluster.broker_ids)
        self.paused: set[int] = set()
        self._net_lock = threading.Lock()

    def _proc(self, node_id: int):  # noqa: ANN202
        return self.cluster.node(node_id).proc

    def kill(self, node_id: int, sig: int) -> None:
        if sig == signal.SIGTERM:
            self.cluster.stop_node(node_id, signal.SIGTERM, STOP_WAIT_S)
        else:
            proc = self._proc(node_id)
            if proc is None or proc.poll() is not None:
                raise BrookError(f"node {node_id} is not running")
            proc.send_signal(sig)
            if sig == signal.SIGKILL:
                proc.wait(timeout=10)
        self.paused.discard(node_id)

    def start(self, node_id: int) -> None:
        if not self.cluster.is_running(node_id):
            self.cluster.start_node(node_id)

    def pause(self, node_id: int) -> None:
        proc = self._proc(node_id)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGSTOP)
        self.paused.add(node_id)

    def resume(self, node_id: int) -> None:
        proc = self._proc(node_id)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
        self.paused.discard(node_id)

    def is_running(self, node_id: int) -> bool:
        return bool(self.cluster.is_running(node_id))

    def incarnation(self, node_id: int) -> int:
        proc = self._proc(node_id)
        return int(proc.pid) if proc is not None else 0

    def wait_healthy(self, timeout_s: float) -> None:
        self.cluster.wait_healthy(timeout_s)

    def isolate(self, a: Sequence[int], b: Sequence[int]) -> None:
        with self._net_lock:  # concurrent rounds: one iptables change at a time
            self.cluster.isolate(list(a), list(b))

    def unisolate(self, a: Sequence[int], b: Sequence[int]) -> None:
        with self._net_lock:
            self.cluster.unisolate(list(a), list(b))

    def throttle(self, src: int, dst: int, rate_kbit: int) -> None:
        """A rate limit on what `src` sends to `dst`; a tc failure is a BrookError (the round records
        it as FAILED and goes on; its restore and the heal remove whatever was installed)."""
        netns = netns_module()
        with self._net_lock:
            try:
                self.cluster.throttle(src, dst, rate_kbit)
            except netns.NetnsError as e:
                raise BrookError(str(e)) from e

    def unthrottle(self, src: int) -> None:
        with self._net_lock:
            self.cluster.unthrottle(src)

    def heal_network(self) -> None:
        with self._net_lock:
            self.cluster.heal()
