"""Partition reassignment (Kafka KIP-455): pure decisions from a `MetadataImage` to records.

A reassignment of a partition from its replicas O to a target T is two metadata changes:

1. start: replicas = T followed by the members of O not in T, adding = T - O, removing = O - T.
   The adding replicas become followers (broker/local_changes.py) and copy the log from the leader;
   the leader adds them to the ISR once they have caught up (AlterPartition), as for any follower.
2. complete (`complete_reassignments`, run by the active controller's periodic duty): once every
   member of T is in the ISR, replicas = T, ISR = ISR restricted to T, adding = removing = (), and
   a leader outside T hands over to the first active replica of T. The removing replicas see they are
   no longer replicas and delete their copy.

A new reassignment of a partition that is already moving starts from its original replicas
(replicas minus adding); a target of None cancels: back to the original replicas. Nothing here reads
a clock or does I/O; the records change state only when replayed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cluster.errors import ErrorCode
from cluster.image import MetadataImage, PartitionRegistration
from cluster.records import LEADER_UNCHANGED, NO_LEADER, PartitionChange, Record, UnregisterBroker

__all__ = ["PartitionReassignment", "ReassignmentOutcome", "alter_reassignments", "complete_reassignments",
           "list_reassignments", "original_replicas", "unregister_broker"]


@dataclass(frozen=True, slots=True)
class ReassignmentOutcome:
    topic: str
    partition: int
    error: ErrorCode = ErrorCode.none
    message: str = ""


@dataclass(frozen=True, slots=True)
class PartitionReassignment:
    topic: str
    partition: int
    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...]
    removing_replicas: tuple[int, ...]


def original_replicas(p: PartitionRegistration) -> tuple[int, ...]:
    """The replicas before the reassignment in progress (all of them when none is)."""
    return tuple(r for r in p.replicas if r not in p.adding_replicas)


def _is_active(image: MetadataImage, broker_id: int) -> bool:
    broker = image.brokers.get(broker_id)
    return broker is not None and broker.active


def _move(topic_id: bytes, index: int, p: PartitionRegistration, replicas: tuple[int, ...],
          adding: tuple[int, ...], removing: tuple[int, ...], image: MetadataImage) -> PartitionChange:
    """The change to `replicas` (with the reassignment state given): ISR restricted to them, and a
    leader outside them replaced by the first active in-ISR replica (NO_LEADER if none)."""
    isr = tuple(b for b in p.isr if b in replicas)
    leader = p.leader
    if leader not in replicas or leader not in isr:
        leader = next((b for b in replicas if b in isr and _is_active(image, b)), NO_LEADER)
    if not isr:
        isr = p.isr  # never empty: as the builder does, the ISR keeps its last member(s)
    return PartitionChange(topic_id, index, isr=isr if isr != p.isr else None,
                           leader=leader if leader != p.leader else LEADER_UNCHANGED,
                           replicas=replicas if replicas != p.replicas else None,
                           adding_replicas=adding, removing_replicas=removing)


def _check_target(image: MetadataImage, target: Sequence[int]) -> str:
    if not target:
        return "the target replica list is empty"
    if len(set(target)) != len(target):
        return f"the target replicas {list(target)} repeat a broker"
    unknown = sorted(b for b in set(target) if b not in image.brokers)
    if unknown:
        return f"broker(s) {', '.join(map(str, unknown))} are not registered"
    return ""


def alter_reassignments(
    image: MetadataImage, requests: Sequence[tuple[str, int, Sequence[int] | None]],
) -> tuple[list[Record], list[ReassignmentOutcome]]:
    """Start (target replicas) or cancel (None) reassignments: the records and one outcome per request."""
    records: list[Record] = []
    outcomes: list[ReassignmentOutcome] = []
    seen: set[tuple[str, int]] = set()
    for name, index, target in requests:
        topic = image.topic_by_name(name)
        p = topic.partitions.get(index) if topic is not None else None
        if topic is None or p is None:
            outcomes.append(ReassignmentOutcome(name, index, ErrorCode.unknown_topic_or_partition,
                                                f"no partition {name}-{index}"))
            continue
        if (name, index) in seen:
            outcomes.append(ReassignmentOutcome(name, index, ErrorCode.invalid_request,
                                                f"{name}-{index} appears twice in the request"))
            continue
        seen.add((name, index))
        original = original_replicas(p)
        if target is None:
            if not p.reassigning:
                outcomes.append(ReassignmentOutcome(name, index, ErrorCode.no_reassignment_in_progress,
                                                    f"no reassignment of {name}-{index} is in progress"))
                continue
            records.append(_move(topic.topic_id, index, p, original, (), (), image))
            outcomes.append(ReassignmentOutcome(name, index))
            continue
        target = tuple(int(b) for b in target)
        problem = _check_target(image, target)
        if problem:
            outcomes.append(ReassignmentOutcome(name, index, ErrorCode.invalid_replica_assignment, problem))
            continue
        if target == p.replicas and not p.reassigning:
            outcomes.append(ReassignmentOutcome(name, index))  # already there
            continue
        replicas = target + tuple(b for b in original if b not in target)
        adding = tuple(b for b in target if b not in original)
        removing = tuple(b for b in original if b not in target)
        records.append(_move(topic.topic_id, index, p, replicas, adding, removing, image))
        outcomes.append(ReassignmentOutcome(name, index))
    return records, outcomes


def complete_reassignments(image: MetadataImage) -> list[Record]:
    """For each moving partition whose target replicas are all in the ISR (and one of them can lead):
    the change that finishes the move."""
    records: list[Record] = []
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        for index, p in sorted(topic.partitions.items()):
            if not p.reassigning:
                continue
            target = p.target_replicas
            if not all(b in p.isr for b in target):
                continue
            if p.leader not in target and not any(_is_active(image, b) for b in target):
                continue  # nobody in the target can take over the leadership yet
            records.append(_move(topic.topic_id, index, p, target, (), (), image))
    return records


def list_reassignments(image: MetadataImage,
                       partitions: Mapping[str, Sequence[int]] | None = None) -> list[PartitionReassignment]:
    """The reassignments in progress (of the given topic -> partitions, or all)."""
    out: list[PartitionReassignment] = []
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        wanted = None if partitions is None else partitions.get(topic.name)
        if partitions is not None and wanted is None:
            continue
        for index, p in sorted(topic.partitions.items()):
            if p.reassigning and (wanted is None or not wanted or index in wanted):
                out.append(PartitionReassignment(topic.name, index, p.replicas, p.adding_replicas,
                                                 p.removing_replicas))
    return out


def unregister_broker(image: MetadataImage, broker_id: int) -> tuple[list[Record], tuple[ErrorCode, str]]:
    """Kafka's UnregisterBroker, for a decommissioned broker: refused while it is registered and
    unfenced (a running broker would register again) or while it still holds a replica (its
    partitions would lose one for good: reassign them first, `brook brokers decommission`)."""
    broker = image.brokers.get(broker_id)
    if broker is None:
        return [], (ErrorCode.broker_id_not_registered, f"broker {broker_id} is not registered")
    if not broker.fenced:
        return [], (ErrorCode.invalid_request, f"broker {broker_id} is running (unfenced): stop it first")
    holding = [f"{topic.name}-{index}" for topic, index, p in image.iter_partitions() if broker_id in p.replicas]
    if holding:
        more = f" and {len(holding) - 5} more" if len(holding) > 5 else ""
        return [], (ErrorCode.invalid_request, f"broker {broker_id} still holds replicas of {', '.join(holding[:5])}"
                    f"{more}: move them first (brook brokers decommission {broker_id})")
    return [UnregisterBroker(broker_id)], (ErrorCode.none, "")
