"""`make bench-peers`: Brook beside Apache Kafka 4.4.0 (KRaft) and NATS JetStream R3, same machine, same run.

Each system runs as 3 controllers + 3 brokers (NATS: 3 clustered servers), RF=3 / R3, on loopback, one
after the other (never two at once: 2 cores), and gets the same workload:
- Brook and Kafka: bench/workload.py through librdkafka (settings printed with the table);
- NATS: bench/peers/nats (a Go program on nats.go; async publish with JetStream acks, which the stream
  leader sends once a quorum stored the message — the equivalent of acks=all).
It installs what it needs itself into .cache/peers: the Kafka jars from Maven Central (bench/peers/kafka/
pom.xml, `mvn dependency:copy-dependencies`), nats-server and the Go client from the Go module proxy.
Not part of `make test`. Kafka's JVMs get 512 MiB (controllers) and 1 GiB (brokers) heaps with G1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import workload as w

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "peers"
KAFKA_VERSION = "4.4.0"
NATS_SERVER = "github.com/nats-io/nats-server/v2@v2.15.2"
PAUSE_RATES = (1_000, 5_000, 20_000)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_port(port: int, timeout_s: float, what: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: a process exited with {p.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{what}: port {port} not open after {timeout_s:g}s")


def stop_all(procs: dict[int, subprocess.Popen[bytes]]) -> None:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# -- installation ------------------------------------------------------------------------------------------

def kafka_jars() -> Path:
    jars = CACHE / f"kafka-{KAFKA_VERSION}"
    if not (jars / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        log(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {jars}")
        subprocess.run(["mvn", "-q", "-f", str(ROOT / "bench/peers/kafka/pom.xml"), "dependency:copy-dependencies",
                        f"-DoutputDirectory={jars}"], check=True)
    return jars


def nats_binaries() -> tuple[Path, Path]:
    bin_dir = CACHE / "bin"
    server, client = bin_dir / "nats-server", bin_dir / "natsbench"
    env = dict(os.environ, GOBIN=str(bin_dir), GOFLAGS="-mod=mod")
    if not server.exists():
        log(f"building {NATS_SERVER} from the Go module proxy")
        subprocess.run(["go", "install", NATS_SERVER], check=True, env=env)
    if not client.exists():
        log("building the NATS bench client (bench/peers/nats)")
        subprocess.run(["go", "build", "-o", str(client), "."], check=True, env=env, cwd=ROOT / "bench/peers/nats")
    return server, client


# -- Apache Kafka ------------------------------------------------------------------------------------------

class KafkaPeer:
    """3 KRaft controllers + 3 brokers from the Maven Central jars, each a JVM on loopback."""

    CONTROLLERS, BROKERS = (1, 2, 3), (4, 5, 6)

    def __init__(self, jars: Path, data: Path) -> None:
        self.jars, self.data = jars, data
        ports = free_ports(6)
        self.cport = dict(zip(self.CONTROLLERS, ports[:3], strict=True))
        self.bport = dict(zip(self.BROKERS, ports[3:], strict=True))
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in self.bport.values())
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.cluster_id = self._java_out(["kafka.tools.StorageTool", "random-uuid"]).strip()

    def _java(self, node: int | None) -> list[str]:
        heap = "-Xmx512m" if node in self.CONTROLLERS else "-Xmx1g"
        return ["java", heap, "-XX:+UseG1GC", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp", f"{self.jars}/*"]

    def _java_out(self, args: list[str]) -> str:
        return subprocess.run(self._java(None) + args, check=True, capture_output=True, text=True).stdout

    def _config(self, node: int) -> Path:
        voters = ",".join(f"{c}@127.0.0.1:{p}" for c, p in self.cport.items())
        common = {
            "node.id": node, "controller.quorum.voters": voters, "controller.listener.names": "CONTROLLER",
            "log.dirs": self.data / f"node-{node}", "num.partitions": 3, "default.replication.factor": 3,
            "min.insync.replicas": 2, "offsets.topic.replication.factor": 3,
            "transaction.state.log.replication.factor": 3, "transaction.state.log.min.isr": 2,
            "group.initial.rebalance.delay.ms": 0, "auto.leader.rebalance.enable": "false",
        }
        if node in self.CONTROLLERS:
            common.update({"process.roles": "controller", "listeners": f"CONTROLLER://127.0.0.1:{self.cport[node]}"})
        else:
            common.update({"process.roles": "broker", "listeners": f"PLAINTEXT://127.0.0.1:{self.bport[node]}",
                           "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                           "inter.broker.listener.name": "PLAINTEXT"})
        path = self.data / f"node-{node}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in common.items()))
        return path

    def start(self) -> None:
        for node in self.CONTROLLERS + self.BROKERS:
            cfg = self._config(node)
            self._java_out(["kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(cfg)])
        for node in self.CONTROLLERS + self.BROKERS:
            self.start_node(node)
        for node in self.BROKERS:
            wait_port(self.bport[node], 120, f"kafka broker {node}", list(self.procs.values()))
        # The brokers accept connections before they are unfenced: wait until all three are in the metadata.
        deadline = time.monotonic() + 120
        while len(w.admin(self.bootstrap).list_topics(timeout=10).brokers) < 3:
            if time.monotonic() > deadline:
                raise TimeoutError("kafka: brokers not all registered after 120 s")
            time.sleep(0.5)

    def start_node(self, node: int) -> None:
        out = open(self.data / f"node-{node}.log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[node] = subprocess.Popen(self._java(node) + ["kafka.Kafka", str(self.data / f"node-{node}.properties")],
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, node: int) -> None:
        self.procs[node].kill()
        self.procs[node].wait()

    def broker_pids(self) -> dict[int, int]:
        return {n: self.procs[n].pid for n in self.BROKERS}

    def stop(self) -> None:
        stop_all(self.procs)


# -- NATS JetStream ----------------------------------------------------------------------------------------

class NatsPeer:
    def __init__(self, server: Path, data: Path) -> None:
        self.server, self.data = server, data
        ports = free_ports(6)
        self.client_ports, self.route_ports = ports[:3], ports[3:]
        self.url = ",".join(f"nats://127.0.0.1:{p}" for p in self.client_ports)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.route_ports)
        for i in range(3):
            args = [str(self.server), "-js", "-sd", str(self.data / f"n{i}"), "-a", "127.0.0.1",
                    "-p", str(self.client_ports[i]), "-n", f"n{i}", "--cluster_name", "bench",
                    "--cluster", f"nats://127.0.0.1:{self.route_ports[i]}", "--routes", routes]
            out = open(self.data / f"n{i}.log", "ab")  # noqa: SIM115 - owned by the process
            self.procs[i] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        for port in self.client_ports:
            wait_port(port, 30, "nats", list(self.procs.values()))

    def stop(self) -> None:
        stop_all(self.procs)


def natsbench(client: Path, url: str, *args: str, timeout_s: float = 120) -> dict[str, Any]:
    out = subprocess.run([str(client), "-url", url, *args], check=True, capture_output=True, text=True,
                         timeout=timeout_s).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- the runs ----------------------------------------------------------------------------------------------

def run_kafka_protocol(name: str, bootstrap: str, seconds: float, rss: Callable[[], dict[int, int]],
                       failover: Callable[[], list[float | None]] | None) -> dict[str, Any]:
    """The librdkafka workload against one cluster; figures keyed like NATS's."""
    r: dict[str, Any] = {}
    run = uuid.uuid4().hex[:6]
    for size in (100, 1024):
        topic = f"tp-{size}-{run}"
        w.create_topic(bootstrap, topic, 3)
        log(f"{name}: produce {size} B for {seconds:g}s")
        t = w.produce(bootstrap, topic, size, seconds, 3_000_000 if size == 100 else 600_000)
        p = w.percentiles(t.latencies_ms)
        r[f"produce_{size}"] = {"per_s": t.per_s, "mb_per_s": t.mb_per_s, "p50_ms": p[50.0], "p99_ms": p[99.0],
                                "errors": t.errors}
        if size == 100:
            log(f"{name}: consume {t.records} records")
            c = w.consume(bootstrap, topic, 3, t.records, seconds + 10)
            r["consume_100"] = {"per_s": c.per_s, "mb_per_s": c.mb_per_s}
    topic = f"lat-{run}"
    w.create_topic(bootstrap, topic, 3)
    for linger, key in ((5, "paced"), (0, "paced0")):
        for rate in PAUSE_RATES:
            log(f"{name}: paced acks=all at {rate} rec/s, linger.ms={linger}")
            lat = w.paced(bootstrap, topic, rate, seconds, producer=w.warm_producer(bootstrap, topic,
                                                                                  {"linger.ms": linger}))
            r[f"{key}_{rate}"] = lat.__dict__
    log(f"{name}: topic creation to first acknowledgement")
    r["create_to_ack_s"] = statistics.median(w.creation_to_first_ack(bootstrap, topic) for _ in range(3))
    r["rss_mib"] = max(rss().values(), default=0) / 1024
    if failover is not None:
        r["failover_s"] = failover()
    return r


