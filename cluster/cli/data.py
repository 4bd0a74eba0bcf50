"""`brook produce` and `brook consume`: console tools over the brokers' gRPC BrokerService.

Records travel as Kafka RecordBatch v2 built and decoded by `storage.batch` (the CLI is an entry
point, so it may use the storage codec). The partition leader is found with DescribeTopics +
DescribeCluster and followed across leadership changes by `cluster.client.PartitionRouter`.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.errors import BrookError, ErrorCode
from cluster.limits import CLIENT_FETCH_BYTES_MAX, CLIENT_PRODUCE_BATCH_BYTES_MAX

EXIT_OK, EXIT_ERROR = 0, 1

# One produce request carries at most this many lines / bytes (a few hundred KiB per gRPC message
# amortizes the ~0.5 ms per-message cost without big memory spikes).
PRODUCE_BATCH_LINES_MAX = 1000
FETCH_WAIT_MS_FOLLOW = 500
ACKS = {"0": 0, "1": 1, "all": -1, "-1": -1}


def add_parsers(commands: Any, common: argparse.ArgumentParser, positive: Any, non_negative: Any) -> None:
    from cluster.cli.main import add_command_config

    p = commands.add_parser("produce", parents=[common], help="produce stdin lines to a topic",
                            description="Produce each stdin line as one record; prints the offset of each.")
    p.set_defaults(handler=produce)
    p.add_argument("topic")
    p.add_argument("--partition", type=non_negative, help="default: hash of the key, else round robin")
    p.add_argument("--key-separator", metavar="S", help="split each line at the first S into key and value")
    p.add_argument("--acks", choices=("0", "1", "all", "-1"), default="all", help="default: all")
    p.add_argument("--timeout-ms", type=positive, default=30_000, help="produce request timeout (default 30000)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing for successful records")
    p.add_argument("--bootstrap-server", metavar="HOST:PORT,...", default=None,
                   help="produce over the Kafka protocol to these brokers (default: gRPC, found by the controllers)")
    add_command_config(p)

    p = commands.add_parser("consume", parents=[common], help="print records of a topic",
                            description="Read records up to the high watermark of each partition (or keep "
                                        "reading with --follow) and print them.")
    p.set_defaults(handler=consume)
    p.add_argument("topic")
    p.add_argument("--partition", type=non_negative, help="default: every partition")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true",
                       help="start at the log start (the default without --follow)")
    start.add_argument("--offset", type=non_negative, help="start at this offset (needs --partition)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep waiting for new records (default: stop at the high watermark); starts at the "
                        "end unless --from-beginning or --offset")
    p.add_argument("--max-messages", type=positive, help="stop after this many records")
    p.add_argument("--timeout-ms", type=positive,
                   help="with --follow: stop after this long without a new record")
    p.add_argument("--print-key", action="store_true")
    p.add_argument("--print-offset", action="store_true")
    p.add_argument("--print-partition", action="store_true")
    p.add_argument("--print-timestamp", action="store_true")
    p.add_argument("--separator", default="\t", help="between printed fields (default: tab)")
    p.add_argument("--group", metavar="GROUP",
                   help="consume as a member of this consumer group over the Kafka protocol: partitions are "
                        "assigned by the group and offsets committed; a group without committed offsets starts "
                        "at the end unless --from-beginning")
    p.add_argument("--bootstrap-server", metavar="HOST:PORT,...", default=None,
                   help="consume over the Kafka protocol from these brokers (with --group: default from the "
                        "controllers' DescribeCluster; without: gRPC)")
    add_command_config(p)


# -- partitioning ----------------------------------------------------------------------------------

def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Utils.murmur2) as a signed 32-bit int, so keys land where Java clients put them."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & ~3
    extra = length % 4
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partition_count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partition_count


def split_line(line: bytes, separator: bytes | None) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line (without its newline). Raises BrookError without the separator."""
    if separator is None:
        return None, line
    key, sep, value = line.partition(separator)
    if not sep:
        raise BrookError(f"no key separator {separator.decode(errors='replace')!r} in line "
                         f"{line[:40].decode(errors='replace')!r}", ErrorCode.invalid_record)
    return key, value


