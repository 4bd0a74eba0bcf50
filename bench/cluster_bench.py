"""`make bench`: one table of Brook's client-facing figures, measured with librdkafka on a local cluster.

Starts a 3-controller, 3-broker `LocalCluster` (RF=3, min.insync.replicas=2) in a temp dir — every process
stopped by PID at the end, whatever happens — and runs bench/workload.py against its Kafka listener:
produce throughput (100 B, 1 KiB), consume throughput (100 B), acks=all latency p50/p99/p99.9/max when
paced at 10 %, 50 % and 90 % of the measured 100 B maximum, time from CreateTopics to the first acks=all
acknowledgement, writes-resume time after SIGKILL of a partition leader (median of --failover-runs),
and the brokers' peak RSS. Client settings are printed above the table (bench/workload.py explains them).
The paced rows run twice: with the throughput producer's linger.ms=5 and with linger.ms=0 (what a
latency-sensitive user sets; at 10 % of max, linger.ms=5 alone puts p50 near 5 ms on any broker).
Below the table, CPU µs per record of every process for each produce cell — each broker, the
controllers, the client (utime + stime from /proc over the cell) — their total and the rate the
machine's cores would allow for that work, with the records per Produce request (from the brokers'
metrics): a missed throughput or latency goal's limit, measured per process. Two one-partition rows
isolate the cost of one acks=all request: 500 rec/s paced, and one record at a time (linger.ms=0,
nothing else in flight: the cluster's own round trip).
`--partitions N` (repeatable) adds the scale rows of docs/PERFORMANCE.md: throughput round robin over N
partitions and the brokers' idle CPU while holding them.
"""

from __future__ import annotations

import argparse
import os
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
    """CPU seconds of each server process and of this client process (and Produce requests answered)
    between start and report."""

    def __init__(self, controllers: dict[int, int], brokers: dict[int, int], metrics_urls: list[str]) -> None:
        self.controllers, self.brokers, self.urls = controllers, brokers, metrics_urls
        self.pids = {**controllers, **brokers, CLIENT: os.getpid()}
        self.before: dict[int, tuple[float, float]] = {}
        self.requests = 0

    def start(self) -> None:
        self.requests = produce_requests(self.urls)
        self.before = cpu_snapshot(self.pids)

    def row(self, cell: str, records: int, leader: int | None = None) -> list[str]:
        """One row of the CPU table: CPU µs per record of the brokers (node id, * = the partition leader;
        the event-loop thread, the whole process in parentheses), the controllers (sum of the three
        processes), the client (this process: the Python loop and librdkafka's threads), their total,
        and the records per second that total allows on this machine's cores (the CPU ceiling)."""
        requests = produce_requests(self.urls) - self.requests
        after = cpu_snapshot(self.pids)
        if not records:
            return [cell, "0", "-", "no records", "-", "-", "-", "-"]

        def used(i: int, part: int) -> float:
            return (after[i][part] - self.before[i][part]) * 1e6 / records

        brokers = ", ".join(f"{i}{'*' if i == leader else ''} {used(i, 0):.1f} ({used(i, 1):.1f})"
                            for i in sorted(self.brokers))
        controllers = sum(used(i, 1) for i in self.controllers)
        client = used(CLIENT, 1)
        total = sum(used(i, 1) for i in self.brokers) + controllers + client
        cores = os.cpu_count() or 1
        return [cell, f"{records:,}", f"{records / requests:.1f}" if requests > 0 else "-", brokers,
                f"{controllers:.1f}", f"{client:.1f}", f"{total:.1f}",
                f"{cores / total * 1e6:,.0f} rec/s" if total > 0 else "-"]


CLIENT = -1  # the key of this (the client's) process in CpuMeter.pids
CPU_HEADER = ["CELL", "RECORDS", "REC/REQ", "BROKERS: EVENT LOOP (PROCESS)", "CONTROLLERS", "CLIENT", "TOTAL",
              "CPU CEILING"]


