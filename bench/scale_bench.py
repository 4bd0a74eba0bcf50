"""`make bench` scale rows (issue 16, item 6): a cluster holding N partitions, for N in 3, 100, 1,000
(and 10,000 with `--partitions 10000`, `make bench SCALE=1`).

For each N a fresh 3-controller, 3-broker `LocalCluster` (RF=3, min.insync.replicas=2) in a temp dir,
every process stopped by PID at the end, then with librdkafka (bench/workload.py settings):

- metadata propagation: CreateTopics of N partitions → every partition has a leader in Metadata, and
  → every partition has its full ISR (every broker has the metadata and fetches);
- produce throughput, 100 B, one producer round robin over all N partitions, as fast as acks=all allows;
- acks=all p50/p99 at a fixed offered rate (`--rate`) round robin over the N partitions;
- the busiest broker's CPU with no client (the N partitions idle), over 10 s, and the largest broker RSS;
- a fresh 3-partition topic beside the N idle partitions: acks=all p50/p99 at the same rate (row 3 is
  the empty-cluster baseline: the acceptance compares row 10,000 with it); with `--fresh-cells K`
  (K > 1) the same cluster also measures a fresh topic *before* the N partitions exist and again
  right after they exist, idle (before anything is written to them), K cells each, and reports each
  cell's p99 and the ratio of the medians (same processes, same client: the figure isolates the N
  idle partitions from run-to-run noise; the single fresh-topic row above comes after the N-partition
  produce cells, with RocksDB still compacting what they wrote);
- leader SIGKILL of the fresh topic's partition 0: a timeline kill → new leader in Metadata → first
  acknowledgement (the last step must not wait out a 500 ms replica long poll);
- controller failover (once every broker is unfenced again): SIGKILL of the active controller → the
  quorum has a new leader → an RF=3 CreateTopics succeeds.

The load average (1 min) is printed with every row: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from typing import Any

from bench import workload as w
from bench.cluster_bench import OVERRIDES, cpu_seconds, log
from cluster.cli._output import render_table

DEFAULT_PARTITIONS = (3, 100, 1000)


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def rss_mib(pids: dict[int, int]) -> float:
    """The largest resident set among the brokers now (VmRSS), MiB."""
    most = 0
    for pid in pids.values():
        try:
            for line in open(f"/proc/{pid}/status", encoding="ascii"):
                if line.startswith("VmRSS:"):
                    most = max(most, int(line.split()[1]))
        except OSError:
            pass
    return most / 1024


def busiest_cpu(pids: dict[int, int], seconds: float) -> float:
    before = {i: cpu_seconds(p) for i, p in pids.items()}
    time.sleep(seconds)
    return max((cpu_seconds(p) - before[i]) / seconds for i, p in pids.items())


def propagation(bootstrap: str, topic: str, partitions: int, timeout_s: float) -> tuple[float, float]:
    """Seconds from CreateTopics to (every partition led in Metadata, every partition with its full ISR)."""
    t0 = time.monotonic()
    w.create_topic(bootstrap, topic, partitions, timeout_s=timeout_s)
    led = time.monotonic() - t0
    deadline = t0 + timeout_s
    while not w.fully_replicated(bootstrap, topic):
        if time.monotonic() > deadline:
            return led, float("nan")
        time.sleep(0.1)
    return led, time.monotonic() - t0


class SentAfterWriter:
    """One acks=all record every 10 ms to partition 0, remembering when each was sent and acknowledged."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        import threading

        self.producer = w.warm_producer(bootstrap, topic, {"message.timeout.ms": 60_000,
                                                           "topic.metadata.refresh.interval.ms": 250,
                                                           "retry.backoff.max.ms": 100})
        self.topic = topic
        self.acks: list[tuple[float, float]] = []  # (sent, acknowledged), monotonic
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="kill-writer", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()

            def delivered(err: Any, msg: Any, sent: float = sent) -> None:
                if err is None:
                    with self.lock:
                        self.acks.append((sent, time.monotonic()))
            self.producer.produce(self.topic, b"k", partition=0, on_delivery=delivered)
            self.producer.poll(0.01)
        self.producer.flush(30)

    def first_ack_of_a_record_sent_after(self, t: float) -> float | None:
        with self.lock:
            return min((acked for sent, acked in self.acks if sent > t), default=None)


