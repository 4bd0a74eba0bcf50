"""Typed cluster-metadata records.

The controller quorum's log is a sequence of these records; `cluster.image.replay_all` applies
them, in order, to an immutable `MetadataImage`. They are plain frozen dataclasses: the protobuf
encoding (`proto/metadata.proto`) lives in `cluster.codec`, so nothing here imports generated code.

Conventions borrowed from Kafka's PartitionChangeRecord: in `PartitionChange`, `isr=None` means
"the ISR did not change" and `leader=LEADER_UNCHANGED` means "the leader did not change".
"""

from __future__ import annotations

from dataclasses import dataclass

NO_LEADER = -1
LEADER_UNCHANGED = -2

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4


@dataclass(frozen=True, slots=True)
class ClusterRecord:
    cluster_id: str


@dataclass(frozen=True, slots=True)
class BrokerListener:
    """An advertised Kafka listener of a broker."""

    name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"


@dataclass(frozen=True, slots=True)
class RegisterBroker:
    broker_id: int
    broker_epoch: int
    incarnation_id: str
    host: str
    kafka_port: int
    grpc_port: int
    rack: str = ""
    listeners: tuple[BrokerListener, ...] = ()


@dataclass(frozen=True, slots=True)
class FenceBroker:
    broker_id: int
    broker_epoch: int


@dataclass(frozen=True, slots=True)
class UnfenceBroker:
    broker_id: int
    broker_epoch: int


@dataclass(frozen=True, slots=True)
class BrokerShutdown:
    """The broker asked for a controlled shutdown: it gets no new leadership and leaves ISRs."""

    broker_id: int
    broker_epoch: int


@dataclass(frozen=True, slots=True)
class UnregisterBroker:
    """Kafka's UnregisterBroker: the broker's registration is removed (it holds no replica any more)."""

    broker_id: int


@dataclass(frozen=True, slots=True)
class TopicRecord:
    name: str
    topic_id: bytes


@dataclass(frozen=True, slots=True)
class PartitionRecord:
    topic_id: bytes
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int = 0
    partition_epoch: int = 0
    unclean_elections: int = 0
    adding_replicas: tuple[int, ...] = ()     # a reassignment in progress (KIP-455)
    removing_replicas: tuple[int, ...] = ()
    # Unclean elections: offsets known lost in all of them, and the range lost by the last that knew.
    unclean_lost_offsets: int = 0
    last_unclean_loss: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class PartitionChange:
    topic_id: bytes
    partition: int
    isr: tuple[int, ...] | None = None
    leader: int = LEADER_UNCHANGED
    unclean: bool = False
    replicas: tuple[int, ...] | None = None
    # A reassignment's state; None: unchanged. Both are set together ((), () when it completes).
    adding_replicas: tuple[int, ...] | None = None
    removing_replicas: tuple[int, ...] | None = None
    # An unclean election: [from, to) held by live replicas beyond the new leader's log (known lost).
    unclean_loss: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class RemoveTopic:
    topic_id: bytes


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    resource_type: int
    resource_name: str
    name: str
    value: str | None  # None: the key returns to its default


@dataclass(frozen=True, slots=True)
class ProducerIds:
    broker_id: int
    broker_epoch: int
    next_producer_id: int


@dataclass(frozen=True, slots=True)
class ControllerRegistration:
    """Written by a controller when it becomes active: where clients reach it."""

    node_id: int
    raft_address: str
    grpc_address: str


@dataclass(frozen=True, slots=True)
class ScramCredentialRecord:
    """A user's SCRAM credential for one mechanism (KIP-554): salted and iterated, never the password.

    `stored_key` = H(HMAC(SaltedPassword, "Client Key")), `server_key` = HMAC(SaltedPassword, "Server Key").
    A later record for the same (user, mechanism) replaces it.
    """

    user: str
    mechanism: str          # SCRAM-SHA-256 | SCRAM-SHA-512
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int


@dataclass(frozen=True, slots=True)
class RemoveScramCredential:
    user: str
    mechanism: str


@dataclass(frozen=True, slots=True)
class AclRecord:
    """One ACL (Kafka's AccessControlEntryRecord); the codes are Kafka's (see cluster.security.acl)."""

    acl_id: bytes           # 16 random bytes; RemoveAcl names it
    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int


@dataclass(frozen=True, slots=True)
class RemoveAcl:
    acl_id: bytes


Record = (
    ClusterRecord
    | ControllerRegistration
    | UnregisterBroker
    | RegisterBroker
    | FenceBroker
    | UnfenceBroker
    | BrokerShutdown
    | TopicRecord
    | PartitionRecord
    | PartitionChange
    | RemoveTopic
    | ConfigRecord
    | ProducerIds
    | ScramCredentialRecord
    | RemoveScramCredential
    | AclRecord
    | RemoveAcl
)
