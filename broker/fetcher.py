"""Follower side of replication: one long-poll fetch loop per source (leader) broker.

Each loop carries every partition this broker follows from that leader in one ReplicaFetch call, so
gRPC's per-message cost is paid once per round, not per partition. Before a partition is fetched
after a leadership change it is truncated by the OffsetsForLeaderEpoch exchange: the follower asks the
leader for the end offset of its own latest epoch and cuts its log there — never at its own HW —
repeating until the epochs agree (KIP-279; the decision is `broker.truncation.decide_truncation`).
Every fetch also carries the follower's last fetched epoch, and a leader that sees a divergence
answers it instead of data (KIP-320), so a follower that skipped or misjudged truncation is caught.

The safety-net tripwire: once a follower has finished truncating against leader L at leader epoch E,
its log is a prefix of L's, and L only appends while it leads at E; so L at E can never answer one of
its later fetches with a divergence (a leader at a newer epoch refuses the stale fetch with
FENCED_LEADER_EPOCH first). Such an answer means the truncation postcondition (KIP-279) was broken
and only the second defence (KIP-320) saved the log: it is counted per partition
(`Partition.divergences_after_truncation`, ReplicaStates) and per broker (a brook_ metric) and logged
as an error, so a black-box tester sees a defence that had to fire. The follower still truncates.

The decisions about one answer are synchronous functions (`apply_epoch_answer`,
`apply_fetch_answer`) over a `Partition`; `FetcherLoop.run_once` is one round of the loop. Errors back
off with jitter and are logged once per kind, never in a hot loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from broker.fetch_session import FollowerSession, PartitionKey, Position
from broker.replica_manager import Partition, ReplicaManager
from broker.truncation import decide_truncation
from brookpb import broker_pb2 as bpb
from brookpb import broker_pb2_grpc
from cluster.aio import wait_for
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
    # Recorded on every round, not only the last: whatever clears `needs_truncation` afterwards, the
    # truncation then finished against this leader and epoch (the tripwire of apply_fetch_answer).
    p.truncated_against = (leader_id, p.leader_epoch)
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
        if not p.needs_truncation and p.truncated_against == (leader_id, p.leader_epoch):
            p.divergences_after_truncation += 1
            log.error("%s-%d: safety net: leader %d at epoch %d reports a divergence after this replica finished "
                      "truncating against it (KIP-279 postcondition broken): its epoch %d ends at %d, our log "
                      "end is %d at epoch %d; truncating to %d", p.topic, p.index, leader_id, p.leader_epoch,
                      divergence.epoch, divergence.end_offset, plog.log_end_offset, plog.latest_epoch(),
                      decision.truncate_to)
        else:
            log.info("%s-%d: leader %d reports divergence at epoch %d (ends at %d); truncating %d -> %d",
                     p.topic, p.index, leader_id, divergence.epoch, divergence.end_offset, plog.log_end_offset,
                     decision.truncate_to)
        plog.truncate_to(max(decision.truncate_to, plog.log_start_offset))
        p.needs_truncation = not decision.done
        p.truncated_against = (leader_id, p.leader_epoch)  # a truncation step against this leader and epoch
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
            p.start_truncation()
            return
    hw = min(answer.high_watermark, p.log.log_end_offset)
    if hw > p.log.high_watermark:
        p.log.set_high_watermark(hw)
    follow_log_start(p, answer.log_start_offset)


def follow_log_start(p: Partition, leader_log_start: int) -> None:
    """Move a follower's log start up to the leader's (DeleteRecords and retention on the leader),
    never past the follower's own HW (Kafka's maybeIncrementLogStartOffset on a fetch answer). The
    next fetch reports the new log start, which is what the leader's DeleteRecords waits for."""
    target = min(leader_log_start, p.log.high_watermark)
    if target > p.log.log_start_offset:
        p.log.delete_records_before(target)


