"""Read deploy/compose*.yaml and run the same topology as local `brook server` processes.

Docker is not available where Brook is developed, so the compose files are checked here the way
Docker would use them, without Docker:

    load_compose(path)                  the parsed file (PyYAML; merge keys `<<:` resolved)
    interpolate(value, variables)       compose's ${VAR}, ${VAR:-default}, ${VAR:?error}, $$
    service_env(compose, name, vars)    a service's environment, interpolated, with every /run/secrets/<target>
                                        path replaced by the file the service's `secrets:` mounts there
                                        (top-level `secrets: {name: {file: ...}}`, relative to deploy/)
    node_services / job_services        services that run `brook server` / one-shot commands (admin-user)
    compose_variables(extra)            the variables the tests interpolate with: BROOK_SECRETS_DIR is a
                                        temp dir filled once per process by deploy/make-secrets.sh (the
                                        documented one-time step), BROOK_QUORUM_SECRET for the plaintext file
    LocalTopology(compose, vars, root)  every service's environment translated to this machine:
                                        service hostnames -> 127.0.0.1, each (service, container port)
                                        -> a free local port (a published `localhost:H` -> the port
                                        the service publishes H from), volume paths -> temp dirs;
                                        then `start()` runs each as `python -m cluster.cli.main server`
                                        with that environment and no --config (as the image's
                                        ENTRYPOINT does), each in its own session, stopped by PID.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cluster.cli.launcher import free_ports, wait_or_kill_group

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILES = ("compose.yaml", "compose.combined.yaml", "compose.plaintext.yaml")
SECURE_COMPOSE_FILES = ("compose.yaml", "compose.combined.yaml")
ENV_PREFIX = "BROOK_CFG_"
# Variables the CLI reads in a container (the health check, the admin-user job) besides BROOK_CFG_*.
CLI_VARS = ("BROOK_TLS_CA", "BROOK_TLS_CERT", "BROOK_TLS_KEY", "BROOK_BOOTSTRAP_CONTROLLER")
SECRETS_MOUNT = "/run/secrets/"
LOCAL = "127.0.0.1"
# Keys whose values hold host:port addresses that the translation rewrites.
ADDRESS_KEYS = ("LISTENERS", "ADVERTISED_LISTENERS", "CONTROLLER_QUORUM_VOTERS",
                "CONTROLLER_QUORUM_BOOTSTRAP_SERVERS")
PATH_KEYS = ("LOG_DIRS", "METADATA_LOG_DIR")
STOP_GRACE_S = 15.0

_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                  r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_HOSTPORT = re.compile(r"(?P<host>[A-Za-z0-9._-]*):(?P<port>\d+)")


class InterpolationError(Exception):
    pass


def load_compose(path: str | os.PathLike[str]) -> dict:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's variable syntax: ${X}, ${X:-default}, ${X-default}, ${X:?message}, ${X?message}, $$."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        present = name in variables
        val = variables.get(name, "")
        unset = (not present) or (op is not None and op.startswith(":") and val == "")
        if op in (":?", "?") and unset:
            raise InterpolationError(f"{name}: {arg}")
        if op in (":-", "-") and unset:
            return arg
        return val
    return _VAR.sub(sub, value)


def secret_files(compose: dict, name: str, variables: Mapping[str, str]) -> dict[str, Path]:
    """/run/secrets/<target> -> the host file, for every secret service `name` mounts (short and long
    syntax), as compose resolves them (a relative `file:` is relative to the compose file's directory)."""
    declared = compose.get("secrets") or {}
    out: dict[str, Path] = {}
    for item in compose["services"][name].get("secrets") or []:
        source, target = (item, item) if isinstance(item, str) else (item["source"], item.get("target", item["source"]))
        assert source in declared, f"{name}: secret {source!r} is not declared at the top level"
        assert "file" in declared[source], f"secret {source!r}: only file secrets are used"
        path = Path(interpolate(str(declared[source]["file"]), variables))
        target = target if target.startswith("/") else SECRETS_MOUNT + target
        out[target] = path if path.is_absolute() else (DEPLOY / path).resolve()
    return out


def service_env(compose: dict, name: str, variables: Mapping[str, str]) -> dict[str, str]:
    env = compose["services"][name].get("environment") or {}
    if isinstance(env, list):  # the `- KEY=VALUE` form
        env = dict(item.split("=", 1) for item in env)
    out = {k: interpolate(str(v), variables) for k, v in env.items()}
    mounted = secret_files(compose, name, variables) if any(
        v.startswith(SECRETS_MOUNT) for v in out.values()) else {}
    for k, v in out.items():
        if v.startswith(SECRETS_MOUNT):
            assert v in mounted, f"{name}: {k}={v} but the service mounts no secret there ({sorted(mounted)})"
            out[k] = str(mounted[v])
    return out


def is_job(compose: dict, name: str) -> bool:
    """A one-shot service (it overrides the image's `brook server` entrypoint), e.g. admin-user."""
    return "entrypoint" in compose["services"][name]


def node_services(compose: dict) -> list[str]:
    return [n for n in compose["services"] if not is_job(compose, n)]


def job_services(compose: dict) -> list[str]:
    return [n for n in compose["services"] if is_job(compose, n)]


def job_argv(compose: dict, name: str, variables: Mapping[str, str]) -> list[str]:
    """The job's command as `python -m cluster.cli.main ...` (its entrypoint is `brook`), with its mounted
    secrets' paths resolved."""
    svc = compose["services"][name]
    assert svc["entrypoint"] == ["brook"], f"{name}: entrypoint {svc['entrypoint']}"
    mounted = secret_files(compose, name, variables)
    args = [str(a) for a in svc.get("command") or []]
    for a in args:
        assert not a.startswith(SECRETS_MOUNT) or a in mounted, f"{name}: {a} is not a mounted secret"
    return [sys.executable, "-m", "cluster.cli.main", *[str(mounted.get(a, a)) for a in args]]


_SECRETS_DIR: list[Path] = []


def compose_secrets_dir() -> Path:
    """deploy/make-secrets.sh run once per process into a temp dir (removed at exit)."""
    if not _SECRETS_DIR:
        directory = Path(tempfile.mkdtemp(prefix="brook-compose-secrets-")) / "secrets"
        atexit.register(shutil.rmtree, directory.parent, True)
        env = dict(os.environ, BROOK=f"{sys.executable} -m cluster.cli.main",
                   PYTHONPATH=str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
        made = subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), str(directory)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, f"deploy/make-secrets.sh failed: {made.stdout}{made.stderr}"
        _SECRETS_DIR.append(directory)
    return _SECRETS_DIR[0]


class ComposeVariables(Mapping[str, str]):
    """`extra` plus BROOK_SECRETS_DIR, generated on first use (so collecting tests costs nothing)."""

    def __init__(self, extra: Mapping[str, str]) -> None:
        self.extra = dict(extra)

    def __getitem__(self, key: str) -> str:
        if key == "BROOK_SECRETS_DIR" and key not in self.extra:
            return str(compose_secrets_dir())
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        return iter([*self.extra, *(["BROOK_SECRETS_DIR"] if "BROOK_SECRETS_DIR" not in self.extra else [])])

    def __len__(self) -> int:
        return len(list(iter(self)))


def compose_variables(extra: Mapping[str, str]) -> ComposeVariables:
    return ComposeVariables(extra)


def published_ports(service: dict) -> dict[int, int]:
    """host port -> container port, from `ports: ["H:C"]` (also "IP:H:C" and "H:C/tcp")."""
    out: dict[int, int] = {}
    for item in service.get("ports") or []:
        text = str(item).split("/", 1)[0]
        parts = text.split(":")
        assert len(parts) in (2, 3), f"unsupported ports entry {item!r}"
        out[int(parts[-2])] = int(parts[-1])
    return out


def volume_mounts(service: dict) -> dict[str, str]:
    """container path -> volume name, from `volumes: ["name:/path"]`."""
    out: dict[str, str] = {}
    for item in service.get("volumes") or []:
        source, _, target = str(item).partition(":")
        out[target.split(":", 1)[0]] = source
    return out


@dataclass
class LocalNode:
    service: str
    env: dict[str, str]                    # the translated BROOK_CFG_* variables
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def value(self, key: str) -> str:
        return self.env.get(ENV_PREFIX + key, "")

    @property
    def node_id(self) -> int:
        return int(self.value("NODE_ID"))

    @property
    def roles(self) -> set[str]:
        return {r.strip() for r in self.value("PROCESS_ROLES").split(",")}

    def advertised(self, listener: str) -> str | None:
        for item in self.value("ADVERTISED_LISTENERS").split(","):
            name, _, rest = item.partition("://")
            if name.strip() == listener:
                return rest.strip()
        return None


@dataclass
class LocalTopology:
    """The compose file's services as local processes; see the module doc."""

    compose: dict
    variables: Mapping[str, str]
    root: Path
    python: str = sys.executable
    nodes: dict[str, LocalNode] = field(default_factory=dict)
    ports: dict[tuple[str, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        services = self.compose["services"]
        self._hosts = {svc.get("hostname", name): name for name, svc in services.items()}
        self._hosts.update({name: name for name in services})
        self._published = {h: (name, c) for name, svc in services.items()
                           for h, c in published_ports(svc).items()}
        for name in node_services(self.compose):
            self.nodes[name] = self._translate(name)

    # -- translation ----------------------------------------------------------------------------

    def _local_port(self, service: str, port: int) -> int:
        key = (service, port)
        if key not in self.ports:
            self.ports[key] = free_ports(1, taken=list(self.ports.values()))[0]
        return self.ports[key]

    def _address(self, owner: str, host: str, port: int) -> str:
        if host in ("", "0.0.0.0", "::"):
            return f"{LOCAL}:{self._local_port(owner, port)}"
        if host in ("localhost", "127.0.0.1"):
            assert port in self._published, f"{owner}: {host}:{port} is not a published port"
            service, container_port = self._published[port]
            return f"{LOCAL}:{self._local_port(service, container_port)}"
        assert host in self._hosts, f"{owner}: unknown host {host!r} (not a service or hostname)"
        return f"{LOCAL}:{self._local_port(self._hosts[host], port)}"

    def _translate(self, name: str) -> LocalNode:
        service = self.compose["services"][name]
        env = service_env(self.compose, name, self.variables)
        directory = self.root / name
        directory.mkdir(parents=True, exist_ok=True)
        mounts = volume_mounts(service)
        out: dict[str, str] = {}
        for var, value in env.items():
            if var in CLI_VARS:
                out[var] = value
                continue
            if not var.startswith(ENV_PREFIX):
                continue
            key = var[len(ENV_PREFIX):]
            if key in ADDRESS_KEYS:
                value = _HOSTPORT.sub(lambda m, n=name: self._address(n, m.group("host"), int(m.group("port"))),
                                      value)
            elif key == "METRICS_PORT" and value.strip() not in ("", "0"):
                value = str(self._local_port(name, int(value)))  # every node has the same port in compose
                out[ENV_PREFIX + "METRICS_HOST"] = LOCAL
            elif key in PATH_KEYS:
                value = ",".join(self._local_path(name, mounts, directory, p.strip()) for p in value.split(","))
            out[var] = value
        return LocalNode(name, out, directory)

    @staticmethod
    def _local_path(name: str, mounts: Mapping[str, str], directory: Path, path: str) -> str:
        for target in sorted(mounts, key=len, reverse=True):
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return str(directory / "volume" / os.path.relpath(path, target))
        raise AssertionError(f"{name}: {path} is not on a named volume (data would be lost with the container)")

    # -- addresses ------------------------------------------------------------------------------

    @property
    def controller_bootstrap(self) -> str:
        boot = {n.value("CONTROLLER_QUORUM_BOOTSTRAP_SERVERS") for n in self.nodes.values()}
        assert len(boot) == 1, boot
        return boot.pop()

    @property
    def broker_ids(self) -> list[int]:
        return sorted(n.node_id for n in self.nodes.values() if "broker" in n.roles)

    def kafka_bootstrap(self) -> str:
        """The brokers' advertised EXTERNAL addresses (the host's view, translated)."""
        return ",".join(str(n.advertised("EXTERNAL")) for n in self.nodes.values() if "broker" in n.roles)

    # -- processes ------------------------------------------------------------------------------

    def process_env(self, node: LocalNode) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k not in CLI_VARS}
        env.update(node.env)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def check_config(self, node: LocalNode) -> subprocess.CompletedProcess[str]:
        """`brook server --check-config /dev/null` with the node's environment (an empty file; every
        setting comes from BROOK_CFG_*, as in the container)."""
        return subprocess.run([self.python, "-m", "cluster.cli.main", "server", "--check-config", os.devnull],
                              env=self.process_env(node), capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        order = sorted(self.nodes.values(), key=lambda n: ("controller" not in n.roles, n.service))
        for node in order:
            with open(node.log_path, "ab") as log:
                node.proc = subprocess.Popen(
                    [self.python, "-m", "cluster.cli.main", "server"], env=self.process_env(node),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=str(node.directory),
                    start_new_session=True)

    def run_job(self, name: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """A one-shot service (admin-user) with its environment translated, as compose runs it once its
        depends_on are healthy."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k not in CLI_VARS}
        for var, value in service_env(self.compose, name, self.variables).items():
            if var == "BROOK_BOOTSTRAP_CONTROLLER":
                value = _HOSTPORT.sub(lambda m: self._address(name, m.group("host"), int(m.group("port"))), value)
            env[var] = value
        env["PYTHONPATH"] = str(ROOT)
        return subprocess.run(job_argv(self.compose, name, self.variables), env=env, capture_output=True,
                              text=True, timeout=timeout_s)

    def dead(self) -> list[str]:
        return [n.service for n in self.nodes.values() if n.proc is not None and n.proc.poll() is not None]

    def stop(self) -> dict[str, int | None]:
        """SIGTERM every process by PID, brokers first and the controller nodes only after the brokers
        have exited (docker compose stops in reverse dependency order, and a broker's controlled shutdown
        needs the controllers), a bounded wait per phase, then SIGKILL of the process group."""
        running = [n for n in self.nodes.values() if n.proc is not None and n.proc.poll() is None]
        for phase in ([n for n in running if "controller" not in n.roles],
                      [n for n in running if "controller" in n.roles]):
            for node in phase:
                assert node.proc is not None
                node.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for node in phase:
                assert node.proc is not None
                wait_or_kill_group(node.proc, deadline - time.monotonic())
        return {n.service: (n.proc.returncode if n.proc else None) for n in self.nodes.values()}

    def log_tails(self, lines: int = 15) -> str:
        out = []
        for node in self.nodes.values():
            try:
                text = node.log_path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = []
            out.append(f"--- {node.service} ({node.log_path})\n" + "\n".join(text))
        return "\n".join(out)
