"""Issue 14: the compatibility matrix — Java, Go and JavaScript clients and Kafka's own tools against a
real 3-broker Brook cluster.

Each client is one program (tests/compat/{java,go,node}/) that runs every scenario in one process
and prints one JSON line per matrix cell; each cell is one test here that asserts the program's own
check passed, and the records each client produced are read back independently with librdkafka.
Kafka's command-line tools (kafka-tools 4.4.0) run in one JVM (java/ToolRunner.java) and each tool's
output is asserted here. What Brook does not support is `xfail(strict=True)` with the reason (and
listed in docs/COMPATIBILITY.md): the day it works, the test fails until the xfail is removed.
The programs are built once and cached by source hash (tests/compat/toolchains.py); a missing
toolchain skips with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid

import pytest

from tests.compat import toolchains
from tests.support import create_topic

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
N = 200
GROUP_CELLS = ["group.consume_commit", "group.resume", "group.rebalance"]
ADMIN_CELLS = ["admin.create_topic", "admin.describe_topic", "admin.describe_configs", "admin.describe_broker_configs",
               "admin.alter_config", "admin.list_groups", "admin.describe_groups", "admin.delete_topic"]

# Client -> the codecs it produces here. kafkajs has gzip built in and snappy from the pure-JS
# kafkajs-snappy; its lz4 and zstd codec packages (kafkajs-lz4, @kafkajs/zstd) are native addons, not installed.
CLIENT_CODECS = {"java": CODECS, "franz-go": CODECS, "sarama": CODECS, "kafkajs": ["none", "gzip", "snappy"]}
CLIENTS = list(CLIENT_CODECS)
# (client, cell) -> why Brook fails it today. Empty: every client cell passes.
KNOWN_GAPS: dict[tuple[str, str], str] = {}
EXTRA_CELLS = {"java": ["txn.init", "txn.read_committed"], "franz-go": ["txn.read_committed"],
               "sarama": ["txn.read_committed"], "kafkajs": ["txn.read_committed"]}
PROGRAM_TIMEOUT_S = 420
TOOL_TIMEOUT_S = 120

RESULTS: dict[str, dict[str, dict] | Exception] = {}
_lock = threading.Lock()


def _program(client: str) -> list[str]:
    if client == "java":
        return toolchains.jvm().argv("JavaClientMatrix")
    if client in ("franz-go", "sarama"):
        return [str(toolchains.go_binaries() / ("franz" if client == "franz-go" else "sarama"))]
    return ["node", str(toolchains.HERE / "node" / "kafkajs_matrix.js")]


def _run_client(cluster, client: str) -> dict[str, dict]:
    """Run the client's program once per module (topics prepared first); its cells by name."""
    with _lock:
        if client not in RESULTS:
            try:
                RESULTS[client] = _run_client_once(cluster, client)
            except (toolchains.Missing, toolchains.BuildFailed) as e:
                RESULTS[client] = e
    result = RESULTS[client]
    if isinstance(result, toolchains.Missing):
        pytest.skip(str(result))
    if isinstance(result, Exception):
        pytest.fail(f"{client}: {result}")
    return result


def _run_client_once(cluster, client: str) -> dict[str, dict]:
    argv = _program(client)
    prefix = client
    for codec in CLIENT_CODECS[client]:
        create_topic(cluster, f"{prefix}-{codec}")
    create_topic(cluster, f"{prefix}-group", partitions=4)
    if "txn.read_committed" in EXTRA_CELLS.get(client, []):
        create_topic(cluster, f"{prefix}-txn", partitions=2)
    env = dict(os.environ)
    if client == "kafkajs":
        env["NODE_PATH"] = str(toolchains.node_modules())
    start = time.monotonic()
    proc = subprocess.run([*argv, cluster.kafka_bootstrap, prefix], capture_output=True, text=True,
                          timeout=PROGRAM_TIMEOUT_S, env=env)
    cells = {}
    for line in proc.stdout.splitlines():
        try:
            cell = json.loads(line)
        except ValueError:
            continue
        if isinstance(cell, dict) and "cell" in cell:
            cells[cell["cell"]] = cell
    cells["_run"] = {"exit": proc.returncode, "stderr": proc.stderr[-2000:], "s": time.monotonic() - start}
    print(f"{client}: {len(cells) - 1} cells in {cells['_run']['s']:.1f}s")
    return cells


