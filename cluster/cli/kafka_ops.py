"""`brook log-dirs` (DescribeLogDirs, like kafka-log-dirs --describe) and `brook records delete`
(DeleteRecords, like kafka-delete-records), both over the Kafka protocol.

The brokers are found with `--bootstrap-server` (any broker) or, without it, from the controllers'
broker registrations (`kafka_bootstrap`). Both take `--command-config` (TLS, SASL: cluster.cli.kafka_client).
Metadata and DeleteRecords go through confluent-kafka's AdminClient; librdkafka has no DescribeLogDirs, so
`log-dirs` asks each broker with kafka-python's admin client (`LogDirsClient`), after the confluent-kafka
metadata call has checked the address and credentials (its errors are the clearer ones).

The pure functions (row building, the offsets file, request planning) carry the logic; the handlers
only fetch and print.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cluster.errors import BrookError, ErrorCode

LATEST_OFFSET = -1  # kafka-delete-records: offset -1 means the high watermark


def add_parsers(commands: Any, common: Any, non_negative: Any) -> None:
    from cluster.cli.main import BrookArgumentParser, add_command_config

    def kafka_protocol(p: Any) -> None:
        p.add_argument("--bootstrap-server", dest="kafka_bootstrap_server", metavar="HOST:PORT,...", default=None,
                       help="any broker's Kafka address (default: the brokers registered with the controllers)")
        add_command_config(p)

    p = commands.add_parser("log-dirs", parents=[common],
                            help="each broker's log directories with partition sizes and offset lag",
                            description="Each broker's log directories with partition sizes and offset lag "
                                        "(like kafka-log-dirs --describe).")
    kafka_protocol(p)
    p.add_argument("--brokers", type=_id_list, default=None, metavar="ID,...", help="only these brokers")
    p.add_argument("--topics", type=_name_list, default=None, metavar="TOPIC,...", help="only these topics")
    p.set_defaults(handler=log_dirs)

    g = commands.add_parser("records", help="delete records below an offset (DeleteRecords)",
                            description="Delete records below an offset (DeleteRecords).")
    actions = g.add_subparsers(dest="action", metavar="ACTION", parser_class=BrookArgumentParser)
    actions.required = True
    p = actions.add_parser("delete", parents=[common], help="move partitions' low watermark up (like "
                           "kafka-delete-records)", description="Delete every record below --before-offset "
                           "(or the offsets of an --offsets-json file); prints the new low watermark.")
    kafka_protocol(p)
    p.add_argument("--topic", default=None)
    p.add_argument("--partition", type=non_negative, action="append", default=None,
                   help="repeatable (default: every partition of --topic)")
    p.add_argument("--before-offset", type=int, default=None, metavar="N",
                   help="delete the records below offset N (-1: all of them, up to the high watermark)")
    p.add_argument("--offsets-json", metavar="FILE", default=None,
                   help='kafka-delete-records\' file: {"partitions": [{"topic": T, "partition": P, "offset": N}]}')
    p.set_defaults(handler=records_delete)


def _name_list(text: str) -> list[str]:
    import argparse

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected NAME,..., got {text!r}")
    return names


def _id_list(text: str) -> list[int]:
    import argparse

    try:
        ids = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected broker ids ID,..., got {text!r}") from None
    if not ids or any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError(f"expected broker ids ID,..., got {text!r}")
    return ids


# -- pure ------------------------------------------------------------------------------------------------

def log_dir_rows(broker_id: int, results: Sequence[Mapping[str, Any]],
                 topics: Sequence[str] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """(one row per partition replica, errors) from a broker's DescribeLogDirs results (kafka-python's
    `describe_log_dirs` dicts: log_dir, error_code, topics[name, partitions[partition_index, ...]])."""
    rows, errors = [], []
    for result in results:
        if result.get("error_code"):
            errors.append(f"broker {broker_id}: log dir {result['log_dir']}: {_code_name(int(result['error_code']))}")
        for topic in result.get("topics") or ():
            if topics is not None and topic["name"] not in topics:
                continue
            for part in topic["partitions"]:
                rows.append({"broker": broker_id, "log_dir": result["log_dir"], "topic": topic["name"],
                             "partition": int(part["partition_index"]), "size_bytes": int(part["partition_size"]),
                             "offset_lag": int(part["offset_lag"]), "is_future": bool(part.get("is_future_key", False))})
    rows.sort(key=lambda r: (r["broker"], r["log_dir"], r["topic"], r["partition"]))
    return rows, errors


def log_dirs_text(rows: Sequence[Mapping[str, Any]]) -> str:
    from cluster.cli._output import render_table

    if not rows:
        return "(no partitions)"
    return render_table(["BROKER", "LOG-DIR", "TOPIC", "PARTITION", "SIZE", "OFFSET-LAG"],
                        [[r["broker"], r["log_dir"], r["topic"], r["partition"], r["size_bytes"], r["offset_lag"]]
                         for r in rows])


def parse_offsets_json(text: str, source: str) -> list[tuple[str, int, int]]:
    """kafka-delete-records' --offset-json-file: [(topic, partition, offset)], or a one-line BrookError."""
    try:
        doc = json.loads(text)
        items = doc["partitions"]
        out = [(str(i["topic"]), int(i["partition"]), int(i["offset"])) for i in items]
    except (ValueError, KeyError, TypeError) as e:
        raise BrookError(f"cannot read {source}: expected {{\"partitions\": [{{\"topic\": T, \"partition\": P, "
                         f"\"offset\": N}}, ...]}} ({type(e).__name__}: {e})", ErrorCode.invalid_request) from None
    if not out:
        raise BrookError(f"{source} names no partition", ErrorCode.invalid_request)
    for topic, partition, offset in out:
        if partition < 0 or offset < LATEST_OFFSET:
            raise BrookError(f"{source}: bad partition or offset for {topic} ({partition}, {offset})",
                             ErrorCode.invalid_request)
    return out


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return f"error {code}"


