"""AdminService RPCs for SCRAM users and ACLs (mixed into `controller.admin.AdminServicer`).

Writes go through the active controller's single writer with the pure functions of
`controller.security`; describes are answered from the controller's latest image. Credentials are
never returned: Describe shows mechanisms and iteration counts only, as Kafka does.
"""

from __future__ import annotations

import os
from typing import Any

from brookpb import admin_pb2 as apb
from cluster.errors import ErrorCode
from cluster.security.wire import acl_from_pb, acl_to_pb, describe_scram, filter_from_pb
from controller import security
from controller.quorum import QuorumError
from controller.service import NotActive

ADMIN_WRITE_TIMEOUT_S = 5.0


class SecurityAdminMixin:
    rt: Any

    def _fail(self, reply: Any, e: Exception) -> Any:  # provided by AdminServicer
        raise NotImplementedError

    async def AlterUserScramCredentials(self, request, context):
        reply = apb.AlterUserScramCredentialsResponse()
        deletions = [security.ScramDeletion(d.user, d.mechanism) for d in request.deletions]
        upsertions = [security.ScramUpsertion(u.user, u.mechanism, u.iterations, u.salt, u.salted_password)
                      for u in request.upsertions]
        try:
            results = await self.rt.write(lambda img: security.alter_scram(img, deletions, upsertions),
                                          ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        for r in results:
            reply.results.add(user=r.name, error_code=int(r.error), error_message=r.message)
        return reply

    async def DescribeUserScramCredentials(self, request, context):
        return describe_scram(self.rt.image, list(request.users))

    async def CreateAcls(self, request, context):
        reply = apb.CreateAclsResponse()
        bindings = []
        bad: dict[int, str] = {}
        for i, entry in enumerate(request.creations):
            try:
                bindings.append(acl_from_pb(entry))
            except ValueError as e:
                bad[i] = str(e)
        try:
            results = await self.rt.write(lambda img: security.create_acls(img, bindings, lambda: os.urandom(16)),
                                          ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        it = iter(results)
        for i in range(len(request.creations)):
            if i in bad:
                reply.results.add(error_code=int(ErrorCode.invalid_request), error_message=bad[i])
            else:
                r = next(it)
                reply.results.add(error_code=int(r.error), error_message=r.message)
        return reply

    async def DescribeAcls(self, request, context):
        reply = apb.DescribeAclsResponse()
        try:
            f = filter_from_pb(request.filter)
        except ValueError as e:
            reply.error.CopyFrom(apb.Error(code=int(ErrorCode.invalid_request), message=str(e)))
            return reply
        for _, b in sorted(self.rt.image.acls.items()):
            if f.matches(b):
                reply.acls.append(acl_to_pb(b))
        return reply

    async def DeleteAcls(self, request, context):
        reply = apb.DeleteAclsResponse()
        try:
            filters = [filter_from_pb(f) for f in request.filters]
        except ValueError as e:
            reply.error.CopyFrom(apb.Error(code=int(ErrorCode.invalid_request), message=str(e)))
            return reply
        try:
            matches = await self.rt.write(lambda img: security.delete_acls(img, filters), ADMIN_WRITE_TIMEOUT_S)
        except (NotActive, QuorumError) as e:
            return self._fail(reply, e)
        for matched in matches:
            out = reply.results.add()
            out.matching.extend(acl_to_pb(b) for b in matched)
        return reply

