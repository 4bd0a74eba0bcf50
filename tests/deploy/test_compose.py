"""deploy/compose*.yaml and deploy/Dockerfile, validated without Docker (issue 6, point 2).

1. Both compose files parse (PyYAML) and have the promised shape: 3 controllers + 3 brokers, or 3
   combined nodes; named volumes holding every data dir; a restart policy; client ports published on
   127.0.0.1 only that match the advertised EXTERNAL listeners; an INTERNAL listener advertised by
   service name; settings the nodes must agree on, agreed.
2. The Dockerfile runs as a non-root user and its HEALTHCHECK is `brook cluster health` with the
   bootstrap taken from the environment every service sets.
3. Every service's environment (with ${BROOK_QUORUM_SECRET} set to a test value for the plaintext file,
   and the secrets from deploy/make-secrets.sh for the secure ones) passes
   `cluster.config.load_config(None, (), env)` and `brook server --check-config`.
4. compose.yaml and compose.combined.yaml are secure by default: SASL_SSL Kafka listeners with SCRAM, the
   StandardAuthorizer, gRPC mutual TLS with each node's own certificate, every secret a mounted file; only
   compose.plaintext.yaml opts in to unauthenticated listeners.
5. The same topology runs as local processes (tests/deploy/topology.py): healthy by the Dockerfile's own
   health command, 3 unfenced brokers, an active controller, a topic created with the cluster defaults
   and a produce/consume round trip.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.chaos.nemesis import compose_service
from cluster.config import load_config
from cluster.errors import ConfigError
from tests.deploy.compose_netns import published as compose_published
from tests.deploy.topology import (
    CLI_VARS,
    COMPOSE_FILES,
    DEPLOY,
    ENV_PREFIX,
    ROOT,
    SECURE_COMPOSE_FILES,
    InterpolationError,
    LocalNode,
    LocalTopology,
    compose_variables,
    job_services,
    load_compose,
    node_services,
    published_ports,
    secret_files,
    service_env,
    volume_mounts,
)

SECRET = compose_variables({"BROOK_QUORUM_SECRET": "test-secret-" + "ab" * 16})
HEALTHY_WITHIN_S = 45.0
# Settings that must be equal on every node that has them (the controllers resolve topic defaults).
CLUSTER_WIDE = ("CONTROLLER_QUORUM_BOOTSTRAP_SERVERS", "CONTROLLER_QUORUM_VOTERS", "CONTROLLER_QUORUM_SECRET",
                "CONTROLLER_QUORUM_SECRET_FILE", "SSL_TRUSTSTORE_LOCATION", "GRPC_SSL_ENABLED", "SUPER_USERS",
                "AUTHORIZER_CLASS_NAME", "SASL_ENABLED_MECHANISMS", "DEFAULT_REPLICATION_FACTOR", "MIN_INSYNC_REPLICAS", "OFFSETS_TOPIC_REPLICATION_FACTOR",
                "NUM_PARTITIONS", "UNCLEAN_LEADER_ELECTION_ENABLE")
EXPECTED = {
    "compose.yaml": {"controller": 3, "broker": 3, "broker,controller": 0},
    "compose.combined.yaml": {"controller": 0, "broker": 0, "broker,controller": 3},
    "compose.plaintext.yaml": {"controller": 3, "broker": 3, "broker,controller": 0},
}


def _services(name: str) -> list[tuple[str, str]]:
    return [(name, svc) for svc in node_services(load_compose(DEPLOY / name))]


ALL_SERVICES = [pair for name in COMPOSE_FILES for pair in _services(name)]


def _configs(name: str):
    compose = load_compose(DEPLOY / name)
    return compose, {svc: load_config(None, (), service_env(compose, svc, SECRET)) for svc in node_services(compose)}


def _listeners(text: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in text.split(","):
        lname, _, rest = item.strip().partition("://")
        host, _, port = rest.rpartition(":")
        out[lname] = (host, int(port))
    return out


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def _instruction(text: str, name: str) -> list[str]:
    """Every `NAME ...` instruction of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip()[len(name):].strip() for line in joined.splitlines() if line.strip().startswith(name + " ")]