def _params():
    for client in CLIENTS:
        cells = [f"produce.{c}" for c in CLIENT_CODECS[client]] + GROUP_CELLS + ADMIN_CELLS + EXTRA_CELLS.get(client, [])
        for cell in cells:
            marks = []
            if (client, cell) in KNOWN_GAPS:
                marks.append(pytest.mark.xfail(reason=KNOWN_GAPS[client, cell], strict=True))
            yield pytest.param(client, cell, id=f"{client}-{cell}", marks=marks)


@pytest.fixture(scope="module", autouse=True)
def _record_matrix():
    """After the module: every client's cells with timings in .cache/compat/matrix-last.json (for the docs)."""
    yield
    rows = {client: cells if isinstance(cells, dict) else {"_error": str(cells)} for client, cells in RESULTS.items()}
    if rows:
        toolchains.CACHE.mkdir(parents=True, exist_ok=True)
        (toolchains.CACHE / "matrix-last.json").write_text(json.dumps(rows, indent=1))


@pytest.mark.timeout(PROGRAM_TIMEOUT_S + 600)  # the first cell of a client builds it and runs it
@pytest.mark.parametrize("client,cell", list(_params()))
def test_client_cell(cluster, client, cell):
    cells = _run_client(cluster, client)
    assert cell in cells, f"{client} reported no {cell!r} (exit {cells['_run']['exit']}): {cells['_run']['stderr']}"
    assert cells[cell]["ok"], f"{client} {cell}: {cells[cell]['detail']}"


def _read_partition(bootstrap: str, topic: str, count: int, timeout_s: float = 30) -> list[tuple]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append((m.offset(), m.key(), m.value(), m.headers()))
    c.close()
    return got


@pytest.mark.timeout(PROGRAM_TIMEOUT_S + 600)
@pytest.mark.parametrize("client", CLIENTS)
def test_client_records_read_back_by_librdkafka(cluster, client):
    """What each client produced with every codec is, byte for byte, what librdkafka reads back."""
    cells = _run_client(cluster, client)
    for codec in CLIENT_CODECS[client]:
        if not cells.get(f"produce.{codec}", {}).get("ok"):
            continue  # that cell fails on its own
        topic = f"{client}-{codec}"
        want = [(i, f"k{i}".encode(), f"{topic}-v{i}".encode(), [("h", str(i).encode())]) for i in range(N)]
        assert _read_partition(cluster.kafka_bootstrap, topic, N) == want, f"{client} {codec}"


# ---------------------------------------------------------------------------------------------------
# Kafka's own command-line tools, in one JVM.

T = "org.apache.kafka.tools."


class Tools:
    """A ToolRunner JVM: `run(main_class, *args, stdin=)` -> (exit code, stdout, stderr)."""

    def __init__(self, jvm: toolchains.Jvm, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.proc = subprocess.Popen(jvm.argv("ToolRunner"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)

    def run(self, main: str, *args: str, stdin: str = "", timeout_s: float = TOOL_TIMEOUT_S) -> tuple[int, str, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"main": T + main, "args": list(args), "stdin": stdin}) + "\n")
        self.proc.stdin.flush()
        reply: list[str] = []
        reader = threading.Thread(target=lambda: reply.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout_s)
        if not reply or not reply[0]:
            self.close()
            raise AssertionError(f"{main} {' '.join(args)}: no answer in {timeout_s}s")
        r = json.loads(reply[0])
        return r["exit"], r["out"], r["err"]

    def bs(self, main: str, *args: str, **kw) -> tuple[int, str, str]:
        return self.run(main, "--bootstrap-server", self.bootstrap, *args, **kw)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def tools(cluster):
    try:
        jvm = toolchains.jvm()
    except toolchains.Missing as e:
        pytest.skip(str(e))
    t = Tools(jvm, cluster.kafka_bootstrap)
    try:
        yield t
    finally:
        t.close()


