"""Helpers for integration tests: a recording writer over gRPC and read-back checks.

The writer sends unique values with acks=all through `PartitionRouter` (which follows leadership
changes) and records every acknowledgement. `check_exactly_once` then proves what the replication
issue promises: every acknowledged value is read back exactly once, in offset order, at the offset
its acknowledgement named; `replica_bytes` compares replicas byte for byte up to the HW.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from brookpb import admin_pb2 as apb
from brookpb import broker_pb2 as bpb
from cluster.client import BrokerClient, ControllerClient, PartitionRouter
from cluster.errors import BrookError
from storage.batch import build_batch, decode_batch, iter_batches
from storage.records import Record


def admin(cluster) -> ControllerClient:
    return ControllerClient(cluster.controller_bootstrap.split(","), timeout_s=3.0)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except BrookError:
            last = None  # the cluster is between states: ask again
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def create_topic(cluster, name: str, partitions: int = 1, rf: int = 3, configs: dict | None = None) -> None:
    """Create a topic and wait for its leaders; retries while the quorum is between leaders."""
    request = apb.CreateTopicRequest(name=name, partitions=partitions, replication_factor=rf, configs=configs or {})
    with admin(cluster) as client:
        reply = wait_until(lambda: client.create_topics([request]), 20, 0.2, f"creating {name}")
        assert reply.results[0].error_code in (0, 36), reply  # 36: created by an earlier attempt
        # Every partition listed (a topic just created can be described before its partitions are) and led.
        wait_until(lambda: len(ps := client.describe_topics([name]).topics[0].partitions) == partitions
                   and all(p.leader >= 0 for p in ps), 10, what=f"leaders for {name}")


def partition_state(cluster, topic: str, partition: int = 0) -> apb.PartitionInfo:
    """The partition as the controllers describe it. Reads may be answered by a follower controller
    that has not applied the latest commit yet (a topic created a moment ago, say): ask again,
    briefly, until the partition is there."""
    def described() -> apb.PartitionInfo | None:
        with admin(cluster) as client:
            info = client.describe_topics([topic]).topics[0]
            return next((p for p in info.partitions if p.partition == partition), None)
    return wait_until(described, 10, 0.05, f"{topic}-{partition} in the metadata")


@dataclass
class Writer:
    """A background writer of unique values (acks=all) that records every outcome."""

    cluster: object
    topic: str
    partition: int = 0
    acks: int = -1
    acked: dict[bytes, int] = field(default_factory=dict)     # value -> offset
    failed: list[tuple[bytes, str]] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    sent: int = 0

    idempotent: bool = True
    producer_id: int = -1
    sequence: int = 0

    def send_one(self, router: PartitionRouter, value: bytes) -> bool:
        """One attempt. Idempotent writers re-send the same sequence until it is acknowledged, so the
        router's retries after a leadership change cannot duplicate (the leader deduplicates)."""
        if self.idempotent:
            batch = build_batch([Record(key=None, value=value, timestamp_ms=int(time.time() * 1000))],
                                producer_id=self.producer_id, producer_epoch=0, base_sequence=self.sequence)
        else:
            batch = build_batch([Record(key=None, value=value, timestamp_ms=int(time.time() * 1000))])
        try:
            reply = router.produce(self.topic, self.partition, batch, self.acks, 3000)
        except BrookError as e:
            self.failed.append((value, e.message))
            return False
        if reply.error_code:
            self.failed.append((value, reply.error_message or str(reply.error_code)))
            return False
        self.acked[value] = reply.base_offset
        self.ack_times.append(time.monotonic())
        self.sequence += 1
        return True

    def init_producer_id(self) -> None:
        running = [b for b in self.cluster.broker_ids if self.cluster.is_running(b)]
        address = self.cluster.node(running[0]).grpc_address
        with BrokerClient(address, 5.0) as b:
            reply = wait_until(lambda: (r := b.call("InitProducerId", bpb.InitProducerIdRequest())).error_code == 0
                               and r, 15, 0.1, "a producer id")
        self.producer_id = reply.producer_id

    def run(self, prefix: str = "v", pause_s: float = 0.005) -> None:
        if self.idempotent and self.producer_id < 0:
            self.init_producer_id()
        with admin(self.cluster) as client, PartitionRouter(client, timeout_s=3.0) as router:
            while not self.stop_event.is_set():
                self.sent += 1
                value = f"{prefix}-{self.sent}".encode()
                while not self.send_one(router, value):
                    if not self.idempotent or self.stop_event.is_set():
                        break
                    time.sleep(0.05)
                time.sleep(pause_s)

    def start(self, prefix: str = "v") -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(prefix,), daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(timeout=30)


def read_all(cluster, topic: str, partition: int = 0) -> list[tuple[int, bytes]]:
    """Every record up to the HW, read from the leader: [(offset, value)]."""
    out: list[tuple[int, bytes]] = []
    with admin(cluster) as client, PartitionRouter(client, timeout_s=5.0) as router:
        offset = router.list_offset(topic, partition, -2)
        end = router.list_offset(topic, partition, -1)
        while offset < end:
            reply = router.fetch(topic, partition, offset, max_bytes=1 << 20, max_wait_ms=100)
            assert reply.error_code == 0, reply.error_message
            if not reply.records:
                break
            for header, raw in iter_batches(reply.records):
                _, records = decode_batch(bytes(raw))
                for i, r in enumerate(records):
                    o = header.base_offset + (r.offset_delta if r.offset_delta >= 0 else i)
                    if o >= offset:
                        out.append((o, r.value))
                offset = max(offset, header.base_offset + header.last_offset_delta + 1)
    return out


def check_exactly_once(acked: dict[bytes, int], records: list[tuple[int, bytes]]) -> None:
    offsets = [o for o, _ in records]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "offsets not strictly increasing"
    seen: dict[bytes, list[int]] = {}
    for o, v in records:
        seen.setdefault(v, []).append(o)
    lost = [v for v in acked if v not in seen]
    dups = {v: o for v, o in seen.items() if len(o) > 1}
    moved = {v: (acked[v], seen[v]) for v in acked if v in seen and seen[v] != [acked[v]]}
    assert not lost, f"{len(lost)} acknowledged values lost, e.g. {lost[:5]}"
    assert not dups, f"{len(dups)} values duplicated, e.g. {list(dups.items())[:5]}"
    assert not moved, f"{len(moved)} values at another offset than acknowledged, e.g. {list(moved.items())[:5]}"


def replica_bytes(cluster, topic: str, partition: int = 0) -> dict[int, tuple[bytes, int]]:
    """broker id -> (bytes up to the smallest HW among replicas, that HW)."""
    states = {}
    for broker_id in cluster.broker_ids:
        address = cluster.node(broker_id).grpc_address
        with BrokerClient(address, 3.0) as b:
            for r in b.replica_states().replicas:
                if r.topic == topic and r.partition == partition:
                    states[broker_id] = r
    upper = min(r.high_watermark for r in states.values())
    out = {}
    for broker_id in states:
        chunks, offset = [], 0
        with BrokerClient(cluster.node(broker_id).grpc_address, 3.0) as b:
            while offset < upper:
                reply = b.call("ReadReplica", bpb.ReadReplicaRequest(topic=topic, partition=partition, offset=offset,
                                                                     upper_bound=upper, max_bytes=1 << 20))
                assert reply.error_code == 0, reply.error_message
                if not reply.records:
                    break
                chunks.append(reply.records)
                last = None
                for header, _ in iter_batches(reply.records):
                    last = header
                offset = last.base_offset + last.last_offset_delta + 1
        out[broker_id] = (b"".join(chunks), upper)
    return out


def check_replicas_identical(cluster, topic: str, partition: int = 0) -> int:
    data = wait_until(lambda: _converged(cluster, topic, partition), 20, 0.2, "replicas to converge")
    return data


def _converged(cluster, topic, partition):
    replicas = replica_bytes(cluster, topic, partition)
    blobs = {v[0] for v in replicas.values()}
    uppers = {v[1] for v in replicas.values()}
    if len(blobs) == 1 and len(replicas) == len(cluster.broker_ids):
        return uppers.pop() or -1
    return None
