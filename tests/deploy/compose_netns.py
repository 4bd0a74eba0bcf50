"""Run deploy/compose*.yaml as a real network: one namespace per service, names that resolve only inside.

Docker is not available here, so this builds what `docker compose up` builds, with network namespaces
(root, iproute2; `cluster.chaos.netns.unavailable()` says why not):

    <tag>-hub      a bridge `br0`: the compose network
    <tag>-s<i>     one per service: its own address 10.124.0.<10+i>, `brook server` with the service's
                   own environment, unchanged (service names stay names, ports stay container ports)
    <tag>-cli      a container on the compose network that runs Kafka clients
    <tag>-host     the Docker host: on the bridge too (as docker0 is) but it cannot resolve service
                   names; `ports: "127.0.0.1:H:C"` is published on its 127.0.0.1:H by a forwarder to
                   the service's address, port C (what docker-proxy does)

Names: `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts in a private mount namespace.
Every service and the client get a hosts file with every service name and hostname; the host gets
only `localhost`. resolv.conf points at 127.0.0.1 (nothing answers), so no name leaks to real DNS.
Every process is stopped by PID; `close()` deletes the namespaces and the /etc/netns entries.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from cluster.chaos.netns import PREFIX, NetnsError, _kill_namespace_processes, _run, cleanup_stale
from cluster.cli.launcher import wait_or_kill_group
from tests.deploy.topology import (
    CLI_VARS,
    ENV_PREFIX,
    PATH_KEYS,
    ROOT,
    LocalTopology,
    job_argv,
    node_services,
    service_env,
    volume_mounts,
)

SUBNET = "10.124.0"
HOST_IP = f"{SUBNET}.1"
CLIENT_IP = f"{SUBNET}.200"
STOP_GRACE_S = 15.0
ETC_NETNS = Path("/etc/netns")


def published(service: dict) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of `ports:`; "" when no ip is given (every interface)."""
    out = []
    for item in service.get("ports") or []:
        parts = str(item).split("/", 1)[0].split(":")
        ip = parts[0] if len(parts) == 3 else ""
        out.append((ip, int(parts[-2]), int(parts[-1])))
    return out


