"""The schema: every server key Brook reads, the topic keys derived from them, and the aliases.

Kafka's names, Kafka's defaults where they suit, and the reason where not (`kafka_default`, `reason`,
`brook_only`). Add a key here; docs/CONFIG.md is generated from it (`python -m cluster.config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from cluster.config.security import SECURITY_KEYS
from cluster.config.values import (
    Choice,
    ConfigKey,
    Custom,
    ListOf,
    Range,
    _check_advertised,
    _check_controller_listener_names,
    _check_dirs,
    _check_listener_name,
    _check_listeners,
    _check_roles,
    _check_secret,
    _check_servers,
    _check_voters,
    _Invalid,
    _key,
)
from cluster.limits import (
    GRPC_MESSAGE_BYTES_MAX,
    KAFKA_REQUEST_BYTES_DEFAULT,
    LONG_MAX,
    RECORD_BATCH_BYTES_DEFAULT,
)

_POS = Range(1, None)
_NONNEG = Range(0, None)
_COMPRESSION = Choice("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_TIMESTAMP = Choice("CreateTime", "LogAppendTime")
_CLEANUP = ListOf("delete", "compact")

_SERVER: list[ConfigKey] = [
    # -- identity and roles --
    _key(
        "process.roles",
        "list",
        (),
        "The roles of this process: `broker`, `controller`, or `broker,controller` (combined, for small deployments).",
        validator=Custom(_check_roles, "broker, controller or broker,controller"),
        required=True,
    ),
    _key(
        "node.id",
        "int",
        -1,
        "This node's id, unique in the cluster; a controller's id must appear in `controller.quorum.voters`.",
        validator=Range(0, None),
        required=True,
        kafka_default=None,
    ),
    _key(
        "cluster.id",
        "string",
        "",
        "The expected cluster id. Empty: accept the id the controller quorum holds; set: refuse to join a cluster with another id.",
        brook_only=True,
        reason="Kafka stores the id with `kafka-storage format`; Brook has no format step.",
    ),
    _key("broker.rack", "string", "", "The rack of this broker, used to spread replicas. Empty: no rack."),
    # -- listeners --
    _key(
        "listeners",
        "list",
        (),
        "Comma-separated `NAME://host:port`. `GRPC` = the broker's gRPC service (replication, controller callbacks), `CONTROLLER` = the controller's gRPC service (brokers, admin CLI); every other name (e.g. `PLAINTEXT`, `SASL_SSL`, `EXTERNAL`) is a Kafka listener whose security protocol `listener.security.protocol.map` gives. A broker needs GRPC and at least one Kafka listener, a controller needs CONTROLLER. An empty host or 0.0.0.0 binds every interface; port 0 picks a free port.",
        validator=Custom(
            _check_listeners,
            "a comma-separated list of NAME://host:port",
        ),
        kafka_default="PLAINTEXT://:9092",
        reason="Which listeners a node needs depends on its roles, so Brook has no default and checks them by role.",
    ),
    _key(
        "advertised.listeners",
        "list",
        (),
        "The addresses other nodes and clients use, `NAME://host:port` with a reachable host. A listener not listed here is advertised as bound; a listener bound to a wildcard host must be listed here.",
        validator=Custom(
            _check_advertised, "a comma-separated list of NAME://host:port with a reachable host"
        ),
    ),
    _key(
        "inter.broker.listener.name",
        "string",
        "GRPC",
        "The listener brokers use to reach each other. Brook brokers replicate over gRPC, so this is the `GRPC` listener; a Kafka listener named here (as in a Kafka server.properties) is accepted and only noted in the log: replication still uses GRPC, and clients on that listener are answered with that listener's addresses as on any other.",
        validator=Custom(_check_listener_name, "a listener name"),
        kafka_default="(from security.inter.broker.protocol: PLAINTEXT)",
        reason="Replication is gRPC (DESIGN: followers pull over gRPC), not the Kafka protocol.",
    ),
    _key(
        "controller.listener.names",
        "list",
        ("CONTROLLER",),
        "The listener controllers serve brokers and the admin CLI on. Brook's controller listener is always called `CONTROLLER` (a gRPC service), so this is CONTROLLER or empty.",
        validator=Custom(_check_controller_listener_names, "CONTROLLER"),
        kafka_default="(none; required in KRaft mode)",
        reason="Brook has one controller listener, a gRPC service named CONTROLLER.",
    ),
    # -- controller quorum --
    _key(
        "controller.quorum.voters",
        "list",
        (),
        "The Raft voters, `id@host:port,...`: the controllers' pysyncobj (Raft) addresses. Every controller lists the same set.",
        validator=Custom(_check_voters, "a comma-separated list of id@host:port"),
    ),
    _key(
        "controller.quorum.bootstrap.servers",
        "list",
        (),
        "The controllers' gRPC addresses (their CONTROLLER listeners), `host:port,...`, for brokers and the admin CLI. Required for brokers.",
        validator=Custom(_check_servers, "a comma-separated list of host:port"),
    ),
    _key(
        "controller.quorum.secret",
        "password",
        None,
        "The shared secret of the Raft port. pysyncobj's wire format is pickle, so an open Raft port without a secret lets anyone who reaches it run code: a controller refuses to start without one. Never printed.",
        validator=Custom(_check_secret, "a secret of at least 16 characters"),
        brook_only=True,
        reason="Kafka's Raft port is not pickle-based; Brook's is.",
    ),
    _key(
        "controller.quorum.insecure.dev",
        "bool",
        False,
        "Allow a controller to start without `controller.quorum.secret`. Only for throwaway local clusters on loopback.",
        brook_only=True,
        reason="The explicit opt-out of the secret check.",
    ),
    _key(
        "controller.quorum.election.timeout.ms",
        "int",
        500,
        "Raft election timeout: pysyncobj's raftMinTimeout; raftMaxTimeout is twice this. A follower that hears nothing from the leader for a random time in [t, 2t] starts an election.",
        validator=Range(10, None),
        kafka_default=1000,
        reason="Brook's failover target is a new active controller within 3 s of the old one dying; a randomized [1000, 2000] ms timeout plus failure detection and reconnects leaves little margin. [500, 1000] ms measured a median failover under 1 s on a 2-core machine, while 300 ms saw spurious elections when the machine was saturated by a full test run.",
    ),
    _key(
        "controller.quorum.fetch.timeout.ms",
        "int",
        2000,
        "Accepted for Kafka compatibility. pysyncobj has no separate fetch timeout: a follower starts an election after `controller.quorum.election.timeout.ms`.",
        validator=_NONNEG,
    ),
    _key(
        "controller.quorum.request.timeout.ms",
        "int",
        2000,
        "Deadline of one request to a controller (register, heartbeat, admin) before the caller retries, possibly another controller.",
        validator=_POS,
    ),
    _key(
        "controller.quorum.connection.retry.ms",
        "int",
        500,
        "How soon pysyncobj reconnects to a voter it lost (connectionRetryTime).",
        validator=Range(10, None),
        brook_only=True,
        reason="pysyncobj's default of 5 s made failovers after a controller restart take 3.5-4.8 s.",
    ),
    _key(
        "controller.quorum.leader.fallback.ms",
        "int",
        2000,
        "A Raft leader that has not heard from a majority for this long steps down (pysyncobj leaderFallbackTimeout). Must exceed the election timeout.",
        validator=Range(10, None),
        brook_only=True,
        reason="pysyncobj's default of 30 s lets a leader cut off from the majority believe it leads for 30 s.",
    ),
    _key(
        "metadata.log.dir",
        "string",
        "",
        "Where a controller keeps the Raft journal and snapshots. Empty: the first of `log.dirs`.",
    ),
    # -- storage --
    _key(
        "log.dirs",
        "list",
        ("/tmp/brook-logs",),
        "The directory that holds partition data. A broker uses exactly one (one RocksDB per broker); a list of several, as with Kafka's JBOD, is refused at start. A controller-only node uses the first for its metadata when `metadata.log.dir` is not set.",
        validator=Custom(_check_dirs, "a comma-separated list of distinct directories"),
        kafka_default="/tmp/kafka-logs",
        reason="Brook's own folder name (Kafka's default comes from `log.dir`).",
    ),
    _key(
        "log.retention.ms",
        "long",
        604800000,
        "Default for topic `retention.ms`: how long a log segment is kept before deletion; -1 = forever. Aliases: `log.retention.minutes`, `log.retention.hours` (ms wins over minutes over hours in one source).",
        validator=Range(-1, None),
        dynamic=True,
    ),
    _key(
        "log.retention.bytes",
        "long",
        -1,
        "Default for topic `retention.bytes`: the size a partition may grow to before old segments are deleted; -1 = no limit.",
        validator=Range(-1, None),
        dynamic=True,
    ),
    _key(
        "log.segment.bytes",
        "int",
        1073741824,
        "Default for topic `segment.bytes`: the size of one log segment.",
        validator=Range(14, None),
        dynamic=True,
    ),
    _key(
        "log.roll.ms",
        "long",
        604800000,
        "Default for topic `segment.ms`: a segment is rolled after this long even if not full. Alias: `log.roll.hours`.",
        validator=_POS,
        dynamic=True,
    ),
    _key(
        "log.retention.check.interval.ms", "long", 300000, "How often retention is enforced.", validator=_POS
    ),
    _key(
        "log.cleanup.policy",
        "list",
        ("delete",),
        "Default for topic `cleanup.policy`: `delete`, `compact`, or `compact,delete`.",
        validator=_CLEANUP,
        dynamic=True,
    ),
    _key(
        "log.cleaner.delete.retention.ms",
        "long",
        86400000,
        "Default for topic `delete.retention.ms`: how long tombstones are kept in compacted topics.",
        validator=_NONNEG,
        dynamic=True,
    ),
    _key(
        "producer.id.expiration.ms",
        "int",
        86400000,
        "How long a producer id is remembered (its sequence numbers, for idempotence) after its last batch's timestamp; idle ones are forgotten so producer state stays bounded.",
        validator=Range(1, None),
    ),
    _key(
        "producer.id.expiration.check.interval.ms",
        "int",
        600000,
        "How often every partition's producer state is checked for expired producer ids.",
        validator=Range(1, None),
    ),
    _key(
        "log.cleaner.dedupe.buffer.size",
        "long",
        134217728,
        "Memory for the compaction key map, in bytes (each key costs its length plus about 100 bytes in Python). A pass that fills it compacts the log up to there; the next pass continues.",
        validator=_NONNEG,
    ),
    _key(
        "log.cleaner.min.compaction.lag.ms",
        "long",
        0,
        "Default for topic `min.compaction.lag.ms`: the minimum time a message stays uncompacted.",
        validator=_NONNEG,
        dynamic=True,
    ),
    _key(
        "log.flush.interval.messages",
        "long",
        LONG_MAX,
        "Default for topic `flush.messages`: fsync after this many messages (default: leave it to the OS and replication).",
        validator=_POS,
        dynamic=True,
    ),
    _key(
        "log.flush.interval.ms",
        "long",
        -1,
        "Default for topic `flush.ms`: fsync after this long; -1 = unset (no time-based flush).",
        validator=Range(-1, None),
        dynamic=True,
        kafka_default="null",
        reason="Kafka's null (unset); Brook spells unset as -1. Same behaviour.",
    ),
    _key(
        "log.message.timestamp.type",
        "string",
        "CreateTime",
        "Default for topic `message.timestamp.type`: `CreateTime` (the producer's) or `LogAppendTime` (the broker's).",
        validator=_TIMESTAMP,
        dynamic=True,
    ),
    _key(
        "message.max.bytes",
        "int",
        RECORD_BATCH_BYTES_DEFAULT,
        "Default for topic `max.message.bytes`: the largest record batch a broker accepts.",
        validator=_NONNEG,
        dynamic=True,
    ),
    _key(
        "compression.type",
        "string",
        "producer",
        "Default for topic `compression.type`: the codec batches are stored with; `producer` keeps the producer's codec.",
        validator=_COMPRESSION,
        dynamic=True,
    ),
    # -- topics and replication --
    _key(
        "num.partitions",
        "int",
        1,
        "Partitions of a topic created without a partition count (including auto-created topics).",
        validator=_POS,
    ),
    _key(
        "default.replication.factor",
        "int",
        1,
        "Replication factor of a topic created without one.",
        validator=Range(1, 32767),
    ),
    _key(
        "min.insync.replicas",
        "int",
        1,
        "Default for topic `min.insync.replicas`: with acks=all, the fewest in-sync replicas a write needs.",
        validator=_POS,
        dynamic=True,
    ),
    _key(
        "unclean.leader.election.enable",
        "bool",
        False,
        "Default for topic `unclean.leader.election.enable`: elect a replica outside the ISR when no ISR member is alive (may lose data).",
        dynamic=True,
    ),
    _key(
        "auto.create.topics.enable",
        "bool",
        True,
        "Create a topic when a client asks for metadata of an unknown one.",
    ),
    _key("delete.topic.enable", "bool", True, "Allow topic deletion."),
    _key(
        "auto.leader.rebalance.enable",
        "bool",
        True,
        "Move leadership back to preferred leaders when the imbalance exceeds `leader.imbalance.per.broker.percentage`.",
        dynamic=True,
    ),
    _key(
        "leader.imbalance.per.broker.percentage",
        "int",
        10,
        "Allowed share of a broker's partitions not led by their preferred leader, in percent.",
        validator=Range(0, 100),
        dynamic=True,
    ),
    _key(
        "leader.imbalance.check.interval.seconds",
        "long",
        300,
        "How often the controller checks leader imbalance.",
        validator=_POS,
    ),
    _key(
        "leader.replication.throttled.rate",
        "long",
        LONG_MAX,
        "Bytes per second a leader sends to the joining replicas of partitions being reassigned (the reassignment's catch-up traffic; other replication is never throttled). Set it on a broker or cluster-wide, or with `brook partitions reassign --execute --throttle`.",
        validator=Range(1, None),
        dynamic=True,
    ),
    _key(
        "follower.replication.throttled.rate",
        "long",
        LONG_MAX,
        "Bytes per second a joining replica of a partition being reassigned fetches from its leader (the follower side of `leader.replication.throttled.rate`).",
        validator=Range(1, None),
        dynamic=True,
    ),
    _key(
        "replica.lag.time.max.ms",
        "long",
        30000,
        "A follower that has not caught up with the leader for this long leaves the ISR.",
        validator=_POS,
    ),
    _key(
        "replica.fetch.wait.max.ms",
        "int",
        500,
        "How long a follower's long-poll fetch waits for data. Must be below `replica.lag.time.max.ms` and `replica.socket.timeout.ms`.",
        validator=_NONNEG,
    ),
    _key(
        "replica.fetch.max.bytes",
        "int",
        1048576,
        "Bytes a follower fetch asks for per partition (a larger first batch is still returned).",
        validator=_POS,
    ),
    _key(
        "replica.fetch.response.max.bytes",
        "int",
        10485760,
        "Bytes a follower fetch asks for in total.",
        validator=_POS,
    ),
    _key("replica.socket.timeout.ms", "int", 30000, "Deadline of a follower fetch RPC.", validator=_POS),
    _key(
        "grpc.max.message.bytes",
        "int",
        GRPC_MESSAGE_BYTES_MAX,
        "Largest gRPC message Brook sends or accepts. Must exceed `replica.fetch.response.max.bytes`.",
        validator=Range(4 * 1024 * 1024, None),
        brook_only=True,
        reason="gRPC's own 4 MiB limit is below a fetch response of `replica.fetch.response.max.bytes` (10 MiB) and a full metadata image.",
    ),
    # -- observability --
    _key(
        "metrics.port",
        "int",
        0,
        "The node's HTTP port for Prometheus metrics (`/metrics`), health (`/healthz/live`, `/healthz/ready`) and the status page (`/ui`). 0: no HTTP endpoint. See OPERATIONS.md.",
        validator=Range(0, 65535),
        brook_only=True,
        reason="Kafka exposes JMX and needs the Prometheus JMX exporter agent; Brook serves the same metric names itself.",
    ),
    _key(
        "metrics.host",
        "string",
        "0.0.0.0",
        "The address the metrics/health/status HTTP endpoint binds (0.0.0.0: every interface). It is read-only and unauthenticated: bind it to a private network.",
        brook_only=True,
        reason="Goes with `metrics.port`.",
    ),
    # -- broker lifecycle --
    _key(
        "broker.heartbeat.interval.ms",
        "int",
        2000,
        "How often a broker heartbeats to the active controller.",
        validator=_POS,
    ),
    _key(
        "broker.session.timeout.ms",
        "int",
        9000,
        "A broker without a heartbeat for this long is fenced. Must exceed `broker.heartbeat.interval.ms`.",
        validator=_POS,
    ),
    _key(
        "controlled.shutdown.enable",
        "bool",
        True,
        "On SIGTERM a broker asks the controller to move its leaderships away before it stops.",
    ),
    _key(
        "controlled.shutdown.timeout.ms",
        "int",
        10000,
        "How long a broker waits for a controlled shutdown before stopping anyway.",
        validator=_NONNEG,
        brook_only=True,
        reason="Kafka bounds it with controlled.shutdown.max.retries and retry.backoff.ms; Brook uses one deadline.",
    ),
    # -- network --
    _key(
        "socket.request.max.bytes", "int", KAFKA_REQUEST_BYTES_DEFAULT, "Largest Kafka request a broker reads.", validator=_POS
    ),
    # -- hostile-input limits (issue 11) --
    _key(
        "fetch.max.bytes", "int", 57671680,
        "The most bytes a broker returns for one Fetch request (a client's larger max_bytes is lowered to it).",
        validator=_POS,
    ),
    _key(
        "max.incremental.fetch.session.cache.slots", "int", 1000,
        "Consumer fetch sessions (KIP-227) a broker keeps; a new one evicts an idle or smaller one, or the "
        "client is served without a session.",
        validator=_NONNEG,
    ),
    _key(
        "min.incremental.fetch.session.eviction.ms", "int", 120000,
        "A consumer fetch session unused this long may be evicted for a new one.",
        validator=_NONNEG,
    ),
    _key(
        "max.connections", "int", 10000, "Kafka connections a broker accepts at once; more are closed at accept.",
        validator=_POS, kafka_default=2147483647,
        reason="A limit on everything: each connection holds buffers and in-flight requests.",
    ),
    _key(
        "max.connections.per.ip", "int", 1000, "Kafka connections a broker accepts at once from one IP address.",
        validator=_POS, kafka_default=2147483647,
        reason="One client host cannot take every connection slot.",
    ),
    _key(
        "connections.max.idle.ms",
        "long",
        600000,
        "Idle Kafka connections are closed after this long.",
        validator=_POS,
    ),
    _key(
        "request.timeout.ms",
        "int",
        30000,
        "Deadline of requests a broker itself sends to other brokers.",
        validator=_NONNEG,
    ),
    # -- groups --
    _key(
        "group.initial.rebalance.delay.ms",
        "int",
        3000,
        "How long the coordinator waits for more members before the first rebalance of an empty group. Kafka's value, kept; set 0 in tests for faster joins.",
        validator=_NONNEG,
    ),
    _key(
        "group.min.session.timeout.ms",
        "int",
        6000,
        "Smallest session timeout a group member may ask for.",
        validator=_NONNEG,
    ),
    _key(
        "group.max.session.timeout.ms",
        "int",
        1800000,
        "Largest session timeout a group member may ask for.",
        validator=_NONNEG,
    ),
    _key(
        "offsets.topic.num.partitions",
        "int",
        10,
        "Partitions of the internal `__consumer_offsets` topic (fixed once it exists).",
        validator=_POS,
        kafka_default=50,
        reason="Brook targets small clusters, and every partition costs a Python broker a log, replication work and memory; 10 spreads groups over a small cluster.",
    ),
    _key(
        "offsets.topic.replication.factor",
        "int",
        3,
        "Replication factor of `__consumer_offsets`; creation waits until this many brokers are registered.",
        validator=Range(1, 32767),
    ),
    _key(
        "transaction.state.log.num.partitions",
        "int",
        50,
        "Partitions of the internal `__transaction_state` topic (fixed once it exists).",
        validator=_POS,
    ),
    _key(
        "transaction.state.log.replication.factor",
        "int",
        3,
        "Replication factor of `__transaction_state`; creation waits until this many brokers are registered.",
        validator=Range(1, 32767),
    ),
    _key(
        "transaction.state.log.min.isr",
        "int",
        2,
        "min.insync.replicas of `__transaction_state` (capped at its replication factor).",
        validator=_POS,
    ),
    _key(
        "transaction.max.timeout.ms",
        "int",
        900000,
        "Largest transaction.timeout.ms a transactional producer may ask for.",
        validator=_POS,
    ),
    _key(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "int",
        10000,
        "How often the transaction coordinator aborts transactions past their timeout.",
        validator=_POS,
    ),
    _key(
        "transactional.id.expiration.ms",
        "int",
        604800000,
        "A transactional id with no transaction in progress and no state change for this long is removed "
        "from `__transaction_state` (a tombstone); its next InitProducerId gets a new producer id.",
        validator=Range(1, None),
    ),
    _key(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "int",
        3600000,
        "How often the transaction coordinator removes transactional ids past transactional.id.expiration.ms.",
        validator=_POS,
    ),
    _key(
        "offsets.retention.minutes",
        "int",
        10080,
        "Committed offsets of an empty group are kept this long.",
        validator=_POS,
    ),
]

_SERVER.extend(SECURITY_KEYS)
_names = [k.name for k in _SERVER]
assert len(_names) == len(set(_names)), f"config keys defined twice: {sorted({n for n in _names if _names.count(n) > 1})}"

SERVER_KEYS: Mapping[str, ConfigKey] = MappingProxyType({k.name: k for k in _SERVER})

# Topic key -> the server key that gives its default.
TOPIC_TO_SERVER_DEFAULT: Mapping[str, str] = MappingProxyType(
    {
        "retention.ms": "log.retention.ms",
        "retention.bytes": "log.retention.bytes",
        "segment.bytes": "log.segment.bytes",
        "segment.ms": "log.roll.ms",
        "cleanup.policy": "log.cleanup.policy",
        "delete.retention.ms": "log.cleaner.delete.retention.ms",
        "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
        "max.message.bytes": "message.max.bytes",
        "min.insync.replicas": "min.insync.replicas",
        "unclean.leader.election.enable": "unclean.leader.election.enable",
        "flush.messages": "log.flush.interval.messages",
        "flush.ms": "log.flush.interval.ms",
        "message.timestamp.type": "log.message.timestamp.type",
        "compression.type": "compression.type",
    }
)

_TOPIC_DOCS = {
    "retention.ms": "How long a log segment is kept before deletion; -1 = forever.",
    "retention.bytes": "The size a partition may grow to before old segments are deleted; -1 = no limit.",
    "segment.bytes": "The size of one log segment.",
    "segment.ms": "A segment is rolled after this long even if not full.",
    "cleanup.policy": "`delete`, `compact`, or `compact,delete`.",
    "delete.retention.ms": "How long tombstones are kept in a compacted topic.",
    "min.compaction.lag.ms": "The minimum time a message stays uncompacted.",
    "max.message.bytes": "The largest record batch the topic accepts.",
    "min.insync.replicas": "With acks=all, the fewest in-sync replicas a write needs.",
    "unclean.leader.election.enable": "Elect a replica outside the ISR when no ISR member is alive (may lose data).",
    "flush.messages": "fsync after this many messages.",
    "flush.ms": "fsync after this long; -1 = no time-based flush (Kafka's topic default is Long.MAX for the same).",
    "message.timestamp.type": "`CreateTime` (the producer's) or `LogAppendTime` (the broker's).",
    "compression.type": "The codec batches are stored with; `producer` keeps the producer's.",
}

def _throttled_replicas(value: Any) -> Any:
    """Kafka's `[PartitionId]:[BrokerId],...` or the wildcard `*` (empty: none)."""
    if value == ("*",):
        return value
    for item in value:
        partition, sep, broker = item.partition(":")
        if not (sep and partition.isdigit() and broker.isdigit()):
            raise _Invalid("expected '*' or a comma-separated list of PARTITION:BROKER (e.g. 0:1,0:2)")
    return value


