"""How the transaction coordinator reaches partition leaders with markers (the I/O shell).

A marker for a partition this broker leads is written through the core; for any other leader it
goes over the BrokerService `WriteTxnMarkers` gRPC call (the inter-broker transport, with mTLS when
configured), one channel per leader broker kept until the broker's gRPC address changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from brookpb import broker_pb2 as bpb
from brookpb import broker_pb2_grpc
from cluster.errors import ErrorCode
from cluster.grpcutil import aio_channel

__all__ = ["MarkerClient"]

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 15.0
MARKER_TIMEOUT_MS = 10_000


class MarkerClient:
    """`send(leader, topic, partitions, producer id, epoch, coordinator epoch, commit)` -> errors."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self._stubs: dict[int, tuple[str, Any, Any]] = {}  # broker id -> (address, channel, stub)

    async def send(self, leader: int, topic: str, partitions: Sequence[int], producer_id: int, producer_epoch: int,
                   coordinator_epoch: int, commit: bool) -> list[ErrorCode]:
        if leader == self.core.broker_id:
            return list(await asyncio.gather(*(
                self.core.append_marker(topic, index, producer_id, producer_epoch, coordinator_epoch, commit,
                                        MARKER_TIMEOUT_MS) for index in partitions)))
        broker = self.core.image().brokers.get(leader)
        if broker is None:
            return [ErrorCode.not_leader_or_follower] * len(partitions)
        stub = self._stub(leader, broker.grpc_address)
        request = bpb.WriteTxnMarkersRequest(producer_id=producer_id, producer_epoch=producer_epoch,
                                             coordinator_epoch=coordinator_epoch, commit=commit, topic=topic,
                                             partitions=list(partitions), timeout_ms=MARKER_TIMEOUT_MS)
        reply = await stub.WriteTxnMarkers(request, timeout=CALL_TIMEOUT_S)
        errors = [ErrorCode(code) for code in reply.error_codes]
        if len(errors) != len(partitions):
            return [ErrorCode.unknown_server_error] * len(partitions)
        return errors

    def _stub(self, broker_id: int, address: str) -> Any:
        known = self._stubs.get(broker_id)
        if known is not None and known[0] == address:
            return known[2]
        if known is not None:
            asyncio.get_running_loop().create_task(known[1].close(grace=None))
        channel = aio_channel(address)
        stub = broker_pb2_grpc.BrokerServiceStub(channel)
        self._stubs[broker_id] = (address, channel, stub)
        return stub

    async def close(self) -> None:
        for _, channel, _ in self._stubs.values():
            await channel.close(grace=None)
        self._stubs.clear()
