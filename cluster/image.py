"""The immutable metadata image and the one deterministic replay that builds it.

`replay_all(image, records)` is the only way metadata state changes, on controllers and brokers
alike. It copies only what a record touches (the brokers map, one topic's partitions map), so an
image handed to another thread or task stays valid. Replay never reads a clock or does I/O, and the
same records in the same order always give the same image.

Replay is strict: a record that does not fit the image (a change to an unknown partition, a fence
of an unknown broker) raises `ReplayError`. Controllers compute records from the image they are
applied to, so a misfit is a bug and must be loud.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from cluster.records import (
    LEADER_UNCHANGED,
    NO_LEADER,
    RESOURCE_TOPIC,
    AclRecord,
    BrokerListener,
    BrokerShutdown,
    ClusterRecord,
    ConfigRecord,
    ControllerRegistration,
    FenceBroker,
    PartitionChange,
    PartitionRecord,
    ProducerIds,
    Record,
    RegisterBroker,
    RemoveAcl,
    RemoveScramCredential,
    RemoveTopic,
    ScramCredentialRecord,
    TopicRecord,
    UnfenceBroker,
    UnregisterBroker,
)
from cluster.security.acl import AclBinding, AclOperation, AclPermission, PatternType, ResourceType
from cluster.security.scram import ScramCredential

_EMPTY: Mapping = MappingProxyType({})


class ReplayError(Exception):
    """A record does not fit the image it is applied to (a programming error)."""


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    broker_id: int
    broker_epoch: int
    incarnation_id: str
    host: str
    kafka_port: int
    grpc_port: int
    rack: str = ""
    fenced: bool = True
    shutting_down: bool = False
    listeners: tuple[BrokerListener, ...] = ()

    def kafka_address(self, listener: str = "") -> tuple[str, int]:
        """The advertised (host, port) of Kafka listener `listener`; the registered one when unknown."""
        for x in self.listeners:
            if x.name == listener:
                return x.host, x.port
        if self.listeners and not listener:
            return self.listeners[0].host, self.listeners[0].port
        return self.host, self.kafka_port

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def active(self) -> bool:
        """May lead partitions and be in ISRs: unfenced and not shutting down."""
        return not self.fenced and not self.shutting_down


@dataclass(frozen=True, slots=True)
class PartitionRegistration:
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int = 0
    partition_epoch: int = 0
    unclean_elections: int = 0
    adding_replicas: tuple[int, ...] = ()     # a reassignment in progress (KIP-455): joining replicas
    removing_replicas: tuple[int, ...] = ()   # and the ones that leave when it completes
    unclean_lost_offsets: int = 0             # offsets known lost by its unclean elections, in total
    last_unclean_loss: tuple[int, int] | None = None  # [from, to) of the last unclean election that knew

    @property
    def reassigning(self) -> bool:
        return bool(self.adding_replicas or self.removing_replicas)

    @property
    def target_replicas(self) -> tuple[int, ...]:
        """Where a reassignment goes: the replicas without the removing ones (all of them when none)."""
        return tuple(r for r in self.replicas if r not in self.removing_replicas)

    def merge(self, change: PartitionChange) -> PartitionRegistration:
        """Apply a change: a new leader bumps the leader epoch; every change bumps the partition epoch."""
        isr = self.isr if change.isr is None else change.isr
        replicas = self.replicas if change.replicas is None else change.replicas
        leader, leader_epoch = self.leader, self.leader_epoch
        if change.leader != LEADER_UNCHANGED:
            leader, leader_epoch = change.leader, self.leader_epoch + 1
        return PartitionRegistration(
            replicas=replicas,
            isr=isr,
            leader=leader,
            leader_epoch=leader_epoch,
            partition_epoch=self.partition_epoch + 1,
            unclean_elections=self.unclean_elections + (1 if change.unclean else 0),
            adding_replicas=self.adding_replicas if change.adding_replicas is None else change.adding_replicas,
            removing_replicas=(self.removing_replicas if change.removing_replicas is None
                               else change.removing_replicas),
            unclean_lost_offsets=self.unclean_lost_offsets + (
                change.unclean_loss[1] - change.unclean_loss[0] if change.unclean_loss else 0),
            last_unclean_loss=change.unclean_loss or self.last_unclean_loss,
        )

    @property
    def preferred_leader(self) -> int:
        return self.replicas[0] if self.replicas else NO_LEADER


@dataclass(frozen=True, slots=True)
class TopicImage:
    name: str
    topic_id: bytes
    partitions: Mapping[int, PartitionRegistration]


@dataclass(frozen=True, slots=True)
class MetadataImage:
    offset: int = -1
    cluster_id: str = ""
    brokers: Mapping[int, BrokerRegistration] = field(default_factory=lambda: _EMPTY)
    topics: Mapping[bytes, TopicImage] = field(default_factory=lambda: _EMPTY)
    topic_ids: Mapping[str, bytes] = field(default_factory=lambda: _EMPTY)
    configs: Mapping[tuple[int, str], Mapping[str, str]] = field(default_factory=lambda: _EMPTY)
    next_producer_id: int = 0
    unclean_elections: int = 0
    # node id -> (raft address, gRPC address) of every controller that has been active.
    controllers: Mapping[int, tuple[str, str]] = field(default_factory=lambda: _EMPTY)
    # user -> mechanism -> SCRAM credential (salted and iterated; never a password).
    scram: Mapping[str, Mapping[str, ScramCredential]] = field(default_factory=lambda: _EMPTY)
    # acl id -> ACL.
    acls: Mapping[bytes, AclBinding] = field(default_factory=lambda: _EMPTY)

    def scram_credential(self, user: str, mechanism: str) -> ScramCredential | None:
        return self.scram.get(user, _EMPTY).get(mechanism)

    def topic_by_name(self, name: str) -> TopicImage | None:
        topic_id = self.topic_ids.get(name)
        return None if topic_id is None else self.topics[topic_id]

    def partition(self, topic_id: bytes, partition: int) -> PartitionRegistration | None:
        topic = self.topics.get(topic_id)
        return None if topic is None else topic.partitions.get(partition)

    def config(self, resource_type: int, name: str) -> Mapping[str, str]:
        return self.configs.get((resource_type, name), _EMPTY)

    def active_broker_ids(self) -> list[int]:
        return sorted(b.broker_id for b in self.brokers.values() if b.active)

    def iter_partitions(self) -> Iterator[tuple[TopicImage, int, PartitionRegistration]]:
        for topic in self.topics.values():
            for index, registration in sorted(topic.partitions.items()):
                yield topic, index, registration


class _Builder:
    """Copy-on-write state for one replay pass: maps are copied the first time they change."""

    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self.offset = image.offset
        self.cluster_id = image.cluster_id
        self.next_producer_id = image.next_producer_id
        self.unclean_elections = image.unclean_elections
        self.brokers: dict[int, BrokerRegistration] | None = None
        self.topics: dict[bytes, TopicImage] | None = None
        self.topic_ids: dict[str, bytes] | None = None
        self.configs: dict[tuple[int, str], Mapping[str, str]] | None = None
        self.controllers: dict[int, tuple[str, str]] | None = None
        self.scram: dict[str, Mapping[str, ScramCredential]] | None = None
        self.acls: dict[bytes, AclBinding] | None = None
        self.partitions: dict[bytes, dict[int, PartitionRegistration]] = {}

    def brokers_w(self) -> dict[int, BrokerRegistration]:
        if self.brokers is None:
            self.brokers = dict(self.image.brokers)
        return self.brokers

    def topics_w(self) -> dict[bytes, TopicImage]:
        if self.topics is None:
            self.topics = dict(self.image.topics)
            self.topic_ids = dict(self.image.topic_ids)
        return self.topics

    def partitions_w(self, topic_id: bytes) -> dict[int, PartitionRegistration]:
        topics = self.topics_w()
        if topic_id not in topics:
            raise ReplayError(f"unknown topic id {topic_id.hex()}")
        if topic_id not in self.partitions:
            self.partitions[topic_id] = dict(topics[topic_id].partitions)
        return self.partitions[topic_id]

    def build(self) -> MetadataImage:
        topics = self.topics
        if topics is not None:
            for topic_id, parts in self.partitions.items():
                if topic_id in topics:
                    topics[topic_id] = replace(topics[topic_id], partitions=MappingProxyType(parts))
        image = self.image
        return MetadataImage(
            offset=self.offset,
            cluster_id=self.cluster_id,
            brokers=image.brokers if self.brokers is None else MappingProxyType(self.brokers),
            topics=image.topics if topics is None else MappingProxyType(topics),
            topic_ids=image.topic_ids if self.topic_ids is None else MappingProxyType(self.topic_ids),
            configs=image.configs if self.configs is None else MappingProxyType(self.configs),
            next_producer_id=self.next_producer_id,
            unclean_elections=self.unclean_elections,
            controllers=image.controllers if self.controllers is None else MappingProxyType(self.controllers),
            scram=image.scram if self.scram is None else MappingProxyType(self.scram),
            acls=image.acls if self.acls is None else MappingProxyType(self.acls),
        )


def _set_broker_flags(b: _Builder, broker_id: int, broker_epoch: int, **flags: Any) -> None:
    brokers = b.brokers_w()
    current = brokers.get(broker_id)
    if current is None or current.broker_epoch != broker_epoch:
        raise ReplayError(f"broker {broker_id} epoch {broker_epoch} is not registered")
    brokers[broker_id] = replace(current, **flags)


def _replay_one(b: _Builder, record: Record) -> None:
    match record:
        case ClusterRecord(cluster_id=cluster_id):
            b.cluster_id = cluster_id
        case ControllerRegistration(node_id=node_id):
            if b.controllers is None:
                b.controllers = dict(b.image.controllers)
            b.controllers[node_id] = (record.raft_address, record.grpc_address)
        case RegisterBroker():
            b.brokers_w()[record.broker_id] = BrokerRegistration(
                broker_id=record.broker_id,
                broker_epoch=record.broker_epoch,
                incarnation_id=record.incarnation_id,
                host=record.host,
                kafka_port=record.kafka_port,
                grpc_port=record.grpc_port,
                rack=record.rack,
                fenced=True,
                listeners=record.listeners,
            )
        case FenceBroker(broker_id=broker_id, broker_epoch=epoch):
            _set_broker_flags(b, broker_id, epoch, fenced=True)
        case UnfenceBroker(broker_id=broker_id, broker_epoch=epoch):
            _set_broker_flags(b, broker_id, epoch, fenced=False, shutting_down=False)
        case BrokerShutdown(broker_id=broker_id, broker_epoch=epoch):
            _set_broker_flags(b, broker_id, epoch, shutting_down=True)
        case TopicRecord(name=name, topic_id=topic_id):
            topics = b.topics_w()
            assert b.topic_ids is not None
            if name in b.topic_ids or topic_id in topics:
                raise ReplayError(f"topic {name!r} already exists")
            topics[topic_id] = TopicImage(name=name, topic_id=topic_id, partitions=_EMPTY)
            b.topic_ids[name] = topic_id
        case PartitionRecord():
            b.partitions_w(record.topic_id)[record.partition] = PartitionRegistration(
                replicas=record.replicas,
                isr=record.isr,
                leader=record.leader,
                leader_epoch=record.leader_epoch,
                partition_epoch=record.partition_epoch,
                unclean_elections=record.unclean_elections,
                adding_replicas=record.adding_replicas,
                removing_replicas=record.removing_replicas,
                unclean_lost_offsets=record.unclean_lost_offsets,
                last_unclean_loss=record.last_unclean_loss,
            )
        case PartitionChange():
            parts = b.partitions_w(record.topic_id)
            current = parts.get(record.partition)
            if current is None:
                raise ReplayError(f"unknown partition {record.topic_id.hex()}-{record.partition}")
            parts[record.partition] = current.merge(record)
            if record.unclean:
                b.unclean_elections += 1
        case RemoveTopic(topic_id=topic_id):
            topics = b.topics_w()
            assert b.topic_ids is not None
            topic = topics.pop(topic_id, None)
            if topic is None:
                raise ReplayError(f"unknown topic id {topic_id.hex()}")
            b.topic_ids.pop(topic.name, None)
            b.partitions.pop(topic_id, None)
            if b.configs is None:
                b.configs = dict(b.image.configs)
            b.configs.pop((RESOURCE_TOPIC, topic.name), None)
        case ConfigRecord():
            if b.configs is None:
                b.configs = dict(b.image.configs)
            key = (record.resource_type, record.resource_name)
            entries = dict(b.configs.get(key, _EMPTY))
            if record.value is None:
                entries.pop(record.name, None)
            else:
                entries[record.name] = record.value
            if entries:
                b.configs[key] = MappingProxyType(entries)
            else:
                b.configs.pop(key, None)
        case UnregisterBroker(broker_id=broker_id):
            if b.brokers_w().pop(broker_id, None) is None:
                raise ReplayError(f"broker {broker_id} is not registered")
        case ProducerIds(next_producer_id=next_id):
            if next_id <= b.next_producer_id:
                raise ReplayError(f"producer ids must grow: {next_id} <= {b.next_producer_id}")
            b.next_producer_id = next_id
        case ScramCredentialRecord():
            if b.scram is None:
                b.scram = dict(b.image.scram)
            mechanisms = dict(b.scram.get(record.user, _EMPTY))
            mechanisms[record.mechanism] = ScramCredential(record.mechanism, record.salt, record.stored_key,
                                                           record.server_key, record.iterations)
            b.scram[record.user] = MappingProxyType(mechanisms)
        case RemoveScramCredential(user=user, mechanism=mechanism):
            if b.scram is None:
                b.scram = dict(b.image.scram)
            mechanisms = dict(b.scram.get(user, _EMPTY))
            if mechanisms.pop(mechanism, None) is None:
                raise ReplayError(f"user {user!r} has no {mechanism} credential")
            if mechanisms:
                b.scram[user] = MappingProxyType(mechanisms)
            else:
                del b.scram[user]
        case AclRecord():
            if b.acls is None:
                b.acls = dict(b.image.acls)
            if record.acl_id in b.acls:
                raise ReplayError(f"acl {record.acl_id.hex()} already exists")
            b.acls[record.acl_id] = AclBinding(
                ResourceType(record.resource_type), record.resource_name, PatternType(record.pattern_type),
                record.principal, record.host, AclOperation(record.operation), AclPermission(record.permission))
        case RemoveAcl(acl_id=acl_id):
            if b.acls is None:
                b.acls = dict(b.image.acls)
            if b.acls.pop(acl_id, None) is None:
                raise ReplayError(f"unknown acl {acl_id.hex()}")
        case _:
            raise ReplayError(f"unknown record type {type(record).__name__}")


def replay_all(image: MetadataImage, records: Iterable[Record]) -> MetadataImage:
    """Apply records in order; each record advances the metadata offset by one."""
    builder = _Builder(image)
    for record in records:
        _replay_one(builder, record)
        builder.offset += 1
    return builder.build()


def image_to_records(image: MetadataImage) -> list[Record]:
    """The records that rebuild `image` from empty (a snapshot, or a full image for a broker).

    Replaying them gives an image equal to `image` except for `offset`, which the caller sets.
    """
    records: list[Record] = []
    if image.cluster_id:
        records.append(ClusterRecord(image.cluster_id))
    for node_id, (raft_address, grpc_address) in sorted(image.controllers.items()):
        records.append(ControllerRegistration(node_id, raft_address, grpc_address))
    for broker in sorted(image.brokers.values(), key=lambda b: b.broker_id):
        records.append(
            RegisterBroker(broker.broker_id, broker.broker_epoch, broker.incarnation_id, broker.host,
                           broker.kafka_port, broker.grpc_port, broker.rack, broker.listeners)
        )
        if not broker.fenced:
            records.append(UnfenceBroker(broker.broker_id, broker.broker_epoch))
        if broker.shutting_down:
            records.append(BrokerShutdown(broker.broker_id, broker.broker_epoch))
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        records.append(TopicRecord(topic.name, topic.topic_id))
        for index, p in sorted(topic.partitions.items()):
            records.append(
                PartitionRecord(topic.topic_id, index, p.replicas, p.isr, p.leader, p.leader_epoch,
                                p.partition_epoch, p.unclean_elections, p.adding_replicas, p.removing_replicas,
                                p.unclean_lost_offsets, p.last_unclean_loss)
            )
    for (resource_type, resource_name), entries in sorted(image.configs.items()):
        for name, value in sorted(entries.items()):
            records.append(ConfigRecord(resource_type, resource_name, name, value))
    if image.next_producer_id:
        records.append(ProducerIds(-1, -1, image.next_producer_id))
    for user, mechanisms in sorted(image.scram.items()):
        for mechanism, c in sorted(mechanisms.items()):
            records.append(ScramCredentialRecord(user, mechanism, c.salt, c.stored_key, c.server_key, c.iterations))
    for acl_id, a in sorted(image.acls.items()):
        records.append(AclRecord(acl_id, int(a.resource_type), a.resource_name, int(a.pattern_type), a.principal,
                                 a.host, int(a.operation), int(a.permission)))
    return records


def image_from_records(records: Iterable[Record], offset: int) -> MetadataImage:
    """Rebuild an image from `image_to_records` output and stamp it with `offset`."""
    rebuilt = replay_all(MetadataImage(), records)
    unclean = sum(p.unclean_elections for _, _, p in rebuilt.iter_partitions())
    return replace(rebuilt, offset=offset, unclean_elections=max(rebuilt.unclean_elections, unclean))


__all__ = [
    "NO_LEADER",
    "BrokerRegistration",
    "MetadataImage",
    "PartitionRegistration",
    "ReplayError",
    "TopicImage",
    "image_from_records",
    "image_to_records",
    "replay_all",
]
