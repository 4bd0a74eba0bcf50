"""Automatic preferred-leader balancing (Kafka `auto.leader.rebalance.enable`): pure functions.

A broker's imbalance ratio is the share of the partitions it is the preferred leader of (first
replica) that it does not lead. When that ratio is above `leader.imbalance.per.broker.percentage`,
leadership of those partitions moves back to it where it is active and in the ISR.
"""

from __future__ import annotations

from cluster.image import MetadataImage
from cluster.records import Record
from controller.replication import Election, build_partition_change

# At most this many leadership moves per balancing pass (Kafka MAX_ELECTIONS_PER_IMBALANCE).
ELECTIONS_PER_PASS_MAX = 1000


def imbalance_by_broker(image: MetadataImage) -> dict[int, float]:
    """For each broker that is some partition's preferred leader: not-leading / preferred."""
    preferred: dict[int, int] = {}
    not_leading: dict[int, int] = {}
    for _, _, p in image.iter_partitions():
        first = p.preferred_leader
        if first < 0:
            continue
        preferred[first] = preferred.get(first, 0) + 1
        if p.leader != first:
            not_leading[first] = not_leading.get(first, 0) + 1
    return {b: not_leading.get(b, 0) / count for b, count in sorted(preferred.items())}


def rebalance_records(image: MetadataImage, percentage: int, *,
                      elections_max: int = ELECTIONS_PER_PASS_MAX) -> list[Record]:
    """PREFERRED elections for over-threshold brokers' partitions whose preferred replica can lead."""
    threshold = percentage / 100.0
    imbalanced = {b for b, ratio in imbalance_by_broker(image).items() if ratio > threshold}
    if not imbalanced:
        return []

    def is_active(broker_id: int) -> bool:
        broker = image.brokers.get(broker_id)
        return broker is not None and broker.active

    def is_unfenced(broker_id: int) -> bool:
        broker = image.brokers.get(broker_id)
        return broker is not None and not broker.fenced

    records: list[Record] = []
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        for index, p in sorted(topic.partitions.items()):
            first = p.preferred_leader
            if first not in imbalanced or p.leader == first or first not in p.isr or not is_active(first):
                continue
            change = build_partition_change(topic.topic_id, index, p, is_acceptable=is_active,
                                            may_keep_leading=is_unfenced, election=Election.PREFERRED)
            if change is not None and change.leader == first:
                records.append(change)
                if len(records) >= elections_max:
                    return records
    return records


__all__ = ["ELECTIONS_PER_PASS_MAX", "imbalance_by_broker", "rebalance_records"]
