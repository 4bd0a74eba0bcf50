"""Issue 13 items 6-7: `brook groups reset-offsets --to-datetime / --shift-by / --all-topics` and
`brook consume --group`, given only `--bootstrap-server` (the Kafka protocol, no controller address),
and one-line errors for the user's mistakes (bad datetime, unknown topic, unreachable server).

Method: records produced in two rounds a second apart (their CreateTime timestamps tell the rounds
apart), a group that committed through `consume --group`, then the CLI as a subprocess without
BROOK_BOOTSTRAP_CONTROLLER, so any fall-back to gRPC fails the test.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid

import pytest

from tests.integration.conftest import run_cli_process
from tests.support import create_topic

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """This module's cluster: the shared one's shape, groups formed without the initial rebalance delay
    (every `consume --group` joins a group)."""
    from cluster.cli.launcher import LocalCluster
    from tests.integration.conftest import CLUSTER_START_TIMEOUT_S

    local = LocalCluster(tmp_path_factory.mktemp("cluster"), controllers=3, brokers=3,
                         overrides={"group.initial.rebalance.delay.ms": "0"})
    try:
        local.start(wait=True, timeout_s=CLUSTER_START_TIMEOUT_S)
        yield local
    finally:
        local.stop()
        assert not local.pids, f"processes still running after stop(): {local.pids}"

PARTITIONS = 2
FIRST, SECOND = 5, 3  # records per partition in each round


def kafka_only(cluster, *argv: str, stdin: str = ""):
    """`brook ARGV --bootstrap-server <kafka>` with no controller address in the environment."""
    return run_cli_process(None, *argv, "--bootstrap-server", cluster.kafka_bootstrap, stdin=stdin)


def produce(cluster, topic: str, tag: str, count: int) -> None:
    for p in range(PARTITIONS):
        r = run_cli_process(cluster, "produce", topic, "--partition", str(p), "-q",
                            stdin="".join(f"{tag}{p}-{i}\n" for i in range(count)))
        assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def rounds(cluster):
    """A topic with FIRST then (a second later) SECOND records per partition; the time between them."""
    topic = f"rounds-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, topic, partitions=PARTITIONS, rf=3)
    produce(cluster, topic, "a", FIRST)
    time.sleep(1.2)
    between = datetime.datetime.now(datetime.UTC)
    time.sleep(1.2)
    produce(cluster, topic, "b", SECOND)
    return topic, between


def consume_group(cluster, topic: str, group: str, *extra: str):
    r = kafka_only(cluster, "consume", topic, "--group", group, *extra)
    assert r.returncode == 0, r.stderr
    return sorted(r.stdout.split())


def offsets(cluster, group: str) -> dict[tuple[str, int], int]:
    r = kafka_only(cluster, "groups", "describe", group, "-o", "json")
    assert r.returncode == 0, r.stderr
    return {(row["topic"], row["partition"]): row["current_offset"] for row in json.loads(r.stdout)["partitions"]}


def test_consume_group_reads_once_and_commits(cluster, rounds):
    topic, _ = rounds
    group = f"cg-{uuid.uuid4().hex[:6]}"
    everything = sorted([f"a{p}-{i}" for p in range(PARTITIONS) for i in range(FIRST)]
                        + [f"b{p}-{i}" for p in range(PARTITIONS) for i in range(SECOND)])
    assert consume_group(cluster, topic, group, "--from-beginning") == everything
    assert offsets(cluster, group) == {(topic, p): FIRST + SECOND for p in range(PARTITIONS)}
    assert consume_group(cluster, topic, group, "--from-beginning") == []  # committed: nothing again
    limited = kafka_only(cluster, "consume", topic, "--group", f"{group}-max", "--from-beginning",
                         "--max-messages", "3")
    assert limited.returncode == 0 and len(limited.stdout.split()) == 3, limited.stderr


def test_reset_offsets_to_datetime_shift_by_and_all_topics(cluster, rounds):
    topic, between = rounds
    other = f"other-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, other, partitions=1, rf=3)
    r = run_cli_process(cluster, "produce", other, "-q", stdin="x\ny\n")
    assert r.returncode == 0, r.stderr
    group = f"rg-{uuid.uuid4().hex[:6]}"
    consume_group(cluster, topic, group, "--from-beginning")
    consume_group(cluster, other, group, "--from-beginning")

    stamp = between.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    dry = kafka_only(cluster, "groups", "reset-offsets", group, "--topic", topic, "--to-datetime", stamp)
    assert dry.returncode == 0 and "dry run" in dry.stdout, dry.stderr
    assert offsets(cluster, group)[(topic, 0)] == FIRST + SECOND  # unchanged
    r = kafka_only(cluster, "groups", "reset-offsets", group, "--topic", topic, "--to-datetime", stamp, "--execute")
    assert r.returncode == 0, r.stderr
    assert offsets(cluster, group) == {**{(topic, p): FIRST for p in range(PARTITIONS)}, (other, 0): 2}
    # The same instant in another zone names the same offsets.
    local = between.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    same = kafka_only(cluster, "groups", "reset-offsets", group, "--topic", topic, "--to-datetime",
                      local.isoformat(timespec="milliseconds"), "-o", "json")
    assert [row["new_offset"] for row in json.loads(same.stdout)["partitions"]] == [FIRST] * PARTITIONS

    r = kafka_only(cluster, "groups", "reset-offsets", group, "--topic", f"{topic}:1", "--shift-by", "-2", "--execute")
    assert r.returncode == 0, r.stderr
    assert offsets(cluster, group)[(topic, 1)] == FIRST - 2 and offsets(cluster, group)[(topic, 0)] == FIRST
    r = kafka_only(cluster, "groups", "reset-offsets", group, "--topic", topic, "--shift-by", "1000", "--execute")
    assert r.returncode == 0, r.stderr
    assert offsets(cluster, group)[(topic, 0)] == FIRST + SECOND  # clamped to the log end

    r = kafka_only(cluster, "groups", "reset-offsets", group, "--all-topics", "--to-earliest", "--execute",
                   "-o", "json")
    assert r.returncode == 0, r.stderr
    reset = {(row["topic"], row["partition"]) for row in json.loads(r.stdout)["partitions"]}
    assert reset == {(topic, 0), (topic, 1), (other, 0)}
    assert set(offsets(cluster, group).values()) == {0}


@pytest.mark.parametrize("argv, fragment, code", [
    (["groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"], "cannot read 'yesterday'", 2),
    (["groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "2024-13-01T00:00:00"], "cannot read", 2),
    (["groups", "reset-offsets", "g", "--topic", "t", "--shift-by", "x"], "invalid int value", 2),
    (["groups", "reset-offsets", "g", "--topic", "t", "--all-topics", "--to-earliest"], "not allowed with", 2),
])
def test_usage_mistakes_are_one_line(argv, fragment, code):
    r = run_cli_process(None, *argv)
    assert r.returncode == code and r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_user_mistakes_against_the_cluster_are_one_line(cluster, rounds):
    topic, _ = rounds
    cases = [
        (kafka_only(cluster, "consume", "no-such-topic", "--group", "g"), "topic 'no-such-topic' does not exist"),
        (kafka_only(cluster, "groups", "describe", "no-such-group"), "consumer group 'no-such-group' does not exist"),
        (kafka_only(cluster, "groups", "reset-offsets", "fresh-group", "--topic", topic, "--shift-by", "1"),
         "has no committed offset"),
        (kafka_only(cluster, "groups", "reset-offsets", "fresh-group", "--all-topics", "--to-earliest"),
         "has no committed offsets"),
        (run_cli_process(None, "groups", "list", "--bootstrap-server", "127.0.0.1:1", "--timeout", "2"), "127.0.0.1:1"),
        (run_cli_process(None, "consume", topic, "--group", "g", "--bootstrap-server", "127.0.0.1:1",
                         "--timeout", "2"), "127.0.0.1:1"),
    ]
    for r, fragment in cases:
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert r.stderr.startswith("brook: error:") and r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr


def test_topic_verbs_over_the_kafka_protocol(cluster):
    """`brook topics create/list/describe/delete --bootstrap-server`: no controller address at all."""
    name = f"kp-{uuid.uuid4().hex[:6]}"
    r = kafka_only(cluster, "topics", "create", name, "--partitions", "2", "--replication-factor", "3",
                   "--config", "retention.ms=3600000")
    assert r.returncode == 0 and f"Created topic {name}." in r.stdout, r.stdout + r.stderr
    again = kafka_only(cluster, "topics", "create", name)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already exists" in again.stderr, again.stderr
    listed = kafka_only(cluster, "topics", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert {"name": name, "topic_id": None, "partition_count": 2, "replication_factor": 3} in json.loads(listed.stdout)
    described = kafka_only(cluster, "topics", "describe", name, "-o", "json")
    assert described.returncode == 0, described.stderr
    (topic,) = json.loads(described.stdout)
    assert topic["configs"] == {"retention.ms": "3600000"} and topic["min_insync_replicas"] >= 1
    assert [len(p["isr"]) for p in topic["partitions"]] == [3, 3]
    assert all(p["leader"] in p["replicas"] for p in topic["partitions"])
    missing = kafka_only(cluster, "topics", "describe", "no-such-topic")
    assert missing.returncode == 1 and "topic 'no-such-topic' does not exist" in missing.stderr, missing.stderr
    deleted = kafka_only(cluster, "topics", "delete", name)
    assert deleted.returncode == 0 and f"Deleted topic {name}." in deleted.stdout, deleted.stdout + deleted.stderr
    unreachable = run_cli_process(None, "topics", "list", "--bootstrap-server", "127.0.0.1:1", "--timeout", "2")
    assert unreachable.returncode == 1 and unreachable.stderr.count("\n") == 1 and "127.0.0.1:1" in unreachable.stderr


def test_log_dirs_over_the_kafka_protocol(cluster):
    """`brook log-dirs`: every replica of the topic on every broker, sizes that follow the data."""
    name = f"ld-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, name, partitions=2, rf=3)
    r = run_cli_process(cluster, "produce", name, "--partition", "0", "-q", stdin="".join(f"v{i}\n" for i in range(20)))
    assert r.returncode == 0, r.stderr
    listed = kafka_only(cluster, "log-dirs", "--topics", name, "-o", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["log_dirs"]
    brokers = sorted({row["broker"] for row in rows})
    assert len(brokers) == 3 and {row["topic"] for row in rows} == {name}
    assert sorted((row["broker"], row["partition"]) for row in rows) == [(b, p) for b in brokers for p in (0, 1)]
    assert all(row["size_bytes"] > 0 for row in rows if row["partition"] == 0)  # acks=all: on every replica
    assert all(row["size_bytes"] == 0 for row in rows if row["partition"] == 1)
    assert all(row["log_dir"] and row["offset_lag"] == 0 for row in rows)
    one = kafka_only(cluster, "log-dirs", "--topics", name, "--brokers", str(brokers[0]))
    assert one.returncode == 0 and one.stdout.startswith("BROKER"), one.stderr
    assert len(one.stdout.splitlines()) == 3 and all(line.split()[0] == str(brokers[0])
                                                      for line in one.stdout.splitlines()[1:]), one.stdout


def test_records_delete_over_the_kafka_protocol(cluster, tmp_path):
    """`brook records delete`: the low watermark moves, the records below it are gone for consumers."""
    name = f"dr-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, name, partitions=2, rf=3)
    for p in range(2):
        r = run_cli_process(cluster, "produce", name, "--partition", str(p), "-q",
                            stdin="".join(f"p{p}-{i}\n" for i in range(5)))
        assert r.returncode == 0, r.stderr
    r = kafka_only(cluster, "records", "delete", "--topic", name, "--partition", "0", "--before-offset", "3",
                   "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["partitions"] == [{"topic": name, "partition": 0, "low_watermark": 3}]
    rest = run_cli_process(cluster, "consume", name, "--partition", "0", "--from-beginning", "--max-messages", "2")
    assert rest.returncode == 0 and rest.stdout.split() == ["p0-3", "p0-4"], rest.stdout + rest.stderr
    plan = tmp_path / "offsets.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": name, "partition": 1, "offset": -1}]}))
    r = kafka_only(cluster, "records", "delete", "--offsets-json", str(plan))
    assert r.returncode == 0 and r.stdout.split()[-3:] == [name, "1", "5"], r.stdout + r.stderr

    cases = [
        (kafka_only(cluster, "records", "delete", "--topic", "no-such-topic", "--before-offset", "1"),
         "topic 'no-such-topic' does not exist"),
        (kafka_only(cluster, "records", "delete", "--topic", name, "--partition", "7", "--before-offset", "1"),
         "has no partition 7"),
        (kafka_only(cluster, "records", "delete", "--topic", name, "--partition", "0", "--before-offset", "99"),
         f"cannot delete records of {name}-0"),
        (kafka_only(cluster, "records", "delete", "--topic", name, "--before-offset", "-2"), "--before-offset"),
        (kafka_only(cluster, "log-dirs", "--topics", "no-such-topic"), "topic 'no-such-topic' does not exist"),
        (kafka_only(cluster, "log-dirs", "--brokers", "99"), "no live broker with id 99"),
        (run_cli_process(None, "log-dirs", "--bootstrap-server", "127.0.0.1:1", "--timeout", "2"), "127.0.0.1:1"),
        (run_cli_process(None, "records", "delete", "--topic", name, "--before-offset", "1", "--bootstrap-server",
                         "127.0.0.1:1", "--timeout", "2"), "127.0.0.1:1"),
    ]
    for r, fragment in cases:
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert r.stderr.startswith("brook: error:") and r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr


def test_topics_alter_and_configs_over_the_kafka_protocol(cluster):
    """`brook topics alter` / `configs describe|alter` with --bootstrap-server: CreatePartitions,
    DescribeConfigs and IncrementalAlterConfigs, checked back over gRPC (the controllers' view)."""
    name = f"ka-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, name, partitions=1, rf=3)
    r = kafka_only(cluster, "topics", "alter", name, "--partitions", "3", "--config", "retention.ms=7200000")
    assert r.returncode == 0 and f"Topic {name} now has 3 partitions." in r.stdout, r.stdout + r.stderr
    (topic,) = json.loads(run_cli_process(cluster, "topics", "describe", name, "-o", "json").stdout)
    assert len(topic["partitions"]) == 3 and topic["configs"] == {"retention.ms": "7200000"}

    r = kafka_only(cluster, "configs", "alter", "--topic", name, "--set", "cleanup.policy=compact",
                   "--delete", "retention.ms")
    assert r.returncode == 0, r.stderr
    described = kafka_only(cluster, "configs", "describe", "--topic", name, "-o", "json")
    assert described.returncode == 0, described.stderr
    entries = {e["name"]: e for e in json.loads(described.stdout)["entries"]}
    assert entries["cleanup.policy"]["value"] == "compact" and entries["cleanup.policy"]["source"] == "topic"
    assert entries["retention.ms"]["is_default"] and entries["retention.ms"]["value"] != "7200000"
    (grpc_view,) = json.loads(run_cli_process(cluster, "topics", "describe", name, "-o", "json").stdout)
    assert grpc_view["configs"] == {"cleanup.policy": "compact"}
    broker_id = str(topic["partitions"][0]["leader"])
    broker = kafka_only(cluster, "configs", "describe", "--broker", broker_id, "-o", "json")
    assert broker.returncode == 0 and any(e["name"] == "min.insync.replicas"
                                          for e in json.loads(broker.stdout)["entries"]), broker.stderr

    cases = [
        (kafka_only(cluster, "topics", "alter", name, "--partitions", "2"), f"cannot add partitions to topic {name!r}"),
        (kafka_only(cluster, "topics", "alter", "no-such-topic", "--partitions", "4"), "no-such-topic"),
        (kafka_only(cluster, "configs", "describe", "--topic", "no-such-topic"), "topic 'no-such-topic' does not exist"),
        (kafka_only(cluster, "configs", "alter", "--topic", name, "--set", "no.such.key=1"), f"cannot alter topic {name!r}"),
        (kafka_only(cluster, "configs", "describe", "--broker", "99"), "no live broker with id 99"),
        (run_cli_process(None, "configs", "describe", "--topic", name, "--bootstrap-server", "127.0.0.1:1",
                         "--timeout", "2"), "127.0.0.1:1"),
    ]
    for r, fragment in cases:
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert r.stderr.startswith("brook: error:") and r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr


def test_produce_and_plain_consume_over_the_kafka_protocol(cluster):
    """`produce` / `consume` (no group) with --bootstrap-server: offsets printed, keys placed where the
    gRPC path (murmur2, as Java's clients) places them, and nothing committed."""
    name = f"pc-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, name, partitions=3, rf=3)
    keys = [f"key{i}" for i in range(12)]
    r = kafka_only(cluster, "produce", name, "--key-separator", ":", "-o", "json",
                   stdin="".join(f"{k}:kafka-{k}\n" for k in keys))
    assert r.returncode == 0, r.stderr
    via_kafka = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(via_kafka) == len(keys) and all(row["offset"] >= 0 for row in via_kafka)
    r = run_cli_process(cluster, "produce", name, "--key-separator", ":", "-o", "json",
                        stdin="".join(f"{k}:grpc-{k}\n" for k in keys))
    assert r.returncode == 0, r.stderr
    via_grpc = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(row["partition"] for row in via_kafka) == sorted(row["partition"] for row in via_grpc)

    r = kafka_only(cluster, "consume", name, "--print-key", "--print-partition", "--separator", " ")
    assert r.returncode == 0, r.stderr
    got = [line.split() for line in r.stdout.splitlines()]
    assert len(got) == 2 * len(keys)
    partition_of = {}
    for part, key, value in got:
        assert value.endswith(key)
        assert partition_of.setdefault(key, part) == part  # both copies of a key in one partition
    grpc_read = run_cli_process(cluster, "consume", name)
    assert sorted(grpc_read.stdout.split()) == sorted(line[2] for line in got)
    r = kafka_only(cluster, "consume", name, "--partition", "0", "--offset", "1", "--max-messages", "1", "-o", "json")
    assert r.returncode == 0, r.stderr
    (one,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert (one["partition"], one["offset"]) == (0, 1)
    assert "brook-cli-console" not in kafka_only(cluster, "groups", "list").stdout  # nothing committed

    cases = [
        (kafka_only(cluster, "produce", "no-such-topic", stdin="x\n"), "topic 'no-such-topic' does not exist"),
        (kafka_only(cluster, "produce", name, "--partition", "9", stdin="x\n"), "has no partition 9"),
        (kafka_only(cluster, "consume", "no-such-topic"), "topic 'no-such-topic' does not exist"),
        (kafka_only(cluster, "consume", name, "--partition", "9"), "has no partition 9"),
        (kafka_only(cluster, "consume", name, "--offset", "3"), "--offset needs --partition"),
        (run_cli_process(None, "produce", name, "--bootstrap-server", "127.0.0.1:1", "--timeout", "2", stdin="x\n"),
         "127.0.0.1:1"),
        (run_cli_process(None, "consume", name, "--bootstrap-server", "127.0.0.1:1", "--timeout", "2"), "127.0.0.1:1"),
    ]
    for r, fragment in cases:
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert r.stderr.startswith("brook: error:") and r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr
