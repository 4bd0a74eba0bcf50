"""Who sent a request, and what they may do: the per-request context the Kafka handlers see.

`RequestContext` carries the client id and host (DescribeGroups shows them), the authenticated
principal (`User:<name>`, `User:ANONYMOUS` without authentication) and the broker's `Authorizer`.
`ctx.allowed(op, resource_type, name)` is the one question handlers ask; with no authorizer
configured (`authorizer.class.name` empty) every principal is allowed everything, as in Kafka.

`Authorizer` is the thin shell over the pure `cluster.security.acl.authorize`: it reads the ACLs of
the broker's latest metadata image (indexed by resource type once per image) and the static
`super.users` / `allow.everyone.if.no.acl.found`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cluster.image import MetadataImage
from cluster.security.acl import (
    ANONYMOUS,
    CLUSTER_NAME,
    AclBinding,
    AclOperation,
    ResourceType,
    authorize,
)

__all__ = ["ALLOW_ALL", "Authorizer", "RequestContext"]


class Authorizer:
    """Kafka's StandardAuthorizer over the ACLs of the broker's metadata image."""

    def __init__(self, image: Callable[[], MetadataImage], super_users: frozenset[str],
                 allow_if_no_acl: bool) -> None:
        self._image = image
        self.super_users = super_users
        self.allow_if_no_acl = allow_if_no_acl
        self._indexed_acls: object = None
        self._by_type: dict[ResourceType, list[AclBinding]] = {}

    def _acls(self, resource_type: ResourceType) -> list[AclBinding]:
        acls = self._image().acls
        if acls is not self._indexed_acls:  # replay copies the map on every ACL change
            by_type: dict[ResourceType, list[AclBinding]] = {}
            for binding in acls.values():
                by_type.setdefault(binding.resource_type, []).append(binding)
            self._by_type, self._indexed_acls = by_type, acls
        return self._by_type.get(resource_type, [])

    def allowed(self, principal: str, host: str, operation: AclOperation, resource_type: ResourceType,
                name: str) -> bool:
        return authorize(self._acls(resource_type), principal, host, operation, resource_type, name,
                         super_users=self.super_users, allow_if_no_acl=self.allow_if_no_acl)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who sent a request (the group coordinator shows it per member) and what they may do."""

    client_id: str
    client_host: str
    principal: str = ANONYMOUS
    authorizer: Authorizer | None = None
    listener: str = ""

    def allowed(self, operation: AclOperation, resource_type: ResourceType, name: str) -> bool:
        if self.authorizer is None:
            return True
        return self.authorizer.allowed(self.principal, self.client_host, operation, resource_type, name)

    def cluster_allowed(self, operation: AclOperation) -> bool:
        return self.allowed(operation, ResourceType.CLUSTER, CLUSTER_NAME)


ALLOW_ALL = RequestContext("", "")
