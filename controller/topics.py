"""Topic creation, deletion, configs and replica assignment: pure functions image -> records.

Kafka `ReplicationControlManager.createTopics/deleteTopics` and `ConfigurationControlManager`.
Every request is validated completely before any record is produced; a bad request gives an error
code with a one-line message and no records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cluster.errors import ConfigError, ErrorCode
from cluster.image import MetadataImage
from cluster.internal_topics import is_internal, unsafe_internal_config
from cluster.records import (
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    ConfigRecord,
    PartitionRecord,
    Record,
    RemoveTopic,
    TopicRecord,
)

TOPIC_NAME_CHARS_MAX = 249  # Kafka: topic names are used in file names
_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")
# Bounds one command's records (Kafka MAX_RECORDS_PER_USER_OP is 10,000 per request).
PARTITIONS_PER_TOPIC_MAX = 10_000
# One CreateTopics command creates at most this many partitions (one Raft command, one metadata delta).
PARTITIONS_PER_REQUEST_MAX = 10_000
# The whole cluster holds at most this many: a full image (sent to a broker that is far behind, and
# kept in a snapshot) must fit one gRPC message (cluster.grpcutil.GRPC_MESSAGE_BYTES_MAX, 64 MiB);
# a partition costs ~60 bytes there with RF 3 (tests/unit/controller/test_ctl_limits.py measures it).
PARTITIONS_PER_CLUSTER_MAX = 200_000
NEW_TOPIC_ID_TRIES_MAX = 10

OP_SET = 0
OP_DELETE = 1


@dataclass(frozen=True)
class TopicRequest:
    name: str
    partitions: int = -1
    replication_factor: int = -1
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicOutcome:
    name: str
    error: ErrorCode
    message: str
    topic_id: bytes = b""


# -- replica assignment ------------------------------------------------------------------------------

def assign_replicas(broker_ids: Sequence[int], partitions: int, replication_factor: int, *,
                    start_index: int) -> list[tuple[int, ...]]:
    """Replica lists for `partitions` partitions over `broker_ids` (in the given order).

    Partition p's k-th replica is brokers[(start + p + o_k) % n] with o_0 = 0, so preferred leaders
    go round robin (each broker leads floor or ceil(P/n)). The offsets o_k = k*r + k // m (mod n),
    where r = P mod n, g = gcd(r, n) and m = n / g, are distinct mod n for k < RF <= n, so no broker
    appears twice in a partition. Slot k covers the arc of P consecutive brokers from start + o_k:
    whole laps plus a short arc of length r; the short arcs of consecutive k are laid end to end
    (shifted by one after each full lap of m arcs), so every broker holds floor or ceil(P*RF/n).
    """
    n = len(broker_ids)
    if replication_factor < 1 or replication_factor > n:
        raise ValueError(f"replication factor {replication_factor} needs 1..{n} brokers")
    if partitions < 0:
        raise ValueError(f"partitions must be >= 0, got {partitions}")
    r = partitions % n
    m = n // math.gcd(r, n)
    offsets = [(k * r + k // m) % n for k in range(replication_factor)]
    return [tuple(broker_ids[(start_index + p + o) % n] for o in offsets) for p in range(partitions)]


# -- create / delete ---------------------------------------------------------------------------------

def validate_topic_name(name: str) -> str | None:
    """None if `name` is a legal Kafka topic name, else why not (one line)."""
    if not name:
        return "topic name is empty"
    if name in (".", ".."):
        return f"topic name {name!r} is not allowed"
    if len(name) > TOPIC_NAME_CHARS_MAX:
        return f"topic name is {len(name)} characters long; at most {TOPIC_NAME_CHARS_MAX} are allowed"
    if not _LEGAL_NAME.fullmatch(name):
        return f"topic name {name!r} is illegal: use only ASCII letters, digits, '.', '_' and '-'"
    return None


def _collision_key(name: str) -> str:
    return name.replace(".", "_")


def create_topics(image: MetadataImage, requests: Sequence[TopicRequest], *, default_partitions: int,
                  default_replication_factor: int, new_topic_id: Callable[[], bytes],
                  validate_config: Callable[[str, str], str],
                  validate_only: bool = False) -> tuple[list[Record], list[TopicOutcome]]:
    """TopicRecord + PartitionRecords (+ ConfigRecords) per valid request; one outcome per request.

    Replicas are spread over the active brokers (`assign_replicas`), starting where the previous
    topic's preferred leaders left off (the image's partition count), so leadership stays spread
    across topics too. New partitions: leader = first replica, ISR = replicas, epochs 0.
    """
    brokers = image.active_broker_ids()
    counts: dict[str, int] = {}
    for req in requests:
        counts[req.name] = counts.get(req.name, 0) + 1
    start = sum(len(t.partitions) for t in image.topics.values())
    created = 0
    collision_keys = {_collision_key(name): name for name in image.topic_ids}
    used_ids: set[bytes] = set(image.topics)
    records: list[Record] = []
    outcomes: list[TopicOutcome] = []
    for req in requests:
        def fail(error: ErrorCode, message: str, req: TopicRequest = req) -> None:
            outcomes.append(TopicOutcome(req.name, error, message, b""))

        if counts[req.name] > 1:
            fail(ErrorCode.invalid_request, f"topic {req.name!r} appears more than once in the request")
            continue
        bad_name = validate_topic_name(req.name)
        if bad_name is not None:
            fail(ErrorCode.invalid_topic_exception, bad_name)
            continue
        if req.name in image.topic_ids:
            fail(ErrorCode.topic_already_exists, f"topic {req.name!r} already exists")
            continue
        other = collision_keys.get(_collision_key(req.name))
        if other is not None:
            fail(ErrorCode.invalid_topic_exception,
                 f"topic {req.name!r} collides with existing topic {other!r} ('.' and '_' are the same in metrics)")
            continue
        partitions = default_partitions if req.partitions == -1 else req.partitions
        if partitions <= 0:
            fail(ErrorCode.invalid_partitions, f"number of partitions must be positive, got {partitions}")
            continue
        if partitions > PARTITIONS_PER_TOPIC_MAX:
            fail(ErrorCode.invalid_partitions,
                 f"number of partitions {partitions} is larger than the limit of {PARTITIONS_PER_TOPIC_MAX}")
            continue
        if created + partitions > PARTITIONS_PER_REQUEST_MAX:
            fail(ErrorCode.policy_violation,
                 f"this request would create more than {PARTITIONS_PER_REQUEST_MAX} partitions (send fewer topics "
                 "per request)")
            continue
        if start + partitions > PARTITIONS_PER_CLUSTER_MAX:
            fail(ErrorCode.policy_violation,
                 f"the cluster would have more than {PARTITIONS_PER_CLUSTER_MAX} partitions (a full metadata image "
                 "must fit one gRPC message)")
            continue
        rf = default_replication_factor if req.replication_factor == -1 else req.replication_factor
        if rf <= 0:
            fail(ErrorCode.invalid_replication_factor, f"replication factor must be positive, got {rf}")
            continue
        if rf > len(brokers):
            fail(ErrorCode.invalid_replication_factor,
                 f"replication factor {rf} is larger than the {len(brokers)} available brokers")
            continue
        configs: list[tuple[str, str]] = []
        config_error: str | None = None
        for key, value in sorted(req.configs.items()):
            try:
                configs.append((key, validate_config(key, value)))
            except ConfigError as e:
                config_error = e.message
                break
        if config_error is None:
            config_error = unsafe_internal_config(req.name, dict(configs))
        if config_error is not None:
            fail(ErrorCode.invalid_config, config_error)
            continue
        if validate_only:
            outcomes.append(TopicOutcome(req.name, ErrorCode.none, "", b""))
            continue
        topic_id = b""
        for _ in range(NEW_TOPIC_ID_TRIES_MAX):
            candidate = new_topic_id()
            if candidate and candidate not in used_ids and any(candidate):
                topic_id = candidate
                break
        if not topic_id:
            fail(ErrorCode.unknown_server_error, "could not allocate a unique topic id")
            continue
        used_ids.add(topic_id)
        collision_keys[_collision_key(req.name)] = req.name
        created += partitions
        records.append(TopicRecord(req.name, topic_id))
        for index, replicas in enumerate(assign_replicas(brokers, partitions, rf, start_index=start)):
            records.append(PartitionRecord(topic_id, index, replicas, replicas, replicas[0], 0, 0))
        start += partitions
        records.extend(ConfigRecord(RESOURCE_TOPIC, req.name, key, value) for key, value in configs)
        outcomes.append(TopicOutcome(req.name, ErrorCode.none, "", topic_id))
    return records, outcomes


@dataclass(frozen=True)
class PartitionsRequest:
    """CreatePartitions for one topic: grow it to `count` partitions. `assignments`: the replicas of each
    new partition (None: spread as for a new topic)."""

    name: str
    count: int
    assignments: tuple[tuple[int, ...], ...] | None = None


# Group ids map to offsets partitions by their count: adding partitions would move every group.
_FIXED_PARTITION_COUNT = frozenset({"__consumer_offsets"})


def create_partitions(image: MetadataImage, requests: Sequence[PartitionsRequest], *,
                      validate_only: bool = False) -> tuple[list[Record], list[TopicOutcome]]:
    """PartitionRecords for the new partitions of each valid request (Kafka's CreatePartitions); one
    outcome per request. The replication factor is the topic's (its partition 0's replica count); new
    partitions start with leader = first replica, ISR = replicas, epochs 0, as a new topic's."""
    brokers = image.active_broker_ids()
    counts: dict[str, int] = {}
    for req in requests:
        counts[req.name] = counts.get(req.name, 0) + 1
    start = sum(len(t.partitions) for t in image.topics.values())
    records: list[Record] = []
    outcomes: list[TopicOutcome] = []
    for req in requests:
        def fail(error: ErrorCode, message: str, req: PartitionsRequest = req) -> None:
            outcomes.append(TopicOutcome(req.name, error, message))

        topic = image.topic_by_name(req.name)
        if counts[req.name] > 1:
            fail(ErrorCode.invalid_request, f"topic {req.name!r} appears more than once in the request")
            continue
        if topic is None:
            fail(ErrorCode.unknown_topic_or_partition, f"topic {req.name!r} does not exist")
            continue
        if req.name in _FIXED_PARTITION_COUNT:
            fail(ErrorCode.invalid_request, f"the partition count of {req.name} cannot change (groups map to "
                                            "its partitions by their count)")
            continue
        current = len(topic.partitions)
        if req.count <= current:
            fail(ErrorCode.invalid_partitions,
                 f"topic {req.name!r} has {current} partitions; the new count must be larger, got {req.count}")
            continue
        if req.count > PARTITIONS_PER_TOPIC_MAX:
            fail(ErrorCode.invalid_partitions,
                 f"number of partitions {req.count} is larger than the limit of {PARTITIONS_PER_TOPIC_MAX}")
            continue
        first = topic.partitions.get(0) or next(iter(topic.partitions.values()))
        rf = len(first.replicas)
        added = req.count - current
        if req.assignments is not None:
            bad = _bad_assignment(req.assignments, added, rf, set(image.brokers))
            if bad is not None:
                fail(ErrorCode.invalid_replica_assignment, bad)
                continue
            assignments = list(req.assignments)
        elif rf > len(brokers):
            fail(ErrorCode.invalid_replication_factor,
                 f"replication factor {rf} of {req.name!r} is larger than the {len(brokers)} available brokers")
            continue
        else:
            assignments = assign_replicas(brokers, added, rf, start_index=start)
            start += added
        if validate_only:
            outcomes.append(TopicOutcome(req.name, ErrorCode.none, ""))
            continue
        for offset, replicas in enumerate(assignments):
            records.append(PartitionRecord(topic.topic_id, current + offset, replicas, replicas, replicas[0], 0, 0))
        outcomes.append(TopicOutcome(req.name, ErrorCode.none, "", topic.topic_id))
    return records, outcomes


