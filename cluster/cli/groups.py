"""`brook groups list|describe|reset-offsets|delete`: consumer groups, like kafka-consumer-groups.sh.

Groups live in the brokers' group coordinators and are reached over the Kafka protocol with
confluent-kafka's AdminClient (ListGroups, DescribeGroups, OffsetFetch, OffsetCommit, DeleteGroups).
The user gives either the controllers (the brokers' Kafka addresses then come from DescribeCluster,
each broker's first Kafka listener, and log offsets from the brokers' gRPC ListOffsets through
`PartitionRouter`) or `--bootstrap-server` (everything over the Kafka protocol, `KafkaOffsets`).

The pure functions (bootstrap derivation, lag rows, reset plans, text) carry the logic and are
unit-tested; the handlers only fetch and print.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.cli._output import render_kv, render_table
from cluster.client import kafka_address
from cluster.errors import BrookError, ErrorCode

EXIT_OK, EXIT_ERROR = 0, 1

# librdkafka's "no committed offset" (RD_KAFKA_OFFSET_INVALID).
OFFSET_INVALID = -1001
# Kafka lets offsets be reset only when nobody consumes: these states are "inactive".
INACTIVE_STATES = frozenset({"empty", "dead", "unknown"})


def add_parsers(commands: Any, common: argparse.ArgumentParser, positive: Any, non_negative: Any) -> None:
    from cluster.cli.main import add_command_config

    p = commands.add_parser("groups", help="consumer groups: list, describe (lag), reset offsets, delete",
                            description="Consumer groups over the Kafka protocol (like kafka-consumer-groups.sh).")
    g = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    g.required = True

    def sub(name: str, help: str, handler: Any) -> argparse.ArgumentParser:
        s = g.add_parser(name, help=help, description=help, parents=[common])
        s.set_defaults(handler=handler)
        s.add_argument("--bootstrap-server", metavar="HOST:PORT,...", default=None,
                       help="Kafka addresses of brokers (default: from DescribeCluster)")
        add_command_config(s)
        return s

    sub("list", "group ids with state and type", groups_list)
    s = sub("describe", "state, members and per-partition committed offset, log end offset and LAG",
            groups_describe)
    s.add_argument("group")
    s = sub("reset-offsets", "set a group's committed offsets (dry run unless --execute; the group must be "
                             "inactive)", groups_reset_offsets)
    s.add_argument("group")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--topic", action="append", metavar="TOPIC[:P,P...]",
                       help="topic (all partitions) or topic:0,2 (repeatable)")
    which.add_argument("--all-topics", action="store_true",
                       help="every partition the group has a committed offset for")
    to = s.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the log start offset")
    to.add_argument("--to-latest", action="store_true", help="the log end offset (high watermark)")
    to.add_argument("--to-offset", type=non_negative, metavar="N", help="offset N (clamped to the log range)")
    to.add_argument("--to-datetime", type=parse_datetime, metavar="YYYY-MM-DDTHH:mm:SS[.sss][Z|+hh:mm]",
                    help="the first offset whose timestamp is at or after this time (local time without a "
                         "zone); the log end when no record is that recent")
    to.add_argument("--shift-by", type=int, metavar="N",
                    help="move the committed offset by N (negative: back), clamped to the log range")
    s.add_argument("--execute", action="store_true", help="commit the new offsets (default: only show them)")
    s = sub("delete", "delete inactive groups and their committed offsets", groups_delete)
    s.add_argument("group", nargs="+")


# -- pure helpers ----------------------------------------------------------------------------------

def kafka_bootstrap(cluster: Any) -> str:
    """`host:port,...` of the registered brokers' first Kafka listener (unfenced first; all if none is
    unfenced). The CLI runs beside the cluster (e.g. `docker compose exec`), so the first listener, the
    internal one in deploy/compose.yaml, is the one it can reach."""
    brokers = sorted(cluster.brokers, key=lambda b: b.broker_id)
    live = [b for b in brokers if not b.fenced and not b.shutting_down] or brokers
    addresses = [a for a in (kafka_address(b) for b in live) if a]
    if not addresses:
        raise BrookError("no broker is registered with the controllers (is the cluster up?)",
                         ErrorCode.broker_not_available)
    return ",".join(addresses)


def parse_topic_spec(text: str) -> tuple[str, list[int] | None]:
    """`topic` → (topic, None); `topic:0,2` → (topic, [0, 2])."""
    topic, sep, parts = text.partition(":")
    topic = topic.strip()
    if not topic:
        raise BrookError(f"bad --topic {text!r}: expected TOPIC or TOPIC:P,P...", ErrorCode.invalid_request)
    if not sep:
        return topic, None
    try:
        partitions = sorted({int(p) for p in parts.split(",") if p.strip()})
    except ValueError:
        raise BrookError(f"bad --topic {text!r}: partitions must be integers", ErrorCode.invalid_request) from None
    if not partitions or partitions[0] < 0:
        raise BrookError(f"bad --topic {text!r}: expected TOPIC:P,P... with P >= 0", ErrorCode.invalid_request)
    return topic, partitions


def state_name(state: Any) -> str:
    """ConsumerGroupState.STABLE → 'Stable' (Kafka's spelling)."""
    name = getattr(state, "name", None) or str(state)
    return {"PREPARING_REBALANCING": "PreparingRebalance",
            "COMPLETING_REBALANCING": "CompletingRebalance"}.get(name, name.title().replace("_", ""))


@dataclass(frozen=True)
class Member:
    member_id: str
    client_id: str
    host: str
    instance_id: str | None
    assignment: tuple[tuple[str, int], ...]


def assignment_text(assignment: Iterable[tuple[str, int]]) -> str:
    """[(t, 0), (t, 1), (u, 2)] → 't(0,1) u(2)'; '-' when empty."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in assignment:
        by_topic.setdefault(topic, []).append(partition)
    return " ".join(f"{t}({','.join(map(str, sorted(ps)))})" for t, ps in sorted(by_topic.items())) or "-"


def lag_rows(group: str, committed: Mapping[tuple[str, int], int | None],
             log_end: Mapping[tuple[str, int], int | None], members: Sequence[Member]) -> list[dict[str, Any]]:
    """One row per partition that has a committed offset, an owner or a known log end offset, like
    kafka-consumer-groups --describe.

    LAG = log end offset - committed offset (never negative); None when either is unknown.
    """
    owner: dict[tuple[str, int], Member] = {}
    for m in members:
        for tp in m.assignment:
            owner[tp] = m
    rows = []
    for topic, partition in sorted(set(committed) | set(owner) | set(log_end)):
        current = committed.get((topic, partition))
        end = log_end.get((topic, partition))
        lag = max(0, end - current) if current is not None and end is not None else None
        who = owner.get((topic, partition))
        rows.append({"group": group, "topic": topic, "partition": partition, "current_offset": current,
                     "log_end_offset": end, "lag": lag, "consumer_id": who.member_id if who else None,
                     "host": who.host if who else None, "client_id": who.client_id if who else None})
    return rows


def describe_view(group: str, state: str, coordinator: str | None, assignor: str | None,
                  members: Sequence[Member], rows: list[dict[str, Any]]) -> dict[str, Any]:
    lags = [r["lag"] for r in rows if r["lag"] is not None]
    return {
        "group": group, "state": state, "coordinator": coordinator, "assignor": assignor or None,
        "members": [{"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                     "group_instance_id": m.instance_id,
                     "assignment": [{"topic": t, "partition": p} for t, p in m.assignment]} for m in members],
        "partitions": rows,
        "total_lag": sum(lags) if lags else None,
    }


def describe_text(view: dict[str, Any]) -> str:
    head = render_kv([("Group", view["group"]), ("State", view["state"]), ("Coordinator", view["coordinator"]),
                      ("Assignor", view["assignor"]), ("Members", len(view["members"])),
                      ("Total lag", view["total_lag"])])
    parts = [head]
    if view["members"]:
        rows = [[m["member_id"], m["client_id"], m["host"], m["group_instance_id"],
                 assignment_text((a["topic"], a["partition"]) for a in m["assignment"])] for m in view["members"]]
        parts.append(render_table(["MEMBER-ID", "CLIENT-ID", "HOST", "INSTANCE-ID", "ASSIGNMENT"], rows))
    if view["partitions"]:
        rows = [[r["group"], r["topic"], r["partition"], r["current_offset"], r["log_end_offset"], r["lag"],
                 r["consumer_id"], r["host"], r["client_id"]] for r in view["partitions"]]
        parts.append(render_table(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                                   "CONSUMER-ID", "HOST", "CLIENT-ID"], rows))
    else:
        parts.append(f"Consumer group '{view['group']}' has no committed offsets and no assigned partitions.")
    return "\n\n".join(parts)


def parse_datetime(text: str) -> int:
    """kafka-consumer-groups' --to-datetime (`2024-05-01T12:30:00.000`, optionally with `Z` or an
    offset such as `+02:00`; without one the local time zone) -> epoch milliseconds."""
    import datetime

    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"cannot read {text!r} as a date and time: expected YYYY-MM-DDTHH:mm:SS[.sss] with an optional "
            "zone (Z or +hh:mm), e.g. 2024-05-01T12:30:00.000") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as Kafka's tool reads it
    return int(when.timestamp() * 1000)


def plan_reset(mode: str, target: int | None, ranges: Mapping[tuple[str, int], tuple[int, int]],
               committed: Mapping[tuple[str, int], int] | None = None,
               by_time: Mapping[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
    """New offset per partition. `ranges`: (earliest, latest). Modes: earliest, latest, offset
    (`target`), shift (`target` added to the `committed` offset), datetime (`by_time`: the first offset at
    or after the time, -1 when none: the log end). Every result is clamped into the range."""
    plan = {}
    for tp, (earliest, latest) in sorted(ranges.items()):
        if mode == "earliest":
            wanted = earliest
        elif mode == "latest":
            wanted = latest
        elif mode == "shift":
            assert target is not None and committed is not None
            if tp not in committed:
                raise BrookError(f"cannot shift the offset of {tp[0]}-{tp[1]}: the group has no committed offset "
                                 "there (use --to-earliest, --to-latest or --to-offset)", ErrorCode.invalid_request)
            wanted = committed[tp] + target
        elif mode == "datetime":
            assert by_time is not None
            found = by_time.get(tp, -1)
            wanted = latest if found < 0 else found
        else:
            assert target is not None
            wanted = target
        plan[tp] = min(max(wanted, earliest), latest)
    return plan


def check_inactive(group: str, state: str) -> None:
    if state.lower() not in INACTIVE_STATES:
        raise BrookError(f"assignments can only be reset if the group '{group}' is inactive, but the current "
                         f"state is {state} (stop its consumers first)", ErrorCode.non_empty_group)


# -- the Kafka side (confluent-kafka) ------------------------------------------------------------------

def _kafka_error(e: BaseException, what: str) -> BrookError:
    """One-line BrookError from a KafkaException / KafkaError (its code mapped when Kafka knows it)."""
    err = e.args[0] if getattr(e, "args", None) else e
    code_value = err.code() if hasattr(err, "code") else None
    text = err.str() if hasattr(err, "str") else str(e)
    name = err.name() if hasattr(err, "name") else ""
    code = ErrorCode.unknown_server_error
    if isinstance(code_value, int) and code_value >= 0:
        try:
            code = ErrorCode(code_value)
        except ValueError:
            pass
    if code_value is not None and code_value < 0:  # librdkafka-local: transport, timeout ...
        code = ErrorCode.request_timed_out if "TIMED_OUT" in name else ErrorCode.network_exception
        from cluster.cli.kafka_client import CONNECTION_ERRORS

        cause = CONNECTION_ERRORS.cause(code_value)
        if cause is not None:  # why the connection failed: wrong password, TLS, wrong security.protocol
            text, name = cause
            code = ErrorCode.sasl_authentication_failed if "_AUTHENTICATION" in name else ErrorCode.network_exception
        elif code_value == -195:  # _TRANSPORT, no reason seen: most often a TLS/SASL listener spoken to in plaintext
            text += " (is it a TLS or SASL listener? give its client properties with --command-config)"
    text = " ".join(str(text).split())
    suffix = f" ({name})" if name and name not in text else ""
    return BrookError(f"{what}: {text}{suffix}", code)


class GroupAdmin:
    """The few AdminClient calls the commands make, each bounded by `timeout_s`, errors as BrookError."""

    def __init__(self, bootstrap: str, timeout_s: float, security: Mapping[str, str] | None = None) -> None:
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError:  # a test extra for now; `pip install confluent-kafka`
            raise BrookError("'brook groups' needs the confluent-kafka package (pip install confluent-kafka)",
                             ErrorCode.unknown_server_error) from None
        from cluster.cli.kafka_client import CONNECTION_ERRORS, client_config

        self.timeout_s = timeout_s
        self.bootstrap = bootstrap
        self.client = CONNECTION_ERRORS.track(AdminClient(client_config(bootstrap, timeout_s, security)))

    def _wait(self, future: Any, what: str) -> Any:
        from concurrent.futures import TimeoutError as FutureTimeout

        try:
            return future.result(timeout=self.timeout_s + 5)
        except FutureTimeout:
            raise BrookError(f"{what}: no answer from the brokers at {self.bootstrap} within "
                             f"{self.timeout_s:g}s", ErrorCode.request_timed_out) from None
        except Exception as e:  # KafkaException
            raise _kafka_error(e, what) from None

    def list_groups(self) -> tuple[list[Any], list[str]]:
        result = self._wait(self.client.list_consumer_groups(request_timeout=self.timeout_s), "cannot list groups")
        errors = [_kafka_error(BaseException(e), f"cannot list groups at {self.bootstrap}").message
                  for e in (result.errors or [])]
        return list(result.valid or []), errors

    def describe(self, group: str) -> Any:
        futures = self.client.describe_consumer_groups([group], request_timeout=self.timeout_s)
        return self._wait(futures[group], f"cannot describe group '{group}'")

    def committed(self, group: str) -> dict[tuple[str, int], int | None]:
        from confluent_kafka import ConsumerGroupTopicPartitions

        futures = self.client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                          request_timeout=self.timeout_s)
        result = self._wait(futures[group], f"cannot fetch the offsets of group '{group}'")
        out: dict[tuple[str, int], int | None] = {}
        for tp in result.topic_partitions or []:
            if tp.error is not None:
                raise _kafka_error(BaseException(tp.error), f"offset of {tp.topic}-{tp.partition}")
            out[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
        return {k: v for k, v in out.items() if v is not None}

    def alter(self, group: str, plan: Mapping[tuple[str, int], int]) -> list[str]:
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p, o) for (t, p), o in sorted(plan.items())])
        futures = self.client.alter_consumer_group_offsets([request], request_timeout=self.timeout_s)
        result = self._wait(futures[group], f"cannot reset the offsets of group '{group}'")
        return [f"{tp.topic}-{tp.partition}: {' '.join(str(tp.error).split())}"
                for tp in result.topic_partitions or [] if tp.error is not None]

    def delete(self, groups: Sequence[str]) -> dict[str, str | None]:
        futures = self.client.delete_consumer_groups(list(groups), request_timeout=self.timeout_s)
        out: dict[str, str | None] = {}
        for group in groups:
            try:
                self._wait(futures[group], f"cannot delete group '{group}'")
                out[group] = None
            except BrookError as e:
                out[group] = e.message
        return out


def _admin(ctx: Any) -> GroupAdmin:
    bootstrap = ctx.args.bootstrap_server or kafka_bootstrap(ctx.controller().describe_cluster())
    return GroupAdmin(bootstrap, ctx.timeout_s, ctx.kafka_security())


def _members(description: Any) -> list[Member]:
    out = []
    for m in description.members or []:
        tps = m.assignment.topic_partitions if m.assignment is not None else []
        out.append(Member(m.member_id, m.client_id or "", m.host or "", m.group_instance_id or None,
                          tuple(sorted((tp.topic, tp.partition) for tp in tps))))
    return sorted(out, key=lambda m: (m.assignment[:1], m.member_id))


def _log_end_offsets(ctx: Any, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int | None]:
    """The high watermark of every partition of the topics in `partitions` (ListOffsets over the Kafka
    protocol with --bootstrap-server, else over gRPC).

    Every partition of those topics is included (so a partition the group never committed shows up
    with CURRENT-OFFSET and LAG '-'); None where the offset cannot be read (a warning says why).
    """
    out: dict[tuple[str, int], int | None] = {}
    wanted = set(partitions)
    with _offsets(ctx) as router:
        for topic in sorted({t for t, _ in wanted}):
            try:
                wanted |= {(topic, p) for p in router.partitions(topic)}
            except BrookError:
                pass  # deleted since the commit: show what the group has
        for topic, partition in sorted(wanted):
            try:
                out[(topic, partition)] = router.list_offset(topic, partition, -1)
            except BrookError as e:
                print(f"brook: warning: log end offset of {topic}-{partition}: {e.message}", file=sys.stderr)
                out[(topic, partition)] = None
    return out


# -- handlers --------------------------------------------------------------------------------------

def groups_list(ctx: Any) -> int:
    admin = _admin(ctx)
    listings, errors = admin.list_groups()
    view = sorted(({"group": g.group_id, "state": state_name(g.state),
                    "simple": bool(g.is_simple_consumer_group)} for g in listings), key=lambda v: v["group"])
    if errors and not view:
        raise BrookError(errors[0], ErrorCode.network_exception)  # nothing answered: one line, exit 1
    ctx.emit({"groups": view, "errors": errors}, lambda: render_table(
        ["GROUP", "STATE", "TYPE"], [[v["group"], v["state"], "simple" if v["simple"] else "consumer"]
                                     for v in view]) if view else "(no consumer group)")
    for line in errors:
        print(f"brook: error: {line}", file=sys.stderr)
    return EXIT_ERROR if errors else EXIT_OK


def _coordinator(description: Any) -> str | None:
    node = getattr(description, "coordinator", None)
    return f"{node.id} ({node.host}:{node.port})" if node is not None and node.id >= 0 else None


def groups_describe(ctx: Any) -> int:
    group = ctx.args.group
    admin = _admin(ctx)
    description = admin.describe(group)
    state = state_name(description.state)
    committed = admin.committed(group)
    members = _members(description)
    if state.lower() == "dead" and not committed:
        raise BrookError(f"consumer group '{group}' does not exist", ErrorCode.group_id_not_found)
    wanted = set(committed) | {tp for m in members for tp in m.assignment}
    log_end = _log_end_offsets(ctx, wanted)
    rows = lag_rows(group, committed, log_end, members)
    view = describe_view(group, state, _coordinator(description), description.partition_assignor, members, rows)
    ctx.emit(view, lambda: describe_text(view))
    return EXIT_OK


def _quiet_logger() -> Any:
    import logging

    quiet = logging.getLogger("brook.librdkafka")
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    return quiet


class KafkaOffsets:
    """Partitions and ListOffsets over the Kafka protocol (a confluent-kafka Consumer that never joins a
    group): what `PartitionRouter` answers over gRPC, for a CLI given only `--bootstrap-server`."""

    def __init__(self, bootstrap: str, timeout_s: float, security: Mapping[str, str] | None = None) -> None:
        from confluent_kafka import Consumer

        from cluster.cli.kafka_client import CONNECTION_ERRORS, client_config

        self.bootstrap, self.timeout_s = bootstrap, timeout_s
        self.consumer = CONNECTION_ERRORS.track(Consumer(client_config(bootstrap, timeout_s, security, **{"group.id": "brook-cli-offsets",
                                                                                  "enable.auto.commit": False})))

    def __enter__(self) -> KafkaOffsets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.close()

    def partitions(self, topic: str) -> list[int]:
        try:
            metadata = self.consumer.list_topics(topic, timeout=self.timeout_s)
        except Exception as e:
            raise _kafka_error(e, f"no metadata from the brokers at {self.bootstrap}") from None
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise BrookError(f"topic {topic!r} does not exist", ErrorCode.unknown_topic_or_partition)
        return sorted(info.partitions)

    def list_offset(self, topic: str, partition: int, timestamp: int) -> int:
        from confluent_kafka import TopicPartition

        tp = TopicPartition(topic, partition)
        try:
            if timestamp in (-1, -2):
                low, high = self.consumer.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)
                return int(low if timestamp == -2 else high)
            (found,) = self.consumer.offsets_for_times([TopicPartition(topic, partition, timestamp)],
                                                       timeout=self.timeout_s)
        except Exception as e:
            raise _kafka_error(e, f"{topic}-{partition}") from None
        if found.error is not None:
            raise _kafka_error(BaseException(found.error), f"{topic}-{partition}")
        return int(found.offset) if found.offset >= 0 else -1


def _offsets(ctx: Any) -> Any:
    """Where partitions and offsets come from: the Kafka protocol when --bootstrap-server is given,
    else the brokers' gRPC through the controllers."""
    if getattr(ctx.args, "bootstrap_server", None):
        return KafkaOffsets(ctx.args.bootstrap_server, ctx.timeout_s, ctx.kafka_security())
    from cluster.client import PartitionRouter

    return PartitionRouter(ctx.controller(), ctx.timeout_s)