@pytest.mark.timeout(TOOL_TIMEOUT_S * 5 + 600)
def test_kafka_topics(tools):
    code, out, err = tools.bs("TopicCommand", "--create", "--topic", "tool-topics", "--partitions", "3",
                              "--replication-factor", "3", "--config", "retention.ms=60000")
    assert code == 0 and "Created topic tool-topics" in out, out + err
    code, out, err = tools.bs("TopicCommand", "--list")
    assert code == 0 and "tool-topics" in out.split(), out + err
    code, out, err = tools.bs("TopicCommand", "--describe", "--topic", "tool-topics")
    assert code == 0 and "PartitionCount: 3" in out and "ReplicationFactor: 3" in out and "retention.ms=60000" in out, out
    assert sum(line.strip().startswith("Topic: tool-topics\tPartition:") for line in out.splitlines()) == 3, out
    code, out, err = tools.bs("TopicCommand", "--delete", "--topic", "tool-topics")
    assert code == 0, out + err
    code, out, err = tools.bs("TopicCommand", "--list")
    assert "tool-topics" not in out.split()


@pytest.mark.timeout(TOOL_TIMEOUT_S + 60)
def test_kafka_topics_alter_partitions(cluster, tools):
    create_topic(cluster, "tool-grow", partitions=1)
    code, out, err = tools.bs("TopicCommand", "--alter", "--topic", "tool-grow", "--partitions", "2")
    assert code == 0, out + err


@pytest.mark.timeout(TOOL_TIMEOUT_S * 6)
def test_console_producer_consumer_and_consumer_groups(cluster, tools):
    create_topic(cluster, "tool-console", partitions=3)
    lines = [f"key{i}:value{i}" for i in range(30)]
    code, out, err = tools.bs("ConsoleProducer", "--topic", "tool-console", "--reader-property", "parse.key=true",
                              "--reader-property", "key.separator=:", "--command-property", "acks=all",
                              stdin="\n".join(lines) + "\n")
    assert code == 0, out + err
    code, out, err = tools.bs("consumer.ConsoleConsumer", "--topic", "tool-console", "--from-beginning",
                              "--max-messages", "30", "--timeout-ms", "30000", "--group", "tool-group",
                              "--formatter-property", "print.key=true", "--formatter-property", "key.separator=:")
    assert code == 0, out + err
    assert sorted(out.split()) == sorted(lines), out + err
    code, out, err = tools.bs("consumer.group.ConsumerGroupCommand", "--list")
    assert code == 0 and "tool-group" in out.split(), out + err
    code, out, err = tools.bs("consumer.group.ConsumerGroupCommand", "--describe", "--group", "tool-group")
    rows = [line.split() for line in out.splitlines() if line.startswith("tool-group")]
    assert code == 0 and len(rows) == 3, out + err
    # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...: everything consumed, lag 0.
    assert sum(int(r[3]) for r in rows) == 30 and all(r[3] == r[4] and r[5] == "0" for r in rows), out
    code, out, err = tools.bs("consumer.group.ConsumerGroupCommand", "--reset-offsets", "--group", "tool-group",
                              "--topic", "tool-console", "--to-earliest", "--execute")
    assert code == 0, out + err
    code, out, err = tools.bs("consumer.group.ConsumerGroupCommand", "--describe", "--group", "tool-group")
    rows = [line.split() for line in out.splitlines() if line.startswith("tool-group")]
    assert len(rows) == 3 and all(r[3] == "0" for r in rows) and sum(int(r[5]) for r in rows) == 30, out
    code, out, err = tools.bs("consumer.group.ConsumerGroupCommand", "--delete", "--group", "tool-group")
    assert code == 0, out + err
    code, out, err = tools.bs("consumer.group.ConsumerGroupCommand", "--list")
    assert "tool-group" not in out.split(), out