def _bad_assignment(assignments: Sequence[Sequence[int]], added: int, rf: int, known: set[int]) -> str | None:
    if len(assignments) != added:
        return f"{len(assignments)} replica assignments for {added} new partitions"
    for replicas in assignments:
        if len(replicas) != rf:
            return f"assignment {list(replicas)} has {len(replicas)} replicas; the topic's replication factor is {rf}"
        if len(set(replicas)) != len(replicas):
            return f"assignment {list(replicas)} names a broker twice"
        unknown = [b for b in replicas if b not in known]
        if unknown:
            return f"assignment {list(replicas)} names unregistered brokers {unknown}"
    return None


def delete_topics(image: MetadataImage, names: Sequence[str], *,
                  deletion_enabled: bool = True) -> tuple[list[Record], list[TopicOutcome]]:
    """RemoveTopic per existing topic (its configs go with it). Unknown -> UNKNOWN_TOPIC_OR_PARTITION;
    an internal topic -> INVALID_TOPIC_EXCEPTION; every topic -> TOPIC_DELETION_DISABLED when
    `delete.topic.enable` is false (`deletion_enabled`)."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    records: list[Record] = []
    outcomes: list[TopicOutcome] = []
    for name in names:
        topic = image.topic_by_name(name)
        if counts[name] > 1:
            outcomes.append(TopicOutcome(name, ErrorCode.invalid_request,
                                         f"topic {name!r} appears more than once in the request", b""))
        elif not deletion_enabled:
            outcomes.append(TopicOutcome(name, ErrorCode.topic_deletion_disabled,
                                         "topic deletion is disabled (delete.topic.enable=false)", b""))
        elif is_internal(name):
            outcomes.append(TopicOutcome(name, ErrorCode.invalid_topic_exception,
                                         f"topic {name!r} is internal and cannot be deleted", b""))
        elif topic is None:
            outcomes.append(TopicOutcome(name, ErrorCode.unknown_topic_or_partition,
                                         f"topic {name!r} does not exist", b""))
        else:
            records.append(RemoveTopic(topic.topic_id))
            outcomes.append(TopicOutcome(name, ErrorCode.none, "", topic.topic_id))
    return records, outcomes


# -- configs -----------------------------------------------------------------------------------------

def alter_configs(image: MetadataImage, resource_type: int, resource_name: str,
                  ops: Sequence[tuple[str, str | None, int]], *,
                  validate: Callable[[str, str], str]) -> tuple[list[Record], ErrorCode, str]:
    """Incremental config changes on one resource, all or nothing.

    ops: (key, value, op) with op 0 = SET (value validated and normalized by `validate`, which raises
    ConfigError) and 1 = DELETE (back to the default). Resource 2 = a topic (must exist); 4 = a
    broker: '' for the cluster-wide default, or a broker id. Only real changes produce records.
    """
    if resource_type == RESOURCE_TOPIC:
        if image.topic_by_name(resource_name) is None:
            return [], ErrorCode.unknown_topic_or_partition, f"topic {resource_name!r} does not exist"
    elif resource_type == RESOURCE_BROKER:
        if resource_name and not (resource_name.isascii() and resource_name.isdigit()):
            return [], ErrorCode.invalid_request, (
                f"broker resource name must be '' (cluster-wide) or a broker id, got {resource_name!r}")
    else:
        return [], ErrorCode.invalid_request, (
            f"unsupported resource type {resource_type} ({RESOURCE_TOPIC} = topic, {RESOURCE_BROKER} = broker)")
    seen: set[str] = set()
    current = image.config(resource_type, resource_name)
    records: list[Record] = []
    for key, value, op in ops:
        if key in seen:
            return [], ErrorCode.invalid_request, f"config key {key!r} appears more than once"
        seen.add(key)
        if op == OP_SET:
            if value is None:
                return [], ErrorCode.invalid_config, f"config key {key!r}: SET needs a value"
            try:
                normalized = validate(key, value)
            except ConfigError as e:
                return [], ErrorCode.invalid_config, e.message
            if current.get(key) != normalized:
                records.append(ConfigRecord(resource_type, resource_name, key, normalized))
        elif op == OP_DELETE:
            if key in current:
                records.append(ConfigRecord(resource_type, resource_name, key, None))
        else:
            return [], ErrorCode.invalid_request, (
                f"config operation {op} on {key!r} is not supported (0 = SET, 1 = DELETE)")
    if resource_type == RESOURCE_TOPIC and is_internal(resource_name):
        after = dict(current)
        for record in records:
            if not isinstance(record, ConfigRecord):
                continue
            if record.value is None:
                after.pop(record.name, None)
            else:
                after[record.name] = record.value
        unsafe = unsafe_internal_config(resource_name, after)
        if unsafe is not None:
            return [], ErrorCode.invalid_config, unsafe
    return records, ErrorCode.none, ""


def leader_counts(image: MetadataImage) -> dict[int, int]:
    """Partitions led per broker: every registered broker (0 if it leads nothing) and every leader."""
    counts = {broker_id: 0 for broker_id in sorted(image.brokers)}
    for _, _, p in image.iter_partitions():
        if p.leader >= 0:
            counts[p.leader] = counts.get(p.leader, 0) + 1
    return counts


__all__ = [
    "PARTITIONS_PER_CLUSTER_MAX",
    "PARTITIONS_PER_REQUEST_MAX",
    "PARTITIONS_PER_TOPIC_MAX",
    "TopicOutcome",
    "TopicRequest",
    "alter_configs",
    "assign_replicas",
    "create_topics",
    "delete_topics",
    "leader_counts",
    "validate_topic_name",
]
