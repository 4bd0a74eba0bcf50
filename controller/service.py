"""The controller role's I/O shell: gRPC ControllerService + AdminService over the quorum.

Writes go through one writer (`ControllerRuntime.write`): it computes records from the latest image
with a pure function from controller/, submits them as one command with the image's offset, and
recomputes on a conflict. Only the active controller writes; the others answer NOT_CONTROLLER with
the active controller's address. Soft state (broker heartbeat times) lives only here, on the active
controller, with an injected clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from brookpb import broker_pb2 as bpb
from brookpb import broker_pb2_grpc, controller_pb2_grpc
from brookpb import controller_pb2 as cpb
from cluster import codec
from cluster.aio import wait_for
from cluster.config import Config
from cluster.effective_config import EffectiveConfigError, cluster_config, topic_config
from cluster.errors import ErrorCode
from cluster.grpcutil import aio_channel
from cluster.image import MetadataImage, image_to_records, replay_all
from cluster.records import (
    ClusterRecord,
    ControllerRegistration,
    PartitionChange,
    ProducerIds,
    Record,
)
from controller import balance, cluster_control, reassignment, replication
from controller.commands import QuorumError
from controller.heartbeats import BrokerHeartbeatTracker

if TYPE_CHECKING:  # the runtime runs against any quorum with this shape; tests use one without pysyncobj
    from controller.quorum import Quorum

log = logging.getLogger("brook.controller")

T = TypeVar("T")

# Producer ids are handed to brokers in blocks (Kafka: 1000), so InitProducerId is one commit per block.
PRODUCER_ID_BLOCK_SIZE = 1000
# Records per heartbeat / metadata reply; a broker further behind asks again at once.
METADATA_RECORDS_PER_REPLY_MAX = 5_000
# Writers allowed to wait for the single writer before new writes are refused.
PENDING_WRITES_MAX = 1_000
# How often the active controller looks for offline partitions that can get a leader.
OFFLINE_CHECK_INTERVAL_MS = 500
# Before an unclean election the live replicas are asked where their logs end; this bounds the wait
# for all of them together (a replica that does not answer in time counts as shortest).
LOG_END_PROBE_TIMEOUT_S = 1.0


async def probe_replica_states(address: str, timeout_s: float) -> Any:
    """ReplicaStates of one broker (its replicas' last epoch and log end offset) over gRPC."""
    async with aio_channel(address) as channel:
        stub = broker_pb2_grpc.BrokerServiceStub(channel)
        return await stub.ReplicaStates(bpb.ReplicaStateRequest(), timeout=timeout_s)


class NotActive(Exception):
    pass


class ControllerRuntime:
    """The active-controller logic, independent of the RPC layer."""

    def __init__(self, config: Config, quorum: Quorum, grpc_address: str,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.config = config
        self.quorum = quorum
        self.node_id = quorum.settings.node_id
        self.grpc_address = grpc_address
        self.clock_ms = clock_ms or (lambda: int(time.monotonic() * 1000))
        self.heartbeats = BrokerHeartbeatTracker(config.getint("broker.session.timeout.ms"))
        self.active = False
        self._activation: asyncio.Task | None = None
        self._write_lock = asyncio.Lock()
        self._pending_writes = 0
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._last_balance_ms = 0
        self._last_offline_check_ms = 0
        # Soft state: log end offsets brokers report for replicas of offline partitions.
        self.offline_leos: dict[tuple[bytes, int], dict[int, int]] = {}
        # Soft state: (last epoch, log end offset) the live replicas answered just before an
        # unclean election (`probe_before_unclean`); cleared after the write that used them.
        self.probed_log_ends: dict[tuple[bytes, int], dict[int, replication.LogEnd]] = {}
        self.replica_states: Callable[[str, float], Awaitable[Any]] = probe_replica_states
        quorum.add_state_listener(self._on_state_changed)
        quorum.add_change_listener(self._on_metadata_changed)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._periodic()))
        self._on_state_changed()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._activation:
            self._activation.cancel()

    @property
    def image(self) -> MetadataImage:
        return self.quorum.state.image

    def _on_metadata_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, offset: int, timeout_s: float) -> None:
        if self.image.offset > offset:
            return
        event = self._changed
        try:
            await wait_for(event.wait(), timeout_s)
        except TimeoutError:
            pass

    def _on_state_changed(self) -> None:
        if self.quorum.is_leader():
            if not self.active and (self._activation is None or self._activation.done()):
                self._activation = asyncio.get_running_loop().create_task(self._activate())
        elif self.active:
            log.info("controller %d is no longer active", self.node_id)
            self.active = False

    async def _activate(self) -> None:
        """Commit a registration in the new term: once it applies, the image holds every earlier commit."""
        while self.quorum.is_leader():
            image = self.image
            records: list[Record] = [ControllerRegistration(
                self.node_id, self.quorum.self_address, self.grpc_address)]
            if not image.cluster_id:
                records.insert(0, ClusterRecord(self.config.getstr("cluster.id") or uuid.uuid4().hex[:22]))
            try:
                result = await self.quorum.submit(records, image.offset, timeout_s=2.0)
            except QuorumError as e:
                log.debug("activation write failed: %s", e)
                await asyncio.sleep(0.1)
                continue
            if result.status in ("ok", "duplicate"):
                # Every broker gets a full session timeout from now: no spurious fencing after failover.
                self.heartbeats.reset_all(self.image.brokers.keys(), self.clock_ms())
                self.active = True
                log.info("controller %d is active (metadata offset %d)", self.node_id, self.image.offset)
                return
            await asyncio.sleep(0.02)

    def leader_hint(self) -> str:
        leader = self.quorum.leader_node_id()
        entry = self.image.controllers.get(leader)
        if entry is None:
            return ""
        raft_address, grpc_address = entry
        status_leader = self.quorum.status().get("leader")
        if status_leader is not None and str(getattr(status_leader, "address", status_leader)) != raft_address:
            return ""
        return grpc_address

    # -- the single writer -----------------------------------------------------------------------
    async def write(self, compute: Callable[[MetadataImage], tuple[list[Record], T]],
                    timeout_s: float = 5.0) -> T:
        """Compute records from the latest image and commit them atomically; recompute on conflict."""
        if not self.active:
            raise NotActive()
        if self._pending_writes >= PENDING_WRITES_MAX:
            raise QuorumError("the controller is overloaded; retry")
        self._pending_writes += 1
        try:
            async with self._write_lock:
                return await self._write_locked(compute, timeout_s)
        finally:
            self._pending_writes -= 1

    async def _write_locked(self, compute: Callable[[MetadataImage], tuple[list[Record], T]],
                            timeout_s: float) -> T:
        deadline = time.monotonic() + timeout_s
        request_id = uuid.uuid4().hex
        while True:
            if not self.active:
                raise NotActive()
            image = self.image
            records, response = compute(image)
            if not records:
                return response
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QuorumError(f"metadata write not committed within {timeout_s:.1f}s")
            result = await self.quorum.submit(records, image.offset, request_id, timeout_s=remaining)
            if result.status in ("ok", "duplicate"):
                _log_unclean_elections(image, records, self.log_end_offsets)
                return response
            if result.status == "invalid":
                raise QuorumError(f"metadata command rejected: {result.message}")
            await asyncio.sleep(0)  # conflict: the image moved on; recompute

    # -- dynamic configuration -------------------------------------------------------------------
    def unclean_for(self, image: MetadataImage) -> Callable[[str], bool]:
        """topic name -> its effective unclean.leader.election.enable in `image` (remembered per call)."""
        known: dict[str, bool] = {}

        def enabled(topic: str) -> bool:
            found = known.get(topic)
            if found is None:
                try:
                    found = topic_config(image, self.config, topic).unclean_leader_election_enable
                except EffectiveConfigError as e:
                    log.warning("%s; unclean leader election stays off for topic %r", e, topic)
                    found = False
                known[topic] = found
            return found
        return enabled

    def log_end_offsets(self, topic_id: bytes, partition: int) -> dict[int, replication.LogEnd | int] | None:
        """What is known of where the partition's replicas' logs end: probed (epoch, LEO) over
        heartbeat-reported LEOs."""
        key = (topic_id, partition)
        merged: dict[int, replication.LogEnd | int] = dict(self.offline_leos.get(key, {}))
        merged.update(self.probed_log_ends.get(key, {}))
        return merged or None

    async def probe_before_unclean(self, compute: Callable[[MetadataImage], tuple[list[Record], Any]]) -> None:
        """If `compute` would elect an unclean leader now, first ask the live replicas of those
        partitions where their logs end (bounded wait), so the choice picks the longest log."""
        image = self.image
        records, _ = compute(image)
        keys = {(r.topic_id, r.partition) for r in records if isinstance(r, PartitionChange) and r.unclean}
        if not keys:
            return
        after = replay_all(image, records)  # who is live once these records apply (a fenced broker is not)
        brokers: dict[int, str] = {}
        for topic_id, partition in keys:
            reg = after.partition(topic_id, partition)
            for b in reg.replicas if reg is not None else ():
                broker = after.brokers.get(b)
                if broker is not None and not broker.fenced:
                    brokers[b] = broker.grpc_address

        async def ask(broker_id: int, address: str) -> None:
            try:
                reply = await wait_for(self.replica_states(address, LOG_END_PROBE_TIMEOUT_S), LOG_END_PROBE_TIMEOUT_S)
            except Exception as e:  # a replica that cannot answer counts as shortest
                log.info("broker %d did not report its log ends before an unclean election: %s", broker_id, e)
                return
            for r in reply.replicas:
                if (r.topic_id, r.partition) in keys:
                    self.probed_log_ends.setdefault((r.topic_id, r.partition), {})[broker_id] = (
                        replication.LogEnd(r.last_epoch, r.log_end_offset))

        await asyncio.gather(*(ask(b, address) for b, address in sorted(brokers.items())))

    async def write_after_probe(self, compute: Callable[[MetadataImage], tuple[list[Record], T]],
                                timeout_s: float = 5.0) -> T:
        """`write`, preceded by `probe_before_unclean`; the probe results are dropped afterwards."""
        await self.probe_before_unclean(compute)
        try:
            return await self.write(compute, timeout_s)
        finally:
            self.probed_log_ends.clear()

    def record_offline_leos(self, broker_id: int, replicas: Iterable[cpb.OfflineReplica]) -> None:
        for r in replicas:
            self.offline_leos.setdefault((r.topic_id, r.partition), {})[broker_id] = r.log_end_offset

    # -- periodic duties of the active controller -------------------------------------------------
    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if not self.active:
                continue
            try:
                await self._maybe_fence_stale()
                await self._maybe_elect_offline()
                await self._maybe_rebalance()
                await self._maybe_complete_reassignments()
            except (QuorumError, NotActive) as e:
                log.debug("periodic controller work skipped: %s", e)
            except Exception:
                log.exception("periodic controller work failed")

    async def _maybe_fence_stale(self) -> None:
        now = self.clock_ms()
        image = self.image
        candidates = [b.broker_id for b in image.brokers.values() if not b.fenced]
        stale = self.heartbeats.stale(now, candidates)
        if not stale:
            return

        def compute(img: MetadataImage) -> tuple[list[Record], None]:
            live = [b for b in stale if b in img.brokers and not img.brokers[b].fenced]
            if not live:
                return [], None
            return cluster_control.fence_stale_broker(img, live, unclean_enabled=self.unclean_for(img),
                                                     log_end_offsets=self.log_end_offsets), None

        log.info("fencing broker %d: no heartbeat for %d ms or its connection was lost %d ms ago", stale[0],
                 self.heartbeats.session_timeout_ms, self.heartbeats.disconnect_grace_ms)
        await self.write_after_probe(compute)

    async def _maybe_elect_offline(self) -> None:
        """Elect leaders for offline partitions that can have one now — e.g. after
        unclean.leader.election.enable was switched on at runtime (Kafka's periodic unclean check)."""
        now = self.clock_ms()
        if now - self._last_offline_check_ms < OFFLINE_CHECK_INTERVAL_MS:
            return
        self._last_offline_check_ms = now
        live = self.offline_leos.keys() & {(t.topic_id, i) for t, i, p in self.image.iter_partitions() if p.leader < 0}
        self.offline_leos = {k: self.offline_leos[k] for k in live}

        def compute(img: MetadataImage) -> tuple[list[Record], int]:
            offline = [(t.name, i) for t, i, p in img.iter_partitions() if p.leader < 0]
            if not offline:
                return [], 0
            records, _ = replication.elect_leaders(img, replication.Election.ONLINE, offline,
                                                   unclean_enabled=self.unclean_for(img),
                                                   log_end_offsets=self.log_end_offsets)
            return records, len(records)

        elected = await self.write_after_probe(compute)
        if elected:
            log.info("elected leaders for %d offline partitions", elected)

    async def _maybe_rebalance(self) -> None:
        now = self.clock_ms()
        settings = cluster_config(self.image, self.config)
        interval_ms = settings.leader_imbalance_check_interval_seconds * 1000
        if not settings.auto_leader_rebalance_enable or now - self._last_balance_ms < interval_ms:
            return
        self._last_balance_ms = now
        percentage = settings.leader_imbalance_per_broker_percentage

        def compute(img: MetadataImage) -> tuple[list[Record], int]:
            records = balance.rebalance_records(img, percentage)
            return records, len(records)

        moved = await self.write(compute)
        if moved:
            log.info("automatic leader rebalance moved %d leaderships to preferred replicas", moved)

    async def _maybe_complete_reassignments(self) -> None:
        """Finish the reassignments whose target replicas have all joined the ISR (KIP-455)."""
        if not any(p.reassigning for _, _, p in self.image.iter_partitions()):
            return

        def compute(img: MetadataImage) -> tuple[list[Record], int]:
            records = reassignment.complete_reassignments(img)
            return records, len(records)

        done = await self.write(compute)
        if done:
            log.info("completed %d partition reassignments", done)

    def allocate_producer_ids(self, broker_id: int, broker_epoch: int):
        def compute(img: MetadataImage) -> tuple[list[Record], tuple[ErrorCode, int]]:
            error = cluster_control.check_broker_epoch(img, broker_id, broker_epoch)
            if error != ErrorCode.none:
                return [], (error, -1)
            first = max(img.next_producer_id, 1000)
            return [ProducerIds(broker_id, broker_epoch, first + PRODUCER_ID_BLOCK_SIZE)], (ErrorCode.none, first)
        return compute


