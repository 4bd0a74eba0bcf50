"""The broker's Prometheus metrics, readiness and status, named as the Prometheus JMX exporter's standard
Kafka rules (example_configs/kafka-2_0_0.yml, `lowercaseOutputName: true`) name Kafka's MBeans, so
Kafka dashboards work unchanged:

    kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions  -> kafka_server_replicamanager_underreplicatedpartitions
    kafka.server:type=ReplicaManager,name=IsrShrinksPerSec (Count)   -> kafka_server_replicamanager_isrshrinks_total
    kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=T  -> kafka_server_brokertopicmetrics_bytesin_total{topic="T"}
    kafka.network:type=RequestMetrics,name=RequestsPerSec,request=R  -> kafka_network_requestmetrics_requests_total{request="R"}
    kafka.network:type=RequestMetrics,name=TotalTimeMs,request=R     -> kafka_network_requestmetrics_totaltimems{request="R",quantile="0.99"}
    kafka.server:type=DelayedOperationPurgatory,name=PurgatorySize,delayedOperation=Produce
                                                                     -> kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation="Produce"}

Group lag uses kafka_exporter's names (`kafka_consumergroup_lag`), which Kafka dashboards use for lag.

Most values are read from the broker's state at scrape time (`BrokerCollector`). The few events that
leave no state behind (bytes and messages in and out, ISR shrinks and expands, request counts and
latencies, waiting produce and fetch requests) are counted in `STATS` by decorators on the replica
manager's methods and a wrapper around the Kafka handlers: plain integer additions on the hot path.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cluster.errors import ErrorCode
from cluster.observe.status import cluster_view
from storage.batch import BATCH_HEADER_BYTES, parse_header

# Dropwizard's (Kafka's) histogram reservoir size: latency quantiles are over the last this many requests.
LATENCY_SAMPLES_MAX = 1028
QUANTILES = (("0.50", 0.50), ("0.75", 0.75), ("0.95", 0.95), ("0.98", 0.98), ("0.99", 0.99), ("0.999", 0.999))
# Kafka's BrokerState values (kafka.server:type=KafkaServer,name=BrokerState).
BROKER_STATE_STARTING, BROKER_STATE_RUNNING, BROKER_STATE_PENDING_CONTROLLED_SHUTDOWN = 1, 3, 6
# Request names tracked; a bound on label cardinality (Kafka has ~70 APIs).
REQUEST_NAMES_MAX = 200

def count_records(records: bytes | memoryview) -> int:
    """Records in a buffer of v2 record batches (the sum of their recordsCount); stops at a bad header.
    Uses storage's one RecordBatch header parser."""
    view = memoryview(records)
    pos, total = 0, 0
    while len(view) - pos >= BATCH_HEADER_BYTES:
        header = parse_header(view, pos)
        if header.batch_length < BATCH_HEADER_BYTES - 12 or header.records_count < 0:
            break
        total += header.records_count
        pos += 12 + header.batch_length
    return total


