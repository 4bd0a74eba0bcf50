"""`brook partitions reassign` and `brook brokers decommission`: partition reassignment from the CLI.

The plan file is kafka-reassign-partitions.sh's JSON:

    {"version": 1, "partitions": [{"topic": "orders", "partition": 0, "replicas": [104, 105, 106]}]}

(`log_dirs` entries are accepted and ignored). The pure parts — reading a plan, a balanced plan for
`--generate`, the plan that drains a broker — are functions of their inputs; the handlers call the
controllers' AlterPartitionReassignments / ListPartitionReassignments / DescribeTopics.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cluster.cli._output import render_table
from cluster.errors import BrookError, ErrorCode

EXIT_OK, EXIT_ERROR = 0, 1
PLAN_VERSION = 1
POLL_INTERVAL_S = 0.5

Assignment = dict[tuple[str, int], tuple[int, ...]]


def _bad(message: str) -> BrookError:
    return BrookError(message, ErrorCode.invalid_request)


def parse_plan(text: str, source: str = "the plan") -> Assignment:
    """A Kafka reassignment JSON as {(topic, partition): replicas}; BrookError naming the problem."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad(f"{source} is not JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("partitions"), list):
        raise _bad(f'{source}: expected {{"version": 1, "partitions": [...]}}')
    if doc.get("version", PLAN_VERSION) != PLAN_VERSION:
        raise _bad(f"{source}: version {doc.get('version')!r} is not supported (expected {PLAN_VERSION})")
    plan: Assignment = {}
    for i, item in enumerate(doc["partitions"]):
        where = f"{source}: partitions[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} is not an object")
        topic, partition, replicas = item.get("topic"), item.get("partition"), item.get("replicas")
        if not isinstance(topic, str) or not topic:
            raise _bad(f"{where}: 'topic' must be a topic name")
        if not isinstance(partition, int) or isinstance(partition, bool) or partition < 0:
            raise _bad(f"{where}: 'partition' must be a partition number")
        if (not isinstance(replicas, list) or not replicas
                or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in replicas)):
            raise _bad(f"{where}: 'replicas' must be a non-empty list of broker ids")
        if len(set(replicas)) != len(replicas):
            raise _bad(f"{where}: 'replicas' {replicas} repeats a broker")
        if (topic, partition) in plan:
            raise _bad(f"{where}: {topic}-{partition} appears twice")
        plan[(topic, partition)] = tuple(replicas)
    if not plan:
        raise _bad(f"{source} lists no partition")
    return plan


def render_plan(plan: Mapping[tuple[str, int], Sequence[int]]) -> str:
    """The plan as Kafka's JSON (one line, as kafka-reassign-partitions prints it)."""
    return json.dumps({"version": PLAN_VERSION, "partitions": [
        {"topic": t, "partition": p, "replicas": list(r), "log_dirs": ["any"] * len(r)}
        for (t, p), r in sorted(plan.items())]})


def generate_plan(current: Mapping[tuple[str, int], Sequence[int]], brokers: Sequence[int]) -> Assignment:
    """Spread every partition's replicas (same count) over `brokers` round robin, leaders rotating,
    as kafka-reassign-partitions --generate does (deterministically: no random start)."""
    brokers = sorted(set(brokers))
    plan: Assignment = {}
    for n, ((topic, partition), replicas) in enumerate(sorted(current.items())):
        rf = len(replicas)
        if rf > len(brokers):
            raise _bad(f"{topic}-{partition} has {rf} replicas but only {len(brokers)} brokers were given")
        plan[(topic, partition)] = tuple(brokers[(n + j) % len(brokers)] for j in range(rf))
    return plan


def drain_plan(current: Mapping[tuple[str, int], Sequence[int]], broker: int, others: Iterable[int]) -> Assignment:
    """Move every replica off `broker`: each is replaced, in place (so a preferred leader stays first),
    by the least loaded of `others` not already a replica of that partition."""
    candidates = sorted(set(others) - {broker})
    load = {b: 0 for b in candidates}
    for replicas in current.values():
        for r in replicas:
            if r in load:
                load[r] += 1
    plan: Assignment = {}
    for key, replicas in sorted(current.items()):
        if broker not in replicas:
            continue
        free = [b for b in candidates if b not in replicas]
        if not free:
            raise BrookError(f"cannot move {key[0]}-{key[1]} off broker {broker}: every other broker already "
                             f"holds a replica of it ({len(replicas)} replicas, {len(candidates)} other brokers)",
                             ErrorCode.invalid_replica_assignment)
        chosen = min(free, key=lambda b: (load[b], b))
        load[chosen] += 1
        plan[key] = tuple(chosen if r == broker else r for r in replicas)
    return plan