# Topic keys without a server default (Kafka's defaults are empty): the replicas kafka-reassign-partitions
# --throttle names; replication to them out of the ISR goes at the broker's *.replication.throttled.rate.
TOPIC_ONLY_KEYS: tuple[ConfigKey, ...] = tuple(
    ConfigKey(
        name=f"{side}.replication.throttled.replicas",
        type="list",
        default=(),
        doc=f"Replicas (`PARTITION:BROKER,...` or `*`) whose replication out of the ISR is throttled on the "
            f"{side} side at the broker's `{side}.replication.throttled.rate`, as kafka-reassign-partitions "
            "--throttle sets them (a reassignment's joining replicas are throttled whether or not they are listed).",
        scope="topic",
        validator=Custom(_throttled_replicas, "'*' or PARTITION:BROKER,..."),
        dynamic=True,
    )
    for side in ("leader", "follower")
)

TOPIC_KEYS: Mapping[str, ConfigKey] = MappingProxyType(
    {
        **{
            topic: ConfigKey(
                name=topic,
                type=SERVER_KEYS[server].type,
                default=SERVER_KEYS[server].default,
                doc=_TOPIC_DOCS[topic],
                scope="topic",
                validator=SERVER_KEYS[server].validator,
                dynamic=True,
                server_default=server,
            )
            for topic, server in TOPIC_TO_SERVER_DEFAULT.items()
        },
        **{key.name: key for key in TOPIC_ONLY_KEYS},
    }
)

