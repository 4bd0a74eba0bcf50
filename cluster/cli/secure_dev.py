"""`brook dev --secure` (`make run SECURE=1`): the local cluster with every port authenticated.

Under <data-dir>/tls: a dev CA, one certificate per node (CN=broker-<id> for brokers, controller-<id>
for controllers; SANs localhost and 127.0.0.1), an `admin` certificate for the CLI, and admin.password
(0600) for the SCRAM user `admin`, and client.properties (0600: Kafka client properties for that user, for
`brook ... --bootstrap-server ... --command-config` and Kafka's tools' `--command-config`). The Kafka listener is SASL_SSL with SCRAM-SHA-512/256, the
StandardAuthorizer is on with `admin` as the super user, and gRPC runs with mutual TLS
(grpc.ssl.enabled). Restarting on the same --data-dir reuses all of it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["SecureDev", "prepare_secure"]


class SecureDev:
    def __init__(self, tls_dir: Path, ca: Path, admin_cert: Path, admin_key: Path, password_path: Path) -> None:
        self.tls_dir, self.ca, self.admin_cert, self.admin_key = tls_dir, ca, admin_cert, admin_key
        self.password_path = password_path

    @property
    def client_properties(self) -> Path:
        return self.tls_dir / "client.properties"

    @property
    def password(self) -> str:
        return self.password_path.read_text(encoding="utf-8").strip()

    def cli_env(self) -> dict[str, str]:
        return {"BROOK_TLS_CA": str(self.ca), "BROOK_TLS_CERT": str(self.admin_cert), "BROOK_TLS_KEY": str(self.admin_key)}

    def client_text(self, kafka: str) -> list[str]:
        return [
            "Security: SASL_SSL + SCRAM-SHA-512 on the Kafka listener, ACLs (super user admin), gRPC mutual TLS.",
            "  export " + " ".join(f"{k}={v}" for k, v in self.cli_env().items()),
            f"  kcat -b {kafka} -X security.protocol=SASL_SSL -X sasl.mechanism=SCRAM-SHA-512 "
            f"-X sasl.username=admin -X sasl.password=$(cat {self.password_path}) -X ssl.ca.location={self.ca} -L",
            f"  brook topics list --bootstrap-server {kafka} --command-config {self.client_properties}",
            "  brook users create app --password-file FILE && brook acls add --allow-principal User:app "
            "--operation all --topic demo",
        ]


def prepare_secure(cluster: Any) -> SecureDev:
    """Create (or reuse) the PKI and the admin password; set the cluster's security overrides."""
    from cluster.grpcutil import GrpcTls, configure_tls
    from cluster.security.certs import create_ca, issue, load_ca

    tls_dir = Path(cluster.data_dir) / "tls"
    ca = load_ca(tls_dir) if (tls_dir / "ca.pem").exists() else create_ca(tls_dir)
    hosts = ["localhost", "127.0.0.1"]

    def cert(name: str) -> tuple[Path, Path]:
        chain, key = tls_dir / f"{name}.pem", tls_dir / f"{name}-key.pem"
        if not (chain.exists() and key.exists()):
            issued = issue(ca, tls_dir, name, hosts=hosts)
            chain, key = issued.cert_path, issued.key_path
        return chain, key

    for node_id, roles in cluster.layout():
        chain, key = cert(f"broker-{node_id}" if "broker" in roles else f"controller-{node_id}")
        cluster.node_overrides[node_id] = {"ssl.keystore.location": str(key),
                                           "ssl.keystore.certificate.location": str(chain)}
    admin_chain, admin_key = cert("admin")
    password_path = tls_dir / "admin.password"
    if not password_path.exists():
        fd = os.open(password_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24) + "\n")
    cluster.kafka_listener = "SASL_SSL"
    cluster.overrides.update({
        "ssl.truststore.location": str(ca.cert_path),
        "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
        "authorizer.class.name": "StandardAuthorizer",
        "super.users": "User:admin;User:CN=admin",
        "grpc.ssl.enabled": "true",
        **cluster.overrides,
    })
    configure_tls(GrpcTls.from_files(str(ca.cert_path), str(admin_chain), str(admin_key)))
    secure = SecureDev(tls_dir, ca.cert_path, admin_chain, admin_key, password_path)
    write_client_properties(secure)
    return secure


def client_properties_text(password: str, ca: Path) -> str:
    """Kafka client properties for the SCRAM user `admin` (Kafka's tools' --command-config format)."""
    jaas = password.replace("\\", "\\\\").replace('"', '\\"')  # JAAS quoting, then .properties escaping
    escaped = jaas.replace("\\", "\\\\")
    return ("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{escaped}";\n'
            f"ssl.truststore.type=PEM\nssl.truststore.location={ca}\n")


def write_client_properties(secure: SecureDev) -> None:
    path = secure.client_properties
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(client_properties_text(secure.password, secure.ca))


def create_admin_user(secure: SecureDev, controller: Any) -> None:
    """The SCRAM user `admin` (a super user), with the password in <data-dir>/tls/admin.password."""
    reply = controller.upsert_scram_user("admin", secure.password, ("SCRAM-SHA-512", "SCRAM-SHA-256"))
    failed = [r.error_message for r in reply.results if r.error_code]
    if failed:
        raise RuntimeError(f"cannot create the admin user: {failed[0]}")
