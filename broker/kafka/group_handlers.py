"""Kafka group APIs over the typed `GroupCoordinator`: kio requests in, kio responses out.

FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup, DescribeGroups, ListGroups,
OffsetCommit, OffsetFetch, DeleteGroups and OffsetDelete. Each handler reads the fields of every
version it serves into one of the coordinator's request dataclasses (`broker/groups/api.py`) and
builds the response with `codec.build`, which keeps only the fields the version has. The listener
(`handlers.KafkaHandlers`) serves these keys through `handlers()` and advertises `versions()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from broker.groups.api import (
    CommitPartition,
    CommitRequest,
    FetchedOffsets,
    HeartbeatRequest,
    JoinRequest,
    SyncRequest,
)
from broker.groups.coordinator import GroupCoordinator
from broker.kafka.codec import ZERO_MS, build, ms, response_module
from cluster.errors import ErrorCode
from cluster.security.acl import CLUSTER_NAME
from cluster.security.acl import AclOperation as Op
from cluster.security.acl import ResourceType as Res

__all__ = ["SUPPORTED_VERSIONS", "GroupHandlers"]

FIND_COORDINATOR, JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 10, 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, OFFSET_COMMIT, OFFSET_FETCH = 15, 16, 8, 9
DELETE_GROUPS, OFFSET_DELETE = 42, 47

# Version ranges served, each checked against the kio schema classes (tests pin them). Lower ends
# are kio's lowest (kio has no OffsetCommit v0-1 or OffsetFetch v0). Upper ends stop before
# versions that need the KIP-848 protocol or topic ids (OffsetCommit v10, OffsetFetch v10),
# share groups (FindCoordinator v6) or error messages we do not produce yet (DescribeGroups v6).
SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    FIND_COORDINATOR: (0, 5),
    JOIN_GROUP: (0, 9),
    HEARTBEAT: (0, 4),
    LEAVE_GROUP: (0, 5),
    SYNC_GROUP: (0, 5),
    DESCRIBE_GROUPS: (0, 5),
    LIST_GROUPS: (0, 5),
    OFFSET_COMMIT: (2, 9),
    OFFSET_FETCH: (1, 9),
    DELETE_GROUPS: (0, 2),
    OFFSET_DELETE: (0, 0),
}

_AUTHORIZED_OPERATIONS_OMITTED = -(2**31)

Handler = Callable[..., Awaitable[Any]]


def _allowed(context: Any, operation: Op, resource_type: Res, name: str) -> bool:
    """The listener's authorization (broker.kafka.session.RequestContext); allowed without a context."""
    allowed = getattr(context, "allowed", None)
    return True if allowed is None else bool(allowed(operation, resource_type, name))


_GROUP_DENIED = ErrorCode.group_authorization_failed


def _client(context: Any) -> tuple[str, str]:
    """(client id, client host) of the listener's request context, "" when unknown."""
    return getattr(context, "client_id", "") or "", getattr(context, "client_host", "") or ""


