"""A Kafka server.properties on Brook (issue 13, item 8): keys that do not apply are accepted with one
warning each, all listed at once; unknown keys still fail with a suggestion; every error is reported in
the same run; several log.dirs are refused on a broker.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cluster.config import SERVER_KEYS, load_config
from cluster.config.schema import ALIASES, KAFKA_IGNORED
from cluster.errors import ConfigError

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 40

# Apache Kafka 4.0's config/server.properties (comments dropped), as a Kafka user would bring it; the
# overrides are what Brook needs on top: its GRPC listener, the Raft voters on their own port, the secret.
KAFKA_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs={dir}
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""
BROOK_OVERRIDES = [
    "listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093,GRPC://localhost:9192",
    "advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093,GRPC://localhost:9192",
    "controller.quorum.voters=1@localhost:9094",
    f"controller.quorum.secret={SECRET}",
]
NOT_APPLICABLE = ["num.network.threads", "num.io.threads", "socket.send.buffer.bytes", "socket.receive.buffer.bytes",
                  "num.recovery.threads.per.data.dir", "share.coordinator.state.topic.replication.factor",
                  "share.coordinator.state.topic.min.isr"]


def _kafka_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "server.properties"
    path.write_text(KAFKA_SERVER_PROPERTIES.format(dir=tmp_path / "data") + extra)
    return path


def test_ignored_keys_are_neither_brook_keys_nor_aliases():
    assert not set(KAFKA_IGNORED) & (set(SERVER_KEYS) | set(ALIASES))


def test_kafka_server_properties_loads_with_one_warning_per_key_that_does_not_apply(tmp_path):
    path = _kafka_file(tmp_path)
    config = load_config(str(path), BROOK_OVERRIDES, env={})
    assert config.is_broker and config.is_controller and config["num.partitions"] == 1
    assert config.getstr("inter.broker.listener.name") == "PLAINTEXT"
    warned = [w.split("'")[1] for w in config.warnings]
    assert warned == NOT_APPLICABLE
    lines = path.read_text().splitlines()
    for warning, key in zip(config.warnings, warned, strict=True):
        line = next(i for i, text in enumerate(lines, 1) if text.startswith(key + "="))
        assert warning.startswith(f"{path}:{line}: '{key}' does not apply to Brook"), warning


def test_check_config_lists_every_warning_at_once(tmp_path):
    path = _kafka_file(tmp_path)
    overrides = [arg for o in BROOK_OVERRIDES for arg in ("--override", o)]
    result = subprocess.run([sys.executable, "-m", "cluster.cli.main", "server", "--check-config", str(path),
                             *overrides],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("brook server: warning: ")]
    ignored = [w for w in warnings if "does not apply to Brook" in w]
    assert len(ignored) == len(NOT_APPLICABLE) and "Traceback" not in result.stderr, result.stderr
    assert any("inter.broker.listener.name=PLAINTEXT" in w for w in warnings), result.stderr


def test_every_error_is_reported_in_one_run(tmp_path):
    path = _kafka_file(tmp_path, "num.partitons=3\nmin.insync.replicas=zero\nlog.retention.minutes=x\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), [*BROOK_OVERRIDES, "default.replication.factor=0"],
                    env={"BROOK_CFG_NUM_IO_THREADZ": "1"})
    message = info.value.message
    assert "\n" not in message and message.startswith("5 config errors: "), message
    for fragment in ("unknown config key 'num.partitons' (did you mean 'num.partitions'?)",
                     "invalid value 'zero' for 'min.insync.replicas'",
                     "invalid value 'x' for 'log.retention.minutes'",
                     "BROOK_CFG_NUM_IO_THREADZ: unknown config key 'num.io.threadz' (did you mean 'num.io.threads'?)",
                     "--override: invalid value '0' for 'default.replication.factor'"):
        assert fragment in message, message


def test_every_cross_key_error_is_reported_in_one_run(tmp_path):
    path = _kafka_file(tmp_path, "broker.session.timeout.ms=100\nbroker.heartbeat.interval.ms=200\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), [*BROOK_OVERRIDES, f"log.dirs={tmp_path}/a,{tmp_path}/b"], env={})
    message = info.value.message
    assert message.startswith("2 config errors: "), message
    assert "log.dirs lists 2 directories" in message and "broker.session.timeout.ms (100) must exceed" in message


# -- offsets.topic.replication.factor waits for enough brokers (as Kafka, and as CONFIG.md says) --------


def _broker_state(live: int):
    from types import SimpleNamespace

    from cluster.config import Config
    from cluster.image import MetadataImage, replay_all
    from cluster.records import RegisterBroker, UnfenceBroker

    records = []
    for i in range(1, live + 1):
        records += [RegisterBroker(i, i, f"inc{i}", f"h{i}", 9092, 9192), UnfenceBroker(i, i)]
    created = []

    async def create_topics(topics, validate_only, timeout_ms):
        created.extend(topics)
        return []

    state = SimpleNamespace(session=SimpleNamespace(image=replay_all(MetadataImage(), records)),
                            config=Config.from_mapping({"offsets.topic.replication.factor": "3"}, validate=False),
                            create_topics=create_topics)
    return state, created


@pytest.mark.parametrize("live", [1, 2])
def test_the_offsets_topic_waits_for_enough_brokers(live):
    import asyncio

    from broker.core import Broker
    from broker.groups.coordinator import OFFSETS_TOPIC
    from cluster.errors import ErrorCode

    state, created = _broker_state(live)
    assert asyncio.run(Broker.ensure_topic(state, OFFSETS_TOPIC)) == ErrorCode.coordinator_not_available
    assert created == []  # never an offsets topic with fewer replicas than configured


def test_the_offsets_topic_is_created_with_the_configured_factor():
    import asyncio

    from broker.core import Broker
    from broker.groups.coordinator import OFFSETS_TOPIC

    state, created = _broker_state(3)
    asyncio.run(Broker.ensure_topic(state, OFFSETS_TOPIC))
    assert [(t.name, t.replication_factor) for t in created] == [(OFFSETS_TOPIC, 3)]
