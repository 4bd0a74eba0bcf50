"""AdminService calls checked against ACLs (issue 11, point 5: "every admin gRPC call is authorized").

A 1-controller + 1-broker cluster with gRPC mutual TLS and the StandardAuthorizer; the test process calls
as CN=admin (a super user) or as CN=alice (an ordinary principal, `User:CN=alice`). Alice gets nothing
until ACLs name her; then exactly what they allow: CREATE and DESCRIBE on topics prefixed `alice-`, DESCRIBE
on the cluster. Everything else (another prefix, DELETE, broker configs, ACL changes) stays
PERMISSION_DENIED, a DENY wins, and an all-topics DescribeTopics lists only her topics.
"""

from __future__ import annotations

import grpc
import pytest

from brookpb import admin_pb2 as apb
from brookpb import admin_pb2_grpc
from cluster.cli.launcher import LocalCluster
from cluster.grpcutil import GrpcTls, configure_tls, sync_channel
from cluster.security.acl import CLUSTER_NAME, AclOperation, AclPermission, PatternType, ResourceType
from cluster.security.certs import create_ca, issue
from tests.support import admin, create_topic

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    d = tmp_path_factory.mktemp("grpc-acl-pki")
    ca = create_ca(d)
    certs = {n: issue(ca, d, n, hosts=["localhost", "127.0.0.1"]) for n in ("controller-1", "broker-101", "admin",
                                                                          "alice")}
    common = {"grpc.ssl.enabled": "true", "ssl.truststore.location": str(ca.cert_path),
              "super.users": "User:CN=admin", "authorizer.class.name": "StandardAuthorizer",
              "default.replication.factor": "1", "offsets.topic.replication.factor": "1"}
    per_node = {i: {"ssl.keystore.location": str(certs[n].key_path),
                    "ssl.keystore.certificate.location": str(certs[n].cert_path)}
                for i, n in ((1, "controller-1"), (101, "broker-101"))}
    as_admin = GrpcTls.from_files(str(ca.cert_path), str(certs["admin"].cert_path), str(certs["admin"].key_path))
    as_alice = GrpcTls.from_files(str(ca.cert_path), str(certs["alice"].cert_path), str(certs["alice"].key_path))
    configure_tls(as_admin)
    cluster = LocalCluster(tmp_path_factory.mktemp("grpc-acls"), 1, 1, overrides=common, node_overrides=per_node)
    try:
        cluster.start(timeout_s=90)
        yield cluster, as_admin, as_alice
    finally:
        configure_tls(as_admin)
        cluster.stop()
        configure_tls(None)


def _as(tls: GrpcTls, cluster, method: str, request):
    configure_tls(tls)
    channel = sync_channel(cluster.node(1).controller_address)
    try:
        return getattr(admin_pb2_grpc.AdminServiceStub(channel), method)(request, timeout=5)
    finally:
        channel.close()


def _denied(tls, cluster, method: str, request) -> str:
    with pytest.raises(grpc.RpcError) as refused:
        _as(tls, cluster, method, request)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (method, refused.value)
    return refused.value.details()


def _acl(operation: AclOperation, rtype: ResourceType, name: str, pattern: PatternType = PatternType.LITERAL,
         permission: AclPermission = AclPermission.ALLOW) -> apb.AclEntry:
    return apb.AclEntry(resource_type=rtype, resource_name=name, pattern_type=pattern, principal="User:CN=alice",
                        host="*", operation=operation, permission=permission)


def test_admin_calls_follow_the_acls(secure):
    cluster, as_admin, as_alice = secure
    create = lambda name: apb.CreateTopicsRequest(topics=[apb.CreateTopicRequest(name=name, partitions=1,  # noqa: E731
                                                                                 replication_factor=-1)])
    try:
        configure_tls(as_admin)
        create_topic(cluster, "bob-orders", rf=1)
        # No ACL names alice: nothing.
        assert "User:CN=alice may not DESCRIBE CLUSTER" in _denied(as_alice, cluster, "DescribeCluster",
                                                                    apb.DescribeClusterRequest())
        _denied(as_alice, cluster, "CreateTopics", create("alice-orders"))

        configure_tls(as_admin)
        with admin(cluster) as client:
            reply = client.create_acls([
                _acl(AclOperation.CREATE, ResourceType.TOPIC, "alice-", PatternType.PREFIXED),
                _acl(AclOperation.DESCRIBE, ResourceType.TOPIC, "alice-", PatternType.PREFIXED),
                _acl(AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME)])
            assert all(r.error_code == 0 for r in reply.results), reply

        assert _as(as_alice, cluster, "DescribeCluster", apb.DescribeClusterRequest()).cluster_id
        made = _as(as_alice, cluster, "CreateTopics", create("alice-orders"))
        assert made.results[0].error_code == 0, made
        _denied(as_alice, cluster, "CreateTopics", create("bob-payments"))
        _denied(as_alice, cluster, "DeleteTopics", apb.DeleteTopicsRequest(names=["alice-orders"]))
        _denied(as_alice, cluster, "DescribeTopics", apb.DescribeTopicsRequest(names=["bob-orders"]))
        _denied(as_alice, cluster, "AlterConfigs", apb.AlterConfigsRequest(
            items=[apb.AlterConfigsItem(resource=apb.ConfigResource(type=4, name=""))]))
        _denied(as_alice, cluster, "CreateAcls", apb.CreateAclsRequest(
            creations=[_acl(AclOperation.ALL, ResourceType.CLUSTER, CLUSTER_NAME)]))
        listed = _as(as_alice, cluster, "DescribeTopics", apb.DescribeTopicsRequest())
        assert [t.name for t in listed.topics] == ["alice-orders"], listed
        configure_tls(as_admin)
        with admin(cluster) as client:  # the super user still sees every topic
            assert {t.name for t in client.describe_topics().topics} >= {"alice-orders", "bob-orders"}
            # A DENY wins over the ALLOW.
            reply = client.create_acls([_acl(AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME,
                                             permission=AclPermission.DENY)])
            assert all(r.error_code == 0 for r in reply.results), reply
        _denied(as_alice, cluster, "DescribeCluster", apb.DescribeClusterRequest())
    finally:
        configure_tls(as_admin)
