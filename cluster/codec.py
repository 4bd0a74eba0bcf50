"""Records <-> protobuf (`proto/metadata.proto`): the only bridge between `cluster.records` and the
generated code. Raft commands and snapshots are these bytes; nothing project-defined is pickled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from brookpb import metadata_pb2 as pb
from cluster.records import (
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


class DecodeError(Exception):
    """Bytes that are not a metadata command, snapshot or record this version understands."""


def listener_to_pb(x: BrokerListener) -> pb.BrokerListener:
    return pb.BrokerListener(name=x.name, host=x.host, port=x.port, security_protocol=x.security_protocol)


def listeners_from_pb(listeners: Iterable[pb.BrokerListener]) -> tuple[BrokerListener, ...]:
    return tuple(BrokerListener(x.name, x.host, x.port, x.security_protocol) for x in listeners)


def record_to_pb(record: Record) -> pb.MetadataRecord:
    m = pb.MetadataRecord()
    match record:
        case ClusterRecord():
            m.cluster.cluster_id = record.cluster_id
        case ControllerRegistration():
            m.controller_registration.CopyFrom(pb.ControllerRegistrationRecord(
                node_id=record.node_id, raft_address=record.raft_address, grpc_address=record.grpc_address))
        case RegisterBroker():
            m.register_broker.CopyFrom(pb.RegisterBrokerRecord(
                broker_id=record.broker_id, broker_epoch=record.broker_epoch,
                incarnation_id=record.incarnation_id, host=record.host, kafka_port=record.kafka_port,
                grpc_port=record.grpc_port, rack=record.rack,
                listeners=[pb.BrokerListener(name=x.name, host=x.host, port=x.port,
                                             security_protocol=x.security_protocol) for x in record.listeners]))
        case FenceBroker():
            m.fence_broker.CopyFrom(pb.FenceBrokerRecord(broker_id=record.broker_id,
                                                         broker_epoch=record.broker_epoch))
        case UnfenceBroker():
            m.unfence_broker.CopyFrom(pb.UnfenceBrokerRecord(broker_id=record.broker_id,
                                                             broker_epoch=record.broker_epoch))
        case BrokerShutdown():
            m.broker_shutdown.CopyFrom(pb.BrokerShutdownRecord(broker_id=record.broker_id,
                                                               broker_epoch=record.broker_epoch))
        case TopicRecord():
            m.topic.CopyFrom(pb.TopicRecord(name=record.name, topic_id=record.topic_id))
        case PartitionRecord():
            m.partition.CopyFrom(pb.PartitionRecord(
                topic_id=record.topic_id, partition=record.partition, replicas=record.replicas,
                isr=record.isr, leader=record.leader, leader_epoch=record.leader_epoch,
                partition_epoch=record.partition_epoch, unclean_elections=record.unclean_elections,
                adding_replicas=record.adding_replicas, removing_replicas=record.removing_replicas,
                unclean_lost_offsets=record.unclean_lost_offsets,
                last_unclean_loss_from=(record.last_unclean_loss or (0, 0))[0],
                last_unclean_loss_to=(record.last_unclean_loss or (0, 0))[1]))
        case PartitionChange():
            m.partition_change.CopyFrom(pb.PartitionChangeRecord(
                topic_id=record.topic_id, partition=record.partition,
                isr_changed=record.isr is not None, isr=record.isr or (),
                leader=record.leader, unclean=record.unclean,
                replicas_changed=record.replicas is not None, replicas=record.replicas or (),
                reassignment_changed=record.adding_replicas is not None or record.removing_replicas is not None,
                adding_replicas=record.adding_replicas or (), removing_replicas=record.removing_replicas or (),
                unclean_loss_from=(record.unclean_loss or (0, 0))[0],
                unclean_loss_to=(record.unclean_loss or (0, 0))[1]))
        case RemoveTopic():
            m.remove_topic.topic_id = record.topic_id
        case ConfigRecord():
            m.config.CopyFrom(pb.ConfigRecord(
                resource_type=record.resource_type, resource_name=record.resource_name,
                name=record.name, value=record.value or "", deleted=record.value is None))
        case UnregisterBroker():
            m.unregister_broker.broker_id = record.broker_id
        case ProducerIds():
            m.producer_ids.CopyFrom(pb.ProducerIdsRecord(
                broker_id=record.broker_id, broker_epoch=record.broker_epoch,
                next_producer_id=record.next_producer_id))
        case ScramCredentialRecord():
            m.scram_credential.CopyFrom(pb.ScramCredentialRecord(
                user=record.user, mechanism=record.mechanism, salt=record.salt, stored_key=record.stored_key,
                server_key=record.server_key, iterations=record.iterations))
        case RemoveScramCredential():
            m.remove_scram_credential.CopyFrom(pb.RemoveScramCredentialRecord(user=record.user,
                                                                              mechanism=record.mechanism))
        case AclRecord():
            m.acl.CopyFrom(pb.AclRecord(
                acl_id=record.acl_id, resource_type=record.resource_type, resource_name=record.resource_name,
                pattern_type=record.pattern_type, principal=record.principal, host=record.host,
                operation=record.operation, permission=record.permission))
        case RemoveAcl():
            m.remove_acl.acl_id = record.acl_id
        case _:
            raise TypeError(f"not a metadata record: {record!r}")
    return m


def record_from_pb(m: pb.MetadataRecord) -> Record:
    kind = m.WhichOneof("record")
    match kind:
        case "cluster":
            return ClusterRecord(m.cluster.cluster_id)
        case "controller_registration":
            r = m.controller_registration
            return ControllerRegistration(r.node_id, r.raft_address, r.grpc_address)
        case "register_broker":
            r = m.register_broker
            return RegisterBroker(r.broker_id, r.broker_epoch, r.incarnation_id, r.host, r.kafka_port,
                                  r.grpc_port, r.rack, listeners_from_pb(r.listeners))
        case "fence_broker":
            return FenceBroker(m.fence_broker.broker_id, m.fence_broker.broker_epoch)
        case "unfence_broker":
            return UnfenceBroker(m.unfence_broker.broker_id, m.unfence_broker.broker_epoch)
        case "broker_shutdown":
            return BrokerShutdown(m.broker_shutdown.broker_id, m.broker_shutdown.broker_epoch)
        case "topic":
            return TopicRecord(m.topic.name, m.topic.topic_id)
        case "partition":
            p = m.partition
            return PartitionRecord(p.topic_id, p.partition, tuple(p.replicas), tuple(p.isr), p.leader,
                                   p.leader_epoch, p.partition_epoch, p.unclean_elections,
                                   tuple(p.adding_replicas), tuple(p.removing_replicas), p.unclean_lost_offsets,
                                   _range(p.last_unclean_loss_from, p.last_unclean_loss_to))
        case "partition_change":
            c = m.partition_change
            return PartitionChange(
                c.topic_id, c.partition, tuple(c.isr) if c.isr_changed else None, c.leader, c.unclean,
                tuple(c.replicas) if c.replicas_changed else None,
                tuple(c.adding_replicas) if c.reassignment_changed else None,
                tuple(c.removing_replicas) if c.reassignment_changed else None,
                _range(c.unclean_loss_from, c.unclean_loss_to))
        case "remove_topic":
            return RemoveTopic(m.remove_topic.topic_id)
        case "config":
            c = m.config
            return ConfigRecord(c.resource_type, c.resource_name, c.name, None if c.deleted else c.value)
        case "unregister_broker":
            return UnregisterBroker(m.unregister_broker.broker_id)
        case "producer_ids":
            r = m.producer_ids
            return ProducerIds(r.broker_id, r.broker_epoch, r.next_producer_id)
        case "scram_credential":
            c = m.scram_credential
            return ScramCredentialRecord(c.user, c.mechanism, c.salt, c.stored_key, c.server_key, c.iterations)
        case "remove_scram_credential":
            return RemoveScramCredential(m.remove_scram_credential.user, m.remove_scram_credential.mechanism)
        case "acl":
            a = m.acl
            return AclRecord(a.acl_id, a.resource_type, a.resource_name, a.pattern_type, a.principal, a.host,
                             a.operation, a.permission)
        case "remove_acl":
            return RemoveAcl(m.remove_acl.acl_id)
    raise DecodeError(f"unknown metadata record kind {kind!r} (written by a newer Brook?)")


def encode_command(request_id: str, base_offset: int, records: Sequence[Record]) -> bytes:
    cmd = pb.MetadataCommand(request_id=request_id, base_offset=base_offset,
                             records=[record_to_pb(r) for r in records])
    return cmd.SerializeToString()


def decode_command(data: bytes) -> tuple[str, int, list[Record]]:
    try:
        cmd = pb.MetadataCommand.FromString(data)
    except Exception as e:  # protobuf raises DecodeError subclasses
        raise DecodeError(f"malformed metadata command: {e}") from e
    return cmd.request_id, cmd.base_offset, [record_from_pb(r) for r in cmd.records]


def encode_snapshot(offset: int, records: Iterable[Record], request_ids: Iterable[str]) -> bytes:
    snap = pb.MetadataSnapshot(offset=offset, records=[record_to_pb(r) for r in records],
                               recent_request_ids=list(request_ids))
    return snap.SerializeToString()


def decode_snapshot(data: bytes) -> tuple[int, list[Record], list[str]]:
    try:
        snap = pb.MetadataSnapshot.FromString(data)
    except Exception as e:
        raise DecodeError(f"malformed metadata snapshot: {e}") from e
    return snap.offset, [record_from_pb(r) for r in snap.records], list(snap.recent_request_ids)


def _range(start: int, end: int) -> tuple[int, int] | None:
    """An offset range [start, end) from two proto fields; None when empty (not known)."""
    return (start, end) if end > start else None