def _healthcheck_command() -> str:
    (health,) = _instruction(_dockerfile(), "HEALTHCHECK")
    assert " CMD " in f" {health} ", health
    return health.split("CMD", 1)[1].strip()


# -- 1. structure ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_structure(name: str) -> None:
    compose, configs = _configs(name)
    services = {svc: compose["services"][svc] for svc in node_services(compose)}
    roles = [",".join(sorted(c.process_roles)) for c in configs.values()]
    assert {r: roles.count(r) for r in EXPECTED[name]} == EXPECTED[name], roles
    node_ids = [c.node_id for c in configs.values()]
    assert len(set(node_ids)) == len(node_ids), f"node ids repeat: {node_ids}"

    declared_volumes = set((compose.get("volumes") or {}).keys())
    used_volumes: list[str] = []
    host_ports: list[int] = []
    for svc_name, svc in services.items():
        where = f"{name}:{svc_name}"
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), f"{where}: no restart policy"
        assert svc.get("build", {}).get("dockerfile") == "deploy/Dockerfile", where
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        assert svc.get("hostname") == svc_name, f"{where}: hostname differs from the service name"
        # Named volumes (declared at the top level), and every data dir on one.
        mounts = volume_mounts(svc)
        assert mounts and all(v in declared_volumes for v in mounts.values()), f"{where}: {mounts} not named volumes"
        used_volumes += mounts.values()
        config = configs[svc_name]
        dirs = list(config.log_dirs) + ([config.metadata_log_dir] if config.is_controller else [])
        for d in dirs:
            assert any(d == t or d.startswith(t.rstrip("/") + "/") for t in mounts), f"{where}: {d} not on a volume"
        # Published client port == advertised EXTERNAL port, on the host's 127.0.0.1 only, mapped to the
        # EXTERNAL listener's port (issue 13).
        published = published_ports(svc)
        if config.is_broker:
            env = service_env(compose, svc_name, SECRET)
            listen = _listeners(env[ENV_PREFIX + "LISTENERS"])
            adv = _listeners(env[ENV_PREFIX + "ADVERTISED_LISTENERS"])
            host, port = adv["EXTERNAL"]
            assert host == "localhost" and port in published, f"{where}: advertised {host}:{port}, published {published}"
            assert published[port] == listen["EXTERNAL"][1], f"{where}: {port} publishes {published[port]}"
            assert all(ip == "127.0.0.1" for ip, _, _ in compose_published(svc)), f"{where}: {svc['ports']}"
            # Inter-node and in-network listeners are advertised by service name (reachable inside the
            # compose network) at the port they bind.
            for lname in ("GRPC", "INTERNAL"):
                assert adv[lname][0] == svc_name and adv[lname][1] == listen[lname][1], f"{where}: {lname}"
            host_ports += published
        else:
            assert not published, f"{where}: a controller-only node publishes {published}"
        if config.is_controller:
            env = service_env(compose, svc_name, SECRET)
            adv = _listeners(env[ENV_PREFIX + "ADVERTISED_LISTENERS"])
            assert adv["CONTROLLER"][0] == svc_name, where
    assert len(set(host_ports)) == len(host_ports), f"published ports repeat: {host_ports}"
    assert sorted(used_volumes) == sorted(set(used_volumes)) == sorted(declared_volumes), "volume per node"

    # The quorum: voters are exactly the controller services; the bootstrap list their CONTROLLER listeners.
    controllers = {svc: c for svc, c in configs.items() if c.is_controller}
    for svc, c in configs.items():
        if c.is_controller:
            assert {(v.node_id, v.host) for v in c.controller_voters} == \
                {(cc.node_id, s) for s, cc in controllers.items()}, svc
        boot = {str(ep) for ep in c.controller_bootstrap}
        assert boot == {cc.advertised_listener("CONTROLLER").hostport for cc in controllers.values()}, svc

    # Settings the nodes must agree on.
    envs = {svc: service_env(compose, svc, SECRET) for svc in services}
    for key in CLUSTER_WIDE:
        values = {e.get(ENV_PREFIX + key) for e in envs.values()}
        values.discard(None) if key in ("CONTROLLER_QUORUM_VOTERS", "CONTROLLER_QUORUM_SECRET",
                                        "CONTROLLER_QUORUM_SECRET_FILE") else None
        assert len(values) <= 1, f"{name}: {ENV_PREFIX}{key} differs between services: {values}"
    for key in ("default.replication.factor", "min.insync.replicas", "offsets.topic.replication.factor"):
        assert {c[key] for c in configs.values()} == {configs[next(iter(configs))][key]}, key
    assert all(c["default.replication.factor"] == 3 and c["min.insync.replicas"] == 2 for c in configs.values())