def _log_unclean_elections(image: MetadataImage, records: list[Record],
                           log_end_offsets: replication.LogEndOffsets | None = None) -> None:
    """An unclean election may lose acknowledged writes: always say so in the log, with the offset
    range known to be lost (from the replicas that reported their log ends)."""
    for record in records:
        if isinstance(record, PartitionChange) and record.unclean:
            topic = image.topics.get(record.topic_id)
            name = topic.name if topic else record.topic_id.hex()
            ends = log_end_offsets(record.topic_id, record.partition) if log_end_offsets else None
            loss = record.unclean_loss
            lost = (f"offsets [{loss[0]}, {loss[1]}) that other live replicas hold are lost"
                    if loss else "no live replica reported a longer log")
            log.warning("UNCLEAN leader election: %s-%d now led by broker %d, which was not in the ISR; "
                        "writes acknowledged after it fell behind may be lost: %s (log ends: %s)",
                        name, record.partition, record.leader, lost, dict(ends or {}))


def _added_members(image: MetadataImage, items: Iterable[replication.AlterPartitionItem]) -> set[int]:
    """The brokers these ISR changes would add (members not in the partition's current ISR)."""
    added: set[int] = set()
    for item in items:
        current = image.partition(item.topic_id, item.partition)
        added.update(b for b in item.new_isr if current is None or b not in current.isr)
    return added


