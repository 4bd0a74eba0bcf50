"""Brook's shared limits, one definition each, and the relations between them checked at import.

A limit lives here when more than one module uses it or when it must hold a relation to another
limit (a fetch reply must fit in a gRPC message...). Limits used by one module alone stay next to
their use, with their reason. Names put the unit and the qualifier last (`GRPC_FETCH_BYTES_MAX`);
`*_DEFAULT` is the default of a limit an operator may configure (the config table uses it).

Importing this module raises `LimitRelationError` if a relation below is broken, so a change that
breaks one fails every test and every process at start, not in production under load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "CLIENT_FETCH_BYTES_MAX",
    "CLIENT_PRODUCE_BATCH_BYTES_MAX",
    "GRPC_FETCH_BYTES_MAX",
    "GRPC_FETCH_WAIT_MS_MAX",
    "GRPC_MESSAGE_BYTES_MAX",
    "GRPC_REPLY_OVERHEAD_BYTES_MAX",
    "INT_MAX",
    "INT_MIN",
    "KAFKA_REQUEST_BYTES_DEFAULT",
    "LONG_MAX",
    "LONG_MIN",
    "OFFSETS_WRITE_BATCH_BYTES_MAX",
    "RECORD_BATCH_BYTES_DEFAULT",
    "RELATIONS",
    "REPLICA_FETCH_BYTES_MAX",
    "REPLICA_FETCH_PARTITION_BYTES_MAX",
    "LimitRelationError",
    "Relation",
    "check_relations",
    "relation_violations",
]

_KiB = 1024
_MiB = 1024 * 1024

# -- Java's integer ranges: Kafka's int32 / int64 protocol and config types --------------------------
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# LONG_MAX also means "never" (flush.messages / flush.ms: never force a sync).
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

# -- gRPC -------------------------------------------------------------------------------------------
# Largest gRPC message a Brook server or client sends or accepts (gRPC's own default, 4 MiB, is below
# a replication reply and a full metadata image). Default of `grpc.max.message.bytes`.
GRPC_MESSAGE_BYTES_MAX = 64 * _MiB
# Headroom for what a reply carries besides record bytes: protobuf tags and lengths, per-partition
# fields (offsets, epochs, error strings) of every partition of one ReplicaFetch.
GRPC_REPLY_OVERHEAD_BYTES_MAX = 1 * _MiB

# -- What a broker serves over gRPC (broker/grpc_service.py clips every request to these) -----------
# Record bytes of one Fetch / ReplicaFetch / ReadReplica reply.
GRPC_FETCH_BYTES_MAX = 32 * _MiB
# A long-poll fetch waits at most this long, whatever it asks.
GRPC_FETCH_WAIT_MS_MAX = 30_000

# -- Replication: what a follower asks for (broker/fetcher.py) --------------------------------------
# One replication round trip: a large message amortises gRPC's ~0.5 ms per-message cost in Python.
REPLICA_FETCH_BYTES_MAX = 8 * _MiB
# Per partition of that round trip, so one busy partition does not starve the others.
REPLICA_FETCH_PARTITION_BYTES_MAX = 1 * _MiB

# -- Tools reading and writing over gRPC: `brook consume`/`produce`, `brook perf`, the chaos sampler -
# Bytes one read asks for.
CLIENT_FETCH_BYTES_MAX = 1 * _MiB
# `brook produce` sends its pending lines once they reach this many bytes (a few hundred KiB per gRPC
# message amortise the per-message cost without big memory spikes).
CLIENT_PRODUCE_BATCH_BYTES_MAX = 512 * _KiB

# -- Consumer groups (broker/groups/offsets_partition.py) ------------------------------------------
# One append to __consumer_offsets carries at most this many bytes of queued commits.
OFFSETS_WRITE_BATCH_BYTES_MAX = 512 * _KiB

# -- Kafka defaults of configurable limits ---------------------------------------------------------
# `message.max.bytes` / topic `max.message.bytes`: the largest record batch a broker accepts (1 MiB + 12).
RECORD_BATCH_BYTES_DEFAULT = 1_048_588
# `socket.request.max.bytes`: the largest Kafka request frame a broker reads (100 MiB).
KAFKA_REQUEST_BYTES_DEFAULT = 104_857_600


class LimitRelationError(Exception):
    """A relation between limits does not hold (raised when this module is imported)."""


@dataclass(frozen=True, slots=True)
class Relation:
    """A relation that must hold between limits, with the reason it must."""

    text: str
    holds: Callable[[Mapping[str, int]], bool]
    reason: str


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "GRPC_FETCH_BYTES_MAX + RECORD_BATCH_BYTES_DEFAULT + GRPC_REPLY_OVERHEAD_BYTES_MAX <= GRPC_MESSAGE_BYTES_MAX",
        lambda v: v["GRPC_FETCH_BYTES_MAX"] + v["RECORD_BATCH_BYTES_DEFAULT"] + v["GRPC_REPLY_OVERHEAD_BYTES_MAX"]
        <= v["GRPC_MESSAGE_BYTES_MAX"],
        "a fetch reply (which may exceed its byte bound by one whole batch, as in Kafka) must fit in one "
        "gRPC message, or the follower's fetch fails with RESOURCE_EXHAUSTED forever",
    ),
    Relation(
        "REPLICA_FETCH_PARTITION_BYTES_MAX <= REPLICA_FETCH_BYTES_MAX",
        lambda v: v["REPLICA_FETCH_PARTITION_BYTES_MAX"] <= v["REPLICA_FETCH_BYTES_MAX"],
        "one partition's share cannot exceed the whole round trip",
    ),
    Relation(
        "REPLICA_FETCH_BYTES_MAX <= GRPC_FETCH_BYTES_MAX",
        lambda v: v["REPLICA_FETCH_BYTES_MAX"] <= v["GRPC_FETCH_BYTES_MAX"],
        "the leader clips a follower's request to what it serves; asking for more only hides the real bound",
    ),
    Relation(
        "CLIENT_FETCH_BYTES_MAX <= GRPC_FETCH_BYTES_MAX",
        lambda v: v["CLIENT_FETCH_BYTES_MAX"] <= v["GRPC_FETCH_BYTES_MAX"],
        "the broker clips a tool's read to what it serves",
    ),
    Relation(
        "CLIENT_PRODUCE_BATCH_BYTES_MAX < RECORD_BATCH_BYTES_DEFAULT",
        lambda v: v["CLIENT_PRODUCE_BATCH_BYTES_MAX"] < v["RECORD_BATCH_BYTES_DEFAULT"],
        "`brook produce` must send its batch before a topic with the default max.message.bytes rejects it",
    ),
    Relation(
        "CLIENT_PRODUCE_BATCH_BYTES_MAX + GRPC_REPLY_OVERHEAD_BYTES_MAX <= GRPC_MESSAGE_BYTES_MAX",
        lambda v: v["CLIENT_PRODUCE_BATCH_BYTES_MAX"] + v["GRPC_REPLY_OVERHEAD_BYTES_MAX"]
        <= v["GRPC_MESSAGE_BYTES_MAX"],
        "one produce request must fit in one gRPC message",
    ),
    Relation(
        "OFFSETS_WRITE_BATCH_BYTES_MAX < RECORD_BATCH_BYTES_DEFAULT",
        lambda v: v["OFFSETS_WRITE_BATCH_BYTES_MAX"] < v["RECORD_BATCH_BYTES_DEFAULT"],
        "a batch of queued offset commits must be accepted by __consumer_offsets (default max.message.bytes)",
    ),
    Relation(
        "RECORD_BATCH_BYTES_DEFAULT <= KAFKA_REQUEST_BYTES_DEFAULT",
        lambda v: v["RECORD_BATCH_BYTES_DEFAULT"] <= v["KAFKA_REQUEST_BYTES_DEFAULT"],
        "a batch the broker accepts must fit in a request it reads (the config check of "
        "message.max.bytes <= socket.request.max.bytes, for the defaults)",
    ),
    Relation(
        "4 MiB <= GRPC_MESSAGE_BYTES_MAX <= INT_MAX",
        lambda v: 4 * _MiB <= v["GRPC_MESSAGE_BYTES_MAX"] <= v["INT_MAX"],
        "gRPC takes the limit as an int32, and a full metadata image needs more than its 4 MiB default",
    ),
)


def relation_violations(values: Mapping[str, int], relations: tuple[Relation, ...] = RELATIONS) -> list[str]:
    """The relations that do not hold for `values` (name -> limit), each as 'relation: reason'."""
    return [f"{r.text}: {r.reason}" for r in relations if not r.holds(values)]


def check_relations(values: Mapping[str, int]) -> None:
    """Raise `LimitRelationError` naming every relation that does not hold for `values`."""
    broken = relation_violations(values)
    if broken:
        raise LimitRelationError("limits break their relations: " + "; ".join(broken))


def current_values() -> dict[str, int]:
    """The limits of this module by name."""
    return {name: value for name, value in globals().items()
            if name.isupper() and not name.startswith("_") and isinstance(value, int)}


check_relations(current_values())
