"""`brook groups` and `brook perf` against a real 3-controller, 3-broker cluster.

Goal (issue 6 acceptance): `brook groups describe` shows correct LAG for a group consumed halfway;
`brook perf produce` prints its summary; `groups reset-offsets --to-earliest` works on an inactive
group (dry run first, then --execute); `groups delete` removes it. Method: records produced over
gRPC, half of them consumed by a confluent-kafka consumer that commits, then the CLI as a subprocess.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.support import create_topic, wait_until

pytestmark = pytest.mark.timeout(240)

PARTITIONS = 3
RECORDS = 300          # 100 per partition; the group commits 50 of each


def create_known_topic(cluster, name: str) -> None:
    """Create the topic and wait until every controller has applied it (reads are answered by any
    controller from its own state, so a CLI asking a lagging follower could not find it yet)."""
    from cluster.client import ControllerClient

    create_topic(cluster, name, partitions=PARTITIONS, rf=3)
    for address in cluster.controller_bootstrap.split(","):
        with ControllerClient([address], timeout_s=3.0) as one:
            wait_until(lambda c=one: not c.describe_topics([name]).topics[0].error_code, 30,
                       what=f"controller {address} to know {name}")


def produce_spread(brook, topic: str) -> None:
    """RECORDS records, RECORDS/PARTITIONS in each partition."""
    per = RECORDS // PARTITIONS
    for p in range(PARTITIONS):
        r = brook("produce", topic, "--partition", str(p), "-q", stdin="".join(f"v{p}-{i}\n" for i in range(per)))
        assert r.returncode == 0, r.stderr


def consume_and_commit(bootstrap: str, group: str, topic: str, per_partition: int, timeout_s: float = 60.0) -> int:
    """In a group, consume the first `per_partition` records of every partition, commit exactly that
    position of each synchronously, leave the group. Returns the number of records committed over."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "client.id": "halfway-consumer"})
    seen: dict[int, int] = {}
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout_s
        while (len(seen) < PARTITIONS or min(seen.values()) < per_partition) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error() is not None:
                continue
            seen[m.partition()] = max(seen.get(m.partition(), 0), m.offset() + 1)
        positions = {p: min(o, per_partition) for p, o in seen.items()}
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in positions.items()], asynchronous=False)
    finally:
        c.close()
    return sum(positions.values())


