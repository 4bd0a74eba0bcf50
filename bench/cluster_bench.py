"""Cluster benchmark: a local 3-controller, 3-broker Brook cluster (RF=3, min.insync.replicas=2).

Run from the repository root: `python -m bench.cluster_bench` (also `make bench`). It starts a
`LocalCluster` in a temp dir (every process stopped by PID at the end, whatever happens) and measures:

  (a) produce over the brokers' gRPC API (`brook perf produce`'s engine: batches built with
      build_batch, round robin over partitions, a few concurrent senders): records/s, MB/s and
      p50/p99 latency for 100 B and 1 KiB records with acks=all and acks=1; consume throughput
      (`brook perf consume`'s engine) of what was written;
  (b) the same through confluent-kafka (librdkafka) against the Kafka listener: produce with
      acks=all (latency = Message.latency() of each delivery report: produce() call to ack, so it
      includes librdkafka's queueing and linger), and consume throughput of a Consumer;
  (c) the time for writes to resume after SIGKILL of a partition leader, over --runs runs: a writer
      sends single-record batches with acks=all to one partition and retries every 20 ms (refreshing
      metadata), the leader is killed, the time from the kill to the first acknowledgement after it
      is taken; the broker is restarted and the partition fully replicated before the next run;
  (d) the peak RSS (VmHWM from /proc/PID/status) of each broker process after the load of (a)+(b).

Every cell is bounded by a record count and a time cap, and the whole run by --budget seconds
(cells that would overrun it are skipped and say so): about 3-4 minutes on the 2-core reference
machine, most of it (c), whose resume time is dominated by broker.session.timeout.ms (9 s by
default: a killed broker is fenced only after it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from brookpb import admin_pb2 as apb
from brookpb import broker_pb2 as bpb
from cluster.cli._output import render_table
from cluster.cli.launcher import LocalCluster
from cluster.cli.perf import run_consume, run_produce, weighted_percentiles
from cluster.client import ControllerClient, PartitionRouter
from cluster.errors import BrookError

PARTITIONS = 3
SIZES = (100, 1024)
CELL_SECONDS = 6.0                 # produce cells: time cap (the record count is a cap too)
CONSUME_SECONDS = 6.0
RECORDS_MAX = {100: 2_000_000, 1024: 400_000}
FAILOVER_RUNS = 5
FAILOVER_RESUME_MAX_S = 45.0       # a run whose writes do not resume in this long counts as failed
RECOVER_MAX_S = 60.0               # restart + fully replicated again
QUEUE_KBYTES = 4096                # librdkafka producer queue bound (see bench_confluent)
BUDGET_S = 285.0                   # the whole benchmark, cluster start included
OVERRIDES = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "group.initial.rebalance.delay.ms": "0",
    "auto.leader.rebalance.enable": "false",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    cluster: LocalCluster
    deadline: float
    rows_grpc: list[list[Any]] = field(default_factory=list)
    rows_kafka: list[list[Any]] = field(default_factory=list)
    rows_consume: list[list[Any]] = field(default_factory=list)
    failover: list[float | None] = field(default_factory=list)
    rss: dict[int, tuple[int, int]] = field(default_factory=dict)    # broker -> (VmHWM, VmRSS) KiB
    notes: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def admin(self) -> ControllerClient:
        return ControllerClient(self.cluster.controller_bootstrap.split(","), timeout_s=5.0)

    def create_topic(self, name: str, partitions: int) -> None:
        with self.admin() as client:
            reply = client.create_topics([apb.CreateTopicRequest(name=name, partitions=partitions,
                                                                 replication_factor=3)])
            if reply.results[0].error_code:
                raise BrookError(f"cannot create {name}: {reply.results[0].error_message}")
            wait_for(lambda: all(p.leader >= 0 and len(p.isr) == 3
                                 for p in client.describe_topics([name]).topics[0].partitions), 30,
                     f"{name} fully replicated")
        # Reads are answered by any controller from its own state: wait until every one has the topic,
        # or a client asking a lagging follower would be told it does not exist.
        for address in self.cluster.controller_bootstrap.split(","):
            with ControllerClient([address], timeout_s=5.0) as one:
                wait_for(partial(_knows, one, name), 30, f"controller {address} to know {name}")


def _knows(client: ControllerClient, topic: str) -> bool:
    return not client.describe_topics([topic]).topics[0].error_code


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = predicate()
            if value:
                return value
        except BrookError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(interval_s)


# -- (a) gRPC ---------------------------------------------------------------------------------------

def bench_grpc(b: Bench, cell_s: float) -> None:
    bootstrap = b.cluster.controller_bootstrap.split(",")
    for size in SIZES:
        topic = f"grpc-{size}"
        b.create_topic(topic, PARTITIONS)
        written = 0
        for acks in ("all", "1"):
            if b.left() < cell_s + 120:
                b.notes.append(f"gRPC produce {size} B acks={acks}: skipped (time budget)")
                continue
            log(f"gRPC produce {size} B acks={acks} ({cell_s:g}s)")
            r = run_produce(bootstrap, topic, RECORDS_MAX[size], size, acks=acks, max_seconds=cell_s)
            s = r.summary()
            written += r.records
            b.rows_grpc.append([f"{size} B", acks, s["batch_records"], s["records"], s["records_per_s"],
                                s["mb_per_s"], s["latency_p50_ms"], s["latency_p99_ms"], s["failed"]])
        if written and b.left() > CONSUME_SECONDS + 100:
            log(f"gRPC consume {size} B ({written} records)")
            c = run_consume(bootstrap, topic, written, max_seconds=CONSUME_SECONDS).summary()
            b.rows_consume.append(["brook gRPC (header count)", f"{size} B", c["records"], c["records_per_s"],
                                   c["mb_per_s"]])
            c = run_consume(bootstrap, topic, min(written, 200_000 if size == 100 else 50_000), decode=True,
                            max_seconds=CONSUME_SECONDS).summary()
            b.rows_consume.append(["brook gRPC (decoded)", f"{size} B", c["records"], c["records_per_s"],
                                   c["mb_per_s"]])


# -- (b) confluent-kafka ----------------------------------------------------------------------------

def bench_confluent(b: Bench, cell_s: float) -> None:
    try:
        from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
    except ImportError:
        b.notes.append("confluent-kafka: not installed, (b) skipped")
        return
    bootstrap = b.cluster.kafka_bootstrap
    for size in SIZES:
        if b.left() < cell_s + 90:
            b.notes.append(f"confluent-kafka {size} B: skipped (time budget)")
            continue
        topic = f"kafka-{size}"
        b.create_topic(topic, PARTITIONS)
        log(f"confluent-kafka produce {size} B acks=all ({cell_s:g}s)")
        latencies: list[float] = []
        errors = [0]

        def delivered(err: Any, msg: Any, latencies: list[float] = latencies, errors: list[int] = errors) -> None:
            if err is not None:
                errors[0] += 1
            else:
                latencies.append(msg.latency() * 1000.0)

        # A bounded queue (librdkafka's default is 1 GiB): unthrottled, latency is otherwise queueing time.
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                             "queue.buffering.max.kbytes": QUEUE_KBYTES, "enable.idempotence": False,
                             "log_level": 3})
        value = b"x" * size
        sent = 0
        start = time.perf_counter()
        while sent < RECORDS_MAX[size] and time.perf_counter() - start < cell_s:
            try:
                producer.produce(topic, value, on_delivery=delivered)
                sent += 1
            except BufferError:
                producer.poll(0.01)
            if sent % 1000 == 0:
                producer.poll(0)
        remaining = producer.flush(30)
        elapsed = time.perf_counter() - start
        acked = len(latencies)
        pcts = weighted_percentiles([(v, 1) for v in latencies], (50.0, 99.0))
        b.rows_kafka.append([f"{size} B", "all", acked, round(acked / elapsed, 1),
                             round(acked * size / elapsed / 1e6, 3), round(pcts[50.0], 2), round(pcts[99.0], 2),
                             errors[0] + remaining])
        if not acked or b.left() < CONSUME_SECONDS + 80:
            continue
        log(f"confluent-kafka consume {size} B ({acked} records)")
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 3})
        try:
            consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
            got = nbytes = 0
            first = None
            start = time.perf_counter()
            while got < acked and time.perf_counter() - start < CONSUME_SECONDS + 5:
                for m in consumer.consume(num_messages=5000, timeout=0.5):
                    if m.error() is None:
                        if first is None:
                            first = time.perf_counter()
                        got += 1
                        nbytes += len(m.value() or b"")
            elapsed = time.perf_counter() - start
            b.rows_consume.append(["confluent-kafka", f"{size} B", got, round(got / elapsed, 1),
                                   round(nbytes / elapsed / 1e6, 3)])
        except KafkaException as e:
            b.notes.append(f"confluent-kafka consume {size} B failed: {e}")
        finally:
            consumer.close()


# -- (d) RSS -----------------------------------------------------------------------------------------

def read_rss(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) in KiB from /proc/PID/status."""
    values = {"VmHWM": 0, "VmRSS": 0}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in values:
                    values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values["VmHWM"], values["VmRSS"]


