"""gRPC client helpers for the admin CLI, the launcher and tests.

    ControllerClient   AdminService on the controllers: tries the bootstrap addresses, follows
                       NOT_CONTROLLER leader hints, turns every failure into a one-line BrookError.
    BrokerClient       BrokerService on one broker, with a deadline on every call.
    PartitionRouter    finds a partition's leader (DescribeTopics + DescribeCluster) and retries
                       produce/fetch/list-offsets on NOT_LEADER_OR_FOLLOWER by refreshing metadata.

Every call carries a deadline (gRPC has none by default). Errors reach callers as `BrookError` with
a Kafka error code and a message fit for one line on stderr; per-item results (one topic of a
CreateTopics request, one partition of an election) stay in the replies for the caller to report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from brookpb import admin_pb2 as apb
from brookpb import admin_pb2_grpc, broker_pb2_grpc
from brookpb import broker_pb2 as bpb
from cluster.errors import BrookError, ErrorCode
from cluster.grpcutil import sync_channel

__all__ = [
    "ADMIN_METHODS",
    "BrokerClient",
    "ControllerClient",
    "PartitionLeader",
    "PartitionRouter",
    "describe_rpc_error",
    "find_leader",
    "parse_addresses",
]

# How many NOT_CONTROLLER hops one call follows before giving up: a hint can be stale during an
# election, and two hops cover "asked a follower, whose hint was the old leader".
CONTROLLER_HOPS_MAX = 8
# Bounded retries of a data-plane call on a leadership change (each refreshes metadata first).
LEADER_RETRIES_MAX = 6
LEADER_RETRY_BACKOFF_S = 0.25

ADMIN_METHODS = (
    "DescribeCluster",
    "QuorumStatus",
    "CreateTopics",
    "CreatePartitions",
    "DeleteTopics",
    "DescribeTopics",
    "ElectLeaders",
    "DescribeConfigs",
    "AlterConfigs",
    "AlterPartitionReassignments",
    "ListPartitionReassignments",
    "UnregisterBroker",
    "AlterUserScramCredentials",
    "DescribeUserScramCredentials",
    "CreateAcls",
    "DescribeAcls",
    "DeleteAcls",
)

# Errors that mean "ask again after refreshing who leads the partition". OFFSET_NOT_AVAILABLE is a
# new leader whose HW has not yet reached its epoch start (KIP-207): transient in the same way.
_LEADER_MOVED = frozenset({
    ErrorCode.not_leader_or_follower,
    ErrorCode.leader_not_available,
    ErrorCode.fenced_leader_epoch,
    ErrorCode.unknown_leader_epoch,
    ErrorCode.offset_not_available,
})


def kafka_address(broker: apb.BrokerInfo, listener: str | None = None) -> str | None:
    """`host:port` of a registered broker's Kafka listener called `listener` (None: its first Kafka
    listener, the order of its `listeners`), or None when it has none. A controller older than the
    `listeners` field reports only host + kafka_port."""
    for entry in broker.listeners:
        if entry.security_protocol != "GRPC" and (listener is None or entry.name == listener):
            return f"{entry.host}:{entry.port}"
    if not broker.listeners and listener in (None, "PLAINTEXT") and broker.kafka_port > 0:
        return f"{broker.host}:{broker.kafka_port}"
    return None


def parse_addresses(text: str | Sequence[str]) -> list[str]:
    """Split `host:port,host:port` (or a list of such strings) and check each item has a port."""
    items = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        for raw in item.split(","):
            address = raw.strip()
            if not address:
                continue
            host, sep, port = address.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise BrookError(f"bad address {address!r}: expected host:port", ErrorCode.invalid_request)
            out.append(address)
    return out


def describe_rpc_error(e: grpc.RpcError, timeout_s: float | None = None) -> str:
    """A short reason for a failed call: 'connection refused', 'timed out after 5s', ..."""
    code = e.code() if hasattr(e, "code") else None
    details = (e.details() if hasattr(e, "details") else "") or ""
    lowered = details.lower()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"timed out after {timeout_s:g}s" if timeout_s else "timed out"
    if "connection refused" in lowered:
        return "connection refused"
    if "dns resolution failed" in lowered or "name or service not known" in lowered:
        return "unknown host"
    if "connection reset" in lowered:
        return "connection reset"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return "the server does not implement this call (wrong port or older version?)"
    name = code.name.lower() if code is not None else "error"
    first_line = details.splitlines()[0] if details else ""
    return f"{name}: {first_line}" if first_line else name


def _check_error(reply: Any) -> None:
    """Raise BrookError for a reply-level `error` (callers handle NOT_CONTROLLER before this)."""
    if reply.HasField("error") and reply.error.code != 0:
        raise BrookError(_error_text(reply.error.code, reply.error.message), _code(reply.error.code))


def _code(value: int) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.unknown_server_error


def _error_text(code: int, message: str) -> str:
    name = _code(code).name.upper()
    return f"{message} ({name})" if message else name


class ControllerClient:
    """AdminService over the controllers in `bootstrap` (host:port of their CONTROLLER listeners).

    A call goes first to the last controller that answered (usually the active one), then to each
    bootstrap address in turn; a NOT_CONTROLLER reply with a leader hint sends it to the hint next.
    The whole call, hops included, finishes within `timeout_s`.
    """

    def __init__(self, bootstrap: Sequence[str] | str, timeout_s: float = 5.0) -> None:
        self.bootstrap = parse_addresses(bootstrap)
        if not self.bootstrap:
            raise BrookError("no controller address given (use --bootstrap-controller host:port,... "
                             "or set BROOK_BOOTSTRAP_CONTROLLER)", ErrorCode.invalid_request)
        if timeout_s <= 0:
            raise BrookError(f"timeout must be positive, got {timeout_s:g}", ErrorCode.invalid_request)
        self.timeout_s = timeout_s
        self.preferred: str | None = None
        self._channels: dict[str, grpc.Channel] = {}

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def _stub(self, address: str) -> admin_pb2_grpc.AdminServiceStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = sync_channel(address)
            self._channels[address] = channel
        return admin_pb2_grpc.AdminServiceStub(channel)

    def call(self, method: str, request: Any, timeout_s: float | None = None, prefer: str | None = None) -> Any:
        """Call AdminService.`method` and return the reply; raise BrookError on any failure.

        `prefer`: an address to ask first (e.g. the active controller, for QuorumStatus).
        """
        if method not in ADMIN_METHODS:
            raise BrookError(f"unknown admin call {method!r}", ErrorCode.invalid_request)
        budget_s = timeout_s if timeout_s is not None else self.timeout_s
        deadline = time.monotonic() + budget_s
        first = prefer or self.preferred
        queue: list[str] = ([first] if first else []) + self.bootstrap
        tried: list[str] = []
        failures: list[str] = []
        no_leader: list[str] = []
        hops = 0
        while queue and hops < CONTROLLER_HOPS_MAX + len(self.bootstrap):
            address = queue.pop(0)
            if address in tried:
                continue
            tried.append(address)
            hops += 1
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                failures.append(f"{address}: out of time")
                break
            try:
                reply = getattr(self._stub(address), method)(request, timeout=remaining_s)
            except grpc.RpcError as e:
                failures.append(describe_rpc_error(e, budget_s))
                if self.preferred == address:
                    self.preferred = None
                continue
            if reply.HasField("error") and reply.error.code == int(ErrorCode.not_controller):
                hint = reply.error.leader_hint
                if hint and hint not in tried:
                    queue.insert(0, hint)
                else:
                    no_leader.append(address)
                continue
            self.preferred = address
            _check_error(reply)
            return reply
        if no_leader and not failures:
            raise BrookError(f"no active controller: the quorum at {','.join(tried)} has no leader "
                             "(an election may be running, or a majority of controllers is down)",
                             ErrorCode.not_controller)
        reason = _summarize(failures)
        raise BrookError(f"no controller reachable at {','.join(tried or self.bootstrap)} ({reason})",
                         ErrorCode.network_exception)

    # Thin wrappers, one per AdminService RPC.
    def describe_cluster(self) -> apb.DescribeClusterResponse:
        return self.call("DescribeCluster", apb.DescribeClusterRequest())

    def quorum_status(self, from_leader: bool = True) -> apb.QuorumStatusResponse:
        """QuorumStatus, asked of the active controller when `from_leader` (only it knows match indexes)."""
        prefer = None
        if from_leader:
            cluster = self.describe_cluster()
            prefer = cluster.active_controller or None if cluster.active_controller_id >= 0 else None
        return self.call("QuorumStatus", apb.QuorumStatusRequest(), prefer=prefer)

    def create_topics(self, topics: Sequence[apb.CreateTopicRequest], validate_only: bool = False) \
            -> apb.CreateTopicsResponse:
        return self.call("CreateTopics", apb.CreateTopicsRequest(topics=list(topics), validate_only=validate_only))

    def create_partitions(self, name: str, count: int) -> apb.CreatePartitionsResponse:
        """Grow topic `name` to `count` partitions (one result)."""
        request = apb.CreatePartitionsRequest(topics=[apb.CreatePartitionsTopic(name=name, count=count)])
        return self.call("CreatePartitions", request)

    def delete_topics(self, names: Sequence[str]) -> apb.DeleteTopicsResponse:
        return self.call("DeleteTopics", apb.DeleteTopicsRequest(names=list(names)))

    def describe_topics(self, names: Sequence[str] = (), include_internal: bool = False) \
            -> apb.DescribeTopicsResponse:
        return self.call("DescribeTopics", apb.DescribeTopicsRequest(names=list(names),
                                                                     include_internal=include_internal))

    def elect_leaders(self, election_type: str, partitions: Sequence[tuple[str, int]] = ()) \
            -> apb.ElectLeadersResponse:
        refs = [apb.TopicPartitionRef(topic=t, partition=p) for t, p in partitions]
        return self.call("ElectLeaders", apb.ElectLeadersRequest(election_type=election_type, partitions=refs))

    def alter_partition_reassignments(self, moves: Sequence[tuple[str, int, Sequence[int] | None]]) \
            -> apb.AlterPartitionReassignmentsResponse:
        """`moves`: (topic, partition, target replicas), or (topic, partition, None) to cancel."""
        items = [apb.ReassignPartition(topic=t, partition=p, replicas=list(r or ()), cancel=r is None)
                 for t, p, r in moves]
        return self.call("AlterPartitionReassignments", apb.AlterPartitionReassignmentsRequest(partitions=items))

    def list_partition_reassignments(self, topics: Mapping[str, Sequence[int]] | None = None) \
            -> apb.ListPartitionReassignmentsResponse:
        refs = [apb.ReassignmentTopic(topic=t, partitions=list(ps)) for t, ps in (topics or {}).items()]
        return self.call("ListPartitionReassignments", apb.ListPartitionReassignmentsRequest(topics=refs))

    def unregister_broker(self, broker_id: int) -> apb.UnregisterBrokerResponse:
        return self.call("UnregisterBroker", apb.UnregisterBrokerRequest(broker_id=broker_id))

    def describe_configs(self, resources: Sequence[tuple[int, str]]) -> apb.DescribeConfigsResponse:
        refs = [apb.ConfigResource(type=t, name=n) for t, n in resources]
        return self.call("DescribeConfigs", apb.DescribeConfigsRequest(resources=refs))

    def alter_configs(self, resource_type: int, name: str, ops: Sequence[tuple[str, str | None]],
                      validate_only: bool = False) -> apb.AlterConfigsResponse:
        """`ops`: (key, value) to set, (key, None) to delete."""
        item = apb.AlterConfigsItem(resource=apb.ConfigResource(type=resource_type, name=name))
        for key, value in ops:
            item.ops.add(name=key, value=value or "", op=0 if value is not None else 1)
        return self.call("AlterConfigs", apb.AlterConfigsRequest(items=[item], validate_only=validate_only))


    # -- SCRAM users and ACLs ----------------------------------------------------------------------
    def upsert_scram_user(self, user: str, password: str, mechanisms: Sequence[str] = ("SCRAM-SHA-512",),
                          iterations: int = 8192) -> apb.AlterUserScramCredentialsResponse:
        """Create or replace a user's SCRAM credentials. The password is salted and iterated here (KIP-554):
        only the salted password travels, and the controller stores keys derived from it."""
        from cluster.security.scram import salted_password

        request = apb.AlterUserScramCredentialsRequest()
        for mechanism in mechanisms:
            salt = os.urandom(32)
            request.upsertions.add(user=user, mechanism=mechanism, iterations=iterations, salt=salt,
                                   salted_password=salted_password(mechanism, password, salt, iterations))
        return self.call("AlterUserScramCredentials", request)

    def delete_scram_user(self, user: str, mechanisms: Sequence[str]) -> apb.AlterUserScramCredentialsResponse:
        request = apb.AlterUserScramCredentialsRequest(
            deletions=[apb.ScramDeletion(user=user, mechanism=m) for m in mechanisms])
        return self.call("AlterUserScramCredentials", request)

    def describe_scram_users(self, users: Sequence[str] = ()) -> apb.DescribeUserScramCredentialsResponse:
        return self.call("DescribeUserScramCredentials", apb.DescribeUserScramCredentialsRequest(users=list(users)))

    def create_acls(self, entries: Sequence[apb.AclEntry]) -> apb.CreateAclsResponse:
        return self.call("CreateAcls", apb.CreateAclsRequest(creations=list(entries)))

    def describe_acls(self, acl_filter: apb.AclFilter) -> apb.DescribeAclsResponse:
        return self.call("DescribeAcls", apb.DescribeAclsRequest(filter=acl_filter))

    def delete_acls(self, filters: Sequence[apb.AclFilter]) -> apb.DeleteAclsResponse:
        return self.call("DeleteAcls", apb.DeleteAclsRequest(filters=list(filters)))


def _summarize(failures: list[str]) -> str:
    unique = list(dict.fromkeys(failures))
    return "; ".join(unique) if unique else "no answer"


class BrokerClient:
    """BrokerService on one broker's GRPC listener; every call has a deadline."""

    def __init__(self, address: str, timeout_s: float = 5.0) -> None:
        self.address = parse_addresses(address)[0]
        self.timeout_s = timeout_s
        self._channel = sync_channel(self.address)
        self._stub = broker_pb2_grpc.BrokerServiceStub(self._channel)

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def call(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        budget_s = timeout_s if timeout_s is not None else self.timeout_s
        try:
            return getattr(self._stub, method)(request, timeout=budget_s)
        except grpc.RpcError as e:
            raise BrookError(f"broker {self.address} unreachable ({describe_rpc_error(e, budget_s)})",
                             ErrorCode.network_exception) from None

    def produce(self, request: bpb.ProduceRequest, timeout_s: float | None = None) -> bpb.ProduceResponse:
        return self.call("Produce", request, timeout_s)

    def fetch(self, request: bpb.FetchRequest, timeout_s: float | None = None) -> bpb.FetchResponse:
        return self.call("Fetch", request, timeout_s)

    def list_offsets(self, request: bpb.ListOffsetsRequest) -> bpb.ListOffsetsResponse:
        return self.call("ListOffsets", request)

    def replica_states(self) -> bpb.ReplicaStateResponse:
        return self.call("ReplicaStates", bpb.ReplicaStateRequest())


@dataclass(frozen=True)
class PartitionLeader:
    topic: str
    partition: int
    leader_id: int
    leader_epoch: int
    address: str  # the leader's broker gRPC address, host:grpc_port


def find_leader(topics: apb.DescribeTopicsResponse, cluster: apb.DescribeClusterResponse,
                topic: str, partition: int) -> PartitionLeader:
    """Pure: the leader of `topic`/`partition` and its gRPC address, or a BrookError saying why not."""
    info = next((t for t in topics.topics if t.name == topic), None)
    if info is None or info.error_code == int(ErrorCode.unknown_topic_or_partition):
        raise BrookError(f"topic {topic!r} does not exist", ErrorCode.unknown_topic_or_partition)
    if info.error_code:
        raise BrookError(_error_text(info.error_code, info.error_message), _code(info.error_code))
    part = next((p for p in info.partitions if p.partition == partition), None)
    if part is None:
        raise BrookError(f"topic {topic!r} has no partition {partition} (it has {len(info.partitions)})",
                         ErrorCode.unknown_topic_or_partition)
    if part.leader < 0:
        raise BrookError(f"partition {topic}-{partition} is offline (no leader)", ErrorCode.leader_not_available)
    broker = next((b for b in cluster.brokers if b.broker_id == part.leader), None)
    if broker is None:
        raise BrookError(f"leader {part.leader} of {topic}-{partition} is not a registered broker",
                         ErrorCode.leader_not_available)
    return PartitionLeader(topic, partition, part.leader, part.leader_epoch, f"{broker.host}:{broker.grpc_port}")


class PartitionRouter:
    """Sends data-plane requests to partition leaders, following leadership changes.

    Metadata (DescribeTopics + DescribeCluster) is cached and refreshed when a broker answers
    NOT_LEADER_OR_FOLLOWER (or similar) or cannot be reached; retries are bounded.
    """

    def __init__(self, controller: ControllerClient, timeout_s: float = 5.0) -> None:
        self.controller = controller
        self.timeout_s = timeout_s
        self._topics: apb.DescribeTopicsResponse | None = None
        self._cluster: apb.DescribeClusterResponse | None = None
        self._brokers: dict[str, BrokerClient] = {}

    def close(self) -> None:
        for client in self._brokers.values():
            client.close()
        self._brokers.clear()

    def __enter__(self) -> PartitionRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def refresh(self, topic: str) -> None:
        self._topics = self.controller.describe_topics([topic])
        self._cluster = self.controller.describe_cluster()

    def partitions(self, topic: str) -> list[int]:
        """The partition numbers of `topic` (raises BrookError when it does not exist)."""
        self.refresh(topic)
        assert self._topics is not None
        info = next((t for t in self._topics.topics if t.name == topic), None)
        if info is None or info.error_code:
            raise BrookError(f"topic {topic!r} does not exist", ErrorCode.unknown_topic_or_partition)
        return sorted(p.partition for p in info.partitions)

    def leader(self, topic: str, partition: int) -> PartitionLeader:
        if self._topics is None or self._cluster is None or not any(t.name == topic for t in self._topics.topics):
            self.refresh(topic)
        assert self._topics is not None and self._cluster is not None
        return find_leader(self._topics, self._cluster, topic, partition)

    def broker(self, address: str) -> BrokerClient:
        client = self._brokers.get(address)
        if client is None:
            client = BrokerClient(address, self.timeout_s)
            self._brokers[address] = client
        return client

    def _with_leader(self, topic: str, partition: int, send: Callable[[BrokerClient, PartitionLeader], Any]) -> Any:
        """Run `send` against the leader; on a leadership change or an unreachable leader refresh and retry."""
        last: BrookError | None = None
        for attempt in range(LEADER_RETRIES_MAX):
            if attempt:
                time.sleep(LEADER_RETRY_BACKOFF_S * attempt)
                self.refresh(topic)
            try:
                leader = self.leader(topic, partition)
                reply = send(self.broker(leader.address), leader)
            except BrookError as e:
                if e.code not in _LEADER_MOVED and e.code != ErrorCode.network_exception:
                    raise
                last = e
                continue
            if _code(reply.error_code) in _LEADER_MOVED:
                last = BrookError(_error_text(reply.error_code, reply.error_message), _code(reply.error_code))
                continue
            return reply
        assert last is not None
        raise BrookError(f"{topic}-{partition}: {last.message} (gave up after {LEADER_RETRIES_MAX} attempts)",
                         last.code)

    def produce(self, topic: str, partition: int, records: bytes, acks: int, timeout_ms: int) -> bpb.ProduceResponse:
        request = bpb.ProduceRequest(topic=topic, partition=partition, records=records, acks=acks,
                                     timeout_ms=timeout_ms)
        call_timeout_s = timeout_ms / 1000.0 + self.timeout_s
        return self._with_leader(topic, partition, lambda b, _: b.produce(request, call_timeout_s))

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 1024 * 1024,
              max_wait_ms: int = 500) -> bpb.FetchResponse:
        def send(b: BrokerClient, leader: PartitionLeader) -> bpb.FetchResponse:
            request = bpb.FetchRequest(topic=topic, partition=partition, offset=offset, max_bytes=max_bytes,
                                       max_wait_ms=max_wait_ms, min_bytes=1, current_leader_epoch=-1)
            return b.fetch(request, max_wait_ms / 1000.0 + self.timeout_s)
        return self._with_leader(topic, partition, send)

    def list_offset(self, topic: str, partition: int, timestamp: int) -> int:
        """-2 earliest, -1 latest, else the first offset with a timestamp >= `timestamp` ms."""
        request = bpb.ListOffsetsRequest(topic=topic, partition=partition, timestamp=timestamp)
        reply = self._with_leader(topic, partition, lambda b, _: b.list_offsets(request))
        if reply.error_code:
            raise BrookError(f"{topic}-{partition}: {_error_text(reply.error_code, reply.error_message)}",
                             _code(reply.error_code))
        return int(reply.offset)