def quantile(sorted_values: list[float], q: float) -> float:
    """The q-quantile of sorted values (nearest rank); 0.0 for none."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class BrokerStats:
    """Counters of events that leave no state behind. Updated on the broker's event loop."""

    def __init__(self) -> None:
        self.bytes_in: dict[str, int] = {}
        self.messages_in: dict[str, int] = {}
        self.bytes_out: dict[str, int] = {}
        self.isr_shrinks = 0
        self.isr_expands = 0
        self.waiting: dict[str, int] = {"Produce": 0, "Fetch": 0}
        self.requests: dict[tuple[str, int], int] = {}
        self.latency_ms: dict[str, deque[float]] = {}
        self.latency_count: dict[str, int] = {}
        self.latency_sum_ms: dict[str, float] = {}

    def produced(self, topic: str, records: bytes) -> None:
        self.bytes_in[topic] = self.bytes_in.get(topic, 0) + len(records)
        self.messages_in[topic] = self.messages_in.get(topic, 0) + count_records(records)

    def fetched(self, topic: str, size: int) -> None:
        self.bytes_out[topic] = self.bytes_out.get(topic, 0) + size

    def isr_changed(self, before: tuple[int, ...], after: tuple[int, ...]) -> None:
        if len(after) < len(before):
            self.isr_shrinks += 1
        elif len(after) > len(before):
            self.isr_expands += 1

    def request(self, name: str, version: int, elapsed_ms: float) -> None:
        key = (name, version)
        if key not in self.requests and len(self.requests) >= REQUEST_NAMES_MAX:
            return
        self.requests[key] = self.requests.get(key, 0) + 1
        samples = self.latency_ms.get(name)
        if samples is None:
            samples = self.latency_ms[name] = deque(maxlen=LATENCY_SAMPLES_MAX)
        samples.append(elapsed_ms)
        self.latency_count[name] = self.latency_count.get(name, 0) + 1
        self.latency_sum_ms[name] = self.latency_sum_ms.get(name, 0.0) + elapsed_ms

    def forget_topics(self, keep: Callable[[str], bool]) -> None:
        """Drop the counters of deleted topics (a bound on memory and label cardinality)."""
        for counters in (self.bytes_in, self.messages_in, self.bytes_out):
            for topic in [t for t in counters if not keep(t)]:
                del counters[topic]


STATS = BrokerStats()


# -- hooks on the replica manager (decorators: no change to the method bodies) ---------------------

def track_produce(fn: Any) -> Any:
    """ReplicaManager.produce(topic, partition, records, ...): bytes and messages in on success."""
    @functools.wraps(fn)
    async def wrapper(self: Any, topic: str, partition: int, records: bytes, *args: Any, **kwargs: Any) -> Any:
        result = await fn(self, topic, partition, records, *args, **kwargs)
        if result.error == ErrorCode.none:
            STATS.produced(topic, records)
        return result
    return wrapper


def track_fetch(fn: Any) -> Any:
    """ReplicaManager.fetch(reqs, ...): consumer fetches waiting (purgatory) and bytes out per topic."""
    @functools.wraps(fn)
    async def wrapper(self: Any, reqs: Any, *args: Any, **kwargs: Any) -> Any:
        STATS.waiting["Fetch"] += 1
        try:
            results = await fn(self, reqs, *args, **kwargs)
        finally:
            STATS.waiting["Fetch"] -= 1
        for req, result in zip(reqs, results, strict=False):
            if result.records:
                STATS.fetched(req.topic, len(result.records))
        return results
    return wrapper


def track_produce_wait(fn: Any) -> Any:
    """ReplicaManager._wait_for_hw: acks=all produce requests waiting for replication (purgatory)."""
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        STATS.waiting["Produce"] += 1
        try:
            return await fn(*args, **kwargs)
        finally:
            STATS.waiting["Produce"] -= 1
    return wrapper


def track_isr_change(partition_of: Callable[[Any, Any], Any]) -> Callable[[Any], Any]:
    """Count the ISR shrinks and expands this leader made: a change counts when the ISR this leader
    proposed (its pending AlterPartition) becomes the committed ISR, whichever arrives first, the
    controller's answer (`on_alter_partition_result`) or the metadata record (`_update`). Changes the
    controller makes on its own (fencing a broker) are not this leader's. `partition_of(self, arg)`
    finds the partition from the wrapped method's first argument."""
    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(self: Any, arg: Any, *args: Any, **kwargs: Any) -> Any:
            p = partition_of(self, arg)
            state = p.leader if p is not None else None
            before = (state.isr, state.pending_isr) if state is not None else None
            result = fn(self, arg, *args, **kwargs)
            if before is not None and p.leader is state and state is not None:
                isr, proposed = before
                if proposed is not None and state.isr != isr and tuple(state.isr) == tuple(proposed):
                    STATS.isr_changed(isr, state.isr)
            return result
        return wrapper
    return decorate