def cpu_snapshot(pids: dict[int, int]) -> dict[int, tuple[float, float]]:
    """(event-loop thread, whole process) CPU seconds of each process."""
    return {i: (cpu_seconds(p, main_thread=True), cpu_seconds(p)) for i, p in pids.items()}


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
    load_before = os.getloadavg()
    print(f"client settings: {w.SETTINGS}; paced rows with linger.ms=5 (the throughput producer) and with "
          f"linger.ms=0 (a latency user's setting); 3 controllers + 3 brokers on loopback; cells of "
          f"{args.seconds:g}s; {os.cpu_count()} cores, load average {load_before[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="brook-bench-") as data_dir:
        log(f"starting 3 controllers + 3 brokers in {data_dir}")
        with LocalCluster(data_dir, controllers=3, brokers=3, overrides=overrides) as c:
            bootstrap = c.kafka_bootstrap
            brokers = {i: c.pids[i] for i in c.broker_ids}
            controllers = c.controller_ids
            meter = CpuMeter({i: c.pids[i] for i in controllers}, brokers,
                             [str(c.node(i).metrics_url) for i in c.broker_ids if c.node(i).metrics_url])
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
                goal = "goal >= 5x NATS, >= Kafka 4.4 (make bench-peers)" if size == 100 else "goal >= 100 MB/s"
                rows.append([f"produce {size} B, 3 partitions", f"{t.per_s:,.0f} rec/s", f"{t.mb_per_s:.1f} MB/s",
                             f"ack p50 {p[50.0]:.1f} ms, p99 {p[99.0]:.1f} ms, errors {t.errors}", goal])
                cpu_rows.append(meter.row(f"produce {size} B, 3 partitions (each broker leads one)", t.records))
                if size == 100:
                    best = t.per_s
                    log("consume 100 B")
                    cons = w.consume(bootstrap, topic, 3, t.records, args.seconds + 10)
                    rows.append(["consume 100 B, one consumer", f"{cons.per_s:,.0f} rec/s",
                                 f"{cons.mb_per_s:.1f} MB/s", f"{cons.records} records", "goal >= 1M rec/s"])
            topic = f"lat-{run}"
            w.create_topic(bootstrap, topic, 3)
            for linger in (5, 0):
                for share in (0.1, 0.5, 0.9):
                    rate = max(100, int(best * share))
                    log(f"paced acks=all at {rate} rec/s, linger.ms={linger}")
                    producer = w.warm_producer(bootstrap, topic, {"linger.ms": linger})
                    meter.start()
                    lat = w.paced(bootstrap, topic, rate, args.seconds, producer=producer)
                    cell = f"acks=all at {share:.0%} of max ({rate:,} rec/s), linger.ms={linger}"
                    cpu_rows.append(meter.row(cell, lat.records))
                    rows.append([cell, f"p50 {lat.p50:.1f} ms", f"p99 {lat.p99:.1f} ms",
                                 f"p99.9 {lat.p999:.1f} ms, max {lat.max:.1f} ms, errors {lat.errors}",
                                 "goal p50 <= 3 ms, p99 <= 10 ms" if share <= 0.5 else ""])
            # One partition at a low rate: the per-request cost of an acks=all produce on the leader and on
            # each follower (one record per produce request).
            one = f"one-{run}"
            w.create_topic(bootstrap, one, 1)
            leader = w.leader_of(bootstrap, one, 0)
            producer = w.warm_producer(bootstrap, one, {"linger.ms": 0})
            log("paced acks=all at 500 rec/s, one partition, linger.ms=0")
            meter.start()
            lat = w.paced(bootstrap, one, 500, args.seconds, producer=producer)
            cell = "acks=all at 500 rec/s, 1 partition, linger.ms=0"
            rows.append([cell, f"p50 {lat.p50:.1f} ms", f"p99 {lat.p99:.1f} ms",
                         f"p99.9 {lat.p999:.1f} ms, max {lat.max:.1f} ms, errors {lat.errors}", ""])
            cpu_rows.append(meter.row(cell, lat.records, leader))
            log("acks=all one record at a time, one partition")
            meter.start()
            seq = w.one_at_a_time(bootstrap, one, args.seconds, producer=producer)
            rows.append([f"acks=all one record at a time, linger.ms=0 ({seq.rate:,} req/s)", f"p50 {seq.p50:.1f} ms",
                         f"p99 {seq.p99:.1f} ms", f"p99.9 {seq.p999:.1f} ms, max {seq.max:.1f} ms, errors {seq.errors}",
                         ""])
            cpu_rows.append(meter.row("acks=all one record at a time, 1 partition", seq.records, leader))
            log("topic creation to first acknowledgement")
            firsts = [w.creation_to_first_ack(bootstrap, topic) for _ in range(5)]
            rows.append(["CreateTopics → first acks=all ack (median of 5)", f"{statistics.median(firsts):.3f} s",
                         f"max {max(firsts):.3f} s", "producer warmed up on another topic", "goal: no start-up stall"])
            for n in args.partitions:
                name = f"scale-{n}-{run}"
                log(f"scale: topic with {n} partitions")
                w.create_topic(bootstrap, name, n, timeout_s=300)
                t = w.produce(bootstrap, name, 100, args.seconds, 3_000_000)
                cpu = idle_cpu(brokers, 10.0)
                rows.append([f"produce 100 B round robin over {n} partitions", f"{t.per_s:,.0f} rec/s",
                             f"{t.per_s / best:.0%} of 3 partitions", f"busiest broker idle CPU {cpu:.1%} of a core",
                             ""])
            rows.append(["broker peak RSS (VmHWM)", f"{peak_rss_mib(brokers):.0f} MiB", "", "", ""])
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
                             "session " + overrides.get("broker.session.timeout.ms", "default"), "goal <= 3 s"])
    print(render_table(["MEASURE", "RESULT", "", "DETAIL", "GOAL (issue 12)"], rows))
    if cpu_rows:
        print(f"\nCPU µs per record (CPU seconds per 10^6 records), utime+stime over the cell. Brokers: each one's "
              f"event-loop thread (/proc/PID/task/PID/stat) and in parentheses its whole process (gRPC and RocksDB "
              f"threads; flushes and compactions of earlier cells land where they run); node id, * = the "
              f"partition's leader. Controllers {controllers}: the three processes summed. Client: this "
              f"process (the Python produce loop and librdkafka's threads). REC/REQ: records per Produce "
              f"request. CPU CEILING: {os.cpu_count()} cores / TOTAL, the rate this machine's CPU allows for "
              f"that cell's work:")
        print(render_table(CPU_HEADER, cpu_rows))
    load_after = os.getloadavg()
    print(f"\ntotal {time.monotonic() - started:.0f}s; load average {load_before[0]:.1f} at the start, "
          f"{load_after[0]:.1f} at the end", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
