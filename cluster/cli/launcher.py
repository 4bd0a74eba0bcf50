"""The local launcher behind `brook dev`, `make run` and the integration-test fixture.

A `LocalCluster` is N controllers and M brokers (or N combined nodes) as separate processes on
127.0.0.1, with everything under one data directory:

    <data-dir>/node-<id>/server.properties   the node's config (ports and the quorum secret live here)
    <data-dir>/node-<id>/server.log          its stdout and stderr
    <data-dir>/node-<id>/server.pid          the PID of the running process
    <data-dir>/node-<id>/data, metadata      log.dirs and metadata.log.dir

Starting again on an existing data directory reuses the ports and the secret from the properties
files, so a restarted cluster keeps its identity and its data. Every process is started in its own
session and stopped by its PID only (SIGTERM, a bounded wait, then SIGKILL): never by name.

`LocalCluster.adopt(data_dir)` takes over a cluster another launcher runs there (`make run`, for
`brook chaos run`): its nodes are found from the PID files, checked against /proc, and signalled by
PID; a node it restarts is its own child. The launcher that started the cluster follows such
restarts through the PID files, so its `stop()` (Ctrl-C of `make run`) still stops every node.

    with LocalCluster(data_dir, controllers=3, brokers=3) as cluster:
        cluster.wait_healthy(60)
        cluster.kill(101, signal.SIGKILL)
        cluster.restart(101)
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cluster.config import parse_properties
from cluster.errors import BrookError, ConfigError, ErrorCode

__all__ = ["BROKER_ID_BASE", "AdoptedProcess", "LaunchError", "LocalCluster", "NodeSpec", "free_ports"]

BROKER_ID_BASE = 101
HOST = "127.0.0.1"
# Bounds of the launcher's own waits (all are overridable per call).
STOP_GRACE_S = 15.0      # SIGTERM → SIGKILL; a broker's controlled shutdown fits well inside it
HEALTHY_WAIT_S = 60.0    # a cold start of 3+3 takes a few seconds on this machine
POLL_INTERVAL_S = 0.2
LOG_TAIL_LINES = 20
NODES_MAX = 64           # a sanity bound on --controllers / --brokers
EXIT_UNKNOWN = 255       # AdoptedProcess.returncode of a node that exited without a signal from us


class LaunchError(BrookError):
    """The cluster could not be started; `details` holds log tails for the user."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message, ErrorCode.unknown_server_error)
        self.details = details


@dataclass
class NodeSpec:
    """One node's identity, ports and files. Ports are None for listeners the node does not have."""

    node_id: int
    roles: tuple[str, ...]
    directory: Path
    controller_port: int | None = None   # CONTROLLER: the controller's gRPC (AdminService, brokers)
    raft_port: int | None = None         # pysyncobj, listed in controller.quorum.voters
    kafka_port: int | None = None        # PLAINTEXT: the Kafka wire protocol
    grpc_port: int | None = None         # GRPC: the broker's gRPC (BrokerService)
    metrics_port: int | None = None      # metrics.port: HTTP /metrics, /healthz/*, /ui
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_controller(self) -> bool:
        return "controller" in self.roles

    @property
    def is_broker(self) -> bool:
        return "broker" in self.roles

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def pid_path(self) -> Path:
        return self.directory / "server.pid"

    @property
    def controller_address(self) -> str | None:
        return f"{HOST}:{self.controller_port}" if self.controller_port else None

    @property
    def raft_address(self) -> str | None:
        return f"{HOST}:{self.raft_port}" if self.raft_port else None

    @property
    def kafka_address(self) -> str | None:
        return f"{HOST}:{self.kafka_port}" if self.kafka_port else None

    @property
    def grpc_address(self) -> str | None:
        return f"{HOST}:{self.grpc_port}" if self.grpc_port else None

    @property
    def metrics_url(self) -> str | None:
        """The node's HTTP endpoint: `<url>/metrics`, `<url>/healthz/ready`, `<url>/ui`."""
        return f"http://{HOST}:{self.metrics_port}" if self.metrics_port else None

    def ports(self) -> list[int]:
        """The listener ports (the metrics port is `metrics_port`)."""
        return [p for p in (self.controller_port, self.raft_port, self.kafka_port, self.grpc_port) if p]


