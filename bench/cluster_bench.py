"""`make bench`: one table of Brook's client-facing figures, measured with librdkafka on a local cluster.

Starts a 3-controller, 3-broker `LocalCluster` (RF=3, min.insync.replicas=2) in a temp dir — every process
stopped by PID at the end, whatever happens — and runs bench/workload.py against its Kafka listener:
produce throughput (100 B, 1 KiB), consume throughput (100 B), acks=all latency p50/p99/p99.9/max when
paced at 10 %, 50 % and 90 % of the measured 100 B maximum, time from CreateTopics to the first acks=all
acknowledgement, writes-resume time after SIGKILL of a partition leader (median of --failover-runs),
and the brokers' peak RSS. Client settings are printed above the table (bench/workload.py explains them).
Below it, CPU seconds per 1,000 records of every server process for each produce cell (utime + stime
from /proc/PID/stat over the cell) and the records per Produce request (from the brokers' metrics):
the per-record cost of each process under whatever else the machine runs. Two one-partition rows
isolate the cost of one acks=all request: 500 rec/s paced, and one record at a time (linger.ms=0,
nothing else in flight: the cluster's own round trip).
`--partitions N` (repeatable) adds the scale rows of docs/PERFORMANCE.md: throughput round robin over N
partitions and the brokers' idle CPU while holding them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from typing import Any

from bench import workload as w
from cluster.cli._output import render_table

OVERRIDES = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "group.initial.rebalance.delay.ms": "0",
    "auto.leader.rebalance.enable": "false",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mib(pids: dict[int, int]) -> float:
    peak = 0
    for pid in pids.values():
        try:
            for line in open(f"/proc/{pid}/status", encoding="ascii"):
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
    return peak / 1024


def cpu_seconds(pid: int, main_thread: bool = False) -> float:
    """utime + stime of a process (or of its main thread, the event loop: /proc/PID/task/PID/stat), in
    seconds (stat fields 14 and 15). The process total includes RocksDB's flush and compaction threads,
    which run after the data that caused them was written."""
    import os

    path = f"/proc/{pid}/task/{pid}/stat" if main_thread else f"/proc/{pid}/stat"
    try:
        fields = open(path, encoding="ascii").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce_requests(metrics_urls: list[str]) -> int:
    """Produce requests the brokers have answered (their kafka_network_requestmetrics_requests_total)."""
    import urllib.request

    total = 0
    for url in metrics_urls:
        try:
            text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith('kafka_network_requestmetrics_requests_total{request="Produce"'):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


class CpuMeter:
    """CPU seconds of each server process (and Produce requests answered) between start and report."""

    def __init__(self, pids: dict[int, int], metrics_urls: list[str]) -> None:
        self.pids, self.urls = pids, metrics_urls
        self.before: dict[int, tuple[float, float]] = {}
        self.requests = 0

    def start(self) -> None:
        self.requests = produce_requests(self.urls)
        self.before = cpu_snapshot(self.pids)

    def report(self, records: int, leader: int | None = None) -> str:
        """CPU seconds per 1,000 records of each process (node id, * = the partition leader), and
        records per Produce request."""
        requests = produce_requests(self.urls) - self.requests
        per_request = f"; {records / requests:.1f} records per Produce request" if requests > 0 else ""
        return cpu_per_k(self.pids, self.before, records, leader) + per_request


def cpu_snapshot(pids: dict[int, int]) -> dict[int, tuple[float, float]]:
    """(event-loop thread, whole process) CPU seconds of each process."""
    return {i: (cpu_seconds(p, main_thread=True), cpu_seconds(p)) for i, p in pids.items()}


def cpu_per_k(pids: dict[int, int], before: dict[int, tuple[float, float]], records: int,
              leader: int | None = None) -> str:
    """CPU seconds per 1,000 records of each server process since `before`: node id (* = leader), the
    event-loop thread's, and in parentheses the whole process's (RocksDB and gRPC threads included)."""
    if not records:
        return "cpu: no records"
    after = cpu_snapshot(pids)
    cells = [f"{i}{'*' if i == leader else ''} {(after[i][0] - before[i][0]) * 1000 / records:.4f}"
             f" ({(after[i][1] - before[i][1]) * 1000 / records:.4f})"
             for i in sorted(before) if i in after]
    return ", ".join(cells)


def idle_cpu(pids: dict[int, int], seconds: float) -> float:
    """The busiest broker's share of one core over `seconds` with no client."""
    before = {i: cpu_seconds(p) for i, p in pids.items()}
    time.sleep(seconds)
    return max((cpu_seconds(p) - before[i]) / seconds for i, p in pids.items())


