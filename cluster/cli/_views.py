"""Pure views: admin replies → JSON-ready dicts and table text, partition filters, cluster health.

No network here: every function takes protobuf replies (or dicts) and returns data or strings, so
the formatting and the health rules are tested with tables of cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from brookpb import admin_pb2 as apb
from cluster.cli._output import render_kv, render_table
from cluster.client import kafka_address

MIN_ISR_KEY = "min.insync.replicas"


# -- brokers and the cluster ---------------------------------------------------------------------

def broker_state(b: apb.BrokerInfo) -> str:
    if b.shutting_down:
        return "shutting-down"
    return "fenced" if b.fenced else "unfenced"


def broker_view(b: apb.BrokerInfo) -> dict[str, Any]:
    return {
        "id": b.broker_id,
        "host": b.host,
        "kafka_address": kafka_address(b),
        "listeners": {e.name: f"{e.host}:{e.port}" for e in b.listeners},
        "grpc_address": f"{b.host}:{b.grpc_port}",
        "state": broker_state(b),
        "epoch": b.broker_epoch,
        "rack": b.rack or None,
    }


def cluster_view(reply: apb.DescribeClusterResponse) -> dict[str, Any]:
    active = reply.active_controller_id
    return {
        "cluster_id": reply.cluster_id,
        "active_controller": {"id": active, "address": reply.active_controller or None} if active >= 0 else None,
        "answering_controller_id": reply.answering_controller_id,
        "metadata_offset": reply.metadata_offset,
        "unclean_elections": reply.unclean_elections,
        "brokers": [broker_view(b) for b in sorted(reply.brokers, key=lambda b: b.broker_id)],
    }


def brokers_table(brokers: Sequence[dict[str, Any]]) -> str:
    rows = [[b["id"], b["kafka_address"], b["grpc_address"], b["state"], b["epoch"], b["rack"]] for b in brokers]
    return render_table(["ID", "KAFKA ADDRESS", "GRPC ADDRESS", "STATE", "EPOCH", "RACK"], rows)


def cluster_text(view: dict[str, Any]) -> str:
    active = view["active_controller"]
    active_text = f"{active['id']} ({active['address']})" if active else "none (the quorum has no leader)"
    head = render_kv([
        ("Cluster ID", view["cluster_id"] or "-"),
        ("Active controller", active_text),
        ("Metadata offset", view["metadata_offset"]),
        ("Unclean elections", view["unclean_elections"]),
        ("Brokers", len(view["brokers"])),
    ])
    if not view["brokers"]:
        return head + "\n\n(no broker registered)"
    return head + "\n\n" + brokers_table(view["brokers"])


# -- quorum --------------------------------------------------------------------------------------

def quorum_view(reply: apb.QuorumStatusResponse) -> dict[str, Any]:
    voters = [{
        "node_id": v.node_id,
        "raft_address": v.raft_address,
        "grpc_address": v.grpc_address or None,
        "status": "leader" if v.node_id == reply.leader_id else "follower",
        "match_index": v.match_index,
        "lag": v.lag,
        "connected": v.connected,
    } for v in sorted(reply.voters, key=lambda v: v.node_id)]
    from_leader = reply.state == "leader"
    return {
        "leader_id": reply.leader_id,
        "term": reply.term,
        "commit_index": reply.commit_index,
        "last_applied": reply.last_applied,
        "metadata_offset": reply.metadata_offset,
        "answering_node_id": reply.answering_node_id,
        "answering_state": reply.state,
        # Match indexes and lags are known only to the leader; from a follower they read 0.
        "from_leader": from_leader,
        "max_follower_lag": max((v["lag"] for v in voters if v["status"] != "leader"), default=0) if from_leader
        else None,
        "voters": voters,
    }


def quorum_status_text(view: dict[str, Any]) -> str:
    return render_kv([
        ("LeaderId", view["leader_id"] if view["leader_id"] >= 0 else "none"),
        ("Term", view["term"]),
        ("CommitIndex", view["commit_index"]),
        ("LastApplied", view["last_applied"]),
        ("MetadataOffset", view["metadata_offset"]),
        ("MaxFollowerLag", view["max_follower_lag"] if view["from_leader"] else "unknown (answered by a follower)"),
        ("CurrentVoters", "[" + ",".join(str(v["node_id"]) for v in view["voters"]) + "]"),
        ("AnsweredBy", f"{view['answering_node_id']} ({view['answering_state']})"),
    ])


def quorum_replication_text(view: dict[str, Any]) -> str:
    rows = [[v["node_id"], v["raft_address"], v["grpc_address"], v["status"].capitalize(),
             v["match_index"] if view["from_leader"] else None, v["lag"] if view["from_leader"] else None,
             v["connected"]] for v in view["voters"]]
    table = render_table(["NodeId", "RaftAddress", "GrpcAddress", "Status", "MatchIndex", "Lag", "Connected"], rows)
    if not view["from_leader"]:
        table += (f"\n(answered by node {view['answering_node_id']}, a {view['answering_state']}: "
                  "match indexes and lags are known only to the leader)")
    return table


# -- topics and partitions -----------------------------------------------------------------------

def topic_min_isr(topic: apb.TopicInfo, default: int) -> int:
    for entry in topic.configs:
        if entry.name == MIN_ISR_KEY:
            try:
                return int(entry.value)
            except ValueError:
                return default
    return default


def partition_flags(p: apb.PartitionInfo, min_isr: int) -> dict[str, bool]:
    """Kafka's describe filters. Unavailable: no leader, or the leader is itself offline."""
    return {
        "under_replicated": len(p.isr) < len(p.replicas),
        "under_min_isr": len(p.isr) < min_isr,
        "unavailable": p.leader < 0 or p.leader in p.offline_replicas,
    }


