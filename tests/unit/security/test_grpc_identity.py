"""gRPC identity rules: a broker certificate acts only as its own broker id."""

from __future__ import annotations

import pytest

from brookpb import admin_pb2 as apb
from brookpb import broker_pb2 as bpb
from brookpb import controller_pb2 as cpb
from cluster.security.grpc_identity import check_call

SUPER = frozenset({"User:CN=admin"})
C = "/brook.controller.ControllerService/"
B = "/brook.broker.BrokerService/"
A = "/brook.admin.AdminService/"

CASES = [
    ("register as itself", C + "RegisterBroker", cpb.RegisterBrokerRequest(broker_id=1), "broker-1", True),
    ("register as another broker", C + "RegisterBroker", cpb.RegisterBrokerRequest(broker_id=2), "broker-1", False),
    ("heartbeat as another broker", C + "BrokerHeartbeat", cpb.BrokerHeartbeatRequest(broker_id=2), "broker-1",
     False),
    ("alter partition as itself", C + "AlterPartition", cpb.AlterPartitionRequest(broker_id=3), "broker-3", True),
    ("admin cert cannot register", C + "RegisterBroker", cpb.RegisterBrokerRequest(broker_id=1), "admin", False),
    ("replica fetch as itself", B + "ReplicaFetch", bpb.ReplicaFetchRequest(replica_id=2), "broker-2", True),
    ("spoofed replica fetch", B + "ReplicaFetch", bpb.ReplicaFetchRequest(replica_id=2), "broker-1", False),
    ("stream fetch as itself", B + "ReplicaFetchStream", bpb.ReplicaFetchRequest(replica_id=2), "broker-2", True),
    ("spoofed stream fetch", B + "ReplicaFetchStream", bpb.ReplicaFetchRequest(replica_id=2), "broker-1", False),
    ("a client cannot stream-fetch", B + "ReplicaFetchStream", bpb.ReplicaFetchRequest(replica_id=1), "admin", False),
    ("spoofed epoch query", B + "OffsetsForLeaderEpoch", bpb.OffsetsForLeaderEpochRequest(replica_id=2),
     "broker-1", False),
    ("a client cannot replica-fetch", B + "ReplicaFetch", bpb.ReplicaFetchRequest(replica_id=1), "admin", False),
    ("admin produces", B + "Produce", bpb.ProduceRequest(), "admin", True),
    ("stranger produces", B + "Produce", bpb.ProduceRequest(), "mallory", False),
    ("broker forwards admin", A + "CreateTopics", apb.CreateTopicsRequest(), "broker-7", True),
    ("super user admin", A + "CreateAcls", apb.CreateAclsRequest(), "admin", True),
    ("stranger admin", A + "DescribeCluster", apb.DescribeClusterRequest(), "mallory", False),
    ("lookalike broker name", A + "CreateAcls", apb.CreateAclsRequest(), "broker-1x", False),
    ("controller asks a broker for its replica states", B + "ReplicaStates", bpb.ReplicaStateRequest(),
     "controller-2", True),
    ("controller cannot replica-fetch", B + "ReplicaFetch", bpb.ReplicaFetchRequest(replica_id=2), "controller-2",
     False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_check_call(case):
    _, method, request, cn, allowed = case
    reason = check_call(method, request, cn, f"CN={cn}", SUPER)
    assert (reason is None) is allowed, reason


# -- AdminService calls of other principals, decided by the ACLs (authorizer.class.name set) -------------

from cluster.security.acl import (  # noqa: E402
    CLUSTER_NAME,
    AclBinding,
    AclOperation,
    AclPermission,
    PatternType,
    ResourceType,
    authorize,
)
from cluster.security.grpc_identity import admin_requirements, visible_topics  # noqa: E402

ALICE = "User:CN=alice"
ACLS = [
    AclBinding(ResourceType.TOPIC, "alice-", PatternType.PREFIXED, ALICE, "*", AclOperation.CREATE, AclPermission.ALLOW),
    AclBinding(ResourceType.TOPIC, "alice-", PatternType.PREFIXED, ALICE, "*", AclOperation.DESCRIBE,
               AclPermission.ALLOW),
    AclBinding(ResourceType.TOPIC, "alice-logs", PatternType.LITERAL, ALICE, "*", AclOperation.ALTER_CONFIGS,
               AclPermission.ALLOW),
    AclBinding(ResourceType.CLUSTER, CLUSTER_NAME, PatternType.LITERAL, ALICE, "*", AclOperation.DESCRIBE,
               AclPermission.ALLOW),
    AclBinding(ResourceType.TOPIC, "alice-secret", PatternType.LITERAL, ALICE, "*", AclOperation.ALL,
               AclPermission.DENY),
]


def _acl(principal, op, rtype, name):
    return authorize(ACLS, principal, "10.0.0.9", op, rtype, name, super_users=SUPER)


def _topics(*names):
    return [apb.CreateTopicRequest(name=n) for n in names]


def _config(rtype, name):
    return apb.ConfigResource(type=rtype, name=name)


ACL_CASES = [
    ("describe cluster with an ACL", "DescribeCluster", apb.DescribeClusterRequest(), "alice", True),
    ("describe cluster without one", "DescribeCluster", apb.DescribeClusterRequest(), "bob", False),
    ("quorum status is describe cluster", "QuorumStatus", apb.QuorumStatusRequest(), "alice", True),
    ("create own-prefix topic", "CreateTopics", apb.CreateTopicsRequest(topics=_topics("alice-1")), "alice", True),
    ("create another's topic", "CreateTopics", apb.CreateTopicsRequest(topics=_topics("bob-1")), "alice", False),
    ("one of two topics not allowed", "CreateTopics", apb.CreateTopicsRequest(topics=_topics("alice-1", "bob-1")),
     "alice", False),
    ("a DENY wins over the prefix ALLOW", "CreateTopics", apb.CreateTopicsRequest(topics=_topics("alice-secret")),
     "alice", False),
    ("delete needs DELETE", "DeleteTopics", apb.DeleteTopicsRequest(names=["alice-1"]), "alice", False),
    ("grow partitions needs ALTER", "CreatePartitions",
     apb.CreatePartitionsRequest(topics=[apb.CreatePartitionsTopic(name="alice-1", count=3)]), "alice", False),
    ("describe named own topic", "DescribeTopics", apb.DescribeTopicsRequest(names=["alice-1"]), "alice", True),
    ("describe named other topic", "DescribeTopics", apb.DescribeTopicsRequest(names=["bob-1"]), "alice", False),
    ("describe every topic (filtered)", "DescribeTopics", apb.DescribeTopicsRequest(), "alice", True),
    ("alter topic config with ALTER_CONFIGS", "AlterConfigs",
     apb.AlterConfigsRequest(items=[apb.AlterConfigsItem(resource=_config(2, "alice-logs"))]), "alice", True),
    ("alter broker config needs cluster ALTER_CONFIGS", "AlterConfigs",
     apb.AlterConfigsRequest(items=[apb.AlterConfigsItem(resource=_config(4, ""))]), "alice", False),
    ("describe topic configs via DESCRIBE? no: DESCRIBE_CONFIGS", "DescribeConfigs",
     apb.DescribeConfigsRequest(resources=[_config(2, "alice-1")]), "alice", False),
    ("create ACLs needs cluster ALTER", "CreateAcls", apb.CreateAclsRequest(), "alice", False),
    ("elect leaders needs cluster ALTER", "ElectLeaders", apb.ElectLeadersRequest(), "alice", False),
    ("super user bypasses the ACLs", "DeleteTopics", apb.DeleteTopicsRequest(names=["bob-1"]), "admin", True),
    ("a broker bypasses the ACLs", "CreateAcls", apb.CreateAclsRequest(), "broker-4", True),
    ("an unmapped call is for nodes and super users", "NoSuchCall", apb.DescribeClusterRequest(), "alice", False),
]


@pytest.mark.parametrize("case", ACL_CASES, ids=[c[0] for c in ACL_CASES])
def test_admin_calls_against_acls(case):
    _, name, request, cn, allowed = case
    reason = check_call(A + name, request, cn, f"CN={cn}", SUPER, _acl)
    assert (reason is None) is allowed, reason
    if not allowed and cn == "alice" and name != "NoSuchCall":
        assert "User:CN=alice may not" in reason, reason


def test_without_an_authorizer_only_nodes_and_super_users_use_the_admin_service():
    request = apb.CreateTopicsRequest(topics=_topics("alice-1"))
    assert check_call(A + "CreateTopics", request, "alice", "CN=alice", SUPER) is not None
    assert check_call(A + "CreateTopics", request, "alice", "CN=alice", SUPER, _acl) is None


def test_acls_do_not_open_the_data_plane_or_the_controller_service():
    allow_all = lambda *_: True  # noqa: E731
    assert check_call(B + "Produce", bpb.ProduceRequest(), "alice", "CN=alice", SUPER, allow_all) is not None
    assert check_call(C + "RegisterBroker", cpb.RegisterBrokerRequest(broker_id=1), "alice", "CN=alice", SUPER,
                      allow_all) is not None


def test_every_admin_rpc_is_mapped():
    """A new AdminService RPC must be mapped here (or is for nodes and super users only, on purpose)."""
    unmapped = {m.name for m in apb.DESCRIPTOR.services_by_name["AdminService"].methods
                if admin_requirements(m.name, getattr(apb, m.input_type.name)()) is None}
    assert unmapped == set(), unmapped


def test_all_topics_answer_lists_only_described_topics():
    names = ["alice-1", "alice-secret", "bob-1", "__consumer_offsets"]
    assert visible_topics(ALICE, names, _acl) == {"alice-1"}