def run_nats(client: Path, url: str, seconds: float) -> dict[str, Any]:
    r: dict[str, Any] = {}
    for size in (100, 1024):
        log(f"nats: produce {size} B for {seconds:g}s")
        stream = f"s{size}"
        p = natsbench(client, url, "-mode", "produce", "-create", "-stream", stream, "-size", str(size),
                      "-seconds", str(seconds))
        r[f"produce_{size}"] = {"per_s": p["per_s"], "mb_per_s": p["mb_per_s"], "errors": p["errors"]}
        if size == 100:
            c = natsbench(client, url, "-mode", "consume", "-stream", stream, "-count", str(p["records"]),
                          "-seconds", str(seconds + 10))
            r["consume_100"] = {"per_s": c["per_s"], "mb_per_s": c["mb_per_s"]}
    for rate in PAUSE_RATES:
        log(f"nats: paced at {rate} msg/s")
        lat = natsbench(client, url, "-mode", "paced", "-create", "-stream", f"lat{rate}", "-rate", str(rate),
                        "-seconds", str(seconds))
        r[f"paced_{rate}"] = {"p50": lat.get("p50_ms"), "p99": lat.get("p99_ms"), "p999": lat.get("p999_ms"),
                              "max": lat.get("max_ms"), "records": lat["records"], "errors": lat["errors"]}
        r[f"paced0_{rate}"] = r[f"paced_{rate}"]  # a NATS publish is sent at once: no linger to set
    return r