@pytest.mark.timeout(TOOL_TIMEOUT_S * 4)
def test_kafka_configs(cluster, tools):
    create_topic(cluster, "tool-configs")
    code, out, err = tools.bs("ConfigCommand", "--entity-type", "topics", "--entity-name", "tool-configs",
                              "--alter", "--add-config", "retention.ms=123456,cleanup.policy=compact")
    assert code == 0 and "Completed updating config for topic tool-configs" in out, out + err
    code, out, err = tools.bs("ConfigCommand", "--entity-type", "topics", "--entity-name", "tool-configs", "--describe")
    assert code == 0 and "retention.ms=123456" in out and "cleanup.policy=compact" in out, out + err
    code, out, err = tools.bs("ConfigCommand", "--entity-type", "topics", "--entity-name", "tool-configs",
                              "--alter", "--delete-config", "retention.ms")
    assert code == 0, out + err
    code, out, err = tools.bs("ConfigCommand", "--entity-type", "topics", "--entity-name", "tool-configs", "--describe")
    assert code == 0 and "retention.ms" not in out and "cleanup.policy=compact" in out, out + err
    broker = str(cluster.broker_ids[0])
    code, out, err = tools.bs("ConfigCommand", "--entity-type", "brokers", "--entity-name", broker, "--describe", "--all")
    assert code == 0 and f"All configs for broker {broker} are:" in out and "log.retention.ms=" in out, out + err


@pytest.mark.timeout(TOOL_TIMEOUT_S * 2)
def test_kafka_leader_election(cluster, tools):
    create_topic(cluster, "tool-election", partitions=2)
    code, out, err = tools.bs("LeaderElectionCommand", "--election-type", "preferred", "--topic", "tool-election",
                              "--partition", "0")
    # Leaders start on the preferred replica, so the answer is "already elected" (exit 0), not an error.
    assert code == 0 and "tool-election-0" in out, out + err
    assert "Valid replica already elected" in out or "Successfully completed leader election" in out, out


@pytest.mark.timeout(TOOL_TIMEOUT_S * 2)
def test_kafka_producer_perf_test(cluster, tools):
    create_topic(cluster, "tool-perf")
    code, out, err = tools.run("ProducerPerformance", "--topic", "tool-perf", "--num-records", "5000",
                               "--record-size", "100", "--throughput", "-1", "--bootstrap-server",
                               cluster.kafka_bootstrap, "--command-property", "acks=all",
                               "--command-property", "compression.type=lz4")
    assert code == 0 and "5000 records sent" in out, out + err
    code, out, err = tools.bs("consumer.ConsoleConsumer", "--topic", "tool-perf", "--from-beginning",
                              "--max-messages", "5000", "--timeout-ms", "30000")
    assert code == 0 and "Processed a total of 5000 messages" in err, err[-2000:]


@pytest.mark.timeout(TOOL_TIMEOUT_S * 2 + 60)
def test_kafka_log_dirs(cluster, tools):
    create_topic(cluster, "tool-logdirs", partitions=2)
    # --sync: in the one-JVM runner the tool's exit can beat its asynchronous sends of a short input.
    code, out, err = tools.bs("ConsoleProducer", "--topic", "tool-logdirs", "--sync", "--command-property", "acks=all",
                              stdin="".join(f"line-{i}\n" for i in range(50)))
    assert code == 0, out + err
    code, out, err = tools.bs("LogDirsCommand", "--describe", "--topic-list", "tool-logdirs")
    assert code == 0 and '"brokers"' in out, out + err
    answer = json.loads(out.strip().splitlines()[-1])
    assert sorted(b["broker"] for b in answer["brokers"]) == sorted(cluster.broker_ids), out
    for b in answer["brokers"]:
        (log_dir,) = b["logDirs"]  # one log directory per broker
        assert log_dir["error"] is None and log_dir["logDir"], out
        parts = {p["partition"]: p for p in log_dir["partitions"]}
        assert sorted(parts) == ["tool-logdirs-0", "tool-logdirs-1"], out  # RF 3: every broker has both
    sizes = [p["size"] for b in answer["brokers"] for p in b["logDirs"][0]["partitions"]]
    assert sum(sizes) > 0 and all(s >= 0 for s in sizes), out