def test_compose_service_names_match_the_chaos_tester() -> None:
    """`brook chaos run --target compose` addresses services by node id (cluster/chaos/nemesis.py)."""
    compose, configs = _configs("compose.yaml")
    for svc, config in configs.items():
        assert compose_service(config.node_id) == svc


@pytest.mark.parametrize("name", SECURE_COMPOSE_FILES)
def test_compose_is_secure_by_default(name: str) -> None:
    """Every Kafka listener authenticates (SASL_SSL + SCRAM), ACLs decide, gRPC is mutual TLS with the
    node's own certificate, and no secret is written in the file: each is a mounted file."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    compose, configs = _configs(name)
    raw_text = (DEPLOY / name).read_text()
    assert "ALLOW_UNAUTHENTICATED_LISTENERS" not in raw_text and "PLAINTEXT" not in raw_text.replace(
        "compose.plaintext.yaml", ""), name
    declared = compose.get("secrets") or {}
    assert declared and all(str(d["file"]).startswith("${BROOK_SECRETS_DIR:-./secrets}/") for d in declared.values())
    for svc, config in configs.items():
        where = f"{name}:{svc}"
        raw_env = compose["services"][svc]["environment"]
        kafka = config.kafka_listeners()
        if config.is_broker:
            assert kafka and all(config.security_protocol(lname) == "SASL_SSL" for lname in kafka), where
            assert set(config["sasl.enabled.mechanisms"]) <= {"SCRAM-SHA-512", "SCRAM-SHA-256"}, where
        assert not config["allow.unauthenticated.listeners"], where
        assert config["grpc.ssl.enabled"] and config["authorizer.class.name"] == "StandardAuthorizer", where
        assert not config["allow.everyone.if.no.acl.found"], where
        assert {"User:admin", "User:CN=admin"} <= config.super_users, where
        # Secrets only as mounted files: the quorum secret through _FILE, TLS material from /run/secrets.
        if config.is_controller:
            assert ENV_PREFIX + "CONTROLLER_QUORUM_SECRET" not in raw_env, where
            assert raw_env[ENV_PREFIX + "CONTROLLER_QUORUM_SECRET_FILE"].startswith("/run/secrets/"), where
        for key in ("SSL_KEYSTORE_LOCATION", "SSL_KEYSTORE_CERTIFICATE_LOCATION", "SSL_TRUSTSTORE_LOCATION"):
            assert raw_env[ENV_PREFIX + key].startswith("/run/secrets/"), f"{where}: {key}"
        # The certificate a node mounts is its own: CN=broker-<node.id> for brokers (grpc.ssl.enabled
        # checks it at start), controller-<node.id> otherwise; it names the service for TLS host checks.
        cert = x509.load_pem_x509_certificate(Path(config["ssl.keystore.certificate.location"]).read_bytes())
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == (f"broker-{config.node_id}" if config.is_broker else f"controller-{config.node_id}"), where
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName)
        assert svc in sans and "localhost" in sans, f"{where}: {sans}"
        # The CLI in the container (the image's HEALTHCHECK) presents the node's certificate.
        env = service_env(compose, svc, SECRET)
        assert env["BROOK_TLS_CERT"] == config["ssl.keystore.certificate.location"], where
    # The one-shot admin-user job creates the SCRAM super user from a mounted password file, as CN=admin.
    (job,) = job_services(compose)
    env = service_env(compose, job, SECRET)
    mounted = secret_files(compose, job, SECRET)
    command = compose["services"][job]["command"]
    assert command[command.index("users") + 1:command.index("users") + 3] == ["create", "admin"], command
    assert mounted[command[command.index("--password-file") + 1]].read_text().strip()
    cert = x509.load_pem_x509_certificate(Path(env["BROOK_TLS_CERT"]).read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert set(compose["services"][job]["depends_on"]) == {s for s, c in configs.items() if c.is_controller}


def test_plaintext_compose_is_an_explicit_opt_in() -> None:
    compose, configs = _configs("compose.plaintext.yaml")
    for svc, config in configs.items():
        if config.kafka_listeners():
            assert config["allow.unauthenticated.listeners"], svc
    # The opt-in is what lets it start: without it every broker's config is refused.
    broker = next(s for s, c in configs.items() if c.is_broker)
    env = service_env(compose, broker, SECRET)
    del env[ENV_PREFIX + "ALLOW_UNAUTHENTICATED_LISTENERS"]
    with pytest.raises(ConfigError, match="does not authenticate clients"):
        load_config(None, (), env)


def test_missing_secret_files_stop_the_nodes() -> None:
    """Without the one-time `make secrets` step, a secure node refuses to start with the file's name."""
    compose = load_compose(DEPLOY / "compose.yaml")
    empty = compose_variables({"BROOK_SECRETS_DIR": "/nonexistent/brook-secrets"})
    with pytest.raises(ConfigError, match="BROOK_CFG_CONTROLLER_QUORUM_SECRET_FILE: cannot read '/nonexistent"):
        load_config(None, (), service_env(compose, "controller-1", empty))