def instrument_kafka_handlers(handlers: Any) -> None:
    """Count and time every Kafka request: wraps `handlers.handle(api_key, api_version, request, context)`."""
    original = handlers.handle

    async def handle(api_key: int, api_version: int, request: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await original(api_key, api_version, request, *args, **kwargs)
        finally:
            name = type(request).__name__.removesuffix("Request") or str(api_key)
            STATS.request(name, api_version, (time.perf_counter() - start) * 1000.0)

    handlers.handle = handle


# -- scrape time -----------------------------------------------------------------------------------

def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _coordinator_groups(coordinator: Any) -> Iterator[tuple[str, str, int, dict[tuple[str, int], int]]]:
    """(group id, state, members, {(topic, partition): committed offset}) of each group this broker
    coordinates, through the coordinator's public operations (ListGroups, DescribeGroups, OffsetFetch)."""
    if coordinator is None:
        return
    _error, listed = coordinator.list_groups()
    for entry in listed:
        described = coordinator.describe_groups([entry.group_id])
        members = len(described[0].members) if described else 0
        _error, fetched = coordinator.fetch_offsets(entry.group_id, None)
        offsets = {key: value.offset for key, (value, _code) in fetched.items() if value is not None}
        yield entry.group_id, entry.state, members, offsets


class BrokerObserver:
    """The broker role's metrics, readiness and status; reads `broker` (broker/core.Broker) at scrape time."""

    role = "broker"

    def __init__(self, broker: Any, coordinator: Any = None, stats: BrokerStats = STATS) -> None:
        self.broker = broker
        self.coordinator = coordinator
        self.stats = stats

    # -- state -------------------------------------------------------------------------------------
    def _session(self) -> Any:
        """The broker's controller session (registration, epoch, shutdown request)."""
        return getattr(self.broker, "session", self.broker)

    def _registration(self) -> Any:
        return self.broker.image().brokers.get(self.broker.broker_id)

    def readiness(self) -> tuple[bool, str]:
        reg = self._registration()
        epoch = self._session().broker_epoch
        if epoch < 0:
            return False, "not registered with the controller quorum yet"
        if reg is None or reg.broker_epoch != epoch:
            return False, "metadata has not caught up with this broker's registration"
        if reg.fenced:
            return False, "fenced by the controller (no heartbeat reached it in time, or catching up)"
        if reg.shutting_down:
            return False, "controlled shutdown in progress"
        return True, f"registered (epoch {reg.broker_epoch}) and unfenced"

    def broker_state(self) -> int:
        if getattr(self._session(), "want_shutdown", False):
            return BROKER_STATE_PENDING_CONTROLLED_SHUTDOWN
        return BROKER_STATE_RUNNING if self.readiness()[0] else BROKER_STATE_STARTING

    def _active_controller(self) -> int:
        """The active controller's id: the core's answer, else the controller this broker's session talks to."""
        active = self.broker.controller_id()
        if active >= 0:
            return int(active)
        current = getattr(getattr(self.broker, "controllers", None), "current", None)
        for node_id, (_raft, grpc_address) in self.broker.image().controllers.items():
            if grpc_address == current:
                return int(node_id)
        return -1

    def _min_isr(self, topic: str) -> int:
        try:
            return int(self.broker.replicas.topic_value(self.broker.image(), topic, "min.insync.replicas"))
        except Exception:
            return 1

    def _end_offset(self, topic: str, partition: int) -> int | None:
        """The HW of a local replica (a follower's may trail the leader's slightly), or None."""
        p = self.broker.replicas.lookup(topic, partition)
        if p is None:
            return None
        return p.leader.high_watermark if p.leader is not None else p.log.high_watermark

    def groups(self) -> list[dict[str, Any]]:
        out = []
        for group_id, state, members, offsets in _coordinator_groups(self.coordinator):
            parts, total = [], 0
            for (topic, partition), committed in sorted(offsets.items()):
                end = self._end_offset(topic, partition)
                lag = None if end is None else max(0, end - committed)
                total += lag or 0
                parts.append({"topic": topic, "partition": partition, "committed": committed,
                              "end_offset": end, "lag": lag})
            out.append({"group": group_id, "state": state, "members": members,
                        "coordinator": self.broker.broker_id, "lag": total, "partitions": parts})
        return out

    def status(self) -> dict[str, Any]:
        image = self.broker.image()
        leaders = []
        for p in list(self.broker.replicas.partitions.values()):
            if p.leader is not None:
                leaders.append({"topic": p.topic, "partition": p.index, "high_watermark": p.leader.high_watermark,
                                "log_end_offset": p.log.log_end_offset})
        s = self.stats
        return {
            "cluster": cluster_view(image, self._active_controller(), min_isr=self._min_isr),
            "broker": {"id": self.broker.broker_id, "epoch": self._session().broker_epoch, "state": self.broker_state(),
                       "partitions": len(self.broker.replicas.partitions), "leaders": leaders},
            "groups": self.groups(),
            "throughput": {"bytes_in": sum(s.bytes_in.values()), "bytes_out": sum(s.bytes_out.values()),
                           "messages_in": sum(s.messages_in.values())},
        }

    # -- Prometheus --------------------------------------------------------------------------------
    def collector(self) -> Collector:
        observer = self

        class _BrokerCollector(Collector):
            def collect(self) -> Iterator[Metric]:
                return observer.collect()

        return _BrokerCollector()

    def collect(self) -> Iterator[Metric]:
        image = self.broker.image()
        s = self.stats
        s.forget_topics(lambda t: image.topic_by_name(t) is not None)
        partitions = list(self.broker.replicas.partitions.values())
        leaders = [p for p in partitions if p.leader is not None]
        under = [p for p in leaders if len(p.leader.isr) < len(p.leader.replicas)]
        under_min = at_min = 0
        per_partition = GaugeMetricFamily("kafka_cluster_partition_underreplicated",
                                          "1 when this leader's partition has an ISR smaller than its replicas.",
                                          labels=["topic", "partition"])
        for p in leaders:
            min_isr = self._min_isr(p.topic)
            under_min += len(p.leader.isr) < min_isr
            at_min += len(p.leader.isr) == min_isr
            per_partition.add_metric([p.topic, str(p.index)], 1 if p in under else 0)
        yield _gauge("kafka_server_replicamanager_partitioncount", "Replicas on this broker.", len(partitions))
        yield _gauge("kafka_server_replicamanager_leadercount", "Partitions this broker leads.", len(leaders))
        yield _gauge("kafka_server_replicamanager_underreplicatedpartitions",
                     "Partitions led here whose ISR is smaller than their replica set.", len(under))
        yield _gauge("kafka_server_replicamanager_underminisrpartitioncount",
                     "Partitions led here whose ISR is below min.insync.replicas (acks=all fails).", under_min)
        yield _gauge("kafka_server_replicamanager_atminisrpartitioncount",
                     "Partitions led here whose ISR is exactly min.insync.replicas.", at_min)
        yield per_partition
        yield _counter("kafka_server_replicamanager_isrshrinks", "ISR shrinks made by this leader.", s.isr_shrinks)
        yield _counter("kafka_server_replicamanager_isrexpands", "ISR expansions made by this leader.", s.isr_expands)
        yield _gauge("kafka_server_kafkaserver_brokerstate",
                     "Kafka's BrokerState: 1 starting, 3 running, 6 pending controlled shutdown.", self.broker_state())
        for name, doc, counters in (
                ("kafka_server_brokertopicmetrics_bytesin", "Bytes appended by producers, per topic.", s.bytes_in),
                ("kafka_server_brokertopicmetrics_messagesin", "Records appended by producers, per topic.",
                 s.messages_in),
                ("kafka_server_brokertopicmetrics_bytesout", "Bytes sent to consumers, per topic.", s.bytes_out)):
            family = CounterMetricFamily(name, doc, labels=["topic"])
            for topic, value in sorted(counters.items()):
                family.add_metric([topic], value)
            yield family
        purgatory = GaugeMetricFamily("kafka_server_delayedoperationpurgatory_purgatorysize",
                                      "Requests waiting: acks=all produces for replication, fetches for data.",
                                      labels=["delayedOperation"])
        for operation, value in sorted(s.waiting.items()):
            purgatory.add_metric([operation], value)
        yield purgatory
        yield from self._request_metrics()
        yield from self._log_metrics(partitions)
        yield from self._group_metrics()
        yield _counter("brook_replica_divergences_after_truncation",
                       "Safety net: divergences a leader reported (KIP-320) after a follower here had finished "
                       "truncating against that leader and epoch (KIP-279); 0 in a correct build.",
                       self.broker.replicas.divergences_after_truncation)
        yield _gauge("brook_broker_metadata_offset", "The offset of this broker's metadata image.", image.offset)
        yield _gauge("brook_broker_epoch", "This broker's epoch (-1 before registration).", self._session().broker_epoch)

    def _request_metrics(self) -> Iterator[Metric]:
        s = self.stats
        requests = CounterMetricFamily("kafka_network_requestmetrics_requests",
                                       "Kafka requests handled, per API and version.", labels=["request", "version"])
        for (name, version), value in sorted(s.requests.items()):
            requests.add_metric([name, str(version)], value)
        yield requests
        # A summary: {quantile=...} samples plus _count and _sum, as the exporter renders Kafka's histograms.
        total = Metric("kafka_network_requestmetrics_totaltimems",
                       f"Request time in ms; quantiles over the last {LATENCY_SAMPLES_MAX} requests.", "summary")
        for name, samples in sorted(s.latency_ms.items()):
            ordered = sorted(samples)
            for label, q in QUANTILES:
                total.add_sample(total.name, {"request": name, "quantile": label}, quantile(ordered, q))
            total.add_sample(total.name + "_count", {"request": name}, s.latency_count[name])
            total.add_sample(total.name + "_sum", {"request": name}, s.latency_sum_ms[name])
        yield total

    def _log_metrics(self, partitions: list[Any]) -> Iterator[Metric]:
        end = GaugeMetricFamily("kafka_log_log_logendoffset", "Log end offset of each local replica.",
                                labels=["topic", "partition"])
        start = GaugeMetricFamily("kafka_log_log_logstartoffset", "Log start offset of each local replica.",
                                  labels=["topic", "partition"])
        for p in partitions:
            end.add_metric([p.topic, str(p.index)], p.log.log_end_offset)
            start.add_metric([p.topic, str(p.index)], p.log.log_start_offset)
        yield end
        yield start

    def _group_metrics(self) -> Iterator[Metric]:
        current = GaugeMetricFamily("kafka_consumergroup_current_offset", "Committed offset of a group.",
                                    labels=["consumergroup", "topic", "partition"])
        lag = GaugeMetricFamily("kafka_consumergroup_lag", "End offset (HW) minus committed offset.",
                                labels=["consumergroup", "topic", "partition"])
        lag_sum = GaugeMetricFamily("kafka_consumergroup_lag_sum", "Lag of a group summed over a topic.",
                                    labels=["consumergroup", "topic"])
        members = GaugeMetricFamily("kafka_consumergroup_members", "Members of a group.", labels=["consumergroup"])
        for group in self.groups():
            members.add_metric([group["group"]], group["members"])
            sums: dict[str, int] = {}
            for part in group["partitions"]:
                labels = [group["group"], part["topic"], str(part["partition"])]
                current.add_metric(labels, part["committed"])
                if part["lag"] is not None:
                    lag.add_metric(labels, part["lag"])
                    sums[part["topic"]] = sums.get(part["topic"], 0) + part["lag"]
            for topic, value in sorted(sums.items()):
                lag_sum.add_metric([group["group"], topic], value)
        yield from (current, lag, lag_sum, members)
