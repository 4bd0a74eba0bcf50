"""The group coordinator's typed operations: what goes in and what comes out, free of any wire format.

`broker/kafka/group_handlers.py` builds these from Kafka requests (one shape for every API version)
and turns the results into Kafka responses; `JoinResult` and `SyncResult` come from `state.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from broker.groups.offsets import OffsetValue
from cluster.errors import ErrorCode

__all__ = [
    "CommitPartition",
    "CommitRequest",
    "CoordinatorAnswer",
    "DescribedGroup",
    "DescribedMember",
    "FetchedOffsets",
    "HeartbeatRequest",
    "JoinRequest",
    "ListedGroup",
    "PartitionKey",
    "SyncRequest",
]

PartitionKey = tuple[str, int]  # (topic, partition)
# Per partition: the committed value (None: nothing committed) and that partition's error.
FetchedOffsets = dict[PartitionKey, tuple[OffsetValue | None, ErrorCode]]


@dataclass(frozen=True, slots=True)
class CoordinatorAnswer:
    """Where the coordinator of one key is (FindCoordinator)."""

    error: ErrorCode
    message: str | None = None
    node_id: int = -1
    host: str = ""
    port: int = -1


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    session_timeout_ms: int
    rebalance_timeout_ms: int  # negative: the session timeout
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]  # (name, metadata) in the member's order of preference
    require_known_member_id: bool  # KIP-394: answer MEMBER_ID_REQUIRED to a new member first
    client_id: str = ""
    client_host: str = ""


@dataclass(frozen=True, slots=True)
class SyncRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    assignments: Mapping[str, bytes] = field(default_factory=dict)  # only from the leader


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    generation_id: int


@dataclass(frozen=True, slots=True)
class CommitPartition:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str = ""


@dataclass(frozen=True, slots=True)
class CommitRequest:
    group_id: str
    generation_id: int  # -1 for a standalone (non-member) commit
    member_id: str
    group_instance_id: str | None
    partitions: tuple[CommitPartition, ...]


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes  # empty unless the group is Stable
    assignment: bytes  # empty unless the group is Stable


@dataclass(frozen=True, slots=True)
class DescribedGroup:
    group_id: str
    error: ErrorCode
    state: str  # "Dead" for an unknown group, "" when the coordinator could not answer
    protocol_type: str = ""
    protocol_data: str = ""  # the chosen protocol, once Stable
    members: tuple[DescribedMember, ...] = ()
