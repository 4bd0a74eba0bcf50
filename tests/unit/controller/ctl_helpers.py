"""Helpers for the controller unit tests: build images from records, apply command output."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from cluster.image import MetadataImage, PartitionRegistration, replay_all
from cluster.records import (
    BrokerShutdown,
    ClusterRecord,
    PartitionRecord,
    Record,
    RegisterBroker,
    TopicRecord,
    UnfenceBroker,
)

Part = tuple[Sequence[int], Sequence[int], int]  # replicas, isr, leader


def tid(name: str) -> bytes:
    return name.encode().ljust(16, b"\0")[:16]


def make_image(brokers: Iterable[int] = (1, 2, 3), *, fenced: Iterable[int] = (), shutting: Iterable[int] = (),
               topics: Mapping[str, Sequence[Part]] | None = None) -> MetadataImage:
    """Registered brokers (epoch = offset of their RegisterBroker), unfenced unless listed, plus topics."""
    image = replay_all(MetadataImage(), [ClusterRecord("test-cluster")])
    brokers = list(brokers)
    for b in brokers:
        image = replay_all(image, [RegisterBroker(b, image.offset + 1, f"inc-{b}", "127.0.0.1", 9000 + b, 9100 + b)])
    fenced = set(fenced)
    records: list[Record] = []
    for b in brokers:
        if b not in fenced:
            records.append(UnfenceBroker(b, image.brokers[b].broker_epoch))
    for b in shutting:
        records.append(BrokerShutdown(b, image.brokers[b].broker_epoch))
    for name, parts in (topics or {}).items():
        records.append(TopicRecord(name, tid(name)))
        for index, (replicas, isr, leader) in enumerate(parts):
            records.append(PartitionRecord(tid(name), index, tuple(replicas), tuple(isr), leader))
    return replay_all(image, records)


def part(image: MetadataImage, name: str, index: int = 0) -> PartitionRegistration:
    p = image.partition(tid(name), index)
    assert p is not None
    return p


def state(image: MetadataImage, name: str, index: int = 0) -> tuple[tuple[int, ...], int]:
    p = part(image, name, index)
    return p.isr, p.leader


def apply(image: MetadataImage, records: Sequence[Record]) -> MetadataImage:
    """Replay and check the offset rule: records land at image.offset + 1, + 2, ..."""
    after = replay_all(image, records)
    assert after.offset == image.offset + len(records)
    return after
