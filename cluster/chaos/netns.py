"""Network partitions: a Brook cluster whose nodes each run in their own Linux network namespace.

Needs root, `ip` (iproute2) with `ip netns`, and `iptables` usable inside a namespace; `unavailable()`
says why not (tests skip with that message). Everything lives in namespaces this module creates:

    <tag>-hub          a bridge `br0`; one veth per member namespace is enslaved to it
    <tag>-n<id>        one node: `eth0` with <subnet>.<host> (controllers .11.., brokers .101..), its
                       own loopback; `brook server` runs here with `ip netns exec`
    <tag>-cli          the client: an agent process (`python -m cluster.chaos.netns agent`) that runs admin
                       calls, an acks=all idempotent writer and read-backs for the caller (JSON lines
                       over its stdin/stdout), because gRPC sockets must be opened inside a namespace

No interface, route or firewall rule of the caller's namespace is touched; traffic stays on the private
bridge (10.123.0.0/24 by default; `subnet=`, `brook chaos run --subnet` or BROOK_CHAOS_SUBNET choose
another) or on each namespace's own 127.0.0.1. Every name is under the run's own tag
(`brooknet<pid>-<hex>`) and the bridge lives in the run's own hub namespace, so two clusters never
share a namespace, bridge or route; a distinct subnet per parallel run keeps addresses in logs and
reports unambiguous too. Removing a namespace removes
its veth, so `close()` (also run on a failed start, and by the tests' finalizers) deletes every
namespace it made after stopping every process by PID; `cleanup_stale()` removes namespaces left by a
process that no longer exists.

Cuts are iptables DROP rules in a `BROOK-CUT` chain inside the node namespaces (silent loss, like a
real partition, not a refused connection):

    with NetnsCluster(tmp_dir) as c:            # 3 controllers + 3 brokers, healthy
        c.isolate(leader, followers)            # both directions, between every pair
        c.isolate(101, c.controller_ids)        # a broker from the controllers
        c.heal()                                # flush every cut
        c.agent.call("describe_cluster")
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.cli.launcher import wait_or_kill_group

__all__ = ["Agent", "NetnsCluster", "NetnsError", "cleanup_stale", "parse_subnet", "unavailable"]

PREFIX = "brooknet"
SUBNET = "10.123.0"
SUBNET_ENV = "BROOK_CHAOS_SUBNET"
CONTROLLER_HOST_BASE = 10      # controller n -> .1n
CLIENT_HOST = 200
PORTS = {"PLAINTEXT": 9092, "GRPC": 9192, "CONTROLLER": 9093, "RAFT": 9094}
CHAIN = "BROOK-CUT"
CMD_TIMEOUT_S = 10.0
STOP_GRACE_S = 15.0
AGENT_CALL_S = 60.0
# Short failure detection so a cut resolves within seconds (the chaos runner's values).
FAST_FAILURE_DETECTION = {
    "broker.heartbeat.interval.ms": "500",
    "broker.session.timeout.ms": "3000",
    "replica.lag.time.max.ms": "4000",
    "replica.socket.timeout.ms": "3000",
    "replica.fetch.wait.max.ms": "500",
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "unclean.leader.election.enable": "false",
}


class NetnsError(RuntimeError):
    pass


def parse_subnet(text: str) -> str:
    """A /24 for the cluster's bridge, as its first three octets ("10.124.0"; "10.124.0.0/24" is
    accepted too). Raises ValueError for anything else."""
    value = text.strip()
    for suffix in (".0/24", "/24"):
        if value.endswith(suffix) and value.count(".") == (3 if suffix == ".0/24" else 2):
            value = value[: -len(suffix)]
            break
    parts = value.split(".")
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        raise ValueError(f"subnet {text!r}: expected the first three octets of a /24, e.g. 10.124.0")
    return ".".join(str(int(p)) for p in parts)


def _run(argv: list[str], timeout_s: float = CMD_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """None when network namespaces can be used here, else the reason (one line)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network partitions need root (ip netns, iptables); run as root to include them"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install -y iproute2 iptables)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        _run(["ip", "netns", "add", probe])
    except (NetnsError, OSError, subprocess.TimeoutExpired) as e:
        return f"cannot create a network namespace: {e}"
    try:
        _run(["ip", "netns", "exec", probe, "iptables", "-S"])
        _run(["ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"])
    except (NetnsError, OSError, subprocess.TimeoutExpired) as e:
        return f"network namespaces lack iptables or veth support: {e}"
    finally:
        _run(["ip", "netns", "del", probe], check=False)
    return None


