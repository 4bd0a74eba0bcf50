"""The Kafka listeners of a broker, from its config: name, bind address and `ListenerSecurity`.

TLS material is PEM (Kafka's `ssl.keystore.type=PEM`): `ssl.keystore.location` holds the certificate
chain and the private key (or the key alone with `ssl.keystore.certificate.location` holding the
chain), `ssl.truststore.location` the CA certificates client certificates must chain to.
`ssl.client.auth` = required / requested / none maps to CERT_REQUIRED / CERT_OPTIONAL / CERT_NONE.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

from broker.kafka.server import ListenerSecurity
from broker.kafka.session import Authorizer
from cluster.errors import ConfigError
from cluster.image import MetadataImage
from cluster.security.principal import parse_mapping_rules

__all__ = ["authorizer_from_config", "kafka_listeners", "server_ssl_context"]

_CLIENT_AUTH = {"required": ssl.CERT_REQUIRED, "requested": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def server_ssl_context(config: Any) -> ssl.SSLContext:
    """A TLS 1.2+ server context from the node's ssl.* keys; ConfigError names the file that failed."""
    keystore = config["ssl.keystore.location"]
    chain = config["ssl.keystore.certificate.location"] or keystore
    password = config["ssl.key.password"]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(chain, keystore, password=password.reveal() if password else None)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load ssl.keystore.location {keystore!r}: {e}") from None
    client_auth = config["ssl.client.auth"]
    truststore = config["ssl.truststore.location"]
    if truststore:
        try:
            context.load_verify_locations(cafile=truststore)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load ssl.truststore.location {truststore!r}: {e}") from None
    context.verify_mode = _CLIENT_AUTH[client_auth]
    return context


def kafka_listeners(config: Any) -> list[tuple[str, str, int, ListenerSecurity]]:
    """(name, host, port, security) of every Kafka listener, in `listeners` order."""
    out = []
    rules = tuple(parse_mapping_rules(config["ssl.principal.mapping.rules"]))
    tls: ssl.SSLContext | None = None
    for name, endpoint in config.kafka_listeners().items():
        protocol = config.security_protocol(name)
        context = None
        if protocol.endswith("SSL"):
            tls = tls or server_ssl_context(config)
            context = tls
        mechanisms = tuple(config["sasl.enabled.mechanisms"]) if protocol.startswith("SASL_") else ()
        if protocol.startswith("SASL_") and not mechanisms:
            raise ConfigError(f"listener {name} is {protocol} but sasl.enabled.mechanisms is empty")
        out.append((name, endpoint.host, endpoint.port, ListenerSecurity(name, protocol, context, mechanisms, rules)))
    return out


def authorizer_from_config(config: Any, image: Callable[[], MetadataImage]) -> Authorizer | None:
    """None without `authorizer.class.name` (Kafka: no authorization), else the ACL authorizer."""
    if not config["authorizer.class.name"]:
        return None
    return Authorizer(image, config.super_users, bool(config["allow.everyone.if.no.acl.found"]))
