"""The cluster part of /api/status and the counts behind the controller metrics: tables of cases."""

from __future__ import annotations

import pytest

from cluster.image import MetadataImage, replay_all
from cluster.observe.status import cluster_view, partition_counts
from cluster.records import (
    BrokerShutdown,
    ClusterRecord,
    ControllerRegistration,
    PartitionRecord,
    RegisterBroker,
    TopicRecord,
    UnfenceBroker,
)

T1, T2 = b"\x01" * 16, b"\x02" * 16


def image(*partitions: PartitionRecord) -> MetadataImage:
    return replay_all(MetadataImage(), [
        ClusterRecord("c1"),
        ControllerRegistration(2, "h:9094", "h:9093"),
        RegisterBroker(1, 10, "i1", "h1", 9092, 9192),
        RegisterBroker(2, 11, "i2", "h2", 9092, 9192),
        RegisterBroker(3, 12, "i3", "h3", 9092, 9192),
        UnfenceBroker(1, 10),
        UnfenceBroker(2, 11),
        UnfenceBroker(3, 12),
        BrokerShutdown(3, 12),
        TopicRecord("a", T1),
        TopicRecord("b", T2),
        *partitions,
    ])


@pytest.mark.parametrize("record, offline, under, under_min", [
    (PartitionRecord(T1, 0, (1, 2, 3), (1, 2, 3), 1), False, False, False),
    (PartitionRecord(T1, 0, (1, 2, 3), (1, 2), 1), False, True, False),
    (PartitionRecord(T1, 0, (1, 2, 3), (1,), 1), False, True, True),    # min.insync.replicas of "a" is 2
    (PartitionRecord(T1, 0, (1, 2, 3), (3,), -1), True, False, False),  # offline is not also under-replicated
    (PartitionRecord(T1, 0, (1,), (1,), 1), False, False, True),
])
def test_partition_flags(record, offline, under, under_min):
    view = cluster_view(image(record), 2, min_isr=lambda topic: 2 if topic == "a" else 1)
    (p,) = view["partitions"]
    assert (p["offline"], p["under_replicated"], p["under_min_isr"]) == (offline, under, under_min)
    assert view["counts"]["offline"] == int(offline)
    assert view["counts"]["under_replicated"] == int(under)
    assert view["counts"]["under_min_isr"] == int(under_min)


def test_counts_over_topics_and_preferred_leaders():
    img = image(PartitionRecord(T1, 0, (1, 2), (1, 2), 1), PartitionRecord(T1, 1, (1, 2), (2,), 2),
                PartitionRecord(T2, 0, (2, 1), (1,), -1))
    counts = partition_counts(img)
    assert (counts.total, counts.topics, counts.offline, counts.under_replicated, counts.preferred_imbalance) \
        == (3, 2, 1, 1, 1)


def test_brokers_controllers_and_order():
    view = cluster_view(image(PartitionRecord(T2, 0, (1,), (1,), 1), PartitionRecord(T1, 1, (2,), (2,), 2),
                              PartitionRecord(T1, 0, (1,), (1,), 1)), active_controller=2, controller_ids=[1, 3])
    assert [(b["id"], b["state"]) for b in view["brokers"]] == [(1, "running"), (2, "running"), (3, "shutting_down")]
    assert view["controllers"] == [{"id": 1, "address": "", "active": False},
                                   {"id": 2, "address": "h:9093", "active": True},
                                   {"id": 3, "address": "", "active": False}]
    assert [(p["topic"], p["partition"]) for p in view["partitions"]] == [("a", 0), ("a", 1), ("b", 0)]
    assert view["cluster_id"] == "c1" and view["active_controller"] == 2


def test_a_fenced_broker_is_reported_fenced():
    img = replay_all(image(), [RegisterBroker(4, 13, "i4", "h4", 9092, 9192)])  # registered, never unfenced
    view = cluster_view(img, -1)
    assert {b["id"]: b["state"] for b in view["brokers"]}[4] == "fenced"
    assert view["counts"]["fenced_brokers"] == 1
