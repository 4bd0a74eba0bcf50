"""The broker's replicas: reconcile them with metadata, serve produce/fetch, keep the ISR true.

Everything here runs on the broker's asyncio loop; storage calls are short (one WriteBatch per
produce request, bounded reads). Leadership comes only from the metadata image: on each new image the
manager computes `local_changes` and makes each replica a leader or a follower of the right epoch.

Time comes only from the two injected clocks (`monotonic_ms`, `wall_ms`; see broker/clock.py), so
the deterministic simulator can drive the same code on simulated time. The leader side of
replication is synchronous underneath its long poll: `LeaderSide.read_for_follower` answers one
partition of a ReplicaFetch and `LeaderSide.end_offset_for_epoch` one OffsetsForLeaderEpoch item,
both without awaiting anything.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker import metrics
from broker.api import DeleteRecordsResult, FetchPartition, FetchResult, ProduceResult
from broker.clock import Clock, system_monotonic_ms, system_wall_ms
from broker.fetch_session import LeaderSession, LeaderSessions, PartitionKey, Position, SessionUpdate
from broker.local_changes import LocalPartition, local_changes
from broker.partition import UNKNOWN_BROKER_EPOCH, LeaderState
from broker.throttle import ByteRate, is_catch_up, is_throttled
from cluster.aio import wait_for
from cluster.config import Config
from cluster.effective_config import server_value
from cluster.errors import ErrorCode, LogError
from cluster.image import MetadataImage, PartitionRegistration
from storage.batch import iter_batches
from storage.log import LogConfig, PartitionLog, ProducerCheckResult
from storage.producer_state import check_request
from storage.txn_index import control_batch

log = logging.getLogger("brook.replicas")


@dataclass(eq=False)
class Partition:
    """One local replica: its log and, when leading, its replication state."""

    topic: str
    topic_id: bytes
    index: int
    log: PartitionLog
    registration: PartitionRegistration | None = None
    leader_id: int = -1
    leader_epoch: int = -1
    leader: LeaderState | None = None          # set while this broker leads
    needs_truncation: bool = False             # follower: OffsetsForLeaderEpoch before fetching
    paused_until_ms: int = 0                   # follower: leader said an epoch is wrong; retry later
    out_of_range_count: int = 0                # follower: consecutive OFFSET_OUT_OF_RANGE answers
    # follower: the (leader id, leader epoch) whose answer this replica's truncation last applied, None
    # since truncation (re)started without one; with `needs_truncation` False, the leader and epoch the
    # truncation finished against (broker/fetcher.py, the safety-net tripwire).
    truncated_against: tuple[int, int] | None = None
    # follower: how often a leader reported a divergence (KIP-320) after this replica had finished
    # truncating against that same leader at that same epoch, which a correct build never does.
    divergences_after_truncation: int = 0
    data_event: asyncio.Event = field(default_factory=asyncio.Event)
    hw_event: asyncio.Event = field(default_factory=asyncio.Event)
    # Followers' fetch sessions that hold this partition (follower id -> session), shared by every
    # Partition object of the key (ReplicaManager.session_watchers).
    watchers: dict[int, LeaderSession] = field(default_factory=dict)

    @property
    def is_leader(self) -> bool:
        return self.leader is not None

    def start_truncation(self) -> None:
        """Truncate (again) before the next fetch: forget what an earlier truncation finished against."""
        self.needs_truncation = True
        self.truncated_against = None

    def notify_data(self) -> None:
        self.data_event.set()
        self.data_event = asyncio.Event()
        self._tell_sessions(True)

    def notify_hw(self) -> None:
        """Wakes acks=all and consumer waiters; followers' parked polls learn the HW with their next
        answer (see LeaderSide.replica_fetch_session)."""
        self.hw_event.set()
        self.hw_event = asyncio.Event()
        self._tell_sessions(False)

    def _tell_sessions(self, wake: bool) -> None:
        if self.watchers:
            key = (self.topic_id, self.index)
            for session in self.watchers.values():
                session.mark(key, wake)


class ReplicaManager:
    def __init__(self, broker_id: int, log_manager: Any, config: Config,
                 alter_partition: Callable[[list[tuple[Partition, tuple[int, ...]]]], Any],
                 log_config_for: Callable[[MetadataImage, str], LogConfig],
                 topic_value: Callable[[MetadataImage, str, str], str], *,
                 monotonic_ms: Clock = system_monotonic_ms, wall_ms: Clock = system_wall_ms) -> None:
        self.broker_id = broker_id
        self.monotonic_ms = monotonic_ms  # lag times, deadlines
        self.wall_ms = wall_ms            # record timestamps (LogAppendTime)
        self.logs = log_manager
        self.config = config
        self.alter_partition = alter_partition
        self.log_config_for = log_config_for
        self.topic_value = topic_value
        self.partitions: dict[tuple[bytes, int], Partition] = {}
        self.by_name: dict[tuple[str, int], Partition] = {}
        # Followed replicas by leader broker, kept from metadata changes (the fetchers' partition sets).
        self.followed: dict[int, dict[tuple[bytes, int], Partition]] = {}
        # Who is told which followed partitions changed (a fetcher loop per leader: it recomputes
        # only those, see broker/fetcher.py), by leader broker id.
        self.follow_listeners: dict[int, weakref.WeakSet[Any]] = {}
        self.session_watchers: dict[tuple[bytes, int], dict[int, LeaderSession]] = {}
        # Reassignment catch-up throttles (broker/throttle.py), rates from the dynamic configs.
        self.leader_throttle = ByteRate()
        self.follower_throttle = ByteRate()
        # Led partitions whose ISR may need a change: not every follower of the ISR has reached our LEO,
        # a replica is outside the ISR, or an AlterPartition is in flight. isr_maintenance visits only
        # these; a quiescent partition re-enters on an append or a registration change.
        self.isr_watch: set[tuple[bytes, int]] = set()
        # Hosted replicas of partitions without a leader, kept from metadata changes: every heartbeat
        # reports their log ends (the controller's unclean-election probe) without a walk over all.
        self.offline: dict[tuple[bytes, int], Partition] = {}
        self.image: MetadataImage | None = None
        self._configs: dict[str, LogConfig] = {}
        self.fetcher_changed: Callable[[], None] = lambda: None
        self.leadership_listeners: list[Callable[[str, int, bool, int], None]] = []
        self.lag_time_max_ms = int(config["replica.lag.time.max.ms"])
        # Worker threads for compressed produce validation (broker/offload.py); None: inline (unit tests, the
        # simulator).
        self.offload: Any = None
        # The safety-net tripwire's broker total (every partition's `divergences_after_truncation`,
        # deleted ones included; the fetcher adds to it): exposed as a brook_ metric.
        self.divergences_after_truncation = 0

    # -- reconcile with metadata -----------------------------------------------------------------
    def apply_image(self, image: MetadataImage) -> None:
        previous = self.image
        self.image = image
        self._refresh_throttles(image)
        changes = local_changes(previous, image, self.broker_id)
        self._configs = {}  # log configs of this apply, one per topic (_log_config)
        self._create_logs(image, [*changes.leaders, *changes.followers])
        # One replica's failure (a storage error) must not stop the others from following the image.
        for key in changes.deletes:
            self._guard(self._delete, key, *key)
        for local in changes.leaders:
            self._guard(self._become_leader, (local.topic_id, local.partition), local)
        for local in changes.followers:
            self._guard(self._become_follower, (local.topic_id, local.partition), local)
        for local in changes.updates:
            self._guard(self._update, (local.topic_id, local.partition), local)
        self._track_offline(changes.deletes, [*changes.leaders, *changes.followers, *changes.updates])
        if previous is None or any((changes.leaders, changes.followers, changes.deletes)):
            self._refresh_configs(image)
        self.fetcher_changed()

    def _track_offline(self, deletes: list[tuple[bytes, int]], changed: list[LocalPartition]) -> None:
        """Keep `offline` (hosted replicas whose partition has no leader) from this change alone."""
        for key in deletes:
            self.offline.pop(key, None)
        for local in changed:
            key = (local.topic_id, local.partition)
            p = self.partitions.get(key)
            if p is not None and p.registration is not None and p.registration.leader < 0:
                self.offline[key] = p
            else:
                self.offline.pop(key, None)

    def _guard(self, action: Callable[..., None], key: tuple[bytes, int], *args: Any) -> None:
        try:
            action(*args)
        except Exception:
            log.exception("cannot reconcile partition %s-%d", key[0].hex(), key[1])

    def _refresh_configs(self, image: MetadataImage) -> None:
        configs: dict[str, LogConfig | Exception] = {}  # one computation per topic, not per partition
        for p in self.partitions.values():
            config = configs.get(p.topic)
            if config is None:
                try:
                    config = self.log_config_for(image, p.topic)
                except (ValueError, LogError) as e:
                    config = e
                configs[p.topic] = config
            try:
                if isinstance(config, Exception):
                    raise config
                p.log.update_config(config)
            except (ValueError, LogError) as e:
                log.warning("keeping the old log config of %s-%d: %s", p.topic, p.index, e)

    def _create_logs(self, image: MetadataImage, locals_: list[LocalPartition]) -> None:
        """Open or create the logs of the replicas this image brings, in one storage write where the
        log manager can (a topic of thousands of partitions); `_get_or_create` then finds them open."""
        create_many = getattr(self.logs, "get_or_create_many", None)
        new = [local for local in locals_ if (local.topic_id, local.partition) not in self.partitions]
        if create_many is None or len(new) < 2:
            return
        try:
            create_many([(local.topic_id, local.topic, local.partition, self._log_config(image, local.topic))
                         for local in new])
        except Exception:  # each replica is then created (or fails) on its own, under _guard
            log.exception("cannot create %d logs at once; creating them one by one", len(new))

    def _log_config(self, image: MetadataImage, topic: str) -> LogConfig:
        """`log_config_for` once per topic during one image's apply (thousands of partitions of a
        topic share it)."""
        config = self._configs.get(topic)
        if config is None:
            config = self._configs[topic] = self.log_config_for(image, topic)
        return config

    def _get_or_create(self, local: LocalPartition) -> Partition:
        key = (local.topic_id, local.partition)
        p = self.partitions.get(key)
        if p is None:
            assert self.image is not None
            plog = self.logs.get_or_create(local.topic_id, local.topic, local.partition,
                                           self._log_config(self.image, local.topic))
            p = Partition(local.topic, local.topic_id, local.partition, plog,
                          watchers=self.session_watchers.setdefault(key, {}))
            self.partitions[key] = p
            self.by_name[(local.topic, local.partition)] = p
        return p

    def watch_followed(self, leader_id: int, listener: Any) -> None:
        """`listener.followed_changed(key)` is called whenever the replica `key` starts or stops being
        followed from `leader_id`, or is followed at a new leader epoch (held weakly)."""
        self.follow_listeners.setdefault(leader_id, weakref.WeakSet()).add(listener)

    def _followed_changed(self, leader_id: int, key: tuple[bytes, int]) -> None:
        listeners = self.follow_listeners.get(leader_id)
        if listeners:
            for listener in listeners:
                listener.followed_changed(key)

    def _unfollow(self, p: Partition) -> None:
        key = (p.topic_id, p.index)
        followed = self.followed.get(p.leader_id)
        if followed is not None:
            followed.pop(key, None)
            if not followed:
                del self.followed[p.leader_id]
        self._followed_changed(p.leader_id, key)

    def _become_leader(self, local: LocalPartition) -> None:
        p = self._get_or_create(local)
        self._unfollow(p)
        reg = local.registration
        was_leader = p.is_leader
        p.registration, p.leader_id, p.leader_epoch = reg, self.broker_id, reg.leader_epoch
        p.needs_truncation, p.paused_until_ms, p.out_of_range_count = False, 0, 0
        p.truncated_against = None
        leo = p.log.log_end_offset
        # KAFKA-7415: the new epoch starts at our LEO, recorded now rather than at the first append,
        # so a follower asking for the end of an older epoch learns where our history departs from
        # its own (else it is told "unknown" and keeps a tail we never had).
        p.log.assign_epoch(reg.leader_epoch, leo)
        hw = min(p.log.high_watermark, leo)
        p.leader = LeaderState.start(self.broker_id, reg.leader_epoch, reg.partition_epoch, reg.replicas,
                                     reg.isr, hw, self.monotonic_ms(), epoch_start_offset=leo)
        log.info("%s-%d: leader at epoch %d (ISR %s, LEO %d, HW %d)", p.topic, p.index, reg.leader_epoch,
                 list(reg.isr), leo, hw)
        self._maybe_advance_hw(p)
        self.isr_watch.add((p.topic_id, p.index))
        p.notify_data()
        p.notify_hw()
        if not was_leader:
            self._tell_listeners(p, True)

    def _become_follower(self, local: LocalPartition) -> None:
        p = self._get_or_create(local)
        reg = local.registration
        was_leader = p.is_leader
        self._unfollow(p)
        p.registration, p.leader_id, p.leader_epoch = reg, reg.leader, reg.leader_epoch
        p.leader = None
        if reg.leader >= 0:
            self.followed.setdefault(reg.leader, {})[(p.topic_id, p.index)] = p
            self._followed_changed(reg.leader, (p.topic_id, p.index))
        p.start_truncation()
        p.paused_until_ms = 0
        p.out_of_range_count = 0
        log.info("%s-%d: follower of %d at epoch %d (LEO %d)", p.topic, p.index, reg.leader, reg.leader_epoch,
                 p.log.log_end_offset)
        p.notify_data()
        p.notify_hw()  # wake acks=all waiters: they must fail, not hang
        if was_leader:
            self._tell_listeners(p, False)

    @metrics.track_isr_change(lambda self, local: self.partitions.get((local.topic_id, local.partition)))
    def _update(self, local: LocalPartition) -> None:
        p = self.partitions.get((local.topic_id, local.partition))
        if p is None:
            return
        p.registration = local.registration
        if p.leader is not None:
            reg = local.registration
            p.leader.update_registration(reg.partition_epoch, reg.replicas, reg.isr, self.monotonic_ms())
            self.isr_watch.add((p.topic_id, p.index))
            self._maybe_advance_hw(p)
            p.notify_hw()

    def _delete(self, topic_id: bytes, index: int) -> None:
        p = self.partitions.pop((topic_id, index), None)
        if p is None:
            return
        self.by_name.pop((p.topic, p.index), None)
        self._unfollow(p)
        if p.is_leader:
            self._tell_listeners(p, False)
        p.leader = None
        p.notify_data()
        p.notify_hw()
        log.info("%s-%d: deleting the local replica", p.topic, p.index)
        self.logs.delete(topic_id, index)

    def _tell_listeners(self, p: Partition, is_leader: bool) -> None:
        for callback in self.leadership_listeners:
            try:
                callback(p.topic, p.index, is_leader, p.leader_epoch)
            except Exception:
                log.exception("leadership listener failed")

    # -- leader: high watermark and ISR ----------------------------------------------------------
    def _maybe_advance_hw(self, p: Partition) -> bool:
        state = p.leader
        if state is None:
            return False
        hw = state.compute_high_watermark(p.log.log_end_offset)
        if hw > state.high_watermark or hw > p.log.high_watermark:
            state.high_watermark = hw
            p.log.set_high_watermark(hw)
            p.notify_hw()
            return True
        return False

    def min_insync(self, p: Partition) -> int:
        assert self.image is not None
        return int(self.topic_value(self.image, p.topic, "min.insync.replicas"))

    def isr_maintenance(self) -> None:
        """Shrink lagging followers out of the ISR and add caught-up ones back (AlterPartition)."""
        now = self.monotonic_ms()
        requests: list[tuple[Partition, tuple[int, ...]]] = []
        image = self.image
        eligible = frozenset(image.active_broker_ids()) if image is not None else frozenset()
        for key in list(self.isr_watch):
            p = self.partitions.get(key)
            state = p.leader if p is not None else None
            if p is None or state is None:
                self.isr_watch.discard(key)
                continue
            if state.pending_isr is not None:
                continue
            leo = p.log.log_end_offset
            shrunk = state.shrink_candidates(now, self.lag_time_max_ms, leo)
            target = shrunk if shrunk != state.isr else state.expand_candidates(now, self.lag_time_max_ms, eligible)
            if target != state.isr:
                state.pending_isr = target
                requests.append((p, target))
            elif state.quiescent(leo):
                self.isr_watch.discard(key)
        if requests:
            self.alter_partition(requests)

    @metrics.track_isr_change(lambda self, p: p)
    def on_alter_partition_result(self, p: Partition, error: ErrorCode, reg: PartitionRegistration | None, *,
                                  sent: tuple[int, int, tuple[int, ...]] | None = None) -> None:
        """The controller's answer to an AlterPartition; `sent` = (leader epoch, partition epoch,
        proposed ISR) of the request it answers. An answer to an older request than the one in
        flight is ignored (Kafka's `Partition.handleAlterPartitionUpdate`): acting on it would drop
        the pending (maximal) ISR of the newer request while that may still commit — the HW would
        then pass a joining replica's LEO (simulator seed 29423: a reply delayed 127 ms cleared the
        pending addition of b2, the HW passed b2's LEO, and the addition committed 115 ms later)."""
        state = p.leader
        if state is None:
            return
        if sent is not None and state.proposal != sent:
            log.debug("%s-%d: ignoring the answer to an older AlterPartition (%s): %s in flight", p.topic, p.index,
                      sent, state.proposal)
            return
        if error in (ErrorCode.invalid_update_version, ErrorCode.fenced_leader_epoch):
            # Our view is stale, perhaps because an earlier attempt of this very change committed: keep
            # the pending ISR until the metadata shows the outcome (update_registration clears it).
            return
        state.pending_isr = None
        self.isr_watch.add((p.topic_id, p.index))
        if error == ErrorCode.none and reg is not None and reg.leader_epoch == state.leader_epoch:
            if reg.isr != state.isr:
                log.info("%s-%d: ISR %s -> %s", p.topic, p.index, list(state.isr), list(reg.isr))
            state.update_registration(reg.partition_epoch, reg.replicas, reg.isr, self.monotonic_ms())
            self._maybe_advance_hw(p)
            p.notify_hw()
        elif error != ErrorCode.none:
            log.info("%s-%d: AlterPartition rejected: %s", p.topic, p.index, error.name)

    def expire_producers(self, expiration_ms: int) -> int:
        """producer.id.expiration.ms: every log (led or followed) forgets the producers whose last batch is
        `expiration_ms` older than the wall clock; returns how many were forgotten."""
        now_ms = self.wall_ms()
        return sum(p.log.expire_producers(now_ms, expiration_ms) for p in list(self.partitions.values()))

    # -- produce ---------------------------------------------------------------------------------
    def lookup(self, topic: str, partition: int) -> Partition | None:
        return self.by_name.get((topic, partition))

    @metrics.track_produce
    async def produce(self, topic: str, partition: int, records: bytes, acks: int, timeout_ms: int) -> ProduceResult:
        p = self.by_name.get((topic, partition))
        if p is None or p.leader is None:
            return ProduceResult(self._not_leader_error(topic, partition))
        state = p.leader
        if acks == -1 and len(state.isr) < self.min_insync(p):
            return ProduceResult(ErrorCode.not_enough_replicas,
                                 message=f"ISR {list(state.isr)} is smaller than min.insync.replicas")
        checked = False
        if self.offload is not None:
            try:  # decompress and check compressed batches on a worker, not on the event loop
                checked = await self.offload.check_produce(records, p.log.config.max_message_bytes)
            except LogError as e:
                return ProduceResult(e.code, message=e.message)
            if self.by_name.get((topic, partition)) is not p or p.leader is not state:
                return ProduceResult(self._not_leader_error(topic, partition))  # leadership moved meanwhile
        try:
            duplicate = self._check_idempotence(p, records)
            if duplicate is not None:
                # A retried batch that was appended but never replicated is not yet committed:
                # acks=all still waits for the HW to pass it.
                if acks != -1 or duplicate.error != ErrorCode.none:
                    return duplicate
                last_delta = max(h.last_offset_delta for h, _ in iter_batches(records))
                return await self._wait_for_hw(p, state.leader_epoch, duplicate.base_offset + last_delta + 1,
                                               timeout_ms, duplicate)
            info = p.log.append_as_leader(records, state.leader_epoch, self.wall_ms(), compressed_checked=checked)
        except LogError as e:
            return ProduceResult(e.code, message=e.message)
        self.isr_watch.add((p.topic_id, p.index))
        p.notify_data()
        self._maybe_advance_hw(p)  # a single-replica ISR commits at once
        result = ProduceResult(ErrorCode.none, info.first_offset, info.log_append_time_ms, p.log.log_start_offset)
        if acks != -1:
            return result
        return await self._wait_for_hw(p, state.leader_epoch, info.last_offset + 1, timeout_ms, result)

    async def append_marker(self, topic: str, partition: int, producer_id: int, producer_epoch: int,
                            coordinator_epoch: int, commit: bool, timeout_ms: int) -> ErrorCode:
        """Write one transaction marker (a COMMIT or ABORT control batch) as the partition's leader and
        wait until the ISR has it (Kafka's WriteTxnMarkers: acks=-1, min.insync.replicas).

        A marker of an epoch older than the producer's stored one is refused (INVALID_PRODUCER_EPOCH):
        a newer producer incarnation has written here, so that transaction was already ended.
        """
        p = self.by_name.get((topic, partition))
        if p is None or p.leader is None:
            return self._not_leader_error(topic, partition)
        state = p.leader
        if len(state.isr) < self.min_insync(p):
            return ErrorCode.not_enough_replicas
        check = p.log.check_producer_batch(producer_id, producer_epoch, 0, 0)
        if check.result == ProducerCheckResult.INVALID_PRODUCER_EPOCH:
            return ErrorCode.invalid_producer_epoch
        batch = control_batch(producer_id, producer_epoch, coordinator_epoch, commit, self.wall_ms())
        try:
            info = p.log.append_as_leader(batch, state.leader_epoch, self.wall_ms())
        except LogError as e:
            return e.code
        self.isr_watch.add((p.topic_id, p.index))
        p.notify_data()
        self._maybe_advance_hw(p)
        result = await self._wait_for_hw(p, state.leader_epoch, info.last_offset + 1, timeout_ms,
                                         ProduceResult(ErrorCode.none, info.first_offset))
        return result.error

    def last_stable_offset(self, p: Partition) -> int:
        """min(HW, first offset of the oldest open transaction): read_committed reads below it."""
        assert p.leader is not None
        hw = p.leader.high_watermark
        first = p.log.first_unstable_offset()
        return hw if first is None else min(hw, first)

    def _check_idempotence(self, p: Partition, records: bytes) -> ProduceResult | None:
        """Kafka's sequence rules over the whole request: each batch of a producer is checked against
        the one before it in the request, the first against the stored state."""
        headers = [header for header, _ in iter_batches(records)]
        found = check_request(p.log.check_producer_batch, headers)
        if found is not None:
            index, check = found
            header = headers[index]
            if check.result == ProducerCheckResult.DUPLICATE:
                return ProduceResult(ErrorCode.none, check.first_offset, -1, p.log.log_start_offset)
            if check.result == ProducerCheckResult.OUT_OF_ORDER_SEQUENCE:
                return ProduceResult(ErrorCode.out_of_order_sequence_number,
                                     message=f"producer {header.producer_id}: sequence {header.base_sequence} "
                                             "does not follow the last one")
            if check.result == ProducerCheckResult.INVALID_PRODUCER_EPOCH:
                return ProduceResult(ErrorCode.invalid_producer_epoch,
                                     message=f"producer {header.producer_id}: epoch {header.producer_epoch} is old")
        return None

    @metrics.track_produce_wait
    async def _wait_for_hw(self, p: Partition, epoch: int, target: int, timeout_ms: int,
                           result: ProduceResult) -> ProduceResult:
        deadline_ms = self.monotonic_ms() + max(timeout_ms, 1)
        while True:
            state = p.leader
            if state is None or state.leader_epoch != epoch:
                return ProduceResult(ErrorCode.not_leader_or_follower,
                                     message="leadership moved before the write was replicated")
            # The ISR check comes first: once the ISR shrinks to the leader alone the HW jumps to
            # its LEO, and a write held by one copy must not be acknowledged (Kafka does the same).
            if len(state.isr) < self.min_insync(p):
                return ProduceResult(ErrorCode.not_enough_replicas_after_append,
                                     message="the ISR shrank below min.insync.replicas while waiting")
            if state.high_watermark >= target:
                return result
            remaining_ms = deadline_ms - self.monotonic_ms()
            if remaining_ms <= 0:
                return ProduceResult(ErrorCode.request_timed_out,
                                     message=f"not replicated to the ISR within {timeout_ms} ms")
            event = p.hw_event
            try:  # cluster.aio.wait_for: the simulator's scheduler swaps this module's `wait_for`
                await wait_for(event.wait(), remaining_ms / 1000.0)
            except TimeoutError:
                pass

    def _not_leader_error(self, topic: str, partition: int) -> ErrorCode:
        image = self.image
        t = image.topic_by_name(topic) if image else None
        if t is None or partition not in t.partitions:
            return ErrorCode.unknown_topic_or_partition
        return ErrorCode.not_leader_or_follower

    def _refresh_throttles(self, image: MetadataImage) -> None:
        broker = str(self.broker_id)
        try:
            self.leader_throttle.set_rate(int(server_value(image, self.config, broker,
                                                           "leader.replication.throttled.rate")))
            self.follower_throttle.set_rate(int(server_value(image, self.config, broker,
                                                             "follower.replication.throttled.rate")))
        except ValueError as e:  # a stored value this version cannot read: keep the previous rates
            log.warning("replication throttles: %s", e)

    def catch_up_throttled(self, p: Partition, replica: int) -> bool:
        """Follower side (replica = this broker): whether this broker's fetching of `p` is throttled —
        reassignment catch-up traffic, or listed in follower.replication.throttled.replicas while out of
        the ISR."""
        return self._throttled(p, replica, "follower.replication.throttled.replicas")

    def leader_throttled(self, p: Partition, replica: int) -> bool:
        """Leader side: whether sending `p` to follower `replica` is throttled — reassignment catch-up
        traffic, or `replica` out of the ISR with this broker listed in leader.replication.throttled.replicas."""
        return self._throttled(p, replica, "leader.replication.throttled.replicas")

    def _throttled(self, p: Partition, replica: int, key: str) -> bool:
        if p.registration is None:
            return False
        if is_catch_up(p.registration.adding_replicas, replica):
            return True
        isr = p.leader.isr if p.leader is not None else p.registration.isr
        try:
            listed_replicas = self.topic_value(self.image, p.topic, key) if self.image is not None else ""
        except ValueError:  # a stored value this version cannot read: not throttled
            return False
        return is_throttled(p.registration.adding_replicas, tuple(isr), replica, listed_replicas, p.index,
                            self.broker_id)

    # -- DeleteRecords ---------------------------------------------------------------------------
    def low_watermark(self, p: Partition) -> int:
        """The lowest log start offset of the leader and its ISR followers (Kafka's low watermark;
        a follower that has not reported one counts as the log's beginning)."""
        assert p.leader is not None
        low = p.log.log_start_offset
        for replica in p.leader.isr:
            if replica != self.broker_id:
                progress = p.leader.followers.get(replica)
                low = min(low, max(0, progress.log_start_offset) if progress is not None else 0)
        return low

    async def delete_records(self, topic: str, partition: int, offset: int, timeout_ms: int,
                             poll_s: float = 0.05) -> DeleteRecordsResult:
        """Kafka's DeleteRecords on the leader: move the log start to `offset` (-1: the HW), then
        wait until every ISR follower reports a log start at least that high (followers follow the
        leader's log start in their fetch answers, `broker.fetcher.follow_log_start`). On timeout
        REQUEST_TIMED_OUT with the low watermark reached so far."""
        p = self.by_name.get((topic, partition))
        if p is None or p.leader is None:
            return DeleteRecordsResult(self._not_leader_error(topic, partition))
        hw = p.leader.high_watermark
        target = hw if offset == -1 else offset
        if target < 0 or target > hw:
            return DeleteRecordsResult(ErrorCode.offset_out_of_range, message=(
                f"offset {offset} is outside [0, {hw}] (the high watermark)"))
        try:
            p.log.delete_records_before(target)
        except LogError as e:
            return DeleteRecordsResult(e.code, message=e.message)
        log.info("%s-%d: log start offset moved to %d by DeleteRecords", topic, partition, p.log.log_start_offset)
        p.notify_hw()  # followers' parked fetches answer now, carrying the new log start
        deadline_ms = self.monotonic_ms() + max(0, timeout_ms)
        while True:
            if p.leader is None:
                return DeleteRecordsResult(ErrorCode.not_leader_or_follower)
            low = self.low_watermark(p)
            if low >= target:
                return DeleteRecordsResult(ErrorCode.none, low)
            if self.monotonic_ms() >= deadline_ms:
                return DeleteRecordsResult(ErrorCode.request_timed_out, low,
                                           f"the ISR followers' log start reached {low}, not {target}")
            await asyncio.sleep(poll_s)

    # -- consumer fetch --------------------------------------------------------------------------
    def read_committed(self, req: FetchPartition, read_committed: bool = False) -> FetchResult:
        """Read below the HW (read_uncommitted) or below the last stable offset (read_committed,
        with the aborted transactions of the range read)."""
        p = self.by_name.get((req.topic, req.partition))
        if p is None or p.leader is None:
            return FetchResult(self._not_leader_error(req.topic, req.partition))
        if req.current_leader_epoch >= 0 and req.current_leader_epoch != p.leader_epoch:
            code = (ErrorCode.fenced_leader_epoch if req.current_leader_epoch < p.leader_epoch
                    else ErrorCode.unknown_leader_epoch)
            return FetchResult(code)
        hw = p.leader.high_watermark
        lso = self.last_stable_offset(p)
        upper = lso if read_committed else hw
        aborted: tuple[tuple[int, int], ...] | None = None
        try:
            if req.offset == upper or req.max_bytes <= 0:
                records = b""
                next_offset = req.offset
            else:
                result = p.log.read(req.offset, req.max_bytes, upper)
                records, next_offset = result.records, result.next_offset
            if read_committed:
                aborted = tuple((a.producer_id, a.first_offset)
                                for a in p.log.aborted_transactions(req.offset, next_offset)) if records else ()
        except LogError as e:
            return FetchResult(e.code, hw, lso, p.log.log_start_offset, message=e.message)
        return FetchResult(ErrorCode.none, hw, lso, p.log.log_start_offset, records, aborted_transactions=aborted)

    @metrics.track_fetch
    async def fetch(self, reqs: Sequence[FetchPartition], max_wait_ms: int, min_bytes: int,
                    max_bytes: int, read_committed: bool = False) -> list[FetchResult]:
        deadline_ms = self.monotonic_ms() + max(0, max_wait_ms)
        while True:
            results, total = [], 0
            for req in reqs:
                budget = max(0, min(req.max_bytes, max_bytes - total)) if total else req.max_bytes
                result = self.read_committed(FetchPartition(req.topic, req.partition, req.offset, budget,
                                                            req.current_leader_epoch), read_committed)
                total += len(result.records)
                results.append(result)
            remaining_ms = deadline_ms - self.monotonic_ms()
            if total >= max(min_bytes, 1) or remaining_ms <= 0 or any(r.error != ErrorCode.none for r in results):
                return results
            events = [p.hw_event for req in reqs if (p := self.by_name.get((req.topic, req.partition)))]
            if not events:
                return results
            await _wait_any(events, remaining_ms / 1000.0)


async def _wait_any(events: list[asyncio.Event], timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


@dataclass(frozen=True, slots=True)
class ReplicaFetchItem:
    topic_id: bytes
    partition: int
    fetch_offset: int
    current_leader_epoch: int
    last_fetched_epoch: int = -1  # KIP-320: the epoch of the follower's last batch (-1: none)
    log_start_offset: int = -1    # the follower's log start offset (-1: not reported)


@dataclass(frozen=True, slots=True)
class ReplicaFetchOutcome:
    """One partition's answer. With `diverging_epoch` >= 0 the follower's history departs from the
    leader's: it must truncate to (at most) `diverging_end_offset` before fetching again (KIP-320)."""

    topic_id: bytes
    partition: int
    error: ErrorCode
    high_watermark: int = -1
    log_start_offset: int = -1
    log_end_offset: int = -1
    records: bytes = b""
    diverging_epoch: int = -1
    diverging_end_offset: int = -1
    throttled: bool = False  # data is waiting but leader.replication.throttled.rate held it back


def _leader_check(p: Partition | None, epoch: int) -> ErrorCode:
    if p is None or p.leader is None:
        return ErrorCode.not_leader_or_follower
    if epoch < p.leader_epoch:
        return ErrorCode.fenced_leader_epoch
    if epoch > p.leader_epoch:
        return ErrorCode.unknown_leader_epoch
    return ErrorCode.none


class LeaderSide:
    """Answers followers: ReplicaFetch (long poll) and OffsetsForLeaderEpoch."""

    def __init__(self, manager: ReplicaManager) -> None:
        self.m = manager
        self.sessions = LeaderSessions()

    def read_for_follower(self, replica_id: int, item: ReplicaFetchItem, budget: int,
                          broker_epoch: int = UNKNOWN_BROKER_EPOCH) -> ReplicaFetchOutcome:
        """Answer one partition of a follower's fetch, synchronously (the simulator's entry point).

        Checks the leader epoch, then KIP-320: if the follower's last fetched epoch ends earlier in
        our log than its fetch offset (or we do not have that epoch), answer the diverging epoch and
        its end offset with no data and without counting the fetch as progress. Otherwise record the
        follower's progress (for its `broker_epoch` incarnation), maybe advance the HW, and read up
        to `budget` bytes from the fetch offset.
        """
        p = self.m.partitions.get((item.topic_id, item.partition))
        error = _leader_check(p, item.current_leader_epoch)
        if error != ErrorCode.none or p is None or p.leader is None:
            return ReplicaFetchOutcome(item.topic_id, item.partition, error)
        plog = p.log
        leo = plog.log_end_offset
        if item.last_fetched_epoch >= 0:
            epoch, end_offset = plog.end_offset_for_epoch(item.last_fetched_epoch)
            if end_offset >= 0 and (epoch < item.last_fetched_epoch or end_offset < item.fetch_offset):
                return ReplicaFetchOutcome(item.topic_id, item.partition, ErrorCode.none, p.leader.high_watermark,
                                           plog.log_start_offset, leo, diverging_epoch=epoch,
                                           diverging_end_offset=end_offset)
        if item.fetch_offset > leo or item.fetch_offset < plog.log_start_offset:
            return ReplicaFetchOutcome(item.topic_id, item.partition, ErrorCode.offset_out_of_range,
                                       p.leader.high_watermark, plog.log_start_offset, leo)
        p.leader.record_fetch(replica_id, item.fetch_offset, leo, self.m.monotonic_ms(), broker_epoch,
                              item.log_start_offset)
        if item.fetch_offset < leo:
            self.m.isr_watch.add((item.topic_id, item.partition))  # a follower behind: ISR checks resume
        self.m._maybe_advance_hw(p)
        records = b""
        throttle = self.m.leader_throttle
        throttled = throttle.limited and self.m.leader_throttled(p, replica_id)
        if throttled and item.fetch_offset < leo:
            now = self.m.monotonic_ms()
            budget = min(budget, throttle.allowance(now))
            if budget <= 0:
                return ReplicaFetchOutcome(item.topic_id, item.partition, ErrorCode.none, p.leader.high_watermark,
                                           plog.log_start_offset, leo, throttled=True)
        if item.fetch_offset < leo and budget > 0:
            records = plog.read(item.fetch_offset, budget, leo).records
            if throttled:
                throttle.spend(len(records), self.m.monotonic_ms())
        return ReplicaFetchOutcome(item.topic_id, item.partition, ErrorCode.none, p.leader.high_watermark,
                                   plog.log_start_offset, leo, records)

    async def replica_fetch(self, replica_id: int, items: Sequence[ReplicaFetchItem], max_wait_ms: int,
                            min_bytes: int, max_bytes: int, partition_max_bytes: int,
                            broker_epoch: int = UNKNOWN_BROKER_EPOCH) -> list[ReplicaFetchOutcome]:
        """The long poll around `read_for_follower`: answer at once on data, an error or a divergence,
        else wait for one (bounded by `max_wait_ms`). A HW move alone does not end the poll: the
        follower learns the HW with its next answer (HW_NEWS_WAITS)."""
        deadline_ms = self.m.monotonic_ms() + max(0, min(max_wait_ms, 30_000))
        while True:
            outcomes, total = [], 0
            for item in items:
                budget = max(0, min(partition_max_bytes, max_bytes - total))
                try:
                    outcome = self.read_for_follower(replica_id, item, budget, broker_epoch)
                except LogError as e:
                    outcome = ReplicaFetchOutcome(item.topic_id, item.partition, e.code)
                total += len(outcome.records)
                outcomes.append(outcome)
            remaining_ms = deadline_ms - self.m.monotonic_ms()
            if (total >= max(min_bytes, 1) or remaining_ms <= 0
                    or any(o.error != ErrorCode.none or o.diverging_epoch >= 0 for o in outcomes)):
                return outcomes
            events = []
            for item in items:
                p = self.m.partitions.get((item.topic_id, item.partition))
                if p is not None:
                    events.append(p.data_event)
            if not events:
                return outcomes
            await _wait_any(events, remaining_ms / 1000.0)

    def _rewatch(self, follower_id: int, update: SessionUpdate) -> None:
        watchers = self.m.session_watchers
        for key in update.closed:
            w = watchers.get(key)
            if w is not None and w.get(follower_id) is not update.session:
                w.pop(follower_id, None)
        if update.session is not None:
            for key in update.opened:
                watchers.setdefault(key, {})[follower_id] = update.session

    async def replica_fetch_session(self, replica_id: int, broker_epoch: int, session_id: int, session_epoch: int,
                                    items: Sequence[ReplicaFetchItem], forgotten: Sequence[PartitionKey],
                                    max_wait_ms: int, max_bytes: int,
                                    partition_max_bytes: int) -> tuple[ErrorCode, int, list[ReplicaFetchOutcome]]:
        """The long poll of an incremental fetch session (KIP-227 between brokers, see
        broker/fetch_session.py): reads the partitions the request lists and those that changed on
        this side since the last answer, never the others, and answers only partitions with news
        (all of them for a new session). One waiter per session: appends mark the partition in the
        session and set its one event; HW moves mark it without waking the poll.

        When the poll ends (data, an error, a divergence, a new session, or the deadline) the answer
        carries every partition with news, HW moves included; a HW move alone does not end it. This is
        Kafka's rule (a follower's DelayedFetch completes on bytes, not on a HW change): with a
        produce stream the HW rides on the next data answer, so an acks=all produce costs one fetch
        round per follower instead of two, and the leader answers its producer before any HW-only
        answer. The follower's HW lags the leader's by at most one answer or `max_wait_ms`; nothing
        depends on it being current (consumers read from the leader, truncation never uses the
        follower's HW, and a new leader's HW only starts lower, as in Kafka). Returns (error, session
        id, outcomes)."""
        old = self.sessions.by_follower.get(replica_id)
        update = self.sessions.update(
            replica_id, broker_epoch, session_id, session_epoch,
            [((i.topic_id, i.partition), Position(i.fetch_offset, i.current_leader_epoch, i.last_fetched_epoch,
                                                  i.log_start_offset)) for i in items], list(forgotten))
        self._rewatch(replica_id, update)
        if old is not None and old is not update.session and old.on_change is not None:
            old.on_change()  # a poll parked on the replaced session ends now
        session = update.session
        if update.error != ErrorCode.none or session is None:
            return update.error, 0, []
        event = asyncio.Event()
        session.on_change = event.set
        deadline_ms = self.m.monotonic_ms() + max(0, min(max_wait_ms, 30_000))
        to_read, full = update.to_read, update.full
        read: dict[PartitionKey, ReplicaFetchOutcome] = {}  # the latest outcome of each partition read
        held: set[PartitionKey] = set()  # held back by the leader throttle: read again when it refills
        while True:
            now = self.m.monotonic_ms()
            total, answer_now = 0, full
            for key in to_read:
                entry = session.partitions.get(key)
                if entry is None:
                    continue
                position = entry.position
                p = self.m.partitions.get(key)
                if p is not None and p.leader is not None and session.last_round_ms >= 0:
                    p.leader.note_idle_rounds(replica_id, position.fetch_offset, session.last_round_ms)
                item = ReplicaFetchItem(key[0], key[1], position.fetch_offset, position.current_leader_epoch,
                                        position.last_fetched_epoch, position.log_start_offset)
                budget = max(0, min(partition_max_bytes, max_bytes - total))
                if budget <= 0:
                    session.changed.add(key)  # the answer is full: read it next round
                    if not full:
                        continue
                try:
                    outcome = self.read_for_follower(replica_id, item, budget, broker_epoch)
                except LogError as e:
                    outcome = ReplicaFetchOutcome(item.topic_id, item.partition, e.code)
                total += len(outcome.records)
                read[key] = outcome
                if outcome.throttled:
                    held.add(key)
                else:
                    held.discard(key)
                if outcome.records or outcome.error != ErrorCode.none or outcome.diverging_epoch >= 0:
                    answer_now = True
            remaining_ms = deadline_ms - self.m.monotonic_ms()
            if answer_now or remaining_ms <= 0:
                outcomes = []
                for key, outcome in read.items():
                    flagged = outcome.error != ErrorCode.none or outcome.diverging_epoch >= 0
                    if session.news(key, outcome.high_watermark, outcome.log_start_offset, bool(outcome.records),
                                    flagged) or full:
                        outcomes.append(outcome)
                session.last_round_ms = now
                session.changed.update(held)  # the next round reads them again
                return ErrorCode.none, session.session_id, outcomes
            if self.sessions.by_follower.get(replica_id) is not session:
                return ErrorCode.fetch_session_id_not_found, 0, []
            if not session.changed:
                event.clear()
                wait_ms = remaining_ms
                if held:
                    wait_ms = min(wait_ms, max(1, self.m.leader_throttle.wait_ms(self.m.monotonic_ms())))
                await _wait_any([event], wait_ms / 1000.0)
            if self.sessions.by_follower.get(replica_id) is not session:
                return ErrorCode.fetch_session_id_not_found, 0, []
            to_read, full = tuple(session.changed | held), False
            session.changed.clear()

    def end_offset_for_epoch(self, topic_id: bytes, partition: int, current_leader_epoch: int,
                             leader_epoch: int) -> tuple[ErrorCode, int, int]:
        p = self.m.partitions.get((topic_id, partition))
        if current_leader_epoch >= 0:
            error = _leader_check(p, current_leader_epoch)
        else:
            error = ErrorCode.none if p is not None and p.leader is not None else ErrorCode.not_leader_or_follower
        if error != ErrorCode.none or p is None:
            return error, -1, -1
        epoch, end_offset = p.log.end_offset_for_epoch(leader_epoch)
        return ErrorCode.none, epoch, end_offset
