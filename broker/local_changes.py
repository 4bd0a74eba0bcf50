"""Pure: from two metadata images, what this broker must do with its local replicas.

Kafka `TopicDelta.localChanges` / Redpanda `controller_backend`: the broker does not obey commands, it
reconciles its replicas with the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.image import MetadataImage, PartitionRegistration

TopicPartitionId = tuple[bytes, int]


@dataclass(frozen=True, slots=True)
class LocalPartition:
    topic_id: bytes
    topic: str
    partition: int
    registration: PartitionRegistration


@dataclass(slots=True)
class LocalChanges:
    leaders: list[LocalPartition] = field(default_factory=list)     # became leader (or new leader epoch)
    followers: list[LocalPartition] = field(default_factory=list)   # became follower (or new leader/epoch)
    updates: list[LocalPartition] = field(default_factory=list)     # same role and epoch; ISR/replicas changed
    deletes: list[TopicPartitionId] = field(default_factory=list)   # no longer a replica, or topic removed


def local_changes(previous: MetadataImage | None, current: MetadataImage, broker_id: int) -> LocalChanges:
    changes = LocalChanges()
    seen: set[TopicPartitionId] = set()
    for topic, index, reg in current.iter_partitions():
        if broker_id not in reg.replicas:
            continue
        key = (topic.topic_id, index)
        seen.add(key)
        before = previous.partition(topic.topic_id, index) if previous is not None else None
        local = LocalPartition(topic.topic_id, topic.name, index, reg)
        if reg.leader == broker_id:
            if before is None or before.leader != broker_id or before.leader_epoch != reg.leader_epoch:
                changes.leaders.append(local)
            elif before != reg:
                changes.updates.append(local)
        else:
            if (before is None or before.leader != reg.leader or before.leader_epoch != reg.leader_epoch
                    or broker_id not in before.replicas):
                changes.followers.append(local)
            elif before != reg:
                changes.updates.append(local)
    if previous is not None:
        for topic, index, reg in previous.iter_partitions():
            key = (topic.topic_id, index)
            if broker_id in reg.replicas and key not in seen:
                changes.deletes.append(key)
    return changes
