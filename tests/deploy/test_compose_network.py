"""deploy/compose.yaml (and compose.combined.yaml) as a real network (issue 13): a client outside the compose network produces and
consumes through the external listener, one inside through the internal one.

Both files are secured (issue 11, item 9): the secrets come from deploy/make-secrets.sh (the documented
one-time step) and are mounted as files, the one-shot admin-user service creates the SCRAM super user, and
the clients use SASL_SSL + SCRAM-SHA-512 with the CA. A client without credentials, or with a wrong
password, gets nothing; a user without ACLs is denied, and allowed once an ACL names it.

Each service runs in its own network namespace with its own address, its environment unchanged, and
service names that resolve only inside the compose network (tests/deploy/compose_netns.py). The Docker
host is a namespace of its own that cannot resolve service names and reaches the brokers only through
the published ports on its 127.0.0.1. A broker that answers a client with another listener's host or
port (e.g. `broker-1:19092`: the internal name with the external port) fails here, where
tests/deploy/test_compose.py, which maps every name to 127.0.0.1, cannot see it.

Needs root, iproute2 and iptables; skipped with the reason otherwise.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from cluster.chaos.netns import unavailable
from tests.deploy.compose_netns import ComposeNetwork, published
from tests.deploy.topology import (
    DEPLOY,
    ENV_PREFIX,
    SECURE_COMPOSE_FILES,
    compose_variables,
    job_services,
    load_compose,
    node_services,
    secret_files,
    service_env,
)

SECRET = compose_variables({"BROOK_QUORUM_SECRET": "test-secret-" + "cd" * 16})
REFUSED_TIMEOUT_S = 5.0
HEALTHY_WITHIN_S = 90.0
CLIENT_TIMEOUT_S = 30.0
RECORDS = 20

_reason = unavailable()
pytestmark = [pytest.mark.skipif(_reason is not None, reason=_reason or ""), pytest.mark.timeout(300)]


def _listeners(text: str) -> dict[str, tuple[str, int]]:
    out = {}
    for item in text.split(","):
        name, _, rest = item.strip().partition("://")
        host, _, port = rest.rpartition(":")
        if name:
            out[name.upper()] = (host, int(port))
    return out


def _brokers(compose: dict) -> list[str]:
    return [n for n in node_services(compose)
            if "broker" in service_env(compose, n, SECRET).get(ENV_PREFIX + "PROCESS_ROLES", "")]


def outside_bootstrap(compose: dict) -> str:
    """What a client on the Docker host uses: the brokers' published ports on localhost."""
    return ",".join(f"localhost:{host_port}" for n in _brokers(compose)
                    for _, host_port, _ in published(compose["services"][n]))


def inside_bootstrap(compose: dict) -> str:
    """What a container on the compose network uses: each broker's service name and the port of its
    Kafka listener advertised under a service name (the internal one), else the port its first Kafka
    listener binds inside the container."""
    out = []
    for n in _brokers(compose):
        env = service_env(compose, n, SECRET)
        bound = {k: v for k, v in _listeners(env[ENV_PREFIX + "LISTENERS"]).items() if k not in ("GRPC", "CONTROLLER")}
        advertised = _listeners(env.get(ENV_PREFIX + "ADVERTISED_LISTENERS", ""))
        internal = [advertised[k][1] for k in bound if k in advertised and advertised[k][0] not in ("localhost", "127.0.0.1")]
        out.append(f"{n}:{internal[0] if internal else next(iter(bound.values()))[1]}")
    return ",".join(out)


def _admin(compose: dict) -> dict[str, str]:
    """The admin user's files, as the host sees them: CA, certificate, key and SCRAM password."""
    (job,) = job_services(compose)
    files = secret_files(compose, job, SECRET)
    return {"ca": str(files["/run/secrets/ca.pem"]), "cert": str(files["/run/secrets/admin.pem"]),
            "key": str(files["/run/secrets/admin-key.pem"]),
            "password": files["/run/secrets/admin.password"].read_text().strip()}


def _cli(net: ComposeNetwork, *args: str) -> list[str]:
    """`brook` run in the compose network with the admin certificate."""
    admin = _admin(net.compose)
    bootstrap = service_env(net.compose, node_services(net.compose)[0], SECRET)[
        ENV_PREFIX + "CONTROLLER_QUORUM_BOOTSTRAP_SERVERS"]
    return [sys.executable, "-m", "cluster.cli.main", "--bootstrap-controller", bootstrap, "--tls-ca", admin["ca"],
            "--tls-cert", admin["cert"], "--tls-key", admin["key"], *args]


