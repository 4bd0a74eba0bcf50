"""The chaos workload's history: every send, its outcome, every read, and invariant samples.

Pure data: the workload and the nemesis append to a `History` from their threads (under one lock);
the checker reads it after the run. Times are seconds on the runner's monotonic clock, relative to
the start of the run, so a report can line faults up with acknowledgements.

Outcomes follow Jepsen's vocabulary:
    ok       the broker acknowledged the write at (partition, offset) with acks=all;
    failed   the write certainly did not happen (the client never sent it);
    unknown  it may or may not have happened (a timeout, a crash, a purge of an in-flight request).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "DRAIN",
    "SWEEP_PREFIX",
    "Assignment",
    "History",
    "Outcome",
    "OutcomeKind",
    "PartitionSample",
    "Read",
    "ReplicaSample",
    "Send",
    "is_group_reader",
]

# The reader name of the final drain (a group-less read of every partition from offset 0).
DRAIN = "drain"
# The reader names of the replica sweep: "sweep-<broker>" read every partition while <broker> led it alone.
SWEEP_PREFIX = "sweep-"


def is_group_reader(reader: str) -> bool:
    """A consumer-group reader (not the final drain, not a replica sweep read)."""
    return reader != DRAIN and not reader.startswith(SWEEP_PREFIX)


class OutcomeKind(StrEnum):
    ok = "ok"
    failed = "failed"
    unknown = "unknown"


@dataclass(frozen=True, slots=True)
class Send:
    """A send was invoked with `value` (unique per run) by writer `writer` at `time_s`.

    `acks`: -1 (acks=all, idempotent: its acknowledgement is a promise) or 1 (acks=1: its losses and
    duplicates are allowed; it only makes divergent copies visible)."""

    value: str
    writer: int
    time_s: float
    acks: int = -1


@dataclass(frozen=True, slots=True)
class Outcome:
    """The delivery report of `value`: ok at (partition, offset), failed, or unknown."""

    value: str
    kind: OutcomeKind
    time_s: float
    partition: int = -1
    offset: int = -1
    error: str = ""


@dataclass(frozen=True, slots=True)
class Read:
    """`reader` saw `value` at (partition, offset).

    `assignment` numbers the reader's uninterrupted assignments: it changes on every rebalance
    (assign, revoke, lost), so offsets only have to increase within one (reader, assignment).
    """

    reader: str
    assignment: int
    partition: int
    offset: int
    value: str
    time_s: float


@dataclass(frozen=True, slots=True)
class Assignment:
    """`reader` started assignment number `assignment` with `partitions` (empty on revoke/lost)."""

    reader: str
    assignment: int
    partitions: tuple[int, ...]
    time_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class ReplicaSample:
    """One replica's state as its broker reported it (BrokerService.ReplicaStates).

    `incarnation` identifies the broker process (its PID): HW is only required to be monotonic
    within one process, since a restarted broker recovers its HW from a checkpoint.
    `divergences_after_truncation`: the broker's safety-net tripwire for this replica since the
    process started (broker/fetcher.py; 0 in a correct build).
    """

    time_s: float
    broker_id: int
    incarnation: int
    topic: str
    partition: int
    is_leader: bool
    leader_epoch: int
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    isr: tuple[int, ...]
    divergences_after_truncation: int = 0


@dataclass(frozen=True, slots=True)
class PartitionSample:
    """One partition as the active controller described it (AdminService.DescribeTopics)."""

    time_s: float
    topic: str
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass
class History:
    """Everything observed during one run. Thread-safe appends; read it only after the run."""

    sends: list[Send] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    replica_samples: list[ReplicaSample] = field(default_factory=list)
    partition_samples: list[PartitionSample] = field(default_factory=list)
    # partition -> the high watermark the final drain read up to (absent: that drain did not finish).
    drained_to: dict[int, int] = field(default_factory=dict)
    # sweep reader ("sweep-<broker>") -> partition -> the HW it read up to while <broker> led alone.
    swept_to: dict[str, dict[int, int]] = field(default_factory=dict)
    # partition -> when the nemesis first forced an unclean election of it: from then on, records only
    # one replica had (never acknowledged with acks=all) may legitimately be replaced or re-read.
    unclean_since: dict[int, float] = field(default_factory=dict)
    # partition -> the idempotent batches of one replica below the HW the replicas were compared at,
    # in offset order: (base offset, last offset, producer id, producer epoch, base sequence).
    idempotent_batches: dict[int, list[tuple[int, int, int, int, int]]] = field(default_factory=dict)
    partitions: tuple[int, ...] = ()
    # when the faults started: a tripwire count a process already showed before then (a cluster the
    # run adopted, tripped in an earlier run) is that run's, not this one's.
    fault_start_s: float = 0.0
    # every broker's replica states read once more after the sweep (its tripwire counts only: the
    # drain, the convergence and the sweep move leadership and may trip it after the sampler stopped).
    final_replica_samples: list[ReplicaSample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def send(self, item: Send) -> None:
        with self._lock:
            self.sends.append(item)

    def outcome(self, item: Outcome) -> None:
        with self._lock:
            self.outcomes.append(item)

    def read(self, item: Read) -> None:
        with self._lock:
            self.reads.append(item)

    def assign(self, item: Assignment) -> None:
        with self._lock:
            self.assignments.append(item)

    def samples(self, replicas: Iterable[ReplicaSample] = (), partitions: Iterable[PartitionSample] = ()) -> None:
        with self._lock:
            self.replica_samples.extend(replicas)
            self.partition_samples.extend(partitions)

    def drained(self, partition: int, high_watermark: int, reader: str = DRAIN) -> None:
        with self._lock:
            if reader == DRAIN:
                self.drained_to[partition] = high_watermark
            else:
                self.swept_to.setdefault(reader, {})[partition] = high_watermark
