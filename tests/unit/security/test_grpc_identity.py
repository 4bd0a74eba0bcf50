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