def throttle_catch_up(m: ReplicaManager, p: Partition, size: int, now_ms: int) -> None:
    """follower.replication.throttled.rate: a joining replica of a reassignment that has fetched more
    than its rate allows is paused until the bucket holds a byte again (the fetcher then leaves it out)."""
    throttle = m.follower_throttle
    if not throttle.limited or not m.catch_up_throttled(p, m.broker_id):
        return
    throttle.spend(size, now_ms)
    wait = throttle.wait_ms(now_ms)
    if wait > 0:
        p.paused_until_ms = max(p.paused_until_ms, now_ms + wait)


def on_partition_error(p: Partition, error: ErrorCode, now_ms: int, leader_log_start: int = -1,
                       rng: random.Random | None = None) -> None:
    """A per-partition error from the leader: restart, re-truncate, or pause the partition."""
    if error == ErrorCode.offset_out_of_range and leader_log_start > p.log.log_end_offset:
        log.info("%s-%d: behind the leader's log start %d; restarting the log there",
                 p.topic, p.index, leader_log_start)
        p.log.truncate_fully_and_start_at(leader_log_start)
    elif error == ErrorCode.offset_out_of_range:
        p.out_of_range_count += 1
        p.start_truncation()
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


class StreamingStub:
    """The BrokerService stub a fetcher loop uses: ReplicaFetch rides one long-lived ReplicaFetchStream
    (one request message, then its one response), half the gRPC cost of a unary call per round
    (issue 12); every other method is the plain stub's.

    The stream is taken for the duration of a call, so a call cancelled by a pre-emption (or failed,
    or timed out) cancels its own stream and the next call opens a new one: an answer can never be
    read by a later request. A timeout is reported as the unary call's would be (DEADLINE_EXCEEDED).
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = broker_pb2_grpc.BrokerServiceStub(channel)
        self.stream: grpc.aio.StreamStreamCall | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self.stub, name)

    async def ReplicaFetch(self, request: bpb.ReplicaFetchRequest, timeout: float) -> bpb.ReplicaFetchResponse:  # noqa: N802
        stream, self.stream = self.stream, None
        if stream is None or stream.done():
            stream = self.stub.ReplicaFetchStream()
        try:
            await stream.write(request)
            reply = await wait_for(stream.read(), timeout)
        except TimeoutError:
            stream.cancel()
            raise grpc.aio.AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       f"no ReplicaFetchStream answer in {timeout:g} s") from None
        except asyncio.InvalidStateError:  # the stream ended between the check and the write
            stream.cancel()
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       "the ReplicaFetchStream ended") from None
        except BaseException:
            stream.cancel()
            raise
        if reply is grpc.aio.EOF:
            code = await stream.code()
            details = await stream.details()
            raise grpc.aio.AioRpcError(code if code != grpc.StatusCode.OK else grpc.StatusCode.UNAVAILABLE,
                                       grpc.aio.Metadata(), grpc.aio.Metadata(),
                                       details or "the leader ended the ReplicaFetchStream")
        self.stream = stream
        return reply

    def close(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.cancel()


def _fetch_wait_ms(config: Any) -> int:
    """`replica.fetch.wait.max.ms` (Kafka's 500 ms); FETCH_WAIT_MS where the config has no such key."""
    try:
        return max(0, int(config["replica.fetch.wait.max.ms"]))
    except (KeyError, TypeError, ValueError):
        return FETCH_WAIT_MS


# Each round re-checks this many of the loop's fetchable partitions against their logs (round
# robin), besides the ones it knows changed: a log start moved by the follower's own retention
# reaches the leader's session within a bounded number of rounds.
AUDIT_PER_ROUND = 16


class FollowedView:
    """A fetcher loop's partitions, kept up to date from what changed, not rescanned (issue 16).

    `positions` is what the next fetch asks for (key -> `Position`, the partitions that are neither
    paused nor truncating), `fetchable` their replicas; `truncating` and `paused` the others.
    `dirty` holds the keys to re-derive from their replica before the next round: metadata changes
    (ReplicaManager.watch_followed), every partition the previous round answered or truncated, and
    pauses that ended. `changed` holds the keys whose position was added, changed or dropped since
    the last request (FollowerSession.request_changed). `full` re-derives every followed partition.
    """

    __slots__ = ("full", "dirty", "positions", "fetchable", "truncating", "paused", "changed", "audit")

    def __init__(self) -> None:
        self.full = True
        self.dirty: set[PartitionKey] = set()
        self.positions: dict[PartitionKey, Position] = {}
        self.fetchable: dict[PartitionKey, Partition] = {}
        self.truncating: dict[PartitionKey, Partition] = {}
        self.paused: dict[PartitionKey, Partition] = {}
        self.changed: set[PartitionKey] = set()
        self.audit: list[PartitionKey] = []

    def next_unpause_ms(self, now: int) -> int | None:
        """Milliseconds until the first paused partition may be fetched again (O(paused))."""
        pauses = [p.paused_until_ms - now for p in self.paused.values()]
        return max(0, min(pauses)) if pauses else None


def position_of(p: Partition) -> Position:
    plog = p.log
    return Position(plog.log_end_offset, p.leader_epoch, plog.latest_epoch(), plog.log_start_offset)


class FetcherLoop:
    # `in_rpc` is true only while the loop awaits a fetch RPC, the one point where it may be
    # pre-empted; `in_flight` is the positions that RPC carries. Class defaults: the simulator's
    # subclass has its own __init__.
    in_rpc: bool = False
    in_flight: dict[PartitionKey, Position] = {}
    _session: FollowerSession | None = None
    _view: FollowedView | None = None

    @property
    def session(self) -> FollowerSession:
        """The incremental fetch session with this leader (broker/fetch_session.py)."""
        if self._session is None:
            self._session = FollowerSession()
        return self._session

    @property
    def view(self) -> FollowedView:
        """This loop's partitions (FollowedView), registered for the manager's changes on first use."""
        if self._view is None:
            self._view = FollowedView()
            self.m.watch_followed(self.leader_id, self)
        return self._view

    def __init__(self, manager: ReplicaManager, broker_id: int, broker_epoch: Callable[[], int],
                 leader_id: int, address: str) -> None:
        self.m = manager
        self.broker_id = broker_id
        self.broker_epoch = broker_epoch
        self.leader_id = leader_id
        self.address = address
        self.channel = aio_channel(address)
        self.stub: Any = StreamingStub(self.channel)
        self.task: asyncio.Task | None = None
        self.wake = asyncio.Event()
        self.rng = random.Random()
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # the simulator/tests swap it
        self.failures = 0                       # consecutive failed rounds (backoff attempt)
        self.last_error: str | None = None      # logged once until a round succeeds

    @property
    def wait_ms(self) -> int:
        """The long poll of each round: `replica.fetch.wait.max.ms` (read per round, so the simulator's
        loop, which does not run this __init__, and a swapped FETCH_WAIT_MS both apply)."""
        return _fetch_wait_ms(self.m.config)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        if isinstance(self.stub, StreamingStub):
            self.stub.close()
        await self.channel.close(grace=None)

    def followed_changed(self, key: PartitionKey) -> None:
        """The ReplicaManager's news: `key` started or stopped being followed from this leader, or
        changed leader epoch (called during a metadata apply; the next round re-derives it)."""
        if self._view is not None:
            self._view.dirty.add(key)

    def _refresh(self) -> None:
        """Re-derive the partitions that changed since the last round (all of them after `full`),
        those whose pause ended, and AUDIT_PER_ROUND more in turn."""
        view = self.view
        followed = self.m.followed.get(self.leader_id, {})
        now = self.m.monotonic_ms()
        if view.full:
            view.full = False
            keys = set(followed)
            keys.update(view.fetchable, view.truncating, view.paused)
            view.dirty.clear()
        else:
            keys, view.dirty = view.dirty, set()
        if view.paused:
            keys.update(key for key, p in view.paused.items() if p.paused_until_ms <= now)
        audit = view.audit
        for _ in range(min(AUDIT_PER_ROUND, len(view.fetchable))):
            if not audit:
                audit.extend(view.fetchable)
            key = audit.pop()
            if key in view.fetchable:
                keys.add(key)
        for key in keys:
            self._classify(view, key, followed.get(key), now)

    def _classify(self, view: FollowedView, key: PartitionKey, p: Partition | None, now: int) -> None:
        view.fetchable.pop(key, None)
        view.truncating.pop(key, None)
        view.paused.pop(key, None)
        position = None
        if p is not None and p.leader is None and p.leader_id == self.leader_id:
            if p.paused_until_ms > now:
                view.paused[key] = p
            elif p.needs_truncation:
                view.truncating[key] = p
            else:
                view.fetchable[key] = p
                position = position_of(p)
        if position is None:
            if view.positions.pop(key, None) is not None:
                view.changed.add(key)
        elif view.positions.get(key) != position:
            view.positions[key] = position
            view.changed.add(key)

    def partitions(self) -> list[Partition]:
        """Every partition this loop fetches now (truncating or not, not paused), after re-deriving
        all of them from the replica manager: O(followed partitions), for tests and the harness;
        the loop itself only re-derives what changed."""
        view = self.view
        view.full = True
        self._refresh()
        return [*view.truncating.values(), *view.fetchable.values()]

    def preempt_if_new(self) -> bool:
        """Called when the partitions this broker follows change (a new image): a round whose RPC is
        parked in the leader's long poll without a newly followed partition is cancelled and the loop
        restarted at once, so the new partition does not wait out FETCH_WAIT_MS (issue 16). Only the
        RPC await is interrupted: answers are applied synchronously after it, so a cancelled round
        is a lost reply, which the fetch protocol already tolerates. Looks only at the partitions
        the metadata changed. Returns whether it pre-empted."""
        if not self.in_rpc or self.task is None or self.task.done() or not self._has_news():
            return False
        self.in_rpc = False
        self.task.cancel()
        self.start()
        return True

    def _has_news(self) -> bool:
        """True when a changed partition is fetchable at a leader epoch the in-flight round does not
        carry."""
        view = self._view
        if view is None:
            return False
        followed = self.m.followed.get(self.leader_id, {})
        now = self.m.monotonic_ms()
        in_flight = self.in_flight
        for key in view.dirty:
            p = followed.get(key)
            if p is not None and p.leader is None and p.paused_until_ms <= now:
                position = in_flight.get(key)
                if position is None or position.current_leader_epoch != p.leader_epoch:
                    return True
        return False

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            self._refresh()
            view = self.view
            if not view.positions and not view.truncating:
                unpause_ms = view.next_unpause_ms(self.m.monotonic_ms())
                wait_s = 1.0 if unpause_ms is None else min(1.0, max(unpause_ms, 1) / 1000.0)
                try:
                    await wait_for(self.wake.wait(), wait_s)
                except TimeoutError:
                    pass
                continue
            try:
                error = await self._round()
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as e:
                error = f"RPC to broker {self.leader_id} at {self.address} failed: {e.code()}"
            except Exception:
                log.exception("fetcher for leader %d failed; retrying", self.leader_id)
                view.full = True  # re-derive everything after a failure we did not foresee
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

    async def run_once(self, parts: list[Partition] | None = None) -> str | None:
        """One round of the loop over its current partitions (tests and the harness pass the
        `partitions()` they just read; the round re-derives what changed since, as `_run` does).
        Returns a description of a round-level failure (to back off on), or None."""
        self._refresh()
        return await self._round()

    async def _round(self) -> str | None:
        """The truncation exchange for partitions that need it, else one fetch."""
        view = self.view
        if view.truncating:
            truncating = list(view.truncating.values())
            try:
                return await self._truncate(truncating)
            finally:
                view.dirty.update((p.topic_id, p.index) for p in truncating)
        if not view.positions:
            return None
        return await self._fetch()

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

    async def _fetch(self) -> str | None:
        """One fetch of the view's positions. The incremental session (KIP-227): the request lists
        only partitions whose position the leader does not hold and forgets those no longer fetched;
        the leader answers only partitions with news; only those are re-derived for the next round.
        O(changed partitions) on both sides, except when a session opens (everything is listed)."""
        view = self.view
        session = self.session
        wanted, by_key = view.positions, view.fetchable
        session_id, session_epoch, listed, forgotten = session.request_changed(wanted, view.changed)
        view.changed.clear()  # the leader holds them now, or the session resets (then all are listed)
        # A paused partition rejoins when its pause ends: the poll ends no later than that.
        unpause_ms = view.next_unpause_ms(self.m.monotonic_ms())
        wait_ms = self.wait_ms if unpause_ms is None else max(0, min(self.wait_ms, unpause_ms))
        request = bpb.ReplicaFetchRequest(
            replica_id=self.broker_id, broker_epoch=self.broker_epoch(), max_wait_ms=wait_ms, min_bytes=1,
            max_bytes=REPLICA_FETCH_BYTES_MAX, partition_max_bytes=REPLICA_FETCH_PARTITION_BYTES_MAX,
            session_id=session_id, session_epoch=session_epoch)
        for key in listed:
            position = wanted[key]
            request.partitions.add(topic_id=key[0], partition=key[1], fetch_offset=position.fetch_offset,
                                   current_leader_epoch=position.current_leader_epoch,
                                   last_fetched_epoch=position.last_fetched_epoch,
                                   log_start_offset=position.log_start_offset)
        for key in forgotten:
            request.forgotten.add(topic_id=key[0], partition=key[1])
        self.in_flight = wanted  # not changed before this round's answer is applied
        self.in_rpc = True
        try:
            reply = await self.stub.ReplicaFetch(request, timeout=wait_ms / 1000.0 + 10.0)
        except BaseException:
            session.reset()  # the leader may or may not have applied the request
            raise
        finally:
            self.in_rpc = False
        if reply.error_code in (ErrorCode.fetch_session_id_not_found, ErrorCode.invalid_fetch_session_epoch):
            if session_id == 0:
                return f"ReplicaFetch answered {ErrorCode(reply.error_code).name} to a new session"
            session.reset()  # open a new session at once (a full request never gets this answer)
            return None
        if reply.error_code != ErrorCode.none:
            # A top-level error (STALE_BROKER_EPOCH while our registration propagates, say) carries
            # no partitions: retrying at once would spin.
            session.reset()
            return f"ReplicaFetch answered {ErrorCode(reply.error_code).name}: {reply.error_message}"
        session.answered(reply.session_id, wanted, listed, forgotten)
        now = self.m.monotonic_ms()
        dirty = view.dirty
        for r in reply.partitions:
            key = (r.topic_id, r.partition)
            p, sent = by_key.get(key), wanted.get(key)
            if p is None or sent is None:
                continue
            dirty.add(key)  # its log, HW, pause or truncation state may move: re-derived next round
            if (p.leader is not None or p.leader_epoch != sent.current_leader_epoch or p.needs_truncation
                    or p.log.log_end_offset != sent.fetch_offset
                    or p.log.latest_epoch() != sent.last_fetched_epoch):
                # The role changed or the log moved while the call was in flight: the answer is
                # dropped, so the leader's view of what we know is wrong; start a new session.
                session.reset()
                continue
            tripped = p.divergences_after_truncation
            apply_fetch_answer(p, r, self.leader_id, now, self.rng)
            self.m.divergences_after_truncation += p.divergences_after_truncation - tripped
            throttle_catch_up(self.m, p, len(r.records), now)
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
        for leader_id, followed in self.m.followed.items():  # O(leaders), not O(partitions)
            if followed and leader_id != self.broker_id:
                broker = image.brokers.get(leader_id)
                if broker is not None:
                    wanted[leader_id] = broker.grpc_address
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
            loop.preempt_if_new()

    async def stop(self) -> None:
        for loop in list(self.loops.values()):
            await loop.stop()
        self.loops.clear()