# -- handlers ----------------------------------------------------------------------------------------

def _assignment(ctx: Any, topics: Sequence[str] = ()) -> Assignment:
    reply = ctx.controller().describe_topics(list(topics))
    out: Assignment = {}
    for t in reply.topics:
        if t.error_code:
            raise BrookError(f"topic {t.name!r}: {t.error_message or ErrorCode(t.error_code).name}",
                             ErrorCode(t.error_code))
        for p in t.partitions:
            out[(t.name, p.partition)] = tuple(p.replicas)
    return out


def _ongoing(ctx: Any) -> dict[tuple[str, int], Any]:
    reply = ctx.controller().list_partition_reassignments()
    if reply.error.code:
        raise BrookError(reply.error.message, ErrorCode(reply.error.code))
    return {(r.topic, r.partition): r for r in reply.reassignments}


def _read_plan(path: str) -> Assignment:
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as e:
        raise _bad(f"cannot read the plan {path}: {e.strerror}") from None
    return parse_plan(text, path)


def _execute(ctx: Any, moves: Sequence[tuple[str, int, Sequence[int] | None]]) -> list[str]:
    reply = ctx.controller().alter_partition_reassignments(moves)
    if reply.error.code:
        raise BrookError(reply.error.message, ErrorCode(reply.error.code))
    return [f"{r.topic}-{r.partition}: {r.error_message or ErrorCode(r.error_code).name}"
            for r in reply.results if r.error_code]


def _verify(ctx: Any, plan: Assignment) -> tuple[list[dict[str, Any]], bool]:
    ongoing = _ongoing(ctx)
    current = _assignment(ctx, sorted({t for t, _ in plan}))
    rows, done = [], True
    for key, target in sorted(plan.items()):
        if key in ongoing:
            state, done = "in progress", False
        elif current.get(key) == tuple(target):
            state = "completed"
        else:
            state, done = "not started" if key in current else "no such partition", False
        rows.append({"topic": key[0], "partition": key[1], "target": list(target),
                     "replicas": list(current.get(key, ())), "state": state})
    return rows, done


def _wait(ctx: Any, plan: Assignment, timeout_s: float | None) -> tuple[list[dict[str, Any]], bool]:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        rows, done = _verify(ctx, plan)
        if done or deadline is None or time.monotonic() >= deadline:
            return rows, done
        time.sleep(POLL_INTERVAL_S)


def _verify_table(rows: list[dict[str, Any]]) -> str:
    return render_table(["TOPIC", "PARTITION", "REPLICAS", "TARGET", "STATE"],
                        [[r["topic"], r["partition"], ",".join(map(str, r["replicas"])),
                          ",".join(map(str, r["target"])), r["state"]] for r in rows])


THROTTLE_KEYS = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
RESOURCE_BROKER = 4  # the cluster-wide default is the broker resource with an empty name


def _set_throttle(ctx: Any, rate: int | None) -> None:
    """Set (or with None remove) the cluster-wide reassignment throttles, as kafka-reassign-partitions
    --throttle sets them on the brokers involved."""
    reply = ctx.controller().alter_configs(RESOURCE_BROKER, "", [(k, None if rate is None else str(rate))
                                                                  for k in THROTTLE_KEYS])
    for r in reply.results:
        if r.error_code:
            raise BrookError(f"cannot {'remove' if rate is None else 'set'} the replication throttle: "
                             f"{r.error_message or ErrorCode(r.error_code).name}", ErrorCode(r.error_code))


def _throttle_set(reply: Any) -> bool:
    """Whether a DescribeConfigs answer for the cluster default has a throttle set dynamically."""
    return any(e.name in THROTTLE_KEYS and not e.is_default and e.source == "dynamic"
               for r in reply.results for e in r.entries)