class GroupHandlers:
    """One `async handler(request, api_version, context=None)` per group API key."""

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator

    def handlers(self) -> dict[int, Handler]:
        return {
            FIND_COORDINATOR: self.find_coordinator,
            JOIN_GROUP: self.join_group,
            HEARTBEAT: self.heartbeat,
            LEAVE_GROUP: self.leave_group,
            SYNC_GROUP: self.sync_group,
            DESCRIBE_GROUPS: self.describe_groups,
            LIST_GROUPS: self.list_groups,
            OFFSET_COMMIT: self.offset_commit,
            OFFSET_FETCH: self.offset_fetch,
            DELETE_GROUPS: self.delete_groups,
            OFFSET_DELETE: self.offset_delete,
        }

    def versions(self) -> dict[int, tuple[int, int]]:
        return dict(SUPPORTED_VERSIONS)

    # -- FindCoordinator ------------------------------------------------------------------------------

    async def find_coordinator(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(FIND_COORDINATOR, api_version)
        keys = tuple(request.coordinator_keys) if api_version >= 4 else (request.key,)
        key_type = getattr(request, "key_type", 0)
        kind = Res.TRANSACTIONAL_ID if key_type == 1 else Res.GROUP
        denied = ErrorCode.transactional_id_authorization_failed if key_type == 1 else _GROUP_DENIED
        answers = [self._on_listener(context, self.coordinator.find_coordinator(key, key_type))
                   if _allowed(context, Op.DESCRIBE, kind, key) else _Denied(denied) for key in keys]
        if api_version >= 4:
            coordinators = tuple(
                build(mod.Coordinator, key=key, node_id=a.node_id, host=a.host, port=a.port, error_code=a.error,
                      error_message=a.message)
                for key, a in zip(keys, answers, strict=True))
            return build(mod.FindCoordinatorResponse, throttle_time=ZERO_MS, coordinators=coordinators)
        a = answers[0]
        return build(mod.FindCoordinatorResponse, throttle_time=ZERO_MS, error_code=a.error,
                     error_message=a.message, node_id=a.node_id, host=a.host, port=a.port)

    def _on_listener(self, context: Any, answer: Any) -> Any:
        """The coordinator's address on the Kafka listener the client used (as Kafka answers)."""
        listener = getattr(context, "listener", "")
        if not listener or answer.node_id < 0:
            return answer
        address = self.coordinator.core.advertised_kafka_address(answer.node_id, listener)
        return answer if address is None else dataclasses.replace(answer, host=address[0], port=address[1])

    # -- JoinGroup / SyncGroup / Heartbeat / LeaveGroup ---------------------------------------------

    async def join_group(self, request: Any, api_version: int, context: Any = None) -> Any:
        if not _allowed(context, Op.READ, Res.GROUP, request.group_id):
            mod = response_module(JOIN_GROUP, api_version)
            return build(mod.JoinGroupResponse, throttle_time=ZERO_MS, error_code=_GROUP_DENIED, generation_id=-1,
                         protocol_type=None, protocol_name=None if api_version >= 7 else "", leader="",
                         skip_assignment=False, member_id="", members=())
        session_ms = ms(request.session_timeout)
        client_id, client_host = _client(context)
        result = await self.coordinator.join(JoinRequest(
            group_id=request.group_id, member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None), session_timeout_ms=session_ms,
            rebalance_timeout_ms=ms(request.rebalance_timeout) if api_version >= 1 else session_ms,
            protocol_type=request.protocol_type,
            protocols=tuple((p.name, bytes(p.metadata)) for p in request.protocols),
            require_known_member_id=api_version >= 4, client_id=client_id, client_host=client_host))
        mod = response_module(JOIN_GROUP, api_version)
        nullable = api_version >= 7
        members = tuple(build(mod.JoinGroupResponseMember, member_id=m.member_id,
                              group_instance_id=m.group_instance_id, metadata=m.metadata) for m in result.members)
        return build(mod.JoinGroupResponse, throttle_time=ZERO_MS, error_code=result.error,
                     generation_id=result.generation_id, protocol_type=result.protocol_type,
                     protocol_name=result.protocol_name if nullable else (result.protocol_name or ""),
                     leader=result.leader_id, skip_assignment=result.skip_assignment,
                     member_id=result.member_id, members=members)

    async def sync_group(self, request: Any, api_version: int, context: Any = None) -> Any:
        if not _allowed(context, Op.READ, Res.GROUP, request.group_id):
            return build(response_module(SYNC_GROUP, api_version).SyncGroupResponse, throttle_time=ZERO_MS,
                         error_code=_GROUP_DENIED, protocol_type=None, protocol_name=None, assignment=b"")
        result = await self.coordinator.sync(SyncRequest(
            group_id=request.group_id, member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None), generation_id=request.generation_id,
            protocol_type=getattr(request, "protocol_type", None),
            protocol_name=getattr(request, "protocol_name", None),
            assignments={a.member_id: bytes(a.assignment) for a in request.assignments}))
        mod = response_module(SYNC_GROUP, api_version)
        return build(mod.SyncGroupResponse, throttle_time=ZERO_MS, error_code=result.error,
                     protocol_type=result.protocol_type, protocol_name=result.protocol_name,
                     assignment=result.assignment)

    async def heartbeat(self, request: Any, api_version: int, context: Any = None) -> Any:
        if not _allowed(context, Op.READ, Res.GROUP, request.group_id):
            error = _GROUP_DENIED
        else:
            error = self.coordinator.heartbeat(HeartbeatRequest(
                group_id=request.group_id, member_id=request.member_id,
                group_instance_id=getattr(request, "group_instance_id", None), generation_id=request.generation_id))
        return build(response_module(HEARTBEAT, api_version).HeartbeatResponse, throttle_time=ZERO_MS,
                     error_code=error)

    async def leave_group(self, request: Any, api_version: int, context: Any = None) -> Any:
        if api_version >= 3:
            leaving = [(m.member_id, m.group_instance_id) for m in request.members]
        else:
            leaving = [(request.member_id, None)]
        if not _allowed(context, Op.READ, Res.GROUP, request.group_id):
            top, errors = _GROUP_DENIED, [_GROUP_DENIED for _ in leaving]
        else:
            top, errors = self.coordinator.leave(request.group_id, leaving)
        mod = response_module(LEAVE_GROUP, api_version)
        if api_version < 3:
            return build(mod.LeaveGroupResponse, throttle_time=ZERO_MS,
                         error_code=top if top != ErrorCode.none else errors[0])
        members = tuple(build(mod.MemberResponse, member_id=mid, group_instance_id=iid, error_code=err)
                        for (mid, iid), err in zip(leaving, errors, strict=True))
        return build(mod.LeaveGroupResponse, throttle_time=ZERO_MS, error_code=top,
                     members=members if top == ErrorCode.none else ())

    # -- OffsetCommit / OffsetFetch / OffsetDelete -------------------------------------------------

    async def offset_commit(self, request: Any, api_version: int, context: Any = None) -> Any:
        # Kafka: READ on the group, then READ on each topic (TOPIC_AUTHORIZATION_FAILED per partition).
        errors: dict[tuple[str, int], ErrorCode] = {}
        if not _allowed(context, Op.READ, Res.GROUP, request.group_id):
            errors = {(t.name, p.partition_index): _GROUP_DENIED for t in request.topics for p in t.partitions}
        else:
            readable = {t.name for t in request.topics if _allowed(context, Op.READ, Res.TOPIC, t.name)}
            errors = {(t.name, p.partition_index): ErrorCode.topic_authorization_failed
                      for t in request.topics if t.name not in readable for p in t.partitions}
            partitions = tuple(
                CommitPartition(t.name, p.partition_index, p.committed_offset,
                                getattr(p, "committed_leader_epoch", -1), p.committed_metadata or "")
                for t in request.topics if t.name in readable for p in t.partitions)
            if partitions or not errors:
                errors.update(await self.coordinator.commit_offsets(CommitRequest(
                    group_id=request.group_id, generation_id=request.generation_id_or_member_epoch,
                    member_id=request.member_id, group_instance_id=getattr(request, "group_instance_id", None),
                    partitions=partitions)))
        mod = response_module(OFFSET_COMMIT, api_version)
        topics = tuple(
            build(mod.OffsetCommitResponseTopic, name=t.name, partitions=tuple(
                build(mod.OffsetCommitResponsePartition, partition_index=p.partition_index,
                      error_code=errors[(t.name, p.partition_index)])
                for p in t.partitions))
            for t in request.topics)
        return build(mod.OffsetCommitResponse, throttle_time=ZERO_MS, topics=topics)

    async def offset_fetch(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(OFFSET_FETCH, api_version)
        stable = bool(getattr(request, "require_stable", False))  # v7+: KIP-447
        if api_version >= 8:
            groups = []
            for g in request.groups:
                topics = None if g.topics is None else [(t.name, tuple(t.partition_indexes)) for t in g.topics]
                error, found = self._fetch_offsets(context, g.group_id, topics, stable)
                groups.append(build(mod.OffsetFetchResponseGroup, group_id=g.group_id, error_code=error,
                                    topics=_fetch_topics(mod, api_version, found)))
            return build(mod.OffsetFetchResponse, throttle_time=ZERO_MS, groups=tuple(groups))
        topics = None if request.topics is None else [(t.name, tuple(t.partition_indexes)) for t in request.topics]
        error, found = self._fetch_offsets(context, request.group_id, topics, stable)
        if api_version < 2 and error != ErrorCode.none:
            # v1 has no top-level error: every requested partition carries it.
            found = {key: (None, error) for key in found}
        return build(mod.OffsetFetchResponse, throttle_time=ZERO_MS, error_code=error,
                     topics=_fetch_topics(mod, api_version, found))

    def _fetch_offsets(self, context: Any, group_id: str, topics: Any,
                       require_stable: bool = False) -> tuple[ErrorCode, FetchedOffsets]:
        """DESCRIBE on the group; topics the principal may not DESCRIBE are left out (Kafka filters them)."""
        if not _allowed(context, Op.DESCRIBE, Res.GROUP, group_id):
            return _GROUP_DENIED, {}
        error, found = self.coordinator.fetch_offsets(group_id, topics, require_stable=require_stable) \
            if require_stable else self.coordinator.fetch_offsets(group_id, topics)
        return error, {key: value for key, value in found.items() if _allowed(context, Op.DESCRIBE, Res.TOPIC, key[0])}

    async def offset_delete(self, request: Any, api_version: int, context: Any = None) -> Any:
        keys = [(t.name, p.partition_index) for t in request.topics for p in t.partitions]
        errors: dict[tuple[str, int], ErrorCode]
        if not _allowed(context, Op.DELETE, Res.GROUP, request.group_id):
            top, errors = _GROUP_DENIED, {}
        else:
            top, errors = await self.coordinator.delete_offsets(request.group_id, keys)
        mod = response_module(OFFSET_DELETE, api_version)
        topics = () if top != ErrorCode.none else tuple(
            build(mod.OffsetDeleteResponseTopic, name=t.name, partitions=tuple(
                build(mod.OffsetDeleteResponsePartition, partition_index=p.partition_index,
                      error_code=errors[(t.name, p.partition_index)])
                for p in t.partitions))
            for t in request.topics)
        return build(mod.OffsetDeleteResponse, throttle_time=ZERO_MS, error_code=top, topics=topics)

    # -- ListGroups / DescribeGroups / DeleteGroups ------------------------------------------------

    async def list_groups(self, request: Any, api_version: int, context: Any = None) -> Any:
        error, listed = self.coordinator.list_groups(getattr(request, "states_filter", ()),
                                                     getattr(request, "types_filter", ()))
        # Kafka: DESCRIBE on the cluster lists every group, else only the groups the principal may DESCRIBE.
        if not _allowed(context, Op.DESCRIBE, Res.CLUSTER, CLUSTER_NAME):
            listed = [g for g in listed if _allowed(context, Op.DESCRIBE, Res.GROUP, g.group_id)]
        mod = response_module(LIST_GROUPS, api_version)
        groups = tuple(build(mod.ListedGroup, group_id=g.group_id, protocol_type=g.protocol_type,
                             group_state=g.state, group_type="classic") for g in listed)
        return build(mod.ListGroupsResponse, throttle_time=ZERO_MS, error_code=error, groups=groups)

    async def describe_groups(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(DESCRIBE_GROUPS, api_version)
        described = tuple(
            build(mod.DescribedGroup, error_code=g.error, error_message=None, group_id=g.group_id,
                  group_state=g.state, protocol_type=g.protocol_type, protocol_data=g.protocol_data,
                  members=tuple(
                      build(mod.DescribedGroupMember, member_id=m.member_id, group_instance_id=m.group_instance_id,
                            client_id=m.client_id, client_host=m.client_host, member_metadata=m.metadata,
                            member_assignment=m.assignment)
                      for m in g.members),
                  authorized_operations=_AUTHORIZED_OPERATIONS_OMITTED)
            for g in self._describe(context, list(request.groups)))
        return build(mod.DescribeGroupsResponse, throttle_time=ZERO_MS, groups=described)

    def _describe(self, context: Any, names: list[str]) -> list[Any]:
        allowed = [n for n in names if _allowed(context, Op.DESCRIBE, Res.GROUP, n)]
        described = {g.group_id: g for g in self.coordinator.describe_groups(allowed)} if allowed else {}
        return [described[n] if n in described else _DeniedGroup(n) for n in names]

    async def delete_groups(self, request: Any, api_version: int, context: Any = None) -> Any:
        names = list(request.groups_names)
        allowed = [n for n in names if _allowed(context, Op.DELETE, Res.GROUP, n)]
        done = dict(zip(allowed, await self.coordinator.delete_groups(allowed), strict=True)) if allowed else {}
        errors = [done.get(n, _GROUP_DENIED) for n in names]
        mod = response_module(DELETE_GROUPS, api_version)
        results = tuple(build(mod.DeletableGroupResult, group_id=name, error_code=error)
                        for name, error in zip(names, errors, strict=True))
        return build(mod.DeleteGroupsResponse, throttle_time=ZERO_MS, results=results)


def _fetch_topics(mod: Any, api_version: int, found: FetchedOffsets) -> tuple[Any, ...]:
    """OffsetFetch topics (v8+ names its classes in the plural) from the coordinator's answer."""
    topic_cls = mod.OffsetFetchResponseTopics if api_version >= 8 else mod.OffsetFetchResponseTopic
    partition_cls = mod.OffsetFetchResponsePartitions if api_version >= 8 else mod.OffsetFetchResponsePartition
    by_topic: dict[str, list[Any]] = {}
    for (name, index), (value, error) in found.items():
        by_topic.setdefault(name, []).append(build(
            partition_cls, partition_index=index,
            committed_offset=value.offset if value is not None else -1,
            committed_leader_epoch=value.leader_epoch if value is not None else -1,
            metadata=value.metadata if value is not None else "", error_code=error))
    return tuple(build(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())


class _Denied:
    """A FindCoordinator answer for a key the principal may not DESCRIBE."""

    def __init__(self, error: ErrorCode) -> None:
        self.error, self.message, self.node_id, self.host, self.port = error, "not authorized", -1, "", -1


class _DeniedGroup:
    """A DescribeGroups entry for a group the principal may not DESCRIBE."""

    def __init__(self, group_id: str) -> None:
        self.group_id, self.error, self.state, self.protocol_type, self.protocol_data = \
            group_id, _GROUP_DENIED, "", "", ""
        self.members: tuple[Any, ...] = ()