def partition_view(topic: str, p: apb.PartitionInfo, min_isr: int) -> dict[str, Any]:
    return {
        "topic": topic,
        "partition": p.partition,
        "leader": p.leader,
        "leader_epoch": p.leader_epoch,
        "partition_epoch": p.partition_epoch,
        "replicas": list(p.replicas),
        "isr": list(p.isr),
        "offline": list(p.offline_replicas),
        "unclean_elections": p.unclean_elections,
        "unclean_lost_offsets": p.unclean_lost_offsets,
        "last_unclean_loss": ([p.last_unclean_loss_from, p.last_unclean_loss_to]
                              if p.last_unclean_loss_to > p.last_unclean_loss_from else None),
        **partition_flags(p, min_isr),
    }


def topic_view(topic: apb.TopicInfo, min_isr_default: int) -> dict[str, Any]:
    min_isr = topic_min_isr(topic, min_isr_default)
    parts = sorted(topic.partitions, key=lambda p: p.partition)
    return {
        "name": topic.name,
        "topic_id": topic.topic_id.hex() if topic.topic_id else None,
        "partition_count": len(parts),
        "replication_factor": len(parts[0].replicas) if parts else 0,
        "min_insync_replicas": min_isr,
        "configs": {c.name: c.value for c in topic.configs},
        "partitions": [partition_view(topic.name, p, min_isr) for p in parts],
    }


def select_partitions(partitions: Iterable[dict[str, Any]], *, under_replicated: bool = False,
                      under_min_isr: bool = False, unavailable: bool = False) -> list[dict[str, Any]]:
    """Kafka's filters: with none given every partition; with several, a partition matching any."""
    wanted = [name for name, on in (("under_replicated", under_replicated), ("under_min_isr", under_min_isr),
                                    ("unavailable", unavailable)) if on]
    if not wanted:
        return list(partitions)
    return [p for p in partitions if any(p[name] for name in wanted)]