@pytest.mark.timeout(TOOL_TIMEOUT_S * 3 + 60)
def test_kafka_delete_records(cluster, tools, tmp_path):
    create_topic(cluster, "tool-delete-records")
    code, out, err = tools.bs("ConsoleProducer", "--topic", "tool-delete-records", "--sync", "--command-property", "acks=all",
                              stdin="a\nb\nc\n")
    assert code == 0, out + err
    spec = tmp_path / "offsets.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "tool-delete-records", "partition": 0, "offset": 2}]}))
    code, out, err = tools.bs("DeleteRecordsCommand", "--offset-json-file", str(spec))
    # The tool exits 0 even when the partition failed; the per-partition line says which.
    assert code == 0 and "low_watermark: 2" in out, out + err
    code, out, err = tools.bs("consumer.ConsoleConsumer", "--topic", "tool-delete-records", "--from-beginning",
                              "--max-messages", "1", "--timeout-ms", "30000")
    assert code == 0 and out.split() == ["c"], out + err
    code, out, err = tools.bs("GetOffsetShell", "--topic", "tool-delete-records", "--time", "-2")
    assert code == 0 and out.split() == ["tool-delete-records:0:2"], out + err


@pytest.mark.timeout(TOOL_TIMEOUT_S * 2 + 60)
def test_kafka_transactions_describe_producers(cluster, tools):
    create_topic(cluster, "tool-producers")
    code, out, err = tools.bs("ConsoleProducer", "--topic", "tool-producers", "--sync", "--command-property", "acks=all",
                              "--command-property", "enable.idempotence=true", stdin="a\nb\nc\n")
    assert code == 0, out + err
    code, out, err = tools.bs("TransactionsCommand", "describe-producers", "--topic", "tool-producers",
                              "--partition", "0")
    assert code == 0, out + err
    header, *rows = [line.split() for line in out.strip().splitlines()]
    assert header[:4] == ["ProducerId", "ProducerEpoch", "LatestCoordinatorEpoch", "LastSequence"], out
    # One idempotent producer; its three records went in one or more batches ending at sequence 2.
    assert len(rows) == 1 and int(rows[0][0]) >= 0 and rows[0][3] == "2", out


@pytest.mark.timeout(TOOL_TIMEOUT_S + 60)
def test_kafka_metadata_quorum(tools):
    code, out, err = tools.bs("MetadataQuorumCommand", "describe", "--status")
    assert code == 0 and "LeaderId:" in out, out + err


@pytest.mark.timeout(TOOL_TIMEOUT_S + 60)
def test_kafka_reassign_partitions_list(tools):
    code, out, err = tools.bs("reassign.ReassignPartitionsCommand", "--list")
    assert code == 0, out + err


