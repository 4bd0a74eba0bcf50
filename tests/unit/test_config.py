"""cluster.config: properties parsing, precedence, the schema, value and cross-key validation."""

from __future__ import annotations

import pathlib
import pickle
import subprocess
import sys

import pytest

from cluster.config import (
    SERVER_KEYS,
    TOPIC_KEYS,
    TOPIC_TO_SERVER_DEFAULT,
    Config,
    Endpoint,
    Secret,
    Voter,
    load_config,
    markdown_table,
    parse_properties,
    topic_config_defaults,
    validate_server_config,
    validate_topic_config,
)
from cluster.errors import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Quorum-Pass"

BROKER = [
    "process.roles=broker",
    "node.id=4",
    "listeners=PLAINTEXT://127.0.0.1:9092,GRPC://127.0.0.1:9192",
    "controller.quorum.bootstrap.servers=127.0.0.1:9093,127.0.0.1:9094",
]
CONTROLLER = [
    "process.roles=controller",
    "node.id=1",
    "listeners=CONTROLLER://127.0.0.1:9093",
    "controller.quorum.voters=1@127.0.0.1:19093,2@127.0.0.1:19094,3@127.0.0.1:19095",
    f"controller.quorum.secret={SECRET}",
]
COMBINED = [
    "process.roles=broker,controller",
    "node.id=1",
    "listeners=PLAINTEXT://127.0.0.1:9092,GRPC://127.0.0.1:9192,CONTROLLER://127.0.0.1:9093",
    "controller.quorum.voters=1@127.0.0.1:19093",
    "controller.quorum.bootstrap.servers=127.0.0.1:9093",
    f"controller.quorum.secret={SECRET}",
]


def load(overrides, env=None, path=None):
    return load_config(path, overrides, env={} if env is None else env)


def error_of(fn, *args, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kw)
    message = info.value.message
    assert "\n" not in message and "\r" not in message, message
    assert SECRET not in message
    return message


def without(base, key):
    return [o for o in base if not o.startswith(key + "=")]


# ------------------------------------------------------------------------------------------------
# .properties parsing

