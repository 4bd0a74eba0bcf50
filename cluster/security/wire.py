"""ACL bindings and filters <-> the AdminService protobufs (`proto/admin.proto`)."""

from __future__ import annotations

from brookpb import admin_pb2 as apb
from cluster.errors import ErrorCode
from cluster.image import MetadataImage
from cluster.security.acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermission,
    PatternType,
    ResourceType,
)

__all__ = ["acl_from_pb", "acl_to_pb", "describe_scram", "filter_from_pb", "filter_to_pb"]


def _enum(kind: type, value: int) -> object:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"unknown {kind.__name__} code {value}") from None


def acl_to_pb(b: AclBinding) -> apb.AclEntry:
    return apb.AclEntry(resource_type=int(b.resource_type), resource_name=b.resource_name,
                        pattern_type=int(b.pattern_type), principal=b.principal, host=b.host,
                        operation=int(b.operation), permission=int(b.permission))


def acl_from_pb(e: apb.AclEntry) -> AclBinding:
    """Raises ValueError on a code Kafka does not define."""
    return AclBinding(_enum(ResourceType, e.resource_type), e.resource_name,  # type: ignore[arg-type]
                      _enum(PatternType, e.pattern_type), e.principal, e.host,  # type: ignore[arg-type]
                      _enum(AclOperation, e.operation), _enum(AclPermission, e.permission))  # type: ignore[arg-type]


def filter_to_pb(f: AclBindingFilter) -> apb.AclFilter:
    out = apb.AclFilter(resource_type=int(f.resource_type), pattern_type=int(f.pattern_type),
                        operation=int(f.operation), permission=int(f.permission))
    if f.resource_name is not None:
        out.resource_name = f.resource_name
    if f.principal is not None:
        out.principal = f.principal
    if f.host is not None:
        out.host = f.host
    return out


def filter_from_pb(m: apb.AclFilter) -> AclBindingFilter:
    return AclBindingFilter(
        _enum(ResourceType, m.resource_type or 1),  # type: ignore[arg-type]
        m.resource_name if m.HasField("resource_name") else None,
        _enum(PatternType, m.pattern_type or 1),  # type: ignore[arg-type]
        m.principal if m.HasField("principal") else None,
        m.host if m.HasField("host") else None,
        _enum(AclOperation, m.operation or 1),  # type: ignore[arg-type]
        _enum(AclPermission, m.permission or 1),  # type: ignore[arg-type]
    )


def describe_scram(image: MetadataImage, users: list[str]) -> apb.DescribeUserScramCredentialsResponse:
    """Mechanisms and iterations per user (never a key); an unknown named user is RESOURCE_NOT_FOUND."""
    reply = apb.DescribeUserScramCredentialsResponse()
    if len(set(users)) != len(users):
        reply.error.CopyFrom(apb.Error(code=int(ErrorCode.duplicate_resource), message="a user is named twice"))
        return reply
    for user in users or sorted(image.scram):
        mechanisms = image.scram.get(user)
        if not mechanisms:
            reply.results.add(user=user, error_code=int(ErrorCode.resource_not_found),
                              error_message=f"user {user!r} has no SCRAM credentials")
            continue
        out = reply.results.add(user=user)
        for mechanism, c in sorted(mechanisms.items()):
            out.credentials.add(mechanism=mechanism, iterations=c.iterations)
    return reply