def _configs(cluster, resource_type, name: str) -> dict[str, str]:
    """Explicitly set configs of a topic or broker (DescribeConfigs through librdkafka)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    client = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap})
    resource = ConfigResource(resource_type, name)
    entries = client.describe_configs([resource], request_timeout=20)[resource].result(timeout=30)
    return {k: e.value for k, e in entries.items() if not e.is_default}


@pytest.mark.timeout(TOOL_TIMEOUT_S * 12)
def test_kafka_reassign_partitions_execute_with_throttle_and_verify(cluster, tools, tmp_path):
    """kafka-reassign-partitions --execute --throttle sets the topic's leader/follower throttled replicas and
    the brokers' throttle rates (Brook accepts and honours them); --verify finishes the move, then removes
    every throttle; the records are all there on the new replica set."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import ConfigResource

    topic = f"tool-reassign-{uuid.uuid4().hex[:6]}"
    create_topic(cluster, topic, partitions=1, rf=1, configs={"min.insync.replicas": "1"})
    producer = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all"})
    for i in range(N):
        producer.produce(topic, key=f"k{i}".encode(), value=f"{topic}-v{i}".encode(), headers=[("h", str(i).encode())],
                         partition=0)
    assert producer.flush(60) == 0
    code, out, err = tools.bs("TopicCommand", "--describe", "--topic", topic)
    (before,) = [int(line.split("Replicas:")[1].split()[0]) for line in out.splitlines() if "Replicas:" in line]
    target = sorted(set(cluster.broker_ids) - {before})
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": target}]}))

    code, out, err = tools.bs("reassign.ReassignPartitionsCommand", "--execute", "--reassignment-json-file", str(plan),
                              "--throttle", "50000000")
    assert code == 0 and "Successfully started partition reassignment" in out, out + err
    assert "throttle limit was set to 50000000 B/s" in out, out
    # What the tool set: the brokers' rates, the leader list (the current replica) and the follower list (the
    # moving ones); both stay until --verify.
    assert _configs(cluster, ConfigResource.Type.BROKER, str(before)).get("leader.replication.throttled.rate") \
        == "50000000"
    listed = _configs(cluster, ConfigResource.Type.TOPIC, topic)
    assert listed.get("leader.replication.throttled.replicas") == f"0:{before}", listed
    assert sorted(listed.get("follower.replication.throttled.replicas", "").split(",")) == [f"0:{b}" for b in target]

    deadline = time.monotonic() + TOOL_TIMEOUT_S * 8
    while True:
        code, out, err = tools.bs("reassign.ReassignPartitionsCommand", "--verify", "--reassignment-json-file",
                                  str(plan))
        if f"Reassignment of partition {topic}-0 is completed" in out or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert code == 0 and f"Reassignment of partition {topic}-0 is completed" in out, out + err
    assert "Clearing broker-level throttles" in out and f"Clearing topic-level throttles on topic {topic}" in out, out
    topic_configs = _configs(cluster, ConfigResource.Type.TOPIC, topic)
    assert not {"leader.replication.throttled.replicas", "follower.replication.throttled.replicas"} & set(topic_configs)
    for b in cluster.broker_ids:
        assert "leader.replication.throttled.rate" not in _configs(cluster, ConfigResource.Type.BROKER, str(b))
    code, out, err = tools.bs("TopicCommand", "--describe", "--topic", topic)
    assert f"Replicas: {','.join(map(str, target))}" in out, out
    want = [(i, f"k{i}".encode(), f"{topic}-v{i}".encode(), [("h", str(i).encode())]) for i in range(N)]
    assert _read_partition(cluster.kafka_bootstrap, topic, N) == want


@pytest.mark.timeout(TOOL_TIMEOUT_S + 120)
def test_kafka_transactions_lists_and_describes(tools, cluster):
    """kafka-transactions list / describe show a transactional id after a committed transaction."""
    from confluent_kafka import Producer

    topic, tid = "tools-txn", f"tools-tid-{uuid.uuid4().hex[:8]}"
    create_topic(cluster, topic)
    producer = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "transactional.id": tid})
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(topic, value=b"v", partition=0)
    producer.commit_transaction(60)
    code, out, err = tools.bs("TransactionsCommand", "list")
    assert code == 0 and tid in out, out + err
    code, out, err = tools.bs("TransactionsCommand", "describe", "--transactional-id", tid)
    assert code == 0 and tid in out and "CompleteCommit" in out, out + err