@pytest.mark.parametrize("name", [n for n in COMPOSE_FILES if n not in SECURE_COMPOSE_FILES])
def test_quorum_secret_is_required(name: str) -> None:
    compose = load_compose(DEPLOY / name)
    controller = next(s for s in compose["services"]
                      if "controller" in service_env(compose, s, SECRET)[ENV_PREFIX + "PROCESS_ROLES"])
    with pytest.raises(InterpolationError, match="BROOK_QUORUM_SECRET"):
        service_env(compose, controller, {})
    # Set but empty is refused by Brook itself (compose's :? also refuses an empty value).
    with pytest.raises(InterpolationError):
        service_env(compose, controller, {"BROOK_QUORUM_SECRET": ""})


def test_dockerfile() -> None:
    text = _dockerfile()
    (base,) = _instruction(text, "FROM")
    assert base.startswith("python:3.11") and "slim" in base, base
    users = _instruction(text, "USER")
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:"), users
    assert re.search(rf"useradd .*\b{re.escape(users[-1])}\b", text), "the USER is created"
    (entry,) = _instruction(text, "ENTRYPOINT")
    assert entry == '["brook", "server"]', entry
    (volume,) = _instruction(text, "VOLUME")
    for name in COMPOSE_FILES:
        compose = load_compose(DEPLOY / name)
        for svc in node_services(compose):
            assert f'"{next(iter(volume_mounts(compose["services"][svc])))}"' in volume
    command = _healthcheck_command()
    argv = shlex.split(command.split(">", 1)[0].split("||", 1)[0])
    assert argv[0] == "brook" and argv[-2:] == ["cluster", "health"], argv
    bootstrap = argv[argv.index("--bootstrap-controller") + 1]
    var = re.fullmatch(r"\$\{?(\w+)\}?", bootstrap)
    assert var, f"the health check's bootstrap should come from the environment, got {bootstrap!r}"
    for name in COMPOSE_FILES:
        compose = load_compose(DEPLOY / name)
        for svc in node_services(compose):
            assert var.group(1) in service_env(compose, svc, SECRET), f"{name}:{svc} does not set {var.group(1)}"


def test_make_targets_use_the_compose_file() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^up:\n\tdocker compose -f deploy/compose.yaml up", makefile, re.M)
    assert re.search(r"^down:\n\tdocker compose -f deploy/compose.yaml down", makefile, re.M)


