"""Follower side of replication: one long-poll fetch loop per source (leader) broker.

Each loop carries every partition this broker follows from that leader in one ReplicaFetch call, so
gRPC's per-message cost is paid once per round, not per partition. Before a partition is fetched
after a leadership change it is truncated by the OffsetsForLeaderEpoch exchange: the follower asks the
leader for the end offset of its own latest epoch and cuts its log there — never at its own HW.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from broker.replica_manager import Partition, ReplicaManager, mono_ms
from brookpb import broker_pb2 as bpb
from brookpb import broker_pb2_grpc
from cluster.errors import ErrorCode, LogError
from cluster.grpcutil import channel_options
from cluster.limits import REPLICA_FETCH_BYTES_MAX, REPLICA_FETCH_PARTITION_BYTES_MAX

log = logging.getLogger("brook.fetcher")

# The wait of one replication round trip (see OPERATIONS.md; its byte bounds are in cluster/limits.py):
# the wait makes an idle follower cost one call per wait.
FETCH_WAIT_MS = 500
BACKOFF_S = 0.2
PAUSE_ON_EPOCH_MISMATCH_MS = 300


class FetcherLoop:
    def __init__(self, manager: ReplicaManager, broker_id: int, broker_epoch: Callable[[], int],
                 leader_id: int, address: str) -> None:
        self.m = manager
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.leader_id = leader_id
        self.address = address
        self.channel = grpc.aio.insecure_channel(address, options=channel_options())
        self.stub = broker_pb2_grpc.BrokerServiceStub(self.channel)
        self.task: asyncio.Task | None = None
        self.wake = asyncio.Event()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        await self.channel.close(grace=None)

    def partitions(self) -> list[Partition]:
        now = mono_ms()
        return [p for p in self.m.partitions.values()
                if p.leader is None and p.leader_id == self.leader_id and p.paused_until_ms <= now]

    async def _run(self) -> None:
        while True:
            parts = self.partitions()
            if not parts:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), 1.0)
                except TimeoutError:
                    pass
                continue
            try:
                truncating = [p for p in parts if p.needs_truncation]
                if truncating:
                    await self._truncate(truncating)
                    continue
                await self._fetch(parts)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                log.debug("fetch from broker %d at %s failed: %s", self.leader_id, self.address, e.code())
                await asyncio.sleep(BACKOFF_S)
            except Exception:
                log.exception("fetcher for leader %d failed; retrying", self.leader_id)
                await asyncio.sleep(BACKOFF_S)

    async def _truncate(self, parts: list[Partition]) -> None:
        request = bpb.OffsetsForLeaderEpochRequest(replica_id=self.broker_id)
        asked = {}
        for p in parts:
            epoch = p.log.latest_epoch()
            asked[(p.topic_id, p.index)] = (p, p.leader_epoch, epoch)
            request.partitions.add(topic_id=p.topic_id, partition=p.index,
                                   current_leader_epoch=p.leader_epoch, leader_epoch=epoch)
        reply = await self.stub.OffsetsForLeaderEpoch(request, timeout=5.0)
        for r in reply.partitions:
            entry = asked.get((r.topic_id, r.partition))
            if entry is None:
                continue
            p, epoch_asked, my_epoch = entry
            if p.leader is not None or p.leader_epoch != epoch_asked or not p.needs_truncation:
                continue  # the role changed while we asked
            if r.error_code != ErrorCode.none:
                self._on_error(p, ErrorCode(r.error_code))
                continue
            target = p.log.log_end_offset
            if my_epoch >= 0 and r.end_offset >= 0:
                target = min(target, r.end_offset)
                if r.leader_epoch != my_epoch:
                    # The leader does not know our epoch: cut at the end of the epoch it does know.
                    _, local_end = p.log.end_offset_for_epoch(r.leader_epoch)
                    if local_end >= 0:
                        target = min(target, local_end)
            if target < p.log.log_end_offset:
                log.info("%s-%d: truncating %d -> %d (leader %d epoch %d says epoch %d ends at %d)",
                         p.topic, p.index, p.log.log_end_offset, target, self.leader_id, p.leader_epoch,
                         r.leader_epoch, r.end_offset)
                p.log.truncate_to(max(target, p.log.log_start_offset))
            p.needs_truncation = False

    async def _fetch(self, parts: list[Partition]) -> None:
        request = bpb.ReplicaFetchRequest(
            replica_id=self.broker_id, broker_epoch=self.broker_epoch(), max_wait_ms=FETCH_WAIT_MS, min_bytes=1,
            max_bytes=REPLICA_FETCH_BYTES_MAX, partition_max_bytes=REPLICA_FETCH_PARTITION_BYTES_MAX)
        sent = {}
        for p in parts:
            sent[(p.topic_id, p.index)] = (p, p.leader_epoch, p.log.log_end_offset)
            request.partitions.add(topic_id=p.topic_id, partition=p.index, fetch_offset=p.log.log_end_offset,
                                   current_leader_epoch=p.leader_epoch)
        reply = await self.stub.ReplicaFetch(request, timeout=FETCH_WAIT_MS / 1000.0 + 10.0)
        for r in reply.partitions:
            entry = sent.get((r.topic_id, r.partition))
            if entry is None:
                continue
            p, epoch, offset = entry
            if p.leader is not None or p.leader_epoch != epoch or p.needs_truncation or p.log.log_end_offset != offset:
                continue  # the role changed or the log moved while the call was in flight
            if r.error_code != ErrorCode.none:
                self._on_error(p, ErrorCode(r.error_code), r.log_start_offset)
                continue
            if r.records:
                try:
                    p.log.append_as_follower(r.records)
                except LogError as e:
                    log.warning("%s-%d: cannot append replicated data at %d: %s; re-truncating",
                                p.topic, p.index, offset, e.message)
                    p.needs_truncation = True
                    continue
            hw = min(r.high_watermark, p.log.log_end_offset)
            if hw > p.log.high_watermark:
                p.log.set_high_watermark(hw)

    def _on_error(self, p: Partition, error: ErrorCode, leader_log_start: int = -1) -> None:
        if error == ErrorCode.offset_out_of_range and leader_log_start > p.log.log_end_offset:
            log.info("%s-%d: behind the leader's log start %d; restarting the log there",
                     p.topic, p.index, leader_log_start)
            p.log.truncate_fully_and_start_at(leader_log_start)
        elif error == ErrorCode.offset_out_of_range:
            p.needs_truncation = True
        elif error in (ErrorCode.fenced_leader_epoch, ErrorCode.not_leader_or_follower,
                       ErrorCode.unknown_leader_epoch):
            # Our view or the leader's is stale: wait for metadata to settle (a new image resets this).
            p.paused_until_ms = mono_ms() + PAUSE_ON_EPOCH_MISMATCH_MS
        else:
            log.info("%s-%d: fetch error %s", p.topic, p.index, error.name)


class FetcherManager:
    """Keeps one FetcherLoop per leader broker this broker follows."""

    def __init__(self, manager: ReplicaManager, broker_id: int, broker_epoch: Callable[[], int]) -> None:
        self.m = manager
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.loops: dict[int, FetcherLoop] = {}

    def reconcile(self) -> None:
        image = self.m.image
        if image is None:
            return
        wanted: dict[int, str] = {}
        for p in self.m.partitions.values():
            if p.leader is None and p.leader_id >= 0 and p.leader_id != self.broker_id:
                broker = image.brokers.get(p.leader_id)
                if broker is not None:
                    wanted[p.leader_id] = broker.grpc_address
        for leader_id, loop in list(self.loops.items()):
            if leader_id not in wanted or wanted[leader_id] != loop.address:
                del self.loops[leader_id]
                asyncio.get_running_loop().create_task(loop.stop())
        for leader_id, address in wanted.items():
            if leader_id not in self.loops:
                loop = FetcherLoop(self.m, self.broker_id, self.broker_epoch, leader_id, address)
                self.loops[leader_id] = loop
                loop.start()
        for loop in self.loops.values():
            loop.wake.set()

    async def stop(self) -> None:
        for loop in list(self.loops.values()):
            await loop.stop()
        self.loops.clear()