def partitions_reassign(ctx: Any) -> int:
    args = ctx.args
    if args.throttle is not None and not args.execute:
        raise _bad("--throttle goes with --execute")
    if args.list:
        rows = [{"topic": r.topic, "partition": r.partition, "replicas": list(r.replicas),
                 "adding": list(r.adding_replicas), "removing": list(r.removing_replicas)}
                for r in _ongoing(ctx).values()]
        ctx.emit(rows, lambda: render_table(["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"], [
            [r["topic"], r["partition"], ",".join(map(str, r["replicas"])), ",".join(map(str, r["adding"])),
             ",".join(map(str, r["removing"]))] for r in rows]) if rows else "No reassignment in progress.")
        return EXIT_OK
    if args.generate:
        if not args.topics or not args.broker_list:
            raise _bad("--generate needs --topics and --broker-list")
        current = _assignment(ctx, args.topics)
        plan = generate_plan(current, args.broker_list)
        ctx.emit({"current": json.loads(render_plan(current)), "proposed": json.loads(render_plan(plan))},
                 f"Current partition replica assignment\n{render_plan(current)}\n\n"
                 f"Proposed partition reassignment configuration\n{render_plan(plan)}")
        return EXIT_OK
    if not args.plan:
        raise _bad("--execute, --verify and --cancel need --plan FILE")
    plan = _read_plan(args.plan)
    if args.execute or args.cancel:
        current = _assignment(ctx, sorted({t for t, _ in plan}))
        if args.throttle is not None:
            _set_throttle(ctx, args.throttle)
        errors = _execute(ctx, [(t, p, None if args.cancel else r) for (t, p), r in sorted(plan.items())])
        backup = render_plan({k: v for k, v in current.items() if k in plan})
        if args.cancel:
            text = f"Cancelled the reassignment of {len(plan) - len(errors)} partitions."
        else:
            text = (f"Current partition replica assignment\n\n{backup}\n\nSave this to use as the --plan "
                    f"during rollback\nSuccessfully started partition reassignments for "
                    f"{', '.join(f'{t}-{p}' for t, p in sorted(plan))}")
            if args.throttle is not None:
                text += (f"\nThe catch-up traffic is throttled at {args.throttle} B/s; `--verify` removes the "
                         "throttle once every move has completed.")
        ctx.emit({"current": json.loads(backup), "errors": errors}, text)
        for line in errors:
            print(f"brook: error: {line}", file=sys.stderr)
        return EXIT_ERROR if errors else EXIT_OK
    rows, done = _wait(ctx, plan, args.wait_timeout_s if args.wait else None)
    throttled = False
    if done and not _ongoing(ctx):
        entries = ctx.controller().describe_configs([(RESOURCE_BROKER, "")])
        throttled = _throttle_set(entries)
        if throttled:
            _set_throttle(ctx, None)  # as kafka-reassign-partitions --verify: no move left to throttle
    ctx.emit(rows, lambda: _verify_table(rows) + ("\nThrottle was removed." if throttled else ""))
    return EXIT_OK if done else EXIT_ERROR


def brokers_decommission(ctx: Any) -> int:
    """Move every replica off the broker, wait until none is left there."""
    args = ctx.args
    cluster = ctx.controller().describe_cluster()
    brokers = {b.broker_id: b for b in cluster.brokers}
    if args.broker_id not in brokers:
        raise BrookError(f"broker {args.broker_id} is not registered", ErrorCode.broker_not_available)
    others = [b for b, info in brokers.items() if b != args.broker_id and not info.fenced]
    current = _assignment(ctx)
    reply = ctx.controller().describe_topics([], include_internal=True)
    for t in reply.topics:
        for p in t.partitions:
            current[(t.name, p.partition)] = tuple(p.replicas)
    plan = drain_plan(current, args.broker_id, others)
    if plan:
        errors = _execute(ctx, [(t, p, r) for (t, p), r in sorted(plan.items())])
        if errors:
            for line in errors:
                print(f"brook: error: {line}", file=sys.stderr)
            return EXIT_ERROR
    rows, done = _wait(ctx, plan, args.wait_timeout_s) if plan else ([], True)
    left = [f"{r['topic']}-{r['partition']}" for r in rows if r["state"] != "completed"]
    unregistered = False
    if done and brokers[args.broker_id].fenced:
        _unregister(ctx, args.broker_id)
        unregistered = True
    next_step = (" It is unregistered." if unregistered else
                 f" It holds no replica now: stop it, then `brook brokers unregister {args.broker_id}`.")
    ctx.emit({"broker": args.broker_id, "moved": len(plan), "pending": left, "unregistered": unregistered},
             f"Broker {args.broker_id}: moved {len(plan) - len(left)} of {len(plan)} replicas off it."
             + (f" Still moving: {', '.join(left)} (see `brook partitions reassign --list`)." if left else next_step))
    return EXIT_OK if done else EXIT_ERROR


