"""This broker's session with the active controller: registration, heartbeats, metadata, ISR changes.

Register with the active controller (a new broker epoch per process start, a new incarnation id on
every re-registration), then keep two loops: heartbeats every `broker.heartbeat.interval.ms`
(liveness; the reply carries missing metadata) and a FetchMetadata long poll (so leadership changes
reach this broker within milliseconds). Each new image is handed to the ReplicaManager to reconcile.
ISR changes the ReplicaManager asks for go out as AlterPartition with the current broker epoch.

Controlled shutdown: once `request_shutdown()` is called, heartbeats ask the controller to move this
broker's leaderships away, and `shutdown_ready` is set when the controller says none are left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid

from broker.controller_channel import ControllerChannel, ControllerUnavailable
from broker.replica_manager import Partition, ReplicaManager
from brookpb import controller_pb2 as cpb
from cluster import codec
from cluster.aio import wait_for
from cluster.config import Config
from cluster.errors import BrookError, ErrorCode
from cluster.image import MetadataImage, PartitionRegistration, image_from_records, replay_all

log = logging.getLogger("brook.broker")

CONTROLLER_CALL_TIMEOUT_S = 5.0
METADATA_WAIT_MS = 1000
ALTER_PARTITION_RETRY_S = 0.5


def _read_cluster_id(path: str) -> str:
    """The cluster this log directory belongs to (Kafka's meta.properties), or "" when new."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "cluster.id":
                    return value
    except FileNotFoundError:
        pass
    return ""


def _write_cluster_id(path: str, cluster_id: str, node_id: int) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"# Written by Brook on first registration: the cluster these logs belong to.\n"
                f"cluster.id={cluster_id}\nnode.id={node_id}\nversion=1\n")
    os.replace(tmp, path)


class ControllerSession:
    def __init__(self, config: Config, controllers: ControllerChannel, replicas: ReplicaManager) -> None:
        self.config = config
        self.broker_id = config.node_id
        self.controllers = controllers
        self.replicas = replicas
        self.incarnation_id = uuid.uuid4().hex
        self.broker_epoch = -1
        self.meta_path = os.path.join(config.log_dirs[0], "meta.properties")
        self.cluster_id = _read_cluster_id(self.meta_path)
        self.image: MetadataImage = MetadataImage()
        self.want_shutdown = False
        self.shutdown_ready = asyncio.Event()
        self.registered = asyncio.Event()
        self._heartbeat_now = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the heartbeat and metadata loops (after `register`)."""
        loop = asyncio.get_running_loop()
        for coro in (self._heartbeat_loop(), self._metadata_loop()):
            self._tasks.append(loop.create_task(coro))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def request_shutdown(self) -> None:
        """Ask the controller (on the next heartbeat, sent now) to move this broker's leaderships away."""
        self.want_shutdown = True
        self._heartbeat_now.set()

    # -- registration ----------------------------------------------------------------------------
    async def register(self) -> None:
        grpc_ep = self.config.advertised_listener("GRPC")
        # The first Kafka listener is the one registered (and answered in Metadata).
        kafka_ep = self.config.advertised_listener(next(iter(self.config.kafka_listeners())))
        assert grpc_ep is not None, "a broker has a GRPC listener (checked by load_config)"
        request = cpb.RegisterBrokerRequest(
            broker_id=self.broker_id, incarnation_id=self.incarnation_id, host=grpc_ep.host,
            kafka_port=kafka_ep.port if kafka_ep else 0, grpc_port=grpc_ep.port,
            rack=str(self.config["broker.rack"] or ""), cluster_id=self.cluster_id)
        for name in self.config.kafka_listeners():
            advertised = self.config.advertised_listener(name)
            assert advertised is not None, "every Kafka listener has an address (load_config)"
            request.listeners.add(name=name, host=advertised.host, port=advertised.port,
                                  security_protocol=self.config.security_protocol(name))
        delay = 0.1
        while True:
            try:
                reply = await self.controllers.call("controller", "RegisterBroker", request, CONTROLLER_CALL_TIMEOUT_S)
                if reply.error_code == ErrorCode.none:
                    self.broker_epoch = reply.broker_epoch
                    if reply.cluster_id != self.cluster_id:
                        _write_cluster_id(self.meta_path, reply.cluster_id, self.broker_id)
                    self.cluster_id = reply.cluster_id
                    self.registered.set()
                    log.info("broker %d registered: epoch %d, cluster %s", self.broker_id, self.broker_epoch,
                             self.cluster_id)
                    return
                log.warning("registration refused: %s", reply.error_message or ErrorCode(reply.error_code).name)
                if reply.error_code == ErrorCode.inconsistent_cluster_id:
                    raise BrookError(reply.error_message)
            except ControllerUnavailable as e:
                log.info("waiting for the controller quorum: %s", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- heartbeats and metadata -----------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval_s = self.config.getint("broker.heartbeat.interval.ms") / 1000.0
        while True:
            request = cpb.BrokerHeartbeatRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch,
                                                 metadata_offset=self.image.offset, want_shutdown=self.want_shutdown)
            for p in self.replicas.offline.values():
                if p.registration is not None and p.registration.leader < 0:
                    request.offline_replicas.add(topic_id=p.topic_id, partition=p.index,
                                                 log_end_offset=p.log.log_end_offset)
            try:
                reply = await self.controllers.call("controller", "BrokerHeartbeat", request, CONTROLLER_CALL_TIMEOUT_S)
                if reply.error_code in (ErrorCode.stale_broker_epoch, ErrorCode.broker_id_not_registered):
                    log.warning("heartbeat rejected (%s): registering again", ErrorCode(reply.error_code).name)
                    self.incarnation_id = uuid.uuid4().hex
                    await self.register()
                    continue
                if reply.error_code == ErrorCode.none:
                    self.apply_metadata(request.metadata_offset, reply)
                    if reply.shutdown_ready and self.want_shutdown:
                        self.shutdown_ready.set()
            except ControllerUnavailable as e:
                log.debug("heartbeat failed: %s", e)
            except Exception:
                log.exception("heartbeat failed")
            self._heartbeat_now.clear()
            try:
                await wait_for(self._heartbeat_now.wait(), interval_s if not self.want_shutdown else 0.1)
            except TimeoutError:
                pass

    async def _metadata_loop(self) -> None:
        while True:
            request = cpb.BrokerHeartbeatRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch,
                                                 metadata_offset=self.image.offset, max_wait_ms=METADATA_WAIT_MS)
            try:
                reply = await self.controllers.call("controller", "FetchMetadata", request,
                                                    METADATA_WAIT_MS / 1000.0 + CONTROLLER_CALL_TIMEOUT_S)
                if reply.error_code == ErrorCode.none:
                    self.apply_metadata(request.metadata_offset, reply)
                    continue
            except ControllerUnavailable as e:
                log.debug("metadata fetch failed: %s", e)
            except Exception:
                log.exception("metadata fetch failed")
            await asyncio.sleep(0.2)

    def apply_metadata(self, base_offset: int, reply: cpb.BrokerHeartbeatResponse) -> None:
        """Move to the image in `reply` (a delta from `base_offset`, or a full image) and reconcile."""
        current = self.image
        if reply.full_image:
            if reply.metadata_offset <= current.offset and current.offset >= 0:
                return
            records = [codec.record_from_pb(r) for r in reply.records]
            image = image_from_records(records, reply.metadata_offset)
        else:
            if not reply.records or base_offset != current.offset:
                return  # nothing new, or another reply already moved us past this one
            image = replay_all(current, [codec.record_from_pb(r) for r in reply.records])
            if image.offset != reply.metadata_offset:
                log.error("metadata offsets disagree (%d != %d); asking for a full image", image.offset,
                          reply.metadata_offset)
                self.image = MetadataImage(offset=-1)
                return
        self.image = image
        self.replicas.apply_image(image)
        me = image.brokers.get(self.broker_id)
        if me is not None and me.broker_epoch == self.broker_epoch and me.fenced and not self.want_shutdown:
            self._heartbeat_now.set()  # ask to be unfenced as soon as we have caught up

    # -- ISR changes -----------------------------------------------------------------------------
    def send_alter_partition(self, requests: list[tuple[Partition, tuple[int, ...]]]) -> None:
        """The ReplicaManager's `alter_partition` callback: send in the background."""
        self._tasks.append(asyncio.get_running_loop().create_task(self._send_alter_partition(requests)))
        self._tasks = [t for t in self._tasks if not t.done()]

    async def _send_alter_partition(self, requests: list[tuple[Partition, tuple[int, ...]]]) -> None:
        request = cpb.AlterPartitionRequest(broker_id=self.broker_id, broker_epoch=self.broker_epoch)
        by_key: dict[tuple[bytes, int], tuple[Partition, tuple[int, int, tuple[int, ...]]]] = {}
        for p, isr in requests:
            state = p.leader
            if state is None or state.pending_isr != isr:
                # Settled before this task ran (newer metadata cleared it, or leadership moved): sending it
                # now would propose it on top of a partition epoch it was not computed from, with the HW
                # no longer counting the members it adds.
                continue
            by_key[(p.topic_id, p.index)] = (p, (state.leader_epoch, state.partition_epoch, tuple(isr)))
            request.items.add(topic_id=p.topic_id, partition=p.index, leader_epoch=state.leader_epoch,
                              partition_epoch=state.partition_epoch, new_isr=isr,
                              new_isr_broker_epochs=state.broker_epochs(isr))
        if not by_key:
            return
        try:
            reply = await self.controllers.call("controller", "AlterPartition", request, CONTROLLER_CALL_TIMEOUT_S)
        except Exception as e:
            log.info("AlterPartition failed: %s; retrying", e)
            await self._retry_alter_partition(requests)
            return
        if reply.error_code != ErrorCode.none:
            # No per-partition answer (the quorum write timed out or failed: it may still commit).
            log.info("AlterPartition not answered: %s %s; retrying", ErrorCode(reply.error_code).name,
                     reply.error_message)
            await self._retry_alter_partition(requests)
            return
        for r in reply.results:
            if (r.topic_id, r.partition) not in by_key:
                continue
            p, sent = by_key.pop((r.topic_id, r.partition))
            reg = None
            if r.error_code == ErrorCode.none:
                assert p.registration is not None
                reg = PartitionRegistration(p.registration.replicas, tuple(r.isr), r.leader, r.leader_epoch,
                                            r.partition_epoch, p.registration.unclean_elections)
            self.replicas.on_alter_partition_result(p, ErrorCode(r.error_code), reg, sent=sent)
        if by_key:  # items the answer left out: unknown outcome, as Kafka's AlterPartitionManager re-sends them
            await self._retry_alter_partition([(p, sent[2]) for p, sent in by_key.values()])

    async def _retry_alter_partition(self, requests: list[tuple[Partition, tuple[int, ...]]]) -> None:
        """The outcome is unknown: the controller may still commit the change. Keep the pending
        (maximal) ISR, so the HW keeps counting a joining member, and ask again; newer metadata
        (a higher partition epoch) settles it too (Kafka's AlterPartitionManager)."""
        await asyncio.sleep(ALTER_PARTITION_RETRY_S)
        again = [(p, isr) for p, isr in requests if p.leader is not None and p.leader.pending_isr == isr]
        if again:
            await self._send_alter_partition(again)
