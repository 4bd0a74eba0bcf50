"""BrokerService over gRPC: the CLI/gRPC-client data plane and replication between brokers.

A thin adapter: requests become calls on the Broker; errors become `error_code` fields.
"""

from __future__ import annotations

import logging
from typing import Any

from broker.api import FetchPartition
from broker.replica_manager import ReplicaFetchItem
from brookpb import broker_pb2 as bpb
from brookpb import broker_pb2_grpc
from cluster.errors import ErrorCode, LogError
from cluster.internal_topics import is_internal
from cluster.limits import GRPC_FETCH_BYTES_MAX, GRPC_FETCH_WAIT_MS_MAX

log = logging.getLogger("brook.broker.grpc")

# session_id 0 with this epoch: a sessionless full fetch (Kafka's FINAL_EPOCH); session_id 0 with
# epoch 0 opens an incremental fetch session (broker/fetch_session.py).
SESSIONLESS_EPOCH = -1



class BrokerServicer(broker_pb2_grpc.BrokerServiceServicer):
    def __init__(self, broker: Any) -> None:
        self.b = broker

    def _leader_hint(self, topic: str, partition: int) -> tuple[int, int]:
        image = self.b.image()
        t = image.topic_by_name(topic)
        reg = t.partitions.get(partition) if t else None
        return (reg.leader, reg.leader_epoch) if reg else (-1, -1)

    async def Produce(self, request, context):
        timeout_ms = request.timeout_ms if request.timeout_ms > 0 else 30_000
        if is_internal(request.topic):  # only the group coordinator appends there, through the core
            return bpb.ProduceResponse(error_code=int(ErrorCode.invalid_topic_exception),
                                       error_message=f"cannot append to internal topic {request.topic}")
        result = await self.b.produce(request.topic, request.partition, request.records, request.acks, timeout_ms)
        reply = bpb.ProduceResponse(error_code=int(result.error), error_message=result.message,
                                    base_offset=result.base_offset, log_append_time_ms=result.log_append_time_ms,
                                    log_start_offset=result.log_start_offset)
        if result.error != ErrorCode.none:
            reply.leader_id, reply.leader_epoch = self._leader_hint(request.topic, request.partition)
            if not reply.error_message:
                reply.error_message = result.error.name
        return reply

    async def Fetch(self, request, context):
        max_bytes = min(max(request.max_bytes, 1), GRPC_FETCH_BYTES_MAX) if request.max_bytes else 1024 * 1024
        wait = min(max(request.max_wait_ms, 0), GRPC_FETCH_WAIT_MS_MAX)
        [result] = await self.b.fetch(
            [FetchPartition(request.topic, request.partition, request.offset, max_bytes,
                            request.current_leader_epoch if request.current_leader_epoch else -1)],
            wait, max(request.min_bytes, 1), max_bytes)
        reply = bpb.FetchResponse(error_code=int(result.error), error_message=result.message,
                                  high_watermark=result.high_watermark, log_start_offset=result.log_start_offset,
                                  records=result.records)
        if result.error != ErrorCode.none:
            reply.leader_id, reply.leader_epoch = self._leader_hint(request.topic, request.partition)
            reply.error_message = reply.error_message or result.error.name
        return reply

    async def ListOffsets(self, request, context):
        r = await self.b.list_offsets_async(request.topic, request.partition, request.timestamp)
        reply = bpb.ListOffsetsResponse(error_code=int(r.error), offset=r.offset, timestamp=r.timestamp,
                                        leader_epoch=r.leader_epoch)
        if r.error != ErrorCode.none:
            reply.leader_id, _ = self._leader_hint(request.topic, request.partition)
            reply.error_message = r.error.name
        return reply

    async def InitProducerId(self, request, context):
        r = await self.b.init_producer_id()
        return bpb.InitProducerIdResponse(error_code=int(r.error), producer_id=r.producer_id,
                                          producer_epoch=r.producer_epoch)

    async def ReplicaFetch(self, request, context):
        reply = bpb.ReplicaFetchResponse()
        image = self.b.image()
        follower = image.brokers.get(request.replica_id)
        if follower is None or follower.broker_epoch != request.broker_epoch:
            # A fetch from a stale incarnation must not move the HW.
            reply.error_code = int(ErrorCode.stale_broker_epoch)
            reply.error_message = f"broker {request.replica_id} epoch {request.broker_epoch} is not current"
            return reply
        items = [ReplicaFetchItem(p.topic_id, p.partition, p.fetch_offset, p.current_leader_epoch,
                                  p.last_fetched_epoch, p.log_start_offset)
                 for p in request.partitions]
        if request.session_id != 0 or request.session_epoch != SESSIONLESS_EPOCH:
            error, reply.session_id, outcomes = await self.b.leader_side.replica_fetch_session(
                request.replica_id, request.broker_epoch, request.session_id, request.session_epoch, items,
                [(f.topic_id, f.partition) for f in request.forgotten],
                min(request.max_wait_ms, GRPC_FETCH_WAIT_MS_MAX),
                min(request.max_bytes or GRPC_FETCH_BYTES_MAX, GRPC_FETCH_BYTES_MAX),
                min(request.partition_max_bytes or GRPC_FETCH_BYTES_MAX, GRPC_FETCH_BYTES_MAX))
            if error != ErrorCode.none:
                reply.error_code, reply.error_message = int(error), error.name
                return reply
            self._add_outcomes(reply, outcomes)
            return reply
        outcomes = await self.b.leader_side.replica_fetch(
            request.replica_id, items, min(request.max_wait_ms, GRPC_FETCH_WAIT_MS_MAX), request.min_bytes,
            min(request.max_bytes or GRPC_FETCH_BYTES_MAX, GRPC_FETCH_BYTES_MAX),
            min(request.partition_max_bytes or GRPC_FETCH_BYTES_MAX, GRPC_FETCH_BYTES_MAX),
            broker_epoch=request.broker_epoch)
        self._add_outcomes(reply, outcomes)
        return reply

    async def ReplicaFetchStream(self, request_iterator, context):
        """ReplicaFetch for each request message of the stream, answered in order."""
        async for request in request_iterator:
            yield await self.ReplicaFetch(request, context)

    @staticmethod
    def _add_outcomes(reply: Any, outcomes: Any) -> None:
        for o in outcomes:
            result = reply.partitions.add(topic_id=o.topic_id, partition=o.partition, error_code=int(o.error),
                                          high_watermark=o.high_watermark, log_start_offset=o.log_start_offset,
                                          log_end_offset=o.log_end_offset, records=o.records)
            if o.diverging_epoch >= 0:
                result.diverging_epoch.epoch = o.diverging_epoch
                result.diverging_epoch.end_offset = o.diverging_end_offset

    async def OffsetsForLeaderEpoch(self, request, context):
        reply = bpb.OffsetsForLeaderEpochResponse()
        for p in request.partitions:
            error, epoch, end = self.b.leader_side.end_offset_for_epoch(p.topic_id, p.partition,
                                                                        p.current_leader_epoch, p.leader_epoch)
            reply.partitions.add(topic_id=p.topic_id, partition=p.partition, error_code=int(error),
                                 leader_epoch=epoch, end_offset=end)
        return reply

    async def ReplicaStates(self, request, context):
        image = self.b.image()
        me = image.brokers.get(self.b.broker_id)
        reply = bpb.ReplicaStateResponse(broker_id=self.b.broker_id, metadata_offset=image.offset,
                                         fenced=me is None or me.fenced)
        for p in sorted(self.b.replicas.partitions.values(), key=lambda p: (p.topic, p.index)):
            state = p.leader
            reply.replicas.add(topic=p.topic, topic_id=p.topic_id, partition=p.index, is_leader=state is not None,
                               leader_epoch=p.leader_epoch, log_start_offset=p.log.log_start_offset,
                               log_end_offset=p.log.log_end_offset, high_watermark=p.log.high_watermark,
                               isr=state.isr if state else (), last_epoch=p.log.latest_epoch(),
                               divergences_after_truncation=p.divergences_after_truncation)
        return reply

    async def ReadReplica(self, request, context):
        p = self.b.replicas.lookup(request.topic, request.partition)
        if p is None:
            return bpb.ReadReplicaResponse(error_code=int(ErrorCode.unknown_topic_or_partition),
                                           error_message=f"no local replica of {request.topic}-{request.partition}")
        upper = p.log.log_end_offset if request.upper_bound < 0 else min(request.upper_bound, p.log.log_end_offset)
        try:
            records = b"" if request.offset >= upper else p.log.read(
                request.offset, min(max(request.max_bytes, 1), GRPC_FETCH_BYTES_MAX), upper).records
        except LogError as e:
            return bpb.ReadReplicaResponse(error_code=int(e.code), error_message=e.message)
        return bpb.ReadReplicaResponse(records=records, log_end_offset=p.log.log_end_offset,
                                       high_watermark=p.log.high_watermark)

    async def WriteTxnMarkers(self, request, context):
        """Markers from a transaction coordinator on another broker (node certificates only, as
        every data-plane call; see cluster/security/grpc_identity.py)."""
        timeout_ms = request.timeout_ms if request.timeout_ms > 0 else 30_000
        errors = []
        for partition in request.partitions:
            try:
                error = await self.b.append_marker(request.topic, partition, request.producer_id,
                                                   request.producer_epoch, request.coordinator_epoch,
                                                   request.commit, timeout_ms)
            except LogError as e:
                error = e.code
            errors.append(int(error))
        return bpb.WriteTxnMarkersResponse(error_codes=errors)