def _unregister(ctx: Any, broker_id: int) -> None:
    reply = ctx.controller().unregister_broker(broker_id)
    if reply.error.code:
        raise BrookError(reply.error.message, ErrorCode(reply.error.code))


def brokers_unregister(ctx: Any) -> int:
    """Remove a stopped broker that holds no replica from the cluster (Kafka's UnregisterBroker)."""
    _unregister(ctx, ctx.args.broker_id)
    ctx.emit({"broker": ctx.args.broker_id, "unregistered": True}, f"Broker {ctx.args.broker_id} is unregistered.")
    return EXIT_OK


def add_parsers(sub: Any, group_of: Any, positive_int: Any, non_negative_int: Any, brokers_group: Any) -> None:
    def broker_list(text: str) -> list[int]:
        try:
            return [non_negative_int(b.strip()) for b in text.split(",") if b.strip()]
        except Exception:
            raise _bad(f"--broker-list {text!r}: expected broker ids like 101,102,103") from None

    g = group_of("partitions", "partition reassignment (like kafka-reassign-partitions)")
    p = sub(g, "reassign", "move partition replicas between brokers: --generate, --execute, --verify, --cancel, --list",
            partitions_reassign)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--generate", action="store_true", help="print a balanced plan for --topics over --broker-list")
    mode.add_argument("--execute", action="store_true", help="start the reassignments of --plan")
    mode.add_argument("--verify", action="store_true", help="show each partition of --plan: completed or in progress "
                      "(exit 0 when all completed)")
    mode.add_argument("--cancel", action="store_true", help="cancel the reassignments of --plan in progress")
    mode.add_argument("--list", action="store_true", help="the reassignments in progress")
    p.add_argument("--plan", metavar="FILE", help="Kafka reassignment JSON ('-' reads stdin)")
    p.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="with --generate")
    p.add_argument("--broker-list", type=broker_list, metavar="IDS", help="with --generate: e.g. 101,102,103")
    p.add_argument("--throttle", type=positive_int, metavar="BYTES_PER_S",
                   help="with --execute: limit the catch-up traffic of the moving replicas to this rate (sets the "
                        "cluster-wide leader/follower.replication.throttled.rate; --verify removes it when all "
                        "moves completed)")
    p.add_argument("--wait", action="store_true", help="with --verify: wait until completed or --wait-timeout")
    p.add_argument("--wait-timeout", type=float, dest="wait_timeout_s", default=300.0, metavar="SECONDS",
                   help="with --wait (default 300)")

    p = sub(brokers_group, "decommission", "move every replica off a broker, wait until it holds none; "
            "unregister it if it is already stopped",
            brokers_decommission)
    p.add_argument("broker_id", type=non_negative_int, metavar="ID")
    p.add_argument("--wait-timeout", type=float, dest="wait_timeout_s", default=300.0, metavar="SECONDS",
                   help="how long to wait for the moves (default 300); exit 1 if they are not done")
    p = sub(brokers_group, "unregister", "remove a stopped broker that holds no replica (Kafka's UnregisterBroker)",
            brokers_unregister)
    p.add_argument("broker_id", type=non_negative_int, metavar="ID")


__all__ = ["add_parsers", "brokers_decommission", "brokers_unregister", "drain_plan", "generate_plan", "parse_plan",
           "partitions_reassign", "render_plan"]