# Older Kafka spellings accepted in files, env and overrides: alias -> (key, multiplier to ms).
# Within one source the precise key wins: ms over minutes over hours. A later source wins over an earlier one.
ALIASES: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        "log.retention.hours": ("log.retention.ms", 3_600_000),
        "log.retention.minutes": ("log.retention.ms", 60_000),
        "log.roll.hours": ("log.roll.ms", 3_600_000),
    }
)
_ALIAS_ORDER = {"log.retention.hours": 0, "log.roll.hours": 0, "log.retention.minutes": 1}

assert all("_" not in name for name in SERVER_KEYS), "BROOK_CFG_* env mapping assumes no '_' in key names"

# Kafka broker keys that do not apply to Brook: accepted in files, env and overrides with one warning
# each (all listed at once), so a Kafka server.properties can be reused. key -> why it does not apply.
_THREADS = "Brook serves each process from one asyncio event loop; there are no thread pools to size"
_NO_SHARE = "Brook has no share groups (KIP-932), so there is no share-coordinator state topic"
_NO_FILES = "Brook stores logs in RocksDB keyed by offset: there are no segment or index files"
KAFKA_IGNORED: Mapping[str, str] = MappingProxyType(
    {
        "num.network.threads": _THREADS,
        "num.io.threads": _THREADS,
        "background.threads": _THREADS,
        "num.replica.fetchers": "a follower keeps one gRPC fetch stream per source broker",
        "num.recovery.threads.per.data.dir": "RocksDB recovers its own write-ahead log on open",
        "socket.send.buffer.bytes": "the operating system's socket buffer sizes apply",
        "socket.receive.buffer.bytes": "the operating system's socket buffer sizes apply",
        "queued.max.requests": "each connection's in-flight requests are bounded instead",
        "share.coordinator.state.topic.replication.factor": _NO_SHARE,
        "share.coordinator.state.topic.min.isr": _NO_SHARE,
        "share.coordinator.state.topic.num.partitions": _NO_SHARE,
        "group.coordinator.rebalance.protocols": "Brook's groups use the classic rebalance protocol only",
        "log.index.size.max.bytes": _NO_FILES,
        "log.index.interval.bytes": _NO_FILES,
        "log.preallocate": _NO_FILES,
        "log.flush.scheduler.interval.ms": "flush.ms is checked on append and by a fixed background check",
        "offsets.topic.segment.bytes": "__consumer_offsets uses log.segment.bytes like every topic",
        "security.inter.broker.protocol": "brokers replicate over the GRPC listener, not a Kafka listener",
        "inter.broker.protocol.version": "Brook has one inter-broker protocol (gRPC, proto/)",
        "log.message.format.version": "Brook stores record batches of magic 2 only",
        "zookeeper.connect": "Brook's metadata lives in its controller quorum (KRaft-style), not ZooKeeper",
        "zookeeper.connection.timeout.ms": "Brook's metadata lives in its controller quorum (KRaft-style), not ZooKeeper",
        "metric.reporters": "Brook has no JMX metric reporters",
        "kafka.metrics.reporters": "Brook has no JMX metric reporters",
    }
)