def leader_logged_after(c: Any, topic: str, wall_after: float) -> float | None:
    """Wall time of the first "<topic>-0: leader at epoch" line a broker logged after `wall_after`."""
    import datetime

    marker = f"{topic}-0: leader at epoch"
    found = []
    for broker_id in c.broker_ids:
        try:
            lines = c.node(broker_id).log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if marker in line:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if stamp > wall_after:
                    found.append(stamp)
    return min(found, default=None)


def leader_kill_timeline(bootstrap: str, topic: str, kill: Any, restart: Any, cluster: Any = None) -> dict[str, float]:
    """Kill partition 0's leader under a 100 rec/s acks=all writer: seconds from the kill to the new
    leader logging its leadership (broker logs, wall clock), to it appearing in Metadata (polled, so
    late by up to one Metadata round trip) and to the first acknowledgement of a record sent after
    the kill. The gap between the leadership and the first ack is what a parked long poll would add."""
    writer = SentAfterWriter(bootstrap, topic)
    writer.thread.start()
    out: dict[str, float] = {}
    try:
        time.sleep(1.0)
        old = w.leader_of(bootstrap, topic, 0)
        killed, killed_wall = time.monotonic(), time.time()
        kill(old)
        while time.monotonic() - killed < 60:
            if "new leader in Metadata" not in out:
                try:
                    leader = w.leader_of(bootstrap, topic, 0)
                except Exception:
                    leader = -1
                if leader >= 0 and leader != old:
                    out["new leader in Metadata"] = time.monotonic() - killed
            ack = writer.first_ack_of_a_record_sent_after(killed)
            if ack is not None and "first ack of a record sent after the kill" not in out:
                out["first ack of a record sent after the kill"] = ack - killed
            if len(out) == 2:
                break
            time.sleep(0.005)
        restart(old)
    finally:
        writer.stop.set()
        writer.thread.join(timeout=40)
    if cluster is not None:
        logged = leader_logged_after(cluster, topic, killed_wall)
        if logged is not None:
            out["the new leader logs its leadership"] = logged - killed_wall
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def controller_failover(c: Any) -> tuple[float, float]:
    """SIGKILL the active controller; seconds until another is active and until a CreateTopics succeeds."""
    from brookpb import admin_pb2 as apb
    from cluster.client import ControllerClient

    with ControllerClient(c.controller_bootstrap, timeout_s=2.0) as client:
        # The broker killed by the previous step must be back (unfenced): an RF=3 CreateTopics needs it.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            brokers = client.describe_cluster().brokers
            if len(brokers) >= 3 and not any(b.fenced or b.shutting_down for b in brokers):
                break
            time.sleep(0.2)
        active = client.describe_cluster().active_controller_id
        killed = time.monotonic()
        c.kill(active, 9)
        elected = created = float("nan")
        while time.monotonic() - killed < 60:
            try:
                if elected != elected:  # nan: not yet
                    now_active = client.describe_cluster().active_controller_id
                    if now_active >= 0 and now_active != active:
                        elected = time.monotonic() - killed
                reply = client.create_topics([apb.CreateTopicRequest(name=f"ctl-{uuid.uuid4().hex[:6]}",
                                                                     partitions=1, replication_factor=3)])
                if reply.results[0].error_code == 0:
                    created = time.monotonic() - killed
                    break
            except Exception:
                pass
            time.sleep(0.02)
    c.start_node(active)
    return elected, created