def _ids(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


def partition_line(p: dict[str, Any]) -> str:
    return (f"\tTopic: {p['topic']}\tPartition: {p['partition']}\tLeader: {p['leader'] if p['leader'] >= 0 else 'none'}"
            f"\tLeaderEpoch: {p['leader_epoch']}\tReplicas: {_ids(p['replicas'])}\tIsr: {_ids(p['isr'])}"
            f"\tOffline: {_ids(p['offline'])}" + _loss_text(p))


def _loss_text(p: dict[str, Any]) -> str:
    """Kafka prints nothing of the kind: only partitions that had an unclean election say so."""
    if not p.get("unclean_elections"):
        return ""
    loss = p.get("last_unclean_loss")
    lost = f"\tUncleanLoss: [{loss[0]}, {loss[1]})" if loss else "\tUncleanLoss: none known"
    return f"\tUncleanElections: {p['unclean_elections']}{lost}"


def topic_header_line(t: dict[str, Any]) -> str:
    configs = ",".join(f"{k}={v}" for k, v in sorted(t["configs"].items()))
    return (f"Topic: {t['name']}\tTopicId: {t['topic_id'] or '-'}\tPartitionCount: {t['partition_count']}"
            f"\tReplicationFactor: {t['replication_factor']}\tConfigs: {configs}")


def topics_describe_text(topics: Sequence[dict[str, Any]], filtered: bool) -> str:
    """kafka-topics.sh --describe: a header line per topic and a tab-separated line per partition.
    With a filter only the matching partition lines are printed, as Kafka does."""
    lines: list[str] = []
    for t in topics:
        if not filtered:
            lines.append(topic_header_line(t))
        lines += [partition_line(p) for p in t["partitions"]]
    return "\n".join(lines)


def topics_list_text(topics: Sequence[dict[str, Any]]) -> str:
    rows = [[t["name"], t["partition_count"], t["replication_factor"]] for t in topics]
    return render_table(["NAME", "PARTITIONS", "REPLICAS"], rows)


# -- configs ---------------------------------------------------------------------------------------

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4


def resource_label(resource_type: int, name: str) -> str:
    if resource_type == RESOURCE_TOPIC:
        return f"topic {name!r}"
    return f"broker {name}" if name else "the cluster-wide broker defaults"


def configs_view(result: apb.ResourceConfigs) -> dict[str, Any]:
    return {
        "resource": {"type": "topic" if result.resource.type == RESOURCE_TOPIC else "broker",
                     "name": result.resource.name},
        "entries": [{"name": e.name, "value": e.value, "is_default": e.is_default, "source": e.source}
                    for e in result.entries],
    }


def configs_text(view: dict[str, Any]) -> str:
    rows = [[e["name"], e["value"] if e["value"] != "" else '""', e["source"]] for e in view["entries"]]
    return render_table(["NAME", "VALUE", "SOURCE"], rows)


# -- health ----------------------------------------------------------------------------------------

@dataclass
class Health:
    healthy: bool
    active_controller_id: int
    brokers_registered: int
    brokers_fenced: list[int] = field(default_factory=list)
    brokers_shutting_down: list[int] = field(default_factory=list)
    offline: list[str] = field(default_factory=list)
    under_replicated: list[str] = field(default_factory=list)
    under_min_isr: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "active_controller_id": self.active_controller_id,
            "brokers_registered": self.brokers_registered,
            "brokers_fenced": self.brokers_fenced,
            "brokers_shutting_down": self.brokers_shutting_down,
            "offline_partitions": self.offline,
            "under_replicated_partitions": self.under_replicated,
            "under_min_isr_partitions": self.under_min_isr,
            "problems": self.problems,
        }


PROBLEM_PARTITIONS_SHOWN_MAX = 10


def _some(names: list[str]) -> str:
    shown = names[:PROBLEM_PARTITIONS_SHOWN_MAX]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def assess_health(cluster: apb.DescribeClusterResponse, topics: apb.DescribeTopicsResponse) -> Health:
    """Healthy = the quorum has a leader, every registered broker unfenced, and no partition offline,
    under-replicated (ISR < replicas) or under min ISR (ISR < min.insync.replicas of the topic)."""
    fenced = sorted(b.broker_id for b in cluster.brokers if b.fenced)
    shutting = sorted(b.broker_id for b in cluster.brokers if b.shutting_down)
    health = Health(False, cluster.active_controller_id, len(cluster.brokers), fenced, shutting)
    for t in sorted(topics.topics, key=lambda t: t.name):
        if t.error_code:
            continue
        min_isr = topic_min_isr(t, topics.min_insync_replicas_default or 1)
        for p in sorted(t.partitions, key=lambda p: p.partition):
            name = f"{t.name}-{p.partition}"
            flags = partition_flags(p, min_isr)
            if flags["unavailable"]:
                health.offline.append(name)
            if flags["under_replicated"]:
                health.under_replicated.append(name)
            if flags["under_min_isr"]:
                health.under_min_isr.append(name)
    if cluster.active_controller_id < 0:
        health.problems.append("the controller quorum has no leader")
    if not cluster.brokers:
        health.problems.append("no broker is registered")
    if fenced:
        health.problems.append(f"fenced brokers: {_ids(fenced)}")
    if shutting:
        health.problems.append(f"brokers shutting down: {_ids(shutting)}")
    if health.offline:
        health.problems.append(f"{len(health.offline)} offline partitions: {_some(health.offline)}")
    if health.under_replicated:
        health.problems.append(f"{len(health.under_replicated)} under-replicated partitions: "
                               f"{_some(health.under_replicated)}")
    if health.under_min_isr:
        health.problems.append(f"{len(health.under_min_isr)} partitions under min ISR: {_some(health.under_min_isr)}")
    health.healthy = not health.problems
    return health


def health_text(h: Health) -> str:
    head = render_kv([
        ("Healthy", "yes" if h.healthy else "no"),
        ("Active controller", h.active_controller_id if h.active_controller_id >= 0 else "none"),
        ("Brokers", f"{h.brokers_registered} registered, {len(h.brokers_fenced)} fenced"),
        ("Offline partitions", len(h.offline)),
        ("Under-replicated", len(h.under_replicated)),
        ("Under min ISR", len(h.under_min_isr)),
    ])
    return head + "".join(f"\n  - {p}" for p in h.problems)