# -- produce ---------------------------------------------------------------------------------------

STDIN_READ_BYTES = 64 * 1024


def read_lines(fd: int) -> Iterator[tuple[bytes, bool]]:
    """Yield (line without its newline, more input is ready now) from file descriptor `fd`.

    "Ready" (another line already read, or the descriptor readable) lets bulk input share batches,
    while interactive or trickling input is sent line by line as it arrives.
    """
    buffer = b""
    while True:
        chunk = os.read(fd, STDIN_READ_BYTES)
        if not chunk:
            if buffer:
                yield buffer.rstrip(b"\r"), False
            return
        buffer += chunk
        lines = buffer.split(b"\n")
        buffer = lines.pop()
        for i, line in enumerate(lines):
            more = i + 1 < len(lines) or bool(buffer) or _readable(fd)
            yield line.rstrip(b"\r"), more


def _readable(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def produce(ctx: Any) -> int:
    from cluster.client import PartitionRouter
    from storage.batch import Record, build_batch

    args = ctx.args
    separator = args.key_separator.encode() if args.key_separator is not None else None
    if separator == b"":
        raise BrookError("--key-separator must not be empty", ErrorCode.invalid_request)
    acks = ACKS[args.acks]
    if args.bootstrap_server is not None:
        return produce_kafka(ctx, separator, acks)
    router = PartitionRouter(ctx.controller(), ctx.timeout_s)
    failures = 0
    with router:
        partitions = router.partitions(args.topic)
        if args.partition is not None and args.partition not in partitions:
            raise BrookError(f"topic {args.topic!r} has no partition {args.partition} (it has {len(partitions)})",
                             ErrorCode.unknown_topic_or_partition)
        pending: dict[int, list[Record]] = {}
        pending_bytes = 0
        sticky = 0

        def flush() -> None:
            nonlocal failures, pending_bytes
            for partition, records in sorted(pending.items()):
                failures += _send(ctx, router, args.topic, partition, build_batch(records), len(records), acks)
            pending.clear()
            pending_bytes = 0

        for line, more in read_lines(sys.stdin.fileno()):
            try:
                key, value = split_line(line, separator)
            except BrookError as e:
                print(f"brook: error: {e.message}", file=sys.stderr)
                failures += 1
                continue
            if args.partition is not None:
                partition = args.partition
            elif key is not None:
                partition = partition_for_key(key, len(partitions))
            else:
                partition = partitions[sticky % len(partitions)]
            pending.setdefault(partition, []).append(Record(key, value, int(time.time() * 1000)))
            pending_bytes += len(line)
            count = sum(len(v) for v in pending.values())
            if not more or count >= PRODUCE_BATCH_LINES_MAX or pending_bytes >= CLIENT_PRODUCE_BATCH_BYTES_MAX:
                flush()
                sticky += 1
        flush()
    return EXIT_ERROR if failures else EXIT_OK


def _print_produced(ctx: Any, topic: str, partition: int, offset: int | None) -> None:
    if ctx.args.quiet:
        return
    if ctx.json:
        print(json.dumps({"topic": topic, "partition": partition, "offset": offset}))
    elif offset is None:
        print(f"Sent to {topic}-{partition} (acks=0: offset unknown)")
    else:
        print(f"Produced to {topic}-{partition} at offset {offset}")


def produce_kafka(ctx: Any, separator: bytes | None, acks: int) -> int:
    """`produce --bootstrap-server`: confluent-kafka's Producer (keys partitioned with murmur2 as Java's
    clients do); each record's offset printed as it is acknowledged."""
    from confluent_kafka import KafkaException, Producer

    from cluster.cli.groups import _kafka_error
    from cluster.cli.kafka_client import CONNECTION_ERRORS, client_config

    args = ctx.args
    producer = CONNECTION_ERRORS.track(Producer(client_config(args.bootstrap_server, ctx.timeout_s,
                                                              ctx.kafka_security(), **{
        "acks": str(acks), "partitioner": "murmur2_random", "enable.idempotence": False,
        "message.timeout.ms": args.timeout_ms})))
    try:
        metadata = producer.list_topics(timeout=ctx.timeout_s)  # all topics: naming one may auto-create it
    except KafkaException as e:
        raise _kafka_error(e, f"no metadata from the brokers at {args.bootstrap_server}") from None
    info = metadata.topics.get(args.topic)
    if info is None or info.error is not None or not info.partitions:
        raise BrookError(f"topic {args.topic!r} does not exist", ErrorCode.unknown_topic_or_partition)
    if args.partition is not None and args.partition not in info.partitions:
        raise BrookError(f"topic {args.topic!r} has no partition {args.partition} (it has {len(info.partitions)})",
                         ErrorCode.unknown_topic_or_partition)
    failures = 0

    def delivered(err: Any, msg: Any) -> None:
        nonlocal failures
        if err is not None:
            failures += 1
            print(f"brook: error: record to {args.topic}-{msg.partition()} not produced: {err.str()} "
                  f"({err.name()})", file=sys.stderr)
            return
        _print_produced(ctx, args.topic, int(msg.partition()), int(msg.offset()) if acks != 0 else None)

    for line, _more in read_lines(sys.stdin.fileno()):
        try:
            key, value = split_line(line, separator)
        except BrookError as e:
            print(f"brook: error: {e.message}", file=sys.stderr)
            failures += 1
            continue
        extra = {"partition": args.partition} if args.partition is not None else {}
        while True:
            try:
                producer.produce(args.topic, value=value, key=key, on_delivery=delivered, **extra)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(args.timeout_ms / 1000 + ctx.timeout_s)
    if left:
        print(f"brook: error: {left} records not acknowledged in time", file=sys.stderr)
        failures += left
    sys.stdout.flush()
    return EXIT_ERROR if failures else EXIT_OK


def _send(ctx: Any, router: Any, topic: str, partition: int, batch: bytes, count: int, acks: int) -> int:
    """Produce one batch; print each record's offset (or the error). Returns the number of failed records."""
    try:
        reply = router.produce(topic, partition, batch, acks, ctx.args.timeout_ms)
    except BrookError as e:
        print(f"brook: error: {count} records to {topic}-{partition} not produced: {e.message}", file=sys.stderr)
        return count
    if reply.error_code:
        try:
            name = ErrorCode(reply.error_code).name.upper()
        except ValueError:
            name = f"ERROR_{reply.error_code}"
        message = f"{reply.error_message} ({name})" if reply.error_message and reply.error_message != name.lower() \
            else name
        print(f"brook: error: {count} records to {topic}-{partition} not produced: {message}", file=sys.stderr)
        return count
    if ctx.args.quiet:
        return 0
    for i in range(count):
        _print_produced(ctx, topic, partition, reply.base_offset + i if acks != 0 else None)
    sys.stdout.flush()
    return 0


# -- consume ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConsumedRecord:
    partition: int
    offset: int
    timestamp_ms: int
    log_append_time: bool
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def split_batches(buf: bytes) -> Iterator[bytes]:
    """Whole v2 batches of a fetch response; a partial batch at the end (cut by max_bytes) is dropped."""
    from storage.batch import BATCH_HEADER_BYTES, parse_header

    pos = 0
    while len(buf) - pos >= BATCH_HEADER_BYTES:
        header = parse_header(buf, pos)
        size = header.size_bytes
        if size < BATCH_HEADER_BYTES or pos + size > len(buf):
            return
        yield buf[pos:pos + size]
        pos += size


def decode_fetched(partition: int, buf: bytes, offset_min: int) -> tuple[list[ConsumedRecord], int]:
    """Records at or after `offset_min`, and the next offset to fetch (control batches are skipped)."""
    from storage.batch import decode_batch

    out: list[ConsumedRecord] = []
    next_offset = offset_min
    for batch in split_batches(buf):
        header, records = decode_batch(batch)
        next_offset = max(next_offset, header.next_offset)
        if header.is_control:
            continue
        for r in records:
            offset = header.base_offset + r.offset_delta
            if offset >= offset_min:
                out.append(ConsumedRecord(partition, offset, r.timestamp_ms, header.is_log_append_time,
                                          r.key, r.value, tuple(r.headers)))
    return out, next_offset


def _text(data: bytes | None) -> str:
    return "null" if data is None else data.decode("utf-8", errors="replace")


def format_record(record: ConsumedRecord, *, print_key: bool, print_offset: bool, print_partition: bool,
                  print_timestamp: bool, separator: str = "\t") -> str:
    """kafka-console-consumer's DefaultMessageFormatter: timestamp, partition, offset, key, value."""
    fields = []
    if print_timestamp:
        kind = "LogAppendTime" if record.log_append_time else "CreateTime"
        fields.append(f"{kind}:{record.timestamp_ms}")
    if print_partition:
        fields.append(f"Partition:{record.partition}")
    if print_offset:
        fields.append(f"Offset:{record.offset}")
    if print_key:
        fields.append(_text(record.key))
    fields.append(_text(record.value))
    return separator.join(fields)


def record_json(topic: str, record: ConsumedRecord) -> dict[str, Any]:
    return {
        "topic": topic, "partition": record.partition, "offset": record.offset,
        "timestamp": record.timestamp_ms, "timestamp_type": "LogAppendTime" if record.log_append_time else "CreateTime",
        "key": None if record.key is None else _text(record.key), "value": None if record.value is None else _text(record.value),
        "headers": {k: _text(v) for k, v in record.headers},
    }


@dataclass
class _Cursor:
    partition: int
    offset: int
    high_watermark: int = -1
    caught_up: bool = False


def _start_offsets(ctx: Any, router: Any, partitions: Sequence[int]) -> list[_Cursor]:
    args = ctx.args
    if args.offset is not None:
        return [_Cursor(p, args.offset) for p in partitions]
    position = -2 if args.from_beginning or not args.follow else -1  # -2 earliest, -1 latest
    return [_Cursor(p, router.list_offset(args.topic, p, position)) for p in partitions]


def consume(ctx: Any) -> int:
    from cluster.client import PartitionRouter

    args = ctx.args
    if args.group is not None or args.bootstrap_server is not None:
        return consume_group(ctx)
    if args.offset is not None and args.partition is None:
        raise BrookError("--offset needs --partition", ErrorCode.invalid_request)
    if args.timeout_ms is not None and not args.follow:
        raise BrookError("--timeout-ms applies to --follow (without it consume stops at the high watermark)",
                         ErrorCode.invalid_request)
    with PartitionRouter(ctx.controller(), ctx.timeout_s) as router:
        partitions = router.partitions(args.topic)
        if args.partition is not None:
            if args.partition not in partitions:
                raise BrookError(f"topic {args.topic!r} has no partition {args.partition} (it has {len(partitions)})",
                                 ErrorCode.unknown_topic_or_partition)
            partitions = [args.partition]
        cursors = _start_offsets(ctx, router, partitions)
        printed = _consume_loop(ctx, router, cursors)
    if not ctx.json:
        print(f"Processed a total of {printed} messages", file=sys.stderr)
    return EXIT_OK


def _consume_loop(ctx: Any, router: Any, cursors: list[_Cursor]) -> int:
    args = ctx.args
    printed = 0
    idle_since = stalled_since = time.monotonic()
    while True:
        progressed = got_any = False
        for cursor in cursors:
            if cursor.caught_up and not args.follow:
                continue
            wait_ms = FETCH_WAIT_MS_FOLLOW if args.follow and len(cursors) == 1 else 0
            reply = router.fetch(args.topic, cursor.partition, cursor.offset, CLIENT_FETCH_BYTES_MAX, wait_ms)
            _check_fetch(args.topic, cursor, reply)
            records, next_offset = decode_fetched(cursor.partition, reply.records, cursor.offset)
            cursor.high_watermark = reply.high_watermark
            for record in records:
                if record.offset >= reply.high_watermark:
                    break  # never show data above the high watermark, whatever the broker sent
                _print_record(ctx, record)
                printed += 1
                got_any = True
                if args.max_messages is not None and printed >= args.max_messages:
                    return printed
            # Above the high watermark nothing was shown: fetch again from there later.
            new_offset = max(cursor.offset, min(next_offset, reply.high_watermark))
            progressed = progressed or new_offset > cursor.offset
            cursor.offset = new_offset
            cursor.caught_up = cursor.offset >= reply.high_watermark
        sys.stdout.flush()
        if not args.follow and all(c.caught_up for c in cursors):
            return printed
        now = time.monotonic()
        if got_any:
            idle_since = now
        if progressed:
            stalled_since = now
        if args.follow:
            if args.timeout_ms is not None and not got_any and (now - idle_since) * 1000 >= args.timeout_ms:
                return printed
            if len(cursors) > 1 and not got_any:
                time.sleep(0.1)  # several partitions are polled without a long wait each
        elif not progressed:
            # Below the high watermark but nothing came back: the leader may be catching up. Bounded.
            if now - stalled_since > ctx.timeout_s:
                behind = ", ".join(f"{args.topic}-{c.partition} at {c.offset} < {c.high_watermark}"
                                   for c in cursors if not c.caught_up)
                raise BrookError(f"no progress for {ctx.timeout_s:g}s reading {behind}", ErrorCode.request_timed_out)
            time.sleep(0.1)


def _check_fetch(topic: str, cursor: _Cursor, reply: Any) -> None:
    if reply.error_code == int(ErrorCode.offset_out_of_range):
        raise BrookError(f"offset {cursor.offset} is out of range for {topic}-{cursor.partition} "
                         f"(log start {reply.log_start_offset}, high watermark {reply.high_watermark})",
                         ErrorCode.offset_out_of_range)
    if reply.error_code:
        try:
            code = ErrorCode(reply.error_code)
        except ValueError:
            code = ErrorCode.unknown_server_error
        raise BrookError(f"{topic}-{cursor.partition}: {reply.error_message or code.name}", code)


def _print_record(ctx: Any, record: ConsumedRecord) -> None:
    args = ctx.args
    if ctx.json:
        print(json.dumps(record_json(args.topic, record)))
    else:
        print(format_record(record, print_key=args.print_key, print_offset=args.print_offset,
                            print_partition=args.print_partition, print_timestamp=args.print_timestamp,
                            separator=args.separator))


# -- consume --group (Kafka protocol) --------------------------------------------------------------

def consume_group(ctx: Any) -> int:
    """kafka-console-consumer --group: a confluent-kafka Consumer in the group. Without --follow it
    stops when every partition assigned to it has reached its end (librdkafka's partition EOF);
    offsets are committed as records are printed, and once more at the end."""
    from cluster.cli.groups import _kafka_error, kafka_bootstrap
    from cluster.cli.kafka_client import CONNECTION_ERRORS, client_config

    args = ctx.args
    if args.group is not None and (args.partition is not None or args.offset is not None):
        raise BrookError("--group takes its partitions from the group: drop --partition / --offset",
                         ErrorCode.invalid_request)
    if args.timeout_ms is not None and not args.follow:
        raise BrookError("--timeout-ms applies to --follow (without it consume stops at the end of its partitions)",
                         ErrorCode.invalid_request)
    if args.offset is not None and args.partition is None:
        raise BrookError("--offset needs --partition", ErrorCode.invalid_request)
    try:
        from confluent_kafka import (
            OFFSET_BEGINNING,
            OFFSET_END,
            Consumer,
            KafkaError,
            KafkaException,
            TopicPartition,
        )
    except ImportError:
        raise BrookError("'brook consume --group' needs the confluent-kafka package", ErrorCode.unknown_server_error) \
            from None
    bootstrap = args.bootstrap_server or kafka_bootstrap(ctx.controller().describe_cluster())
    grouped = args.group is not None  # without a group: assigned partitions, nothing committed
    consumer = CONNECTION_ERRORS.track(Consumer(client_config(bootstrap, ctx.timeout_s, ctx.kafka_security(), **{
        "group.id": args.group if grouped else "brook-cli-console",
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        "enable.partition.eof": True, "enable.auto.commit": grouped})))
    printed = 0
    at_end: set[int] = set()
    assigned: set[int] = set()

    def on_assign(_consumer: Any, partitions: Any) -> None:
        assigned.update(tp.partition for tp in partitions)

    def on_revoke(_consumer: Any, partitions: Any) -> None:
        for tp in partitions:
            assigned.discard(tp.partition)
            at_end.discard(tp.partition)

    try:
        try:
            metadata = consumer.list_topics(args.topic, timeout=ctx.timeout_s)
        except KafkaException as e:
            raise _kafka_error(e, f"no metadata from the brokers at {bootstrap}") from None
        info = metadata.topics.get(args.topic)
        if info is None or info.error is not None or not info.partitions:
            raise BrookError(f"topic {args.topic!r} does not exist", ErrorCode.unknown_topic_or_partition)
        if grouped:
            consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
        else:
            partitions = sorted(info.partitions)
            if args.partition is not None:
                if args.partition not in partitions:
                    raise BrookError(f"topic {args.topic!r} has no partition {args.partition} (it has "
                                     f"{len(partitions)})", ErrorCode.unknown_topic_or_partition)
                partitions = [args.partition]
            start = args.offset if args.offset is not None else (
                OFFSET_END if args.follow and not args.from_beginning else OFFSET_BEGINNING)
            consumer.assign([TopicPartition(args.topic, p, start) for p in partitions])
            assigned.update(partitions)
        idle_since = started = time.monotonic()
        while True:
            message = consumer.poll(0.2)
            now = time.monotonic()
            if message is None:
                if args.follow and args.timeout_ms is not None and (now - idle_since) * 1000 >= args.timeout_ms:
                    break
                if not assigned and now - started > max(ctx.timeout_s, 10.0):
                    raise BrookError(f"no partition of {args.topic!r} was assigned to this member of group "
                                     f"'{args.group}' within {max(ctx.timeout_s, 10.0):g}s (are the group's "
                                     "other members taking them all?)", ErrorCode.request_timed_out)
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(int(message.partition() or 0))
                    if not args.follow and assigned and assigned <= at_end:
                        break
                    continue
                raise _kafka_error(BaseException(error), f"consuming {args.topic}")
            at_end.discard(message.partition())
            idle_since = now
            timestamp_type, timestamp = message.timestamp()
            raw_headers: Any = message.headers() or ()
            headers = [(str(k), _as_bytes(v)) for k, v in raw_headers]
            record = ConsumedRecord(int(message.partition() or 0), int(message.offset() or 0), timestamp,
                                    timestamp_type == 2, _as_bytes(message.key()), _as_bytes(message.value()),
                                    tuple(headers))
            _print_record(ctx, record)
            printed += 1
            if args.max_messages is not None and printed >= args.max_messages:
                break
        sys.stdout.flush()
        if printed and grouped:
            try:
                consumer.commit(asynchronous=False)
            except Exception as e:  # KafkaException: NO_OFFSET when auto-commit already did it
                if "NO_OFFSET" not in str(e):
                    raise _kafka_error(e, f"cannot commit the offsets of group '{args.group}'") from None
    finally:
        consumer.close()
    if not ctx.json:
        print(f"Processed a total of {printed} messages", file=sys.stderr)
    return EXIT_OK


def _as_bytes(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data
