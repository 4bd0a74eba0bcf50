"""Who may call which gRPC method, when the gRPC listeners run with mutual TLS (`grpc.ssl.enabled`).

Pure: the caller passes the method's full name, the request message and the peer certificate's
subject (its common name and RFC 4514 DN). A broker's certificate names its broker id (CN=broker-<id>),
so a broker can only register, heartbeat, change ISRs and fetch as itself:

    ControllerService/*                          CN == broker-<request.broker_id>
    BrokerService/ReplicaFetch, ReplicaFetchStream (each message), OffsetsForLeaderEpoch
                                                 CN == broker-<request.replica_id>
    BrokerService/* (data plane), AdminService/* a node certificate (brokers forward the Kafka admin
                                                 APIs, already authorized by their ACLs; controllers ask
                                                 brokers for ReplicaStates), or a principal in
                                                 `super.users` (the CLI)

Returns None when allowed, else the reason (the server answers PERMISSION_DENIED with it).
"""

from __future__ import annotations

import re

__all__ = ["broker_common_name", "check_call"]

_BROKER_CN = re.compile(r"broker-(\d{1,10})")
_NODE_CN = re.compile(r"(broker|controller)-(\d{1,10})")


def broker_common_name(broker_id: int) -> str:
    return f"broker-{broker_id}"


def check_call(method: str, request: object, common_name: str, dn: str, super_users: frozenset[str]) -> str | None:
    _, _, rest = method.lstrip("/").partition(".")  # brook.<package>.<Service>/<Method>
    service, _, name = rest.rpartition("/")
    is_node = _NODE_CN.fullmatch(common_name) is not None
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
    if is_node or f"User:{dn}" in super_users or f"User:CN={common_name}" in super_users:
        return None
    return f"principal User:{dn} is not a broker or a super user"