def free_ports(count: int, base_port: int | None = None, taken: Sequence[int] = ()) -> list[int]:
    """`count` ports on 127.0.0.1 that are free now: consecutive from `base_port`, or chosen by the OS.

    Raises LaunchError when a port from `base_port` on is in use.
    """
    ports: list[int] = []
    if base_port is not None:
        candidate = base_port
        while len(ports) < count:
            if candidate > 65535:
                raise LaunchError(f"not enough ports from --base-port {base_port}")
            if candidate not in taken:
                if not _port_is_free(candidate):
                    raise LaunchError(f"port {candidate} on {HOST} is in use (pick another --base-port)")
                ports.append(candidate)
            candidate += 1
        return ports
    holders: list[socket.socket] = []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            holders.append(s)  # held until all are picked, so the OS hands out distinct ports
            port = s.getsockname()[1]
            if port not in taken:
                ports.append(port)
    finally:
        for s in holders:
            s.close()
    return ports


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _live_argv(pid: int) -> list[str] | None:
    """The command line of process `pid`; None when it is gone or a zombie (or /proc is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X") or not raw:
        return None
    return [a.decode(errors="replace") for a in raw.rstrip(b"\0").split(b"\0")]


class AdoptedProcess:
    """A running node that another process started, held by PID: the part of `subprocess.Popen` that
    LocalCluster uses (`pid`, `args`, `returncode`, `poll`, `send_signal`, `wait`).

    It counts as running while /proc/PID is a live process (not a zombie) whose command line has the
    node's config path, and a signal is sent (os.kill) only right after that check, so a reused PID is
    never signalled. Its parent reaps it, so its exit code is unknown: `returncode` is minus the last
    terminating signal sent through this object (as Popen reports a death by signal), else EXIT_UNKNOWN.
    """

    def __init__(self, pid: int, config_path: Path, args: list[str]) -> None:
        self.pid = pid
        self.config_path = config_path
        self.args = args
        self.returncode: int | None = None
        self._last_signal: int | None = None

    @classmethod
    def from_pid_file(cls, spec: NodeSpec) -> AdoptedProcess | None:
        """The node's process named by its server.pid, if that PID runs with the node's config; else None."""
        try:
            pid = int(spec.pid_path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None
        argv = _live_argv(pid) if pid > 0 else None
        if argv is None or str(spec.config_path) not in argv:
            return None
        return cls(pid, spec.config_path, argv)

    def poll(self) -> int | None:
        if self.returncode is None:
            argv = _live_argv(self.pid)
            if argv is None or str(self.config_path) not in argv:
                self.returncode = -self._last_signal if self._last_signal else EXIT_UNKNOWN
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """os.kill(pid, sig) if the process is still this node's (like Popen: nothing once it exited)."""
        if self.poll() is not None:
            return
        os.kill(self.pid, sig)
        if sig not in (signal.SIGSTOP, signal.SIGCONT, signal.SIGTSTP, 0):
            self._last_signal = sig

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.05)
        return code


