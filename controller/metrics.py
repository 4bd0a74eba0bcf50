"""The controller's Prometheus metrics, readiness and status, read from the runtime at scrape time.

Names follow the Prometheus JMX exporter's standard Kafka rules for Kafka's controller MBeans
(`kafka.controller:type=KafkaController,name=ActiveControllerCount` ->
`kafka_controller_kafkacontroller_activecontrollercount`). As in Kafka's KRaft mode, only the active
controller reports the cluster-wide counts (offline partitions, global partition count, fenced
brokers...); the other controllers report 0, so `sum()` over every controller is the cluster's value
and `sum(kafka_controller_kafkacontroller_activecontrollercount)` is 1 in a healthy cluster.

The Raft quorum (pysyncobj) has no Kafka equivalent worth emulating: its term, commit index and
follower lag are `brook_raft_*`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cluster.effective_config import EffectiveConfigError, topic_config
from cluster.observe.status import cluster_view, partition_counts


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class ControllerObserver:
    """The controller role's metrics, readiness and status; reads `runtime` (ControllerRuntime)."""

    role = "controller"

    def __init__(self, runtime: Any) -> None:
        self.rt = runtime

    # -- state -------------------------------------------------------------------------------------
    def raft_status(self) -> dict[str, Any]:
        """Term, indexes, leader and (on the leader) each follower's match index; {} if unavailable."""
        quorum = self.rt.quorum
        try:
            raw = dict(quorum.status())
        except Exception:  # pysyncobj's status is read from another thread; a racing change is retried next scrape
            return {}
        followers = {}
        for key, value in raw.items():
            if key.startswith("match_idx_server_"):
                address = key.removeprefix("match_idx_server_")
                followers[quorum.node_by_address.get(address, address)] = int(value)
        return {
            "term": int(raw.get("raft_term", 0)), "commit_index": int(raw.get("commit_idx", 0)),
            "last_applied": int(raw.get("last_applied", 0)),
            "leader_commit_index": int(raw.get("leader_commit_idx") or 0),
            "log_length": int(raw.get("log_len", 0)), "has_quorum": bool(raw.get("has_quorum", False)),
            "leader": quorum.leader_node_id(), "is_leader": quorum.is_leader(),
            "follower_match_index": followers,
        }

    def readiness(self) -> tuple[bool, str]:
        raft = self.raft_status()
        if not raft.get("has_quorum"):
            return False, "not connected to a majority of the controller quorum"
        if raft.get("leader", -1) < 0:
            return False, "the controller quorum has no leader"
        if not self.rt.image.cluster_id:
            return False, "metadata not applied yet"
        role = "active controller" if self.rt.active else f"follower of controller {raft['leader']}"
        return True, f"{role}, metadata offset {self.rt.image.offset}"

    def voter_ids(self) -> list[int]:
        return [node_id for node_id, _ in self.rt.quorum.settings.voters]

    def status(self) -> dict[str, Any]:
        raft = self.raft_status()
        active = self.rt.node_id if self.rt.active else raft.get("leader", -1)
        return {
            "cluster": cluster_view(self.rt.image, active, self.voter_ids(), min_isr=self._min_isr),
            "controller": {"id": self.rt.node_id, "active": bool(self.rt.active), "address": self.rt.grpc_address,
                           "raft": {k: v for k, v in raft.items() if k != "follower_match_index"}
                           | {"follower_match_index": {str(k): v for k, v in raft.get("follower_match_index", {}).items()}}},
        }

    def _min_isr(self, topic: str) -> int:
        try:
            return int(topic_config(self.rt.image, self.rt.config, topic).min_insync_replicas)
        except (EffectiveConfigError, TypeError, ValueError):
            return 1

    # -- Prometheus --------------------------------------------------------------------------------
    def collector(self) -> Collector:
        observer = self

        class _ControllerCollector(Collector):
            def collect(self) -> Iterator[Metric]:
                return observer.collect()

        return _ControllerCollector()

    def collect(self) -> Iterator[Metric]:
        image = self.rt.image
        active = bool(self.rt.active)
        counts = partition_counts(image)
        brokers = list(image.brokers.values())

        def cluster_wide(value: int) -> int:
            return value if active else 0

        yield _gauge("kafka_controller_kafkacontroller_activecontrollercount",
                     "1 on the active controller, 0 on the others.", 1 if active else 0)
        yield _gauge("kafka_controller_kafkacontroller_offlinepartitionscount",
                     "Partitions without a leader (active controller only).", cluster_wide(counts.offline))
        yield _gauge("kafka_controller_kafkacontroller_globalpartitioncount",
                     "Partitions in the cluster (active controller only).", cluster_wide(counts.total))
        yield _gauge("kafka_controller_kafkacontroller_globaltopiccount",
                     "Topics in the cluster (active controller only).", cluster_wide(counts.topics))
        yield _gauge("kafka_controller_kafkacontroller_preferredreplicaimbalancecount",
                     "Partitions not led by their preferred replica (active controller only).",
                     cluster_wide(counts.preferred_imbalance))
        yield _gauge("kafka_controller_kafkacontroller_fencedbrokercount",
                     "Registered brokers that are fenced (active controller only).",
                     cluster_wide(sum(1 for b in brokers if b.fenced)))
        yield _gauge("kafka_controller_kafkacontroller_activebrokercount",
                     "Registered brokers that are unfenced (active controller only).",
                     cluster_wide(sum(1 for b in brokers if not b.fenced)))
        yield CounterMetricFamily("kafka_controller_controllerstats_uncleanleaderelections",
                                  "Unclean leader elections in the cluster's history (active controller only).",
                                  value=cluster_wide(image.unclean_elections))
        lost_total = 0
        last_from = GaugeMetricFamily("brook_partition_unclean_loss_from",
                                      "First offset of the range the partition's last unclean election with a "
                                      "known loss lost (active controller only).", labels=["topic", "partition"])
        last_to = GaugeMetricFamily("brook_partition_unclean_loss_to",
                                    "End (exclusive) of that range (active controller only).",
                                    labels=["topic", "partition"])
        for topic in image.topics.values():
            for index, p in topic.partitions.items():
                lost_total += p.unclean_lost_offsets
                if active and p.last_unclean_loss is not None:
                    last_from.add_metric([topic.name, str(index)], p.last_unclean_loss[0])
                    last_to.add_metric([topic.name, str(index)], p.last_unclean_loss[1])
        yield CounterMetricFamily("brook_controller_unclean_lost_offsets",
                                  "Offsets unclean leader elections are known to have lost (held by a live replica "
                                  "beyond the new leader's log), over the existing partitions (active controller "
                                  "only).", value=cluster_wide(lost_total))
        yield last_from
        yield last_to
        yield _gauge("brook_controller_metadata_offset", "The offset of this controller's applied metadata image.",
                     image.offset)
        raft = self.raft_status()
        if raft:
            yield _gauge("brook_raft_term", "The current Raft term.", raft["term"])
            yield _gauge("brook_raft_commit_index", "This controller's Raft commit index.", raft["commit_index"])
            yield _gauge("brook_raft_last_applied", "The last Raft log index applied here.", raft["last_applied"])
            yield _gauge("brook_raft_leader_commit_index", "The leader's commit index as last heard here.",
                         raft["leader_commit_index"])
            yield _gauge("brook_raft_log_entries", "Raft log entries held (since the last snapshot).",
                         raft["log_length"])
            yield _gauge("brook_raft_leader", "Node id of the Raft leader as seen here (-1: none).", raft["leader"])
            yield _gauge("brook_raft_is_leader", "1 when this controller is the Raft leader.", int(raft["is_leader"]))
            yield _gauge("brook_raft_has_quorum", "1 when connected to a majority of the voters.",
                         int(raft["has_quorum"]))
            lag = GaugeMetricFamily("brook_raft_follower_lag_entries",
                                    "On the leader: its commit index minus each follower's match index.",
                                    labels=["follower"])
            if raft["is_leader"]:
                for follower, match in sorted(raft["follower_match_index"].items(), key=lambda kv: str(kv[0])):
                    lag.add_metric([str(follower)], max(0, raft["commit_index"] - match))
            yield lag
