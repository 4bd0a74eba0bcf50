"""gRPC with mutual TLS (grpc.ssl.enabled): brokers replicate and register over mTLS, and a broker
certificate acts only as its own broker id (issue 11, point 6).

A 1-controller + 2-broker cluster where every node has its own certificate (CN=controller-1,
broker-101, broker-102) from a throwaway CA, and the test process calls as CN=admin (a super user):
  - a topic with RF=2 gets both replicas in sync (replication and ISR changes over mTLS);
  - with broker-102's certificate, RegisterBroker / BrokerHeartbeat for broker 101 and a ReplicaFetch
    (unary, or a message of a ReplicaFetchStream) as replica 101 are refused with PERMISSION_DENIED;
    the same calls as 102 are not;
  - a caller without a certificate, or with a certificate from another CA, gets no answer at all;
  - a certificate that is neither a broker's nor a super user's cannot use the AdminService.
"""

from __future__ import annotations

import grpc
import pytest

from brookpb import admin_pb2 as apb
from brookpb import admin_pb2_grpc, broker_pb2_grpc, controller_pb2_grpc
from brookpb import broker_pb2 as bpb
from brookpb import controller_pb2 as cpb
from cluster.cli.launcher import LocalCluster
from cluster.grpcutil import GrpcTls, configure_tls, sync_channel
from cluster.security.certs import create_ca, issue
from tests.support import admin, create_topic, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    d = tmp_path_factory.mktemp("grpc-pki")
    ca = create_ca(d)
    hosts = ["localhost", "127.0.0.1"]
    certs = {name: issue(ca, d, name, hosts=hosts)
             for name in ("controller-1", "broker-101", "broker-102", "admin", "mallory")}
    other_ca = create_ca(d / "other")
    certs["forged-101"] = issue(other_ca, d / "other", "broker-101", hosts=hosts)
    common = {"grpc.ssl.enabled": "true", "ssl.truststore.location": str(ca.cert_path),
              "super.users": "User:CN=admin", "default.replication.factor": "2", "min.insync.replicas": "1",
              "offsets.topic.replication.factor": "2"}
    per_node = {i: {"ssl.keystore.location": str(certs[n].key_path),
                    "ssl.keystore.certificate.location": str(certs[n].cert_path)}
                for i, n in ((1, "controller-1"), (101, "broker-101"), (102, "broker-102"))}
    as_admin = GrpcTls.from_files(str(ca.cert_path), str(certs["admin"].cert_path), str(certs["admin"].key_path))
    configure_tls(as_admin)  # this process (the launcher's health checks, the admin client) is CN=admin
    cluster = LocalCluster(tmp_path_factory.mktemp("grpc-mtls"), 1, 2, overrides=common, node_overrides=per_node)
    try:
        cluster.start(timeout_s=90)
        yield cluster, ca, certs, as_admin
    finally:
        configure_tls(as_admin)
        cluster.stop()
        configure_tls(None)


def _as(ca, issued) -> GrpcTls:
    return GrpcTls.from_files(str(ca.cert_path), str(issued.cert_path), str(issued.key_path))


def _call(tls: GrpcTls | None, address: str, stub_cls, method: str, request):
    configure_tls(tls)
    channel = sync_channel(address)
    try:
        return getattr(stub_cls(channel), method)(request, timeout=5)
    finally:
        channel.close()


def test_replication_over_mtls(secure):
    cluster, _, _, as_admin = secure
    configure_tls(as_admin)
    create_topic(cluster, "mtls-topic", rf=2)
    with admin(cluster) as client:
        wait_until(lambda: sorted(client.describe_topics(["mtls-topic"]).topics[0].partitions[0].isr) == [101, 102],
                   30, what="both replicas in sync")


def test_a_broker_certificate_acts_only_as_its_broker(secure):
    cluster, ca, certs, as_admin = secure
    controller = cluster.node(1).controller_address
    broker_101 = cluster.node(101).grpc_address
    as_102 = _as(ca, certs["broker-102"])
    spoofs = [
        (controller, controller_pb2_grpc.ControllerServiceStub, "RegisterBroker",
         cpb.RegisterBrokerRequest(broker_id=101, incarnation_id="spoof", host="127.0.0.1", kafka_port=1, grpc_port=1)),
        (controller, controller_pb2_grpc.ControllerServiceStub, "BrokerHeartbeat",
         cpb.BrokerHeartbeatRequest(broker_id=101, broker_epoch=1)),
        (broker_101, broker_pb2_grpc.BrokerServiceStub, "ReplicaFetch",
         bpb.ReplicaFetchRequest(replica_id=101, max_wait_ms=0)),
    ]
    try:
        for address, stub, method, request in spoofs:
            with pytest.raises(grpc.RpcError) as refused:
                _call(as_102, address, stub, method, request)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (method, refused.value)
        # As itself, broker 102's certificate gets through the identity check (the call itself may fail).
        reply = _call(as_102, controller, controller_pb2_grpc.ControllerServiceStub, "BrokerHeartbeat",
                      cpb.BrokerHeartbeatRequest(broker_id=102, broker_epoch=-5))
        assert reply.error_code != 0  # a stale epoch, answered by the controller
        _call(as_102, broker_101, broker_pb2_grpc.BrokerServiceStub, "ReplicaFetch",
              bpb.ReplicaFetchRequest(replica_id=102, max_wait_ms=0))
        # The streamed ReplicaFetch (what followers use): every message is checked the same way.
        with pytest.raises(grpc.RpcError) as refused:
            _stream(as_102, broker_101, [bpb.ReplicaFetchRequest(replica_id=102, max_wait_ms=0),
                                         bpb.ReplicaFetchRequest(replica_id=101, max_wait_ms=0)])
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, refused.value
        assert len(_stream(as_102, broker_101, [bpb.ReplicaFetchRequest(replica_id=102, max_wait_ms=0)] * 2)) == 2
    finally:
        configure_tls(as_admin)


def _stream(tls: GrpcTls | None, address: str, requests: list) -> list:
    configure_tls(tls)
    channel = sync_channel(address)
    try:
        return list(broker_pb2_grpc.BrokerServiceStub(channel).ReplicaFetchStream(iter(requests), timeout=5))
    finally:
        channel.close()


def test_callers_without_a_trusted_certificate(secure):
    cluster, ca, certs, as_admin = secure
    controller = cluster.node(1).controller_address
    try:
        for tls in (None, _as(ca, certs["forged-101"])):  # plaintext; a certificate from another CA
            with pytest.raises(grpc.RpcError) as failed:
                _call(tls, controller, admin_pb2_grpc.AdminServiceStub, "DescribeCluster",
                      apb.DescribeClusterRequest())
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value
        with pytest.raises(grpc.RpcError) as denied:
            _call(_as(ca, certs["mallory"]), controller, admin_pb2_grpc.AdminServiceStub, "CreateTopics",
                  apb.CreateTopicsRequest())
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        configure_tls(as_admin)
