"""Issue 11 acceptance: real clients over SASL_SSL + SCRAM-SHA-512 and over mTLS, and ACL refusals.

One single-node (combined) cluster per mode, with the StandardAuthorizer and `allow.everyone.if.no.acl.found`
off:
  - sasl: a SASL_SSL listener; users are SCRAM credentials created over gRPC (`brook users`' path);
  - mtls: an SSL listener with `ssl.client.auth=required`; the principal is the certificate's DN.
alice may READ/WRITE topics prefixed `sec-` and READ groups prefixed `g-alice`; bob has an ALLOW on
everything for `User:*` on `sec-shared` but a DENY on it, and no group ACL. confluent-kafka, kafka-python,
aiokafka and kcat produce and consume as alice; bob sees TOPIC_AUTHORIZATION_FAILED and
GROUP_AUTHORIZATION_FAILED. Certificates come from cluster.security.certs (a throwaway CA).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid

import pytest

from brookpb import admin_pb2 as apb
from cluster.cli.launcher import LocalCluster
from cluster.security.acl import AclOperation, AclPermission, PatternType, ResourceType
from cluster.security.certs import create_ca, issue
from tests.support import admin, create_topic, wait_until

PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
BASE = {
    "offsets.topic.replication.factor": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "group.initial.rebalance.delay.ms": "0",
    "authorizer.class.name": "StandardAuthorizer",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = create_ca(d)
    certs = {name: issue(ca, d, name) for name in ("admin", "alice", "bob")}
    server = issue(ca, d, "localhost", hosts=["localhost", "127.0.0.1"])
    return {"ca": str(ca.cert_path), "server": server, **certs}


class Mode:
    """A running secured cluster and how each user connects to it."""

    def __init__(self, name: str, cluster: LocalCluster, pki: dict) -> None:
        self.name, self.cluster, self.pki = name, cluster, pki
        self.bootstrap = cluster.kafka_bootstrap

    def principal(self, user: str) -> str:
        return f"User:{user}" if self.name == "sasl" else f"User:CN={user}"

    def confluent(self, user: str, password: str | None = None) -> dict:
        conf = {"bootstrap.servers": self.bootstrap, "ssl.ca.location": self.pki["ca"]}
        if self.name == "sasl":
            conf.update({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
                         "sasl.password": password or PASSWORDS[user]})
        else:
            conf.update({"security.protocol": "SSL", "ssl.certificate.location": str(self.pki[user].cert_path),
                         "ssl.key.location": str(self.pki[user].key_path)})
        return conf

    def kafka_python(self, user: str) -> dict:
        conf = {"bootstrap_servers": self.bootstrap, "ssl_cafile": self.pki["ca"]}
        if self.name == "sasl":
            conf.update(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=user,
                        sasl_plain_password=PASSWORDS[user])
        else:
            conf.update(security_protocol="SSL", ssl_certfile=str(self.pki[user].cert_path),
                        ssl_keyfile=str(self.pki[user].key_path))
        return conf

    def aiokafka(self, user: str) -> dict:
        from aiokafka.helpers import create_ssl_context

        if self.name == "sasl":
            return dict(bootstrap_servers=self.bootstrap, security_protocol="SASL_SSL",
                        ssl_context=create_ssl_context(cafile=self.pki["ca"]), sasl_mechanism="SCRAM-SHA-512",
                        sasl_plain_username=user, sasl_plain_password=PASSWORDS[user])
        return dict(bootstrap_servers=self.bootstrap, security_protocol="SSL",
                    ssl_context=create_ssl_context(cafile=self.pki["ca"], certfile=str(self.pki[user].cert_path),
                                                   keyfile=str(self.pki[user].key_path)))

    def kcat(self, user: str) -> list[str]:
        return [f"-X{k}={v}" for k, v in self.confluent(user).items() if k != "bootstrap.servers"]


def _acl(rtype, name, pattern, principal, op, perm) -> apb.AclEntry:
    return apb.AclEntry(resource_type=int(rtype), resource_name=name, pattern_type=int(pattern), principal=principal,
                        host="*", operation=int(op), permission=int(perm))


@pytest.fixture(scope="module", params=["sasl", "mtls"])
def mode(request, tmp_path_factory, pki):
    name = request.param
    overrides = dict(BASE)
    overrides.update({"ssl.keystore.location": str(pki["server"].key_path),
                      "ssl.keystore.certificate.location": str(pki["server"].cert_path),
                      "ssl.truststore.location": pki["ca"]})
    if name == "sasl":
        overrides.update({"sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN", "super.users": "User:admin"})
        listener = "SASL_SSL"
    else:
        overrides.update({"ssl.client.auth": "required", "super.users": "User:CN=admin"})
        listener = "SSL"
    cluster = LocalCluster(tmp_path_factory.mktemp(f"sec-{name}"), 1, 0, combined=True, overrides=overrides,
                           kafka_listener=listener)
    try:
        cluster.start(timeout_s=60)
        m = Mode(name, cluster, pki)
        with admin(cluster) as client:
            if name == "sasl":
                for user, password in PASSWORDS.items():
                    reply = client.upsert_scram_user(user, password, ("SCRAM-SHA-512", "SCRAM-SHA-256"))
                    assert all(r.error_code == 0 for r in reply.results), reply
            alice, bob = m.principal("alice"), m.principal("bob")
            entries = [
                _acl(ResourceType.TOPIC, "sec-", PatternType.PREFIXED, alice, AclOperation.ALL, AclPermission.ALLOW),
                _acl(ResourceType.GROUP, "g-alice", PatternType.PREFIXED, alice, AclOperation.READ,
                     AclPermission.ALLOW),
                _acl(ResourceType.TOPIC, "sec-shared", PatternType.LITERAL, "User:*", AclOperation.ALL,
                     AclPermission.ALLOW),
                _acl(ResourceType.TOPIC, "sec-shared", PatternType.LITERAL, bob, AclOperation.ALL,
                     AclPermission.DENY),
                # bob may see and read this topic (Metadata succeeds), so only Produce itself can refuse him.
                _acl(ResourceType.TOPIC, "sec-readonly", PatternType.LITERAL, bob, AclOperation.READ,
                     AclPermission.ALLOW),
            ]
            reply = client.create_acls(entries)
            assert all(r.error_code == 0 for r in reply.results), reply
        # The broker serves with the ACLs once its image has them.
        wait_until(lambda: _acl_count(m) == len(entries), 20, what="ACLs on the broker")
        yield m
    finally:
        cluster.stop()


def _acl_count(m: Mode) -> int:
    from confluent_kafka.admin import AclBindingFilter, AclPermissionType, AdminClient, ResourcePatternType
    from confluent_kafka.admin import AclOperation as COp
    from confluent_kafka.admin import ResourceType as CRes

    client = AdminClient(m.confluent("admin"))
    f = AclBindingFilter(CRes.ANY, None, ResourcePatternType.ANY, None, None, COp.ANY, AclPermissionType.ANY)
    try:
        return len(client.describe_acls(f, request_timeout=10).result(timeout=15))
    except Exception:
        return -1


def _want(tag: str, n: int = 50) -> list[tuple[bytes, bytes]]:
    return [(f"k{i}".encode(), f"{tag}-{i}".encode()) for i in range(n)]


# -- produce and consume as alice, with every client ------------------------------------------------


@pytest.mark.timeout(120)
def test_confluent_round_trip_with_group(mode):
    from confluent_kafka import Consumer, Producer

    topic = f"sec-confluent-{mode.name}"
    create_topic(mode.cluster, topic, rf=1)
    want = _want(topic)
    p = Producer({**mode.confluent("alice"), "acks": "all", "enable.idempotence": True})
    errors: list = []
    for k, v in want:
        p.produce(topic, key=k, value=v, partition=0, on_delivery=lambda err, msg: errors.append(err) if err else None)
    assert p.flush(30) == 0 and errors == []
    c = Consumer({**mode.confluent("alice"), "group.id": f"g-alice-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + 40
    while len(got) < len(want) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append((m.key(), m.value()))
    c.commit(asynchronous=False)
    c.close()
    assert got == want


@pytest.mark.timeout(120)
def test_kafka_python_round_trip(mode):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = f"sec-kp-{mode.name}"
    create_topic(mode.cluster, topic, rf=1)
    want = _want(topic)
    p = KafkaProducer(acks="all", **mode.kafka_python("alice"))
    for f in [p.send(topic, key=k, value=v, partition=0) for k, v in want]:
        f.get(timeout=30)
    p.close()
    c = KafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", consumer_timeout_ms=5000,
                      **mode.kafka_python("alice"))
    c.assign([TopicPartition(topic, 0)])
    c.seek_to_beginning()
    got = []
    for m in c:
        got.append((m.key, m.value))
        if len(got) == len(want):
            break
    c.close()
    assert got == want


@pytest.mark.timeout(120)
def test_aiokafka_round_trip(mode):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = f"sec-aio-{mode.name}"
    create_topic(mode.cluster, topic, rf=1)
    want = _want(topic)

    async def run():
        p = AIOKafkaProducer(acks="all", **mode.aiokafka("alice"))
        await p.start()
        try:
            for k, v in want:
                await p.send_and_wait(topic, key=k, value=v, partition=0)
        finally:
            await p.stop()
        c = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **mode.aiokafka("alice"))
        await c.start()
        try:
            c.assign([TopicPartition(topic, 0)])
            await c.seek_to_beginning()
            got: list = []
            deadline = time.monotonic() + 30
            while len(got) < len(want) and time.monotonic() < deadline:
                for msgs in (await c.getmany(timeout_ms=500)).values():
                    got.extend((m.key, m.value) for m in msgs)
            return got
        finally:
            await c.stop()

    assert asyncio.run(run()) == want


@pytest.mark.timeout(60)
def test_kcat_round_trip(mode):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        pytest.skip("kcat is not installed (.ci/run installs it)")
    topic = f"sec-kcat-{mode.name}"
    create_topic(mode.cluster, topic, rf=1)
    base = [kcat, "-b", mode.bootstrap, *mode.kcat("alice")]
    produced = subprocess.run([*base, "-P", "-t", topic, "-p", "0"], input="one\ntwo\nthree\n", text=True,
                              capture_output=True, timeout=20)
    assert produced.returncode == 0, produced.stderr
    out = subprocess.run([*base, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", "3", "-e"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout.split() == ["one", "two", "three"], out.stderr


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_denied_produce_is_topic_authorization_failed(mode):
    from confluent_kafka import KafkaError, Producer
    from kafka import KafkaProducer
    from kafka.errors import TopicAuthorizationFailedError

    create_topic(mode.cluster, "sec-shared", rf=1) if not _exists(mode, "sec-shared") else None
    p = Producer({**mode.confluent("bob"), "message.timeout.ms": 10000})
    errors: list = []
    p.produce("sec-shared", value=b"x", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors
    # alice (User:* ALLOW, no DENY) may write the same topic: the deny is bob's alone.
    ok = Producer(mode.confluent("alice"))
    done: list = []
    ok.produce("sec-shared", value=b"y", partition=0, on_delivery=lambda err, msg: done.append(err))
    ok.flush(20)
    assert done == [None]
    # Metadata allowed (READ implies DESCRIBE), Produce refused by the Produce handler itself.
    if not _exists(mode, "sec-readonly"):
        create_topic(mode.cluster, "sec-readonly", rf=1)
    p = Producer({**mode.confluent("bob"), "message.timeout.ms": 10000})
    errors.clear()
    p.produce("sec-readonly", value=b"x", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert [e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], errors
    # Without idempotence: InitProducerId would already be refused (bob may WRITE no topic at all).
    kp = KafkaProducer(max_block_ms=10000, enable_idempotence=False, **mode.kafka_python("bob"))
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            kp.send("sec-readonly", b"z", partition=0).get(timeout=15)
    finally:
        kp.close(timeout=5)


@pytest.mark.timeout(60)
def test_denied_group_is_group_authorization_failed(mode):
    from confluent_kafka import Consumer, KafkaError
    from kafka import KafkaConsumer
    from kafka.errors import GroupAuthorizationFailedError

    topic = "sec-shared"
    create_topic(mode.cluster, topic, rf=1) if not _exists(mode, topic) else None
    # alice may read the topic, but her group ACL covers g-alice* only.
    c = Consumer({**mode.confluent("alice"), "group.id": "other-group", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen = None
    deadline = time.monotonic() + 20
    while seen is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error():
            seen = m.error().code()
    c.close()
    assert seen == KafkaError.GROUP_AUTHORIZATION_FAILED
    kc = KafkaConsumer(topic, group_id="other-group", consumer_timeout_ms=8000, **mode.kafka_python("alice"))
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            kc.poll(timeout_ms=8000)
            kc.poll(timeout_ms=2000)
    finally:
        kc.close()


@pytest.mark.timeout(60)
def test_unauthenticated_client_is_refused(mode):
    """A wrong SCRAM password (SASL) or no client certificate (mTLS) gets no metadata at all."""
    from confluent_kafka import KafkaError, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    if mode.name == "sasl":
        conf = mode.confluent("alice", password="wrong")
    else:
        conf = {k: v for k, v in mode.confluent("alice").items() if not k.startswith("ssl.certificate")
                and not k.startswith("ssl.key")}
    with pytest.raises(KafkaException):
        AdminClient({**conf, "socket.timeout.ms": 5000}).list_topics(timeout=8)
    if mode.name == "sasl":
        errors: list = []
        p = Producer({**conf, "error_cb": errors.append})
        deadline = time.monotonic() + 15
        while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.monotonic() < deadline:
            p.poll(0.5)
        assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    # The same settings with the right credentials work (the refusal is about the credentials).
    assert AdminClient(mode.confluent("alice")).list_topics(timeout=10).brokers


def _exists(mode: Mode, topic: str) -> bool:
    with admin(mode.cluster) as client:
        return any(t.error_code == 0 for t in client.describe_topics([topic]).topics)


@pytest.mark.timeout(120)
def test_brook_users_and_acls_cli(mode, tmp_path):
    """`brook users` / `brook acls` over gRPC: a user created by the CLI authenticates and is authorized by
    a CLI-added ACL; after `brook acls remove` it is refused, after `brook users delete` it cannot log in."""
    import json
    import os
    import sys

    from confluent_kafka import KafkaError, Producer

    if mode.name != "sasl":
        pytest.skip("users are SCRAM credentials")

    def brook(*argv: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "BROOK_BOOTSTRAP_CONTROLLER": mode.cluster.controller_bootstrap}
        return subprocess.run([sys.executable, "-m", "cluster.cli.main", *argv], capture_output=True, text=True,
                              timeout=60, env=env)

    secret = tmp_path / "carol.password"
    secret.write_text("carol-secret\n")
    created = brook("users", "create", "carol", "--password-file", str(secret), "--mechanism", "SCRAM-SHA-512")
    assert created.returncode == 0 and "Traceback" not in created.stderr, created.stderr
    listed = json.loads(brook("users", "list", "-o", "json").stdout)
    assert {"mechanism": "SCRAM-SHA-512", "iterations": 8192} in next(u for u in listed if u["user"] == "carol")[
        "mechanisms"]
    topic = "cli-carol"
    create_topic(mode.cluster, topic, rf=1)
    added = brook("acls", "add", "--allow-principal", "User:carol", "--operation", "write", "--topic", topic)
    assert added.returncode == 0, added.stderr
    shown = json.loads(brook("acls", "list", "--topic", topic, "-o", "json").stdout)
    assert [(a["principal"], a["operation"], a["permission"]) for a in shown] == [("User:carol", "WRITE", "ALLOW")]

    def produce(password: str = "carol-secret") -> list:
        conf = {**mode.confluent("admin"), "sasl.username": "carol", "sasl.password": password,
                "message.timeout.ms": 8000}
        results: list = []
        p = Producer(conf)
        p.produce(topic, value=b"v", partition=0, on_delivery=lambda err, msg: results.append(err))
        p.flush(15)
        return [None if e is None else e.code() for e in results]

    wait_until(lambda: produce() == [None], 20, 0.5, "carol's first write")
    removed = brook("acls", "remove", "--principal", "User:carol", "--topic", topic)
    assert removed.returncode == 0 and "Removed" in removed.stdout, removed.stderr
    wait_until(lambda: produce() == [KafkaError.TOPIC_AUTHORIZATION_FAILED], 20, 0.5, "carol refused")
    deleted = brook("users", "delete", "carol")
    assert deleted.returncode == 0, deleted.stderr
    wait_until(lambda: produce() == [KafkaError._MSG_TIMED_OUT], 30, 0.5, "carol cannot log in")
    bad = brook("acls", "add", "--allow-principal", "carol", "--operation", "read", "--topic", topic)
    assert bad.returncode == 1 and bad.stderr.startswith("brook: error:") and "Traceback" not in bad.stderr


@pytest.mark.timeout(120)
def test_metadata_answers_with_the_listener_the_client_used(tmp_path_factory):
    """Two Kafka listeners on one broker, advertised under different names: Metadata and FindCoordinator
    answer each client with the address of the listener it connected to (DESIGN: Listeners)."""
    from confluent_kafka.admin import AdminClient

    from cluster.cli.launcher import free_ports

    cluster = LocalCluster(tmp_path_factory.mktemp("two-listeners"), 1, 0, combined=True, overrides=BASE)
    cluster.prepare()
    spec = cluster.node(1)
    (internal,) = free_ports(1, taken=spec.ports())
    cluster.node_overrides[1] = {
        "listeners": f"CONTROLLER://{spec.controller_address},PLAINTEXT://{spec.kafka_address},"
                     f"INTERNAL://127.0.0.1:{internal},GRPC://{spec.grpc_address}",
        "advertised.listeners": f"PLAINTEXT://{spec.kafka_address},INTERNAL://localhost:{internal}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
        "authorizer.class.name": "",
    }
    spec.config_path.write_text(cluster.render_properties(spec), encoding="utf-8")
    try:
        cluster.start(timeout_s=60)
        seen = {}
        for name, bootstrap in (("PLAINTEXT", spec.kafka_address), ("INTERNAL", f"127.0.0.1:{internal}")):
            brokers = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=15).brokers
            seen[name] = sorted((b.host, b.port) for b in brokers.values())
        assert seen == {"PLAINTEXT": [("127.0.0.1", spec.kafka_port)], "INTERNAL": [("localhost", internal)]}
    finally:
        cluster.stop()