def groups_reset_offsets(ctx: Any) -> int:
    args = ctx.args
    group = args.group
    mode = ("earliest" if args.to_earliest else "latest" if args.to_latest else
            "datetime" if args.to_datetime is not None else "shift" if args.shift_by is not None else "offset")
    admin = _admin(ctx)
    state = state_name(admin.describe(group).state)
    check_inactive(group, state)
    committed: dict[tuple[str, int], int] = {}
    if mode == "shift" or args.all_topics:
        committed = {tp: o for tp, o in admin.committed(group).items() if o is not None}
    if args.all_topics:
        if not committed:
            raise BrookError(f"group '{group}' has no committed offsets: name the topics with --topic",
                             ErrorCode.group_id_not_found)
        specs: list[tuple[str, list[int] | None]] = [
            (topic, sorted(p for t, p in committed if t == topic)) for topic in sorted({t for t, _ in committed})]
    else:
        specs = [parse_topic_spec(t) for t in args.topic]
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    by_time: dict[tuple[str, int], int] = {}
    with _offsets(ctx) as source:
        for topic, wanted in specs:
            existing = source.partitions(topic)
            missing = sorted(set(wanted or ()) - set(existing))
            if missing:
                raise BrookError(f"topic {topic!r} has no partition {missing[0]} (it has {len(existing)})",
                                 ErrorCode.unknown_topic_or_partition)
            for p in wanted or existing:
                ranges[(topic, p)] = (source.list_offset(topic, p, -2), source.list_offset(topic, p, -1))
                if mode == "datetime":
                    by_time[(topic, p)] = source.list_offset(topic, p, args.to_datetime)
    target = args.shift_by if mode == "shift" else args.to_offset
    plan = plan_reset(mode, target, ranges, committed, by_time)
    errors = admin.alter(group, plan) if args.execute else []
    rows = [{"group": group, "topic": t, "partition": p, "new_offset": o} for (t, p), o in sorted(plan.items())]
    note = "" if args.execute else "\n(dry run: nothing was changed; add --execute to commit these offsets)"
    ctx.emit({"group": group, "executed": bool(args.execute), "partitions": rows, "errors": errors},
             lambda: render_table(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
                                  [[r["group"], r["topic"], r["partition"], r["new_offset"]] for r in rows]) + note)
    for line in errors:
        print(f"brook: error: {line}", file=sys.stderr)
    return EXIT_ERROR if errors else EXIT_OK


def groups_delete(ctx: Any) -> int:
    admin = _admin(ctx)
    results = admin.delete(ctx.args.group)
    deleted = [g for g, error in results.items() if error is None]
    errors = [error for error in results.values() if error is not None]
    ctx.emit({"deleted": deleted, "errors": errors},
             "\n".join(f"Deleted consumer group '{g}'." for g in deleted))
    for line in errors:
        print(f"brook: error: {line}", file=sys.stderr)
    return EXIT_ERROR if errors else EXIT_OK
