"""Who may call which gRPC method, when the gRPC listeners run with mutual TLS (`grpc.ssl.enabled`).

Pure: the caller passes the method's full name, the request message and the peer certificate's
subject (its common name and RFC 4514 DN). A broker's certificate names its broker id (CN=broker-<id>),
so a broker can only register, heartbeat, change ISRs and fetch as itself:

    ControllerService/*                          CN == broker-<request.broker_id>
    BrokerService/ReplicaFetch, ReplicaFetchStream (each message), OffsetsForLeaderEpoch
                                                 CN == broker-<request.replica_id>
    BrokerService/* (data plane)                 a node certificate (controllers ask brokers for
                                                 ReplicaStates), or a principal in `super.users` (the CLI)
    AdminService/*                               a node certificate (brokers forward the Kafka admin APIs,
                                                 already authorized by their listener's ACLs), a principal
                                                 in `super.users`, or, with an authorizer
                                                 (`authorizer.class.name`), any principal the ACLs allow
                                                 the Kafka operation the call corresponds to
                                                 (`admin_requirements`, Kafka's KafkaApis checks)

The principal of a certificate is `User:<subject DN>` (RFC 4514, most specific first: `User:CN=alice,O=x`).
Returns None when allowed, else the reason (the server answers PERMISSION_DENIED with it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from cluster.security.acl import CLUSTER_NAME, AclOperation, ResourceType

__all__ = ["Authorize", "Check", "admin_requirements", "broker_common_name", "check_call", "is_privileged",
           "visible_topics"]

Check = tuple[AclOperation, ResourceType, str]
# (principal, operation, resource type, resource name) -> allowed; the caller binds host and the ACLs.
Authorize = Callable[[str, AclOperation, ResourceType, str], bool]

_CLUSTER_DESCRIBE = ((AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME),)
_CLUSTER_ALTER = ((AclOperation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME),)
# Kafka's KafkaApis: DescribeCluster, DescribeQuorum, ListPartitionReassignments, DescribeUserScramCredentials,
# DescribeAcls need DESCRIBE on the cluster; ElectLeaders, AlterPartitionReassignments, UnregisterBroker,
# AlterUserScramCredentials, CreateAcls, DeleteAcls need ALTER on the cluster.
_CLUSTER_CALLS: dict[str, tuple[Check, ...]] = {
    "DescribeCluster": _CLUSTER_DESCRIBE,
    "QuorumStatus": _CLUSTER_DESCRIBE,
    "ListPartitionReassignments": _CLUSTER_DESCRIBE,
    "DescribeUserScramCredentials": _CLUSTER_DESCRIBE,
    "DescribeAcls": _CLUSTER_DESCRIBE,
    "ElectLeaders": _CLUSTER_ALTER,
    "AlterPartitionReassignments": _CLUSTER_ALTER,
    "UnregisterBroker": _CLUSTER_ALTER,
    "AlterUserScramCredentials": _CLUSTER_ALTER,
    "CreateAcls": _CLUSTER_ALTER,
    "DeleteAcls": _CLUSTER_ALTER,
}
_TOPIC_CONFIG = 2  # ConfigResource.type: 2 = topic, 4 = broker (cluster-wide or one broker)


def _config_checks(operation: AclOperation, resources: Sequence[object]) -> list[tuple[Check, ...]]:
    out: list[tuple[Check, ...]] = []
    for r in resources:
        if getattr(r, "type", 0) == _TOPIC_CONFIG:
            out.append(((operation, ResourceType.TOPIC, str(getattr(r, "name", ""))),))
        else:
            out.append(((operation, ResourceType.CLUSTER, CLUSTER_NAME),))
    return out


def admin_requirements(name: str, request: object) -> list[tuple[Check, ...]] | None:
    """What an AdminService call `name` needs: a list of requirements, each met when any one of its checks
    is allowed (CreateTopics: CREATE on the cluster or on the topic). None: the call has no Kafka
    equivalent, so only nodes and super users may make it."""
    if name in _CLUSTER_CALLS:
        return [_CLUSTER_CALLS[name]]
    if name == "CreateTopics":
        return [((AclOperation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME),
                 (AclOperation.CREATE, ResourceType.TOPIC, t.name)) for t in getattr(request, "topics", ())]
    if name == "CreatePartitions":
        return [((AclOperation.ALTER, ResourceType.TOPIC, t.name),) for t in getattr(request, "topics", ())]
    if name == "DeleteTopics":
        return [((AclOperation.DELETE, ResourceType.TOPIC, n),) for n in getattr(request, "names", ())]
    if name == "DescribeTopics":  # every topic (no names): the answer is filtered instead (visible_topics)
        return [((AclOperation.DESCRIBE, ResourceType.TOPIC, n),) for n in getattr(request, "names", ())]
    if name == "DescribeConfigs":
        return _config_checks(AclOperation.DESCRIBE_CONFIGS, getattr(request, "resources", ()))
    if name == "AlterConfigs":
        return _config_checks(AclOperation.ALTER_CONFIGS, [i.resource for i in getattr(request, "items", ())])
    return None


def visible_topics(principal: str, names: Sequence[str], authorize: Authorize) -> set[str]:
    """Of `names`, those the principal may DESCRIBE (an all-topics DescribeTopics lists only these, as
    Kafka's Metadata does)."""
    return {n for n in names if authorize(principal, AclOperation.DESCRIBE, ResourceType.TOPIC, n)}

_BROKER_CN = re.compile(r"broker-(\d{1,10})")
_NODE_CN = re.compile(r"(broker|controller)-(\d{1,10})")


def broker_common_name(broker_id: int) -> str:
    return f"broker-{broker_id}"


def is_privileged(common_name: str, dn: str, super_users: frozenset[str]) -> bool:
    """A node certificate or a super user: every AdminService call, every data-plane call."""
    return (_NODE_CN.fullmatch(common_name) is not None or f"User:{dn}" in super_users
            or f"User:CN={common_name}" in super_users)


def check_call(method: str, request: object, common_name: str, dn: str, super_users: frozenset[str],
               authorize: Authorize | None = None) -> str | None:
    """`authorize`: the ACL authorizer when `authorizer.class.name` is set (AdminService calls of other
    principals are then decided by the ACLs), else None (only nodes and super users)."""
    _, _, rest = method.lstrip("/").partition(".")  # brook.<package>.<Service>/<Method>
    service, _, name = rest.rpartition("/")
    if service.endswith("ControllerService"):
        claimed = getattr(request, "broker_id", None)
        if claimed is None or common_name != broker_common_name(int(claimed)):
            return f"certificate CN={common_name!r} may not act as broker {claimed}"
        return None
    if service.endswith("BrokerService") and name in ("ReplicaFetch", "ReplicaFetchStream", "OffsetsForLeaderEpoch"):
        claimed = getattr(request, "replica_id", None)
        if claimed is None or common_name != broker_common_name(int(claimed)):
            return f"certificate CN={common_name!r} may not fetch as replica {claimed}"
        return None
    if is_privileged(common_name, dn, super_users):
        return None
    principal = f"User:{dn}"
    if service.endswith("AdminService") and authorize is not None:
        requirements = admin_requirements(name, request)
        if requirements is None:
            return f"{name} is for brokers and super users only; principal {principal} is neither"
        for alternatives in requirements:
            if not any(authorize(principal, op, rtype, rname) for op, rtype, rname in alternatives):
                op, rtype, rname = alternatives[-1]
                return f"principal {principal} may not {op.name} {rtype.name} {rname!r} (no ACL allows it)"
        return None
    return f"principal {principal} is not a broker or a super user"
