"""The `brook` CLI against a real 3+3 cluster of processes.

Goal: the admin commands and the console producer/consumer work end to end, and bad requests give
one-line errors with exit code 1. Method: the module-scoped `cluster` fixture and the CLI run as a
subprocess with BROOK_BOOTSTRAP_CONTROLLER set, as a user would run it.
"""

from __future__ import annotations

import json
import time

import pytest

from brookpb import admin_pb2 as apb
from cluster.cli.data import partition_for_key
from cluster.client import ControllerClient

pytestmark = pytest.mark.timeout(240)


def one_line_error(result) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("brook: error: "), result.stderr
    return lines[0]


def wait_for(predicate, timeout_s: float = 20.0, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def test_cluster_describe_shows_three_unfenced_brokers_and_an_active_controller(cluster, brook):
    result = brook("cluster", "describe", "--output", "json")
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert view["active_controller"]["id"] in cluster.controller_ids
    assert view["active_controller"]["address"] in cluster.controller_bootstrap.split(",")
    assert sorted(b["id"] for b in view["brokers"]) == [101, 102, 103]
    assert {b["state"] for b in view["brokers"]} == {"unfenced"}
    table = brook("cluster", "describe")
    assert table.returncode == 0 and "Active controller:" in table.stdout and table.stdout.count("unfenced") == 3
    listed = brook("brokers", "list")
    assert listed.returncode == 0 and listed.stdout.count("unfenced") == 3


def test_quorum_status_and_replication(cluster, brook):
    status = json.loads(brook("quorum", "status", "-o", "json").stdout)
    assert status["leader_id"] in cluster.controller_ids and status["from_leader"]
    assert sorted(v["node_id"] for v in status["voters"]) == [1, 2, 3]
    replication = brook("quorum", "replication")
    assert replication.returncode == 0
    assert replication.lines[0].split()[:4] == ["NodeId", "RaftAddress", "GrpcAddress", "Status"]
    assert sum("Leader" in line for line in replication.lines[1:]) == 1


def test_topics_create_describe_list_delete(cluster, brook):
    created = brook("topics", "create", "orders", "--partitions", "3", "--replication-factor", "3",
                    "--config", "retention.ms=600000")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "Created topic orders."
    listed = json.loads(brook("topics", "list", "-o", "json").stdout)
    assert {"name": "orders", "partition_count": 3, "replication_factor": 3} == \
        {k: v for k, v in next(t for t in listed if t["name"] == "orders").items() if k != "topic_id"}
    described = brook("topics", "describe", "orders")
    assert described.returncode == 0
    assert described.lines[0].startswith("Topic: orders\t") and "retention.ms=600000" in described.lines[0]
    partitions = described.lines[1:]
    assert len(partitions) == 3
    for line in partitions:
        fields = {k: v.strip() for k, v in (f.split(":", 1) for f in line.lstrip("\t").split("\t"))}
        assert len(fields["Replicas"].split(",")) == 3 and fields["Leader"] in fields["Replicas"].split(",")
    leaders = {json.loads(brook("topics", "describe", "orders", "-o", "json").stdout)[0]["partitions"][i]["replicas"][0]
               for i in range(3)}
    assert leaders == {101, 102, 103}  # preferred leaders spread over the brokers
    # Every replica is in the ISR: the filters find nothing.
    for flag in ("--under-replicated-partitions", "--under-min-isr-partitions", "--unavailable-partitions"):
        filtered = brook("topics", "describe", "orders", flag)
        assert filtered.returncode == 0 and filtered.stdout.strip() == ""
    deleted = brook("topics", "delete", "orders")
    assert deleted.returncode == 0 and deleted.stdout.strip() == "Deleted topic orders."
    assert wait_for(lambda: "orders" not in brook("topics", "list").stdout)


def test_topics_alter_adds_partitions(cluster, brook):
    assert brook("topics", "create", "growing", "--partitions", "1", "--replication-factor", "3").returncode == 0
    grown = brook("topics", "alter", "growing", "--partitions", "3")
    assert grown.returncode == 0 and grown.stdout.strip() == "Topic growing now has 3 partitions.", grown.stderr
    described = json.loads(brook("topics", "describe", "growing", "-o", "json").stdout)[0]
    assert [len(p["replicas"]) for p in described["partitions"]] == [3, 3, 3]
    shrink = brook("topics", "alter", "growing", "--partitions", "2")
    assert shrink.returncode == 1 and "INVALID_PARTITIONS" in shrink.stderr and "Traceback" not in shrink.stderr
    assert len(shrink.stderr.strip().splitlines()) == 1, shrink.stderr


@pytest.mark.parametrize("argv, fragment", [
    (["topics", "create", "too-wide", "--replication-factor", "9"], "replication factor"),
    (["topics", "create", "bad/name"], "bad/name"),
    (["topics", "describe", "no-such-topic"], "does not exist"),
    (["topics", "delete", "no-such-topic"], "does not exist"),
    (["topics", "alter", "no-such-topic", "--config", "retention.ms=1"], "does not exist"),
    (["configs", "describe", "--topic", "no-such-topic"], "does not exist"),
    (["produce", "no-such-topic"], "does not exist"),
    (["consume", "no-such-topic"], "does not exist"),
    (["leaders", "elect", "--type", "preferred", "--topic", "no-such-topic"], "does not exist"),
])
def test_bad_requests_give_one_line_errors(cluster, brook, argv, fragment):
    line = one_line_error(brook(*argv))
    assert fragment in line


def test_duplicate_topic_is_an_error_unless_if_not_exists(cluster, brook):
    assert brook("topics", "create", "dup", "--partitions", "1").returncode == 0
    assert "already exists" in one_line_error(brook("topics", "create", "dup"))
    assert brook("topics", "create", "dup", "--if-not-exists").returncode == 0


def test_unknown_config_names_the_key(cluster, brook):
    assert brook("topics", "create", "cfg", "--partitions", "1").returncode == 0
    assert "no.such.config" in one_line_error(brook("topics", "alter", "cfg", "--config", "no.such.config=1"))
    ok = brook("configs", "alter", "--topic", "cfg", "--set", "retention.ms=1000")
    assert ok.returncode == 0, ok.stderr
    entries = json.loads(brook("configs", "describe", "--topic", "cfg", "-o", "json").stdout)["entries"]
    assert {"name": "retention.ms", "value": "1000"}.items() <= next(e for e in entries if e["name"] == "retention.ms").items()


def test_produce_consume_round_trip(cluster, brook):
    assert brook("topics", "create", "roundtrip", "--partitions", "3", "--replication-factor", "3").returncode == 0
    lines = [f"key{i}:value-{i}" for i in range(30)]
    produced = brook("produce", "roundtrip", "--key-separator", ":", "--acks", "all", "-o", "json",
                     stdin="\n".join(lines) + "\n")
    assert produced.returncode == 0, produced.stderr
    acks = [json.loads(line) for line in produced.lines]
    assert len(acks) == 30 and all(a["offset"] is not None for a in acks)
    consumed = brook("consume", "roundtrip", "--from-beginning", "-o", "json")
    assert consumed.returncode == 0, consumed.stderr
    records = [json.loads(line) for line in consumed.lines]
    assert sorted((r["key"], r["value"]) for r in records) == sorted(tuple(line.split(":")) for line in lines)
    # The consumer sees exactly the acknowledged offsets, and keys land where Kafka's partitioner puts them.
    assert sorted((a["partition"], a["offset"]) for a in acks) == sorted((r["partition"], r["offset"]) for r in records)
    assert all(r["partition"] == partition_for_key(r["key"].encode(), 3) for r in records)
    first = next(r for r in records if r["key"] == "key0")
    one = brook("consume", "roundtrip", "--partition", str(first["partition"]), "--offset",
                str(first["offset"]), "--max-messages", "1", "--print-key", "--print-offset")
    assert one.returncode == 0 and one.lines == [f"Offset:{first['offset']}\tkey0\tvalue-0"]


def test_cluster_health_and_leader_election(cluster, brook):
    assert brook("topics", "create", "healthy", "--partitions", "2", "--replication-factor", "3").returncode == 0
    health = brook("cluster", "health", "--exit-when-healthy", "--timeout", "30")
    assert health.returncode == 0, health.stdout + health.stderr
    elected = brook("leaders", "elect", "--type", "preferred", "--topic", "healthy", "-o", "json")
    assert elected.returncode == 0, elected.stderr
    assert {r["result"] for r in json.loads(elected.stdout)} <= {"elected", "not needed"}


def test_writes_follow_not_controller_to_the_active_controller(cluster):
    with ControllerClient(cluster.controller_bootstrap.split(","), timeout_s=10) as client:
        active = client.describe_cluster().active_controller
    followers = [a for a in cluster.controller_bootstrap.split(",") if a != active]
    with ControllerClient([followers[0]], timeout_s=10) as client:
        reply = client.create_topics([apb.CreateTopicRequest(
            name="via-follower", partitions=1, replication_factor=1)])
        assert reply.results[0].error_code == 0, reply.results[0].error_message
        assert client.preferred == active
