"""The partition-log contract the broker and the replica fetcher use, and its value types.

Two implementations: `storage.rocksdb_log` (durable, the only rocksdict user) and
`storage.memory_log` (the model in property tests, and a fast stand-in for broker unit tests).
Both must behave identically; tests/unit/storage checks that with Hypothesis.

Offsets: `log_start_offset <= high_watermark <= log_end_offset`. A read may start anywhere in
[log_start_offset, log_end_offset]; outside it is OFFSET_OUT_OF_RANGE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cluster.limits import LONG_MAX, RECORD_BATCH_BYTES_DEFAULT
from storage.batch import BatchHeader

if TYPE_CHECKING:
    from storage.producer_state import ProducerEntry
    from storage.segments import Segment
    from storage.txn_index import AbortedTxn

__all__ = [
    "AppendInfo",
    "EpochEntry",
    "LogConfig",
    "PartitionLog",
    "ProducerCheck",
    "ProducerCheckResult",
    "ReadResult",
]


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Topic-level log settings, with Kafka's names (dots become underscores) and defaults.

    -1 for retention_ms / retention_bytes means unlimited, as in Kafka.
    """

    segment_bytes: int = 1 << 30  # segment.bytes: 1 GiB
    segment_ms: int = 7 * 24 * 3600 * 1000  # segment.ms: 7 days
    retention_ms: int = 7 * 24 * 3600 * 1000  # retention.ms: 7 days
    retention_bytes: int = -1  # retention.bytes
    cleanup_policy: str = "delete"  # 'delete' | 'compact' | 'compact,delete'
    delete_retention_ms: int = 24 * 3600 * 1000  # delete.retention.ms: 1 day
    max_message_bytes: int = RECORD_BATCH_BYTES_DEFAULT  # max.message.bytes: 1 MiB + 12
    flush_messages: int = LONG_MAX  # flush.messages: never force a sync
    flush_ms: int = LONG_MAX  # flush.ms
    message_timestamp_type: str = "CreateTime"  # or 'LogAppendTime'

    def __post_init__(self) -> None:
        policies = set(self.cleanup_policy.replace(" ", "").split(","))
        if not policies or not policies <= {"delete", "compact"}:
            raise ValueError(f"cleanup.policy must be delete, compact or compact,delete: {self.cleanup_policy!r}")
        if self.segment_bytes < 14 or self.segment_ms < 1 or self.max_message_bytes < 0:
            raise ValueError("segment.bytes >= 14, segment.ms >= 1 and max.message.bytes >= 0 are required")
        if self.flush_messages < 1 or self.flush_ms < 0:
            raise ValueError("flush.messages >= 1 and flush.ms >= 0 are required")
        if self.message_timestamp_type not in ("CreateTime", "LogAppendTime"):
            raise ValueError(f"message.timestamp.type must be CreateTime or LogAppendTime: {self.message_timestamp_type!r}")

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy


@dataclass(frozen=True, slots=True)
class AppendInfo:
    """What an append did. `log_append_time_ms` is -1 unless the topic uses LogAppendTime."""

    first_offset: int
    last_offset: int
    log_append_time_ms: int
    batches: tuple[BatchHeader, ...]  # headers as stored (offsets and leader epoch assigned)
    size_bytes: int = 0


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Whole batches. `next_offset` is where the next read should start."""

    records: bytes
    first_offset: int
    next_offset: int


class ProducerCheckResult(enum.Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER_SEQUENCE = "out_of_order_sequence"
    INVALID_PRODUCER_EPOCH = "invalid_producer_epoch"


@dataclass(frozen=True, slots=True)
class ProducerCheck:
    """The answer to "may this idempotent batch be appended?". Offsets are set for DUPLICATE."""

    result: ProducerCheckResult
    first_offset: int = -1
    last_offset: int = -1


@dataclass(frozen=True, slots=True)
class EpochEntry:
    """One leader-epoch cache entry: `epoch` started at `start_offset`."""

    epoch: int
    start_offset: int


class PartitionLog(Protocol):
    """One partition replica's log. Not thread-safe: one caller (the broker's event loop) at a time."""

    @property
    def log_start_offset(self) -> int: ...
    @property
    def log_end_offset(self) -> int: ...
    @property
    def high_watermark(self) -> int: ...
    @property
    def config(self) -> LogConfig: ...

    def append_as_leader(self, records: bytes, leader_epoch: int, now_ms: int) -> AppendInfo: ...
    def append_as_follower(self, records: bytes) -> AppendInfo: ...
    def read(self, offset: int, max_bytes: int, upper_bound: int, min_one: bool = True) -> ReadResult: ...
    def set_high_watermark(self, high_watermark: int) -> None: ...
    def truncate_to(self, offset: int) -> None: ...
    def truncate_fully_and_start_at(self, offset: int) -> None: ...
    def latest_epoch(self) -> int: ...
    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]: ...
    def epoch_entries(self) -> list[EpochEntry]: ...
    def assign_epoch(self, epoch: int, start_offset: int) -> bool: ...
    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None: ...
    def delete_records_before(self, offset: int) -> int: ...
    def check_producer_batch(
        self, producer_id: int, producer_epoch: int, base_sequence: int, last_sequence: int
    ) -> ProducerCheck: ...
    def segments(self) -> list[Segment]: ...
    def producer_entries(self) -> dict[int, ProducerEntry]: ...
    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction (storage/txn_index.py), None if none."""
        ...
    def ongoing_transactions(self) -> dict[int, int]: ...
    def aborted_transactions(self, start_offset: int, upper_offset: int) -> list[AbortedTxn]: ...
    def apply_retention(self, now_ms: int) -> int: ...
    def maybe_compact(self, now_ms: int) -> int: ...
    def update_config(self, config: LogConfig) -> None: ...
    def flush_due(self) -> bool: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