@dataclass
class ComposeNetwork:
    compose: dict
    variables: dict[str, str]
    root: Path
    python: str = sys.executable
    tag: str = ""
    addresses: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tag = self.tag or f"{PREFIX}{os.getpid()}-c{os.urandom(2).hex()}"
        for i, name in enumerate(self.compose["services"]):
            self.addresses[name] = f"{SUBNET}.{10 + i}"
        self.host_ns, self.client_ns = f"{self.tag}-host", f"{self.tag}-cli"

    def ns(self, service: str) -> str:
        return f"{self.tag}-s{list(self.compose['services']).index(service)}"

    # -- network ---------------------------------------------------------------------------------

    def _hosts_file(self, with_services: bool) -> str:
        lines = ["127.0.0.1 localhost"]
        if with_services:
            for name, svc in self.compose["services"].items():
                names = {name, svc.get("hostname", name)}
                lines.append(f"{self.addresses[name]} {' '.join(sorted(names))}")
        return "\n".join(lines) + "\n"

    def _add_ns(self, ns: str, ip: str, hub: str, hub_end: str, with_services: bool) -> None:
        etc = ETC_NETNS / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(self._hosts_file(with_services))
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        _run(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        _run(["ip", "-n", hub, "link", "add", hub_end, "type", "veth", "peer", "name", "eth0", "netns", ns])
        _run(["ip", "-n", hub, "link", "set", hub_end, "master", "br0"])
        _run(["ip", "-n", hub, "link", "set", hub_end, "up"])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0"])
        _run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def setup_network(self) -> None:
        cleanup_stale()
        hub = f"{self.tag}-hub"
        _run(["ip", "netns", "add", hub])
        self._namespaces.append(hub)
        _run(["ip", "-n", hub, "link", "set", "lo", "up"])
        _run(["ip", "-n", hub, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", hub, "link", "set", "br0", "up"])
        for i, name in enumerate(self.compose["services"]):
            self._add_ns(self.ns(name), self.addresses[name], hub, f"s{i}", with_services=True)
        self._add_ns(self.client_ns, CLIENT_IP, hub, "cli", with_services=True)
        self._add_ns(self.host_ns, HOST_IP, hub, "host", with_services=False)

    # -- processes -------------------------------------------------------------------------------

    def env(self, service: str | None = None) -> dict[str, str]:
        """The environment of `service` (its own, with volume paths and mounted secrets resolved to local
        files), or of a plain process."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k not in CLI_VARS}
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        if service is None:
            return env
        svc = self.compose["services"][service]
        directory = self.root / service
        directory.mkdir(parents=True, exist_ok=True)
        mounts = volume_mounts(svc)
        for var, value in service_env(self.compose, service, self.variables).items():
            if var[len(ENV_PREFIX):] in PATH_KEYS:
                value = ",".join(LocalTopology._local_path(service, mounts, directory, p.strip())
                                 for p in value.split(","))
            env[var] = value
        return env

    def _spawn(self, key: str, ns: str, argv: list[str], env: dict[str, str]) -> None:
        log_path = self.root / f"{key}.log"
        with open(log_path, "ab") as log:
            # `ip netns exec` execs the command, so the PID is the process's own.
            self.procs[key] = subprocess.Popen(["ip", "netns", "exec", ns, *argv], env=env, cwd=str(self.root),
                                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)

    def start(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.setup_network()
            services = self.compose["services"]
            for name in sorted(node_services(self.compose), key=lambda n: "controller" not in n):
                self._spawn(name, self.ns(name), [self.python, "-m", "cluster.cli.main", "server"], self.env(name))
            for name, svc in services.items():
                for ip, host_port, container_port in published(svc):
                    self._spawn(f"publish-{host_port}", self.host_ns,
                                [self.python, "-m", "tests.deploy.compose_netns", "forward", ip or "0.0.0.0",
                                 str(host_port), self.addresses[name], str(container_port)], self.env())
        except BaseException:
            self.close()
            raise

    def run_job(self, service: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """A one-shot service (admin-user) in its own namespace with its own environment, as compose runs
        it once its depends_on are healthy."""
        return subprocess.run(["ip", "netns", "exec", self.ns(service), *job_argv(self.compose, service, self.variables)],
                              env=self.env(service), cwd=str(ROOT), capture_output=True, text=True, timeout=timeout_s)

    def dead(self) -> list[str]:
        return [k for k, p in self.procs.items() if p.poll() is not None]

    def run_in(self, ns: str, argv: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], env=self.env(), cwd=str(ROOT),
                              capture_output=True, text=True, timeout=timeout_s)

    def kafka_client(self, ns: str, bootstrap: str, topic: str, count: int, timeout_s: float,
                     security: dict[str, str] | None = None) -> dict:
        """Produce `count` records and read them back in a consumer group, from namespace `ns`, with the
        librdkafka `security` settings (security.protocol, sasl.*, ssl.ca.location)."""
        result = self.run_in(ns, [self.python, "-m", "tests.deploy.compose_netns", "client", bootstrap, topic,
                                  str(count), str(timeout_s), json.dumps(security or {})], timeout_s * 2 + 30)
        try:
            return json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return {"ok": False, "error": f"exit {result.returncode}: {result.stdout[-2000:]} {result.stderr[-2000:]}"}

    def log_tails(self, lines: int = 12) -> str:
        out = []
        for key in self.procs:
            try:
                text = (self.root / f"{key}.log").read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                text = []
            out.append(f"--- {key}\n" + "\n".join(text))
        return "\n".join(out)

    def close(self) -> dict[str, int | None]:
        """SIGTERM every process by PID — brokers and combined nodes one at a time, then the forwarders,
        then the controllers (compose's reverse dependency order) — with a bounded wait per phase and
        SIGKILL of the group after it; then delete the namespaces and their /etc/netns entries."""
        nodes = [k for k in self.procs if "controller" not in k and not k.startswith("publish-")]
        # Each broker or combined node stops while its peers still run (as a rolling restart would);
        # controllers only after the brokers exited (a controlled shutdown needs them). The hang after
        # a controlled shutdown that CI saw here was a replica fetcher that lost its cancellation
        # (cluster/aio.py); a node that hangs again is reported with its stacks (`still stopping`).
        phases = [[k] for k in nodes] + [[k for k in self.procs if k.startswith("publish-")],
                                         [k for k in self.procs if "controller" in k]]
        for phase in phases:
            for key in phase:
                if self.procs[key].poll() is None:
                    self.procs[key].send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for key in phase:
                wait_or_kill_group(self.procs[key], max(0.1, deadline - time.monotonic()))
        for ns in reversed(self._namespaces):
            _kill_namespace_processes(ns)
            _run(["ip", "netns", "del", ns], check=False)
            shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
        self._namespaces.clear()
        return {k: p.returncode for k, p in self.procs.items()}


# -- helpers run inside a namespace --------------------------------------------------------------


async def _forward(listen_ip: str, listen_port: int, to_ip: str, to_port: int) -> None:
    """A TCP forwarder (docker-proxy): listen_ip:listen_port -> to_ip:to_port."""
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(to_ip, to_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(on_connection, listen_ip, listen_port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def _client(bootstrap: str, topic: str, count: int, timeout_s: float, security: dict[str, str]) -> dict:
    """Produce with acks=all, then consume in a group (Metadata, FindCoordinator, JoinGroup, Fetch)."""
    import confluent_kafka

    errors: list[str] = []
    common = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 5000,
              "error_cb": lambda e: errors.append(str(e)), **security}
    producer = confluent_kafka.Producer({**common, "acks": "all", "enable.idempotence": True,
                                         "message.timeout.ms": int(timeout_s * 1000)})
    # A refused client (no or wrong credentials) gets no Metadata at all; a new user may need a moment
    # until every broker has its credential, so this is retried until the deadline.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            producer.list_topics(timeout=2.0)
            break
        except confluent_kafka.KafkaException as e:
            if time.monotonic() >= deadline:
                producer.poll(1.0)  # serve error_cb (authentication errors are reported there)
                return {"ok": False, "stage": "metadata", "error": str(e), "client_errors": sorted(set(errors))[:5]}
    delivered: list[object] = []
    values = [f"{topic}-{i}".encode() for i in range(count)]
    for v in values:
        producer.produce(topic, value=v, on_delivery=lambda err, msg: delivered.append(str(err) if err else msg.offset()))
    left = producer.flush(timeout_s)
    failed = [d for d in delivered if not isinstance(d, int)]
    if left or failed:
        return {"ok": False, "stage": "produce", "delivered": sum(isinstance(d, int) for d in delivered),
                "undelivered": left, "failed": sorted(set(map(str, failed)))[:3],
                "client_errors": sorted(set(errors))[:5]}
    consumer = confluent_kafka.Consumer({**common, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    got: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
        consumer.commit(asynchronous=False) if got else None
    except confluent_kafka.KafkaException as e:
        errors.append(str(e))
    finally:
        consumer.close()
    ok = sorted(got) == sorted(values)
    return {"ok": ok, "stage": "consume", "consumed": len(got), "client_errors": sorted(set(errors))[:5]}


def main(argv: list[str]) -> int:
    if argv[:1] == ["forward"]:
        asyncio.run(_forward(argv[1], int(argv[2]), argv[3], int(argv[4])))
        return 0
    if argv[:1] == ["client"]:
        security = json.loads(argv[5]) if len(argv) > 5 else {}
        print(json.dumps(_client(argv[1], argv[2], int(argv[3]), float(argv[4]), security)), flush=True)
        return 0
    raise NetnsError(f"usage: forward IP PORT TO_IP TO_PORT | client BOOTSTRAP TOPIC N TIMEOUT_S, got {argv}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