# -- 2. every service's configuration ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "service"), ALL_SERVICES)
def test_service_config_loads(name: str, service: str) -> None:
    compose = load_compose(DEPLOY / name)
    env = service_env(compose, service, SECRET)
    assert all(k.startswith(ENV_PREFIX) or k in CLI_VARS for k in env), "only BROOK_CFG_* and BROOK_TLS_* variables"
    config = load_config(None, (), env)
    assert config.node_id >= 0 and config.process_roles
    if config.is_controller:
        secret_file = env.get(ENV_PREFIX + "CONTROLLER_QUORUM_SECRET_FILE")
        expected = Path(secret_file).read_text().strip() if secret_file else SECRET["BROOK_QUORUM_SECRET"]
        assert config.quorum_secret == expected and len(expected) >= 16
    # A missing or broken value is caught the same way (the check is not vacuous).
    broken = dict(env, **{ENV_PREFIX + "NODE_ID": "not-a-number"})
    with pytest.raises(ConfigError, match="BROOK_CFG_NODE_ID"):
        load_config(None, (), broken)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_service_configs_pass_check_config(name: str, tmp_path: Path) -> None:
    """`brook server --check-config` with each service's environment, as `docker compose run --rm SERVICE
    --check-config /dev/null` would run it in the image."""
    topology = LocalTopology(load_compose(DEPLOY / name), SECRET, tmp_path)
    compose = load_compose(DEPLOY / name)
    procs = {}
    for svc in node_services(compose):
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        env.update(service_env(compose, svc, SECRET))
        env["PYTHONPATH"] = str(ROOT)
        procs[svc] = subprocess.Popen([sys.executable, "-m", "cluster.cli.main", "server", "--check-config",
                                       os.devnull], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for svc, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, f"{name}:{svc}: {err.strip()}"
        config = load_config(None, (), service_env(compose, svc, SECRET))
        assert f"valid ({','.join(sorted(config.process_roles))}, node.id={config.node_id})" in out, out
    # The translated (local) configs are valid too.
    for node in topology.nodes.values():
        result = topology.check_config(node)
        assert result.returncode == 0, f"{name}:{node.service} (local): {result.stderr.strip()}"
    bad = next(iter(topology.nodes.values()))
    # Kafka listener names are free since issue 11; a malformed one is still refused.
    bad.env[ENV_PREFIX + "LISTENERS"] = "9KAFKA://0.0.0.0:9092"
    result = topology.check_config(bad)
    assert result.returncode == 1 and "listener name '9KAFKA'" in result.stderr, result.stderr


# -- 3. the same topology as local processes ----------------------------------------------------------


def _health_command_ok(topology: LocalTopology) -> tuple[bool, str]:
    """Run the Dockerfile's HEALTHCHECK command with a node's (translated) environment."""
    node = next(iter(topology.nodes.values()))
    env = topology.process_env(node)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    result = subprocess.run(["sh", "-c", _healthcheck_command().replace(">/dev/null", "")], env=env,
                            capture_output=True, text=True, timeout=30)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def _service_health_ok(topology: LocalTopology, node: LocalNode) -> tuple[bool, str]:
    """Run the compose file's per-service healthcheck (CMD form) with the node's translated environment."""
    test = topology.compose["services"][node.service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", test
    result = subprocess.run([sys.executable, *test[2:]], env=topology.process_env(node), capture_output=True,
                            text=True, timeout=30)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_topology_runs_as_processes(name: str, tmp_path: Path) -> None:
    from brookpb import admin_pb2 as apb
    from cluster.client import ControllerClient, PartitionRouter
    from cluster.grpcutil import GrpcTls, configure_tls
    from storage.batch import build_batch, decode_batch, iter_batches
    from storage.records import Record

    topology = LocalTopology(load_compose(DEPLOY / name), SECRET, tmp_path)
    kafka_security: dict[str, str] = {}
    try:
        topology.start()
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        ok, last = False, ""
        while not ok:
            assert not topology.dead(), f"exited: {topology.dead()}\n{topology.log_tails()}"
            assert time.monotonic() < deadline, f"not healthy after {HEALTHY_WITHIN_S}s: {last}\n{topology.log_tails()}"
            ok, last = _health_command_ok(topology)
            if not ok:
                time.sleep(1.0)
        for job in job_services(topology.compose):  # admin-user: as compose runs it, once
            result = topology.run_job(job)
            assert result.returncode == 0, f"{job}: {result.stdout}{result.stderr}"
            job_env = service_env(topology.compose, job, SECRET)
            # This process is the CLI with the admin certificate from here on (reset in `finally`).
            configure_tls(GrpcTls.from_files(job_env["BROOK_TLS_CA"], job_env["BROOK_TLS_CERT"],
                                             job_env["BROOK_TLS_KEY"]))
            password = secret_files(topology.compose, job, SECRET)["/run/secrets/admin.password"]
            kafka_security = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                              "sasl.username": "admin", "sasl.password": password.read_text().strip(),
                              "ssl.ca.location": job_env["BROOK_TLS_CA"]}
        with ControllerClient(topology.controller_bootstrap, timeout_s=5.0) as admin:
            cluster = admin.describe_cluster()
            assert cluster.active_controller_id >= 0
            assert sorted(b.broker_id for b in cluster.brokers if not b.fenced) == topology.broker_ids
            # No replication factor: the cluster default (3 in both files) applies, on the controller.
            reply = admin.create_topics([apb.CreateTopicRequest(name="roundtrip", partitions=2,
                                                                replication_factor=-1)])
            assert reply.results[0].error_code == 0, reply
            info = admin.describe_topics(["roundtrip"]).topics[0]
            assert [len(p.replicas) for p in info.partitions] == [3, 3], info
            values = [f"value-{i}".encode() for i in range(20)]
            with PartitionRouter(admin, timeout_s=5.0) as router:
                deadline = time.monotonic() + 20
                while True:
                    batch = build_batch([Record(key=None, value=v, timestamp_ms=int(time.time() * 1000))
                                         for v in values])
                    produced = router.produce("roundtrip", 1, batch, acks=-1, timeout_ms=5000)
                    if produced.error_code == 0 or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)  # leaders elected, followers not yet in the ISR
                assert produced.error_code == 0, produced
                fetched = router.fetch("roundtrip", 1, produced.base_offset, max_wait_ms=200)
                assert fetched.error_code == 0, fetched
                got = [r.value for _, raw in iter_batches(fetched.records) for r in decode_batch(bytes(raw))[1]]
                assert got == values
        ok, last = _health_command_ok(topology)
        assert ok, last
        for node in topology.nodes.values():  # the compose per-node health check, with the node's env
            ok, last = _service_health_ok(topology, node)
            assert ok, f"{node.service}: {last}"
        _kafka_roundtrip(topology, kafka_security)
    finally:
        configure_tls(None)
        codes = topology.stop()
        assert not [n for n in topology.nodes.values() if n.proc and n.proc.poll() is None]
    assert all(code == 0 for code in codes.values()), f"unclean exits {codes}\n{topology.log_tails()}"


def _kafka_roundtrip(topology: LocalTopology, security: dict[str, str]) -> None:
    """A Kafka client through the advertised EXTERNAL listeners (the host's view, translated); over SASL_SSL
    + SCRAM as the admin user for the secure files."""
    confluent_kafka = pytest.importorskip("confluent_kafka")
    bootstrap = topology.kafka_bootstrap()
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all", **security,
                                         "enable.idempotence": True, "message.timeout.ms": 15000})
    delivered: list[object] = []
    for i in range(5):
        producer.produce("roundtrip", value=f"kafka-{i}".encode(), partition=0,
                         on_delivery=lambda err, msg: delivered.append(err or msg.offset()))
    assert producer.flush(20) == 0
    assert all(isinstance(d, int) for d in delivered), delivered
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "deploy-test", **security,
                                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.assign([confluent_kafka.TopicPartition("roundtrip", 0, 0)])
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(got) < 5 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
        assert got == [f"kafka-{i}".encode() for i in range(5)]
    finally:
        consumer.close()
