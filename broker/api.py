"""What the client-facing adapters (the Kafka listener, the gRPC BrokerService) need from a broker.

`BrokerCore` is implemented by `broker.core.Broker`; adapters depend on this protocol only, so they can
be tested against a fake. All results are data: an error is an `ErrorCode` in the result, never an
exception, so one bad partition never fails a whole request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cluster.errors import ErrorCode
from cluster.image import MetadataImage

LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2


@dataclass(frozen=True, slots=True)
class ProduceResult:
    error: ErrorCode = ErrorCode.none
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    message: str = ""


@dataclass(frozen=True, slots=True)
class FetchPartition:
    topic: str
    partition: int
    offset: int
    max_bytes: int
    current_leader_epoch: int = -1


@dataclass(frozen=True, slots=True)
class FetchResult:
    error: ErrorCode = ErrorCode.none
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: bytes = b""
    message: str = ""
    # read_committed only: (producer id, first offset) of each aborted transaction in the range read
    aborted_transactions: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class OffsetResult:
    error: ErrorCode = ErrorCode.none
    offset: int = -1
    timestamp: int = -1
    leader_epoch: int = -1


@dataclass(frozen=True, slots=True)
class EpochEndOffset:
    error: ErrorCode = ErrorCode.none
    leader_epoch: int = -1
    end_offset: int = -1


@dataclass(frozen=True, slots=True)
class ProducerIdResult:
    error: ErrorCode = ErrorCode.none
    producer_id: int = -1
    producer_epoch: int = -1


@dataclass(frozen=True, slots=True)
class NewTopic:
    name: str
    partitions: int = -1           # -1: num.partitions
    replication_factor: int = -1   # -1: default.replication.factor
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopicOutcome:
    name: str
    error: ErrorCode = ErrorCode.none
    message: str = ""
    topic_id: bytes = b""


@dataclass(frozen=True, slots=True)
class QuorumInfo:
    """The controller quorum as Kafka's DescribeQuorum shows it (the metadata log = `__cluster_metadata`-0).

    voters/observers: (node id, log end offset, -1 when unknown)."""

    error: ErrorCode
    message: str = ""
    leader_id: int = -1
    leader_epoch: int = -1
    high_watermark: int = -1
    voters: tuple[tuple[int, int], ...] = ()
    observers: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class NewPartitions:
    name: str
    count: int                                            # the new total
    assignments: tuple[tuple[int, ...], ...] | None = None  # replicas per new partition; None: spread


@dataclass(frozen=True, slots=True)
class ConfigValue:
    name: str
    value: str | None
    is_default: bool
    read_only: bool = False
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class ResourceConfigResult:
    resource_type: int
    resource_name: str
    error: ErrorCode = ErrorCode.none
    message: str = ""
    entries: Sequence[ConfigValue] = ()


@dataclass(frozen=True, slots=True)
class AlterConfigOp:
    name: str
    value: str | None
    op: int  # 0 SET, 1 DELETE (IncrementalAlterConfigs)


@dataclass(frozen=True, slots=True)
class ElectionOutcome:
    topic: str
    partition: int
    error: ErrorCode = ErrorCode.none
    message: str = ""


@dataclass(frozen=True, slots=True)
class DeleteRecordsResult:
    """DeleteRecords of one partition: the low watermark is the lowest log start offset of the
    leader and its ISR followers once they all reached the requested offset."""

    error: ErrorCode = ErrorCode.none
    low_watermark: int = -1
    message: str = ""


@dataclass(frozen=True, slots=True)
class LogDirPartition:
    topic: str
    partition: int
    size_bytes: int
    offset_lag: int = 0


@dataclass(frozen=True, slots=True)
class LogDirInfo:
    """One log directory of this broker (Kafka's DescribeLogDirs)."""

    path: str
    error: ErrorCode = ErrorCode.none
    partitions: tuple[LogDirPartition, ...] = ()
    total_bytes: int = -1
    usable_bytes: int = -1


@dataclass(frozen=True, slots=True)
class ProducerInfo:
    producer_id: int
    producer_epoch: int
    last_sequence: int = -1
    last_timestamp: int = -1
    current_txn_start_offset: int = -1  # the first offset of its open transaction (-1: none)


@dataclass(frozen=True, slots=True)
class ProducersResult:
    """The active idempotent producers of a partition this broker leads (DescribeProducers)."""

    error: ErrorCode = ErrorCode.none
    message: str = ""
    producers: tuple[ProducerInfo, ...] = ()


class BrokerCore(Protocol):
    """The broker as the client adapters see it."""

    broker_id: int

    def image(self) -> MetadataImage:
        """The latest metadata image this broker has applied."""
        ...

    def advertised_kafka_address(self, broker_id: int, listener: str = "") -> tuple[str, int] | None:
        """Where clients of Kafka listener `listener` reach `broker_id` ("" = its first listener)."""
        ...

    def controller_id(self) -> int:
        """The active controller's node id, or -1 when unknown."""
        ...

    def server_config(self, name: str) -> object:
        """A typed server property (e.g. 'auto.create.topics.enable', 'socket.request.max.bytes')."""
        ...

    async def produce(self, topic: str, partition: int, records: bytes, acks: int,
                      timeout_ms: int) -> ProduceResult: ...

    async def fetch(self, partitions: Sequence[FetchPartition], max_wait_ms: int, min_bytes: int,
                    max_bytes: int, read_committed: bool = False) -> list[FetchResult]:
        """read_committed: up to the last stable offset, with the aborted transactions of the range."""
        ...

    def list_offsets(self, topic: str, partition: int, timestamp: int,
                     current_leader_epoch: int = -1, read_committed: bool = False) -> OffsetResult: ...

    async def append_marker(self, topic: str, partition: int, producer_id: int, producer_epoch: int,
                            coordinator_epoch: int, commit: bool, timeout_ms: int) -> ErrorCode:
        """Write a transaction marker as the partition's leader (acks=-1); the coordinator calls it."""
        ...

    def partition_transactions(self, topic: str, partition: int) -> dict[int, int] | None:
        """Open transactions of a led partition (producer id -> first offset); None when not leader."""
        ...

    def offset_for_leader_epoch(self, topic: str, partition: int, current_leader_epoch: int,
                                leader_epoch: int) -> EpochEndOffset: ...

    async def init_producer_id(self) -> ProducerIdResult: ...

    async def create_topics(self, topics: Sequence[NewTopic], validate_only: bool,
                            timeout_ms: int) -> list[TopicOutcome]: ...

    async def delete_topics(self, names: Sequence[str], timeout_ms: int) -> list[TopicOutcome]: ...

    async def describe_quorum(self) -> QuorumInfo:
        """The controller quorum (Kafka's DescribeQuorum), asked of the controllers."""
        ...

    async def create_partitions(self, topics: Sequence[NewPartitions], validate_only: bool,
                                timeout_ms: int) -> list[TopicOutcome]:
        """Grow each topic to `count` partitions (Kafka's CreatePartitions), forwarded to the controller."""
        ...

    async def describe_configs(self, resources: Sequence[tuple[int, str]]) -> list[ResourceConfigResult]: ...

    async def alter_configs(self, resource_type: int, resource_name: str, ops: Sequence[AlterConfigOp],
                            validate_only: bool) -> ResourceConfigResult: ...

    async def elect_leaders(self, election_type: int,
                            partitions: Sequence[tuple[str, int]] | None) -> list[ElectionOutcome]:
        """election_type: 0 preferred, 1 unclean (Kafka's ElectLeaders). None = every partition."""
        ...

    async def admin_call(self, method: str, request: object) -> object | None:
        """Forward an AdminService request (brookpb.admin_pb2) to the active controller; None when no
        controller answers. The Kafka listener's SCRAM and ACL APIs use it."""
        ...

    async def delete_records(self, topic: str, partition: int, offset: int, timeout_ms: int) -> DeleteRecordsResult:
        """Move the log start of a partition this broker leads to `offset` (-1: the high watermark),
        then wait (bounded by `timeout_ms`) until the ISR followers have moved theirs."""
        ...

    def describe_log_dirs(self, wanted: Mapping[str, Sequence[int]] | None) -> list[LogDirInfo]:
        """This broker's log directories and the replicas in them (`wanted`: topic -> partitions, an
        empty sequence meaning every partition of the topic; None: everything)."""
        ...

    def describe_producers(self, topic: str, partition: int) -> ProducersResult: ...

    async def ensure_topic(self, name: str) -> ErrorCode:
        """Create `name` with the defaults if auto.create.topics.enable (Metadata requests)."""
        ...

    def is_leader(self, topic: str, partition: int) -> bool: ...

    def read_local(self, topic: str, partition: int, offset: int, max_bytes: int) -> tuple[bytes, int]:
        """Read committed batches (up to the HW) of a partition this broker leads: (records, next offset).

        The group coordinator loads `__consumer_offsets` with it.
        """
        ...

    def add_leadership_listener(self, callback: object) -> None:
        """callback(topic: str, partition: int, is_leader: bool, leader_epoch: int) on every change."""
        ...