@pytest.mark.timeout(TOOL_TIMEOUT_S * 10)
def test_kafka_tools_decommission_a_broker(tmp_path):
    """Decommissioning the Kafka way, with Kafka's own tools (the Java Admin client inside them): the
    leader of a partition being written to is drained — `kafka-reassign-partitions --generate` proposes
    a plan without it, `--execute` / `--verify` move every replica off it (AlterPartitionReassignments)
    while an idempotent acks=all writer runs — then it is stopped and `kafka-cluster unregister --id`
    (Admin.unregisterBroker, UnregisterBroker v0) removes it from the cluster. Nothing acknowledged is
    lost. Its own cluster (1 controller, 3 brokers), holding only this topic: Brook refuses to
    unregister a broker that still holds a replica of anything, and the module's cluster has RF-3 topics
    that two brokers cannot hold."""
    from cluster.cli.launcher import LocalCluster
    from tests.compat.conftest import OVERRIDES
    from tests.support import Writer, admin, check_exactly_once, partition_state, read_all, wait_until

    try:
        jvm = toolchains.jvm()
    except toolchains.Missing as e:
        pytest.skip(str(e))
    cluster = LocalCluster(tmp_path / "drain", 1, 3, overrides=OVERRIDES)
    tools = None
    try:
        cluster.start(timeout_s=90)
        tools = Tools(jvm, cluster.kafka_bootstrap)
        topic = "tool-drain"
        create_topic(cluster, topic, partitions=3, rf=2)
        victim = partition_state(cluster, topic, 0).leader
        keep = [b for b in cluster.broker_ids if b != victim]
        writer = Writer(cluster, topic)
        writer.start(prefix="drain")
        try:
            wait_until(lambda: len(writer.acked) >= 200, 60, 0.05, "writes before the drain")
            moves = tmp_path / "topics.json"
            moves.write_text(json.dumps({"version": 1, "topics": [{"topic": topic}]}))
            code, out, err = tools.bs("reassign.ReassignPartitionsCommand", "--generate", "--topics-to-move-json-file",
                                      str(moves), "--broker-list", ",".join(map(str, keep)))
            assert code == 0 and "Proposed partition reassignment configuration" in out, out + err
            proposed = json.loads(out.split("Proposed partition reassignment configuration")[1].split()[0])
            assert sorted(p["partition"] for p in proposed["partitions"]) == [0, 1, 2], proposed
            assert all(victim not in p["replicas"] for p in proposed["partitions"]), proposed
            plan = tmp_path / "plan.json"
            plan.write_text(json.dumps(proposed))
            code, out, err = tools.bs("reassign.ReassignPartitionsCommand", "--execute", "--reassignment-json-file",
                                      str(plan))
            assert code == 0 and "Successfully started partition reassignment" in out, out + err
            deadline = time.monotonic() + TOOL_TIMEOUT_S * 4
            while True:
                code, out, err = tools.bs("reassign.ReassignPartitionsCommand", "--verify",
                                          "--reassignment-json-file", str(plan))
                done = all(f"Reassignment of partition {topic}-{i} is completed" in out for i in range(3))
                if done or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert code == 0 and done, out + err
            acked = len(writer.acked)
            wait_until(lambda: len(writer.acked) >= acked + 100, 60, 0.05, "writes after the drain")
        finally:
            writer.stop()
        for index in range(3):
            assert victim not in partition_state(cluster, topic, index).replicas
        check_exactly_once(writer.acked, read_all(cluster, topic))

        cluster.stop_node(victim)
        with admin(cluster) as client:
            wait_until(lambda: next(b.fenced for b in client.describe_cluster().brokers if b.broker_id == victim),
                       60, 0.2, f"broker {victim} fenced after it stopped")
        code, out, err = tools.run("ClusterTool", "unregister", "--bootstrap-server", tools.bootstrap,
                                   "--id", str(victim))
        assert code == 0 and f"Broker {victim} is no longer registered." in out, out + err
        with admin(cluster) as client:
            assert victim not in {b.broker_id for b in client.describe_cluster().brokers}
        check_exactly_once(writer.acked, read_all(cluster, topic))
    finally:
        if tools is not None:
            tools.close()
        cluster.stop()
        assert not cluster.pids