# -- the Kafka side ---------------------------------------------------------------------------------------

def _bootstrap(ctx: Any) -> str:
    from cluster.cli.groups import kafka_bootstrap

    return ctx.args.kafka_bootstrap_server or kafka_bootstrap(ctx.controller().describe_cluster())


def _admin(bootstrap: str, timeout_s: float, security: Mapping[str, str]) -> Any:
    from confluent_kafka.admin import AdminClient

    from cluster.cli.kafka_client import CONNECTION_ERRORS, client_config

    return CONNECTION_ERRORS.track(AdminClient(client_config(bootstrap, timeout_s, security)))


def _metadata(admin: Any, bootstrap: str, timeout_s: float) -> Any:
    from cluster.cli.groups import _kafka_error

    try:
        return admin.list_topics(timeout=timeout_s)
    except Exception as e:
        raise _kafka_error(e, f"no metadata from the brokers at {bootstrap}") from None


def _check_topics(metadata: Any, topics: Iterable[str]) -> None:
    for t in topics:
        if t not in metadata.topics or metadata.topics[t].error is not None:
            raise BrookError(f"topic {t!r} does not exist", ErrorCode.unknown_topic_or_partition)


class LogDirsClient:
    """DescribeLogDirs to one broker at a time through kafka-python's admin client (librdkafka, behind
    confluent-kafka, has no DescribeLogDirs); TLS and SASL from the same --command-config settings."""

    def __init__(self, bootstrap: str, timeout_s: float, security: Mapping[str, str]) -> None:
        try:
            from kafka.admin import KafkaAdminClient
        except ImportError:
            raise BrookError("'brook log-dirs' needs the kafka-python package (pip install kafka-python)",
                             ErrorCode.unknown_server_error) from None
        from cluster.cli.kafka_client import kafka_python_options

        ms = int(timeout_s * 1000)
        try:
            self.client = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), client_id="brook-cli",
                                           request_timeout_ms=ms,
                                           **kafka_python_options(security))
        except Exception as e:  # kafka.errors.KafkaError, ssl.SSLError, OSError
            raise BrookError(f"cannot connect to the brokers at {bootstrap}: {_one_line(e)}",
                             ErrorCode.network_exception) from None

    def describe(self, broker_id: int, topics: Mapping[str, Sequence[int]] | None) -> list[dict[str, Any]]:
        answer = self.client.describe_log_dirs(None if topics is None else {t: list(ps) for t, ps in topics.items()},
                                               brokers=[broker_id])
        return list(answer[0]["log_dirs"]) if answer else []

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def log_dirs(ctx: Any) -> int:
    from cluster.cli.admin import _report_errors

    args = ctx.args
    bootstrap = _bootstrap(ctx)
    metadata = _metadata(_admin(bootstrap, ctx.timeout_s, ctx.kafka_security()), bootstrap, ctx.timeout_s)
    brokers = {b.id: b for b in metadata.brokers.values()}
    if args.brokers is not None:
        unknown = sorted(set(args.brokers) - set(brokers))
        if unknown:
            raise BrookError(f"no live broker with id {', '.join(map(str, unknown))} (live: "
                             f"{', '.join(map(str, sorted(brokers)))})", ErrorCode.broker_not_available)
    wanted: dict[str, list[int]] | None = None
    if args.topics is not None:
        _check_topics(metadata, args.topics)
        wanted = {t: sorted(metadata.topics[t].partitions) for t in args.topics}
    rows, errors = [], []
    client = LogDirsClient(bootstrap, ctx.timeout_s, ctx.kafka_security())
    try:
        for broker_id in sorted(args.brokers if args.brokers is not None else brokers):
            b = brokers[broker_id]
            try:
                results = client.describe(broker_id, wanted)
            except Exception as e:  # kafka-python's KafkaError or a socket error: report, try the next broker
                errors.append(f"broker {broker_id} at {b.host}:{b.port}: {_one_line(e)}")
                continue
            got, bad = log_dir_rows(broker_id, results, args.topics)
            rows += got
            errors += bad
    finally:
        client.close()
    ctx.emit({"log_dirs": rows, "errors": errors}, lambda: log_dirs_text(rows))
    return _report_errors(errors)


def records_delete(ctx: Any) -> int:
    from concurrent.futures import TimeoutError as FutureTimeout

    from confluent_kafka import TopicPartition

    from cluster.cli.admin import _report_errors
    from cluster.cli.groups import _kafka_error

    args = ctx.args
    if args.offsets_json is not None:
        if args.topic is not None or args.partition is not None or args.before_offset is not None:
            raise BrookError("--offsets-json is not allowed with --topic, --partition or --before-offset",
                             ErrorCode.invalid_request)
        with open(args.offsets_json, encoding="utf-8") as f:
            plan = parse_offsets_json(f.read(), args.offsets_json)
    else:
        if args.topic is None or args.before_offset is None:
            raise BrookError("give --topic and --before-offset (or --offsets-json FILE)", ErrorCode.invalid_request)
        if args.before_offset < LATEST_OFFSET:
            raise BrookError(f"--before-offset must be >= 0 (or -1 for the high watermark), got {args.before_offset}",
                             ErrorCode.offset_out_of_range)
        plan = [(args.topic, p, args.before_offset) for p in (args.partition or [])]
    bootstrap = _bootstrap(ctx)
    admin = _admin(bootstrap, ctx.timeout_s, ctx.kafka_security())
    metadata = _metadata(admin, bootstrap, ctx.timeout_s)
    if args.offsets_json is None and not args.partition:
        topic_name, before = args.topic, args.before_offset
        assert topic_name is not None and before is not None, "checked above"
        _check_topics(metadata, [topic_name])
        plan = [(topic_name, p, before) for p in sorted(metadata.topics[topic_name].partitions)]
    _check_topics(metadata, sorted({t for t, _, _ in plan}))
    for topic, partition, _ in plan:
        if partition not in metadata.topics[topic].partitions:
            raise BrookError(f"topic {topic!r} has no partition {partition} (it has "
                             f"{len(metadata.topics[topic].partitions)})", ErrorCode.unknown_topic_or_partition)
    futures = admin.delete_records([TopicPartition(t, p, o) for t, p, o in plan],
                                   request_timeout=ctx.timeout_s, operation_timeout=ctx.timeout_s)
    rows, errors = [], []
    for tp, future in sorted(futures.items(), key=lambda kv: (kv[0].topic, kv[0].partition)):
        try:
            result = future.result(timeout=ctx.timeout_s + 5)
        except FutureTimeout:
            errors.append(f"{tp.topic}-{tp.partition}: no answer within {ctx.timeout_s:g}s")
            continue
        except Exception as e:
            errors.append(_kafka_error(e, f"cannot delete records of {tp.topic}-{tp.partition}").message)
            continue
        rows.append({"topic": tp.topic, "partition": tp.partition, "low_watermark": int(result.low_watermark)})

    def text() -> str:
        from cluster.cli._output import render_table

        return render_table(["TOPIC", "PARTITION", "LOW-WATERMARK"],
                            [[r["topic"], r["partition"], r["low_watermark"]] for r in rows]) if rows else ""
    ctx.emit({"partitions": rows, "errors": errors}, text)
    return _report_errors(errors)
