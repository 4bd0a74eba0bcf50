"""Issue 13 item 7 on a secure cluster: every Kafka-protocol verb of `brook` with `--command-config FILE`
(Kafka client properties, as Kafka's tools), against a SASL_SSL listener with SCRAM and the
StandardAuthorizer; and one-line errors for a wrong password, a missing CA, a missing file and no
client properties at all.

One combined node (SASL_SSL + SCRAM-SHA-512/256 + PLAIN, ACLs on, super user `admin`); the CLI runs as a
subprocess with no controller address, so each verb must speak TLS+SASL to the broker.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.conftest import CLUSTER_START_TIMEOUT_S, run_cli_process
from tests.support import admin

pytestmark = pytest.mark.timeout(300)

PASSWORD = "admin-secret-1"
JAAS = ("org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '    username="admin" \\\n    password="{password}";\n')


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    from cluster.cli.launcher import LocalCluster
    from cluster.security.certs import create_ca, issue

    pki = tmp_path_factory.mktemp("pki")
    ca = create_ca(pki)
    server = issue(ca, pki, "localhost", hosts=["localhost", "127.0.0.1"])
    overrides = {
        "offsets.topic.replication.factor": "1", "default.replication.factor": "1", "min.insync.replicas": "1",
        "group.initial.rebalance.delay.ms": "0",
        "ssl.keystore.location": str(server.key_path), "ssl.keystore.certificate.location": str(server.cert_path),
        "ssl.truststore.location": str(ca.cert_path),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN", "super.users": "User:admin",
        "authorizer.class.name": "StandardAuthorizer",
    }
    cluster = LocalCluster(tmp_path_factory.mktemp("secure"), 1, 0, combined=True, overrides=overrides,
                           kafka_listener="SASL_SSL")
    try:
        cluster.start(timeout_s=CLUSTER_START_TIMEOUT_S)
        with admin(cluster) as client:
            reply = client.upsert_scram_user("admin", PASSWORD, ("SCRAM-SHA-512", "SCRAM-SHA-256"))
            assert all(r.error_code == 0 for r in reply.results), reply
        files = tmp_path_factory.mktemp("client")

        def props(name: str, text: str) -> str:
            path = files / name
            path.write_text(text, encoding="utf-8")
            return str(path)

        java = ("# as for kafka-topics.sh --command-config\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                f"sasl.jaas.config={JAAS}ssl.truststore.type=PEM\nssl.truststore.location={ca.cert_path}\n")
        yield {
            "cluster": cluster,
            "java": props("java.properties", java.format(password=PASSWORD)),
            "librdkafka": props("rdkafka.properties",
                                "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\nsasl.username=admin\n"
                                f"sasl.password={PASSWORD}\nssl.ca.location={ca.cert_path}\n"),
            "wrong_password": props("wrong.properties", java.format(password="not-the-password")),
            "no_ca": props("no-ca.properties", "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                                               f"sasl.jaas.config={JAAS.format(password=PASSWORD)}"),
        }
    finally:
        cluster.stop()
        assert not cluster.pids, f"processes still running after stop(): {cluster.pids}"


def brook(secure, *argv: str, config: str | None = "java", stdin: str = ""):
    """`brook ARGV --bootstrap-server <SASL_SSL listener> [--command-config FILE]`, no controller address."""
    extra = ["--command-config", secure[config]] if config else []
    return run_cli_process(None, *argv, "--bootstrap-server", secure["cluster"].kafka_bootstrap, *extra, stdin=stdin)


def ok(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_every_kafka_protocol_verb_with_command_config(secure):
    topic = f"sec-{uuid.uuid4().hex[:6]}"
    ok(brook(secure, "topics", "create", topic, "--partitions", "2"))
    assert topic in ok(brook(secure, "topics", "list")).stdout.split()
    ok(brook(secure, "topics", "alter", topic, "--partitions", "3"))
    assert "PartitionCount: 3" in ok(brook(secure, "topics", "describe", topic)).stdout
    ok(brook(secure, "configs", "alter", "--topic", topic, "--set", "retention.ms=600000"))
    assert "600000" in ok(brook(secure, "configs", "describe", "--topic", topic)).stdout

    lines = [f"k{i}:v{i}" for i in range(12)]
    produced = ok(brook(secure, "produce", topic, "--key-separator", ":", "-q", stdin="\n".join(lines) + "\n"))
    assert produced.stdout == ""
    got = ok(brook(secure, "consume", topic, "--group", "g-sec", "--from-beginning"))
    assert sorted(got.stdout.split()) == sorted(f"v{i}" for i in range(12))

    assert "g-sec" in ok(brook(secure, "groups", "list")).stdout
    described = ok(brook(secure, "groups", "describe", "g-sec", "-o", "json")).stdout
    assert sum(r["current_offset"] for r in json.loads(described)["partitions"]) == 12

    dirs = json.loads(ok(brook(secure, "log-dirs", "--topics", topic, "-o", "json")).stdout)
    assert sorted(r["partition"] for r in dirs["log_dirs"]) == [0, 1, 2] and dirs["errors"] == []
    assert sum(r["size_bytes"] for r in dirs["log_dirs"]) > 0

    deleted = json.loads(ok(brook(secure, "records", "delete", "--topic", topic, "--before-offset", "-1",
                                  "-o", "json")).stdout)
    assert len(deleted["partitions"]) == 3 and deleted["errors"] == []
    ok(brook(secure, "topics", "delete", topic))


def test_librdkafka_style_properties_and_scram_sha_256(secure):
    """sasl.username/sasl.password + ssl.ca.location (librdkafka's spellings), SCRAM-SHA-256."""
    assert "__consumer_offsets" not in ok(brook(secure, "topics", "list", config="librdkafka")).stdout.split()
    dirs = json.loads(ok(brook(secure, "log-dirs", "-o", "json", config="librdkafka")).stdout)
    assert dirs["errors"] == [] and dirs["log_dirs"], dirs


@pytest.mark.parametrize("argv", [("topics", "list"), ("log-dirs",), ("groups", "list"), ("records", "delete",
                                  "--topic", "t", "--before-offset", "0"), ("consume", "t", "--group", "g")])
def test_wrong_password_is_one_line(secure, argv):
    r = run_cli_process(None, *argv, "--bootstrap-server", secure["cluster"].kafka_bootstrap, "--timeout", "5",
                        "--command-config", secure["wrong_password"])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("brook: error:"), r.stderr
    assert "Authentication failed" in lines[0] and "_AUTHENTICATION" in lines[0], r.stderr


def test_produce_with_wrong_password_is_one_line(secure):
    r = brook(secure, "produce", "t", config="wrong_password", stdin="x\n")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "Authentication failed" in lines[0], r.stderr


@pytest.mark.parametrize("config, fragment", [
    ("no_ca", "certificate verify failed"),  # the system CAs do not know the dev CA
    (None, "--command-config"),  # plaintext spoken to a SASL_SSL listener: the hint names the option
])
def test_tls_mistakes_are_one_line(secure, config, fragment):
    for argv in (("topics", "list"), ("log-dirs",)):
        extra = ["--command-config", secure[config]] if config else []
        r = run_cli_process(None, *argv, "--bootstrap-server", secure["cluster"].kafka_bootstrap, "--timeout", "5",
                            *extra)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and fragment in lines[0], r.stderr


def test_missing_or_bad_command_config_is_one_line(secure, tmp_path):
    r = run_cli_process(None, "topics", "list", "--bootstrap-server", secure["cluster"].kafka_bootstrap,
        "--command-config", str(tmp_path / "absent.properties"))
    assert r.returncode == 1 and r.stderr.strip() == (f"brook: error: cannot read --command-config "
                                                      f"{tmp_path / 'absent.properties'}: No such file or directory")
    bad = tmp_path / "gssapi.properties"
    bad.write_text("security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\n")
    r = run_cli_process(None, "log-dirs", "--bootstrap-server", secure["cluster"].kafka_bootstrap,
                        "--command-config", str(bad))
    assert r.returncode == 1 and "sasl.mechanism=GSSAPI is not supported" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_perf_over_the_kafka_protocol(secure):
    """`brook perf produce|consume --bootstrap-server --command-config`: kafka-*-perf-test over SASL_SSL."""
    topic = f"perf-{uuid.uuid4().hex[:6]}"
    ok(brook(secure, "topics", "create", topic, "--partitions", "2"))
    produced = json.loads(ok(brook(secure, "perf", "produce", "--topic", topic, "--num-records", "3000",
                                   "--record-size", "100", "-o", "json")).stdout)
    assert produced["records"] == 3000 and produced["failed"] == 0 and produced["latency_p99_ms"] > 0, produced
    consumed = json.loads(ok(brook(secure, "perf", "consume", "--topic", topic, "--messages", "3000",
                                   "-o", "json")).stdout)
    assert consumed["records"] == 3000 and consumed["bytes"] == 300_000 and consumed["error"] is None, consumed