def _namespaces() -> list[str]:
    result = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def cleanup_stale() -> list[str]:
    """Delete `brooknet<pid>-*` namespaces whose creating process is gone. Returns their names."""
    removed = []
    for name in _namespaces():
        if not name.startswith(PREFIX):
            continue
        pid_text = name[len(PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or Path(f"/proc/{pid_text}").exists():
            continue
        _kill_namespace_processes(name)
        _run(["ip", "netns", "del", name], check=False)
        removed.append(name)
    return removed


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL the processes inside one of *our* namespaces (by PID, as `ip netns pids` lists them)."""
    result = _run(["ip", "netns", "pids", ns], check=False)
    for text in result.stdout.split():
        if text.isdigit():
            try:
                os.kill(int(text), signal.SIGKILL)
            except ProcessLookupError:
                pass


@dataclass
class Node:
    node_id: int
    roles: tuple[str, ...]
    ip: str
    ns: str
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles

    @property
    def is_broker(self) -> bool:
        return "broker" in self.roles

    @property
    def controller_address(self) -> str:
        return f"{self.ip}:{PORTS['CONTROLLER']}"

    @property
    def grpc_address(self) -> str:
        return f"{self.ip}:{PORTS['GRPC']}"

    @property
    def kafka_address(self) -> str:
        return f"{self.ip}:{PORTS['PLAINTEXT']}"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class NetnsCluster:
    """N controllers + M brokers, one network namespace each, on a private bridge; see the module doc."""

    data_dir: Path
    controllers: int = 3
    brokers: int = 3
    subnet: str = SUBNET
    overrides: Mapping[str, str] = field(default_factory=lambda: dict(FAST_FAILURE_DETECTION))
    python: str = sys.executable
    tag: str = ""
    nodes: dict[int, Node] = field(default_factory=dict)
    cuts: set[frozenset[int | str]] = field(default_factory=set)
    throttles: dict[int, list[int]] = field(default_factory=dict)  # node -> destinations it is throttled to
    agent: Agent | None = None
    _namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.tag = self.tag or f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}"
        self.secret = secrets.token_hex(16)
        for i in range(1, self.controllers + 1):
            self._add(i, ("controller",), CONTROLLER_HOST_BASE + i)
        for j in range(self.brokers):
            self._add(101 + j, ("broker",), 101 + j)
        self.client_ns = f"{self.tag}-cli"
        self.client_ip = f"{self.subnet}.{CLIENT_HOST}"

    def _add(self, node_id: int, roles: tuple[str, ...], host: int) -> None:
        self.nodes[node_id] = Node(node_id, roles, f"{self.subnet}.{host}", f"{self.tag}-n{node_id}",
                                   self.data_dir / f"node-{node_id}")

    # -- addresses (the same names as LocalCluster) ----------------------------------------------

    @property
    def controller_ids(self) -> list[int]:
        return sorted(i for i, n in self.nodes.items() if n.is_controller)

    @property
    def broker_ids(self) -> list[int]:
        return sorted(i for i, n in self.nodes.items() if n.is_broker)

    @property
    def controller_bootstrap(self) -> str:
        return ",".join(self.nodes[i].controller_address for i in self.controller_ids)

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def is_running(self, node_id: int) -> bool:
        return self.nodes[node_id].running()

    # -- network -------------------------------------------------------------------------------

    def _ip(self, *args: str) -> None:
        _run(["ip", *args])

    def _in(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ip", "netns", "exec", ns, *argv], check=check)

    def setup_network(self) -> None:
        """The hub namespace with its bridge, and one namespace + veth + address per member."""
        cleanup_stale()
        hub = f"{self.tag}-hub"
        self._ip("netns", "add", hub)
        self._namespaces.append(hub)
        self._ip("-n", hub, "link", "set", "lo", "up")
        self._ip("-n", hub, "link", "add", "br0", "type", "bridge")
        self._ip("-n", hub, "link", "set", "br0", "up")
        members = [(n.ns, n.ip, f"h{i}") for i, n in sorted(self.nodes.items())]
        members.append((self.client_ns, self.client_ip, "hcli"))
        for ns, ip, hub_end in members:
            self._ip("netns", "add", ns)
            self._namespaces.append(ns)
            self._ip("-n", hub, "link", "add", hub_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip("-n", hub, "link", "set", hub_end, "master", "br0")
            self._ip("-n", hub, "link", "set", hub_end, "up")
            self._ip("-n", ns, "link", "set", "lo", "up")
            self._ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            self._ip("-n", ns, "link", "set", "eth0", "up")
            self._in(ns, "iptables", "-N", CHAIN)
            self._in(ns, "iptables", "-A", "INPUT", "-j", CHAIN)
            self._in(ns, "iptables", "-A", "OUTPUT", "-j", CHAIN)

    def _ns_of(self, member: int | str) -> tuple[str, str]:
        if member == "client":
            return self.client_ns, self.client_ip
        node = self.nodes[int(member)]
        return node.ns, node.ip

    def isolate(self, a: int | str | Iterable[int | str], b: int | str | Iterable[int | str]) -> None:
        """Drop every packet between each member of `a` and each member of `b` (both directions, in
        both namespaces). Members are node ids or "client". Other links are untouched."""
        left = [a] if isinstance(a, int | str) else list(a)
        right = [b] if isinstance(b, int | str) else list(b)
        for x in left:
            for y in right:
                if x == y or frozenset((x, y)) in self.cuts:
                    continue
                for here, there in ((x, y), (y, x)):
                    ns, _ = self._ns_of(here)
                    _, peer_ip = self._ns_of(there)
                    self._in(ns, "iptables", "-A", CHAIN, "-s", peer_ip, "-j", "DROP")
                    self._in(ns, "iptables", "-A", CHAIN, "-d", peer_ip, "-j", "DROP")
                self.cuts.add(frozenset((x, y)))

    def unisolate(self, a: int | str | Iterable[int | str], b: int | str | Iterable[int | str]) -> None:
        """Remove the cuts between each member of `a` and each member of `b` (others stay)."""
        left = [a] if isinstance(a, int | str) else list(a)
        right = [b] if isinstance(b, int | str) else list(b)
        for x in left:
            for y in right:
                if frozenset((x, y)) not in self.cuts:
                    continue
                for here, there in ((x, y), (y, x)):
                    ns, _ = self._ns_of(here)
                    _, peer_ip = self._ns_of(there)
                    self._in(ns, "iptables", "-D", CHAIN, "-s", peer_ip, "-j", "DROP", check=False)
                    self._in(ns, "iptables", "-D", CHAIN, "-d", peer_ip, "-j", "DROP", check=False)
                self.cuts.discard(frozenset((x, y)))

    def heal(self) -> None:
        """Remove every cut and every rate limit."""
        for ns in [n.ns for n in self.nodes.values()] + [self.client_ns]:
            if ns in self._namespaces:
                self._in(ns, "iptables", "-F", CHAIN)
        self.cuts.clear()
        self.unthrottle()

    def throttle(self, src: int, dst: int, rate_kbit: int) -> None:
        """Rate-limit what node `src` sends to node `dst` to `rate_kbit` kbit/s (one direction; every
        other link of `src`, and `dst`'s answers, untouched): this machine's kernel has no netem, so a
        slow link is a token bucket. In `src`'s namespace: an htb root on eth0 whose default class is
        unlimited, one htb class per throttled destination (u32 filter on the destination address)
        with a tbf leaf doing the limiting (tbf splits GSO packets; an htb class alone would let a
        64 KB segment through at once). The bucket holds 4 KB, so a small answer on an idle link
        passes at once and a large one takes size / rate."""
        ns = self.nodes[src].ns
        dst_ip = self.nodes[dst].ip
        targets = self.throttles.get(src)
        if targets is not None and dst in targets:
            return
        if targets is None:
            self._in(ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1")
            self._in(ns, "tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit",
                     "quantum", "60000")
            targets = self.throttles[src] = []
        minor = 10 + len(targets)
        self._in(ns, "tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", f"1:{minor}", "htb", "rate",
                 "10gbit", "quantum", "60000")
        self._in(ns, "tc", "qdisc", "add", "dev", "eth0", "parent", f"1:{minor}", "handle", f"{minor}:", "tbf",
                 "rate", f"{int(rate_kbit)}kbit", "burst", "4kb", "latency", "10s")
        self._in(ns, "tc", "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                 "match", "ip", "dst", f"{dst_ip}/32", "flowid", f"1:{minor}")
        targets.append(dst)

    def unthrottle(self, src: int | None = None) -> None:
        """Remove the rate limits of node `src` (every node's when None): its root qdisc goes."""
        for node in [src] if src is not None else list(self.throttles):
            if self.throttles.pop(node, None) is not None and self.nodes[node].ns in self._namespaces:
                self._in(self.nodes[node].ns, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)

    def throttled(self, node_id: int) -> list[str]:
        """The qdiscs now on a node's eth0 (for reports and tests)."""
        return self._in(self.nodes[node_id].ns, "tc", "qdisc", "show", "dev", "eth0").stdout.splitlines()

    def rules(self, node_id: int) -> list[str]:
        """The DROP rules now in a node's namespace (for reports)."""
        out = self._in(self.nodes[node_id].ns, "iptables", "-S", CHAIN).stdout.splitlines()
        return [line for line in out if "DROP" in line]

    # -- processes -----------------------------------------------------------------------------

    def render_properties(self, node: Node) -> str:
        controllers = [self.nodes[i] for i in self.controller_ids]
        listeners = []
        if node.is_controller:
            listeners.append(f"CONTROLLER://{node.controller_address}")
        if node.is_broker:
            listeners += [f"PLAINTEXT://{node.kafka_address}", f"GRPC://{node.grpc_address}"]
        props = {
            "process.roles": ",".join(node.roles),
            "node.id": str(node.node_id),
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(listeners),
            "controller.quorum.voters": ",".join(f"{c.node_id}@{c.ip}:{PORTS['RAFT']}" for c in controllers),
            "controller.quorum.bootstrap.servers": self.controller_bootstrap,
            "controller.quorum.secret": self.secret,
            "log.dirs": str(node.directory / "data"),
            "metadata.log.dir": str(node.directory / "metadata"),
            # Test namespaces on a private bridge: the opt-in for PLAINTEXT off loopback (issue 11).
            "allow.unauthenticated.listeners": "true",
            **self.overrides,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROOK_CFG_")}
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start_node(self, node_id: int) -> int:
        node = self.nodes[node_id]
        if node.running():
            raise NetnsError(f"node {node_id} is already running")
        node.directory.mkdir(parents=True, exist_ok=True)
        config = node.directory / "server.properties"
        config.write_text(self.render_properties(node), encoding="utf-8")
        with open(node.log_path, "ab") as log:
            # `ip netns exec` execs the command, so the PID is the server's own.
            node.proc = subprocess.Popen(
                ["ip", "netns", "exec", node.ns, self.python, "-m", "cluster.cli.main", "server",
                 "--config", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
                cwd=str(node.directory), start_new_session=True)
        node.starts += 1
        return node.proc.pid

    def stop_node(self, node_id: int, sig: int = signal.SIGTERM, wait_s: float = STOP_GRACE_S) -> int | None:
        node = self.nodes[node_id]
        proc = node.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(sig)
        return wait_or_kill_group(proc, wait_s)

    def start(self, timeout_s: float = 60.0) -> None:
        """Network, nodes (controllers first), the client agent; then wait until healthy.
        On any failure everything is torn down before the error propagates."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.setup_network()
            for node_id in self.controller_ids + self.broker_ids:
                self.start_node(node_id)
            self.agent = Agent(self.client_ns, self.controller_bootstrap, self.data_dir / "agent.log",
                               self.python, self._env())
            self.wait_healthy(timeout_s)
        except BaseException:
            self.close()
            raise

    def wait_healthy(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """An active controller and every running broker unfenced (asked from the client namespace)."""
        assert self.agent is not None
        expected = [i for i in self.broker_ids if self.is_running(i)]
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while True:
            dead = [i for i, n in self.nodes.items() if n.proc is not None and n.proc.poll() is not None
                    and n.starts and i in expected + self.controller_ids]
            if dead:
                raise NetnsError(f"nodes {dead} exited\n{self.log_tails(dead)}")
            try:
                last = self.agent.call("describe_cluster", timeout_s=10)
                unfenced = {b["id"] for b in last["brokers"] if not b["fenced"]}
                if last["active_controller_id"] >= 0 and set(expected) <= unfenced:
                    return last
            except NetnsError as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise NetnsError(f"not healthy after {timeout_s:g}s: {last}\n{self.log_tails()}")
            time.sleep(0.3)

    def log_tails(self, node_ids: Iterable[int] | None = None, lines: int = 15) -> str:
        out = []
        for i in node_ids if node_ids is not None else sorted(self.nodes):
            try:
                text = self.nodes[i].log_path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = []
            out.append(f"--- node {i} ({self.nodes[i].log_path})\n" + "\n".join(text))
        return "\n".join(out)

    def close(self) -> None:
        """Stop the agent and every node by PID (brokers first), then delete every namespace made."""
        try:
            if self.agent is not None:
                self.agent.close()
            running = [i for i in self.broker_ids + self.controller_ids if self.is_running(i)]
            for i in running:
                proc = self.nodes[i].proc
                assert proc is not None
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for i in running:
                proc = self.nodes[i].proc
                assert proc is not None
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(timeout=5)
        finally:
            for ns in reversed(self._namespaces):
                _kill_namespace_processes(ns)
                _run(["ip", "netns", "del", ns], check=False)
            self._namespaces.clear()

    def __enter__(self) -> NetnsCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Agent:
    """The client side: `python -m cluster.chaos.netns agent` inside the client namespace, one JSON line per call."""

    def __init__(self, ns: str, bootstrap: str, log_path: Path, python: str, env: Mapping[str, str]) -> None:
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, python, "-m", "cluster.chaos.netns", "agent", "--bootstrap", bootstrap],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=dict(env), start_new_session=True)
        self._lock = threading.Lock()

    def call(self, command: str, timeout_s: float = AGENT_CALL_S, **kwargs: Any) -> Any:
        with self._lock:
            if self.proc.poll() is not None:
                raise NetnsError(f"the client agent exited ({self.proc.returncode})")
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write((json.dumps({"cmd": command, "args": kwargs}) + "\n").encode())
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
            if not ready:
                os.killpg(self.proc.pid, signal.SIGKILL)
                raise NetnsError(f"agent call {command} timed out after {timeout_s:g}s (agent killed)")
            line = self.proc.stdout.readline()
        if not line:
            raise NetnsError(f"the client agent exited during {command}")
        reply = json.loads(line)
        if "error" in reply:
            raise NetnsError(f"{command}: {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        self._log.close()


# --------------------------------------------------------------------------------------------------
# The agent (runs inside the client namespace)


class _Writer:
    """Idempotent acks=all writes of unique values; every outcome recorded (ok / failed with reason)."""

    def __init__(self, bootstrap: str, topic: str, partition: int, prefix: str) -> None:
        self.bootstrap, self.topic, self.partition, self.prefix = bootstrap, topic, partition, prefix
        self.acked: dict[str, int] = {}
        self.ack_info: dict[str, tuple[float, int, int]] = {}  # value -> (wall time, leader id, leader epoch)
        self.failures: list[tuple[float, str, str]] = []
        self.sent = 0
        self.sequence = 0
        self.producer_id = -1
        self.stop_event = threading.Event()
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _producer_id(self, admin: Any) -> int:
        from brookpb import broker_pb2 as bpb
        from cluster.client import BrokerClient
        deadline = time.monotonic() + 20
        while True:
            cluster = admin.describe_cluster()
            for b in cluster.brokers:
                if b.fenced:
                    continue
                try:
                    with BrokerClient(f"{b.host}:{b.grpc_port}", 3.0) as client:
                        reply = client.call("InitProducerId", bpb.InitProducerIdRequest())
                    if reply.error_code == 0:
                        return int(reply.producer_id)
                except Exception:  # noqa: BLE001 - try the next broker
                    pass
            if time.monotonic() > deadline:
                raise NetnsError("no producer id")
            time.sleep(0.2)

    def _run(self) -> None:
        from cluster.client import ControllerClient, PartitionRouter
        from cluster.errors import BrookError
        from storage.batch import build_batch
        from storage.records import Record
        try:
            with ControllerClient(self.bootstrap, timeout_s=3.0) as admin, \
                    PartitionRouter(admin, timeout_s=3.0) as router:
                self.producer_id = self._producer_id(admin)
                while not self.stop_event.is_set():
                    self.sent += 1
                    value = f"{self.prefix}-{self.sent}"
                    # Re-send the same sequence until acknowledged: retries cannot duplicate.
                    while not self.stop_event.is_set():
                        batch = build_batch([Record(key=None, value=value.encode(),
                                                    timestamp_ms=int(time.time() * 1000))],
                                            producer_id=self.producer_id, producer_epoch=0,
                                            base_sequence=self.sequence)
                        try:
                            reply = router.produce(self.topic, self.partition, batch, -1, 3000)
                            error = "" if reply.error_code == 0 else (reply.error_message or str(reply.error_code))
                        except BrookError as e:
                            reply, error = None, e.message
                        if not error and reply is not None:
                            self.acked[value] = int(reply.base_offset)
                            try:  # the (cached) leader this request went to
                                leader = router.leader(self.topic, self.partition)
                                self.ack_info[value] = (time.time(), leader.leader_id, leader.leader_epoch)
                            except BrookError:
                                self.ack_info[value] = (time.time(), -1, -1)
                            self.sequence += 1
                            break
                        self.failures.append((time.time(), value, error))
                        time.sleep(0.1)
                    time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            self.error = f"{type(e).__name__}: {e}"

    def status(self) -> dict[str, Any]:
        return {"sent": self.sent, "acked": len(self.acked), "failed": len(self.failures), "error": self.error,
                "last_failure": self.failures[-1][2] if self.failures else None}


def _agent_commands(bootstrap: str) -> dict[str, Any]:
    from brookpb import admin_pb2 as apb
    from brookpb import broker_pb2 as bpb
    from cluster.client import BrokerClient, ControllerClient, PartitionRouter
    from storage.batch import decode_batch, iter_batches

    writers: dict[str, _Writer] = {}

    def admin() -> ControllerClient:
        return ControllerClient(bootstrap, timeout_s=3.0)

    def describe_cluster() -> dict[str, Any]:
        with admin() as c:
            r = c.describe_cluster()
        return {"active_controller_id": r.active_controller_id,
                "brokers": [{"id": b.broker_id, "fenced": b.fenced, "address": f"{b.host}:{b.grpc_port}"}
                            for b in r.brokers]}

    def partition(topic: str, partition: int = 0) -> dict[str, Any]:
        with admin() as c:
            info = c.describe_topics([topic]).topics[0]
        p = next(p for p in info.partitions if p.partition == partition)
        return {"leader": p.leader, "leader_epoch": p.leader_epoch, "replicas": list(p.replicas), "isr": list(p.isr)}

    def create_topic(name: str, partitions: int = 1, rf: int = 3, configs: dict[str, str] | None = None) -> bool:
        with admin() as c:
            reply = c.create_topics([apb.CreateTopicRequest(name=name, partitions=partitions, replication_factor=rf,
                                                            configs=configs or {})])
            if reply.results[0].error_code:
                raise NetnsError(reply.results[0].error_message)
            deadline = time.monotonic() + 20
            while not all(p.leader >= 0 and len(p.isr) == rf
                          for p in c.describe_topics([name]).topics[0].partitions):
                if time.monotonic() > deadline:
                    raise NetnsError(f"{name}: no leader / full ISR after 20s")
                time.sleep(0.1)
        return True

    def writer_start(name: str, topic: str, partition: int = 0) -> bool:
        w = _Writer(bootstrap, topic, partition, name)
        writers[name] = w
        w.thread.start()
        return True

    def writer_status(name: str) -> dict[str, Any]:
        return writers[name].status()

    def writer_stop(name: str) -> dict[str, Any]:
        w = writers.pop(name)
        w.stop_event.set()
        w.thread.join(timeout=30)
        return {**w.status(), "acked_values": w.acked, "ack_info": w.ack_info,
                "failures": [[t, v, e] for t, v, e in w.failures[-200:]]}

    def read_all(topic: str, partition: int = 0) -> list[list[Any]]:
        out: list[list[Any]] = []
        with admin() as c, PartitionRouter(c, timeout_s=5.0) as router:
            offset = router.list_offset(topic, partition, -2)
            end = router.list_offset(topic, partition, -1)
            while offset < end:
                reply = router.fetch(topic, partition, offset, max_bytes=1 << 20, max_wait_ms=100)
                if reply.error_code:
                    raise NetnsError(f"fetch {topic}-{partition}@{offset}: {reply.error_message or reply.error_code}")
                if not reply.records:
                    break
                for header, raw in iter_batches(reply.records):
                    _, records = decode_batch(bytes(raw))
                    for i, r in enumerate(records):
                        o = header.base_offset + (r.offset_delta if r.offset_delta >= 0 else i)
                        if o >= offset:
                            out.append([o, (r.value or b"").decode()])
                    offset = max(offset, header.base_offset + header.last_offset_delta + 1)
        return out

    def replicas(topic: str, partition: int = 0) -> dict[str, Any]:
        """Per broker: its replica state and a digest of its bytes up to the smallest HW among them."""
        cluster = describe_cluster()
        states: dict[int, Any] = {}
        for b in cluster["brokers"]:
            with BrokerClient(b["address"], 3.0) as client:
                for r in client.replica_states().replicas:
                    if r.topic == topic and r.partition == partition:
                        states[b["id"]] = (b["address"], r)
        upper = min(r.high_watermark for _, r in states.values())
        out: dict[str, Any] = {"upper": upper, "brokers": {}}
        for broker_id, (address, r) in sorted(states.items()):
            digest, offset = hashlib.sha256(), 0
            with BrokerClient(address, 3.0) as client:
                while offset < upper:
                    reply = client.call("ReadReplica", bpb.ReadReplicaRequest(
                        topic=topic, partition=partition, offset=offset, upper_bound=upper, max_bytes=1 << 20))
                    if reply.error_code or not reply.records:
                        break
                    digest.update(reply.records)
                    last = None
                    for header, _ in iter_batches(reply.records):
                        last = header
                    assert last is not None
                    offset = last.base_offset + last.last_offset_delta + 1
            out["brokers"][str(broker_id)] = {
                "is_leader": r.is_leader, "leader_epoch": r.leader_epoch, "hw": r.high_watermark,
                "leo": r.log_end_offset, "isr": list(r.isr), "read_to": offset,
                "digest": base64.b16encode(digest.digest()[:12]).decode()}
        return out

    return {"ping": lambda: True, "describe_cluster": describe_cluster, "partition": partition,
            "create_topic": create_topic, "writer_start": writer_start, "writer_status": writer_status,
            "writer_stop": writer_stop, "read_all": read_all, "replicas": replicas}


def _agent_main(bootstrap: str) -> int:
    from cluster.errors import BrookError
    commands = _agent_commands(bootstrap)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            reply = {"result": commands[request["cmd"]](**request.get("args", {}))}
        except BrookError as e:
            reply = {"error": e.message}
        except Exception as e:  # noqa: BLE001 - one line back to the caller
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cluster.chaos.netns")
    sub = parser.add_subparsers(dest="command", required=True)
    agent = sub.add_parser("agent", help="serve JSON-line client calls on stdin/stdout (inside a namespace)")
    agent.add_argument("--bootstrap", required=True)
    sub.add_parser("check", help="say whether network partitions can run here")
    sub.add_parser("cleanup", help="delete namespaces left by a brooknet process that is gone")
    args = parser.parse_args()
    if args.command == "agent":
        sys.exit(_agent_main(args.bootstrap))
    if args.command == "check":
        reason = unavailable()
        print(reason or "network namespaces are available")
        sys.exit(1 if reason else 0)
    print("\n".join(cleanup_stale()) or "nothing to clean")
