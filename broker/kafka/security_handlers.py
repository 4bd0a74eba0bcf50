"""Kafka's security admin APIs on the client listener: ACLs (KIP-140) and SCRAM users (KIP-554).

    DescribeAcls (29)                  DESCRIBE on the cluster; answered from this broker's image
    CreateAcls (30), DeleteAcls (31)   ALTER on the cluster; forwarded to the active controller
    DescribeUserScramCredentials (50)  DESCRIBE on the cluster; from this broker's image
    AlterUserScramCredentials (51)     ALTER on the cluster; forwarded to the active controller

Refusals are CLUSTER_AUTHORIZATION_FAILED, as in Kafka's KafkaApis / ControllerApis. A controller that
cannot be reached is REQUEST_TIMED_OUT per item.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from broker.kafka.codec import ZERO_MS, build, response_module
from broker.kafka.session import RequestContext
from brookpb import admin_pb2 as apb
from cluster.security.acl import AclBinding, AclBindingFilter
from cluster.security.acl import AclOperation as Op
from cluster.security.scram import MECHANISM_BY_CODE, MECHANISMS
from cluster.security.wire import describe_scram, filter_from_pb

__all__ = ["API_VERSIONS", "SecurityHandlers"]

DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS = 29, 30, 31
DESCRIBE_SCRAM, ALTER_SCRAM = 50, 51

# v0 of the ACL APIs predates pattern types (KIP-290); kio encodes v1+.
API_VERSIONS: Mapping[int, tuple[int, int]] = {
    DESCRIBE_ACLS: (1, 3),
    CREATE_ACLS: (1, 3),
    DELETE_ACLS: (1, 3),
    DESCRIBE_SCRAM: (0, 0),
    ALTER_SCRAM: (0, 0),
}

_DENIED = "not authorized for this cluster operation"
_UNREACHABLE = "no active controller answered"


def _binding(resource_type: int, name: str, pattern: int, principal: str, host: str, op: int,
             permission: int) -> apb.AclEntry:
    return apb.AclEntry(resource_type=resource_type, resource_name=name, pattern_type=pattern, principal=principal,
                        host=host, operation=op, permission=permission)


def _filter(f: Any) -> apb.AclFilter:
    m = apb.AclFilter(resource_type=int(f.resource_type_filter), pattern_type=int(getattr(f, "pattern_type_filter", 3)),
                      operation=int(f.operation), permission=int(f.permission_type))
    if f.resource_name_filter is not None:
        m.resource_name = f.resource_name_filter
    if f.principal_filter is not None:
        m.principal = f.principal_filter
    if f.host_filter is not None:
        m.host = f.host_filter
    return m


class SecurityHandlers:
    def __init__(self, core: Any) -> None:
        self.core = core

    def handlers(self) -> dict[int, Callable[..., Awaitable[Any]]]:
        return {
            DESCRIBE_ACLS: self.describe_acls,
            CREATE_ACLS: self.create_acls,
            DELETE_ACLS: self.delete_acls,
            DESCRIBE_SCRAM: self.describe_scram,
            ALTER_SCRAM: self.alter_scram,
        }

    # -- ACLs ---------------------------------------------------------------------------------------

    async def describe_acls(self, request: Any, api_version: int, ctx: RequestContext) -> Any:
        mod = response_module(DESCRIBE_ACLS, api_version)
        if not ctx.cluster_allowed(Op.DESCRIBE):
            return build(mod.DescribeAclsResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.cluster_authorization_failed, error_message=_DENIED, resources=())
        try:
            f: AclBindingFilter = filter_from_pb(_filter(request))
        except ValueError as e:
            return build(mod.DescribeAclsResponse, throttle_time=ZERO_MS, error_code=ErrorCode.invalid_request,
                         error_message=str(e), resources=())
        grouped: dict[tuple[int, str, int], list[AclBinding]] = {}
        for _, b in sorted(self.core.image().acls.items()):
            if f.matches(b):
                grouped.setdefault((int(b.resource_type), b.resource_name, int(b.pattern_type)), []).append(b)
        resources = tuple(
            build(mod.DescribeAclsResource, resource_type=rtype, resource_name=name, pattern_type=pattern,
                  acls=tuple(build(mod.AclDescription, principal=b.principal, host=b.host, operation=int(b.operation),
                                   permission_type=int(b.permission)) for b in bindings))
            for (rtype, name, pattern), bindings in grouped.items())
        return build(mod.DescribeAclsResponse, throttle_time=ZERO_MS, error_code=ErrorCode.none, error_message=None,
                     resources=resources)

    async def create_acls(self, request: Any, api_version: int, ctx: RequestContext) -> Any:
        mod = response_module(CREATE_ACLS, api_version)
        n = len(request.creations)
        if not ctx.cluster_allowed(Op.ALTER):
            return build(mod.CreateAclsResponse, throttle_time=ZERO_MS, results=tuple(
                build(mod.AclCreationResult, error_code=ErrorCode.cluster_authorization_failed, error_message=_DENIED)
                for _ in range(n)))
        req = apb.CreateAclsRequest(creations=[
            _binding(int(c.resource_type), c.resource_name, int(getattr(c, "resource_pattern_type", 3)), c.principal,
                     c.host, int(c.operation), int(c.permission_type)) for c in request.creations])
        reply = await self.core.admin_call("CreateAcls", req) if n else apb.CreateAclsResponse()
        if reply is None or reply.error.code or len(reply.results) != n:
            code = ErrorCode.request_timed_out if reply is None else ErrorCode(reply.error.code or 1)
            message = _UNREACHABLE if reply is None else reply.error.message
            results = tuple(build(mod.AclCreationResult, error_code=code, error_message=message) for _ in range(n))
        else:
            results = tuple(build(mod.AclCreationResult, error_code=ErrorCode(r.error_code),
                                  error_message=r.error_message or None) for r in reply.results)
        return build(mod.CreateAclsResponse, throttle_time=ZERO_MS, results=results)

    async def delete_acls(self, request: Any, api_version: int, ctx: RequestContext) -> Any:
        mod = response_module(DELETE_ACLS, api_version)
        n = len(request.filters)

        def failed(code: ErrorCode, message: str) -> Any:
            return build(mod.DeleteAclsResponse, throttle_time=ZERO_MS, filter_results=tuple(
                build(mod.DeleteAclsFilterResult, error_code=code, error_message=message, matching_acls=())
                for _ in range(n)))
        if not ctx.cluster_allowed(Op.ALTER):
            return failed(ErrorCode.cluster_authorization_failed, _DENIED)
        reply = await self.core.admin_call("DeleteAcls", apb.DeleteAclsRequest(
            filters=[_filter(f) for f in request.filters])) if n else apb.DeleteAclsResponse()
        if reply is None:
            return failed(ErrorCode.request_timed_out, _UNREACHABLE)
        if reply.error.code or len(reply.results) != n:
            return failed(ErrorCode(reply.error.code or 1), reply.error.message)
        results = tuple(
            build(mod.DeleteAclsFilterResult, error_code=ErrorCode(r.error_code), error_message=r.error_message or None,
                  matching_acls=tuple(
                      build(mod.DeleteAclsMatchingAcl, error_code=ErrorCode.none, error_message=None,
                            resource_type=m.resource_type, resource_name=m.resource_name, pattern_type=m.pattern_type,
                            principal=m.principal, host=m.host, operation=m.operation, permission_type=m.permission)
                      for m in r.matching))
            for r in reply.results)
        return build(mod.DeleteAclsResponse, throttle_time=ZERO_MS, filter_results=results)

    # -- SCRAM users --------------------------------------------------------------------------------

    async def describe_scram(self, request: Any, api_version: int, ctx: RequestContext) -> Any:
        mod = response_module(DESCRIBE_SCRAM, api_version)
        if not ctx.cluster_allowed(Op.DESCRIBE):
            return build(mod.DescribeUserScramCredentialsResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.cluster_authorization_failed, error_message=_DENIED, results=())
        users = [u.name for u in request.users] if request.users is not None else []
        reply = describe_scram(self.core.image(), users)
        results = tuple(
            build(mod.DescribeUserScramCredentialsResult, user=r.user, error_code=ErrorCode(r.error_code),
                  error_message=r.error_message or None, credential_infos=tuple(
                      build(mod.CredentialInfo, mechanism=MECHANISMS[c.mechanism][0], iterations=c.iterations)
                      for c in r.credentials))
            for r in reply.results)
        return build(mod.DescribeUserScramCredentialsResponse, throttle_time=ZERO_MS,
                     error_code=ErrorCode(reply.error.code), error_message=reply.error.message or None,
                     results=results)

    async def alter_scram(self, request: Any, api_version: int, ctx: RequestContext) -> Any:
        mod = response_module(ALTER_SCRAM, api_version)
        users = list(dict.fromkeys([d.name for d in request.deletions] + [u.name for u in request.upsertions]))

        def failed(code: ErrorCode, message: str) -> Any:
            return build(mod.AlterUserScramCredentialsResponse, throttle_time=ZERO_MS, results=tuple(
                build(mod.AlterUserScramCredentialsResult, user=u, error_code=code, error_message=message)
                for u in users))
        if not ctx.cluster_allowed(Op.ALTER):
            return failed(ErrorCode.cluster_authorization_failed, _DENIED)
        req = apb.AlterUserScramCredentialsRequest()
        for d in request.deletions:
            req.deletions.add(user=d.name, mechanism=MECHANISM_BY_CODE.get(int(d.mechanism), f"#{int(d.mechanism)}"))
        for u in request.upsertions:
            req.upsertions.add(user=u.name, mechanism=MECHANISM_BY_CODE.get(int(u.mechanism), f"#{int(u.mechanism)}"),
                               iterations=int(u.iterations), salt=bytes(u.salt), salted_password=bytes(u.salted_password))
        reply = await self.core.admin_call("AlterUserScramCredentials", req) if users else \
            apb.AlterUserScramCredentialsResponse()
        if reply is None:
            return failed(ErrorCode.request_timed_out, _UNREACHABLE)
        if reply.error.code:
            return failed(ErrorCode(reply.error.code), reply.error.message)
        return build(mod.AlterUserScramCredentialsResponse, throttle_time=ZERO_MS, results=tuple(
            build(mod.AlterUserScramCredentialsResult, user=r.user, error_code=ErrorCode(r.error_code),
                  error_message=r.error_message or None) for r in reply.results))

