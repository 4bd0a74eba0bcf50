"""Follower side of replication: one long-poll fetch loop per source (leader) broker.

Each loop carries every partition this broker follows from that leader in one ReplicaFetch call, so
gRPC's per-message cost is paid once per round, not per partition. Before a partition is fetched
after a leadership change it is truncated by the OffsetsForLeaderEpoch exchange: the follower asks the
leader for the end offset of its own latest epoch and cuts its log there — never at its own HW —
repeating until the epochs agree (KIP-279; the decision is `broker.truncation.decide_truncation`).
Every fetch also carries the follower's last fetched epoch, and a leader that sees a divergence
answers it instead of data (KIP-320), so a follower that skipped or misjudged truncation is caught.

The decisions about one answer are synchronous functions (`apply_epoch_answer`,
`apply_fetch_answer`) over a `Partition`; `FetcherLoop.run_once` is one round of the loop. Errors back
off with jitter and are logged once per kind, never in a hot loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import grpc

from broker.replica_manager import Partition, ReplicaManager
from broker.truncation import decide_truncation
from brookpb import broker_pb2 as bpb
from brookpb import broker_pb2_grpc
from cluster.errors import ErrorCode, LogError
from cluster.grpcutil import aio_channel
from cluster.limits import REPLICA_FETCH_BYTES_MAX, REPLICA_FETCH_PARTITION_BYTES_MAX

log = logging.getLogger("brook.fetcher")

# The wait of one replication round trip (see OPERATIONS.md; its byte bounds are in cluster/limits.py):
# the wait makes an idle follower cost one call per wait.
FETCH_WAIT_MS = 500
PAUSE_ON_EPOCH_MISMATCH_MS = 300
# Backoff after a failed round (a top-level error such as STALE_BROKER_EPOCH, an RPC failure) or
# repeated OFFSET_OUT_OF_RANGE: exponential from the base, capped, with jitter so that followers
# of one leader do not retry in lockstep.
BACKOFF_BASE_MS = 100
BACKOFF_MS_MAX = 2000
# A partition answered OFFSET_OUT_OF_RANGE this many times in a row is paused with backoff.
OUT_OF_RANGE_BEFORE_BACKOFF = 2


def backoff_ms(attempt: int, rng: random.Random) -> int:
    """Delay before retry number `attempt` (1, 2, ...): base * 2^(attempt-1), capped, times a
    random factor in [0.5, 1] ("equal jitter")."""
    assert attempt >= 1, f"attempt {attempt}"
    ceiling = min(BACKOFF_MS_MAX, BACKOFF_BASE_MS << min(attempt - 1, 16))
    return int(ceiling * (0.5 + 0.5 * rng.random()))


def apply_epoch_answer(p: Partition, error: ErrorCode, leader_epoch: int, end_offset: int, leader_id: int,
                       now_ms: int, rng: random.Random | None = None) -> None:
    """Apply the leader's OffsetsForLeaderEpoch answer to a truncating follower replica.

    Truncates as `decide_truncation` says; `needs_truncation` stays set while another round is
    needed (KIP-279).
    """
    if error != ErrorCode.none:
        on_partition_error(p, error, now_ms, rng=rng)
        return
    plog = p.log
    leo = plog.log_end_offset
    if plog.latest_epoch() < 0:
        p.needs_truncation = False  # nothing to compare: an empty history diverges from nothing
        return
    decision = decide_truncation(plog.epoch_entries(), leo, leader_epoch, end_offset)
    if decision.truncate_to < leo:
        log.info("%s-%d: truncating %d -> %d (leader %d at epoch %d says epoch %d ends at %d)%s",
                 p.topic, p.index, leo, decision.truncate_to, leader_id, p.leader_epoch, leader_epoch, end_offset,
                 "" if decision.done else "; asking again")
    plog.truncate_to(max(decision.truncate_to, plog.log_start_offset))
    p.needs_truncation = not decision.done


def apply_fetch_answer(p: Partition, answer: bpb.ReplicaFetchPartitionResult, leader_id: int, now_ms: int,
                       rng: random.Random | None = None) -> None:
    """Apply one partition of a ReplicaFetch answer: a divergence, an error, or data and the HW."""
    if answer.HasField("diverging_epoch") and answer.diverging_epoch.end_offset >= 0:
        divergence = answer.diverging_epoch
        plog = p.log
        decision = decide_truncation(plog.epoch_entries(), plog.log_end_offset, divergence.epoch,
                                     divergence.end_offset)
        log.info("%s-%d: leader %d reports divergence at epoch %d (ends at %d); truncating %d -> %d",
                 p.topic, p.index, leader_id, divergence.epoch, divergence.end_offset, plog.log_end_offset,
                 decision.truncate_to)
        plog.truncate_to(max(decision.truncate_to, plog.log_start_offset))
        p.needs_truncation = not decision.done
        return
    if answer.error_code != ErrorCode.none:
        on_partition_error(p, ErrorCode(answer.error_code), now_ms, answer.log_start_offset, rng)
        return
    p.out_of_range_count = 0
    if answer.records:
        try:
            p.log.append_as_follower(answer.records)
        except LogError as e:
            log.warning("%s-%d: cannot append replicated data at %d: %s; re-truncating",
                        p.topic, p.index, p.log.log_end_offset, e.message)
            p.needs_truncation = True
            return
    hw = min(answer.high_watermark, p.log.log_end_offset)
    if hw > p.log.high_watermark:
        p.log.set_high_watermark(hw)


def on_partition_error(p: Partition, error: ErrorCode, now_ms: int, leader_log_start: int = -1,
                       rng: random.Random | None = None) -> None:
    """A per-partition error from the leader: restart, re-truncate, or pause the partition."""
    if error == ErrorCode.offset_out_of_range and leader_log_start > p.log.log_end_offset:
        log.info("%s-%d: behind the leader's log start %d; restarting the log there",
                 p.topic, p.index, leader_log_start)
        p.log.truncate_fully_and_start_at(leader_log_start)
    elif error == ErrorCode.offset_out_of_range:
        p.out_of_range_count += 1
        p.needs_truncation = True
        if p.out_of_range_count >= OUT_OF_RANGE_BEFORE_BACKOFF:
            if p.out_of_range_count == OUT_OF_RANGE_BEFORE_BACKOFF:
                log.warning("%s-%d: OFFSET_OUT_OF_RANGE %d times in a row at %d; backing off",
                            p.topic, p.index, p.out_of_range_count, p.log.log_end_offset)
            attempt = p.out_of_range_count - OUT_OF_RANGE_BEFORE_BACKOFF + 1
            p.paused_until_ms = now_ms + backoff_ms(attempt, rng or random.Random())
    elif error in (ErrorCode.fenced_leader_epoch, ErrorCode.not_leader_or_follower,
                   ErrorCode.unknown_leader_epoch):
        # Our view or the leader's is stale: wait for metadata to settle (a new image resets this).
        p.paused_until_ms = now_ms + PAUSE_ON_EPOCH_MISMATCH_MS
    else:
        log.info("%s-%d: fetch error %s", p.topic, p.index, error.name)


class FetcherLoop:
    def __init__(self, manager: ReplicaManager, broker_id: int, broker_epoch: Callable[[], int],
                 leader_id: int, address: str) -> None:
        self.m = manager
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.leader_id = leader_id
        self.address = address
        self.channel = aio_channel(address)
        self.stub = broker_pb2_grpc.BrokerServiceStub(self.channel)
        self.task: asyncio.Task | None = None
        self.wake = asyncio.Event()
        self.rng = random.Random()
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # the simulator/tests swap it
        self.failures = 0                       # consecutive failed rounds (backoff attempt)
        self.last_error: str | None = None      # logged once until a round succeeds

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
        now = self.m.monotonic_ms()
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
                error = await self.run_once(parts)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                error = f"RPC to broker {self.leader_id} at {self.address} failed: {e.code()}"
            except Exception:
                log.exception("fetcher for leader %d failed; retrying", self.leader_id)
                error = "unexpected failure"
            if error is None:
                if self.last_error is not None:
                    log.info("fetching from broker %d works again", self.leader_id)
                self.failures, self.last_error = 0, None
                continue
            self.failures += 1
            if error != self.last_error:
                log.warning("fetcher for leader %d: %s; backing off", self.leader_id, error)
                self.last_error = error
            await self.sleep(backoff_ms(self.failures, self.rng) / 1000.0)

    async def run_once(self, parts: list[Partition]) -> str | None:
        """One round: the truncation exchange for partitions that need it, else one fetch.
        Returns a description of a round-level failure (to back off on), or None."""
        truncating = [p for p in parts if p.needs_truncation]
        if truncating:
            return await self._truncate(truncating)
        return await self._fetch(parts)

    async def _truncate(self, parts: list[Partition]) -> str | None:
        request = bpb.OffsetsForLeaderEpochRequest(replica_id=self.broker_id)
        asked = {}
        for p in parts:
            epoch = p.log.latest_epoch()
            asked[(p.topic_id, p.index)] = (p, p.leader_epoch, epoch)
            request.partitions.add(topic_id=p.topic_id, partition=p.index,
                                   current_leader_epoch=p.leader_epoch, leader_epoch=epoch)
        reply = await self.stub.OffsetsForLeaderEpoch(request, timeout=5.0)
        if reply.error_code != ErrorCode.none:
            return f"OffsetsForLeaderEpoch answered {ErrorCode(reply.error_code).name}: {reply.error_message}"
        now = self.m.monotonic_ms()
        for r in reply.partitions:
            entry = asked.get((r.topic_id, r.partition))
            if entry is None:
                continue
            p, epoch_asked, my_epoch = entry
            if (p.leader is not None or p.leader_epoch != epoch_asked or not p.needs_truncation
                    or p.log.latest_epoch() != my_epoch):
                continue  # the role or the log changed while we asked
            apply_epoch_answer(p, ErrorCode(r.error_code), r.leader_epoch, r.end_offset, self.leader_id, now,
                               self.rng)
        return None

    async def _fetch(self, parts: list[Partition]) -> str | None:
        request = bpb.ReplicaFetchRequest(
            replica_id=self.broker_id, broker_epoch=self.broker_epoch(), max_wait_ms=FETCH_WAIT_MS, min_bytes=1,
            max_bytes=REPLICA_FETCH_BYTES_MAX, partition_max_bytes=REPLICA_FETCH_PARTITION_BYTES_MAX)
        sent = {}
        for p in parts:
            last_epoch = p.log.latest_epoch()
            sent[(p.topic_id, p.index)] = (p, p.leader_epoch, p.log.log_end_offset, last_epoch)
            request.partitions.add(topic_id=p.topic_id, partition=p.index, fetch_offset=p.log.log_end_offset,
                                   current_leader_epoch=p.leader_epoch, last_fetched_epoch=last_epoch)
        reply = await self.stub.ReplicaFetch(request, timeout=FETCH_WAIT_MS / 1000.0 + 10.0)
        if reply.error_code != ErrorCode.none:
            # A top-level error (STALE_BROKER_EPOCH while our registration propagates, say) carries
            # no partitions: retrying at once would spin.
            return f"ReplicaFetch answered {ErrorCode(reply.error_code).name}: {reply.error_message}"
        now = self.m.monotonic_ms()
        for r in reply.partitions:
            entry = sent.get((r.topic_id, r.partition))
            if entry is None:
                continue
            p, epoch, offset, last_epoch = entry
            if (p.leader is not None or p.leader_epoch != epoch or p.needs_truncation
                    or p.log.log_end_offset != offset or p.log.latest_epoch() != last_epoch):
                continue  # the role changed or the log moved while the call was in flight
            apply_fetch_answer(p, r, self.leader_id, now, self.rng)
        return None


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
