"""Output formatting, partition filters and the health rules, from protobuf replies (no network).

Goal: the tables look like kafka-topics.sh / kafka-metadata-quorum, JSON is complete, and health is
decided exactly by the documented rules. Method: tables of hand-built replies.
"""

from __future__ import annotations

import json

import pytest

from brookpb import admin_pb2 as apb
from cluster.cli import _views as views
from cluster.cli._output import render_json, render_kv, render_table
from cluster.cli.data import (
    ConsumedRecord,
    decode_fetched,
    format_record,
    murmur2,
    partition_for_key,
    read_lines,
    split_line,
)
from cluster.errors import BrookError


def cluster_reply(brokers=((101, False, False), (102, False, False)), active=1) -> apb.DescribeClusterResponse:
    reply = apb.DescribeClusterResponse(cluster_id="c1", active_controller_id=active,
                                        active_controller="127.0.0.1:9093" if active >= 0 else "",
                                        metadata_offset=42, answering_controller_id=2)
    for broker_id, fenced, shutting in brokers:
        reply.brokers.add(broker_id=broker_id, broker_epoch=7, host="127.0.0.1", kafka_port=9092,
                          grpc_port=9095, fenced=fenced, shutting_down=shutting)
    return reply


def topics_reply(*partitions, min_isr_default=1, topic_min_isr=None) -> apb.DescribeTopicsResponse:
    reply = apb.DescribeTopicsResponse(min_insync_replicas_default=min_isr_default)
    t = reply.topics.add(name="demo", topic_id=bytes(16))
    if topic_min_isr is not None:
        t.configs.add(name="min.insync.replicas", value=str(topic_min_isr), source="topic")
    for index, (leader, replicas, isr, offline) in enumerate(partitions):
        t.partitions.add(partition=index, leader=leader, leader_epoch=3, replicas=replicas, isr=isr,
                         offline_replicas=offline)
    return reply


def test_render_table_aligns_and_has_no_trailing_spaces():
    text = render_table(["ID", "STATE"], [[1, "unfenced"], [101, None]])
    assert text.splitlines() == ["ID   STATE", "1    unfenced", "101  -"]


def test_render_kv_and_json():
    assert render_kv([("A", 1), ("Long key", [1, 2])]) == "A:         1\nLong key:  1,2"
    assert json.loads(render_json({"a": [1]})) == {"a": [1]}


def test_cluster_view_and_text():
    reply = cluster_reply(brokers=((102, True, False), (101, False, False), (103, True, True)))
    view = views.cluster_view(reply)
    assert view["active_controller"] == {"id": 1, "address": "127.0.0.1:9093"}
    assert [(b["id"], b["state"]) for b in view["brokers"]] == [(101, "unfenced"), (102, "fenced"),
                                                               (103, "shutting-down")]
    text = views.cluster_text(view)
    assert "Active controller:  1 (127.0.0.1:9093)" in text
    assert "101  127.0.0.1:9092  127.0.0.1:9095  unfenced" in text
    assert "none (the quorum has no leader)" in views.cluster_text(views.cluster_view(cluster_reply(active=-1)))


def test_quorum_views_from_leader_and_follower():
    reply = apb.QuorumStatusResponse(leader_id=1, term=4, commit_index=100, last_applied=100,
                                     answering_node_id=1, state="leader")
    reply.voters.add(node_id=1, raft_address="h:1", grpc_address="h:11", match_index=100, lag=0, connected=True)
    reply.voters.add(node_id=2, raft_address="h:2", match_index=90, lag=10, connected=True)
    reply.voters.add(node_id=3, raft_address="h:3", match_index=0, lag=100, connected=False)
    view = views.quorum_view(reply)
    assert view["max_follower_lag"] == 100
    assert "MaxFollowerLag:  100" in views.quorum_status_text(view)
    lines = views.quorum_replication_text(view).splitlines()
    assert lines[0].split() == ["NodeId", "RaftAddress", "GrpcAddress", "Status", "MatchIndex", "Lag", "Connected"]
    assert lines[3].split() == ["3", "h:3", "-", "Follower", "0", "100", "no"]
    reply.state = "follower"
    follower = views.quorum_view(reply)
    assert follower["max_follower_lag"] is None
    assert "known only to the leader" in views.quorum_replication_text(follower)


@pytest.mark.parametrize("leader, replicas, isr, offline, min_isr, expected", [
    (1, [1, 2, 3], [1, 2, 3], [], 2, (False, False, False)),
    (1, [1, 2, 3], [1, 2], [3], 2, (True, False, False)),
    (1, [1, 2, 3], [1], [2, 3], 2, (True, True, False)),
    (-1, [1, 2, 3], [1], [1, 2, 3], 2, (True, True, True)),
    (1, [1, 2, 3], [1], [1, 2, 3], 1, (True, False, True)),  # the leader itself is offline
])
def test_partition_flags(leader, replicas, isr, offline, min_isr, expected):
    p = apb.PartitionInfo(partition=0, leader=leader, replicas=replicas, isr=isr, offline_replicas=offline)
    flags = views.partition_flags(p, min_isr)
    assert (flags["under_replicated"], flags["under_min_isr"], flags["unavailable"]) == expected


def test_topic_min_isr_prefers_the_topic_config():
    reply = topics_reply((1, [1, 2, 3], [1], []), min_isr_default=1, topic_min_isr=2)
    view = views.topic_view(reply.topics[0], reply.min_insync_replicas_default)
    assert view["min_insync_replicas"] == 2 and view["partitions"][0]["under_min_isr"]