def rss_kib(pids: dict[int, int]) -> dict[int, int]:
    out = {}
    for node, pid in pids.items():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out[node] = int(line.split()[1])
        except OSError:
            pass
    return out


def table(results: dict[str, dict[str, Any]]) -> str:
    from cluster.cli._output import render_table

    def get(sys_: str, *path: str) -> float | None:
        v: Any = results.get(sys_, {})
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        return v if isinstance(v, (int, float)) else None

    def fmt(v: float | None, digits: int = 1) -> str:
        return "-" if v is None else f"{v:,.{digits}f}"

    def ratio(a: float | None, b: float | None, lower_better: bool = False) -> str:
        if a is None or b is None or a == 0 or b == 0:
            return "-"
        return f"{(b / a if lower_better else a / b):.2f}x"

    rows = []
    measures: list[tuple[str, tuple[str, ...], bool, int]] = [
        ("produce 100 B rec/s", ("produce_100", "per_s"), False, 0),
        ("produce 1 KiB MB/s", ("produce_1024", "mb_per_s"), False, 1),
        ("consume 100 B rec/s", ("consume_100", "per_s"), False, 0),
    ]
    for key, linger in (("paced", "linger.ms=5"), ("paced0", "linger.ms=0")):
        for rate in PAUSE_RATES:
            for q in ("p50", "p99", "p999", "max"):
                measures.append((f"acks=all {q} ms @ {rate:,}/s, {linger}", (f"{key}_{rate}", q), True, 1))
    measures.append(("topic creation → first ack s", ("create_to_ack_s",), True, 2))
    measures.append(("broker peak RSS MiB", ("rss_mib",), True, 0))
    for label, path, lower, digits in measures:
        b, k, n = get("brook", *path), get("kafka", *path), get("nats", *path)
        rows.append([label, fmt(b, digits), fmt(k, digits), fmt(n, digits), ratio(b, k, lower), ratio(b, n, lower)])
    for sys_ in ("brook", "kafka"):
        fo = [x for x in results.get(sys_, {}).get("failover_s", []) if x is not None]
        if fo:
            rows.append([f"{sys_}: leader SIGKILL → writes resume s (median of {len(fo)})",
                         fmt(statistics.median(fo), 2), "", "", "", ""])
    return render_table(["MEASURE", "BROOK", "KAFKA 4.4", "NATS R3", "BROOK/KAFKA", "BROOK/NATS"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each timed cell")
    parser.add_argument("--failover-runs", type=int, default=3, help="leader kills per Kafka-protocol system")
    parser.add_argument("--only", choices=("brook", "kafka", "nats"), action="append",
                        help="run only these systems (repeatable)")
    args = parser.parse_args(argv)
    systems = args.only or ["brook", "kafka", "nats"]
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    print(f"client settings: {w.SETTINGS}; paced rows with linger.ms=5 and with linger.ms=0 (Brook, Kafka); "
          f"NATS: nats.go async publish (JetStream ack, sent at once: its paced figures fill both), R3 file stream",
          flush=True)
    if "brook" in systems:
        from cluster.cli.launcher import LocalCluster

        with tempfile.TemporaryDirectory(prefix="peers-brook-") as d:
            log("brook: starting 3 controllers + 3 brokers")
            overrides = {"default.replication.factor": "3", "min.insync.replicas": "2",
                         "offsets.topic.replication.factor": "3", "auto.leader.rebalance.enable": "false"}
            with LocalCluster(d, controllers=3, brokers=3, overrides=overrides) as c:
                brokers = {i: c.pids[i] for i in c.broker_ids}

                def brook_failover() -> list[float | None]:
                    topic = f"fo-{uuid.uuid4().hex[:6]}"
                    w.create_topic(c.kafka_bootstrap, topic, 1)
                    return w.failover(c.kafka_bootstrap, topic, args.failover_runs, lambda n: c.kill(n, 9),
                                      c.start_node, lambda: w.fully_replicated(c.kafka_bootstrap, topic))

                results["brook"] = run_kafka_protocol("brook", c.kafka_bootstrap, args.seconds,
                                                      lambda: rss_kib(brokers), brook_failover)
    if "kafka" in systems:
        jars = kafka_jars()
        with tempfile.TemporaryDirectory(prefix="peers-kafka-") as d:
            k = KafkaPeer(jars, Path(d))
            try:
                log("kafka: formatting and starting 3 controllers + 3 brokers")
                k.start()

                def kafka_failover() -> list[float | None]:
                    topic = f"fo-{uuid.uuid4().hex[:6]}"
                    w.create_topic(k.bootstrap, topic, 1)
                    return w.failover(k.bootstrap, topic, args.failover_runs, k.kill, k.start_node,
                                      lambda: w.fully_replicated(k.bootstrap, topic))

                results["kafka"] = run_kafka_protocol("kafka", k.bootstrap, args.seconds,
                                                      lambda: rss_kib(k.broker_pids()), kafka_failover)
            finally:
                k.stop()
    if "nats" in systems:
        server, client = nats_binaries()
        with tempfile.TemporaryDirectory(prefix="peers-nats-") as d:
            n = NatsPeer(server, Path(d))
            try:
                n.start()
                time.sleep(2.0)  # JetStream meta leader election
                results["nats"] = run_nats(client, n.url, args.seconds)
                results["nats"]["rss_mib"] = max(rss_kib({i: p.pid for i, p in n.procs.items()}).values(),
                                                 default=0) / 1024
            finally:
                n.stop()
    (CACHE / "last.json").parent.mkdir(parents=True, exist_ok=True)
    (CACHE / "last.json").write_text(json.dumps(results, indent=1, default=str))
    print(table(results), flush=True)
    if shutil.which("nproc"):
        print(f"machine: {os.cpu_count()} cores; every system ran alone, one after the other; "
              f"total {time.monotonic() - started:.0f}s, load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
