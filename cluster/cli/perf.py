"""`brook perf produce|consume`: load generators like kafka-producer-perf-test.sh / kafka-consumer-perf-test.sh.

With `--bootstrap-server` (and `--command-config`) both measure over the Kafka protocol instead
(cluster/cli/perf_kafka.py). Without it, both go over the brokers' gRPC BrokerService through `PartitionRouter` (which follows leadership
changes). produce sends batches of `--batch-records` records (RecordBatch v2 from
`storage.batch.build_batch`) round robin over the partitions from a few sender threads, so that
acks=all round trips overlap instead of serializing; a record's latency is its batch's request
time (send to acknowledgement). consume reads every partition from the log start, one thread per
partition (up to a bound), counting records from the batch headers (`--decode` decodes them).

`run_produce` / `run_consume` are used by `bench/cluster_bench.py` too; the pure helpers
(percentiles, summaries, the throttle schedule) are unit-tested.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cluster.errors import BrookError, ErrorCode
from cluster.limits import CLIENT_FETCH_BYTES_MAX

EXIT_OK, EXIT_ERROR = 0, 1

ACKS = {"0": 0, "1": 1, "all": -1, "-1": -1}
PROGRESS_INTERVAL_S = 5.0
BATCH_BYTES_TARGET = 256 * 1024      # default --batch-records: about this many bytes per request
BATCH_RECORDS_MAX = 10_000
SENDERS_DEFAULT = 4
CONSUMER_THREADS_MAX = 8
FETCH_WAIT_MS = 200
PERCENTILES = (50.0, 95.0, 99.0, 99.9)
_TIMESTAMPS_AT = 27                  # baseTimestamp, maxTimestamp (i64 each) in the v2 batch header
_CRC_AT, _CRC_FROM = 17, 21


def add_parsers(commands: Any, common: argparse.ArgumentParser, positive: Any, non_negative: Any) -> None:
    p = commands.add_parser("perf", help="producer and consumer load tests (like kafka-*-perf-test.sh)",
                            description="Load tests over the brokers' gRPC API, or over the Kafka protocol "
                                        "with --bootstrap-server (as kafka-*-perf-test.sh).")
    g = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    g.required = True

    s = g.add_parser("produce", parents=[common], help="produce N records of B bytes and report throughput and "
                                                         "latency percentiles",
                     description="Produce --num-records records of --record-size bytes; print a progress line "
                                 "every few seconds, then records/s, MB/s and latency avg/p50/p95/p99/p99.9.")
    s.set_defaults(handler=perf_produce)
    s.add_argument("--topic", required=True)
    s.add_argument("--num-records", type=positive, required=True)
    s.add_argument("--record-size", type=positive, required=True, metavar="BYTES")
    s.add_argument("--throughput", type=int, default=-1, metavar="RECORDS_PER_S",
                   help="throttle to about this many records/s (-1: unlimited, the default)")
    s.add_argument("--acks", choices=tuple(ACKS), default="all", help="default: all")
    s.add_argument("--batch-records", type=positive, default=None, metavar="K",
                   help=f"records per produce request (default: about {BATCH_BYTES_TARGET // 1024} KiB worth, "
                        f"at most 1000)")
    s.add_argument("--senders", type=positive, default=SENDERS_DEFAULT,
                   help=f"concurrent sender threads (default {SENDERS_DEFAULT})")
    s.add_argument("--request-timeout-ms", type=positive, default=30_000, help="default 30000")
    s.add_argument("--reporting-interval", type=float, default=PROGRESS_INTERVAL_S, metavar="SECONDS",
                   help=f"seconds between progress lines (default {PROGRESS_INTERVAL_S:g})")
    kafka_protocol(s)

    s = g.add_parser("consume", parents=[common], help="read N records from the log start and report throughput",
                     description="Read --messages records from the start of every partition; print a progress "
                                 "line every few seconds, then records/s and MB/s.")
    s.set_defaults(handler=perf_consume)
    s.add_argument("--topic", required=True)
    s.add_argument("--messages", type=positive, required=True)
    s.add_argument("--decode", action="store_true",
                   help="decode every record (default: count them from the batch headers; MB are batch bytes)")
    s.add_argument("--idle-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="give up after this long without a new record (default 10)")
    s.add_argument("--reporting-interval", type=float, default=PROGRESS_INTERVAL_S, metavar="SECONDS",
                   help=f"seconds between progress lines (default {PROGRESS_INTERVAL_S:g})")
    kafka_protocol(s)


def kafka_protocol(s: argparse.ArgumentParser) -> None:
    from cluster.cli.main import add_command_config

    s.add_argument("--bootstrap-server", metavar="HOST:PORT,...", default=None,
                   help="measure over the Kafka protocol through these brokers (confluent-kafka, as "
                        "kafka-*-perf-test.sh; --batch-records/--senders/--decode do not apply) instead of gRPC")
    add_command_config(s)


# -- pure helpers ----------------------------------------------------------------------------------

def default_batch_records(record_size: int) -> int:
    return max(1, min(1000, BATCH_BYTES_TARGET // max(1, record_size)))


def weighted_percentiles(samples: Sequence[tuple[float, int]], percentiles: Sequence[float] = PERCENTILES) \
        -> dict[float, float]:
    """Percentiles of values that each occur `weight` times (a batch's latency counts once per record).

    Nearest rank: the smallest value with at least p% of the total weight at or below it.
    """
    ordered = sorted((v, w) for v, w in samples if w > 0)
    total = sum(w for _, w in ordered)
    out: dict[float, float] = {}
    if not total:
        return {p: 0.0 for p in percentiles}
    for p in percentiles:
        rank = max(1.0, p / 100.0 * total)
        seen = 0
        for value, weight in ordered:
            seen += weight
            if seen >= rank - 1e-9:
                out[p] = value
                break
    return out


def throttle_delay(slot: int, records_per_slot: int, throughput: int, elapsed_s: float) -> float:
    """Seconds to wait before sending slot `slot` so the rate stays at `throughput` records/s (0: now)."""
    if throughput <= 0:
        return 0.0
    return max(0.0, slot * records_per_slot / throughput - elapsed_s)


@dataclass
class ProduceResult:
    topic: str
    record_size: int
    acks: str
    batch_records: int
    records: int = 0             # acknowledged (or sent, with acks=0)
    failed: int = 0
    elapsed_s: float = 0.0
    samples: list[tuple[float, int]] = field(default_factory=list)   # (latency ms, records)
    errors: dict[str, int] = field(default_factory=dict)             # message -> failed records

    def summary(self) -> dict[str, Any]:
        elapsed = max(self.elapsed_s, 1e-9)
        weight = sum(w for _, w in self.samples)
        pcts = weighted_percentiles(self.samples)
        return {
            "topic": self.topic, "acks": self.acks, "record_size": self.record_size,
            "batch_records": self.batch_records, "records": self.records, "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "records_per_s": round(self.records / elapsed, 1),
            "mb_per_s": round(self.records * self.record_size / elapsed / 1e6, 3),
            "latency_avg_ms": round(sum(v * w for v, w in self.samples) / weight, 2) if weight else 0.0,
            "latency_max_ms": round(max((v for v, _ in self.samples), default=0.0), 2),
            "latency_p50_ms": round(pcts[50.0], 2), "latency_p95_ms": round(pcts[95.0], 2),
            "latency_p99_ms": round(pcts[99.0], 2), "latency_p999_ms": round(pcts[99.9], 2),
            "errors": dict(self.errors),
        }


def produce_summary_line(s: dict[str, Any]) -> str:
    """kafka-producer-perf-test's final line."""
    line = (f"{s['records']} records sent, {s['records_per_s']:.1f} records/sec ({s['mb_per_s']:.2f} MB/sec), "
            f"{s['latency_avg_ms']:.2f} ms avg latency, {s['latency_max_ms']:.2f} ms max latency, "
            f"{s['latency_p50_ms']:.1f} ms 50th, {s['latency_p95_ms']:.1f} ms 95th, "
            f"{s['latency_p99_ms']:.1f} ms 99th, {s['latency_p999_ms']:.1f} ms 99.9th.")
    if s["failed"]:
        line += f" {s['failed']} records failed."
    return line


def window_line(records: int, bytes_: int, seconds: float, latencies: Sequence[tuple[float, int]]) -> str:
    """A progress line for the last window, like kafka-producer-perf-test's."""
    seconds = max(seconds, 1e-9)
    weight = sum(w for _, w in latencies)
    avg = sum(v * w for v, w in latencies) / weight if weight else 0.0
    worst = max((v for v, _ in latencies), default=0.0)
    return (f"{records} records sent, {records / seconds:.1f} records/sec ({bytes_ / seconds / 1e6:.2f} MB/sec), "
            f"{avg:.1f} ms avg latency, {worst:.1f} ms max latency.")


@dataclass
class ConsumeResult:
    topic: str
    records: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    decoded: bool = False
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        elapsed = max(self.elapsed_s, 1e-9)
        return {"topic": self.topic, "records": self.records, "bytes": self.bytes, "decoded": self.decoded,
                "elapsed_s": round(self.elapsed_s, 3), "records_per_s": round(self.records / elapsed, 1),
                "mb_per_s": round(self.bytes / elapsed / 1e6, 3), "error": self.error}


def consume_summary_line(s: dict[str, Any]) -> str:
    return (f"{s['records']} records consumed in {s['elapsed_s']:.2f} s, {s['records_per_s']:.1f} records/sec "
            f"({s['mb_per_s']:.2f} MB/sec{'' if s['decoded'] else ' of record batches'}).")


def make_template(count: int, record_size: int, timestamp_ms: int) -> bytearray:
    from storage.batch import Record, build_batch

    value = os.urandom(record_size)
    return bytearray(build_batch([Record(None, value, timestamp_ms) for _ in range(count)]))


def stamp(template: bytearray, now_ms: int) -> bytes:
    """The template with base/max timestamps set to `now_ms` and its CRC recomputed (every record has
    timestamp delta 0, so all its records get `now_ms`). Much cheaper than building a batch each time."""
    import crc32c

    struct.pack_into(">qq", template, _TIMESTAMPS_AT, now_ms, now_ms)
    struct.pack_into(">I", template, _CRC_AT, crc32c.crc32c(memoryview(template)[_CRC_FROM:]))
    return bytes(template)


# -- produce ---------------------------------------------------------------------------------------

class _Window:
    """Thread-safe counters: totals for the summary and a window for progress lines."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window_records = 0
        self.window_bytes = 0
        self.window_samples: list[tuple[float, int]] = []

    def add(self, latency_ms: float, records: int, bytes_: int) -> None:
        with self.lock:
            self.window_records += records
            self.window_bytes += bytes_
            self.window_samples.append((latency_ms, records))

    def take(self) -> tuple[int, int, list[tuple[float, int]]]:
        with self.lock:
            out = (self.window_records, self.window_bytes, self.window_samples)
            self.window_records, self.window_bytes, self.window_samples = 0, 0, []
            return out

    def drain_into(self, result: ProduceResult, progress: Callable[[str], None] | None = None,
                   seconds: float = 0.0) -> None:
        """Move the window into the run's totals; with `progress`, also print its line."""
        records, bytes_, samples = self.take()
        result.records += records
        result.samples.extend(samples)
        if progress is not None:
            progress(window_line(records, bytes_, seconds, samples))


def run_produce(bootstrap: Sequence[str], topic: str, num_records: int, record_size: int, *,
                throughput: int = -1, acks: str = "all", batch_records: int | None = None,
                senders: int = SENDERS_DEFAULT, timeout_s: float = 10.0, request_timeout_ms: int = 30_000,
                max_seconds: float | None = None, progress: Callable[[str], None] | None = None,
                progress_interval_s: float = PROGRESS_INTERVAL_S) -> ProduceResult:
    """Produce `num_records` records (or fewer if `max_seconds` passes first) and measure."""
    from cluster.client import ControllerClient, PartitionRouter

    if acks not in ACKS:
        raise BrookError(f"bad acks {acks!r}: expected 0, 1 or all", ErrorCode.invalid_request)
    acks_value = ACKS[acks]
    k = min(batch_records or default_batch_records(record_size), num_records, BATCH_RECORDS_MAX)
    with ControllerClient(bootstrap, timeout_s) as controller, PartitionRouter(controller, timeout_s) as router:
        partitions = router.partitions(topic)
    slots = (num_records + k - 1) // k
    result = ProduceResult(topic, record_size, "all" if acks_value == -1 else acks, k)
    window = _Window()
    state = {"next": 0}
    lock = threading.Lock()
    stop = threading.Event()
    now_ms = int(time.time() * 1000)
    templates = {k: make_template(k, record_size, now_ms)}
    if num_records % k:
        templates[num_records % k] = make_template(num_records % k, record_size, now_ms)
    start = time.perf_counter()

    def fail(count: int, message: str) -> None:
        with lock:
            result.failed += count
            result.errors[message] = result.errors.get(message, 0) + count

    def sender() -> None:
        own_templates = {n: bytearray(t) for n, t in templates.items()}
        with ControllerClient(bootstrap, timeout_s) as controller, PartitionRouter(controller, timeout_s) as r:
            while not stop.is_set():
                with lock:
                    slot = state["next"]
                    state["next"] += 1
                if slot >= slots:
                    return
                count = min(k, num_records - slot * k)
                delay = throttle_delay(slot, k, throughput, time.perf_counter() - start)
                if delay > 0 and stop.wait(delay):
                    return
                partition = partitions[slot % len(partitions)]
                batch = stamp(own_templates[count], int(time.time() * 1000))
                t0 = time.perf_counter()
                try:
                    reply = r.produce(topic, partition, batch, acks_value, request_timeout_ms)
                except BrookError as e:
                    fail(count, e.message)
                    continue
                latency_ms = (time.perf_counter() - t0) * 1000.0
                if reply.error_code:
                    try:
                        name = ErrorCode(reply.error_code).name.upper()
                    except ValueError:
                        name = f"ERROR_{reply.error_code}"
                    fail(count, f"{reply.error_message} ({name})" if reply.error_message else name)
                    continue
                window.add(latency_ms, count, count * record_size)

    threads = [threading.Thread(target=sender, name=f"perf-sender-{i}", daemon=True)
               for i in range(max(1, min(senders, slots)))]
    for t in threads:
        t.start()
    last = start
    try:
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(timeout=0.1)
            now = time.perf_counter()
            if max_seconds is not None and now - start >= max_seconds:
                stop.set()
            if now - last >= progress_interval_s:
                window.drain_into(result, progress, now - last)
                last = now
    except KeyboardInterrupt:
        stop.set()
        for t in threads:
            t.join(timeout=timeout_s + request_timeout_ms / 1000)
        raise
    result.elapsed_s = time.perf_counter() - start
    window.drain_into(result)
    return result


def perf_produce(ctx: Any) -> int:
    args = ctx.args
    if args.throughput == 0 or args.throughput < -1:
        raise BrookError(f"--throughput must be positive or -1 (unlimited), got {args.throughput}",
                         ErrorCode.invalid_request)
    if args.reporting_interval <= 0:
        raise BrookError("--reporting-interval must be positive", ErrorCode.invalid_request)
    out = sys.stderr if ctx.json else sys.stdout
    if args.bootstrap_server:
        from cluster.cli.perf_kafka import run_produce_kafka

        result = run_produce_kafka(args.bootstrap_server, args.topic, args.num_records, args.record_size,
                                   security=ctx.kafka_security(), throughput=args.throughput,
                                   acks="all" if args.acks == "-1" else args.acks, timeout_s=ctx.timeout_s,
                                   request_timeout_ms=args.request_timeout_ms,
                                   progress=lambda line: print(line, file=out, flush=True),
                                   progress_interval_s=args.reporting_interval)
        return _print_produce(ctx, result)
    result = run_produce(ctx.bootstrap(), args.topic, args.num_records, args.record_size,
                         throughput=args.throughput, acks="all" if args.acks == "-1" else args.acks,
                         batch_records=args.batch_records, senders=args.senders, timeout_s=ctx.timeout_s,
                         request_timeout_ms=args.request_timeout_ms,
                         progress=lambda line: print(line, file=out, flush=True),
                         progress_interval_s=args.reporting_interval)
    return _print_produce(ctx, result)


def _print_produce(ctx: Any, result: ProduceResult) -> int:
    summary = result.summary()
    if ctx.json:
        print(json.dumps(summary))
    else:
        print(produce_summary_line(summary), flush=True)
    for message, count in sorted(result.errors.items(), key=lambda kv: -kv[1]):
        print(f"brook: error: {count} records not produced: {message}", file=sys.stderr)
    return EXIT_ERROR if result.failed else EXIT_OK


# -- consume ---------------------------------------------------------------------------------------

def count_fetched(buf: bytes, offset: int, high_watermark: int, decode: bool) -> tuple[int, int, int]:
    """(records, bytes, next offset) of a fetch reply's batches at/after `offset` and below the HW.

    Without `decode` records come from the headers (offsets are contiguous in a batch that was not
    compacted) and bytes are whole batches; with it, every record is decoded and bytes are key+value.
    """
    from cluster.cli.data import split_batches
    from storage.batch import decode_batch, parse_header

    records = bytes_ = 0
    next_offset = offset
    for batch in split_batches(buf):
        if decode:
            header, decoded = decode_batch(batch)
        else:
            header, decoded = parse_header(batch), []
        if header.base_offset >= high_watermark:
            break
        next_offset = max(next_offset, min(header.next_offset, high_watermark))
        if header.is_control:
            continue
        if decode:
            for r in decoded:
                o = header.base_offset + r.offset_delta
                if offset <= o < high_watermark:
                    records += 1
                    bytes_ += len(r.key or b"") + len(r.value or b"")
        else:
            first = max(offset, header.base_offset)
            last = min(header.last_offset, high_watermark - 1)
            if last >= first:
                records += last - first + 1
                bytes_ += len(batch)
    return records, bytes_, next_offset


def run_consume(bootstrap: Sequence[str], topic: str, messages: int, *, decode: bool = False,
                timeout_s: float = 10.0, idle_timeout_s: float = 10.0, max_seconds: float | None = None,
                progress: Callable[[str], None] | None = None,
                progress_interval_s: float = PROGRESS_INTERVAL_S) -> ConsumeResult:
    """Read `messages` records from the log start of every partition of `topic` and measure."""
    from cluster.client import ControllerClient, PartitionRouter

    with ControllerClient(bootstrap, timeout_s) as controller, PartitionRouter(controller, timeout_s) as router:
        partitions = router.partitions(topic)
        starts = {p: router.list_offset(topic, p, -2) for p in partitions}
    result = ConsumeResult(topic, decoded=decode)
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[str] = []
    state = {"last_progress": time.perf_counter()}
    groups = [partitions[i::CONSUMER_THREADS_MAX] for i in range(min(CONSUMER_THREADS_MAX, len(partitions)))]

    def reader(mine: list[int]) -> None:
        offsets = {p: starts[p] for p in mine}
        with ControllerClient(bootstrap, timeout_s) as controller, PartitionRouter(controller, timeout_s) as r:
            while not stop.is_set():
                got = 0
                for p in mine:
                    try:
                        reply = r.fetch(topic, p, offsets[p], CLIENT_FETCH_BYTES_MAX, FETCH_WAIT_MS // len(mine))
                    except BrookError as e:
                        with lock:
                            errors.append(e.message)
                        stop.set()
                        return
                    if reply.error_code:
                        with lock:
                            errors.append(f"{topic}-{p}: {reply.error_message or reply.error_code}")
                        stop.set()
                        return
                    n, b, offsets[p] = count_fetched(reply.records, offsets[p], reply.high_watermark, decode)
                    got += n
                    with lock:
                        take = min(n, messages - result.records)
                        result.records += take
                        result.bytes += b * take // n if n else 0
                        if n:
                            state["last_progress"] = time.perf_counter()
                        if result.records >= messages:
                            stop.set()
                            return

    threads = [threading.Thread(target=reader, args=(g,), name=f"perf-reader-{i}", daemon=True)
               for i, g in enumerate(groups)]
    start = last = time.perf_counter()
    last_records = last_bytes = 0
    for t in threads:
        t.start()
    try:
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(timeout=0.1)
            now = time.perf_counter()
            if now - state["last_progress"] >= idle_timeout_s:
                with lock:
                    result.error = (f"stopped after {result.records} of {messages} records: none for "
                                    f"{idle_timeout_s:g}s")
                stop.set()
            if max_seconds is not None and now - start >= max_seconds:
                stop.set()
            if now - last >= progress_interval_s and progress is not None:
                with lock:
                    records, bytes_ = result.records, result.bytes
                progress(f"{records} records consumed, {(records - last_records) / (now - last):.1f} records/sec "
                         f"({(bytes_ - last_bytes) / (now - last) / 1e6:.2f} MB/sec).")
                last, last_records, last_bytes = now, records, bytes_
    except KeyboardInterrupt:
        stop.set()
        raise
    result.elapsed_s = time.perf_counter() - start
    if errors and result.error is None:
        result.error = errors[0]
    return result


def perf_consume(ctx: Any) -> int:
    args = ctx.args
    if args.idle_timeout <= 0 or args.reporting_interval <= 0:
        raise BrookError("--idle-timeout and --reporting-interval must be positive", ErrorCode.invalid_request)
    out = sys.stderr if ctx.json else sys.stdout
    if args.bootstrap_server:
        from cluster.cli.perf_kafka import run_consume_kafka

        result = run_consume_kafka(args.bootstrap_server, args.topic, args.messages, security=ctx.kafka_security(),
                                   timeout_s=ctx.timeout_s, idle_timeout_s=args.idle_timeout,
                                   progress=lambda line: print(line, file=out, flush=True),
                                   progress_interval_s=args.reporting_interval)
    else:
        result = run_consume(ctx.bootstrap(), args.topic, args.messages, decode=args.decode,
                             timeout_s=ctx.timeout_s, idle_timeout_s=args.idle_timeout,
                             progress=lambda line: print(line, file=out, flush=True),
                             progress_interval_s=args.reporting_interval)
    summary = result.summary()
    if ctx.json:
        print(json.dumps(summary))
    else:
        print(consume_summary_line(summary), flush=True)
    if result.error:
        print(f"brook: error: {result.error}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK
