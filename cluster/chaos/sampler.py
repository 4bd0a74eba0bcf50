"""Invariant sampling during a run, and the committed-prefix comparison after the heal (I/O side).

The checks themselves are pure (`checker.check_invariants`, `checker.compare_prefixes`); this module
only asks the brokers (BrokerService.ReplicaStates, ReadReplica) and the active controller
(AdminService.DescribeTopics), with a short deadline on every call so a paused node only slows a
sample down.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from cluster.chaos.checker import Anomaly, compare_prefixes, unrepaired_divergences
from cluster.chaos.history import History, PartitionSample, ReplicaSample
from cluster.client import BrokerClient, ControllerClient
from cluster.errors import BrookError
from cluster.limits import CLIENT_FETCH_BYTES_MAX
from storage.batch import decode_batch, iter_batches

__all__ = ["Sampler", "check_prefixes"]

SAMPLE_INTERVAL_S = 0.5
CALL_TIMEOUT_S = 1.0
READ_CALLS_MAX = 10_000       # per replica: a bound on the prefix read loop
READ_ATTEMPTS = 3             # reading one replica (each attempt from offset 0)
READ_RETRY_S = 2.0
CONVERGE_S_MAX = 30.0


class Sampler:
    """A thread sampling every broker's replica states and the controller's view of `topic`."""

    def __init__(self, history: History, brokers: Mapping[int, str], controllers: str, topic: str,
                 incarnation: Callable[[int], int], clock: Callable[[], float]) -> None:
        self.history = history
        self.brokers = dict(brokers)          # broker id -> host:grpc_port
        self.topic = topic
        self.incarnation = incarnation
        self.clock = clock
        self.admin = ControllerClient(controllers, timeout_s=CALL_TIMEOUT_S * 2)
        self.clients = {b: BrokerClient(a, CALL_TIMEOUT_S) for b, a in self.brokers.items()}
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)
        self.admin.close()
        for client in self.clients.values():
            client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample_once()
            self._stop.wait(SAMPLE_INTERVAL_S)

    def sample_once(self) -> None:
        for broker_id, client in sorted(self.clients.items()):
            self._sample_broker(broker_id, client)
        try:
            reply = self.admin.describe_topics([self.topic])
        except BrookError:
            self.errors += 1
            return
        now = self.clock()
        self.history.samples(partitions=[
            PartitionSample(now, t.name, p.partition, p.leader, p.leader_epoch, tuple(p.replicas), tuple(p.isr))
            for t in reply.topics for p in t.partitions])

    def _sample_broker(self, broker_id: int, client: BrokerClient) -> None:
        try:
            samples = read_replica_samples(broker_id, client, self.incarnation, self.clock)
        except BrookError:
            self.errors += 1
            return
        if samples:
            self.history.samples(replicas=samples)


def read_replica_samples(broker_id: int, client: BrokerClient, incarnation: Callable[[int], int],
                         clock: Callable[[], float]) -> list[ReplicaSample]:
    """One broker's replica states as samples, filed under its process (incarnation); [] when it is
    not running. Raises BrookError when it does not answer. A restart between the PID read and the
    answer would file a new process's state under the old PID (and look like a HW decrease): such
    an answer is dropped ([])."""
    before = incarnation(broker_id)
    if not before:
        return []
    reply = client.replica_states()
    if incarnation(broker_id) != before:
        return []
    now = clock()
    return [ReplicaSample(now, broker_id, before, r.topic, r.partition, r.is_leader, r.leader_epoch,
                          r.log_start_offset, r.log_end_offset, r.high_watermark, tuple(r.isr),
                          r.divergences_after_truncation)
            for r in reply.replicas]


def _states(brokers: Mapping[int, str], topic: str) -> dict[int, dict[int, tuple[int, int]]]:
    """partition -> broker -> (high watermark, log end offset), for every broker that answers."""
    out: dict[int, dict[int, tuple[int, int]]] = {}
    for broker_id, address in sorted(brokers.items()):
        try:
            with BrokerClient(address, CALL_TIMEOUT_S * 3) as client:
                reply = client.replica_states()
        except BrookError:
            continue
        for r in reply.replicas:
            if r.topic == topic:
                out.setdefault(r.partition, {})[broker_id] = (r.high_watermark, r.log_end_offset)
    return out


def _converged(states: Mapping[int, Mapping[int, tuple[int, int]]], replication_factor: int) -> bool:
    return all(len(by_broker) >= replication_factor and len({hw for hw, _ in by_broker.values()}) == 1
               and len({leo for _, leo in by_broker.values()}) == 1 for by_broker in states.values())


def read_replica(address: str, topic: str, partition: int, upto: int) -> bytes:
    """The raw batches of one replica from offset 0 up to `upto` (exclusive of batches from `upto` on)."""
    from brookpb import broker_pb2 as bpb

    chunks: list[bytes] = []
    offset = 0
    with BrokerClient(address, CALL_TIMEOUT_S * 5) as client:
        for _ in range(READ_CALLS_MAX):
            if offset >= upto:
                break
            reply = client.call("ReadReplica", bpb.ReadReplicaRequest(topic=topic, partition=partition, offset=offset,
                                                                       upper_bound=upto, max_bytes=CLIENT_FETCH_BYTES_MAX))
            if reply.error_code:
                raise BrookError(f"ReadReplica {topic}-{partition} at {offset}: {reply.error_message}")
            if not reply.records:
                break
            for header, batch in iter_batches(reply.records, strict=False):
                if header.base_offset >= upto:
                    break
                chunks.append(bytes(batch))
                offset = header.next_offset
    return b"".join(chunks)


def _read_replica_retrying(address: str, topic: str, partition: int, upto: int) -> bytes:
    """read_replica, tried READ_ATTEMPTS times: a broker of a loaded machine may miss one deadline."""
    for attempt in range(READ_ATTEMPTS):
        try:
            return read_replica(address, topic, partition, upto)
        except BrookError:
            if attempt == READ_ATTEMPTS - 1:
                raise
            time.sleep(READ_RETRY_S)
    raise AssertionError("unreachable")


def _decode(data: bytes) -> list[tuple[int, bytes | None]]:
    if not data:
        return []
    out = []
    for header, batch in iter_batches(data, strict=False):
        _, records = decode_batch(batch)
        out += [(header.base_offset + r.offset_delta, r.value) for r in records]
    return out


def idempotent_batches(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """(base offset, last offset, producer id, producer epoch, base sequence) of each idempotent
    batch of `data` (raw batches), in order."""
    out = []
    for header, _ in iter_batches(data, strict=False):
        if header.producer_id >= 0 and header.base_sequence >= 0:
            out.append((header.base_offset, header.last_offset, header.producer_id, header.producer_epoch,
                        header.base_sequence))
    return out


def _unrepaired(brokers: Mapping[int, str], topic: str, states: Mapping[int, Mapping[int, tuple[int, int]]],
                log: Callable[[str], None]) -> list[Anomaly]:
    """Replicas that did not converge: each copy that differs from the leader's (the highest HW) is read
    up to that HW and compared record by record (`unrepaired_divergences`)."""
    anomalies: list[Anomaly] = []
    for partition, by_broker in sorted(states.items()):
        leader, (committed, leader_end) = max(by_broker.items(), key=lambda item: (item[1], -item[0]))
        behind = {b: leo for b, (hw, leo) in by_broker.items() if b != leader and (hw, leo) != (committed, leader_end)}
        if not behind:
            continue
        try:
            decoded = {leader: _decode(_read_replica_retrying(brokers[leader], topic, partition,
                                                              min(committed, max(behind.values()))))}
            for b, leo in sorted(behind.items()):
                decoded[b] = _decode(_read_replica_retrying(brokers[b], topic, partition, min(committed, leo)))
        except BrookError as e:
            log(f"[chaos] {topic}-{partition}: could not read the copies that did not converge: {e.message}")
            continue
        found = unrepaired_divergences(topic, partition, decoded, leader, committed)
        for anomaly in found:
            log(f"[chaos] {anomaly.detail}")
        anomalies += found
    return anomalies


def check_prefixes(brokers: Mapping[int, str], topic: str, replication_factor: int,
                   log: Callable[[str], None] = print, converge_s: float = CONVERGE_S_MAX,
                   batches: dict[int, list[tuple[int, int, int, int, int]]] | None = None,
                   ) -> tuple[list[Anomaly], list[str]]:
    """After the heal: wait (bounded) for replicas to converge, then compare their bytes below the
    smallest HW. Returns (anomalies, problems) — a problem is a comparison that could not be made.
    `batches`, when given, receives per partition the idempotent batches of the lowest-numbered
    replica read (`idempotent_batches`; the copies are identical or a prefix_mismatch says so)."""
    deadline_s = time.monotonic() + converge_s
    states = _states(brokers, topic)
    while not _converged(states, replication_factor) and time.monotonic() < deadline_s:
        time.sleep(0.5)
        states = _states(brokers, topic)
    problems: list[str] = []
    anomalies: list[Anomaly] = []
    if not _converged(states, replication_factor):
        problems.append(f"replicas of {topic} did not converge within {converge_s:g}s: {states}")
        anomalies += _unrepaired(brokers, topic, states, log)
    for partition, by_broker in sorted(states.items()):
        upto = min(hw for hw, _ in by_broker.values())
        try:
            logs = {b: _read_replica_retrying(brokers[b], topic, partition, upto) for b in sorted(by_broker)}
        except BrookError as e:
            problems.append(f"could not read replicas of {topic}-{partition}: {e.message}")
            continue
        if batches is not None and logs:
            batches[partition] = idempotent_batches(logs[min(logs)])
        decoded = {b: _decode(data) for b, data in logs.items()}
        found = compare_prefixes(topic, partition, logs, upto, decoded)
        anomalies += found
        verdict = "DIFFER" if found else "identical"
        log(f"[chaos] {topic}-{partition}: {len(logs)} replicas {verdict} below offset {upto} "
            f"({len(decoded[min(decoded)])} records)")
    return anomalies, problems
