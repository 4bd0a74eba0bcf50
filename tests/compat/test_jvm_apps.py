"""Issue 14: Kafka Streams, Kafka Connect and MirrorMaker 2 — the real Apache Kafka applications —
against real Brook clusters (`make compat-jvm`; `make test`, hence CI, runs them too).

- Streams 4.4.0: a word count (repartition topic, persistent state store and its changelog) with
  `processing.guarantee=exactly_once_v2`; its instance is SIGKILLed mid-run and a new one (empty
  state directory: it restores from the changelog) takes over, and a broker is SIGKILLed and
  restarted under it. With the record cache off, each input word gives one output record, so the
  read_committed output per word must be exactly 1, 2, ..., n: a duplicate, a lost word or a
  count carried past a crash breaks that sequence.
- Connect (4.3.1, see jvm_apps/connect/pom.xml) in distributed mode (group membership, config/offset/status topics on Brook) runs
  the FileStream source and sink connectors; every line written to the source file arrives, in
  order, in the sink file, across a broker restart.
- MirrorMaker 2 (4.3.1 likewise) mirrors a topic, a consumer group's committed
  offsets and a topic config from the module's cluster ("src") to a second Brook cluster.

The JVMs run under `nice -n 5` with small heaps; every process is stopped by PID. A missing Java or
Maven skips with the reason (tests/compat/toolchains.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from cluster.cli.launcher import LocalCluster, free_ports
from tests.compat import toolchains
from tests.compat.conftest import OVERRIDES
from tests.support import create_topic

JAVA_OPTS = ["-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
             "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-Dorg.slf4j.simpleLogger.showDateTime=true"]


def _toolchain(build):
    try:
        return build()
    except toolchains.Missing as e:
        pytest.skip(str(e))


class Jvm:
    """One JVM process: nice'd, output to a log file, stopped by PID."""

    def __init__(self, jvm: toolchains.Jvm, main: str, args: list[str], log: Path, extra_opts=()) -> None:
        self.log = log
        self._out = open(log, "ab")
        debug = os.environ.get("BROOK_JVM_OPTS", "").split()  # e.g. -Dorg.slf4j.simpleLogger.defaultLogLevel=info
        argv = ["nice", "-n", "5", "java", *JAVA_OPTS, *extra_opts, *debug, "-cp", jvm.classpath, main, *args]
        self.proc = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return self.output()[-4000:]

    def stop(self, sig: int = signal.SIGTERM, wait_s: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


def _wait(predicate, timeout_s: float, what: str, proc: Jvm | None = None, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        if proc is not None and not proc.alive():
            raise AssertionError(f"{what}: the JVM exited {proc.proc.returncode}:\n{proc.tail()}")
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}" + (f":\n{proc.tail()}" if proc else ""))


def _produce(bootstrap: str, topic: str, values: list[str], keys: list[str] | None = None) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    for i, v in enumerate(values):
        p.produce(topic, value=v.encode(), key=keys[i].encode() if keys else None)
    assert p.flush(60) == 0


def _consume(bootstrap: str, topic: str, partitions: int, until, timeout_s: float, isolation="read_committed"):
    """Every record of `topic` from the start, [(partition, offset, key, value)], polled until
    `until(records)` holds and a further second brings nothing (or the timeout)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "isolation.level": isolation, "auto.offset.reset": "earliest"})
    records: list[tuple[int, int, bytes | None, bytes | None]] = []
    try:
        c.assign([TopicPartition(topic, i, 0) for i in range(partitions)])
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                if until(records) and time.monotonic() - quiet_since > 1.0:
                    break
                continue
            records.append((m.partition(), m.offset(), m.key(), m.value()))
            quiet_since = time.monotonic()
        return records
    finally:
        c.close()


# --------------------------------------------------------------------------------------------------
# Kafka Streams

WORDS = [f"w{i:02d}" for i in range(24)]


def _lines(start: int, count: int) -> list[str]:
    """Deterministic lines of 1..4 words from WORDS."""
    return [" ".join(WORDS[(i * 7 + j * 5) % len(WORDS)] for j in range(1 + i % 4)) for i in range(start, start + count)]


def check_word_counts(records, lines: list[str]) -> None:
    """Per word, the output values in offset order are exactly 1..n (n: the word's input count)."""
    expected: dict[str, int] = defaultdict(int)
    for line in lines:
        for w in line.split():
            expected[w] += 1
    seen: dict[str, list[int]] = defaultdict(list)
    for _p, _o, key, value in sorted(records):
        seen[key.decode()].append(int.from_bytes(value, "big", signed=True))
    bad = {w: (seen[w][:5], "...", seen[w][-5:], len(seen[w]), expected[w]) for w in expected | seen
           if seen[w] != list(range(1, expected[w] + 1))}
    assert not bad, f"words whose counts are not exactly 1..n (first, last, how many, expected n): {bad}"


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_streams_word_count_exactly_once_through_instance_and_broker_kills(cluster, tmp_path):
    apps = _toolchain(toolchains.jvm_streams)
    app_id, src, out = "wc-app", "wc-lines", "wc-counts"
    create_topic(cluster, src, partitions=3)
    create_topic(cluster, out, partitions=3)
    lines = _lines(0, 1200)
    batches = [lines[i:i + 200] for i in range(0, len(lines), 200)]

    def start(n: int) -> Jvm:
        return Jvm(apps, "WordCount", [cluster.kafka_bootstrap, app_id, src, out, str(tmp_path / f"state-{n}")],
                   tmp_path / f"streams-{n}.log")

    def words_out() -> int:
        recs = _consume(cluster.kafka_bootstrap, out, 3, lambda r: True, 10, isolation="read_uncommitted")
        return len(recs)

    instances = []
    try:
        first = start(1)
        instances.append(first)
        _wait(lambda: "STATE RUNNING" in first.output(), 120, "the first Streams instance RUNNING", first)
        _produce(cluster.kafka_bootstrap, src, batches[0])
        _wait(lambda: words_out() > 0, 90, "the first counts", first)
        for batch in batches[1:3]:
            _produce(cluster.kafka_bootstrap, src, batch)
        # Mid-run: SIGKILL, so the open transaction is left for the successor to fence and abort.
        first.stop(signal.SIGKILL)
        second = start(2)  # a fresh state directory: the store is restored from the changelog
        instances.append(second)
        _produce(cluster.kafka_bootstrap, src, batches[3])
        _wait(lambda: "STATE RUNNING" in second.output(), 120, "the second Streams instance RUNNING", second)
        # A broker SIGKILLed (and restarted) under the running application.
        victim = cluster.broker_ids[0]
        cluster.kill(victim, signal.SIGKILL)
        _produce(cluster.kafka_bootstrap, src, batches[4])
        cluster.start_node(victim)
        _produce(cluster.kafka_bootstrap, src, batches[5])
        cluster.wait_healthy(120)  # the restarted broker back before the next test
        total = sum(len(line.split()) for line in lines)
        records = _consume(cluster.kafka_bootstrap, out, 3, lambda r: len(r) >= total, 240)
        assert second.alive(), second.tail()
        check_word_counts(records, lines)
        raw = _consume(cluster.kafka_bootstrap, out, 3, lambda r: len(r) >= total, 30, isolation="read_uncommitted")
        print(f"streams: {total} words, {len(records)} committed output records, {len(raw) - len(records)} "
              f"more records in aborted transactions (visible read_uncommitted)")
    finally:
        for jvm in instances:
            jvm.stop()


# --------------------------------------------------------------------------------------------------
# Kafka Connect


def _rest(url: str, method: str = "GET", body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def _rest_ok(url: str):
    try:
        return _rest(url)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _properties(path: Path, props: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def _file_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _connector_running(rest: str, name: str) -> bool:
    status = _rest_ok(f"{rest}/connectors/{name}/status")
    return bool(status) and status["connector"]["state"] == "RUNNING" and \
        len(status["tasks"]) == 1 and status["tasks"][0]["state"] == "RUNNING"


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_connect_distributed_file_source_to_sink_through_a_broker_restart(cluster, tmp_path):
    apps = _toolchain(toolchains.jvm_connect)
    topic = "connect-lines"
    create_topic(cluster, topic, partitions=1)
    port = free_ports(1)[0]
    rest = f"http://127.0.0.1:{port}"
    worker = _properties(tmp_path / "worker.properties", {
        "bootstrap.servers": cluster.kafka_bootstrap,
        "group.id": "connect-brook",
        "listeners": f"http://127.0.0.1:{port}",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        # The worker creates its three internal topics (compacted) on Brook.
        "config.storage.topic": "connect-configs", "config.storage.replication.factor": "3",
        "offset.storage.topic": "connect-offsets", "offset.storage.replication.factor": "3",
        "offset.storage.partitions": "5",
        "status.storage.topic": "connect-status", "status.storage.replication.factor": "3",
        "status.storage.partitions": "2",
        "offset.flush.interval.ms": "1000",
        "scheduled.rebalance.max.delay.ms": "1000",
        "session.timeout.ms": "6000", "heartbeat.interval.ms": "1000",
        "plugin.discovery": "service_load",
    })
    source, sink = tmp_path / "source.txt", tmp_path / "sink.txt"
    lines = [f"line-{i:05d} {uuid.uuid4().hex}" for i in range(1000)]
    source.write_text("".join(f"{line}\n" for line in lines[:500]))
    proc = Jvm(apps, "org.apache.kafka.connect.cli.ConnectDistributed", [str(worker)], tmp_path / "connect.log")
    try:
        _wait(lambda: _rest_ok(f"{rest}/connectors") == [], 150, "the Connect worker's REST API", proc)
        _rest(f"{rest}/connectors", "POST", {"name": "file-source", "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1", "file": str(source), "topic": topic}})
        _rest(f"{rest}/connectors", "POST", {"name": "file-sink", "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1", "file": str(sink), "topics": topic}})
        _wait(lambda: _connector_running(rest, "file-source") and _connector_running(rest, "file-sink"), 120,
              "both connectors and their tasks RUNNING", proc)
        _wait(lambda: len(_file_lines(sink)) >= 500, 120, "the first 500 lines in the sink file", proc)
        # A broker restart under the running worker, then more lines appended to the source file.
        victim = cluster.broker_ids[1]
        cluster.stop_node(victim)
        with source.open("a") as f:
            f.write("".join(f"{line}\n" for line in lines[500:750]))
        cluster.start_node(victim)
        with source.open("a") as f:
            f.write("".join(f"{line}\n" for line in lines[750:]))
        _wait(lambda: len(_file_lines(sink)) >= len(lines), 180, "every line in the sink file", proc)
        cluster.wait_healthy(120)
        time.sleep(2)  # let a duplicate, if any, land before the check
        assert _file_lines(sink) == lines
        # The worker's own topics are on Brook, compacted as Connect requires.
        from confluent_kafka.admin import AdminClient, ConfigResource

        ac = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
        for t in ("connect-configs", "connect-offsets", "connect-status"):
            res = ConfigResource(ConfigResource.Type.TOPIC, t)
            configs = ac.describe_configs([res])[res].result(30)
            assert configs["cleanup.policy"].value == "compact", (t, configs["cleanup.policy"].value)
    finally:
        proc.stop()


# --------------------------------------------------------------------------------------------------
# MirrorMaker 2

SINGLE_NODE = {**OVERRIDES, "default.replication.factor": "1", "min.insync.replicas": "1",
               "offsets.topic.replication.factor": "1", "transaction.state.log.replication.factor": "1",
               "transaction.state.log.min.isr": "1"}


@pytest.fixture
def target_cluster(tmp_path_factory):
    """A second Brook cluster (one controller, one broker) for MirrorMaker 2 to mirror into."""
    c = LocalCluster(tmp_path_factory.mktemp("mm2-target"), 1, 1, overrides=SINGLE_NODE)
    try:
        c.start(timeout_s=90)
        yield c
    finally:
        c.stop()


def _committed(bootstrap: str, group: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        c.close()


def _topic_config(bootstrap: str, topic: str, key: str) -> str | None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    client = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the answer is in
    try:
        return client.describe_configs([res])[res].result(10)[key].value
    except KafkaException:  # not mirrored yet (UNKNOWN_TOPIC_OR_PARTITION)
        return None


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_mirrormaker2_mirrors_records_group_offsets_and_configs(cluster, target_cluster, tmp_path):
    mm2 = _toolchain(toolchains.jvm_connect)
    topic, group, retention = "mm2-orders", "mm2-readers", "987654321"
    create_topic(cluster, topic, partitions=1, configs={"retention.ms": retention})
    values = [f"order-{i:04d}" for i in range(400)]
    _produce(cluster.kafka_bootstrap, topic, values[:300])
    # A consumer group on the source reads 250 records, commits and leaves (an inactive group is synced).
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition(topic, 0, 250)], asynchronous=False)
    c.close()
    props = {
        "clusters": "src, dst",
        "src.bootstrap.servers": cluster.kafka_bootstrap,
        "dst.bootstrap.servers": target_cluster.kafka_bootstrap,
        "src->dst.enabled": "true", "dst->src.enabled": "false",
        "src->dst.topics": "mm2-.*", "src->dst.groups": "mm2-.*",
        "replication.factor": "1", "checkpoints.topic.replication.factor": "1",
        "heartbeats.topic.replication.factor": "1",
        "offset-syncs.topic.replication.factor": "3",  # on the source cluster (min.insync.replicas 2)
        "offset.storage.replication.factor": "1", "status.storage.replication.factor": "1",
        "config.storage.replication.factor": "1", "offset.storage.partitions": "2",
        "status.storage.partitions": "1",
        "sync.group.offsets.enabled": "true", "sync.group.offsets.interval.seconds": "1",
        "emit.checkpoints.interval.seconds": "1", "emit.heartbeats.interval.seconds": "1",
        "refresh.topics.interval.seconds": "2", "refresh.groups.interval.seconds": "2",
        "sync.topic.configs.interval.seconds": "2", "offset.lag.max": "0",
        # A worker setting of the dedicated MirrorMaker's target herder: the source task's commit(),
        # which sends the offset syncs the group-offset translation waits for, runs on each flush.
        "dst.offset.flush.interval.ms": "1000",
        "plugin.discovery": "service_load",  # no classpath scan at start (seconds of CPU)
    }
    proc = Jvm(mm2, "org.apache.kafka.connect.mirror.MirrorMaker",
               [str(_properties(tmp_path / "mm2.properties", props)), "--clusters", "dst"], tmp_path / "mm2.log")
    mirrored = f"src.{topic}"
    try:
        def arrived(expect: int):
            recs = _consume(target_cluster.kafka_bootstrap, mirrored, 1, lambda r: len(r) >= expect, 10)
            return recs if len(recs) >= expect else None

        _wait(lambda: arrived(300), 180, f"300 records in {mirrored} on the target", proc, interval_s=2)
        _produce(cluster.kafka_bootstrap, topic, values[300:])  # while mirroring runs
        records = _wait(lambda: arrived(400), 120, f"400 records in {mirrored}", proc, interval_s=2)
        assert [v.decode() for _p, _o, _k, v in records] == values
        # The group's offset, translated through the offset syncs, committed on the target and never
        # past the source's (that would skip records). MirrorMaker's translation is conservative (an
        # offset at or before the newest offset sync below 250); docs/COMPATIBILITY.md says what it
        # was seen to give.
        dst_offset = _wait(lambda: (o := _committed(target_cluster.kafka_bootstrap, group, mirrored)) > 0 and o,
                           120, f"{group}'s offset for {mirrored} on the target", proc, interval_s=2)
        assert 0 < dst_offset <= 250, dst_offset
        print(f"mm2: {group} committed 250 on the source, {dst_offset} on the target")
        assert _wait(lambda: _topic_config(target_cluster.kafka_bootstrap, mirrored, "retention.ms") == retention,
                     60, f"retention.ms of {mirrored} on the target", proc, interval_s=2)
    finally:
        proc.stop()