def _error_code(e: Exception) -> tuple[int, str]:
    if isinstance(e, NotActive):
        return int(ErrorCode.not_controller), "this controller is not active"
    if isinstance(e, QuorumError):
        return int(ErrorCode.request_timed_out), str(e)
    return int(ErrorCode.unknown_server_error), f"{type(e).__name__}: {e}"


class FullImageCache:
    """The full image as the encoded `records` of a BrokerHeartbeatResponse, built once per image.

    Encoding 100,000 partitions record by record takes seconds of the controller's event loop; a
    broker restart (or three) after a snapshot would pay it on every reply. Parsing the cached bytes
    into a reply costs about a microsecond per record (issue 16, item 5).
    """

    def __init__(self) -> None:
        self._image: MetadataImage | None = None
        self._encoded = b""

    def encoded(self, image: MetadataImage) -> bytes:
        if image is not self._image:
            holder = cpb.BrokerHeartbeatResponse()
            holder.records.extend(codec.record_to_pb(r) for r in image_to_records(image))
            self._image, self._encoded = image, holder.SerializeToString()
        return self._encoded


_full_images = FullImageCache()


def metadata_reply(runtime: ControllerRuntime, broker_offset: int, reply: cpb.BrokerHeartbeatResponse) -> None:
    """Fill `reply` with the records after `broker_offset`, or the full image when they are gone."""
    image, records = runtime.quorum.state.records_since(broker_offset, METADATA_RECORDS_PER_REPLY_MAX)
    if records is None or broker_offset > image.offset:
        reply.full_image = True
        del reply.records[:]
        reply.MergeFromString(_full_images.encoded(image))
        reply.metadata_offset = image.offset
    else:
        reply.records.extend(codec.record_to_pb(r) for r in records)
        reply.metadata_offset = broker_offset + len(records)


class ControllerServicer(controller_pb2_grpc.ControllerServiceServicer):
    def __init__(self, runtime: ControllerRuntime) -> None:
        self.rt = runtime

    def _not_active(self, reply: Any) -> Any:
        reply.error_code = int(ErrorCode.not_controller)
        reply.error_message = f"controller {self.rt.node_id} is not the active controller"
        reply.leader_hint = self.rt.leader_hint()
        return reply

    async def RegisterBroker(self, request, context):
        reply = cpb.RegisterBrokerResponse()
        if not self.rt.active:
            return self._not_active(reply)
        image = self.rt.image
        if request.cluster_id and image.cluster_id and request.cluster_id != image.cluster_id:
            reply.error_code = int(ErrorCode.inconsistent_cluster_id)
            reply.error_message = (f"broker belongs to cluster {request.cluster_id}, "
                                   f"these controllers run cluster {image.cluster_id}")
            return reply
        req = cluster_control.RegisterRequest(request.broker_id, request.incarnation_id, request.host,
                                              request.kafka_port, request.grpc_port, request.rack,
                                              codec.listeners_from_pb(request.listeners))
        try:
            epoch = await self.rt.write(lambda img: cluster_control.register_broker(
                img, req, unclean_enabled=self.rt.unclean_for(img)))
        except Exception as e:
            reply.error_code, reply.error_message = _error_code(e)
            reply.leader_hint = self.rt.leader_hint()
            return reply
        self.rt.heartbeats.touch(request.broker_id, self.rt.clock_ms())
        log.info("broker %d registered with epoch %d", request.broker_id, epoch)
        reply.broker_epoch = epoch
        reply.cluster_id = self.rt.image.cluster_id
        return reply

    async def BrokerHeartbeat(self, request, context):
        reply = cpb.BrokerHeartbeatResponse()
        if not self.rt.active:
            return self._not_active(reply)
        rt = self.rt
        error = cluster_control.check_broker_epoch(rt.image, request.broker_id, request.broker_epoch)
        if error != ErrorCode.none:
            reply.error_code = int(error)
            reply.error_message = f"broker {request.broker_id} epoch {request.broker_epoch} is not current"
            return reply
        rt.heartbeats.touch(request.broker_id, rt.clock_ms())
        rt.record_offline_leos(request.broker_id, request.offline_replicas)
        try:
            decision = await rt.write(lambda img: cluster_control.heartbeat_records(
                img, request.broker_id, request.broker_epoch, request.metadata_offset, request.want_shutdown,
                unclean_enabled=rt.unclean_for(img), log_end_offsets=rt.log_end_offsets))
        except Exception as e:
            reply.error_code, reply.error_message = _error_code(e)
            reply.leader_hint = rt.leader_hint()
            return reply
        reply.is_fenced = decision.fenced
        reply.shutdown_ready = decision.shutdown_ready
        metadata_reply(rt, request.metadata_offset, reply)
        return reply

    async def FetchMetadata(self, request, context):
        reply = cpb.BrokerHeartbeatResponse()
        if not self.rt.active:
            return self._not_active(reply)
        wait_s = min(max(request.max_wait_ms, 0), 10_000) / 1000.0
        rt = self.rt
        current = cluster_control.check_broker_epoch(rt.image, request.broker_id, request.broker_epoch)
        if current == ErrorCode.none:
            rt.heartbeats.touch(request.broker_id, rt.clock_ms())
        if wait_s:
            try:
                await rt.wait_for_change(request.metadata_offset, wait_s)
            except asyncio.CancelledError:
                # The call ended before its wait: the broker went away (a crash closes its connection)
                # unless its own deadline ran out. Mark it; it is fenced unless it calls again soon.
                remaining = context.time_remaining()
                if current == ErrorCode.none and rt.active and (remaining is None or remaining > 0.05):
                    rt.heartbeats.disconnected(request.broker_id, rt.clock_ms())
                    log.info("broker %d: connection lost", request.broker_id)
                raise
        broker = self.rt.image.brokers.get(request.broker_id)
        reply.is_fenced = broker is None or broker.fenced
        metadata_reply(self.rt, request.metadata_offset, reply)
        return reply

    async def AlterPartition(self, request, context):
        reply = cpb.AlterPartitionResponse()
        if not self.rt.active:
            return self._not_active(reply)
        items = [replication.AlterPartitionItem(i.topic_id, i.partition, i.leader_epoch, i.partition_epoch,
                                                tuple(i.new_isr), tuple(i.new_isr_broker_epochs))
                 for i in request.items]
        rt = self.rt
        doubts: dict[int, str] = {}

        def compute(img: MetadataImage) -> tuple[list[Record], list[replication.AlterPartitionOutcome]]:
            # Whose session is in doubt is read here, under the write lock, just before the commit.
            now = rt.clock_ms()
            doubts.clear()
            for b in _added_members(img, items):
                why = rt.heartbeats.suspect(now, b)
                if why:
                    doubts[b] = why
            return replication.alter_partition(img, request.broker_id, request.broker_epoch, items,
                                               suspect=frozenset(doubts))
        try:
            outcomes = await rt.write(compute)
        except Exception as e:
            reply.error_code, reply.error_message = _error_code(e)
            reply.leader_hint = self.rt.leader_hint()
            return reply
        if doubts and any(o.error == ErrorCode.ineligible_replica for o in outcomes):
            log.info("AlterPartition from broker %d: ISR additions refused for %s", request.broker_id,
                     ", ".join(f"broker {b} ({why})" for b, why in sorted(doubts.items())))
        for o in outcomes:
            result = reply.results.add(topic_id=o.topic_id, partition=o.partition, error_code=int(o.error))
            if o.registration is not None:
                r = o.registration
                result.isr.extend(r.isr)
                result.leader, result.leader_epoch, result.partition_epoch = r.leader, r.leader_epoch, r.partition_epoch
        return reply

    async def AllocateProducerIds(self, request, context):
        reply = cpb.AllocateProducerIdsResponse()
        if not self.rt.active:
            return self._not_active(reply)
        try:
            error, first = await self.rt.write(self.rt.allocate_producer_ids(request.broker_id, request.broker_epoch))
        except Exception as e:
            reply.error_code, reply.error_message = _error_code(e)
            return reply
        reply.error_code = int(error)
        reply.first_producer_id = first
        reply.count = PRODUCER_ID_BLOCK_SIZE if error == ErrorCode.none else 0
        return reply