def wait_or_kill_group(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """Wait up to `timeout_s` for a process started in its own session (pgid == pid) to exit after a
    signal; past that, SIGKILL its whole process group. Returns its exit code."""
    try:
        return proc.wait(timeout=max(0.0, timeout_s))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.wait(timeout=5)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def parse_overrides(overrides: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --override {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


class LocalCluster:
    """N controllers + M brokers (or N combined nodes) as local processes; see the module doc."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        controllers: int = 3,
        brokers: int = 3,
        *,
        combined: bool = False,
        base_port: int | None = None,
        insecure: bool = False,
        overrides: Sequence[str] | Mapping[str, str] = (),
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        kafka_listener: str = "PLAINTEXT",
        node_overrides: Mapping[int, Mapping[str, str]] | None = None,
    ) -> None:
        if not 1 <= controllers <= NODES_MAX:
            raise LaunchError(f"--controllers must be 1..{NODES_MAX}, got {controllers}")
        if not combined and not 1 <= brokers <= NODES_MAX:
            raise LaunchError(f"--brokers must be 1..{NODES_MAX}, got {brokers}")
        if base_port is not None and not 1024 <= base_port <= 65000:
            raise LaunchError(f"--base-port must be 1024..65000, got {base_port}")
        self.data_dir = Path(data_dir).resolve()
        self.combined = combined
        self.controller_count = controllers
        self.broker_count = controllers if combined else brokers
        self.base_port = base_port
        self.insecure = insecure
        self.overrides = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
        self.env = dict(os.environ if env is None else env)
        self.python = python
        # The name of the brokers' Kafka listener; its protocol comes from listener.security.protocol.map
        # (e.g. SASL_SSL with the ssl.* and sasl.* keys in `overrides`).
        self.kafka_listener = kafka_listener
        # Per-node settings applied after `overrides` (e.g. each broker's own certificate).
        self.node_overrides = {i: dict(o) for i, o in (node_overrides or {}).items()}
        self.secret: str | None = None
        self.nodes: dict[int, NodeSpec] = {}
        self._procs: dict[int, subprocess.Popen[bytes] | AdoptedProcess] = {}
        self._prepared = False

    @classmethod
    def adopt(cls, data_dir: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> LocalCluster | None:
        """The cluster that another launcher (`brook dev`, `make run`) runs under `data_dir`, to drive.

        The topology and ports are read from node-<id>/server.properties (never rewritten) and every
        node's process from its server.pid (an AdoptedProcess). Returns None when no node of it is
        running; raises LaunchError when only some are, or the directory is not a `brook dev` layout.
        Nodes started later (`start_node`, `restart`) run the command line `start_node` always uses,
        with the adopted nodes' Python, as children of this process; nothing stops them at exit.
        """
        root = Path(data_dir).resolve()
        roles: dict[int, tuple[str, ...]] = {}
        for directory in root.glob("node-*"):
            path = directory / "server.properties"
            if directory.name[5:].isdigit() and path.is_file():
                props = parse_properties(path.read_text(encoding="utf-8"), str(path))
                roles[int(directory.name[5:])] = tuple(
                    sorted(r.strip() for r in props.get("process.roles", "").split(",") if r.strip()))
        if not roles:
            return None
        controllers = sum("controller" in r for r in roles.values())
        brokers = sum("broker" in r for r in roles.values())
        combined = any(len(r) == 2 for r in roles.values())
        if not controllers or (not combined and not brokers):
            raise LaunchError(f"{root} holds no {'broker' if controllers else 'controller'} node: "
                              "not a cluster started by `brook dev`")
        cluster = cls(root, controllers, brokers, combined=combined, env=env)
        if sorted(roles) != sorted(i for i, _ in cluster._layout()):
            raise LaunchError(f"{root} holds nodes {', '.join(map(str, sorted(roles)))}: not a layout "
                              "`brook dev` writes")
        existing = {node_id: cluster._read_existing(node_id, node_roles) for node_id, node_roles in cluster._layout()}
        cluster._check_topology(existing)
        for node_id, node_roles in cluster._layout():
            spec = NodeSpec(node_id, node_roles, root / f"node-{node_id}")
            props = existing[node_id] or {}
            _recover_ports(spec, props)
            cluster.secret = props.get("controller.quorum.secret", cluster.secret)
            cluster.nodes[node_id] = spec
        cluster.insecure = cluster.secret is None
        cluster._prepared = True  # the configs stay as they are
        found = {i: AdoptedProcess.from_pid_file(spec) for i, spec in cluster.nodes.items()}
        running = {i: proc for i, proc in found.items() if proc is not None}
        if not running:
            return None
        stopped = sorted(set(found) - set(running))
        if stopped:
            raise LaunchError(f"nodes {', '.join(map(str, sorted(running)))} of the cluster under {root} are running "
                              f"but nodes {', '.join(map(str, stopped))} are not: restart it (`make run`) first")
        cluster._procs.update(running)
        argv = next(iter(running.values())).args
        if argv[1:3] == ["-m", "cluster.cli.main"] and os.path.isabs(argv[0]):
            cluster.python = argv[0]
        return cluster

    def _follow_restarts(self) -> None:
        """Hold, for a node this object started that has exited, the process now named by its PID file
        (another process restarted it: `brook chaos run` on a `make run` cluster), so `pids` and `stop()`
        still cover every node."""
        for node_id, proc in list(self._procs.items()):
            if proc.poll() is not None:
                replacement = AdoptedProcess.from_pid_file(self.nodes[node_id])
                # start_node sets _procs before it writes the PID file: a PID file naming a process this
                # object started (in another thread) is seen with _procs already changed, and skipped.
                if replacement is not None and self._procs.get(node_id) is proc and replacement.pid != proc.pid:
                    self._procs[node_id] = replacement

    # -- layout ------------------------------------------------------------------------------------

    def layout(self) -> list[tuple[int, tuple[str, ...]]]:
        """(node id, roles) of every node this cluster has, before or after `prepare`."""
        return self._layout()

    def _layout(self) -> list[tuple[int, tuple[str, ...]]]:
        if self.combined:
            return [(i, ("broker", "controller")) for i in range(1, self.controller_count + 1)]
        nodes: list[tuple[int, tuple[str, ...]]] = [(i, ("controller",)) for i in range(1, self.controller_count + 1)]
        nodes += [(BROKER_ID_BASE + i, ("broker",)) for i in range(self.broker_count)]
        return nodes

    def prepare(self) -> None:
        """Choose (or recover) ports and the secret, then write every node's properties file."""
        if self._prepared:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        existing = {node_id: self._read_existing(node_id, roles) for node_id, roles in self._layout()}
        self._check_topology(existing)
        secrets_found = {props.get("controller.quorum.secret") for props in existing.values() if props}
        secrets_found.discard(None)
        if len(secrets_found) > 1:
            raise LaunchError(f"the nodes under {self.data_dir} have different controller.quorum.secret values")
        if not self.insecure:
            self.secret = secrets_found.pop() if secrets_found else secrets.token_hex(32)
        taken = [int(p) for props in existing.values() if props for p in _ports_in(props)]
        for node_id, roles in self._layout():
            spec = NodeSpec(node_id, roles, self.data_dir / f"node-{node_id}")
            props = existing[node_id]
            if props:
                _recover_ports(spec, props)
            else:
                ports = iter(free_ports(4 if len(roles) == 2 else 2, self._next_base(taken), taken))
                if spec.is_controller:
                    spec.controller_port, spec.raft_port = next(ports), next(ports)
                if spec.is_broker:
                    spec.kafka_port, spec.grpc_port = next(ports), next(ports)
                taken += spec.ports()
            self.nodes[node_id] = spec
        # Metrics ports after every listener port (a data directory from before metrics.port gets them too).
        for spec in self.nodes.values():
            if spec.metrics_port is None:
                spec.metrics_port = free_ports(1, self._next_base(taken), taken)[0]
                taken.append(spec.metrics_port)
        for spec in self.nodes.values():
            spec.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # The properties hold the quorum secret: this user only.
            fd = os.open(spec.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.render_properties(spec))
            os.chmod(spec.config_path, 0o600)
        self._prepared = True

    def _next_base(self, taken: list[int]) -> int | None:
        if self.base_port is None:
            return None
        return max([self.base_port - 1, *taken]) + 1

    def _read_existing(self, node_id: int, roles: tuple[str, ...]) -> dict[str, str] | None:
        path = self.data_dir / f"node-{node_id}" / "server.properties"
        if not path.exists():
            return None
        props = parse_properties(path.read_text(encoding="utf-8"), str(path))
        found = tuple(sorted(r.strip() for r in props.get("process.roles", "").split(",") if r.strip()))
        if found != tuple(sorted(roles)):
            raise LaunchError(f"{path} has process.roles={props.get('process.roles')!r}, not "
                              f"{','.join(roles)}: this data directory holds another topology "
                              "(use another --data-dir, or delete it)")
        return props

    def _check_topology(self, existing: Mapping[int, dict[str, str] | None]) -> None:
        """A partly existing cluster would get a different voter set: refuse rather than guess."""
        voter_sets = {props.get("controller.quorum.voters", "") for props in existing.values()
                      if props and "controller.quorum.voters" in props}
        present = [i for i, props in existing.items() if props]
        controllers_missing = [i for i, roles in self._layout() if "controller" in roles and not existing[i]]
        if len(voter_sets) > 1 or (present and controllers_missing):
            raise LaunchError(f"{self.data_dir} holds a cluster with another set of controllers "
                              "(use another --data-dir, or delete it)")
        others = sorted(p.name for p in self.data_dir.glob("node-*")
                        if p.name not in {f"node-{i}" for i, _ in self._layout()})
        if others and present:
            raise LaunchError(f"{self.data_dir} also holds {', '.join(others)}: it was created with other "
                              "--controllers/--brokers/--combined values (use another --data-dir, or delete it)")

    def render_properties(self, spec: NodeSpec) -> str:
        """The node's server.properties text (Kafka property names); overrides replace generated keys."""
        controllers = [n for n in self.nodes.values() if n.is_controller]
        listeners = []
        if spec.is_controller:
            listeners.append(f"CONTROLLER://{spec.controller_address}")
        if spec.is_broker:
            listeners += [f"{self.kafka_listener}://{spec.kafka_address}", f"GRPC://{spec.grpc_address}"]
        props: dict[str, str] = {
            "process.roles": ",".join(spec.roles),
            "node.id": str(spec.node_id),
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(listeners),
            "controller.quorum.voters": ",".join(f"{n.node_id}@{n.raft_address}" for n in controllers),
            "controller.quorum.bootstrap.servers": ",".join(str(n.controller_address) for n in controllers),
            "log.dirs": str(spec.directory / "data"),
            "metadata.log.dir": str(spec.directory / "metadata"),
            # The offsets topic waits for this many brokers (as in Kafka): never more than the cluster has.
            "offsets.topic.replication.factor": str(min(3, sum(n.is_broker for n in self.nodes.values()))),
        }
        if spec.metrics_port:
            props["metrics.host"] = HOST
            props["metrics.port"] = str(spec.metrics_port)
        if self.secret is not None:
            props["controller.quorum.secret"] = self.secret
        else:
            props["controller.quorum.insecure.dev"] = "true"
        props.update(self.overrides)
        props.update(self.node_overrides.get(spec.node_id, {}))
        lines = [f"# Written by `brook dev` for node {spec.node_id}; ports and the secret are reused on restart."]
        lines += [f"{key}={_escape(value)}" for key, value in props.items()]
        return "\n".join(lines) + "\n"

    # -- addresses ---------------------------------------------------------------------------------

    def node(self, node_id: int) -> NodeSpec:
        self.prepare()
        try:
            return self.nodes[node_id]
        except KeyError:
            raise LaunchError(f"no node {node_id} (nodes: {', '.join(map(str, sorted(self.nodes)))})") from None

    @property
    def controller_ids(self) -> list[int]:
        self.prepare()
        return [i for i, n in sorted(self.nodes.items()) if n.is_controller]

    @property
    def broker_ids(self) -> list[int]:
        self.prepare()
        return [i for i, n in sorted(self.nodes.items()) if n.is_broker]

    @property
    def controller_bootstrap(self) -> str:
        return ",".join(str(self.node(i).controller_address) for i in self.controller_ids)

    @property
    def kafka_bootstrap(self) -> str:
        return ",".join(str(self.node(i).kafka_address) for i in self.broker_ids)

    @property
    def pids(self) -> dict[int, int]:
        """PIDs of the nodes whose process is still running (including ones another process restarted)."""
        self._follow_restarts()
        return {i: p.pid for i, p in self._procs.items() if p.poll() is None}

    def is_running(self, node_id: int) -> bool:
        proc = self._procs.get(node_id)
        return proc is not None and proc.poll() is None

    def exit_code(self, node_id: int) -> int | None:
        proc = self._procs.get(node_id)
        return None if proc is None else proc.poll()

    # -- processes ---------------------------------------------------------------------------------

    def start(self, wait: bool = True, timeout_s: float = HEALTHY_WAIT_S) -> None:
        """Start every node that is not running; with `wait`, wait until healthy (stopping all on failure)."""
        self.prepare()
        try:
            for node_id in sorted(self.nodes, key=lambda i: (not self.nodes[i].is_controller, i)):
                if not self.is_running(node_id):
                    self.start_node(node_id)
            if wait:
                self.wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise

    def start_node(self, node_id: int) -> int:
        """Start one node (it must not be running) and return its PID."""
        spec = self.node(node_id)
        if self.is_running(node_id):
            raise LaunchError(f"node {node_id} is already running (pid {self._procs[node_id].pid})")
        self._refuse_stale_process(spec)
        env = dict(self.env)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(spec.log_path, "ab") as log:
            log.write(f"\n--- brook dev: starting node {node_id} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                [self.python, "-m", "cluster.cli.main", "server", "--config", str(spec.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(spec.directory),
                start_new_session=True,  # Ctrl-C in the terminal reaches only the launcher, which stops nodes in order
            )
        self._procs[node_id] = proc
        spec.pid_path.write_text(f"{proc.pid}\n", encoding="utf-8")
        return proc.pid

    def _refuse_stale_process(self, spec: NodeSpec) -> None:
        """A node left running by a launcher that was killed would hold the ports and the data dir."""
        try:
            pid = int(spec.pid_path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return  # not running (or no /proc): nothing to refuse
        if str(spec.config_path) in cmdline and pid not in self.pids.values():
            raise LaunchError(f"node {spec.node_id} from an earlier run is still running (pid {pid}); "
                              f"stop it first: kill {pid}")

    def send_signal(self, node_id: int, sig: int) -> None:
        """Send `sig` to the node's process, by PID (SIGSTOP/SIGCONT included)."""
        proc = self._procs.get(node_id)
        if proc is None or proc.poll() is not None:
            raise LaunchError(f"node {node_id} is not running")
        proc.send_signal(sig)

    def kill(self, node_id: int, sig: int = signal.SIGKILL, wait_s: float = STOP_GRACE_S) -> int | None:
        """Send `sig` and, for terminating signals, wait (bounded) for the exit; returns the exit code."""
        self.send_signal(node_id, sig)
        if sig in (signal.SIGSTOP, signal.SIGCONT):
            return None
        return self._wait_exit(node_id, wait_s)

    def _wait_exit(self, node_id: int, wait_s: float) -> int | None:
        proc = self._procs[node_id]
        try:
            return proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

    def restart(self, node_id: int, sig: int = signal.SIGTERM, wait_s: float = STOP_GRACE_S) -> int:
        """Stop the node (if running) with `sig`, SIGKILL after `wait_s`, then start it again."""
        if self.is_running(node_id):
            self.stop_node(node_id, sig, wait_s)
        return self.start_node(node_id)

    def stop_node(self, node_id: int, sig: int = signal.SIGTERM, wait_s: float = STOP_GRACE_S) -> int | None:
        proc = self._procs.get(node_id)
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        self._send(proc, sig)
        self._send(proc, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        if self._wait_exit(node_id, wait_s) is None:
            self._kill_group(proc)
            proc.wait(timeout=5)
        return proc.returncode

    def stop(self, timeout_s: float = STOP_GRACE_S) -> dict[int, int | None]:
        """SIGTERM every running node by PID, wait up to `timeout_s` in total, SIGKILL the rest.

        Brokers are asked first so their controlled shutdown can still reach the controllers.
        Returns each node's exit code. Safe to call twice.
        """
        self._follow_restarts()
        order = sorted(self._procs, key=lambda i: (self.nodes[i].is_controller, i))
        running = [i for i in order if self._procs[i].poll() is None]
        for node_id in running:
            self._send(self._procs[node_id], signal.SIGCONT)
            self._send(self._procs[node_id], signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for node_id in running:
            try:
                self._procs[node_id].wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for node_id in running:
            proc = self._procs[node_id]
            if proc.poll() is None:
                self._kill_group(proc)
        for node_id in running:
            try:
                self._procs[node_id].wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for node_id in running:
            self.nodes[node_id].pid_path.unlink(missing_ok=True)
        return {i: self._procs[i].poll() for i in order}

    @staticmethod
    def _send(proc: subprocess.Popen[bytes] | AdoptedProcess, sig: int) -> None:
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass

    @staticmethod
    def _kill_group(proc: subprocess.Popen[bytes] | AdoptedProcess) -> None:
        """SIGKILL the process we started and its own process group (its pgid is its PID); an adopted
        one by its PID only, after the check that it is still the node."""
        if isinstance(proc, AdoptedProcess):
            LocalCluster._send(proc, signal.SIGKILL)
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            LocalCluster._send(proc, signal.SIGKILL)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- health ------------------------------------------------------------------------------------

    def wait_healthy(self, timeout_s: float = HEALTHY_WAIT_S, brokers: Sequence[int] | None = None) -> object:
        """Wait until DescribeCluster shows an active controller and every broker (or `brokers`) unfenced.

        Returns the DescribeClusterResponse. Raises LaunchError with the log tails of the nodes on
        timeout, or at once when a node process exits.
        """
        from cluster.client import ControllerClient

        expected = set(self.broker_ids if brokers is None else brokers)
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        with ControllerClient(self.controller_bootstrap.split(","), timeout_s=2.0) as client:
            while True:
                dead = [i for i, p in self._procs.items() if p.poll() is not None and (i in expected or
                        self.nodes[i].is_controller)]
                if dead:
                    codes = ", ".join(f"node {i} (exit code {self._procs[i].returncode})" for i in dead)
                    raise LaunchError(f"{codes} exited during startup", self.log_tails(dead))
                try:
                    reply = client.describe_cluster()
                    unfenced = {b.broker_id for b in reply.brokers if not b.fenced}
                    if reply.active_controller_id >= 0 and expected <= unfenced:
                        return reply
                    last = (f"active controller {reply.active_controller_id}, unfenced brokers "
                            f"{sorted(unfenced)} of {sorted(expected)}")
                except BrookError as e:
                    last = e.message
                if time.monotonic() >= deadline:
                    raise LaunchError(f"cluster not healthy after {timeout_s:g}s: {last}", self.log_tails())
                time.sleep(POLL_INTERVAL_S)

    def log_tail(self, node_id: int, lines: int = LOG_TAIL_LINES) -> str:
        """The last `lines` lines of the node's server.log ('' when there is none)."""
        path = self.node(node_id).log_path
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - 64 * 1024))
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_tails(self, node_ids: Sequence[int] | None = None, lines: int = LOG_TAIL_LINES) -> str:
        parts = []
        for node_id in node_ids if node_ids is not None else sorted(self.nodes):
            tail = self.log_tail(node_id, lines)
            parts.append(f"--- node {node_id}: {self.nodes[node_id].log_path} (last {lines} lines)\n{tail}")
        return "\n".join(parts)

    def iter_nodes(self) -> Iterator[NodeSpec]:
        self.prepare()
        return iter(self.nodes[i] for i in sorted(self.nodes))


def _ports_in(props: Mapping[str, str]) -> list[str]:
    out = [props.get("metrics.port", "")]
    for item in props.get("listeners", "").split(","):
        if ":" in item:
            out.append(item.rsplit(":", 1)[1])
    return [p for p in out if p.isdigit()]


def _recover_ports(spec: NodeSpec, props: Mapping[str, str]) -> None:
    """Read the node's ports back from its listeners and its entry in controller.quorum.voters."""
    for item in props.get("listeners", "").split(","):
        name, sep, rest = item.strip().partition("://")
        if not sep or ":" not in rest:
            continue
        port = int(rest.rsplit(":", 1)[1])
        if name == "CONTROLLER":
            spec.controller_port = port
        elif name != "GRPC":  # the Kafka listener, whatever its name
            spec.kafka_port = port
        elif name == "GRPC":
            spec.grpc_port = port
    for voter in props.get("controller.quorum.voters", "").split(","):
        node, sep, address = voter.strip().partition("@")
        if sep and node == str(spec.node_id):
            spec.raft_port = int(address.rsplit(":", 1)[1])
    if props.get("metrics.port", "").isdigit() and int(props["metrics.port"]) > 0:
        spec.metrics_port = int(props["metrics.port"])
    missing = [name for name, port, needed in (
        ("CONTROLLER listener", spec.controller_port, spec.is_controller),
        ("controller.quorum.voters entry", spec.raft_port, spec.is_controller),
        ("PLAINTEXT listener", spec.kafka_port, spec.is_broker),
        ("GRPC listener", spec.grpc_port, spec.is_broker)) if needed and not port]
    if missing:
        raise LaunchError(f"{spec.config_path} has no {', '.join(missing)}: fix it or delete the data directory")