def main(argv: list[str] | None = None) -> int:
    from cluster.cli.launcher import LocalCluster

    parser = argparse.ArgumentParser(prog="python -m bench.cluster_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each timed cell")
    parser.add_argument("--failover-runs", type=int, default=10, help="leader kills (median reported)")
    parser.add_argument("--partitions", type=int, action="append", default=[],
                        help="also measure a topic with this many partitions (repeatable): 100, 1000, 10000")
    parser.add_argument("--override", action="append", default=[], help="extra broker config k=v")
    args = parser.parse_args(argv)
    overrides = dict(OVERRIDES)
    for kv in args.override:
        k, _, v = kv.partition("=")
        overrides[k] = v
    rows: list[list[Any]] = []
    cpu_rows: list[list[Any]] = []
    controllers: list[int] = []
    brokers: dict[int, int] = {}
    started = time.monotonic()
    print(f"client settings: {w.SETTINGS}; 3 controllers + 3 brokers on loopback; cells of {args.seconds:g}s",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="brook-bench-") as data_dir:
        log(f"starting 3 controllers + 3 brokers in {data_dir}")
        with LocalCluster(data_dir, controllers=3, brokers=3, overrides=overrides) as c:
            bootstrap = c.kafka_bootstrap
            brokers = {i: c.pids[i] for i in c.broker_ids}
            controllers = c.controller_ids
            servers = {i: c.pids[i] for i in controllers + c.broker_ids}
            meter = CpuMeter(servers, [str(c.node(i).metrics_url) for i in c.broker_ids if c.node(i).metrics_url])
            run = uuid.uuid4().hex[:6]
            best = 0.0
            for size in (100, 1024):
                topic = f"tp-{size}-{run}"
                w.create_topic(bootstrap, topic, 3)
                log(f"produce {size} B")
                producer = w.warm_producer(bootstrap, topic)
                meter.start()
                t = w.produce(bootstrap, topic, size, args.seconds, 3_000_000 if size == 100 else 600_000,
                              producer=producer)
                p = w.percentiles(t.latencies_ms)
                rows.append([f"produce {size} B, 3 partitions", f"{t.per_s:,.0f} rec/s", f"{t.mb_per_s:.1f} MB/s",
                             f"ack p50 {p[50.0]:.1f} ms, p99 {p[99.0]:.1f} ms, errors {t.errors}"])
                cpu_rows.append([f"produce {size} B", meter.report(t.records)])
                if size == 100:
                    best = t.per_s
                    log("consume 100 B")
                    cons = w.consume(bootstrap, topic, 3, t.records, args.seconds + 10)
                    rows.append(["consume 100 B, one consumer", f"{cons.per_s:,.0f} rec/s",
                                 f"{cons.mb_per_s:.1f} MB/s", f"{cons.records} records"])
            topic = f"lat-{run}"
            w.create_topic(bootstrap, topic, 3)
            for share in (0.1, 0.5, 0.9):
                rate = max(100, int(best * share))
                log(f"paced acks=all at {rate} rec/s")
                producer = w.warm_producer(bootstrap, topic)
                meter.start()
                lat = w.paced(bootstrap, topic, rate, args.seconds, producer=producer)
                cpu_rows.append([f"acks=all paced at {rate:,} rec/s", meter.report(lat.records)])
                rows.append([f"acks=all latency at {share:.0%} of max ({rate:,} rec/s)",
                             f"p50 {lat.p50:.1f} ms", f"p99 {lat.p99:.1f} ms",
                             f"p99.9 {lat.p999:.1f} ms, max {lat.max:.1f} ms, errors {lat.errors}"])
            # One partition at a low rate: the per-request cost of an acks=all produce on the leader and on
            # each follower (one record per produce request).
            one = f"one-{run}"
            w.create_topic(bootstrap, one, 1)
            leader = w.leader_of(bootstrap, one, 0)
            producer = w.warm_producer(bootstrap, one)
            log("paced acks=all at 500 rec/s, one partition")
            meter.start()
            lat = w.paced(bootstrap, one, 500, args.seconds, producer=producer)
            rows.append(["acks=all latency at 500 rec/s, 1 partition", f"p50 {lat.p50:.1f} ms", f"p99 {lat.p99:.1f} ms",
                         f"p99.9 {lat.p999:.1f} ms, max {lat.max:.1f} ms, errors {lat.errors}"])
            cpu_rows.append(["acks=all paced at 500 rec/s, 1 partition", meter.report(lat.records, leader)])
            log("acks=all one record at a time, one partition")
            producer = w.warm_producer(bootstrap, one, {"linger.ms": 0})
            meter.start()
            seq = w.one_at_a_time(bootstrap, one, args.seconds, producer=producer)
            rows.append([f"acks=all one record at a time, linger.ms=0 ({seq.rate:,} req/s)", f"p50 {seq.p50:.1f} ms",
                         f"p99 {seq.p99:.1f} ms", f"p99.9 {seq.p999:.1f} ms, max {seq.max:.1f} ms, errors {seq.errors}"])
            cpu_rows.append(["acks=all one record at a time, 1 partition", meter.report(seq.records, leader)])
            log("topic creation to first acknowledgement")
            firsts = [w.creation_to_first_ack(bootstrap, topic) for _ in range(5)]
            rows.append(["CreateTopics → first acks=all ack (median of 5)", f"{statistics.median(firsts):.3f} s",
                         f"max {max(firsts):.3f} s", "producer warmed up on another topic"])
            for n in args.partitions:
                name = f"scale-{n}-{run}"
                log(f"scale: topic with {n} partitions")
                w.create_topic(bootstrap, name, n, timeout_s=300)
                t = w.produce(bootstrap, name, 100, args.seconds, 3_000_000)
                cpu = idle_cpu(brokers, 10.0)
                rows.append([f"produce 100 B round robin over {n} partitions", f"{t.per_s:,.0f} rec/s",
                             f"{t.per_s / best:.0%} of 3 partitions", f"busiest broker idle CPU {cpu:.1%} of a core"])
            rows.append(["broker peak RSS (VmHWM)", f"{peak_rss_mib(brokers):.0f} MiB", "", ""])
            if args.failover_runs:
                fo_topic = f"fo-{run}"
                w.create_topic(bootstrap, fo_topic, 1)
                log(f"failover: {args.failover_runs} leader kills")
                fo = w.failover(bootstrap, fo_topic, args.failover_runs, lambda n: c.kill(n, 9), c.start_node,
                                lambda: w.fully_replicated(bootstrap, fo_topic))
                done = [x for x in fo if x is not None]
                rows.append([f"leader SIGKILL → writes resume ({len(done)}/{len(fo)} resumed)",
                             f"median {statistics.median(done):.2f} s" if done else "-",
                             f"max {max(done):.2f} s" if done else "-",
                             "session " + overrides.get("broker.session.timeout.ms", "default")])
    print(render_table(["MEASURE", "RESULT", "", "DETAIL"], rows))
    if cpu_rows:
        print(f"\nCPU seconds per 1,000 records, utime+stime over the cell, of each server's event-loop thread "
              f"(/proc/PID/task/PID/stat) and in parentheses its whole process (/proc/PID/stat; includes RocksDB "
              f"flushes and compactions of earlier cells) (node id; controllers {controllers}, brokers "
              f"{list(brokers)}; * = the partition leader):")
        print(render_table(["CELL", "CPU"], cpu_rows))
    print(f"\ntotal {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
