"""The transaction coordinator (KIP-98): transactional ids on `__transaction_state`, markers, timeouts.

Modules of `broker/txn/` (none knows the Kafka wire format; `broker/kafka/txn_handlers.py` turns
Kafka requests into calls of this module):

    state.py        the pure state machine of one transactional id (Kafka's TransactionState)
    records.py      the key/value schemas of `__transaction_state` records (pure)
    coordinator.py  this module: the partitions this broker leads, their load, writes, markers

The coordinator of transactional id T is the leader of partition
`abs(javaHashCode(T)) % transaction.state.log.num.partitions` of `__transaction_state` (Kafka's
placement, shared with groups). Every state change is written there with acks=-1 before it is
answered or acted on, so a new leader of the partition (a coordinator failover) loads the same
state: a transaction left in PrepareCommit / PrepareAbort has its markers sent again and is
completed; an Ongoing one is aborted when its timeout passes.

Loading waits until the new leader's high watermark has reached its epoch start offset (KIP-207:
`list_offsets(latest)` stops answering OFFSET_NOT_AVAILABLE), so everything an older leader
acknowledged is read. Requests for the partition answer COORDINATOR_LOAD_IN_PROGRESS meanwhile.

Markers: for each partition of a completing transaction, a COMMIT or ABORT control batch is written
by that partition's leader (`BrokerCore.append_marker` when it is this broker, the BrokerService
`WriteTxnMarkers` gRPC call otherwise), retried with backoff through leader moves until it is
written, the topic is gone, or the partition already holds a newer epoch of the producer. Then the
transaction is completed (CompleteCommit / CompleteAbort, written). Until then the transactional id
answers CONCURRENT_TRANSACTIONS, which clients retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from broker.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, BrokerCore
from broker.groups._records import build_batch, iter_batches
from broker.groups.api import CoordinatorAnswer
from broker.groups.placement import partition_for
from broker.txn import records, state
from broker.txn.state import After, Decision, TxnMetadata, TxnState
from cluster.errors import ErrorCode

__all__ = ["OFFSETS_TOPIC", "TXN_TOPIC", "DescribedTxn", "MarkerSender", "TransactionCoordinator"]

log = logging.getLogger(__name__)

TXN_TOPIC = "__transaction_state"
OFFSETS_TOPIC = "__consumer_offsets"
# How long a state write waits for acks=-1 (Kafka's transaction.state.log write timeout default).
WRITE_TIMEOUT_MS = 5000
MARKER_TIMEOUT_MS = 10_000
LOAD_READ_BYTES_MAX = 5 * 1024 * 1024
RETRY_BACKOFF_MS_MIN = 50
RETRY_BACKOFF_MS_MAX = 1000
RECONCILE_INTERVAL_S = 0.2
# A marker for a partition whose topic no longer exists, or answered these, is done.
_MARKER_DONE = frozenset({ErrorCode.none, ErrorCode.invalid_producer_epoch, ErrorCode.producer_fenced})

# (leader broker id, topic, partitions, producer id, epoch, coordinator epoch, commit) -> one error per partition
MarkerSender = Callable[[int, str, Sequence[int], int, int, int, bool], Awaitable[list[ErrorCode]]]


@dataclass(frozen=True, slots=True)
class DescribedTxn:
    transactional_id: str
    error: ErrorCode
    state: str = ""
    producer_id: int = -1
    producer_epoch: int = -1
    timeout_ms: int = 0
    start_ms: int = -1
    partitions: tuple[tuple[str, int], ...] = ()


def _map_write_error(code: ErrorCode) -> ErrorCode:
    """Kafka TransactionStateManager: what a failed state append means to the client."""
    if code in (ErrorCode.not_leader_or_follower, ErrorCode.kafka_storage_error):
        return ErrorCode.not_coordinator
    if code == ErrorCode.none:
        return code
    return ErrorCode.coordinator_not_available


class TxnPartition:
    """The transactional ids hashed to one `__transaction_state` partition this broker leads."""

    def __init__(self, index: int, leader_epoch: int) -> None:
        self.index = index
        self.leader_epoch = leader_epoch  # the coordinator epoch written into markers
        self.txns: dict[str, TxnMetadata] = {}
        self.pending: set[str] = set()  # transactional ids with a state write in flight
        self.loading = True
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return f"{TXN_TOPIC}-{self.index}"

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        self.closed = True
        for task in list(self.tasks):
            task.cancel()


class TransactionCoordinator:
    def __init__(self, core: BrokerCore, send_markers: MarkerSender, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.core = core
        self._send_markers = send_markers
        self._wall_clock = wall_clock
        self._parts: dict[int, TxnPartition] = {}
        self._tick_task: asyncio.Task[None] | None = None
        self._ensure_task: asyncio.Task[None] | None = None
        self._listening = False

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if not self._listening:
            self.core.add_leadership_listener(self._on_leadership)
            self._listening = True
        self.reconcile()
        if self._tick_task is None:
            self._tick_task = asyncio.get_running_loop().create_task(self._run_ticks(), name="txn-coordinator")

    async def stop(self) -> None:
        tasks = [t for t in (self._tick_task, self._ensure_task) if t is not None]
        self._tick_task = self._ensure_task = None
        for part in list(self._parts.values()):
            tasks.extend(part.tasks)
            part.close()
        self._parts.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _config(self, name: str, default: int) -> int:
        try:
            return int(self.core.server_config(name))  # type: ignore[call-overload]
        except Exception:
            return default

    def _wall_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    # -- leadership and loading --------------------------------------------------------------------
    def _on_leadership(self, topic: str, partition: int, is_leader: bool, leader_epoch: int) -> None:
        if topic != TXN_TOPIC:
            return
        current = self._parts.get(partition)
        if current is not None and (not is_leader or current.leader_epoch != leader_epoch):
            self._unload(partition)
        if is_leader and partition not in self._parts:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # reconcile (every tick) picks it up on the loop
            self._load(partition, leader_epoch)

    def reconcile(self) -> None:
        topic = self.core.image().topic_by_name(TXN_TOPIC)
        led: dict[int, int] = {}
        if topic is not None:
            for index, registration in topic.partitions.items():
                if self.core.is_leader(TXN_TOPIC, index):
                    led[index] = registration.leader_epoch
        for index in [i for i, part in self._parts.items() if led.get(i) != part.leader_epoch]:
            self._unload(index)
        for index, epoch in led.items():
            if index not in self._parts:
                self._load(index, epoch)

    def _unload(self, index: int) -> None:
        part = self._parts.pop(index, None)
        if part is not None:
            part.close()
            log.info("unloaded %s (%d transactional ids)", part.name, len(part.txns))

    def _load(self, index: int, leader_epoch: int) -> None:
        part = TxnPartition(index, leader_epoch)
        self._parts[index] = part
        part.spawn(self._run_load(part), f"txn-load-{index}")

    async def _run_load(self, part: TxnPartition) -> None:
        started = time.monotonic()
        try:
            # KIP-207: a new leader's HW may trail what the previous leader acknowledged; wait until
            # it reaches this leader's epoch start, so the read below sees every acknowledged write.
            while not part.closed:
                latest = self.core.list_offsets(TXN_TOPIC, part.index, LATEST_TIMESTAMP)
                if latest.error == ErrorCode.none:
                    break
                if latest.error != ErrorCode.offset_not_available:
                    raise RuntimeError(f"{part.name}: {latest.error.name}")
                await asyncio.sleep(0.05)
            start = self.core.list_offsets(TXN_TOPIC, part.index, EARLIEST_TIMESTAMP)
            offset = max(start.offset, 0)
            while not part.closed:
                data, next_offset = self.core.read_local(TXN_TOPIC, part.index, offset, LOAD_READ_BYTES_MAX)
                if not data or next_offset <= offset:
                    break
                for batch in iter_batches(data, skip_bad=True):
                    if batch.error is not None:
                        log.error("%s: skipping the undecodable batch at %d: %s", part.name, batch.base_offset,
                                  batch.error)
                    for record in batch.records:
                        if record.offset >= offset:
                            self._replay(part, record.key, record.value)
                offset = next_offset
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("loading %s failed; will retry", part.name)
            if self._parts.get(part.index) is part:
                self._unload(part.index)  # the next reconcile loads it again
            return
        if part.closed:
            return
        part.loading = False
        log.info("loaded %s: %d transactional ids in %.0f ms (coordinator epoch %d)", part.name, len(part.txns),
                 (time.monotonic() - started) * 1000, part.leader_epoch)
        for meta in list(part.txns.values()):
            if meta.completing:  # the previous coordinator decided; finish its markers
                part.spawn(self._complete(part, meta), f"txn-markers-{meta.transactional_id}")

    def _replay(self, part: TxnPartition, key: bytes | None, value: bytes | None) -> None:
        try:
            if key is None:
                raise records.RecordFormatError("record without a key")
            transactional_id = records.decode_key(key)
            if value is None:
                part.txns.pop(transactional_id, None)
                return
            part.txns[transactional_id] = records.decode_value(transactional_id, value)
        except records.RecordFormatError as e:
            log.error("%s: skipping a bad record: %s", part.name, e)

    # -- locating ----------------------------------------------------------------------------------
    def _partition_count(self) -> int | None:
        topic = self.core.image().topic_by_name(TXN_TOPIC)
        return len(topic.partitions) if topic is not None and topic.partitions else None

    def _locate(self, transactional_id: str) -> tuple[ErrorCode, TxnPartition | None]:
        count = self._partition_count()
        if count is None:
            return ErrorCode.coordinator_not_available, None
        index = partition_for(transactional_id, count)
        part = self._parts.get(index)
        if part is None or part.closed or not self.core.is_leader(TXN_TOPIC, index):
            return ErrorCode.not_coordinator, None
        if part.loading:
            return ErrorCode.coordinator_load_in_progress, None
        return ErrorCode.none, part

    def find_coordinator(self, transactional_id: str) -> CoordinatorAnswer:
        topic = self.core.image().topic_by_name(TXN_TOPIC)
        if topic is None or not topic.partitions:
            self._ensure_topic()
            return CoordinatorAnswer(ErrorCode.coordinator_not_available,
                                     "the transaction state topic is being created (once "
                                     "transaction.state.log.replication.factor brokers are up)")
        registration = topic.partitions.get(partition_for(transactional_id, len(topic.partitions)))
        if registration is None or registration.leader < 0:
            return CoordinatorAnswer(ErrorCode.coordinator_not_available, "the transaction log partition has no leader")
        address = self.core.advertised_kafka_address(registration.leader)
        if address is None:
            return CoordinatorAnswer(ErrorCode.coordinator_not_available, "the coordinator's address is unknown")
        return CoordinatorAnswer(ErrorCode.none, None, registration.leader, address[0], address[1])

    def _ensure_topic(self) -> None:
        if self._ensure_task is not None and not self._ensure_task.done():
            return

        async def ensure() -> None:
            try:
                error = await self.core.ensure_topic(TXN_TOPIC)
                if error not in (ErrorCode.none, ErrorCode.coordinator_not_available):
                    log.warning("creating %s: %s", TXN_TOPIC, error.name)
            except Exception:
                log.exception("creating %s failed", TXN_TOPIC)

        self._ensure_task = asyncio.get_running_loop().create_task(ensure(), name="ensure-txn-topic")

    # -- writing -----------------------------------------------------------------------------------
    async def _write(self, part: TxnPartition, meta: TxnMetadata) -> ErrorCode:
        """Append the metadata with acks=-1; on success it becomes the id's state in memory."""
        record = (records.encode_key(meta.transactional_id), records.encode_value(meta))
        try:
            result = await self.core.produce(TXN_TOPIC, part.index, build_batch([record], self._wall_ms()), -1,
                                             WRITE_TIMEOUT_MS)
            error = _map_write_error(result.error)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("writing %s to %s failed", meta.transactional_id, part.name)
            error = ErrorCode.coordinator_not_available
        if part.closed:
            return ErrorCode.not_coordinator
        if error == ErrorCode.none:
            part.txns[meta.transactional_id] = meta
        return error

    async def _remove(self, part: TxnPartition, meta: TxnMetadata) -> ErrorCode:
        """Write a tombstone for an expired id (acks=-1); on success the id is forgotten. The id is
        pending meanwhile, so no request can change it between the decision and the write."""
        tid = meta.transactional_id
        if tid in part.pending or part.txns.get(tid) is not meta:
            return ErrorCode.concurrent_transactions
        part.pending.add(tid)
        try:
            try:
                result = await self.core.produce(TXN_TOPIC, part.index,
                                                 build_batch([(records.encode_key(tid), None)], self._wall_ms()),
                                                 -1, WRITE_TIMEOUT_MS)
                error = _map_write_error(result.error)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("removing %s from %s failed", tid, part.name)
                error = ErrorCode.coordinator_not_available
            if part.closed:
                return ErrorCode.not_coordinator
            if error == ErrorCode.none and part.txns.get(tid) is meta:
                del part.txns[tid]
            return error
        finally:
            part.pending.discard(tid)

    async def _apply(self, part: TxnPartition, decision: Decision) -> ErrorCode:
        """Write a decision's metadata (one write per id at a time) and start what follows it."""
        meta = decision.write
        assert meta is not None
        tid = meta.transactional_id
        if tid in part.pending:
            return ErrorCode.concurrent_transactions
        part.pending.add(tid)
        try:
            error = await self._write(part, meta)
        finally:
            part.pending.discard(tid)
        if error != ErrorCode.none:
            return error
        if decision.after in (After.SEND_MARKERS, After.ABORT_THEN_RETRY):
            part.spawn(self._complete(part, meta), f"txn-markers-{tid}")
        return decision.error

    # -- markers -----------------------------------------------------------------------------------
    async def _complete(self, part: TxnPartition, meta: TxnMetadata) -> None:
        """Write the markers of a PrepareCommit/PrepareAbort transaction, then complete it."""
        commit = meta.state is TxnState.PREPARE_COMMIT
        remaining = set(meta.partitions)
        backoff = RETRY_BACKOFF_MS_MIN
        while remaining and not part.closed:
            image = self.core.image()
            by_leader: dict[tuple[int, str], list[int]] = {}
            for topic, index in sorted(remaining):
                registration = image.topic_by_name(topic)
                p = registration.partitions.get(index) if registration is not None else None
                if p is None:
                    remaining.discard((topic, index))  # the topic is gone: nothing to mark
                    continue
                if p.leader >= 0:
                    by_leader.setdefault((p.leader, topic), []).append(index)
            sends = [(leader, topic, indexes) for (leader, topic), indexes in by_leader.items()]
            results = await asyncio.gather(*(
                self._send_markers(leader, topic, indexes, meta.producer_id, meta.producer_epoch,
                                   part.leader_epoch, commit) for leader, topic, indexes in sends),
                return_exceptions=True)
            for (leader, topic, indexes), result in zip(sends, results, strict=True):
                if isinstance(result, BaseException):
                    log.info("markers for %s to broker %d failed: %s", meta.transactional_id, leader, result)
                    continue
                for index, error in zip(indexes, result, strict=False):
                    if error in _MARKER_DONE or error == ErrorCode.unknown_topic_or_partition \
                            and self.core.image().topic_by_name(topic) is None:
                        remaining.discard((topic, index))
            if remaining:
                await asyncio.sleep(backoff / 1000)
                backoff = min(backoff * 2, RETRY_BACKOFF_MS_MAX)
        backoff = RETRY_BACKOFF_MS_MIN
        while not part.closed:
            current = part.txns.get(meta.transactional_id)
            if current is None or current.state is not meta.state or current.producer_epoch != meta.producer_epoch:
                return  # superseded (cannot happen while completing, but never overwrite a newer state)
            done = state.complete(current, self._wall_ms())
            error = await self._apply(part, Decision(write=done))
            if error == ErrorCode.none:
                log.info("transaction %s %s (producer %d epoch %d, %d partitions)", meta.transactional_id,
                         "committed" if commit else "aborted", meta.producer_id, meta.producer_epoch,
                         len(meta.partitions))
                return
            await asyncio.sleep(backoff / 1000)
            backoff = min(backoff * 2, RETRY_BACKOFF_MS_MAX)

    # -- operations --------------------------------------------------------------------------------
    async def init_producer_id(self, transactional_id: str, timeout_ms: int, expected_producer_id: int = -1,
                               expected_epoch: int = -1) -> tuple[ErrorCode, int, int]:
        """(error, producer id, epoch) for a transactional producer."""
        error, part = self._locate(transactional_id)
        if part is None:
            return error, -1, -1
        if transactional_id in part.pending:
            return ErrorCode.concurrent_transactions, -1, -1
        max_timeout = self._config("transaction.max.timeout.ms", 900_000)
        new_id: int | None = None
        for _ in range(2):
            decision = state.init_producer_id(part.txns.get(transactional_id), transactional_id, timeout_ms,
                                              self._wall_ms(), expected_producer_id, expected_epoch, new_id,
                                              max_timeout)
            if not decision.needs_producer_id:
                break
            allocated = await self.core.init_producer_id()
            if allocated.error != ErrorCode.none:
                return allocated.error, -1, -1
            new_id = allocated.producer_id
            if part.closed:
                return ErrorCode.not_coordinator, -1, -1
        if decision.write is None:
            current = decision.current
            if decision.error != ErrorCode.none or current is None:
                return decision.error if decision.error != ErrorCode.none else ErrorCode.unknown_server_error, -1, -1
            return ErrorCode.none, current.producer_id, current.producer_epoch
        error = await self._apply(part, decision)
        if error != ErrorCode.none:
            return error, -1, -1
        return ErrorCode.none, decision.write.producer_id, decision.write.producer_epoch

    async def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                             partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], ErrorCode]:
        error, part = self._locate(transactional_id)
        if part is None:
            return dict.fromkeys(partitions, error)
        image = self.core.image()
        unknown = {tp for tp in partitions
                   if (t := image.topic_by_name(tp[0])) is None or tp[1] not in t.partitions}
        if unknown:  # Kafka: the unknown ones fail, the others OPERATION_NOT_ATTEMPTED
            return {tp: ErrorCode.unknown_topic_or_partition if tp in unknown else ErrorCode.operation_not_attempted
                    for tp in partitions}
        if transactional_id in part.pending:
            return dict.fromkeys(partitions, ErrorCode.concurrent_transactions)
        decision = state.add_partitions(part.txns.get(transactional_id), producer_id, producer_epoch,
                                        frozenset(partitions), self._wall_ms())
        if decision.write is None:
            return dict.fromkeys(partitions, decision.error)
        return dict.fromkeys(partitions, await self._apply(part, decision))

    def offsets_partition(self, group_id: str) -> tuple[str, int] | None:
        topic = self.core.image().topic_by_name(OFFSETS_TOPIC)
        if topic is None or not topic.partitions:
            return None
        return OFFSETS_TOPIC, partition_for(group_id, len(topic.partitions))

    async def add_offsets(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          group_id: str) -> ErrorCode:
        """AddOffsetsToTxn: the group's offsets partition joins the transaction (its marker makes the
        transactional offset commits visible or drops them)."""
        target = self.offsets_partition(group_id)
        if target is None:
            return ErrorCode.coordinator_not_available
        return (await self.add_partitions(transactional_id, producer_id, producer_epoch, [target]))[target]

    async def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> ErrorCode:
        error, part = self._locate(transactional_id)
        if part is None:
            return error
        if transactional_id in part.pending:
            return ErrorCode.concurrent_transactions
        decision = state.end_txn(part.txns.get(transactional_id), producer_id, producer_epoch, commit,
                                 self._wall_ms())
        if decision.write is None:
            return decision.error
        return await self._apply(part, decision)

    def describe(self, transactional_ids: Sequence[str]) -> list[DescribedTxn]:
        out = []
        for tid in transactional_ids:
            error, part = self._locate(tid)
            meta = part.txns.get(tid) if part is not None else None
            if part is None:
                out.append(DescribedTxn(tid, error))
            elif meta is None or meta.state is TxnState.DEAD:
                out.append(DescribedTxn(tid, ErrorCode.transactional_id_not_found))
            else:
                out.append(DescribedTxn(tid, ErrorCode.none, meta.state.kafka_name, meta.producer_id,
                                        meta.producer_epoch, meta.timeout_ms, meta.start_ms,
                                        tuple(sorted(meta.partitions))))
        return out

    def list(self, states: Sequence[str] = (), producer_ids: Sequence[int] = ()) -> tuple[ErrorCode, list[DescribedTxn]]:
        wanted_states = {s.lower() for s in states}
        wanted_ids = set(producer_ids)
        error = ErrorCode.none
        listed = []
        for part in list(self._parts.values()):
            if part.loading:
                error = ErrorCode.coordinator_load_in_progress
                continue
            for meta in part.txns.values():
                if meta.state is TxnState.DEAD:
                    continue
                if wanted_states and meta.state.kafka_name.lower() not in wanted_states:
                    continue
                if wanted_ids and meta.producer_id not in wanted_ids:
                    continue
                listed.append(DescribedTxn(meta.transactional_id, ErrorCode.none, meta.state.kafka_name,
                                           meta.producer_id, meta.producer_epoch, meta.timeout_ms, meta.start_ms))
        return error, listed

    # -- periodic work -----------------------------------------------------------------------------
    async def _run_ticks(self) -> None:
        """Reconcile leadership every RECONCILE_INTERVAL_S; abort timed-out transactions every
        transaction.abort.timed.out.transaction.cleanup.interval.ms."""
        last_abort_check = last_expiry_check = time.monotonic()
        while True:
            await asyncio.sleep(RECONCILE_INTERVAL_S)
            try:
                self.reconcile()
                interval_s = self._config("transaction.abort.timed.out.transaction.cleanup.interval.ms", 10_000) / 1000
                if time.monotonic() - last_abort_check >= interval_s:
                    last_abort_check = time.monotonic()
                    self.abort_timed_out()
                interval_s = self._config("transaction.remove.expired.transaction.cleanup.interval.ms",
                                          3_600_000) / 1000
                if time.monotonic() - last_expiry_check >= interval_s:
                    last_expiry_check = time.monotonic()
                    self.remove_expired()
            except Exception:
                log.exception("transaction coordinator tick failed")

    def abort_timed_out(self) -> None:
        """Abort every Ongoing transaction past transaction.timeout.ms, fencing its producer."""
        now_ms = self._wall_ms()
        for part in list(self._parts.values()):
            if part.loading or part.closed:
                continue
            for meta in list(part.txns.values()):
                if meta.transactional_id in part.pending:
                    continue
                aborting = state.timed_out(meta, now_ms)
                if aborting is None:
                    continue
                log.info("transaction %s timed out after %d ms: aborting it", meta.transactional_id, meta.timeout_ms)
                part.spawn(self._apply_quietly(part, Decision(write=aborting, after=After.SEND_MARKERS)),
                           f"txn-timeout-{meta.transactional_id}")

    def remove_expired(self) -> None:
        """Remove every transactional id past transactional.id.expiration.ms (see state.expired)."""
        now_ms = self._wall_ms()
        expiration_ms = self._config("transactional.id.expiration.ms", 604_800_000)
        for part in list(self._parts.values()):
            if part.loading or part.closed:
                continue
            for meta in list(part.txns.values()):
                if meta.transactional_id in part.pending or not state.expired(meta, now_ms, expiration_ms):
                    continue
                log.info("transactional id %s expired (no change for %d ms): removing it", meta.transactional_id,
                         now_ms - meta.last_update_ms)
                part.spawn(self._remove_quietly(part, meta), f"txn-expire-{meta.transactional_id}")

    async def _remove_quietly(self, part: TxnPartition, meta: TxnMetadata) -> None:
        error = await self._remove(part, meta)
        if error not in (ErrorCode.none, ErrorCode.concurrent_transactions):
            log.info("removing the expired %s: %s (retried at the next check)", meta.transactional_id, error.name)

    async def _apply_quietly(self, part: TxnPartition, decision: Decision) -> None:
        error = await self._apply(part, decision)
        if error != ErrorCode.none:
            log.info("timing out %s: %s (retried at the next check)",
                     decision.write.transactional_id if decision.write else "?", error.name)