def scram(compose: dict, user: str = "admin", password: str | None = None) -> dict[str, str]:
    admin = _admin(compose)
    return {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": admin["password"] if password is None else password, "ssl.ca.location": admin["ca"]}


def _wait_healthy(net: ComposeNetwork, compose: dict) -> None:
    deadline = time.monotonic() + HEALTHY_WITHIN_S
    while True:
        assert not net.dead(), f"exited: {net.dead()}\n{net.log_tails()}"
        result = net.run_in(net.client_ns, _cli(net, "--timeout", "3", "cluster", "health"), 30)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, f"not healthy: {result.stdout}{result.stderr}\n{net.log_tails()}"
        time.sleep(1.0)


@pytest.fixture(scope="module", params=SECURE_COMPOSE_FILES)
def network(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    compose = load_compose(DEPLOY / request.param)
    net = ComposeNetwork(compose, SECRET, Path(tmp_path_factory.mktemp("compose-net")))
    try:
        net.start()
        _wait_healthy(net, compose)
        for job in job_services(compose):  # admin-user, once the controllers are ready
            result = net.run_job(job)
            assert result.returncode == 0, f"{job}: {result.stdout}{result.stderr}"
        yield net, compose
    finally:
        codes = net.close()
    failed = {key: code for key, code in codes.items() if code != 0 and not key.startswith("publish-")}
    assert not failed, f"{failed}\n{net.log_tails(40)}"


def test_service_names_resolve_only_inside_the_compose_network(network) -> None:
    net, _ = network
    service = _brokers(net.compose)[0]
    probe = [sys.executable, "-c", f"import socket; print(socket.gethostbyname({service!r}))"]
    inside = net.run_in(net.client_ns, probe, 30)
    assert inside.returncode == 0 and inside.stdout.strip() == net.addresses[service], inside
    outside = net.run_in(net.host_ns, probe, 30)
    assert outside.returncode != 0, f"the host resolved {service}: {outside.stdout}"


def test_a_client_outside_the_network_uses_the_published_external_listener(network) -> None:
    net, compose = network
    result = net.kafka_client(net.host_ns, outside_bootstrap(compose), "outside", RECORDS, CLIENT_TIMEOUT_S,
                              scram(compose))
    assert result["ok"], f"{result}\n{net.log_tails()}"


def test_a_client_inside_the_network_uses_the_internal_listener(network) -> None:
    net, compose = network
    result = net.kafka_client(net.client_ns, inside_bootstrap(compose), "inside", RECORDS, CLIENT_TIMEOUT_S,
                              scram(compose))
    assert result["ok"], f"{result}\n{net.log_tails()}"


def test_an_unauthenticated_client_is_refused(network) -> None:
    """From the host: no credentials (PLAINTEXT, or TLS without SASL) and a wrong password get not even
    Metadata (an authenticated listener answers nothing before SASL succeeds)."""
    net, compose = network
    bootstrap = outside_bootstrap(compose)
    for name, security in (("plaintext", {}),
                           ("tls-only", {"security.protocol": "SSL", "ssl.ca.location": _admin(compose)["ca"]}),
                           ("wrong-password", scram(compose, password="not-the-password"))):
        result = net.kafka_client(net.host_ns, bootstrap, f"refused-{name}", 3, REFUSED_TIMEOUT_S, security)
        assert not result["ok"] and result.get("stage") == "metadata", (name, result)
    assert any("SASL authentication error" in e or "Authentication failed" in e
               for e in result["client_errors"]), result


def test_a_user_without_acls_is_denied_until_an_acl_allows_it(network) -> None:
    net, compose = network
    bootstrap = outside_bootstrap(compose)
    made = net.run_in(net.client_ns, _cli(net, "users", "create", "app", "--mechanism", "SCRAM-SHA-512",
                                          "--password", "app-password-1234"), 60)
    assert made.returncode == 0, made.stderr
    # The admin creates the topic (the app user may not).
    created = net.run_in(net.client_ns, _cli(net, "topics", "create", "app-orders", "--partitions", "1"), 60)
    assert created.returncode == 0, created.stderr
    app = scram(compose, "app", "app-password-1234")
    denied = net.kafka_client(net.host_ns, bootstrap, "app-orders", 3, CLIENT_TIMEOUT_S, app)
    # Which denial comes first is a race inside librdkafka: the idempotent producer's InitProducerId
    # (no IdempotentWrite and no Write on any topic: CLUSTER_AUTHORIZATION_FAILED, as in Kafka) or
    # the produce's Metadata (TOPIC_AUTHORIZATION_FAILED). Either is the refusal under test. The first
    # arrives as a librdkafka fatal error, which can end the client process ("error": its stderr, with
    # librdkafka's "Fatal error: Broker: Cluster authorization failed") before it reports "failed".
    said = f"{denied.get('failed')} {denied.get('error')}".lower()
    assert not denied["ok"] and any(refusal in said for refusal in (
        "topic_authorization_failed", "cluster_authorization_failed", "topic authorization failed",
        "cluster authorization failed")), denied
    for target in (["--topic", "app-orders"], ["--group", "g-app-orders"]):
        acl = net.run_in(net.client_ns, _cli(net, "acls", "add", "--allow-principal", "User:app", "--operation",
                                             "all", *target), 60)
        assert acl.returncode == 0, acl.stderr
    allowed = net.kafka_client(net.host_ns, bootstrap, "app-orders", 3, CLIENT_TIMEOUT_S, app)
    assert allowed["ok"], f"{allowed}\n{net.log_tails()}"