def fresh_cells(bootstrap: str, topic: str, rate: int, seconds: float, cells: int) -> list[tuple[float, float]]:
    """`cells` back-to-back acks=all cells on one fresh 3-partition topic: (p50, p99) of each."""
    w.create_topic(bootstrap, topic, 3)
    time.sleep(2.0)
    producer = w.warm_producer(bootstrap, topic)
    out = []
    for _ in range(cells):
        lat = w.paced(bootstrap, topic, rate, seconds, producer=producer)
        out.append((lat.p50, lat.p99))
    return out


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def measure(n: int, seconds: float, rate: int, overrides: dict[str, str], cells: int = 1) -> dict[str, Any]:
    from cluster.cli.launcher import LocalCluster

    row: dict[str, Any] = {"partitions": n}
    with tempfile.TemporaryDirectory(prefix="brook-scale-") as data_dir:
        log(f"{n} partitions: starting 3 controllers + 3 brokers (load {load()})")
        with LocalCluster(data_dir, controllers=3, brokers=3, overrides=overrides) as c:
            bootstrap = c.kafka_bootstrap
            brokers = {i: c.pids[i] for i in c.broker_ids}
            run = uuid.uuid4().hex[:6]
            topic = f"scale-{n}-{run}"
            profile = os.environ.get("BROOK_BENCH_PROFILE")
            if profile and n >= 10_000:  # py-spy record of one broker while it takes the new partitions
                import subprocess

                subprocess.Popen(["py-spy", "record", "-d", "40", "-f", "raw", "-o", profile, "-p",
                                  str(brokers[min(brokers)])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if cells > 1:
                log(f"{n}: fresh 3-partition topic before the {n} partitions, {cells} cells at {rate} rec/s")
                row["before"] = (fresh_cells(bootstrap, f"before-{run}", rate, seconds, cells), load())
            led, replicated = propagation(bootstrap, topic, n, timeout_s=max(120.0, n / 20))
            row["propagation"] = (led, replicated, load())
            if cells > 1:  # the N partitions exist and are idle (nothing written to them yet)
                time.sleep(5.0)
                log(f"{n}: {cells} cells of a fresh topic beside the {n} idle partitions")
                row["after"] = (fresh_cells(bootstrap, f"after-{run}", rate, seconds, cells), load())
            log(f"{n}: produce round robin")
            t = w.produce(bootstrap, topic, 100, seconds, 3_000_000)
            row["throughput"] = (t.per_s, t.errors, load())
            log(f"{n}: acks=all at {rate} rec/s")
            lat = w.paced(bootstrap, topic, rate, seconds)
            row["paced"] = (lat.p50, lat.p99, lat.errors, load())
            time.sleep(5.0)  # the producers' last fetch rounds and ISR changes settle
            log(f"{n}: idle CPU")
            row["idle_cpu"] = (busiest_cpu(brokers, 10.0), load())
            row["rss"] = rss_mib(brokers)
            fresh = f"fresh-{run}"
            w.create_topic(bootstrap, fresh, 3)
            time.sleep(2.0)
            log(f"{n}: fresh 3-partition topic, acks=all at {rate} rec/s")
            lat = w.paced(bootstrap, fresh, rate, seconds)
            row["fresh"] = (lat.p50, lat.p99, lat.errors, load())
            log(f"{n}: leader SIGKILL timeline")
            row["leader_kill"] = (leader_kill_timeline(bootstrap, fresh, lambda i: c.kill(i, 9), c.start_node, c),
                                  load())
            log(f"{n}: controller SIGKILL")
            row["controller"] = (*controller_failover(c), load())
    return row


def table(rows: list[dict[str, Any]], rate: int) -> str:
    base = next((r for r in rows if r["partitions"] == 3), None)
    out = []
    for r in rows:
        led, replicated, l1 = r["propagation"]
        per_s, errors, l2 = r["throughput"]
        p50, p99, perr, l3 = r["paced"]
        cpu, l4 = r["idle_cpu"]
        f50, f99, ferr, l5 = r["fresh"]
        timeline, l6 = r["leader_kill"]
        elected, created, l7 = r["controller"]
        share = f" ({per_s / base['throughput'][0]:.0%} of 3)" if base else ""
        ratio = f" ({f99 / base['fresh'][1]:.2f}x empty)" if base and base["fresh"][1] > 0 else ""
        kill = ", ".join(f"{k} {v:.2f}s" for k, v in timeline.items()) or "-"
        out.append([f"{r['partitions']:,}",
                    f"{per_s:,.0f} rec/s{share} err {errors} [load {l2}]",
                    f"p50 {p50:.1f} / p99 {p99:.1f} ms err {perr} [load {l3}]",
                    f"{cpu:.1%} [load {l4}]",
                    f"{r['rss']:.0f} MiB",
                    f"led {led:.2f}s, full ISR {replicated:.2f}s [load {l1}]",
                    f"p50 {f50:.1f} / p99 {f99:.1f} ms{ratio} [load {l5}]",
                    f"{kill} [load {l6}]",
                    f"active {elected:.2f}s, create ok {created:.2f}s [load {l7}]",
                    paired(r)])
    headers = ["PARTITIONS", "PRODUCE 100 B RR", f"ACKS=ALL @{rate}/s RR", "IDLE CPU (busiest)", "RSS (max)",
               "METADATA PROPAGATION", f"FRESH 3-PART @{rate}/s", "LEADER SIGKILL → ...", "CONTROLLER SIGKILL → ...",
               "FRESH BEFORE → AFTER (p99)"]
    # One block per row: the table is too wide for a terminal as columns.
    lines = []
    for values in out:
        lines.append("\n".join(f"  {h:<26} {v}" for h, v in zip(headers, values, strict=True)))
    return "\n\n".join(lines)


def paired(r: dict[str, Any]) -> str:
    """The same cluster's fresh-topic p99 cells before and after its N partitions, and the ratio of
    the medians; '-' without `--fresh-cells`."""
    if "before" not in r or "after" not in r:
        return "-"
    (before, lb), (after, la) = r["before"], r["after"]
    b50, a50 = median([p50 for p50, _ in before]), median([p50 for p50, _ in after])
    b99, a99 = median([p99 for _, p99 in before]), median([p99 for _, p99 in after])
    def cells(values: list[tuple[float, float]]) -> str:
        return " ".join(f"{p99:.1f}" for _, p99 in values)

    ratio = f"{a99 / b99:.2f}x" if b99 > 0 else "-"
    return (f"median p50 {b50:.1f} → {a50:.1f} ms, p99 {b99:.1f} → {a99:.1f} ms ({ratio}); cells before [{cells(before)}] [load {lb}], "
            f"after [{cells(after)}] [load {la}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, action="append", default=[],
                        help="partition counts to measure (repeatable; default 3, 100, 1000)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each timed cell")
    parser.add_argument("--rate", type=int, default=1000, help="offered rate of the acks=all latency cells")
    parser.add_argument("--override", action="append", default=[], help="extra broker config k=v")
    parser.add_argument("--fresh-cells", type=int, default=1,
                        help="K > 1: K fresh-topic cells before and K after the N partitions, same cluster")
    args = parser.parse_args(argv)
    counts = args.partitions or list(DEFAULT_PARTITIONS)
    if 3 not in counts:
        counts = [3, *counts]
    overrides = dict(OVERRIDES)
    for kv in args.override:
        k, _, v = kv.partition("=")
        overrides[k] = v
    started = time.monotonic()
    print(f"scale: client settings: {w.SETTINGS}; cells of {args.seconds:g}s; a fresh cluster per row", flush=True)
    rows = [measure(n, args.seconds, args.rate, overrides, args.fresh_cells) for n in counts]
    print(table(rows, args.rate))
    print(render_table(["", ""], [["total", f"{time.monotonic() - started:.0f}s"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
