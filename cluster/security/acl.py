"""Kafka's ACL model and the authorization decision, as pure data and functions.

The codes are Kafka's (`org.apache.kafka.common.resource.ResourceType`, `PatternType`,
`acl.AclOperation`, `acl.AclPermissionType`), so they go on the wire unchanged in CreateAcls,
DescribeAcls and DeleteAcls.

`authorize` is the decision of Kafka's StandardAuthorizer:

  1. a principal in `super.users` is allowed everything;
  2. the ACLs that match the resource are those of the same resource type whose pattern matches the
     name (LITERAL: equal, or the wildcard `*`; PREFIXED: the name starts with the pattern);
  3. if none match, `allow.everyone.if.no.acl.found` decides;
  4. a matching DENY (same principal or `User:*`, same host or `*`, same operation or ALL) wins;
  5. otherwise a matching ALLOW allows, where ALLOW READ/WRITE/DELETE/ALTER also allow DESCRIBE and
     ALLOW ALTER_CONFIGS also allows DESCRIBE_CONFIGS (Kafka's implied operations);
  6. otherwise deny.

Nothing here reads a clock, a socket or the metadata log: the caller passes the ACLs of its image.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ANONYMOUS",
    "AclBinding",
    "AclBindingFilter",
    "AclOperation",
    "AclPermission",
    "PatternType",
    "ResourceType",
    "WILDCARD_HOST",
    "WILDCARD_PRINCIPAL",
    "WILDCARD_RESOURCE",
    "authorize",
    "parse_principal",
    "validate_binding",
]

WILDCARD_RESOURCE = "*"
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
ANONYMOUS = "User:ANONYMOUS"
CLUSTER_NAME = "kafka-cluster"


class ResourceType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermission(enum.IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


# Kafka's implied operations: an ALLOW of the key also allows each operation in the value.
_IMPLIED_BY: dict[AclOperation, frozenset[AclOperation]] = {
    AclOperation.DESCRIBE: frozenset({AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE,
                                      AclOperation.ALTER}),
    AclOperation.DESCRIBE_CONFIGS: frozenset({AclOperation.ALTER_CONFIGS}),
}

# Resource types and operations an ACL may name (Kafka's `AclEntry.supportedOperations`).
_SUPPORTED_OPS: dict[ResourceType, frozenset[AclOperation]] = {
    ResourceType.TOPIC: frozenset({AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE,
                                   AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
                                   AclOperation.ALTER_CONFIGS, AclOperation.ALL}),
    ResourceType.GROUP: frozenset({AclOperation.READ, AclOperation.DESCRIBE, AclOperation.DELETE, AclOperation.ALL}),
    ResourceType.CLUSTER: frozenset({AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
                                     AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER,
                                     AclOperation.DESCRIBE, AclOperation.ALL}),
    ResourceType.TRANSACTIONAL_ID: frozenset({AclOperation.DESCRIBE, AclOperation.WRITE, AclOperation.ALL}),
}


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One ACL: `principal` from `host` is `permission`ed `operation` on the matching resources."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermission

    def matches_resource(self, resource_type: ResourceType, name: str) -> bool:
        if self.resource_type != resource_type:
            return False
        if self.pattern_type == PatternType.LITERAL:
            return self.resource_name == name or self.resource_name == WILDCARD_RESOURCE
        if self.pattern_type == PatternType.PREFIXED:
            return name.startswith(self.resource_name)
        return False


@dataclass(frozen=True, slots=True)
class AclBindingFilter:
    """A DescribeAcls / DeleteAcls filter. None matches anything; ANY/MATCH as in Kafka."""

    resource_type: ResourceType = ResourceType.ANY
    resource_name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: AclPermission = AclPermission.ANY

    def matches(self, acl: AclBinding) -> bool:
        if self.resource_type != ResourceType.ANY and acl.resource_type != self.resource_type:
            return False
        if self.pattern_type == PatternType.MATCH:
            # MATCH: the ACLs that would apply to the named resource (literal, wildcard, prefixes).
            if self.resource_name is not None and not acl.matches_resource(acl.resource_type, self.resource_name):
                return False
        else:
            if self.pattern_type != PatternType.ANY and acl.pattern_type != self.pattern_type:
                return False
            if self.resource_name is not None and acl.resource_name != self.resource_name:
                return False
        if self.principal is not None and acl.principal != self.principal:
            return False
        if self.host is not None and acl.host != self.host:
            return False
        if self.operation != AclOperation.ANY and acl.operation != self.operation:
            return False
        return self.permission == AclPermission.ANY or acl.permission == self.permission


def parse_principal(text: str) -> tuple[str, str]:
    """`Type:name` -> (type, name); raises ValueError when there is no type."""
    kind, sep, name = text.partition(":")
    if not sep or not kind or not name:
        raise ValueError(f"principal {text!r} is not Type:name (e.g. User:alice)")
    return kind, name


def validate_binding(acl: AclBinding) -> str:
    """'' when the binding may be stored, else the reason (Kafka's CreateAcls validation)."""
    if acl.resource_type not in _SUPPORTED_OPS:
        return f"resource type {acl.resource_type.name} cannot carry ACLs"
    if acl.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
        return f"pattern type {acl.pattern_type.name} is not LITERAL or PREFIXED"
    if acl.permission not in (AclPermission.ALLOW, AclPermission.DENY):
        return f"permission {acl.permission.name} is not ALLOW or DENY"
    if acl.operation not in _SUPPORTED_OPS[acl.resource_type]:
        return f"operation {acl.operation.name} does not apply to {acl.resource_type.name}"
    if not acl.resource_name:
        return "the resource name is empty"
    if acl.resource_type == ResourceType.CLUSTER and acl.resource_name != CLUSTER_NAME:
        return f"the cluster resource is named {CLUSTER_NAME!r}"
    try:
        parse_principal(acl.principal)
    except ValueError as e:
        return str(e)
    if not acl.host:
        return "the host is empty (use * for any host)"
    return ""


def _applies(acl: AclBinding, principal: str, host: str) -> bool:
    return (acl.principal in (principal, WILDCARD_PRINCIPAL)) and (acl.host in (host, WILDCARD_HOST))


def authorize(
    acls: Iterable[AclBinding],
    principal: str,
    host: str,
    operation: AclOperation,
    resource_type: ResourceType,
    resource_name: str,
    *,
    super_users: frozenset[str] = frozenset(),
    allow_if_no_acl: bool = False,
) -> bool:
    """Kafka's StandardAuthorizer decision (see the module doc)."""
    assert operation not in (AclOperation.ANY, AclOperation.UNKNOWN), "authorize a concrete operation"
    if principal in super_users:
        return True
    matching = [a for a in acls if a.matches_resource(resource_type, resource_name)]
    if not matching:
        return allow_if_no_acl
    applicable = [a for a in matching if _applies(a, principal, host)]
    for acl in applicable:
        if acl.permission == AclPermission.DENY and acl.operation in (operation, AclOperation.ALL):
            return False
    allowing = {operation, AclOperation.ALL} | _IMPLIED_BY.get(operation, frozenset())
    return any(a.permission == AclPermission.ALLOW and a.operation in allowing for a in applicable)
