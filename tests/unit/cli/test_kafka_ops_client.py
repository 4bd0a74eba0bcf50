"""The pure helpers of `brook log-dirs` / `brook records delete` (cluster/cli/kafka_ops.py) and of
`--command-config` (cluster/cli/kafka_client.py), table-driven, without a network: log-dir rows and
their table, kafka-delete-records' offsets file, the argument types, Java .properties parsing, JAAS
credentials, the translation to librdkafka and kafka-python settings, and the one-line errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cluster.cli import kafka_client as kc
from cluster.cli import kafka_ops as ko
from cluster.cli.main import build_parser
from cluster.errors import BrookError, ErrorCode

# -- kafka_ops: log-dir rows --------------------------------------------------------------------------

def _dir(log_dir, topics, error_code=0):
    return {"log_dir": log_dir, "error_code": error_code,
            "topics": [{"name": name, "partitions": [{"partition_index": p, "partition_size": size, "offset_lag": lag,
                                                      "is_future_key": False} for p, size, lag in parts]}
                       for name, parts in topics]}


@pytest.mark.parametrize("results, topics, rows, errors", [
    ([], None, [], []),
    ([_dir("/d", [("b", [(1, 10, 0), (0, 5, 2)]), ("a", [(0, 7, 0)])])], None,
     [("/d", "a", 0, 7, 0), ("/d", "b", 0, 5, 2), ("/d", "b", 1, 10, 0)], []),
    ([_dir("/d", [("b", [(0, 5, 0)]), ("a", [(0, 7, 0)])])], ["a"], [("/d", "a", 0, 7, 0)], []),
    ([_dir("/d", [], error_code=int(ErrorCode.kafka_storage_error))], None, [],
     ["broker 3: log dir /d: KAFKA_STORAGE_ERROR"]),
    ([_dir("/x", [("t", [(0, 1, 0)])]), _dir("/a", [("t", [(0, 2, 0)])])], None,
     [("/a", "t", 0, 2, 0), ("/x", "t", 0, 1, 0)], []),
    ([{"log_dir": "/d", "error_code": 0, "topics": None}], None, [], []),
], ids=["empty", "sorted", "topic-filter", "dir-error", "two-dirs", "no-topics"])
def test_log_dir_rows(results, topics, rows, errors):
    got, bad = ko.log_dir_rows(3, results, topics)
    assert [(r["log_dir"], r["topic"], r["partition"], r["size_bytes"], r["offset_lag"]) for r in got] == rows
    assert all(r["broker"] == 3 and r["is_future"] is False for r in got)
    assert bad == errors


def test_log_dirs_text():
    assert ko.log_dirs_text([]) == "(no partitions)"
    text = ko.log_dirs_text([{"broker": 1, "log_dir": "/d", "topic": "t", "partition": 0, "size_bytes": 70,
                              "offset_lag": 0}])
    header, row = text.splitlines()
    assert header.split() == ["BROKER", "LOG-DIR", "TOPIC", "PARTITION", "SIZE", "OFFSET-LAG"]
    assert row.split() == ["1", "/d", "t", "0", "70", "0"]


# -- kafka_ops: kafka-delete-records' offsets file ---------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ('{"partitions": [{"topic": "t", "partition": 0, "offset": 5}]}', [("t", 0, 5)]),
    ('{"version": 1, "partitions": [{"topic": "t", "partition": 1, "offset": -1},'
     ' {"topic": "u", "partition": 0, "offset": 0}]}', [("t", 1, -1), ("u", 0, 0)]),
    ('{"partitions": [{"topic": "t", "partition": "2", "offset": "3"}]}', [("t", 2, 3)]),
])
def test_parse_offsets_json(text, want):
    assert ko.parse_offsets_json(text, "f.json") == want


@pytest.mark.parametrize("text, fragment", [
    ("not json", "cannot read f.json"),
    ("{}", "cannot read f.json"),
    ('{"partitions": [{"topic": "t", "partition": 0}]}', "cannot read f.json"),
    ('{"partitions": []}', "names no partition"),
    ('{"partitions": [{"topic": "t", "partition": -1, "offset": 0}]}', "bad partition or offset for t"),
    ('{"partitions": [{"topic": "t", "partition": 0, "offset": -2}]}', "bad partition or offset for t"),
    ('{"partitions": [{"topic": "t", "partition": "x", "offset": 0}]}', "cannot read f.json"),
])
def test_parse_offsets_json_errors(text, fragment):
    with pytest.raises(BrookError) as e:
        ko.parse_offsets_json(text, "f.json")
    assert fragment in e.value.message and "\n" not in e.value.message


@pytest.mark.parametrize("fn, text, want", [
    (ko._name_list, "a,b", ["a", "b"]), (ko._name_list, " a , ,b ", ["a", "b"]),
    (ko._id_list, "1,2", [1, 2]), (ko._id_list, "0", [0]),
])
def test_list_types(fn, text, want):
    assert fn(text) == want


@pytest.mark.parametrize("fn, text", [(ko._name_list, ","), (ko._id_list, "a"), (ko._id_list, "-1"),
                                      (ko._id_list, ",")])
def test_list_types_refuse(fn, text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        fn(text)


@pytest.mark.parametrize("code, name", [(0, "NONE"), (int(ErrorCode.kafka_storage_error), "KAFKA_STORAGE_ERROR"),
                                        (12345, "error 12345")])
def test_code_name(code, name):
    assert ko._code_name(code) == name


# -- kafka_client: Java .properties ----------------------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("a=1\nb = 2\n", {"a": "1", "b": "2"}),
    ("# c\n! c\n\n  a:1\nb 2\n", {"a": "1", "b": "2"}),
    ("a=x=y\n", {"a": "x=y"}),
    ("a=one \\\n    two\n", {"a": "one two"}),
    ('j=Module required \\\n  username="u" \\\n  password="p";\n', {"j": 'Module required username="u" password="p";'}),
    ("a=c:\\\\dir\n", {"a": "c:\\dir"}),
    ("a\\=b=c\n", {"a=b": "c"}),
    ("a=\n", {"a": ""}),
    ("a=1\na=2\n", {"a": "2"}),
], ids=["eq", "comments-colon-space", "eq-in-value", "continuation", "jaas", "escaped-backslash", "escaped-eq",
        "empty", "last-wins"])
def test_parse_properties(text, want):
    assert kc.parse_properties(text) == want


# -- kafka_client: JAAS -------------------------------------------------------------------------------

SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


@pytest.mark.parametrize("jaas, want", [
    (f'{SCRAM} required username="alice" password="s3cret";', ("SCRAM", "alice", "s3cret")),
    (f'{PLAIN} required username="a" password="p q";', ("PLAIN", "a", "p q")),
    (f'{SCRAM} required password="x\\"y" username=bob;', ("SCRAM", "bob", 'x"y')),
    (f'  {SCRAM}   required\n username="u"\n password="p"  ', ("SCRAM", "u", "p")),
])
def test_jaas_credentials(jaas, want):
    assert kc.jaas_credentials(jaas, "f") == want


@pytest.mark.parametrize("jaas, fragment", [
    ("nonsense", "is not 'LoginModule required"),
    ('com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;', "Krb5LoginModule is not supported"),
    (f'{SCRAM} required username="u";', "has no password"),
    (f"{SCRAM} required;", "has no username or password"),
])
def test_jaas_credentials_errors(jaas, fragment):
    with pytest.raises(BrookError) as e:
        kc.jaas_credentials(jaas, "f")
    assert fragment in e.value.message


# -- kafka_client: to librdkafka ---------------------------------------------------------------------

def pem(_path):
    return b"-----BEGIN CERTIFICATE-----\n"


def jks(_path):
    return b"\xfe\xed\xfe\xed"


JAAS = f'{SCRAM} required username="u" password="p";'


@pytest.mark.parametrize("props, head, want", [
    ({}, pem, {"security.protocol": "PLAINTEXT"}),
    ({"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": JAAS,
      "ssl.truststore.location": "/ca.pem", "ssl.truststore.type": "PEM"}, pem,
     {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p",
      "ssl.ca.location": "/ca.pem"}),
    ({"security.protocol": "SASL_PLAINTEXT", "sasl.jaas.config": JAAS}, pem,
     {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u",
      "sasl.password": "p"}),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p",
      "ssl.ca.location": "/ca"}, pem,
     {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p",
      "ssl.ca.location": "/ca"}),
    ({"security.protocol": "SSL", "ssl.truststore.location": "/ca.pem", "ssl.keystore.location": "/me.pem",
      "ssl.keystore.type": "PEM", "ssl.endpoint.identification.algorithm": ""}, pem,
     {"security.protocol": "SSL", "ssl.ca.location": "/ca.pem", "ssl.certificate.location": "/me.pem",
      "ssl.key.location": "/me.pem", "ssl.endpoint.identification.algorithm": "none"}),
    ({"security.protocol": "SSL", "ssl.keystore.location": "/me.p12", "ssl.keystore.type": "PKCS12",
      "ssl.keystore.password": "pw"}, jks,
     {"security.protocol": "SSL", "ssl.keystore.location": "/me.p12", "ssl.keystore.password": "pw"}),
    ({"security.protocol": "SSL", "ssl.truststore.certificates": "-----BEGIN X"}, pem,
     {"security.protocol": "SSL", "ssl.ca.pem": "-----BEGIN X"}),
    ({"bootstrap.servers": "x:1", "request.timeout.ms": "5"}, pem, {"security.protocol": "PLAINTEXT"}),
], ids=["empty", "java-sasl-ssl", "sasl-plaintext-default-mech", "librdkafka-plain", "java-ssl-pem-keystore",
        "pkcs12", "inline-ca", "java-only-keys"])
def test_librdkafka_security(props, head, want):
    conf, warnings = kc.librdkafka_security(props, "f", head)
    assert conf == want
    assert warnings == []


@pytest.mark.parametrize("props, head, fragment", [
    ({"security.protocol": "TLS"}, pem, "security.protocol=TLS is not one of"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI", "sasl.username": "u", "sasl.password": "p"}, pem,
     "sasl.mechanism=GSSAPI is not supported"),
    ({"security.protocol": "SASL_SSL"}, pem, "sasl.mechanism=GSSAPI is not supported"),  # Kafka's default
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256"}, pem, "needs a user and password"),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN", "sasl.jaas.config": JAAS}, pem,
     "does not match the sasl.jaas.config login module (SCRAM)"),
    ({"security.protocol": "SSL", "ssl.truststore.location": "/t.jks"}, jks, "is a JKS/PKCS12 truststore"),
    ({"security.protocol": "SSL", "ssl.truststore.location": "/t", "ssl.truststore.type": "JKS"}, pem,
     "is a JKS truststore"),
    ({"security.protocol": "SSL", "ssl.keystore.location": "/k", "ssl.keystore.type": "JKS"}, pem,
     "ssl.keystore.type=JKS is not supported"),
])
def test_librdkafka_security_errors(props, head, fragment):
    with pytest.raises(BrookError) as e:
        kc.librdkafka_security(props, "f", head)
    assert fragment in e.value.message and e.value.message.startswith("f: ")
    assert e.value.code == ErrorCode.invalid_config


@pytest.mark.parametrize("props, want_conf, fragment", [
    ({"sasl.mechansim": "PLAIN"}, {"security.protocol": "PLAINTEXT"}, "ignoring sasl.mechansim"),
    ({"security.protocol": "SSL", "sasl.username": "u"}, {"security.protocol": "SSL"}, "sasl.* settings ignored"),
    ({"security.protocol": "SASL_PLAINTEXT", "sasl.jaas.config": JAAS, "ssl.ca.location": "/ca"},
     {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "u",
      "sasl.password": "p"}, "ssl.ca.location ignored"),
])
def test_librdkafka_security_warnings(props, want_conf, fragment):
    conf, warnings = kc.librdkafka_security(props, "f", pem)
    assert conf == want_conf
    assert len(warnings) == 1 and fragment in warnings[0]


@pytest.mark.parametrize("security, want", [
    ({"security.protocol": "PLAINTEXT"}, {"security_protocol": "PLAINTEXT"}),
    ({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "u", "sasl.password": "p",
      "ssl.ca.location": "/ca"},
     {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "sasl_plain_username": "u",
      "sasl_plain_password": "p", "ssl_cafile": "/ca", "ssl_check_hostname": True}),
    ({"security.protocol": "SSL", "ssl.ca.location": "/ca", "ssl.certificate.location": "/c",
      "ssl.key.location": "/k", "ssl.endpoint.identification.algorithm": "none"},
     {"security_protocol": "SSL", "ssl_cafile": "/ca", "ssl_certfile": "/c", "ssl_keyfile": "/k",
      "ssl_check_hostname": False}),
    ({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p"},
     {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
      "sasl_plain_password": "p"}),
])
def test_kafka_python_options(security, want):
    assert kc.kafka_python_options(security) == want


@pytest.mark.parametrize("security", [
    {"security.protocol": "SSL", "ssl.keystore.location": "/k.p12"},
    {"security.protocol": "SSL", "ssl.ca.pem": "-----BEGIN"},
])
def test_kafka_python_options_refuse_what_it_cannot_read(security):
    with pytest.raises(BrookError) as e:
        kc.kafka_python_options(security)
    assert "PEM files" in e.value.message


def test_client_config_security_wins_over_defaults():
    conf = kc.client_config("b:1", 2.5, {"security.protocol": "SSL", "client.id": "mine"}, **{"acks": "1"})
    assert conf["bootstrap.servers"] == "b:1" and conf["socket.timeout.ms"] == 2500 and conf["acks"] == "1"
    assert conf["security.protocol"] == "SSL" and conf["client.id"] == "mine"
    assert conf["error_cb"] is kc.CONNECTION_ERRORS


# -- kafka_client: why a connection failed -----------------------------------------------------------

class _Err:
    def __init__(self, code, text, name):
        self._c, self._t, self._n = code, text, name

    def code(self):
        return self._c

    def str(self):
        return self._t

    def name(self):
        return self._n


AUTH = _Err(-169, "SASL authentication error: Authentication failed", "_AUTHENTICATION")
HINT = _Err(-195, "Disconnected: might be caused by incorrect security.protocol configuration", "_TRANSPORT")
NOISE = _Err(-187, "1/1 brokers are down", "_ALL_BROKERS_DOWN")


@pytest.mark.parametrize("seen, failure, want", [
    ([], -195, None),
    ([NOISE], -195, None),
    ([AUTH], -195, ("SASL authentication error: Authentication failed", "_AUTHENTICATION")),
    ([AUTH, NOISE], -185, ("SASL authentication error: Authentication failed", "_AUTHENTICATION")),
    ([HINT], -195, (HINT.str(), "_TRANSPORT")),
    ([HINT, AUTH], -187, (AUTH.str(), "_AUTHENTICATION")),
    ([AUTH], 3, None),  # a broker's error code is its own answer
], ids=["nothing", "noise", "auth", "auth-then-noise", "protocol-hint", "auth-over-hint", "broker-error"])
def test_connection_errors_cause(seen, failure, want):
    errors = kc.ConnectionErrors()
    polled = []
    errors.track(SimpleNamespace(poll=lambda t: polled.append(t)))
    for err in seen:
        errors(err)
    assert errors.cause(failure) == want
    assert polled == ([] if failure >= 0 else [0])


def test_kafka_error_uses_the_cause(monkeypatch):
    from cluster.cli.groups import _kafka_error

    errors = kc.ConnectionErrors()
    monkeypatch.setattr(kc, "CONNECTION_ERRORS", errors)
    transport = _Err(-195, "Failed to get metadata: Local: Broker transport failure", "_TRANSPORT")
    plain = _kafka_error(Exception(transport), "no metadata")
    assert "--command-config" in plain.message and plain.code == ErrorCode.network_exception
    errors(AUTH)
    e = _kafka_error(Exception(transport), "no metadata")
    assert e.message == "no metadata: SASL authentication error: Authentication failed (_AUTHENTICATION)"
    assert e.code == ErrorCode.sasl_authentication_failed


# -- kafka_client: the file --------------------------------------------------------------------------

def test_load_command_config(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    f = tmp_path / "c.properties"
    f.write_text(f"security.protocol=SSL\nssl.truststore.location={ca}\n")
    assert kc.load_command_config(str(f)) == ({"security.protocol": "SSL", "ssl.ca.location": str(ca)}, [])


@pytest.mark.parametrize("content, fragment", [
    (None, "cannot read --command-config {f}: No such file or directory"),
    (b"\xff\xfe", "not a UTF-8 text file"),
    (b"security.protocol=SSL\nssl.ca.location={missing}\n", "ssl.ca.location={missing}: cannot read the file"),
    (b"security.protocol=SSL\nssl.truststore.location={jks}\n", "is a JKS/PKCS12 truststore"),
])
def test_load_command_config_errors(tmp_path, content, fragment):
    f, missing, jks_file = tmp_path / "c.properties", tmp_path / "absent.pem", tmp_path / "t.jks"
    jks_file.write_bytes(b"\xfe\xed\xfe\xed\x00\x00")
    names = {"f": f, "missing": missing, "jks": jks_file}
    if content is not None:
        f.write_bytes(content.replace(b"{missing}", str(missing).encode()).replace(b"{jks}", str(jks_file).encode()))
    with pytest.raises(BrookError) as e:
        kc.load_command_config(str(f))
    assert fragment.format(**names) in e.value.message


# -- every Kafka-protocol verb takes --command-config ------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["topics", "create", "t"], ["topics", "list"], ["topics", "describe"], ["topics", "alter", "t"],
    ["topics", "delete", "t"], ["configs", "describe", "--topic", "t"],
    ["configs", "alter", "--topic", "t", "--set", "a=b"], ["produce", "t"], ["consume", "t"], ["groups", "list"],
    ["groups", "describe", "g"], ["groups", "delete", "g"],
    ["groups", "reset-offsets", "g", "--all-topics", "--to-earliest"], ["log-dirs"],
    ["records", "delete", "--topic", "t", "--before-offset", "0"],
    ["perf", "produce", "--topic", "t", "--num-records", "1", "--record-size", "1"],
    ["perf", "consume", "--topic", "t", "--messages", "1"],
])
def test_every_kafka_protocol_verb_takes_command_config(argv):
    args = build_parser().parse_args([*argv, "--command-config", "c.properties"])
    assert args.command_config == "c.properties"


@pytest.mark.parametrize("password", ["plain-Token_123", 'with"quote', "back\\slash", 'both\\"x'])
def test_dev_client_properties_round_trip(password, tmp_path):
    """`brook dev --secure` writes client.properties that --command-config reads back to the same password."""
    from cluster.cli.secure_dev import client_properties_text

    conf, warnings = kc.librdkafka_security(kc.parse_properties(client_properties_text(password, tmp_path / "ca.pem")),
                                            "f", pem)
    assert (conf["sasl.username"], conf["sasl.password"], conf["ssl.ca.location"]) == \
        ("admin", password, str(tmp_path / "ca.pem"))
    assert warnings == []