# -- (c) failover --------------------------------------------------------------------------------------

class FailoverWriter:
    """Single-record batches with acks=all to one partition; every ack time recorded; retries every 20 ms."""

    def __init__(self, bootstrap: list[str], topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.acks: list[float] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, name="failover-writer", daemon=True)

    def run(self) -> None:
        from storage.batch import Record, build_batch

        with ControllerClient(self.bootstrap, 2.0) as controller, PartitionRouter(controller, 2.0) as router:
            seq = 0
            while not self.stop.is_set():
                seq += 1
                batch = build_batch([Record(None, b"v%d" % seq, int(time.time() * 1000))])
                request = bpb.ProduceRequest(topic=self.topic, partition=0, records=batch, acks=-1, timeout_ms=5000)
                try:
                    leader = router.leader(self.topic, 0)
                    reply = router.broker(leader.address).produce(request, 7.0)
                    if reply.error_code == 0:
                        with self.lock:
                            self.acks.append(time.monotonic())
                        continue
                except BrookError:
                    pass
                self.stop.wait(0.02)
                try:
                    router.refresh(self.topic)
                except BrookError:
                    pass

    def first_ack_after(self, t: float) -> float | None:
        with self.lock:
            return next((a for a in self.acks if a > t), None)


def bench_failover(b: Bench, runs: int) -> None:
    topic = "failover"
    b.create_topic(topic, 1)
    writer = FailoverWriter(b.cluster.controller_bootstrap.split(","), topic)
    writer.thread.start()
    try:
        wait_for(lambda: writer.first_ack_after(0.0), 20, "the failover writer's first ack")
        for run in range(runs):
            if b.left() < FAILOVER_RESUME_MAX_S + 15:
                b.notes.append(f"failover: stopped after {run} runs (time budget)")
                break
            with b.admin() as client:
                leader = next(p for p in client.describe_topics([topic]).topics[0].partitions).leader
            killed_at = time.monotonic()
            b.cluster.kill(leader, 9)
            try:
                ack = wait_for(partial(writer.first_ack_after, killed_at), FAILOVER_RESUME_MAX_S,
                               "writes to resume", interval_s=0.02)
                b.failover.append(ack - killed_at)
                log(f"failover run {run + 1}: killed leader {leader}, writes resumed after {ack - killed_at:.2f}s")
            except TimeoutError:
                b.failover.append(None)
                log(f"failover run {run + 1}: killed leader {leader}, writes did not resume in "
                    f"{FAILOVER_RESUME_MAX_S:g}s")
            b.cluster.start_node(leader)
            with b.admin() as client:
                wait_for(lambda: len(next(p for p in client.describe_topics([topic]).topics[0].partitions).isr) == 3
                         and all(not x.fenced for x in client.describe_cluster().brokers), RECOVER_MAX_S,
                         f"broker {leader} back and {topic}-0 fully replicated", interval_s=0.2)
    finally:
        writer.stop.set()
        writer.thread.join(timeout=10)