@pytest.fixture(scope="module")
def halfway(cluster):
    """A topic with RECORDS records and an inactive group that consumed and committed half of them."""
    from tests.integration.conftest import run_cli_process

    topic, group = f"lag-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"
    create_known_topic(cluster, topic)
    produce_spread(lambda *a, **k: run_cli_process(cluster, *a, **k), topic)
    consumed = consume_and_commit(cluster.kafka_bootstrap, group, topic, RECORDS // PARTITIONS // 2)
    assert consumed == RECORDS // 2
    return topic, group


def wait_for_inactive(brook, group: str, timeout_s: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        r = brook("groups", "describe", group, "-o", "json")
        assert r.returncode == 0, r.stderr
        view = json.loads(r.stdout)
        if view["state"] in ("Empty", "Dead") or time.monotonic() > deadline:
            return view
        time.sleep(0.5)


def test_groups_list_shows_the_group(brook, halfway):
    _, group = halfway
    r = brook("groups", "list")
    assert r.returncode == 0, r.stderr
    assert r.lines[0].split() == ["GROUP", "STATE", "TYPE"]
    assert any(line.split()[0] == group for line in r.lines[1:])
    listed = json.loads(brook("groups", "list", "-o", "json").stdout)
    assert group in [g["group"] for g in listed["groups"]]


def test_describe_shows_lag_of_a_group_consumed_halfway(brook, halfway):
    topic, group = halfway
    view = wait_for_inactive(brook, group)
    rows = [row for row in view["partitions"] if row["topic"] == topic]
    assert sum(row["log_end_offset"] for row in rows) == RECORDS
    assert sum(row["current_offset"] or 0 for row in rows) == RECORDS // 2
    assert len(rows) == PARTITIONS
    assert sum(row["lag"] for row in rows) == RECORDS - RECORDS // 2
    for row in rows:
        assert row["lag"] == row["log_end_offset"] - row["current_offset"]
    assert view["total_lag"] == sum(row["lag"] for row in rows if row["lag"] is not None)
    text = brook("groups", "describe", group)
    assert text.returncode == 0, text.stderr
    assert "CURRENT-OFFSET  LOG-END-OFFSET  LAG" in text.stdout and f"State:        {view['state']}" in text.stdout


def test_describe_unknown_group_is_one_line_exit_1(brook):
    r = brook("groups", "describe", "no-such-group")
    assert r.returncode == 1 and r.stderr.strip() == "brook: error: consumer group 'no-such-group' does not exist"


def test_reset_offsets_to_earliest_on_an_inactive_group(brook, halfway):
    topic, group = halfway
    wait_for_inactive(brook, group)
    dry = brook("groups", "reset-offsets", group, "--topic", topic, "--to-earliest")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout
    before = json.loads(brook("groups", "describe", group, "-o", "json").stdout)
    assert sum(row["current_offset"] or 0 for row in before["partitions"]) == RECORDS // 2  # unchanged
    r = brook("groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute", "-o", "json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["executed"] and [row["new_offset"] for row in result["partitions"]] == [0] * PARTITIONS
    after = json.loads(brook("groups", "describe", group, "-o", "json").stdout)
    rows = [row for row in after["partitions"] if row["topic"] == topic]
    assert [row["current_offset"] for row in rows] == [0] * PARTITIONS
    assert sum(row["lag"] for row in rows) == RECORDS


def test_reset_offsets_refuses_an_active_group(brook, cluster, halfway):
    from confluent_kafka import Consumer

    topic, _ = halfway
    group = f"active-{uuid.uuid4().hex[:6]}"
    c = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": group, "auto.offset.reset": "earliest"})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 30
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.2)
        r = brook("groups", "reset-offsets", group, "--topic", topic, "--to-latest", "--execute")
        assert r.returncode == 1 and "is inactive, but the current state is" in r.stderr
        view = json.loads(brook("groups", "describe", group, "-o", "json").stdout)
        assert len(view["members"]) == 1
        assert sorted(a["partition"] for a in view["members"][0]["assignment"]) == list(range(PARTITIONS))
    finally:
        c.close()


def test_delete_group(brook, halfway):
    _, group = halfway
    wait_for_inactive(brook, group)
    r = brook("groups", "delete", group)
    assert r.returncode == 0 and f"Deleted consumer group '{group}'." in r.stdout, r.stderr
    again = brook("groups", "delete", group)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "GROUP_ID_NOT_FOUND" in again.stderr


def test_perf_produce_prints_the_summary_and_consume_reads_it_back(brook, cluster):
    topic = f"perf-{uuid.uuid4().hex[:6]}"
    create_known_topic(cluster, topic)
    r = brook("perf", "produce", "--topic", topic, "--num-records", "5000", "--record-size", "100",
              "--acks", "all", "--batch-records", "100", "--reporting-interval", "1", timeout_s=120)
    assert r.returncode == 0, r.stderr
    last = r.lines[-1]
    assert last.startswith("5000 records sent, ") and "records/sec" in last and "MB/sec" in last
    for field in ("ms avg latency", "ms max latency", "ms 50th", "ms 95th", "ms 99th", "ms 99.9th"):
        assert field in last
    j = brook("perf", "produce", "--topic", topic, "--num-records", "1000", "--record-size", "1024",
              "--acks", "1", "--throughput", "2000", "--batch-records", "100", "-o", "json", timeout_s=120)
    assert j.returncode == 0, j.stderr
    summary = json.loads(j.stdout)
    # throttled: the last of 10 batches of 100 leaves at 900 / 2000 records/s = 0.45 s
    assert summary["records"] == 1000 and summary["failed"] == 0 and summary["elapsed_s"] >= 0.4
    c = brook("perf", "consume", "--topic", topic, "--messages", "6000", "-o", "json", timeout_s=120)
    assert c.returncode == 0, c.stderr
    assert json.loads(c.stdout)["records"] == 6000


def test_perf_produce_to_a_missing_topic_is_one_line_exit_1(brook):
    r = brook("perf", "produce", "--topic", "no-such-topic", "--num-records", "10", "--record-size", "10")
    assert r.returncode == 1 and r.stderr.strip() == "brook: error: topic 'no-such-topic' does not exist"