PARSE_CASES = [
    ("simple", "a=1\nb = 2\n", {"a": "1", "b": "2"}),
    ("colon separator", "a: 1\nb:2", {"a": "1", "b": "2"}),
    ("comments and blanks", "# c\n! c\n\n   \n  # indented\na=1\n", {"a": "1"}),
    ("whitespace trimmed", "  a   =   x y  \t\n", {"a": "x y"}),
    ("empty value", "a=\n", {"a": ""}),
    (
        "value contains separators",
        "listeners=PLAINTEXT://:9092,GRPC://h:1\n",
        {"listeners": "PLAINTEXT://:9092,GRPC://h:1"},
    ),
    ("continuation", "a=1,\\\n    2,\\\n  3\nb=x", {"a": "1,2,3", "b": "x"}),
    ("continuation at eof", "a=1\\", {"a": "1"}),
    ("escaped backslash is no continuation", "a=x\\\\\nb=y", {"a": "x\\", "b": "y"}),
    ("escapes", "a=t\\tn\\u0041\\=\\:\\#", {"a": "t\tnA=:#"}),
    ("escaped separator in key", "a\\=b=c", {"a=b": "c"}),
    ("escaped trailing space kept", "a=x\\ ", {"a": "x "}),
    ("crlf", "a=1\r\nb=2\r\n", {"a": "1", "b": "2"}),
    ("comment mark inside value", "a=x # not a comment", {"a": "x # not a comment"}),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_parse_properties(text, expected):
    assert parse_properties(text, "t.properties") == expected


PARSE_ERRORS = [
    ("no separator", "a=1\n\nfoo\n", "t.properties:3:", "expected key=value"),
    ("space separator", "# x\nnum.partitions 3\n", "t.properties:2:", "expected key=value"),
    ("missing key", "=1\n", "t.properties:1:", "missing key"),
    ("duplicate key", "a=1\nb=2\na=3\n", "t.properties:3:", "duplicate key 'a' (first set on line 1)"),
    ("bad unicode escape", "a=\\u00zz\n", "t.properties:1:", "bad unicode escape"),
    ("line number of continued line", "a=1\nb=2,\\\n3\nc\n", "t.properties:4:", "expected key=value"),
]


@pytest.mark.parametrize(
    "text,where,fragment", [c[1:] for c in PARSE_ERRORS], ids=[c[0] for c in PARSE_ERRORS]
)
def test_parse_properties_errors(text, where, fragment):
    message = error_of(parse_properties, text, "t.properties")
    assert message.startswith(where) and fragment in message, message


def test_bad_line_in_file_names_file_and_line(tmp_path):
    f = tmp_path / "server.properties"
    f.write_text("process.roles=broker\nnode.id=1\noops\n")
    message = error_of(load_config, str(f), env={})
    assert message.startswith(f"{f}:3:"), message


def test_missing_file():
    message = error_of(load_config, "/nonexistent/brook.properties", env={})
    assert "cannot read config file '/nonexistent/brook.properties'" in message


# ------------------------------------------------------------------------------------------------
# Loading and precedence


def test_defaults_follow_kafka(tmp_path):
    c = load(BROKER)
    assert c["num.partitions"] == 1
    assert c["default.replication.factor"] == 1
    assert c["log.retention.ms"] == 604800000
    assert c["log.segment.bytes"] == 1073741824
    assert c["message.max.bytes"] == 1048588
    assert c["unclean.leader.election.enable"] is False
    assert c["log.cleanup.policy"] == ["delete"]
    assert c["log.flush.interval.messages"] == 2**63 - 1
    assert c["broker.session.timeout.ms"] == 9000
    assert c.source("num.partitions") == "default"


def test_full_file_loads(tmp_path):
    f = tmp_path / "server.properties"
    f.write_text(
        "# a combined node\n"
        "process.roles=broker,controller\n"
        "node.id=1\n"
        "listeners=PLAINTEXT://127.0.0.1:9092,\\\n"
        "          GRPC://127.0.0.1:9192,\\\n"
        "          CONTROLLER://127.0.0.1:9093\n"
        "controller.quorum.voters: 1@127.0.0.1:19093\n"
        "controller.quorum.bootstrap.servers=127.0.0.1:9093\n"
        f"controller.quorum.secret={SECRET}\n"
        f"log.dirs={tmp_path}/a\n"  # one: a broker refuses several (issue 13)
        "num.partitions = 6\n"
        "auto.create.topics.enable=FALSE\n"
    )
    c = load_config(str(f), env={})
    assert c.is_broker and c.is_controller
    assert c.process_roles == frozenset({"broker", "controller"})
    assert c.node_id == 1
    assert c["num.partitions"] == 6 and c.source("num.partitions") == "file"
    assert c["auto.create.topics.enable"] is False
    assert c.log_dirs == [f"{tmp_path}/a"]
    assert c.metadata_log_dir == f"{tmp_path}/a"
    assert c.listener("CONTROLLER") == Endpoint("127.0.0.1", 9093)


PRECEDENCE = [
    # (file value, env value, overrides, expected, expected source)
    ("3", None, [], 3, "file"),
    ("3", "4", [], 4, "env"),
    ("3", "4", ["num.partitions=5"], 5, "override"),
    (None, "4", ["num.partitions=5", "num.partitions=7"], 7, "override"),
    (None, None, [], 1, "default"),
]


@pytest.mark.parametrize("file_value,env_value,overrides,expected,source", PRECEDENCE)
def test_precedence(tmp_path, file_value, env_value, overrides, expected, source):
    f = tmp_path / "server.properties"
    f.write_text("\n".join(BROKER) + "\n" + (f"num.partitions={file_value}\n" if file_value else ""))
    env = {"BROOK_CFG_NUM_PARTITIONS": env_value} if env_value else {}
    env["UNRELATED"] = "x"
    c = load_config(str(f), overrides, env=env)
    assert c["num.partitions"] == expected
    assert c.source("num.partitions") == source
    assert c.source("node.id") == "file"


def test_env_mapping():
    env = {
        "BROOK_CFG_LOG_DIRS": "/d1",
        "BROOK_CFG_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS": "h:1",
        "PATH": "/bin",
    }
    c = load(without(BROKER, "controller.quorum.bootstrap.servers"), env=env)
    assert c.log_dirs == ["/d1"] and c.source("log.dirs") == "env"
    assert c.controller_bootstrap == ["h:1"]


def test_no_key_contains_underscore():
    # the BROOK_CFG_* mapping ('_' -> '.') is exact only while this holds
    assert all("_" not in name for name in SERVER_KEYS)


def test_env_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("BROOK_CFG_NUM_PARTITIONS", "9")
    assert load_config(None, BROKER)["num.partitions"] == 9


ALIAS_CASES = [
    (["log.retention.hours=1"], 3_600_000),
    (["log.retention.minutes=2"], 120_000),
    (["log.retention.hours=-1"], -1),
    (["log.retention.hours=1", "log.retention.ms=5"], 5),  # the precise key wins in one source
    (["log.retention.ms=5", "log.retention.minutes=1"], 5),
    (["log.retention.hours=1", "log.retention.minutes=1"], 60_000),
]


@pytest.mark.parametrize("overrides,expected", ALIAS_CASES)
def test_retention_aliases(overrides, expected):
    assert load(BROKER + overrides)["log.retention.ms"] == expected


def test_alias_in_later_source_wins(tmp_path):
    f = tmp_path / "s.properties"
    f.write_text("\n".join(BROKER) + "\nlog.retention.ms=5\n")
    c = load_config(str(f), ["log.retention.hours=2"], env={})
    assert c["log.retention.ms"] == 7_200_000 and c.source("log.retention.ms") == "override"


def test_explicit_and_items():
    c = load(BROKER + ["num.partitions=3"])
    explicit = c.explicit()
    assert explicit["num.partitions"] == "3"
    assert explicit["listeners"] == "PLAINTEXT://127.0.0.1:9092,GRPC://127.0.0.1:9192"
    assert "log.segment.bytes" not in explicit
    assert dict(c.items())["log.segment.bytes"] == 1073741824
    assert len(list(c.items())) == len(SERVER_KEYS)


def test_config_is_immutable():
    c = load(BROKER)
    with pytest.raises(AttributeError):
        c.foo = 1  # type: ignore[attr-defined]
    c["log.dirs"].append("/x")
    assert c["log.dirs"] == ["/tmp/brook-logs"]
    with pytest.raises(KeyError, match="did you mean 'num.partitions'"):
        c["num.partition"]


def test_config_pickles():
    c = load(CONTROLLER)
    assert pickle.loads(pickle.dumps(c)) == c


# ------------------------------------------------------------------------------------------------
# Unknown keys and bad values

UNKNOWN = [
    (
        ["log.retension.ms=1"],
        "--override: unknown config key 'log.retension.ms' (did you mean 'log.retention.ms'?)",
    ),
    (["num.partition=1"], "unknown config key 'num.partition' (did you mean 'num.partitions'?)"),
    (["retention.ms=1"], "unknown config key 'retention.ms' (did you mean 'log.retention.ms'?)"),
    (["zzz.qqq=1"], "unknown config key 'zzz.qqq'"),
]


@pytest.mark.parametrize("overrides,expected", UNKNOWN)
def test_unknown_key(overrides, expected):
    message = error_of(load, BROKER + overrides)
    assert expected in message, message
    if "did you mean" not in expected:
        assert "did you mean" not in message


def test_unknown_key_from_env_and_file(tmp_path):
    message = error_of(load, BROKER, env={"BROOK_CFG_LOG_RETENSION_MS": "1"})
    assert message.startswith("BROOK_CFG_LOG_RETENSION_MS: unknown config key 'log.retension.ms'"), message
    f = tmp_path / "s.properties"
    f.write_text("process.roles=broker\n\nnum.partitons=3\n")
    message = error_of(load_config, str(f), env={})
    assert message == f"{f}:3: unknown config key 'num.partitons' (did you mean 'num.partitions'?)"


BAD_VALUES = [
    ("num.partitions", "abc", "invalid value 'abc' for 'num.partitions': expected an integer >= 1"),
    ("num.partitions", "0", "invalid value '0' for 'num.partitions': expected an integer >= 1"),
    ("num.partitions", "1.5", "expected an integer >= 1"),
    ("num.partitions", "99999999999", "expected an integer >= 1"),
    ("node.id", "-2", "invalid value '-2' for 'node.id': expected an integer >= 0"),
    ("leader.imbalance.per.broker.percentage", "101", "expected an integer between 0 and 100"),
    ("log.retention.ms", "-2", "expected an integer >= -1"),
    (
        "unclean.leader.election.enable",
        "yes",
        "invalid value 'yes' for 'unclean.leader.election.enable': expected true or false",
    ),
    ("compression.type", "brotli", "expected one of uncompressed, zstd, lz4, snappy, gzip, producer"),
    ("log.message.timestamp.type", "Now", "expected one of CreateTime, LogAppendTime"),
    ("log.cleanup.policy", "delete,purge", "expected a comma-separated list of delete, compact"),
    ("log.cleanup.policy", "", "expected a comma-separated list of delete, compact"),
    ("log.cleanup.policy", "delete,delete", "without repeats"),
    ("process.roles", "broker,admin", "expected broker, controller or broker,controller"),
    ("process.roles", "", "expected broker, controller or broker,controller"),
    ("listeners", "PLAINTEXT:/h:1", "is not NAME://host:port"),
    # Kafka listener names are free (issue 11); a malformed name is refused.
    ("listeners", "9KAFKA://h:1", "expected [A-Z][A-Z0-9_]*"),
    ("listener.security.protocol.map", "EXTERNAL:TLS", "expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ("controller.listener.names", "CTRL", "always called CONTROLLER"),
    ("inter.broker.listener.name", "9X", "is not a listener name"),
    ("ssl.client.auth", "maybe", "none"),
    ("super.users", "admin", "Type:name"),
    ("listeners", "PLAINTEXT://h:70000", "has port 70000"),
    ("listeners", "PLAINTEXT://h", "is not host:port"),
    ("listeners", "PLAINTEXT://h:1,PLAINTEXT://h:2", "listener PLAINTEXT appears twice"),
    ("listeners", "PLAINTEXT://:9092,GRPC://h:9092", "both use port 9092"),
    ("advertised.listeners", "PLAINTEXT://0.0.0.0:9092", "needs a reachable host"),
    ("controller.quorum.bootstrap.servers", "h:1,h", "'h' is not host:port"),
    ("log.dirs", "/a,/a", "a directory appears twice"),
    ("grpc.max.message.bytes", "1024", "expected an integer >= 4194304"),
]


@pytest.mark.parametrize("key,value,fragment", BAD_VALUES)
def test_bad_value(key, value, fragment):
    message = error_of(load, BROKER + [f"{key}={value}"])
    assert message.startswith("--override: ") and fragment in message, message


def test_bad_value_from_file_names_line(tmp_path):
    f = tmp_path / "s.properties"
    f.write_text("process.roles=broker\n# x\nnum.partitions=abc\n")
    message = error_of(load_config, str(f), env={})
    assert message == f"{f}:3: invalid value 'abc' for 'num.partitions': expected an integer >= 1"


def test_bad_override_syntax():
    assert "expected key=value" in error_of(load, BROKER + ["num.partitions"])


def test_value_with_newline_stays_one_line():
    error_of(load, BROKER + ["num.partitions=1\n2"])


def test_bools_case_insensitive():
    assert load(BROKER + ["delete.topic.enable=FALSE"])["delete.topic.enable"] is False
    assert load(BROKER + ["delete.topic.enable=True"])["delete.topic.enable"] is True


# ------------------------------------------------------------------------------------------------
# Roles and cross-key validation

ROLE_ERRORS = [
    ("no roles", without(BROKER, "process.roles"), "process.roles is not set"),
    ("no node id", without(BROKER, "node.id"), "node.id is not set"),
    (
        "controller without secret",
        without(CONTROLLER, "controller.quorum.secret"),
        "controller.quorum.secret is not set",
    ),
    (
        "combined without secret",
        without(COMBINED, "controller.quorum.secret"),
        "controller.quorum.secret is not set",
    ),
    (
        "controller without voters",
        without(CONTROLLER, "controller.quorum.voters"),
        "controller.quorum.voters is not set",
    ),
    (
        "controller not a voter",
        CONTROLLER + ["node.id=7"],
        "node.id 7 is not among controller.quorum.voters (ids 1,2,3)",
    ),
    (
        "controller without CONTROLLER listener",
        CONTROLLER + ["listeners=GRPC://127.0.0.1:1"],
        "listeners has no CONTROLLER",
    ),
    (
        "controller listener on the raft port",
        CONTROLLER + ["listeners=CONTROLLER://127.0.0.1:19093"],
        "use the same port",
    ),
    ("broker without PLAINTEXT", BROKER + ["listeners=GRPC://127.0.0.1:9192"], "listeners has no Kafka listener"),
    ("inter-broker listener not a listener", BROKER + ["inter.broker.listener.name=INTERNAL"],
     "inter.broker.listener.name is INTERNAL, which is not in listeners"),
    # Issue 11: no unauthenticated Kafka listener off loopback without the explicit opt-in.
    ("plaintext on every interface", BROKER + ["listeners=PLAINTEXT://:9092,GRPC://127.0.0.1:9192",
                                               "advertised.listeners=PLAINTEXT://h1:9092"],
     "does not authenticate clients and is not on loopback"),
    ("plaintext on a public address", BROKER + ["listeners=PLAINTEXT://10.0.0.5:9092,GRPC://127.0.0.1:9192"],
     "allow.unauthenticated.listeners=true"),
    ("ssl without required client auth", BROKER + [
        "listeners=SSL://10.0.0.5:9093,GRPC://127.0.0.1:9192", "ssl.keystore.location=/k.pem"],
     "listener SSL (SSL on 10.0.0.5) does not authenticate"),
    ("ssl without keystore", BROKER + ["listeners=SSL://127.0.0.1:9093,GRPC://127.0.0.1:9192"],
     "ssl.keystore.location is not set"),
    ("ssl client auth without truststore", BROKER + [
        "listeners=SSL://127.0.0.1:9093,GRPC://127.0.0.1:9192", "ssl.keystore.location=/k.pem",
        "ssl.client.auth=required"], "ssl.truststore.location is not set"),
    ("listener not in the protocol map", BROKER + ["listeners=EXTERNAL://127.0.0.1:9093,GRPC://127.0.0.1:9192"],
     "listener EXTERNAL has no security protocol"),
    ("broker without GRPC", BROKER + ["listeners=PLAINTEXT://127.0.0.1:9092"], "listeners has no GRPC"),
    (
        "broker without bootstrap",
        without(BROKER, "controller.quorum.bootstrap.servers"),
        "controller.quorum.bootstrap.servers is not set",
    ),
    ("broker without log dirs", BROKER + ["log.dirs="], "log.dirs is empty"),
    ("broker with several log dirs", BROKER + ["log.dirs=/a,/b"], "log.dirs lists 2 directories"),
    (
        "wildcard without advertised",
        BROKER + ["listeners=PLAINTEXT://:9092,GRPC://127.0.0.1:9192"],
        "add PLAINTEXT://<reachable host>:9092 to advertised.listeners",
    ),
    (
        "0.0.0.0 without advertised",
        BROKER + ["listeners=PLAINTEXT://127.0.0.1:9092,GRPC://0.0.0.0:9192"],
        "listener GRPC binds the wildcard host 0.0.0.0",
    ),
    (
        "advertised not a listener",
        BROKER + ["advertised.listeners=CONTROLLER://h:1"],
        "advertised.listeners names CONTROLLER, which is not in listeners",
    ),
    (
        "session <= heartbeat",
        BROKER + ["broker.session.timeout.ms=2000"],
        "broker.session.timeout.ms (2000) must exceed broker.heartbeat.interval.ms (2000)",
    ),
    (
        "fallback <= election",
        CONTROLLER + ["controller.quorum.leader.fallback.ms=300"],
        "controller.quorum.leader.fallback.ms (300) must exceed controller.quorum.election.timeout.ms (500)",
    ),
    (
        "fetch wait >= socket timeout",
        BROKER + ["replica.fetch.wait.max.ms=30000"],
        "must be below replica.socket.timeout.ms",
    ),
    (
        "group min > max",
        BROKER + ["group.min.session.timeout.ms=2000000"],
        "must not exceed group.max.session.timeout.ms",
    ),
    (
        "fetch response > grpc max",
        BROKER + ["replica.fetch.response.max.bytes=100000000"],
        "must be below grpc.max.message.bytes",
    ),
]


@pytest.mark.parametrize("overrides,fragment", [c[1:] for c in ROLE_ERRORS], ids=[c[0] for c in ROLE_ERRORS])
def test_role_errors(overrides, fragment):
    message = error_of(load, overrides)
    assert fragment in message, message


ROLE_OK = [
    ("broker", BROKER),
    ("controller", CONTROLLER),
    ("combined", COMBINED),
    (
        "insecure dev flag",
        without(CONTROLLER, "controller.quorum.secret") + ["controller.quorum.insecure.dev=true"],
    ),
    ("secret from env", without(CONTROLLER, "controller.quorum.secret")),  # with env below
    (
        "internal and external listeners (deploy/compose.yaml)",
        BROKER
        + [
            "listeners=INTERNAL://127.0.0.1:9092,EXTERNAL://127.0.0.1:19092,GRPC://127.0.0.1:9192",
            "advertised.listeners=INTERNAL://broker-1:9092,EXTERNAL://localhost:19092,GRPC://broker-1:9192",
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
            "inter.broker.listener.name=INTERNAL",
            "controller.listener.names=CONTROLLER",
        ],
    ),
    (
        "wildcard with advertised",
        BROKER
        + [
            "listeners=PLAINTEXT://:9092,GRPC://0.0.0.0:9192",
            "advertised.listeners=PLAINTEXT://h1:9092,GRPC://h1:9192",
            "allow.unauthenticated.listeners=true",
        ],
    ),
    (
        "authenticated listeners on every interface",
        BROKER
        + [
            "listeners=SASL_SSL://:9092,EXTERNAL://0.0.0.0:9093,GRPC://127.0.0.1:9192",
            "advertised.listeners=SASL_SSL://h1:9092,EXTERNAL://h1:9093",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,EXTERNAL:SSL",
            "ssl.keystore.location=/k.pem", "ssl.truststore.location=/ca.pem", "ssl.client.auth=required",
        ],
    ),
    ("min.insync > replication factor is allowed", BROKER + ["min.insync.replicas=3"]),
    ("roles case and spaces", COMBINED + ["process.roles= Broker , CONTROLLER"]),
    ("port 0 listeners", BROKER + ["listeners=PLAINTEXT://127.0.0.1:0,GRPC://127.0.0.1:0"]),
    ("ipv6", BROKER + ["listeners=PLAINTEXT://[::1]:9092,GRPC://[::1]:9192"]),
]


@pytest.mark.parametrize("overrides", [c[1] for c in ROLE_OK], ids=[c[0] for c in ROLE_OK])
def test_role_ok(overrides):
    env = {"BROOK_CFG_CONTROLLER_QUORUM_SECRET": SECRET}
    load(overrides, env=env)


def test_insecure_dev_flag_without_secret():
    c = load(without(CONTROLLER, "controller.quorum.secret") + ["controller.quorum.insecure.dev=true"])
    assert c.quorum_secret is None and c["controller.quorum.insecure.dev"] is True


def test_from_mapping_without_validation():
    c = Config.from_mapping({"num.partitions": "3"}, validate=False)
    assert c["num.partitions"] == 3 and c.process_roles == frozenset()
    with pytest.raises(ConfigError, match="process.roles is not set"):
        Config.from_mapping({"num.partitions": "3"})
    assert error_of(Config.from_mapping, {"num.partitions": "x"}, validate=False) == (
        "invalid value 'x' for 'num.partitions': expected an integer >= 1"
    )


# ------------------------------------------------------------------------------------------------
# Voters, bootstrap, listeners

VOTERS = [
    ("1@h:1,2@h:2", [Voter(1, "h", 1), Voter(2, "h", 2)]),
    (" 1@127.0.0.1:9093 , 2@127.0.0.2:9093 ", [Voter(1, "127.0.0.1", 9093), Voter(2, "127.0.0.2", 9093)]),
    ("3@[::1]:9093", [Voter(3, "::1", 9093)]),
    ("10@host-a.example.com:19093", [Voter(10, "host-a.example.com", 19093)]),
]


@pytest.mark.parametrize("text,expected", VOTERS)
def test_voters(text, expected):
    c = load(BROKER + [f"controller.quorum.voters={text}"])
    assert c.controller_voters == expected


BAD_VOTERS = [
    ("h:1", "entry 'h:1' is not id@host:port"),
    ("x@h:1", "entry 'x@h:1' is not id@host:port"),
    ("-1@h:1", "is not id@host:port"),
    ("1@h", "'h' is not host:port"),
    ("1@h:", "has no valid port"),
    ("1@h:0", "has port 0"),
    ("1@:9093", "needs a reachable host"),
    ("1@0.0.0.0:9093", "needs a reachable host"),
    ("1@::1:9093", "put an IPv6 host in brackets"),
    ("1@h:1,1@h:2", "node id 1 appears twice"),
    ("1@h:1,2@h:1", "address h:1 appears twice"),
    ("1@h h:1", "invalid host"),
]


@pytest.mark.parametrize("text,fragment", BAD_VOTERS)
def test_bad_voters(text, fragment):
    message = error_of(load, BROKER + [f"controller.quorum.voters={text}"])
    assert "for 'controller.quorum.voters':" in message and fragment in message, message


def test_listener_helpers():
    c = load(
        BROKER
        + [
            "listeners=PLAINTEXT://:9092,GRPC://10.0.0.5:9192",
            "advertised.listeners=PLAINTEXT://kafka-1:19092",
            "allow.unauthenticated.listeners=true",
        ]
    )
    assert c.listener("PLAINTEXT") == Endpoint("", 9092)
    assert c.listener("plaintext") == Endpoint("", 9092)
    assert c.advertised_listener("PLAINTEXT") == Endpoint("kafka-1", 19092)
    assert c.advertised_listener("GRPC") == Endpoint("10.0.0.5", 9192)
    assert c.listener("CONTROLLER") is None and c.advertised_listener("CONTROLLER") is None
    assert Endpoint("::1", 1).hostport == "[::1]:1" and Endpoint("h", 2).hostport == "h:2"


def test_bootstrap_and_metadata_dir():
    c = load(BROKER + ["log.dirs=/a"])
    assert c.controller_bootstrap == ["127.0.0.1:9093", "127.0.0.1:9094"]
    assert c.metadata_log_dir == "/a"
    assert load(without(CONTROLLER, "log.dirs") + ["log.dirs=/a,/b"]).metadata_log_dir == "/a"
    assert load(BROKER + ["metadata.log.dir=/m"]).metadata_log_dir == "/m"


# ------------------------------------------------------------------------------------------------
# Topic configs

TOPIC_OK = [
    ("retention.ms", "1000", "1000"),
    ("retention.ms", "-1", "-1"),
    ("retention.bytes", " 1048576 ", "1048576"),
    ("cleanup.policy", "compact", "compact"),
    ("cleanup.policy", "Compact, delete", "compact,delete"),
    ("min.insync.replicas", "2", "2"),
    ("unclean.leader.election.enable", "TRUE", "true"),
    ("message.timestamp.type", "logappendtime", "LogAppendTime"),
    ("compression.type", "ZSTD", "zstd"),
    ("segment.bytes", "1048576", "1048576"),
    ("flush.ms", "-1", "-1"),
    ("min.compaction.lag.ms", "0", "0"),
]


@pytest.mark.parametrize("name,value,normalized", TOPIC_OK)
def test_topic_config_ok(name, value, normalized):
    assert validate_topic_config(name, value) == normalized


TOPIC_BAD = [
    ("retention.mss", "1", "unknown topic config 'retention.mss' (did you mean 'retention.ms'?)"),
    ("log.retention.ms", "1", "unknown topic config 'log.retention.ms' (did you mean 'retention.ms'?)"),
    ("num.partitions", "1", "unknown topic config 'num.partitions'"),
    ("retention.ms", "soon", "invalid value 'soon' for 'retention.ms': expected an integer >= -1"),
    ("min.insync.replicas", "0", "invalid value '0' for 'min.insync.replicas': expected an integer >= 1"),
    ("cleanup.policy", "purge", "expected a comma-separated list of delete, compact"),
    ("unclean.leader.election.enable", "1", "expected true or false"),
    ("segment.bytes", "3000000000", "expected an integer >= 14"),
]


@pytest.mark.parametrize("name,value,expected", TOPIC_BAD)
def test_topic_config_bad(name, value, expected):
    assert expected in error_of(validate_topic_config, name, value)


def test_topic_defaults_from_server():
    c = load(BROKER + ["log.retention.hours=1", "log.cleanup.policy=compact", "min.insync.replicas=2"])
    d = topic_config_defaults(c)
    assert set(d) == set(TOPIC_KEYS)
    assert d["retention.ms"] == "3600000"
    assert d["cleanup.policy"] == "compact"
    assert d["min.insync.replicas"] == "2"
    assert d["max.message.bytes"] == "1048588"
    assert d["segment.ms"] == "604800000"
    # every resolved default is itself a valid topic value
    for name, value in d.items():
        assert validate_topic_config(name, value) == value
    m = topic_config_defaults({"log.segment.bytes": "1000"})
    assert m["segment.bytes"] == "1000" and m["retention.ms"] == "604800000"


def test_topic_keys_mirror_server_keys():
    for topic, server in TOPIC_TO_SERVER_DEFAULT.items():
        assert topic in TOPIC_KEYS and server in SERVER_KEYS
        assert TOPIC_KEYS[topic].type == SERVER_KEYS[server].type
        assert TOPIC_KEYS[topic].scope == "topic" and TOPIC_KEYS[topic].dynamic


def test_validate_server_config():
    assert validate_server_config("log.retention.hours", "2") == "7200000"
    assert validate_server_config("unclean.leader.election.enable", "True", dynamic_only=True) == "true"
    assert "cannot be changed at runtime" in error_of(
        validate_server_config, "node.id", "3", dynamic_only=True
    )
    assert "did you mean 'num.partitions'" in error_of(validate_server_config, "num.partiton", "3")


# ------------------------------------------------------------------------------------------------
# Schema and docs


def test_schema_sanity():
    for key in SERVER_KEYS.values():
        assert key.scope == "server" and key.doc
        if key.kafka_default is not None or key.brook_only:
            assert key.reason, f"{key.name} differs from Kafka without a reason"
        if not key.required and key.default is not None and key.type != "password":
            # every default round-trips through its own parser
            assert key.parse(key.format(key.default)) == key.default, key.name
    assert SERVER_KEYS["controller.quorum.election.timeout.ms"].kafka_default == 1000
    assert SERVER_KEYS["offsets.topic.num.partitions"].kafka_default == 50


def test_secret_never_printed():
    c = load(COMBINED)
    assert c.quorum_secret == SECRET
    assert isinstance(c["controller.quorum.secret"], Secret)
    for text in (
        repr(c),
        str(c),
        str(c.explicit()),
        str(list(c.items())),
        f"{c['controller.quorum.secret']}",
        repr(c["controller.quorum.secret"]),
        markdown_table(),
        validate_server_config("controller.quorum.secret", SECRET),
    ):
        assert SECRET not in text
    assert c.explicit()["controller.quorum.secret"] == "******"


def test_markdown_covers_every_key():
    md = markdown_table()
    for name in list(SERVER_KEYS) + list(TOPIC_KEYS):
        assert f"| `{name}` |" in md
    assert "Kafka's default: `1000`" in md  # election timeout differs, with its reason
    assert "3.5-4.8 s" in md


def test_docs_config_md_is_current():
    assert (ROOT / "docs" / "CONFIG.md").read_text() == markdown_table(), (
        "run: python -m cluster.config > docs/CONFIG.md"
    )


def test_module_main_prints_markdown():
    out = subprocess.run(
        [sys.executable, "-m", "cluster.config"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout == markdown_table()


def test_env_file_values_are_read_from_files(tmp_path):
    """BROOK_CFG_<KEY>_FILE (Docker secrets): the value is the file's text without its newline."""
    secret = tmp_path / "quorum"
    secret.write_text("s3cret-from-a-file\n")
    base = without(CONTROLLER, "controller.quorum.secret")
    c = load_config(None, base, env={"BROOK_CFG_CONTROLLER_QUORUM_SECRET_FILE": str(secret)})
    assert c["controller.quorum.secret"].reveal() == "s3cret-from-a-file"
    both = {"BROOK_CFG_CONTROLLER_QUORUM_SECRET_FILE": str(secret), "BROOK_CFG_CONTROLLER_QUORUM_SECRET": "x"}
    assert "set one of them" in error_of(load_config, None, CONTROLLER, env=both)
    missing = {"BROOK_CFG_SSL_KEY_PASSWORD_FILE": str(tmp_path / "nope")}
    assert "cannot read" in error_of(load_config, None, CONTROLLER, env=missing)
