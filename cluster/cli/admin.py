"""Admin command handlers: cluster, quorum, brokers, topics, configs, leaders.

Each handler takes the CLI `Context`, calls the controllers through `ControllerClient`, prints a
table or JSON through the pure views, and returns the exit code. Per-item failures (one topic of a
create, one partition of an election) are printed as `brook: error: ...` lines and give exit 1.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from brookpb import admin_pb2 as apb
from cluster.cli import _views as views
from cluster.cli._output import render_table
from cluster.errors import BrookError, ErrorCode

EXIT_OK, EXIT_ERROR = 0, 1


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name.upper()
    except ValueError:
        return f"ERROR_{code}"


def _item_error(what: str, code: int, message: str) -> str:
    return f"{what}: {message} ({_code_name(code)})" if message else f"{what}: {_code_name(code)}"


def _report_errors(errors: list[str]) -> int:
    for line in errors:
        print(f"brook: error: {line}", file=sys.stderr)
    return EXIT_ERROR if errors else EXIT_OK


# -- cluster / brokers / quorum ----------------------------------------------------------------------

def cluster_describe(ctx: Any) -> int:
    view = views.cluster_view(ctx.controller().describe_cluster())
    ctx.emit(view, lambda: views.cluster_text(view))
    return EXIT_OK


def brokers_list(ctx: Any) -> int:
    view = views.cluster_view(ctx.controller().describe_cluster())
    ctx.emit(view["brokers"], lambda: views.brokers_table(view["brokers"]) if view["brokers"]
             else "(no broker registered)")
    return EXIT_OK


def quorum_status(ctx: Any) -> int:
    view = views.quorum_view(ctx.controller().quorum_status())
    ctx.emit(view, lambda: views.quorum_status_text(view))
    return EXIT_OK


def quorum_replication(ctx: Any) -> int:
    view = views.quorum_view(ctx.controller().quorum_status())
    ctx.emit(view, lambda: views.quorum_replication_text(view))
    return EXIT_OK


# `--exit-when-healthy` without `--timeout` still ends: a cluster that is not healthy after five
# minutes needs a person, not a longer wait.
EXIT_WHEN_HEALTHY_WAIT_S = 300.0


def check_health(ctx: Any) -> views.Health:
    client = ctx.controller()
    cluster = client.describe_cluster()
    topics = client.describe_topics(include_internal=True)
    return views.assess_health(cluster, topics)


def cluster_health(ctx: Any) -> int:
    """One check; or --exit-when-healthy: poll until healthy; or --watch: print every interval."""
    args = ctx.args
    wait_s = args.wait_timeout_s
    if wait_s is not None and wait_s <= 0:
        raise BrookError(f"--timeout must be positive, got {wait_s:g}", ErrorCode.invalid_request)
    if args.interval <= 0:
        raise BrookError(f"--interval must be positive, got {args.interval:g}", ErrorCode.invalid_request)
    if wait_s is not None:
        ctx.timeout_s = min(ctx.timeout_s, wait_s)
    if not (args.watch or args.exit_when_healthy):
        once = check_health(ctx)
        ctx.emit(once.as_dict(), lambda: views.health_text(once))
        return EXIT_OK if once.healthy else EXIT_ERROR
    if wait_s is None and args.exit_when_healthy and not args.watch:
        wait_s = EXIT_WHEN_HEALTHY_WAIT_S
    deadline = time.monotonic() + wait_s if wait_s is not None else None
    last_text = None
    while True:
        try:
            health: views.Health | None = check_health(ctx)
            error = None
        except BrookError as e:
            health, error = None, e.message
        healthy = health is not None and health.healthy
        if args.watch:
            _print_watch(ctx, health, error)
        elif health is not None and health.healthy:
            ctx.emit(health.as_dict(), views.health_text(health))
        if healthy and args.exit_when_healthy:
            return EXIT_OK
        last_text = error or (health and "; ".join(health.problems))
        if deadline is not None and time.monotonic() >= deadline:
            print(f"brook: error: not healthy after {wait_s:g}s: {last_text}", file=sys.stderr)
            return EXIT_ERROR
        pause = args.interval if deadline is None else max(0.0, min(args.interval, deadline - time.monotonic()))
        time.sleep(pause)


def _print_watch(ctx: Any, health: views.Health | None, error: str | None) -> None:
    import json

    stamp = time.strftime("%H:%M:%S")
    if ctx.json:
        value = health.as_dict() if health else {"healthy": False, "error": error}
        print(json.dumps({"time": stamp, **value}), flush=True)
    elif health is None:
        print(f"{stamp}  unhealthy: {error}", flush=True)
    else:
        summary = "healthy" if health.healthy else "unhealthy: " + "; ".join(health.problems)
        print(f"{stamp}  {summary}", flush=True)


# -- topics --------------------------------------------------------------------------------------------

def topics_create(ctx: Any) -> int:
    args = ctx.args
    request = apb.CreateTopicRequest(name=args.name, partitions=args.partitions,
                                     replication_factor=args.replication_factor, configs=dict(args.config))
    reply = ctx.controller().create_topics([request], validate_only=args.validate_only)
    errors, created = [], []
    for r in reply.results:
        if r.error_code == int(ErrorCode.topic_already_exists) and args.if_not_exists:
            continue
        if r.error_code:
            errors.append(_item_error(f"cannot create topic {r.name!r}", r.error_code, r.error_message))
        else:
            created.append({"name": r.name, "topic_id": r.topic_id.hex() if r.topic_id else None})
    verb = "Topic {} is valid." if args.validate_only else "Created topic {}."
    ctx.emit({"created": created, "validate_only": args.validate_only, "errors": errors},
             "\n".join(verb.format(c["name"]) for c in created) or ("" if errors else "Nothing created."))
    return _report_errors(errors)


def _describe(ctx: Any, names: list[str], include_internal: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    reply = ctx.controller().describe_topics(names, include_internal=include_internal)
    topics, errors = [], []
    for t in reply.topics:
        if t.error_code:
            errors.append(_item_error(f"topic {t.name!r}", t.error_code, t.error_message)
                          if t.error_code != int(ErrorCode.unknown_topic_or_partition)
                          else f"topic {t.name!r} does not exist")
        else:
            topics.append(views.topic_view(t, reply.min_insync_replicas_default or 1))
    return sorted(topics, key=lambda t: t["name"]), errors


def topics_list(ctx: Any) -> int:
    topics, errors = _describe(ctx, [])
    listed = [{k: t[k] for k in ("name", "topic_id", "partition_count", "replication_factor")} for t in topics]
    ctx.emit(listed, lambda: views.topics_list_text(topics) if topics else "(no topics)")
    return _report_errors(errors)


def topics_describe(ctx: Any) -> int:
    args = ctx.args
    topics, errors = _describe(ctx, list(dict.fromkeys(args.name)), args.include_internal)
    filtered = args.under_replicated_partitions or args.under_min_isr_partitions or args.unavailable_partitions
    for t in topics:
        t["partitions"] = views.select_partitions(
            t["partitions"], under_replicated=args.under_replicated_partitions,
            under_min_isr=args.under_min_isr_partitions, unavailable=args.unavailable_partitions)
    if filtered:
        topics = [t for t in topics if t["partitions"]]
    text = views.topics_describe_text(topics, filtered)
    ctx.emit(topics, text if text or filtered or errors else "(no topics)")
    return _report_errors(errors)


def topics_delete(ctx: Any) -> int:
    args = ctx.args
    reply = ctx.controller().delete_topics(list(dict.fromkeys(args.name)))
    errors, deleted = [], []
    for r in reply.results:
        if r.error_code == int(ErrorCode.unknown_topic_or_partition):
            if not args.if_exists:
                errors.append(f"cannot delete topic {r.name!r}: it does not exist")
        elif r.error_code:
            errors.append(_item_error(f"cannot delete topic {r.name!r}", r.error_code, r.error_message))
        else:
            deleted.append(r.name)
    ctx.emit({"deleted": deleted, "errors": errors},
             "\n".join(f"Deleted topic {n}." for n in deleted) or ("" if errors else "Nothing deleted."))
    return _report_errors(errors)


def topics_alter(ctx: Any) -> int:
    args = ctx.args
    if not args.config and not args.delete_config and args.partitions is None:
        raise BrookError("nothing to alter: give --partitions N, --config KEY=VALUE and/or --delete-config KEY",
                         ErrorCode.invalid_request)
    if args.partitions is not None:
        reply = ctx.controller().create_partitions(args.name, args.partitions)
        r = reply.results[0]
        if r.error_code:
            return _report_errors([_item_error(f"cannot add partitions to topic {r.name!r}", r.error_code,
                                               r.error_message)])
        ctx.emit({"topic": args.name, "partitions": args.partitions},
                 f"Topic {args.name} now has {args.partitions} partitions.")
        if not args.config and not args.delete_config:
            return EXIT_OK
    ops = _ops(args.config, args.delete_config)
    return _alter(ctx, views.RESOURCE_TOPIC, args.name, ops, validate_only=False)


# -- configs -------------------------------------------------------------------------------------------

def _resource(args: Any) -> tuple[int, str]:
    if args.topic is not None:
        return views.RESOURCE_TOPIC, args.topic
    if args.broker is not None:
        return views.RESOURCE_BROKER, str(args.broker)
    return views.RESOURCE_BROKER, ""


def _ops(sets: list[tuple[str, str]], deletes: list[str]) -> list[tuple[str, str | None]]:
    both = sorted({k for k, _ in sets} & set(deletes))
    if both:
        raise BrookError(f"cannot both set and delete {', '.join(both)}", ErrorCode.invalid_request)
    return [(k, v) for k, v in sets] + [(k, None) for k in deletes]


def configs_describe(ctx: Any) -> int:
    resource_type, name = _resource(ctx.args)
    reply = ctx.controller().describe_configs([(resource_type, name)])
    errors, out = [], []
    for r in reply.results:
        if r.error_code:
            what = views.resource_label(r.resource.type, r.resource.name)
            errors.append(f"{what} does not exist" if r.error_code == int(ErrorCode.unknown_topic_or_partition)
                          else _item_error(what, r.error_code, r.error_message))
        else:
            out.append(views.configs_view(r))
    if out:
        ctx.emit(out[0] if len(out) == 1 else out, lambda: "\n\n".join(views.configs_text(v) for v in out))
    return _report_errors(errors)


def configs_alter(ctx: Any) -> int:
    args = ctx.args
    if not args.set and not args.delete:
        raise BrookError("nothing to alter: give --set KEY=VALUE and/or --delete KEY", ErrorCode.invalid_request)
    resource_type, name = _resource(args)
    return _alter(ctx, resource_type, name, _ops(args.set, args.delete), args.validate_only)


def _alter(ctx: Any, resource_type: int, name: str, ops: list[tuple[str, str | None]], validate_only: bool) -> int:
    reply = ctx.controller().alter_configs(resource_type, name, ops, validate_only=validate_only)
    what = views.resource_label(resource_type, name)
    errors = []
    for r in reply.results:
        if r.error_code == int(ErrorCode.unknown_topic_or_partition):
            errors.append(f"cannot alter {what}: it does not exist")
        elif r.error_code:
            errors.append(_item_error(f"cannot alter {what}", r.error_code, r.error_message))
    changes = [{"name": k, "value": v, "op": "set" if v is not None else "delete"} for k, v in ops]
    if not errors:
        lines = [f"{'Would set' if validate_only else 'Set'} {k}={v} on {what}." if v is not None else
                 f"{'Would delete' if validate_only else 'Deleted'} {k} on {what}." for k, v in ops]
        ctx.emit({"resource": what, "changes": changes, "validate_only": validate_only}, "\n".join(lines))
    return _report_errors(errors)


# -- leaders -------------------------------------------------------------------------------------------

ELECTION_NOT_NEEDED = 84  # Kafka's ELECTION_NOT_NEEDED: the preferred leader already leads


def leaders_elect(ctx: Any) -> int:
    args = ctx.args
    if args.partition is not None and args.topic is None:
        raise BrookError("--partition needs --topic", ErrorCode.invalid_request)
    partitions: list[tuple[str, int]] = []
    if args.topic is not None:
        partitions = [(args.topic, args.partition if args.partition is not None else -1)]
    reply = ctx.controller().elect_leaders(args.election_type, partitions)
    rows, errors = [], []
    for r in sorted(reply.results, key=lambda r: (r.topic, r.partition)):
        if r.error_code == ELECTION_NOT_NEEDED:
            result = "not needed"
        elif r.error_code:
            result = _code_name(r.error_code)
            if r.error_code == int(ErrorCode.unknown_topic_or_partition):
                errors.append(f"{r.topic}-{r.partition}: no such topic or partition" if r.partition >= 0
                              else f"topic {r.topic!r} does not exist")
            else:
                errors.append(_item_error(f"{r.topic}-{r.partition}", r.error_code, r.error_message))
        else:
            result = "elected"
        rows.append({"topic": r.topic, "partition": r.partition, "leader": r.leader if r.leader >= 0 else None,
                     "result": result, "message": r.error_message or None})
    text = render_table(["TOPIC", "PARTITION", "LEADER", "RESULT"],
                        [[r["topic"], r["partition"], r["leader"], r["result"]] for r in rows]) if rows \
        else "No partition to elect."
    ctx.emit(rows, text)
    return _report_errors(errors)


__all__ = [
    "brokers_list", "cluster_describe", "cluster_health", "configs_alter", "configs_describe", "leaders_elect",
    "quorum_replication", "quorum_status", "topics_alter", "topics_create", "topics_delete", "topics_describe",
    "topics_list",
]
