"""Broker registration, broker epochs, heartbeats and fencing: pure functions image -> records.

Kafka `ClusterControlManager` + the broker-state half of `ReplicationControlManager`. A broker epoch
is the metadata offset of the broker's RegisterBroker record, so it grows with every registration
and a request carrying an older one is recognisably stale. Heartbeat *times* are soft state and live
in `controller.heartbeats`; this module only decides what a heartbeat or a stale session changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cluster.errors import ErrorCode
from cluster.image import MetadataImage, replay_all
from cluster.records import BrokerListener, Record, RegisterBroker
from controller.replication import (
    LogEndOffsets,
    controlled_shutdown_records,
    fence_broker_records,
    shutdown_complete,
    unfence_broker_records,
)


def _never(_topic: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    broker_id: int
    incarnation_id: str
    host: str
    kafka_port: int
    grpc_port: int
    rack: str = ""
    listeners: tuple[BrokerListener, ...] = ()


@dataclass(frozen=True, slots=True)
class HeartbeatDecision:
    fenced: bool
    shutdown_ready: bool


def register_broker(image: MetadataImage, request: RegisterRequest, *,
                    unclean_enabled: Callable[[str], bool] = _never,
                    log_end_offsets: LogEndOffsets | None = None) -> tuple[list[Record], int]:
    """Records for a (re-)registration and the broker epoch it gets.

    A retry from the same incarnation gets its current epoch and no records. A new incarnation of a
    known broker is first fenced out of the old registration's ISRs and leaderships (those records
    come first), then registered with a new epoch = the offset its RegisterBroker record will get.
    A new registration starts fenced; a heartbeat unfences it once it has caught up.
    """
    existing = image.brokers.get(request.broker_id)
    if existing is not None and existing.incarnation_id == request.incarnation_id:
        return [], existing.broker_epoch
    records: list[Record] = []
    if existing is not None:
        records.extend(fence_broker_records(image, request.broker_id, unclean_enabled=unclean_enabled,
                                            log_end_offsets=log_end_offsets))
    epoch = image.offset + 1 + len(records)
    records.append(RegisterBroker(request.broker_id, epoch, request.incarnation_id, request.host,
                                  request.kafka_port, request.grpc_port, request.rack, request.listeners))
    return records, epoch


def check_broker_epoch(image: MetadataImage, broker_id: int, broker_epoch: int) -> ErrorCode:
    """NONE, BROKER_ID_NOT_REGISTERED, or STALE_BROKER_EPOCH. Fenced brokers pass (they must heartbeat)."""
    broker = image.brokers.get(broker_id)
    if broker is None:
        return ErrorCode.broker_id_not_registered
    if broker.broker_epoch != broker_epoch:
        return ErrorCode.stale_broker_epoch
    return ErrorCode.none


def heartbeat_records(image: MetadataImage, broker_id: int, broker_epoch: int, broker_metadata_offset: int,
                      want_shutdown: bool, *, registration_offset_caught_up: bool | None = None,
                      unclean_enabled: Callable[[str], bool] = _never,
                      log_end_offsets: LogEndOffsets | None = None) -> tuple[list[Record], HeartbeatDecision]:
    """What one broker heartbeat changes, and what to tell the broker.

    - want_shutdown: a fenced broker may go at once; an unfenced one gets `controlled_shutdown_records`
      and may go when `shutdown_complete` holds on the image after them.
    - otherwise a fenced broker is unfenced once it has caught up with metadata up to its own
      registration (`registration_offset_caught_up`, by default: its metadata offset >= its epoch).
    A broker that is unknown or carries another epoch changes nothing and is told it is fenced
    (the shell answers it with `check_broker_epoch` first).
    """
    if check_broker_epoch(image, broker_id, broker_epoch) != ErrorCode.none:
        return [], HeartbeatDecision(fenced=True, shutdown_ready=True)
    broker = image.brokers[broker_id]
    if want_shutdown:
        if broker.fenced:
            return [], HeartbeatDecision(fenced=True, shutdown_ready=True)
        records = controlled_shutdown_records(image, broker_id)
        after = replay_all(image, records)
        return records, HeartbeatDecision(fenced=False, shutdown_ready=shutdown_complete(after, broker_id))
    if not broker.fenced:
        return [], HeartbeatDecision(fenced=False, shutdown_ready=False)
    caught_up = (broker_metadata_offset >= broker.broker_epoch if registration_offset_caught_up is None
                 else registration_offset_caught_up)
    if not caught_up:
        return [], HeartbeatDecision(fenced=True, shutdown_ready=False)
    records = unfence_broker_records(image, broker_id, unclean_enabled=unclean_enabled,
                                     log_end_offsets=log_end_offsets)
    return records, HeartbeatDecision(fenced=False, shutdown_ready=False)


def fence_stale_broker(image: MetadataImage, stale_broker_ids: Sequence[int], *,
                       unclean_enabled: Callable[[str], bool],
                       log_end_offsets: LogEndOffsets | None = None) -> list[Record]:
    """Fence ONE broker: the first listed that is registered and not fenced (Kafka maybeFenceOneStaleBroker).

    One per call, so each fencing and its elections are visible before the next is decided.
    """
    for broker_id in stale_broker_ids:
        broker = image.brokers.get(broker_id)
        if broker is not None and not broker.fenced:
            return fence_broker_records(image, broker_id, unclean_enabled=unclean_enabled,
                                        log_end_offsets=log_end_offsets)
    return []


__all__ = [
    "HeartbeatDecision",
    "RegisterRequest",
    "check_broker_epoch",
    "fence_stale_broker",
    "heartbeat_records",
    "register_broker",
]