# -- report ----------------------------------------------------------------------------------------------

def report(b: Bench, session_timeout_ms: str) -> str:
    out = []
    out.append("(a) produce over the brokers' gRPC API (RF=3, min.insync.replicas=2, 3 partitions, 4 senders)")
    out.append(render_table(["RECORD", "ACKS", "BATCH", "RECORDS", "RECORDS/S", "MB/S", "P50 MS", "P99 MS",
                             "FAILED"], b.rows_grpc) if b.rows_grpc else "(not measured)")
    out.append("")
    out.append(f"(b) produce through confluent-kafka (librdkafka) on the Kafka listener (linger.ms=5, queue "
               f"{QUEUE_KBYTES // 1024} MiB; latency = produce() call to delivery report)")
    out.append(render_table(["RECORD", "ACKS", "RECORDS", "RECORDS/S", "MB/S", "P50 MS", "P99 MS", "FAILED"],
                            b.rows_kafka) if b.rows_kafka else "(not measured)")
    out.append("")
    out.append("(a)+(b) consume (from the log start, every partition)")
    out.append(render_table(["CLIENT", "RECORD", "RECORDS", "RECORDS/S", "MB/S"], b.rows_consume)
               if b.rows_consume else "(not measured)")
    out.append("")
    done = [x for x in b.failover if x is not None]
    out.append(f"(c) writes resume after SIGKILL of the partition leader (acks=all writer; "
               f"broker.session.timeout.ms={session_timeout_ms})")
    out.append(render_table(["RUN", "RESUMED AFTER S"],
                            [[i + 1, f"{x:.2f}" if x is not None else "did not resume"]
                             for i, x in enumerate(b.failover)]) if b.failover else "(not measured)")
    out.append("")
    out.append("(d) peak RSS of each broker process after the load of (a) and (b)")
    out.append(render_table(["BROKER", "PEAK RSS MIB (VmHWM)", "RSS NOW MIB"],
                            [[i, round(h / 1024, 1), round(r / 1024, 1)] for i, (h, r) in sorted(b.rss.items())])
               if b.rss else "(not measured)")
    out.append("")
    summary: list[list[Any]] = []
    for row in b.rows_grpc:
        summary.append([f"gRPC produce {row[0]} acks={row[1]}", f"{row[4]:.0f} rec/s, {row[5]:.2f} MB/s",
                        f"p50 {row[6]} ms, p99 {row[7]} ms"])
    for row in b.rows_kafka:
        summary.append([f"librdkafka produce {row[0]} acks={row[1]}", f"{row[3]:.0f} rec/s, {row[4]:.2f} MB/s",
                        f"p50 {row[5]} ms, p99 {row[6]} ms"])
    for row in b.rows_consume:
        summary.append([f"{row[0]} consume {row[1]}", f"{row[3]:.0f} rec/s, {row[4]:.2f} MB/s", ""])
    if b.failover:
        median = statistics.median(done) if done else None
        summary.append(["leader SIGKILL → writes resume", f"median {median:.2f} s" if median is not None else "-",
                        f"{len(done)}/{len(b.failover)} runs resumed"])
    if b.rss:
        peak = max(h for h, _ in b.rss.values()) / 1024
        summary.append(["broker peak RSS", f"max {peak:.1f} MiB", "goal < 300 MiB: " +
                        ("met" if peak < 300 else "NOT met")])
    out.append("Summary")
    out.append(render_table(["MEASURE", "RESULT", "DETAIL"], summary) if summary else "(nothing measured)")
    for note in b.notes:
        out.append(f"note: {note}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--cell-seconds", type=float, default=CELL_SECONDS, help="time cap of each produce cell")
    parser.add_argument("--runs", type=int, default=FAILOVER_RUNS, help="failover runs (default 5)")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for the whole benchmark")
    parser.add_argument("--session-timeout-ms", type=int, default=None,
                        help="broker.session.timeout.ms for the cluster (default: Brook's default, 9000)")
    args = parser.parse_args(argv)
    overrides = dict(OVERRIDES)
    if args.session_timeout_ms:
        overrides["broker.session.timeout.ms"] = str(args.session_timeout_ms)
        overrides["broker.heartbeat.interval.ms"] = str(max(100, min(2000, args.session_timeout_ms // 4)))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="brook-bench-") as data_dir:
        log(f"starting 3 controllers + 3 brokers in {data_dir}")
        with LocalCluster(data_dir, controllers=3, brokers=3, overrides=overrides) as cluster:
            b = Bench(cluster, started + args.budget)
            try:
                bench_grpc(b, args.cell_seconds)
                bench_confluent(b, args.cell_seconds)
                b.rss = {i: read_rss(pid) for i, pid in sorted(cluster.pids.items()) if i in cluster.broker_ids}
                bench_failover(b, args.runs)
            except (BrookError, TimeoutError) as e:
                b.notes.append(f"stopped early: {e}")
            text = report(b, overrides.get("broker.session.timeout.ms", "9000 (default)"))
    print(text)
    print(f"\ntotal {time.monotonic() - started:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
