"""Pure: the cluster part of a node's /api/status, and the counts the metrics report, from an image.

Every node holds the replicated metadata image, so any node can describe the whole cluster: the
controllers that have been active, the brokers and their state, and every partition with its leader,
ISR and flags. A partition is *offline* when it has no leader, *under-replicated* when its ISR is
smaller than its replica set (Kafka's UnderReplicatedPartitions, counted there by the leader), and
*under min ISR* when its ISR is below the topic's `min.insync.replicas` (acks=all writes fail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cluster.image import BrokerRegistration, MetadataImage


@dataclass(frozen=True, slots=True)
class PartitionCounts:
    total: int = 0
    offline: int = 0
    under_replicated: int = 0
    under_min_isr: int = 0
    preferred_imbalance: int = 0  # led by a replica other than the preferred (first) one
    topics: int = 0


def broker_state(b: BrokerRegistration) -> str:
    if b.fenced:
        return "fenced"
    if b.shutting_down:
        return "shutting_down"
    return "running"


def _per_topic(min_isr: Callable[[str], int]) -> Callable[[str], int]:
    """`min_isr`, asked once per topic (a lookup may build the topic's whole effective config)."""
    cache: dict[str, int] = {}

    def lookup(topic: str) -> int:
        if topic not in cache:
            cache[topic] = min_isr(topic)
        return cache[topic]
    return lookup


def partition_counts(image: MetadataImage, min_isr: Callable[[str], int] = lambda _t: 1) -> PartitionCounts:
    min_isr = _per_topic(min_isr)
    total = offline = under = under_min = imbalance = 0
    for topic, _index, p in image.iter_partitions():
        total += 1
        if p.leader < 0:
            offline += 1
            continue
        if len(p.isr) < len(p.replicas):
            under += 1
        if len(p.isr) < min_isr(topic.name):
            under_min += 1
        if p.replicas and p.leader != p.replicas[0]:
            imbalance += 1
    return PartitionCounts(total, offline, under, under_min, imbalance, len(image.topics))


def cluster_view(image: MetadataImage, active_controller: int, controller_ids: Iterable[int] = (),
                 min_isr: Callable[[str], int] = lambda _t: 1) -> dict[str, Any]:
    """JSON-ready: metadata offset, controllers (with the active one), brokers, partitions, counts.

    `controller_ids` adds voters this node knows of that have never been active (a controller node
    knows every voter; the image lists only controllers that registered when they became active).
    """
    min_isr = _per_topic(min_isr)
    ids = sorted(set(image.controllers) | set(controller_ids))
    controllers = [{"id": i, "address": image.controllers[i][1] if i in image.controllers else "",
                    "active": i == active_controller} for i in ids]
    brokers = [{"id": b.broker_id, "host": b.host, "kafka_port": b.kafka_port, "grpc_port": b.grpc_port,
                "rack": b.rack, "epoch": b.broker_epoch, "state": broker_state(b)}
               for b in sorted(image.brokers.values(), key=lambda b: b.broker_id)]
    partitions = []
    for topic, index, p in sorted(image.iter_partitions(), key=lambda t: (t[0].name, t[1])):
        offline = p.leader < 0
        partitions.append({
            "topic": topic.name, "partition": index, "leader": p.leader, "leader_epoch": p.leader_epoch,
            "replicas": list(p.replicas), "isr": list(p.isr), "offline": offline,
            "under_replicated": not offline and len(p.isr) < len(p.replicas),
            "under_min_isr": not offline and len(p.isr) < min_isr(topic.name),
        })
    counts = partition_counts(image, min_isr)
    return {
        "cluster_id": image.cluster_id,
        "metadata_offset": image.offset,
        "active_controller": active_controller,
        "controllers": controllers,
        "brokers": brokers,
        "partitions": partitions,
        "counts": {"topics": counts.topics, "partitions": counts.total, "offline": counts.offline,
                   "under_replicated": counts.under_replicated, "under_min_isr": counts.under_min_isr,
                   "fenced_brokers": sum(1 for b in image.brokers.values() if b.fenced)},
    }
