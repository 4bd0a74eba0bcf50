"""Security keys: listeners' protocols, TLS (PEM), SASL, the authorizer and Brook's opt-in for an
unauthenticated non-loopback listener (issue 11). `cluster.config.schema` appends them to the schema.
"""

from __future__ import annotations

from cluster.config.values import (
    Choice,
    ConfigKey,
    Custom,
    ListOf,
    _check_mapping_rules,
    _check_principals,
    _check_protocol_map,
    _key,
)

__all__ = ["SECURITY_KEYS"]

_AUTHORIZERS = ("", "StandardAuthorizer", "org.apache.kafka.metadata.authorizer.StandardAuthorizer")

SECURITY_KEYS: list[ConfigKey] = [
    _key(
        "listener.security.protocol.map",
        "list",
        ("PLAINTEXT:PLAINTEXT", "SSL:SSL", "SASL_PLAINTEXT:SASL_PLAINTEXT", "SASL_SSL:SASL_SSL"),
        "The security protocol of each Kafka listener, `NAME:PROTOCOL,...` with PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL.",
        validator=Custom(_check_protocol_map, "a comma-separated list of NAME:PROTOCOL"),
        kafka_default="PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        reason="Brook's CONTROLLER and GRPC listeners are gRPC, not Kafka listeners, so they are not in the map.",
    ),
    _key(
        "allow.unauthenticated.listeners",
        "bool",
        False,
        "Allow a Kafka listener that does not authenticate clients (PLAINTEXT, or SSL with `ssl.client.auth` other than required) on a non-loopback address. Without it such a node refuses to start; loopback listeners are always allowed.",
        brook_only=True,
        reason="Beyond Kafka: a node never exposes an unauthenticated port to the network by accident.",
    ),
    _key(
        "sasl.enabled.mechanisms",
        "list",
        ("SCRAM-SHA-256", "SCRAM-SHA-512"),
        "SASL mechanisms offered on SASL_PLAINTEXT and SASL_SSL listeners: any of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512. PLAIN checks the password against the user's SCRAM credentials.",
        validator=ListOf("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
        kafka_default="GSSAPI",
        reason="Brook has no Kerberos; SCRAM needs no external service.",
    ),
    _key(
        "ssl.keystore.type",
        "string",
        "PEM",
        "The keystore format. Brook reads PEM only (Kafka's `ssl.keystore.type=PEM`).",
        validator=Choice("PEM"),
        kafka_default="JKS",
        reason="Python's ssl module reads PEM; JKS and PKCS12 would need a Java keystore reader.",
    ),
    _key(
        "ssl.keystore.location",
        "string",
        "",
        "A PEM file with this node's certificate chain and its private key (or set `ssl.keystore.certificate.location` for the chain and this for the key). Required by SSL and SASL_SSL listeners.",
    ),
    _key(
        "ssl.keystore.certificate.location",
        "string",
        "",
        "A PEM file with the certificate chain when the key is in `ssl.keystore.location` on its own. Empty: the chain is in `ssl.keystore.location`.",
        brook_only=True,
        reason="Kafka takes inline PEM (`ssl.keystore.certificate.chain`); files are easier to mount as secrets.",
    ),
    _key("ssl.key.password", "password", None, "The password of an encrypted private key. Never printed."),
    _key(
        "ssl.truststore.type",
        "string",
        "PEM",
        "The truststore format: PEM only.",
        validator=Choice("PEM"),
        kafka_default="JKS",
        reason="As `ssl.keystore.type`.",
    ),
    _key(
        "ssl.truststore.location",
        "string",
        "",
        "A PEM file of CA certificates that client certificates must chain to (SSL listeners with `ssl.client.auth`) and that gRPC peers use.",
    ),
    _key(
        "ssl.client.auth",
        "string",
        "none",
        "Client certificates on SSL listeners: `required` (a verified certificate is the principal), `requested` (verified if sent), `none`.",
        validator=Choice("none", "requested", "required"),
    ),
    _key(
        "ssl.principal.mapping.rules",
        "string",
        "DEFAULT",
        "How a client certificate's subject DN becomes the user name: Kafka's `RULE:pattern/replacement/[LU]` list, `DEFAULT` = the DN in RFC 2253 form.",
        validator=Custom(_check_mapping_rules, "DEFAULT or RULE:pattern/replacement/[LU], comma-separated"),
    ),
    _key(
        "authorizer.class.name",
        "string",
        "",
        "Empty: no authorization (every authenticated client may do everything). `StandardAuthorizer` (or Kafka's full class name org.apache.kafka.metadata.authorizer.StandardAuthorizer): ACLs stored in the metadata log decide.",
        validator=Choice(*_AUTHORIZERS),
    ),
    _key(
        "super.users",
        "list",
        (),
        "Principals allowed everything, `User:admin,User:CN=broker-1`. Separated by commas or semicolons (Kafka uses semicolons).",
        validator=Custom(_check_principals, "a list of Type:name"),
    ),
    _key(
        "grpc.ssl.enabled",
        "bool",
        False,
        "Mutual TLS on the gRPC listeners (CONTROLLER, GRPC) and for this node's gRPC calls, with `ssl.keystore.*` as this node's certificate and `ssl.truststore.location` as the CA. A broker's certificate must have CN=broker-<node.id>: brokers may register, heartbeat, change ISRs and replicate only as themselves; other callers (the CLI) must be in `super.users`.",
        brook_only=True,
        reason="Kafka's inter-broker and controller listeners are Kafka listeners; Brook's are gRPC.",
    ),
    _key(
        "allow.everyone.if.no.acl.found",
        "bool",
        False,
        "With an authorizer: allow an operation on a resource that no ACL names at all.",
    ),
]
