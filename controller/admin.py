"""AdminService: the gRPC API behind the `brook` CLI and the Kafka admin APIs.

Reads (describe, quorum status) are answered by any controller from its latest image; writes
(create, delete, elect, alter) only by the active controller, others answer NOT_CONTROLLER plus the
active controller's address in `error.leader_hint`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from brookpb import admin_pb2 as apb
from brookpb import admin_pb2_grpc
from cluster import codec
from cluster.config import TOPIC_KEYS, validate_server_config, validate_topic_config
from cluster.effective_config import (
    SOURCE_STATIC,
    SOURCE_TOPIC,
    EffectiveConfigError,
    server_config_entries,
    topic_config,
)
from cluster.errors import ErrorCode
from cluster.image import MetadataImage
from cluster.records import RESOURCE_BROKER, RESOURCE_TOPIC
from controller import reassignment, replication, topics
from controller.quorum import QuorumError
from controller.security_admin import SecurityAdminMixin
from controller.service import ControllerRuntime, NotActive, _error_code

log = logging.getLogger("brook.admin")

# Admin writes answer within this; a write that cannot commit (no quorum) fails with a clear error.
ADMIN_WRITE_TIMEOUT_S = 5.0


def partition_info(image: MetadataImage, index: int, p) -> apb.PartitionInfo:
    offline = [r for r in p.replicas if r not in image.brokers or image.brokers[r].fenced]
    return apb.PartitionInfo(partition=index, leader=p.leader, leader_epoch=p.leader_epoch,
                             partition_epoch=p.partition_epoch, replicas=p.replicas, isr=p.isr,
                             offline_replicas=offline, unclean_elections=p.unclean_elections,
                             unclean_lost_offsets=p.unclean_lost_offsets,
                             last_unclean_loss_from=(p.last_unclean_loss or (0, 0))[0],
                             last_unclean_loss_to=(p.last_unclean_loss or (0, 0))[1])


class AdminServicer(SecurityAdminMixin, admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, runtime: ControllerRuntime) -> None:
        self.rt = runtime

    def _fail(self, reply: Any, e: Exception) -> Any:
        code, message = _error_code(e)
        if isinstance(e, NotActive):
            hint = self.rt.leader_hint()
            message = f"controller {self.rt.node_id} is not active" + (f"; the active controller is {hint}" if hint else
                                                                      "; the quorum has no leader")
            reply.error.CopyFrom(apb.Error(code=code, message=message, leader_hint=hint))
        else:
            reply.error.CopyFrom(apb.Error(code=code, message=message))
        return reply

    async def DescribeCluster(self, request, context):
        rt = self.rt
        image = rt.image
        leader = rt.quorum.leader_node_id()
        reply = apb.DescribeClusterResponse(
            cluster_id=image.cluster_id, active_controller_id=leader,
            active_controller=rt.grpc_address if leader == rt.node_id else rt.leader_hint(),
            metadata_offset=image.offset, answering_controller_id=rt.node_id,
            unclean_elections=image.unclean_elections)
        for b in sorted(image.brokers.values(), key=lambda b: b.broker_id):
            reply.brokers.add(broker_id=b.broker_id, broker_epoch=b.broker_epoch, host=b.host,
                              kafka_port=b.kafka_port, grpc_port=b.grpc_port, fenced=b.fenced,
                              shutting_down=b.shutting_down, rack=b.rack,
                              listeners=[codec.listener_to_pb(e) for e in b.listeners])
        return reply

    async def QuorumStatus(self, request, context):
        rt = self.rt
        status = rt.quorum.status()
        state = {0: "follower", 1: "candidate", 2: "leader"}.get(status.get("state"), str(status.get("state")))
        reply = apb.QuorumStatusResponse(
            leader_id=rt.quorum.leader_node_id(), term=status.get("raft_term", 0),
            commit_index=status.get("commit_idx", 0), last_applied=status.get("last_applied", 0),
            answering_node_id=rt.node_id, state=state, metadata_offset=rt.image.offset)
        leader_commit = status.get("commit_idx", 0)
        for node_id, address in rt.quorum.settings.voters:
            grpc_address = rt.image.controllers.get(node_id, ("", ""))[1]
            if node_id == rt.node_id:
                match = status.get("last_applied", 0) if state != "leader" else leader_commit
                connected = True
            else:
                match = status.get(f"match_idx_server_{address}", 0) if state == "leader" else 0
                connected = status.get(f"partner_node_status_server_{address}", 0) == 2
            reply.voters.add(node_id=node_id, raft_address=address, grpc_address=grpc_address,
                             match_index=match, lag=max(0, leader_commit - match) if state == "leader" else 0,
                             connected=connected)
        return reply

    async def CreateTopics(self, request, context):
        reply = apb.CreateTopicsResponse()
        rt = self.rt
        reqs = [topics.TopicRequest(t.name, t.partitions, t.replication_factor, dict(t.configs))
                for t in request.topics]

        def compute(img: MetadataImage):
            return topics.create_topics(
                img, reqs, default_partitions=rt.config.getint("num.partitions"),
                default_replication_factor=rt.config.getint("default.replication.factor"),
                new_topic_id=lambda: uuid.uuid4().bytes, validate_config=validate_topic_config,
                validate_only=request.validate_only)
        try:
            outcomes = await rt.write(compute, ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        for o in outcomes:
            reply.results.add(name=o.name, error_code=int(o.error), error_message=o.message, topic_id=o.topic_id)
        return reply

    async def CreatePartitions(self, request, context):
        reply = apb.CreatePartitionsResponse()
        reqs = [topics.PartitionsRequest(t.name, t.count,
                                         tuple(tuple(a.broker_ids) for a in t.assignments) if t.assignments else None)
                for t in request.topics]
        try:
            outcomes = await self.rt.write(
                lambda img: topics.create_partitions(img, reqs, validate_only=request.validate_only),
                ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        for o in outcomes:
            reply.results.add(name=o.name, error_code=int(o.error), error_message=o.message, topic_id=o.topic_id)
        return reply

    async def DeleteTopics(self, request, context):
        reply = apb.DeleteTopicsResponse()
        names = list(request.names)
        try:
            enabled = _truthy(self.rt.config["delete.topic.enable"])
            outcomes = await self.rt.write(lambda img: topics.delete_topics(img, names, deletion_enabled=enabled),
                                           ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        for o in outcomes:
            reply.results.add(name=o.name, error_code=int(o.error), error_message=o.message, topic_id=o.topic_id)
        return reply

    async def DescribeTopics(self, request, context):
        image = self.rt.image
        reply = apb.DescribeTopicsResponse(min_insync_replicas_default=self.rt.config.getint("min.insync.replicas"))
        names = list(request.names) or sorted(
            t.name for t in image.topics.values() if request.include_internal or not t.name.startswith("__"))
        for name in names:
            topic = image.topic_by_name(name)
            if topic is None:
                reply.topics.add(name=name, error_code=int(ErrorCode.unknown_topic_or_partition),
                                 error_message=f"topic {name!r} does not exist")
                continue
            info = reply.topics.add(name=name, topic_id=topic.topic_id)
            for index, p in sorted(topic.partitions.items()):
                info.partitions.append(partition_info(image, index, p))
            for key, value in sorted(image.config(RESOURCE_TOPIC, name).items()):
                info.configs.add(name=key, value=value, is_default=False, source="topic")
        return reply

    async def ElectLeaders(self, request, context):
        reply = apb.ElectLeadersResponse()
        rt = self.rt
        kinds = {"preferred": replication.Election.PREFERRED, "unclean": replication.Election.UNCLEAN}
        election = kinds.get(request.election_type.lower())
        if election is None:
            reply.error.CopyFrom(apb.Error(code=int(ErrorCode.invalid_request),
                                           message=f"unknown election type {request.election_type!r}: "
                                                   "expected preferred or unclean"))
            return reply
        partitions: list[tuple[str, int]] | None = None
        if request.partitions:
            image = rt.image
            partitions = []
            for ref in request.partitions:
                topic = image.topic_by_name(ref.topic)
                if ref.partition >= 0 or topic is None:
                    partitions.append((ref.topic, ref.partition))
                else:
                    partitions.extend((ref.topic, i) for i in sorted(topic.partitions))
        try:
            outcomes = await rt.write_after_probe(lambda img: replication.elect_leaders(
                img, election, partitions, unclean_enabled=rt.unclean_for(img),
                log_end_offsets=rt.log_end_offsets), ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        for o in outcomes:
            reply.results.add(topic=o.topic, partition=o.partition, error_code=int(o.error),
                              error_message=o.message, leader=o.leader)
        return reply

    async def DescribeConfigs(self, request, context):
        image = self.rt.image
        reply = apb.DescribeConfigsResponse()
        for res in request.resources:
            out = reply.results.add(resource=res)
            if res.type == RESOURCE_TOPIC:
                if image.topic_by_name(res.name) is None:
                    out.error_code = int(ErrorCode.unknown_topic_or_partition)
                    out.error_message = f"topic {res.name!r} does not exist"
                    continue
                try:
                    settings = topic_config(image, self.rt.config, res.name)
                except EffectiveConfigError as e:
                    out.error_code = int(ErrorCode.invalid_config)
                    out.error_message = str(e)
                    continue
                for key in sorted(TOPIC_KEYS):
                    if settings.source(key) == SOURCE_TOPIC:
                        out.entries.add(name=key, value=settings.text(key), is_default=False, source="topic")
                    else:
                        out.entries.add(name=key, value=settings.text(key), is_default=True, source="default")
            elif res.type == RESOURCE_BROKER:
                for entry in server_config_entries(image, self.rt.config, res.name):
                    out.entries.add(name=entry.name, value=entry.text, is_default=entry.source == SOURCE_STATIC,
                                    source=entry.source)
            else:
                out.error_code = int(ErrorCode.invalid_request)
                out.error_message = f"unsupported resource type {res.type} (2 = topic, 4 = broker)"
        return reply

    async def AlterConfigs(self, request, context):
        reply = apb.AlterConfigsResponse()
        for item in request.items:
            ops = [(o.name, o.value if o.op == 0 else None, o.op) for o in item.ops]
            res = item.resource
            out = reply.results.add(resource=res)

            def compute(img: MetadataImage, res=res, ops=ops):
                records, error, message = topics.alter_configs(img, res.type, res.name, ops,
                                                               validate=_validator_for(res.type))
                return ([] if request.validate_only else records), (error, message)
            try:
                error, message = await self.rt.write(compute, ADMIN_WRITE_TIMEOUT_S)
            except (NotActive, QuorumError) as e:
                return self._fail(reply, e)
            out.error_code, out.error_message = int(error), message
        return reply

    async def AlterPartitionReassignments(self, request, context):
        reply = apb.AlterPartitionReassignmentsResponse()
        wanted = [(p.topic, p.partition, None if p.cancel else tuple(p.replicas)) for p in request.partitions]
        try:
            outcomes = await self.rt.write(lambda img: reassignment.alter_reassignments(img, wanted),
                                           ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        for o in outcomes:
            reply.results.add(topic=o.topic, partition=o.partition, error_code=int(o.error), error_message=o.message)
        return reply

    async def ListPartitionReassignments(self, request, context):
        reply = apb.ListPartitionReassignmentsResponse()
        wanted = {t.topic: list(t.partitions) for t in request.topics} if request.topics else None
        for r in reassignment.list_reassignments(self.rt.image, wanted):
            reply.reassignments.add(topic=r.topic, partition=r.partition, replicas=r.replicas,
                                    adding_replicas=r.adding_replicas, removing_replicas=r.removing_replicas)
        return reply


    async def UnregisterBroker(self, request, context):
        reply = apb.UnregisterBrokerResponse()
        try:
            error, message = await self.rt.write(
                lambda img: reassignment.unregister_broker(img, request.broker_id), ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        if error != ErrorCode.none:
            reply.error.CopyFrom(apb.Error(code=int(error), message=message))
        return reply


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _validator_for(resource_type: int):
    if resource_type == RESOURCE_TOPIC:
        return validate_topic_config

    def validate_broker(name: str, value: str) -> str:
        return validate_server_config(name, value, dynamic_only=True)
    return validate_broker