def test_topics_describe_text_like_kafka_topics():
    reply = topics_reply((1, [1, 2, 3], [1, 2, 3], []), (2, [2, 3, 1], [2], [3]))
    view = views.topic_view(reply.topics[0], 2)
    text = views.topics_describe_text([view], filtered=False)
    lines = text.splitlines()
    assert lines[0].startswith("Topic: demo\tTopicId: 000000")
    assert "PartitionCount: 2\tReplicationFactor: 3" in lines[0]
    assert lines[1] == "\tTopic: demo\tPartition: 0\tLeader: 1\tLeaderEpoch: 3\tReplicas: 1,2,3\tIsr: 1,2,3\tOffline: "
    assert lines[2] == "\tTopic: demo\tPartition: 1\tLeader: 2\tLeaderEpoch: 3\tReplicas: 2,3,1\tIsr: 2\tOffline: 3"
    only = views.select_partitions(view["partitions"], under_replicated=True)
    assert [p["partition"] for p in only] == [1]
    view["partitions"] = only
    assert views.topics_describe_text([view], filtered=True).count("\n") == 0  # no header line when filtered


def test_select_partitions_any_filter_matches():
    parts = [{"partition": 0, "under_replicated": True, "under_min_isr": False, "unavailable": False},
             {"partition": 1, "under_replicated": False, "under_min_isr": False, "unavailable": True},
             {"partition": 2, "under_replicated": False, "under_min_isr": False, "unavailable": False}]
    assert [p["partition"] for p in views.select_partitions(parts)] == [0, 1, 2]
    assert [p["partition"] for p in views.select_partitions(parts, under_replicated=True, unavailable=True)] == [0, 1]
    assert views.select_partitions(parts, under_min_isr=True) == []


@pytest.mark.parametrize("brokers, active, partitions, healthy, problem", [
    (((101, False, False),), 1, [(101, [101], [101], [])], True, None),
    (((101, False, False),), -1, [(101, [101], [101], [])], False, "no leader"),
    (((101, True, False),), 1, [], False, "fenced brokers: 101"),
    ((), 1, [], False, "no broker"),
    (((101, False, False), (102, False, False)), 1, [(101, [101, 102], [101], [])], False, "under-replicated"),
    (((101, False, False),), 1, [(-1, [102], [102], [102])], False, "offline partitions: demo-0"),
])
def test_assess_health(brokers, active, partitions, healthy, problem):
    health = views.assess_health(cluster_reply(brokers=brokers, active=active), topics_reply(*partitions))
    assert health.healthy is healthy
    if problem:
        assert any(problem in p for p in health.problems), health.problems
    assert ("Healthy:" in views.health_text(health)) and json.dumps(health.as_dict())


def test_health_counts_under_min_isr_with_the_default():
    reply = topics_reply((101, [101, 102, 103], [101, 102, 103], []), min_isr_default=2)
    reply.topics[0].partitions[0].ClearField("isr")
    reply.topics[0].partitions[0].isr.append(101)
    health = views.assess_health(cluster_reply(), reply)
    assert health.under_min_isr == ["demo-0"] and not health.healthy


# -- console producer / consumer helpers ---------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"", 275646681), (b"21", -973932308), (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536), (b"a-little-bit-longer-string", -1486304829),
])
def test_murmur2_matches_kafka(data, expected):
    assert murmur2(data) == expected


def test_partition_for_key_is_stable_and_in_range():
    assert all(0 <= partition_for_key(str(i).encode(), 3) < 3 for i in range(100))
    assert partition_for_key(b"k", 7) == partition_for_key(b"k", 7)


def test_split_line():
    assert split_line(b"k:v:w", b":") == (b"k", b"v:w")
    assert split_line(b"plain", None) == (None, b"plain")
    with pytest.raises(BrookError, match="no key separator"):
        split_line(b"plain", b":")


def test_read_lines_marks_ready_input(tmp_path):
    path = tmp_path / "in"
    path.write_bytes(b"a\r\nb\n\nc")
    import os
    fd = os.open(path, os.O_RDONLY)
    try:
        lines = [line for line, _ in read_lines(fd)]
    finally:
        os.close(fd)
    assert lines == [b"a", b"b", b"", b"c"]


def test_decode_fetched_skips_records_before_the_offset_and_partial_tails():
    from storage.batch import Record, build_batch
    first = build_batch([Record(b"k0", b"v0", 1000), Record(None, b"v1", 1001)], base_offset=10)
    second = build_batch([Record(b"k2", None, 1002)], base_offset=12)
    records, next_offset = decode_fetched(0, first + second + second[:20], 11)
    assert [(r.offset, r.key, r.value) for r in records] == [(11, None, b"v1"), (12, b"k2", None)]
    assert next_offset == 13


def test_format_record_like_the_console_consumer():
    r = ConsumedRecord(2, 7, 1234, False, b"k", b"v", ())
    assert format_record(r, print_key=False, print_offset=False, print_partition=False, print_timestamp=False) == "v"
    full = format_record(r, print_key=True, print_offset=True, print_partition=True, print_timestamp=True)
    assert full == "CreateTime:1234\tPartition:2\tOffset:7\tk\tv"
    null_key = ConsumedRecord(0, 0, 1, True, None, None, ())
    assert format_record(null_key, print_key=True, print_offset=False, print_partition=False,
                         print_timestamp=True) == "LogAppendTime:1\tnull\tnull"
