"""Kafka API handlers: kio request dataclasses in, kio response dataclasses out, over a `BrokerCore`.

Each handler is written once for every version it serves: responses are built with `codec.build`,
which keeps only the fields the version's dataclass has. Per-partition work is an `ErrorCode` in the
response, never an exception; a handler that raises anyway is a bug, which the server logs in one line
before closing that one connection.

Group APIs (FindCoordinator, JoinGroup, ... OffsetDelete) are not implemented here: the group
coordinator hands the listener a `{api_key: handler}` mapping (and the version range of each), and
`KafkaHandlers.handle` forwards those requests unchanged.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from kio.schema.errors import ErrorCode

from broker.api import (
    AlterConfigOp,
    BrokerCore,
    DeleteRecordsResult,
    FetchPartition,
    FetchResult,
    NewPartitions,
    NewTopic,
    ProduceResult,
    ProducersResult,
    ResourceConfigResult,
)
from broker.kafka import security_handlers
from broker.kafka.codec import ZERO_MS, build, field_is_nullable, ms, response_module
from broker.kafka.fetch_sessions import FINAL_EPOCH, FetchParams, FetchPlan, FetchSessionCache
from broker.kafka.session import ALLOW_ALL, RequestContext
from brookpb import admin_pb2 as apb
from cluster.internal_topics import INTERNAL_TOPICS, is_internal
from cluster.records import RESOURCE_TOPIC
from cluster.security.acl import AclOperation as Op
from cluster.security.acl import ResourceType as Res
from storage.batch import BATCH_HEADER_BYTES, parse_header

__all__ = [
    "API_VERSIONS",
    "GroupHandler",
    "KafkaHandlers",
    "check_batches",
    "new_fetch_session_cache",
]

log = logging.getLogger("broker.kafka")

GroupHandler = Callable[[Any, int], Awaitable[Any]]

# The API versions this listener serves. Each range is limited to what kio encodes (verified by
# tests/unit/kafka/test_codec.py round-trips) and to versions whose fields Brook fills:
#   Produce 3..11     v3 is the first with magic-2 batches; v12 changes nothing we need; v13 needs topic ids.
#   Fetch 4..12       v13+ addresses topics by id only; clients fall back to v12 (topic names).
#   ListOffsets 1..7  v8 adds MAX_TIMESTAMP (-3), which BrokerCore does not offer.
#   InitProducerId 0..5  v6 is two-phase commit (KIP-939).
API_VERSIONS: Mapping[int, tuple[int, int]] = {
    0: (3, 11),    # Produce
    1: (4, 12),    # Fetch
    2: (1, 7),     # ListOffsets
    3: (0, 12),    # Metadata
    18: (0, 3),    # ApiVersions
    19: (2, 7),    # CreateTopics
    20: (1, 6),    # DeleteTopics
    22: (0, 5),    # InitProducerId
    23: (2, 4),    # OffsetForLeaderEpoch
    32: (1, 4),    # DescribeConfigs
    33: (0, 2),    # AlterConfigs
    43: (0, 2),    # ElectLeaders
    44: (0, 1),    # IncrementalAlterConfigs
    45: (0, 1),    # AlterPartitionReassignments
    46: (0, 0),    # ListPartitionReassignments
    64: (0, 0),    # UnregisterBroker
    21: (0, 2),    # DeleteRecords
    35: (1, 5),    # DescribeLogDirs (kio has no v0, which Kafka 4 dropped; v5's is_cordoned stays false)
    61: (0, 0),    # DescribeProducers
    37: (0, 3),    # CreatePartitions
    55: (0, 1),    # DescribeQuorum
    60: (0, 1),    # DescribeCluster
    17: (0, 1),    # SaslHandshake (answered by the listener's connection state, see server.py)
    36: (0, 2),    # SaslAuthenticate
    **security_handlers.API_VERSIONS,
}

# Group-coordinator API keys; the listener serves them only through `group_handlers`.
GROUP_API_KEYS = frozenset({8, 9, 10, 11, 12, 13, 14, 15, 16, 42, 47})

_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
# kio reads the all-zero UUID (Kafka's "no topic id") as None and writes None as zeros.
_NO_UUID = None
_INTERNAL_TOPICS = INTERNAL_TOPICS
# The metadata log as DescribeQuorum names it (Kafka's KRaft topic).
METADATA_TOPIC = "__cluster_metadata"
# DescribeConfigs config_source values (DescribeConfigsResponse.json).
_SOURCE_TOPIC = 1
_SOURCE_DYNAMIC_BROKER = 2
_SOURCE_STATIC_BROKER = 4
_SOURCE_DEFAULT = 5


def _topic_uuid(topic_id: bytes) -> uuid.UUID | None:
    if len(topic_id) != 16 or topic_id == bytes(16):
        return _NO_UUID
    return uuid.UUID(bytes=topic_id)


# A produce request with more batches than this for one partition is refused (a limit on the walk).
BATCHES_PER_PARTITION_MAX = 100_000


def check_batches(records: bytes | None) -> tuple[ErrorCode, str] | None:
    """What the listener refuses before the core sees a partition's records: None when acceptable.

    Only headers are read: magic must be 2 and batches must not be control batches (only the
    transaction coordinator writes markers). CRCs and everything else are the core's to validate.
    """
    if not records:
        return ErrorCode.invalid_record, "the partition's record set is empty"
    offset = 0
    for _ in range(BATCHES_PER_PARTITION_MAX):
        if offset == len(records):
            return None
        if len(records) - offset < BATCH_HEADER_BYTES:
            return ErrorCode.corrupt_message, f"truncated record batch at byte {offset}"
        header = parse_header(records, offset)
        if header.magic != 2:
            return ErrorCode.unsupported_for_message_format, f"record batch magic {header.magic}; Brook accepts magic 2"
        if header.is_control:
            return ErrorCode.invalid_record, "control batches may not be produced by clients"
        if header.is_transactional and header.producer_id < 0:
            return ErrorCode.invalid_record, "a transactional batch needs a producer id"
        if header.size_bytes < BATCH_HEADER_BYTES or offset + header.size_bytes > len(records):
            return ErrorCode.corrupt_message, f"record batch length {header.batch_length} does not fit the record set"
        offset += header.size_bytes
    return ErrorCode.invalid_record, f"more than {BATCHES_PER_PARTITION_MAX} batches in one partition"


# Partitions all consumer fetch sessions of a broker hold together (Brook's bound; Kafka bounds only
# the slots): the cluster's partition cap, so one consumer of every partition still gets a session.
FETCH_SESSION_PARTITIONS_MAX = 200_000


def new_fetch_session_cache(slots_max: int = 1000, eviction_ms: int = 120_000,
                            partitions_max: int = FETCH_SESSION_PARTITIONS_MAX) -> FetchSessionCache:
    """A consumer fetch session cache with random 31-bit session ids (Kafka's defaults: 1,000 slots,
    sessions idle for 2 minutes may be evicted)."""
    return FetchSessionCache(slots_max, partitions_max, eviction_ms, new_id=lambda: secrets.randbelow(2**31 - 1) + 1)


class KafkaHandlers:
    """Dispatches decoded requests to the core (or to the group handlers).

    One instance per Kafka listener: `listener` is its name, and Metadata, DescribeCluster and Produce's
    leader hints give each broker's address on the listener of that name (Kafka's rule: a client is
    answered in the network it connected from). None: each broker's first Kafka listener.
    """

    # The broker's fetch.max.bytes (Kafka's default, 55 MiB): no Fetch response is asked for more.
    fetch_bytes_max: int = 57_671_680

    def __init__(
        self,
        core: BrokerCore,
        group_handlers: Mapping[int, GroupHandler] | None = None,
        group_versions: Mapping[int, tuple[int, int]] | None = None,
        listener: str | None = None,
        fetch_sessions: FetchSessionCache | None = None,
    ) -> None:
        self.core = core
        self.listener = listener
        # Consumer fetch sessions (KIP-227); the listener start-up sizes it from the broker's config.
        self.fetch_sessions = fetch_sessions or new_fetch_session_cache()
        self.group_handlers: dict[int, GroupHandler] = dict(group_handlers or {})
        versions = dict(API_VERSIONS)
        group_versions = dict(group_versions or {})
        for api_key in self.group_handlers:
            if api_key not in group_versions:
                raise ValueError(f"group handler for api_key {api_key} has no version range")
            versions[api_key] = group_versions[api_key]
        self.versions: Mapping[int, tuple[int, int]] = versions
        self._dispatch: dict[int, Callable[[Any, int], Awaitable[Any]]] = {
            0: self.produce,
            1: self.fetch,
            2: self.list_offsets,
            3: self.metadata,
            18: self.api_versions,
            19: self.create_topics,
            20: self.delete_topics,
            22: self.init_producer_id,
            23: self.offset_for_leader_epoch,
            32: self.describe_configs,
            33: self.alter_configs,
            43: self.elect_leaders,
            44: self.incremental_alter_configs,
            45: self.alter_partition_reassignments,
            46: self.list_partition_reassignments,
            64: self.unregister_broker,
            21: self.delete_records,
            35: self.describe_log_dirs,
            61: self.describe_producers,
            37: self.create_partitions,
            55: self.describe_quorum,
            60: self.describe_cluster,
            17: self.sasl_not_expected,
            36: self.sasl_not_expected,
        }
        self._security = security_handlers.SecurityHandlers(core)
        self._dispatch.update(self._security.handlers())
        self._dispatch.update(self.group_handlers)

    async def handle(self, api_key: int, api_version: int, request: Any,
                     context: RequestContext | None = None) -> Any | None:
        """The response dataclass, or None when no response is sent (Produce with acks=0).

        `context` (client id, host, principal, authorizer) reaches every handler: handlers authorize
        each resource they touch as Kafka's KafkaApis does, and the group handlers show the client in
        DescribeGroups. Without a context everything is allowed (unit tests of the handlers).
        """
        return await self._dispatch[api_key](request, api_version, context or ALLOW_ALL)  # type: ignore[call-arg]

    # ---------------------------------------------------------------- ApiVersions

    def api_versions_response(self, api_version: int, error: ErrorCode = ErrorCode.none) -> Any:
        mod = response_module(18, api_version)
        keys = tuple(
            build(mod.ApiVersion, api_key=key, min_version=low, max_version=high)
            for key, (low, high) in sorted(self.versions.items())
        )
        return build(mod.ApiVersionsResponse, error_code=error, api_keys=keys, throttle_time=ZERO_MS)

    async def api_versions(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        return self.api_versions_response(api_version)

    async def sasl_not_expected(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        """SASL requests on a listener without SASL, or after authentication: ILLEGAL_SASL_STATE (as Kafka).

        On SASL listeners the connection answers them itself before authentication (see server.py).
        """
        key = int(request.__api_key__)
        mod = response_module(key, api_version)
        if key == 17:
            return build(mod.SaslHandshakeResponse, error_code=ErrorCode.illegal_sasl_state, mechanisms=())
        return build(mod.SaslAuthenticateResponse, error_code=ErrorCode.illegal_sasl_state,
                     error_message="no SASL exchange is expected on this connection", auth_bytes=b"",
                     session_lifetime=ZERO_MS)

    # ---------------------------------------------------------------- Metadata

    def _live_brokers(self, listener: str = "") -> list[tuple[int, str, int, str | None]]:
        """Unfenced brokers with their address on Kafka listener `listener` (the one the client used)."""
        image = self.core.image()
        out = []
        for broker_id, registration in sorted(image.brokers.items()):
            if registration.fenced:
                continue
            address = self.core.advertised_kafka_address(broker_id, listener)
            if address is None:
                continue
            out.append((broker_id, address[0], address[1], registration.rack or None))
        return out

    def _controller_for_clients(self, live: Sequence[int]) -> int:
        """The controller id clients see: this broker, which forwards admin requests to the quorum.

        As in Kafka's KRaft mode, clients cannot reach the controllers, so the id returned in Metadata
        and DescribeCluster is a live broker (AdminClient sends CreateTopics etc. to it).
        """
        if self.core.broker_id in live:
            return self.core.broker_id
        return live[0] if live else -1

    async def metadata(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(3, api_version)
        image = self.core.image()
        live = self._live_brokers(ctx.listener)
        live_ids = {b[0] for b in live}
        brokers = tuple(
            build(mod.MetadataResponseBroker, node_id=i, host=h, port=p, rack=r) for i, h, p, r in live
        )
        requested = request.topics
        if api_version == 0 and requested == ():
            requested = None  # v0: an empty list means every topic
        allow_create = bool(getattr(request, "allow_auto_topic_creation", True))
        topics = []
        if requested is None:
            # Kafka: topics the principal may not DESCRIBE are left out of an all-topics answer.
            for topic in sorted(image.topics.values(), key=lambda t: t.name):
                if ctx.allowed(Op.DESCRIBE, Res.TOPIC, topic.name):
                    topics.append(self._metadata_topic(mod, topic.name, topic, live_ids))
        else:
            for entry in requested:
                name = entry.name
                if name is not None and not ctx.allowed(Op.DESCRIBE, Res.TOPIC, name):
                    topics.append(self._metadata_error(mod, name, ErrorCode.topic_authorization_failed))
                    continue
                # Auto-creation needs CREATE on the cluster or the topic, as in Kafka.
                may_create = allow_create and name is not None and (
                    ctx.cluster_allowed(Op.CREATE) or ctx.allowed(Op.CREATE, Res.TOPIC, name))
                topics.append(await self._metadata_requested(mod, entry, may_create, live_ids))
        return build(
            mod.MetadataResponse,
            throttle_time=ZERO_MS,
            brokers=brokers,
            cluster_id=image.cluster_id or None,
            controller_id=self._controller_for_clients(sorted(live_ids)),
            topics=tuple(topics),
            error_code=ErrorCode.none,
        )

    async def _metadata_requested(self, mod: ModuleType, entry: Any, allow_create: bool,
                                  live_ids: set[int]) -> Any:
        name = entry.name
        image = self.core.image()
        if name is None:
            topic_id = getattr(entry, "topic_id", None)
            by_id = image.topics.get(topic_id.bytes) if topic_id is not None else None
            if by_id is None:
                return self._metadata_error(mod, None, ErrorCode.unknown_topic_id, topic_id)
            return self._metadata_topic(mod, by_id.name, by_id, live_ids)
        if not _TOPIC_NAME.match(name) or name in (".", ".."):
            return self._metadata_error(mod, name, ErrorCode.invalid_topic_exception)
        topic = image.topic_by_name(name)
        if topic is None:
            if not allow_create:
                return self._metadata_error(mod, name, ErrorCode.unknown_topic_or_partition)
            error = await self.core.ensure_topic(name)
            topic = self.core.image().topic_by_name(name)
            if topic is None:
                # Created but not yet in this broker's image: clients retry LEADER_NOT_AVAILABLE.
                code = ErrorCode.leader_not_available if error == ErrorCode.none else error
                return self._metadata_error(mod, name, code)
        return self._metadata_topic(mod, name, topic, live_ids)

    @staticmethod
    def _metadata_error(mod: ModuleType, name: str | None, error: ErrorCode,
                        topic_id: uuid.UUID | None = None) -> Any:
        if name is None and not field_is_nullable(mod.MetadataResponseTopic, "name"):
            name = ""  # v10-11 look topics up by id but cannot answer a null name
        return build(mod.MetadataResponseTopic, error_code=error, name=name,
                     topic_id=topic_id, is_internal=False, partitions=())

    @staticmethod
    def _metadata_topic(mod: ModuleType, name: str, topic: Any, live_ids: set[int]) -> Any:
        partitions = []
        for index, p in sorted(topic.partitions.items()):
            leader_alive = p.leader >= 0 and p.leader in live_ids
            partitions.append(build(
                mod.MetadataResponsePartition,
                error_code=ErrorCode.none if leader_alive else ErrorCode.leader_not_available,
                partition_index=index,
                leader_id=p.leader if leader_alive else -1,
                leader_epoch=p.leader_epoch,
                replica_nodes=tuple(p.replicas),
                isr_nodes=tuple(p.isr),
                offline_replicas=tuple(r for r in p.replicas if r not in live_ids),
            ))
        return build(mod.MetadataResponseTopic, error_code=ErrorCode.none, name=name,
                     topic_id=_topic_uuid(topic.topic_id), is_internal=name in _INTERNAL_TOPICS,
                     partitions=tuple(partitions))

    # ---------------------------------------------------------------- Produce

    def _current_leader(self, topic: str, partition: int) -> tuple[int, int]:
        image = self.core.image()
        t = image.topic_by_name(topic)
        p = None if t is None else t.partitions.get(partition)
        return (-1, -1) if p is None else (p.leader, p.leader_epoch)

    async def _produce_one(self, topic: str, partition: int, records: bytes | None, acks: int,
                           timeout_ms: int, transactional: bool) -> ProduceResult:
        if is_internal(topic):
            return ProduceResult(ErrorCode.invalid_topic_exception, message=f"cannot append to internal topic {topic}")
        refused = check_batches(records)
        if refused is not None:
            return ProduceResult(refused[0], message=refused[1])
        if not transactional and records and parse_header(records).is_transactional:
            # Kafka: transactional batches come with the producer's transactional id.
            return ProduceResult(ErrorCode.invalid_record, message="transactional batches need a transactional id")
        assert records is not None
        try:
            return await self.core.produce(topic, partition, records, acks, timeout_ms)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error("produce %s-%d failed: %s: %s", topic, partition, type(e).__name__, e)
            return ProduceResult(ErrorCode.unknown_server_error, message="internal error")

    async def produce(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any | None:
        mod = response_module(0, api_version)
        acks = int(request.acks)
        timeout_ms = ms(request.timeout)
        transactional = request.transactional_id is not None
        keys: list[tuple[str, int]] = []
        calls = []
        writable = {t.name: ctx.allowed(Op.WRITE, Res.TOPIC, t.name) for t in request.topic_data}
        # Kafka: a transactional produce needs WRITE on its transactional id.
        tid_denied = transactional and not ctx.allowed(Op.WRITE, Res.TRANSACTIONAL_ID, request.transactional_id)
        for topic_data in request.topic_data:
            for partition_data in topic_data.partition_data:
                keys.append((topic_data.name, partition_data.index))
                if tid_denied:
                    calls.append(_done(ProduceResult(ErrorCode.transactional_id_authorization_failed,
                                                     message="not authorized to WRITE the transactional id")))
                elif not writable[topic_data.name]:
                    calls.append(_done(ProduceResult(ErrorCode.topic_authorization_failed,
                                                     message="not authorized to WRITE the topic")))
                elif acks not in (0, 1, -1):
                    calls.append(_done(ProduceResult(ErrorCode.invalid_required_acks,
                                                     message=f"acks must be 0, 1 or -1, not {acks}")))
                else:
                    # Coroutines are started in request order by gather, so appends to one partition
                    # from pipelined requests keep their order (see server.py).
                    calls.append(self._produce_one(topic_data.name, partition_data.index, partition_data.records,
                                                   acks, timeout_ms, transactional))
        results = await asyncio.gather(*calls)
        if acks == 0:
            return None
        by_topic: dict[str, list[Any]] = {}
        endpoints: dict[int, Any] = {}
        for (topic, partition), result in zip(keys, results, strict=True):
            leader = None
            if result.error in (ErrorCode.not_leader_or_follower, ErrorCode.fenced_leader_epoch):
                leader_id, leader_epoch = self._current_leader(topic, partition)
                leader = build(mod.LeaderIdAndEpoch, leader_id=leader_id, leader_epoch=leader_epoch) \
                    if hasattr(mod, "LeaderIdAndEpoch") else None
                if hasattr(mod, "NodeEndpoint") and leader_id >= 0:
                    address = self.core.advertised_kafka_address(leader_id, ctx.listener)
                    if address is not None:
                        endpoints[leader_id] = build(mod.NodeEndpoint, node_id=leader_id, host=address[0],
                                                     port=address[1])
            fields: dict[str, Any] = dict(
                index=partition,
                error_code=result.error,
                base_offset=result.base_offset,
                log_append_time=_append_time(result.log_append_time_ms),
                log_start_offset=result.log_start_offset,
                record_errors=(),
                error_message=result.message or None,
            )
            if leader is not None:
                fields["current_leader"] = leader
            by_topic.setdefault(topic, []).append(build(mod.PartitionProduceResponse, **fields))
        responses = tuple(
            build(mod.TopicProduceResponse, name=name, partition_responses=tuple(parts))
            for name, parts in by_topic.items()
        )
        return build(mod.ProduceResponse, responses=responses, throttle_time=ZERO_MS,
                     node_endpoints=tuple(endpoints.values()))

    # ---------------------------------------------------------------- Fetch

    async def fetch(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(1, api_version)
        plan = self._fetch_plan(request, ctx)
        if plan.error != ErrorCode.none:
            return build(mod.FetchResponse, throttle_time=ZERO_MS, error_code=plan.error, session_id=0, responses=())
        wanted: list[FetchPartition] = []
        denied: list[tuple[str, int]] = []
        readable: dict[str, bool] = {}
        for (topic, partition), params in plan.partitions:
            allowed = readable.get(topic)
            if allowed is None:
                allowed = readable[topic] = ctx.allowed(Op.READ, Res.TOPIC, topic)
            if not allowed:
                denied.append((topic, partition))
                continue
            wanted.append(FetchPartition(
                topic=topic, partition=partition, offset=params.fetch_offset,
                max_bytes=max(0, params.partition_max_bytes), current_leader_epoch=params.current_leader_epoch,
            ))
        results: list[FetchResult]
        read_committed = int(getattr(request, "isolation_level", 0)) == 1
        if wanted:
            try:
                max_bytes = min(max(0, getattr(request, "max_bytes", 2**31 - 1)), self.fetch_bytes_max)
                isolation = {"read_committed": True} if read_committed else {}
                results = await self.core.fetch(wanted, max(0, ms(request.max_wait)), max(0, request.min_bytes),
                                                max_bytes, **isolation)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.error("fetch failed: %s: %s", type(e).__name__, e)
                results = [FetchResult(ErrorCode.unknown_server_error) for _ in wanted]
            if len(results) != len(wanted):
                log.error("core.fetch returned %d results for %d partitions", len(results), len(wanted))
                results = [FetchResult(ErrorCode.unknown_server_error) for _ in wanted]
        else:
            results = []
        by_topic: dict[str, list[Any]] = {}
        for want, result in zip(wanted, results, strict=True):
            if not plan.answered((want.topic, want.partition), result.high_watermark, result.last_stable_offset,
                                 result.log_start_offset, bool(result.records), result.error != ErrorCode.none):
                continue  # an incremental answer leaves out a partition with no news
            fields: dict[str, Any] = dict(
                partition_index=want.partition,
                error_code=result.error,
                high_watermark=result.high_watermark,
                last_stable_offset=result.last_stable_offset if result.last_stable_offset >= 0 else result.high_watermark,
                log_start_offset=result.log_start_offset,
                aborted_transactions=_aborted(mod, result.aborted_transactions) if read_committed else None,
                preferred_read_replica=-1,
                records=result.records,
            )
            if result.error in (ErrorCode.not_leader_or_follower, ErrorCode.fenced_leader_epoch) \
                    and hasattr(mod, "LeaderIdAndEpoch"):
                leader_id, leader_epoch = self._current_leader(want.topic, want.partition)
                fields["current_leader"] = build(mod.LeaderIdAndEpoch, leader_id=leader_id, leader_epoch=leader_epoch)
            by_topic.setdefault(want.topic, []).append(build(mod.PartitionData, **fields))
        for topic_name, partition in denied:
            by_topic.setdefault(topic_name, []).append(build(
                mod.PartitionData, partition_index=partition, error_code=ErrorCode.topic_authorization_failed,
                high_watermark=-1, last_stable_offset=-1, log_start_offset=-1, aborted_transactions=None,
                preferred_read_replica=-1, records=None))
        responses = tuple(
            build(mod.FetchableTopicResponse, topic=name, partitions=tuple(parts)) for name, parts in by_topic.items()
        )
        return build(mod.FetchResponse, throttle_time=ZERO_MS, error_code=ErrorCode.none,
                     session_id=plan.response_session_id, responses=responses)

    def _fetch_plan(self, request: Any, ctx: RequestContext) -> FetchPlan:
        """The request against the fetch session cache (KIP-227; v4..6 carry no session: sessionless)."""
        listed = [((topic.topic, p.partition), FetchParams(p.fetch_offset, p.partition_max_bytes,
                                                           getattr(p, "current_leader_epoch", -1)))
                  for topic in request.topics for p in topic.partitions]
        forgotten = [(topic.topic, partition) for topic in getattr(request, "forgotten_topics_data", None) or ()
                     for partition in topic.partitions]
        return self.fetch_sessions.begin(int(getattr(request, "session_id", 0)),
                                         int(getattr(request, "session_epoch", FINAL_EPOCH)), listed, forgotten,
                                         ctx.principal, int(time.monotonic() * 1000))

    # ---------------------------------------------------------------- ListOffsets / OffsetForLeaderEpoch

    async def list_offsets(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(2, api_version)
        # isolation_level 1 (read_committed, v2+): "latest" is the last stable offset.
        isolation = {"read_committed": True} if int(getattr(request, "isolation_level", 0)) == 1 else {}
        topics = []
        for topic in request.topics:
            parts = []
            described = ctx.allowed(Op.DESCRIBE, Res.TOPIC, topic.name)
            for p in topic.partitions:
                if not described:
                    parts.append(build(mod.ListOffsetsPartitionResponse, partition_index=p.partition_index,
                                       error_code=ErrorCode.topic_authorization_failed, timestamp=-1, offset=-1,
                                       leader_epoch=-1))
                    continue
                result = self.core.list_offsets(topic.name, p.partition_index, p.timestamp,
                                                getattr(p, "current_leader_epoch", -1), **isolation)
                parts.append(build(mod.ListOffsetsPartitionResponse, partition_index=p.partition_index,
                                   error_code=result.error, timestamp=result.timestamp, offset=result.offset,
                                   leader_epoch=result.leader_epoch))
            topics.append(build(mod.ListOffsetsTopicResponse, name=topic.name, partitions=tuple(parts)))
        return build(mod.ListOffsetsResponse, throttle_time=ZERO_MS, topics=tuple(topics))

    async def offset_for_leader_epoch(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(23, api_version)
        topics = []
        for topic in request.topics:
            parts = []
            described = ctx.allowed(Op.DESCRIBE, Res.TOPIC, topic.topic)
            for p in topic.partitions:
                if not described:
                    parts.append(build(mod.EpochEndOffset, error_code=ErrorCode.topic_authorization_failed,
                                       partition=p.partition, leader_epoch=-1, end_offset=-1))
                    continue
                result = self.core.offset_for_leader_epoch(topic.topic, p.partition,
                                                           getattr(p, "current_leader_epoch", -1), p.leader_epoch)
                parts.append(build(mod.EpochEndOffset, error_code=result.error, partition=p.partition,
                                   leader_epoch=result.leader_epoch, end_offset=result.end_offset))
            topics.append(build(mod.OffsetForLeaderTopicResult, topic=topic.topic, partitions=tuple(parts)))
        return build(mod.OffsetForLeaderEpochResponse, throttle_time=ZERO_MS, topics=tuple(topics))

    # ---------------------------------------------------------------- InitProducerId

    async def init_producer_id(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(22, api_version)
        if request.transactional_id is not None:
            # Served by broker/kafka/txn_handlers.py when the listener has a transaction coordinator
            # (every `brook server` broker); without one (a bare listener) INVALID_REQUEST is fatal for
            # the client with a clear cause, where a retriable code would make it retry forever.
            log.info("refused InitProducerId for transactional.id=%r: this listener has no transaction coordinator",
                     request.transactional_id)
            return build(mod.InitProducerIdResponse, throttle_time=ZERO_MS, error_code=ErrorCode.invalid_request,
                         producer_id=-1, producer_epoch=-1)
        # Kafka 3+: an idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on any topic.
        if not (ctx.cluster_allowed(Op.IDEMPOTENT_WRITE) or ctx.authorizer is None
                or any(ctx.allowed(Op.WRITE, Res.TOPIC, t.name) for t in self.core.image().topics.values())):
            return build(mod.InitProducerIdResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.cluster_authorization_failed, producer_id=-1, producer_epoch=-1)
        result = await self.core.init_producer_id()
        return build(mod.InitProducerIdResponse, throttle_time=ZERO_MS, error_code=result.error,
                     producer_id=result.producer_id, producer_epoch=result.producer_epoch)

    # ---------------------------------------------------------------- CreateTopics / DeleteTopics

    async def create_topics(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(19, api_version)
        timeout_ms = ms(getattr(request, "timeout", 60_000))
        validate_only = bool(getattr(request, "validate_only", False))
        counts: dict[str, int] = {}
        for t in request.topics:
            counts[t.name] = counts.get(t.name, 0) + 1
        early: dict[str, tuple[ErrorCode, str]] = {}
        wanted: list[NewTopic] = []
        for t in request.topics:
            if counts[t.name] > 1:
                early[t.name] = (ErrorCode.invalid_request, "topic named more than once in the request")
            elif not (ctx.cluster_allowed(Op.CREATE) or ctx.allowed(Op.CREATE, Res.TOPIC, t.name)):
                early[t.name] = (ErrorCode.topic_authorization_failed, "not authorized to CREATE the topic")
            elif not _TOPIC_NAME.match(t.name) or t.name in (".", ".."):
                early[t.name] = (ErrorCode.invalid_topic_exception, "topic names are 1-249 of [a-zA-Z0-9._-]")
            elif t.assignments:
                early[t.name] = (ErrorCode.invalid_replica_assignment, "manual replica assignment is not supported")
            else:
                configs = {c.name: c.value for c in t.configs if c.value is not None}
                wanted.append(NewTopic(t.name, t.num_partitions, t.replication_factor, configs))
        outcomes = await self.core.create_topics(wanted, validate_only, timeout_ms) if wanted else []
        by_name = {o.name: o for o in outcomes}
        image = self.core.image()
        results = []
        seen: set[str] = set()
        for t in request.topics:
            if t.name in seen:
                continue
            seen.add(t.name)
            if t.name in early:
                error, message = early[t.name]
                topic_id = _NO_UUID
            else:
                outcome = by_name.get(t.name)
                if outcome is None:
                    error, message, topic_id = ErrorCode.unknown_server_error, "no outcome for topic", _NO_UUID
                else:
                    error, message, topic_id = outcome.error, outcome.message, _topic_uuid(outcome.topic_id)
            num_partitions, replication_factor = -1, -1
            created = image.topic_by_name(t.name) if error == ErrorCode.none else None
            if created is not None and created.partitions:
                num_partitions = len(created.partitions)
                replication_factor = len(next(iter(created.partitions.values())).replicas)
                if topic_id is None:
                    topic_id = _topic_uuid(created.topic_id)
            elif error == ErrorCode.none:
                num_partitions, replication_factor = t.num_partitions, t.replication_factor
            results.append(build(mod.CreatableTopicResult, name=t.name, topic_id=topic_id, error_code=error,
                                 error_message=message or None, num_partitions=num_partitions,
                                 replication_factor=replication_factor, configs=()))
        return build(mod.CreateTopicsResponse, throttle_time=ZERO_MS, topics=tuple(results))

    async def create_partitions(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        """Kafka's CreatePartitions, forwarded to the controller (ALTER on the topic, as Kafka)."""
        mod = response_module(37, api_version)
        items: list[NewPartitions] = []
        early: dict[str, tuple[ErrorCode, str]] = {}
        for t in request.topics:
            if not ctx.allowed(Op.ALTER, Res.TOPIC, t.name):
                early[t.name] = (ErrorCode.topic_authorization_failed, "not authorized to ALTER the topic")
                continue
            items.append(NewPartitions(t.name, int(t.count),
                                       tuple(tuple(int(b) for b in a.broker_ids) for a in t.assignments)
                                       if t.assignments else None))
        outcomes = await self.core.create_partitions(items, bool(request.validate_only), ms(request.timeout)) \
            if items else []
        by_name = {o.name: (o.error, o.message) for o in outcomes}
        results = []
        for t in request.topics:
            error, message = early.get(t.name) or by_name.get(t.name) or (ErrorCode.unknown_server_error, "no answer")
            results.append(build(mod.CreatePartitionsTopicResult, name=t.name, error_code=error,
                                 error_message=message or None))
        return build(mod.CreatePartitionsResponse, throttle_time=ZERO_MS, results=tuple(results))

    async def describe_quorum(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        """Kafka's DescribeQuorum (kafka-metadata-quorum): Brook's controller quorum as the partition
        `__cluster_metadata`-0; leader epoch = Raft term, high watermark = commit index. DESCRIBE on
        the cluster, as Kafka."""
        mod = response_module(55, api_version)
        if not ctx.cluster_allowed(Op.DESCRIBE):
            return build(mod.DescribeQuorumResponse, error_code=ErrorCode.cluster_authorization_failed, topics=())
        info = await self.core.describe_quorum()

        def replicas(items: Sequence[tuple[int, int]]) -> tuple[Any, ...]:
            return tuple(build(mod.ReplicaState, replica_id=i, log_end_offset=leo, last_fetch_timestamp=-1,
                               last_caught_up_timestamp=-1) for i, leo in items)

        topics = []
        for t in request.topics:
            parts = []
            for p in t.partitions:
                if t.topic_name != METADATA_TOPIC or p.partition_index != 0:
                    error = ErrorCode.unknown_topic_or_partition
                else:
                    error = info.error
                ok = error == ErrorCode.none
                parts.append(build(mod.PartitionData, partition_index=p.partition_index, error_code=error,
                                   leader_id=info.leader_id if ok else -1, leader_epoch=info.leader_epoch if ok else -1,
                                   high_watermark=info.high_watermark if ok else -1,
                                   current_voters=replicas(info.voters) if ok else (),
                                   observers=replicas(info.observers) if ok else ()))
            topics.append(build(mod.TopicData, topic_name=t.topic_name, partitions=tuple(parts)))
        return build(mod.DescribeQuorumResponse, error_code=ErrorCode.none, topics=tuple(topics))

    async def delete_topics(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(20, api_version)
        timeout_ms = ms(request.timeout)
        image = self.core.image()
        entries: list[tuple[str | None, uuid.UUID | None]] = []
        if hasattr(request, "topics"):
            for t in request.topics:
                if t.name is not None:
                    topic = image.topic_by_name(t.name)
                    entries.append((t.name, _topic_uuid(topic.topic_id) if topic else _NO_UUID))
                else:
                    topic = image.topics.get(t.topic_id.bytes) if t.topic_id else None
                    entries.append((topic.name if topic else None, t.topic_id))
        else:
            for name in request.topic_names:
                topic = image.topic_by_name(name)
                entries.append((name, _topic_uuid(topic.topic_id) if topic else _NO_UUID))
        denied = {name for name, _ in entries if name is not None and not ctx.allowed(Op.DELETE, Res.TOPIC, name)}
        names = sorted({name for name, _ in entries if name is not None} - denied)
        outcomes = {o.name: o for o in (await self.core.delete_topics(names, timeout_ms) if names else [])}
        results = []
        for name, topic_id in entries:
            if name is None:
                error, message = ErrorCode.unknown_topic_id, "unknown topic id"
            elif name in denied:
                error, message = ErrorCode.topic_authorization_failed, "not authorized to DELETE the topic"
            else:
                outcome = outcomes.get(name)
                error = outcome.error if outcome else ErrorCode.unknown_server_error
                message = outcome.message if outcome else "no outcome for topic"
            results.append(build(mod.DeletableTopicResult, name=name, topic_id=topic_id, error_code=error,
                                 error_message=message or None))
        return build(mod.DeleteTopicsResponse, throttle_time=ZERO_MS, responses=tuple(results))

    # ---------------------------------------------------------------- Configs

    async def describe_configs(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(32, api_version)
        resources = [(int(r.resource_type), r.resource_name) for r in request.resources]
        denied = {i for i, (rtype, rname) in enumerate(resources)
                  if not _config_allowed(ctx, Op.DESCRIBE_CONFIGS, rtype, rname)}
        allowed = [r for i, r in enumerate(resources) if i not in denied]
        got = iter(await self.core.describe_configs(allowed) if allowed else [])
        outcomes = [_config_denied(rtype, rname) if i in denied else next(got)
                    for i, (rtype, rname) in enumerate(resources)]
        results = []
        for resource, outcome in zip(request.resources, outcomes, strict=False):
            keys = set(resource.configuration_keys) if resource.configuration_keys is not None else None
            entries = []
            for entry in outcome.entries:
                if keys is not None and entry.name not in keys:
                    continue
                if entry.is_default:
                    source = _SOURCE_DEFAULT
                elif outcome.resource_type == RESOURCE_TOPIC:
                    source = _SOURCE_TOPIC
                else:
                    source = _SOURCE_STATIC_BROKER if entry.read_only else _SOURCE_DYNAMIC_BROKER
                entries.append(build(mod.DescribeConfigsResourceResult, name=entry.name,
                                     value=None if entry.sensitive else entry.value, read_only=entry.read_only,
                                     config_source=source, is_sensitive=entry.sensitive, synonyms=(),
                                     config_type=0, documentation=None))
            results.append(build(mod.DescribeConfigsResult, error_code=outcome.error,
                                 error_message=outcome.message or None, resource_type=resource.resource_type,
                                 resource_name=resource.resource_name, configs=tuple(entries)))
        return build(mod.DescribeConfigsResponse, throttle_time=ZERO_MS, results=tuple(results))

    async def incremental_alter_configs(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(44, api_version)
        responses = []
        for resource in request.resources:
            unsupported = [c.name for c in resource.configs if int(c.config_operation) not in (0, 1)]
            error: ErrorCode
            if not _config_allowed(ctx, Op.ALTER_CONFIGS, int(resource.resource_type), resource.resource_name):
                denied = _config_denied(int(resource.resource_type), resource.resource_name)
                error, message = denied.error, denied.message
            elif unsupported:
                error, message = ErrorCode.invalid_request, f"APPEND/SUBTRACT are not supported ({', '.join(unsupported)})"
            else:
                ops = [AlterConfigOp(c.name, c.value if int(c.config_operation) == 0 else None, int(c.config_operation))
                       for c in resource.configs]
                outcome = await self.core.alter_configs(int(resource.resource_type), resource.resource_name, ops,
                                                        bool(request.validate_only))
                error, message = outcome.error, outcome.message
            responses.append(build(mod.AlterConfigsResourceResponse, error_code=error, error_message=message or None,
                                   resource_type=resource.resource_type, resource_name=resource.resource_name))
        return build(mod.IncrementalAlterConfigsResponse, throttle_time=ZERO_MS, responses=tuple(responses))

    async def alter_configs(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        """Legacy AlterConfigs: the given set replaces the resource's dynamic configs (SETs + DELETEs)."""
        mod = response_module(33, api_version)
        responses = []
        for resource in request.resources:
            resource_type = int(resource.resource_type)
            error: ErrorCode
            if not _config_allowed(ctx, Op.ALTER_CONFIGS, resource_type, resource.resource_name):
                denied = _config_denied(resource_type, resource.resource_name)
                responses.append(build(mod.AlterConfigsResourceResponse, error_code=denied.error,
                                       error_message=denied.message, resource_type=resource.resource_type,
                                       resource_name=resource.resource_name))
                continue
            current = await self.core.describe_configs([(resource_type, resource.resource_name)])
            given = {c.name: c.value for c in resource.configs}
            if current and current[0].error != ErrorCode.none:
                error, message = current[0].error, current[0].message
            else:
                ops = [AlterConfigOp(name, value, 0 if value is not None else 1) for name, value in given.items()]
                for entry in (current[0].entries if current else ()):
                    if not entry.is_default and not entry.read_only and entry.name not in given:
                        ops.append(AlterConfigOp(entry.name, None, 1))
                outcome = await self.core.alter_configs(resource_type, resource.resource_name, ops,
                                                        bool(request.validate_only))
                error, message = outcome.error, outcome.message
            responses.append(build(mod.AlterConfigsResourceResponse, error_code=error, error_message=message or None,
                                   resource_type=resource.resource_type, resource_name=resource.resource_name))
        return build(mod.AlterConfigsResponse, throttle_time=ZERO_MS, responses=tuple(responses))

    # ---------------------------------------------------------------- Cluster

    async def elect_leaders(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(43, api_version)
        election_type = int(getattr(request, "election_type", 0))
        partitions = None
        if request.topic_partitions is not None:
            partitions = [(t.topic, int(p)) for t in request.topic_partitions for p in t.partitions]
        outcomes: list[Any]
        if not ctx.cluster_allowed(Op.ALTER):
            outcomes = []
            top_error = ErrorCode.cluster_authorization_failed
        elif election_type not in (0, 1):
            outcomes = []
            top_error = ErrorCode.invalid_request
        else:
            outcomes = await self.core.elect_leaders(election_type, partitions)
            top_error = ErrorCode.none
        by_topic: dict[str, list[Any]] = {}
        for o in outcomes:
            by_topic.setdefault(o.topic, []).append(build(mod.PartitionResult, partition_id=o.partition,
                                                          error_code=o.error, error_message=o.message or None))
        results = tuple(build(mod.ReplicaElectionResult, topic=t, partition_result=tuple(ps))
                        for t, ps in by_topic.items())
        return build(mod.ElectLeadersResponse, throttle_time=ZERO_MS, error_code=top_error,
                     replica_election_results=results)

    async def alter_partition_reassignments(self, request: Any, api_version: int,
                                            ctx: RequestContext = ALLOW_ALL) -> Any:
        """KIP-455: start (replicas) or cancel (null replicas) reassignments, through the controller."""
        mod = response_module(45, api_version)
        allow_rf_change = bool(getattr(request, "allow_replication_factor_change", True))
        extra = {"allow_replication_factor_change": allow_rf_change} if api_version >= 1 else {}
        if not ctx.cluster_allowed(Op.ALTER):
            return build(mod.AlterPartitionReassignmentsResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.cluster_authorization_failed, error_message=None, responses=(), **extra)
        image = self.core.image()
        errors: dict[tuple[str, int], tuple[ErrorCode, str]] = {}
        moves = []
        for t in request.topics:
            topic = image.topic_by_name(t.name)
            for p in t.partitions:
                key = (t.name, int(p.partition_index))
                current = topic.partitions.get(key[1]) if topic is not None else None
                target = None if p.replicas is None else [int(b) for b in p.replicas]
                if (target is not None and not allow_rf_change and current is not None
                        and len(target) != len(current.target_replicas if current.reassigning else current.replicas)):
                    errors[key] = (ErrorCode.invalid_replication_factor,
                                   "allow_replication_factor_change is false and the replica count changes")
                    continue
                item = apb.ReassignPartition(topic=key[0], partition=key[1], replicas=target or [],
                                             cancel=target is None)
                moves.append(item)
        top_error, top_message = ErrorCode.none, None
        if moves:
            reply: Any = await self.core.admin_call("AlterPartitionReassignments",
                                                    apb.AlterPartitionReassignmentsRequest(partitions=moves))
            if reply is None:
                top_error, top_message = ErrorCode.request_timed_out, "no controller answered"
            else:
                if reply.error.code:
                    top_error, top_message = ErrorCode(reply.error.code), reply.error.message
                for r in reply.results:
                    errors[(r.topic, r.partition)] = (ErrorCode(r.error_code), r.error_message)
        responses = tuple(
            build(mod.ReassignableTopicResponse, name=t.name, partitions=tuple(
                build(mod.ReassignablePartitionResponse, partition_index=p.partition_index,
                      error_code=errors.get((t.name, int(p.partition_index)), (top_error, ""))[0],
                      error_message=errors.get((t.name, int(p.partition_index)), (top_error, ""))[1] or None)
                for p in t.partitions))
            for t in request.topics)
        return build(mod.AlterPartitionReassignmentsResponse, throttle_time=ZERO_MS, error_code=top_error,
                     error_message=top_message, responses=responses, **extra)

    async def list_partition_reassignments(self, request: Any, api_version: int,
                                           ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(46, api_version)
        if not ctx.cluster_allowed(Op.DESCRIBE):
            return build(mod.ListPartitionReassignmentsResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.cluster_authorization_failed, error_message=None, topics=())
        wanted = None if request.topics is None else [
            apb.ReassignmentTopic(topic=t.name, partitions=[int(i) for i in t.partition_indexes])
            for t in request.topics]
        reply: Any = await self.core.admin_call("ListPartitionReassignments",
                                                apb.ListPartitionReassignmentsRequest(topics=wanted or []))
        if reply is None:
            return build(mod.ListPartitionReassignmentsResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.request_timed_out, error_message="no controller answered", topics=())
        by_topic: dict[str, list[Any]] = {}
        for r in reply.reassignments:
            by_topic.setdefault(r.topic, []).append(build(
                mod.OngoingPartitionReassignment, partition_index=r.partition, replicas=tuple(r.replicas),
                adding_replicas=tuple(r.adding_replicas), removing_replicas=tuple(r.removing_replicas)))
        topics = tuple(build(mod.OngoingTopicReassignment, name=name, partitions=tuple(parts))
                       for name, parts in by_topic.items())
        return build(mod.ListPartitionReassignmentsResponse, throttle_time=ZERO_MS,
                     error_code=ErrorCode(reply.error.code) if reply.error.code else ErrorCode.none,
                     error_message=reply.error.message or None, topics=topics)

    async def unregister_broker(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(64, api_version)
        if not ctx.cluster_allowed(Op.ALTER):
            return build(mod.UnregisterBrokerResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.cluster_authorization_failed, error_message=None)
        reply: Any = await self.core.admin_call("UnregisterBroker",
                                                apb.UnregisterBrokerRequest(broker_id=int(request.broker_id)))
        if reply is None:
            return build(mod.UnregisterBrokerResponse, throttle_time=ZERO_MS, error_code=ErrorCode.request_timed_out,
                         error_message="no controller answered")
        return build(mod.UnregisterBrokerResponse, throttle_time=ZERO_MS,
                     error_code=ErrorCode(reply.error.code) if reply.error.code else ErrorCode.none,
                     error_message=reply.error.message or None)

    async def delete_records(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        """Kafka's DeleteRecords: each partition's leader moves its log start (needs DELETE on the topic)."""
        mod = response_module(21, api_version)
        timeout_ms = max(0, min(ms(request.timeout), 300_000))
        keys: list[tuple[str, int]] = []
        calls = []
        for t in request.topics:
            allowed = ctx.allowed(Op.DELETE, Res.TOPIC, t.name)
            for p in t.partitions:
                keys.append((t.name, int(p.partition_index)))
                if not allowed:
                    calls.append(_done(DeleteRecordsResult(ErrorCode.topic_authorization_failed)))
                else:
                    calls.append(self._delete_records_one(t.name, int(p.partition_index), int(p.offset), timeout_ms))
        results = await asyncio.gather(*calls)
        by_topic: dict[str, list[Any]] = {}
        for (topic, partition), result in zip(keys, results, strict=True):
            by_topic.setdefault(topic, []).append(build(mod.DeleteRecordsPartitionResult, partition_index=partition,
                                                        low_watermark=result.low_watermark, error_code=result.error))
        topics = tuple(build(mod.DeleteRecordsTopicResult, name=name, partitions=tuple(parts))
                       for name, parts in by_topic.items())
        return build(mod.DeleteRecordsResponse, throttle_time=ZERO_MS, topics=topics)

    async def _delete_records_one(self, topic: str, partition: int, offset: int, timeout_ms: int) -> DeleteRecordsResult:
        if is_internal(topic):
            return DeleteRecordsResult(ErrorCode.invalid_topic_exception)  # its records are the cluster's state
        try:
            return await self.core.delete_records(topic, partition, offset, timeout_ms)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.error("delete records %s-%d failed: %s: %s", topic, partition, type(e).__name__, e)
            return DeleteRecordsResult(ErrorCode.unknown_server_error)

    async def describe_log_dirs(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        """This broker's log directories (needs DESCRIBE on the cluster, as in Kafka)."""
        mod = response_module(35, api_version)
        if not ctx.cluster_allowed(Op.DESCRIBE):
            return build(mod.DescribeLogDirsResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.cluster_authorization_failed, results=())
        wanted = None if request.topics is None else {
            t.topic: tuple(int(i) for i in t.partitions) for t in request.topics}
        results = []
        for info in self.core.describe_log_dirs(wanted):
            by_topic: dict[str, list[Any]] = {}
            for part in info.partitions:
                by_topic.setdefault(part.topic, []).append(build(
                    mod.DescribeLogDirsPartition, partition_index=part.partition, partition_size=part.size_bytes,
                    offset_lag=part.offset_lag, is_future_key=False))
            topics = tuple(build(mod.DescribeLogDirsTopic, name=name, partitions=tuple(parts))
                           for name, parts in by_topic.items())
            results.append(build(mod.DescribeLogDirsResult, error_code=info.error, log_dir=info.path, topics=topics,
                                 total_bytes=info.total_bytes, usable_bytes=info.usable_bytes))
        return build(mod.DescribeLogDirsResponse, throttle_time=ZERO_MS, error_code=ErrorCode.none,
                     results=tuple(results))

    async def describe_producers(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        """KIP-664: the active idempotent producers of partitions this broker leads (READ on the topic)."""
        mod = response_module(61, api_version)
        topics = []
        for t in request.topics:
            readable = ctx.allowed(Op.READ, Res.TOPIC, t.name)
            parts = []
            for index in t.partition_indexes:
                if not readable:
                    result = ProducersResult(ErrorCode.topic_authorization_failed)
                else:
                    result = self.core.describe_producers(t.name, int(index))
                producers = tuple(build(mod.ProducerState, producer_id=pr.producer_id, producer_epoch=pr.producer_epoch,
                                        last_sequence=pr.last_sequence, last_timestamp=pr.last_timestamp,
                                        coordinator_epoch=-1,
                                        current_txn_start_offset=pr.current_txn_start_offset)
                                  for pr in result.producers)
                parts.append(build(mod.PartitionResponse, partition_index=index, error_code=result.error,
                                   error_message=result.message or None, active_producers=producers))
            topics.append(build(mod.TopicResponse, name=t.name, partitions=tuple(parts)))
        return build(mod.DescribeProducersResponse, throttle_time=ZERO_MS, topics=tuple(topics))

    async def describe_cluster(self, request: Any, api_version: int, ctx: RequestContext = ALLOW_ALL) -> Any:
        mod = response_module(60, api_version)
        image = self.core.image()
        live = self._live_brokers(ctx.listener)
        endpoint_type = int(getattr(request, "endpoint_type", 1))
        if not ctx.cluster_allowed(Op.DESCRIBE):
            return build(mod.DescribeClusterResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.cluster_authorization_failed,
                         error_message="not authorized to DESCRIBE the cluster", endpoint_type=endpoint_type,
                         cluster_id=image.cluster_id, controller_id=-1, brokers=())
        if endpoint_type != 1:
            return build(mod.DescribeClusterResponse, throttle_time=ZERO_MS,
                         error_code=ErrorCode.unsupported_endpoint_type,
                         error_message="brokers describe brokers only (endpoint_type 1)", endpoint_type=endpoint_type,
                         cluster_id=image.cluster_id, controller_id=-1, brokers=())
        brokers = tuple(build(mod.DescribeClusterBroker, broker_id=i, host=h, port=p, rack=r) for i, h, p, r in live)
        return build(mod.DescribeClusterResponse, throttle_time=ZERO_MS, error_code=ErrorCode.none,
                     error_message=None, endpoint_type=1, cluster_id=image.cluster_id,
                     controller_id=self._controller_for_clients([b[0] for b in live]), brokers=brokers)


async def _done(value: Any) -> Any:
    return value


def _aborted(mod: ModuleType, aborted: Sequence[tuple[int, int]] | None) -> tuple[Any, ...]:
    """Fetch's aborted_transactions list (read_committed): (producer id, first offset) pairs."""
    return tuple(build(mod.AbortedTransaction, producer_id=pid, first_offset=first) for pid, first in aborted or ())


def _config_allowed(ctx: RequestContext, operation: Op, resource_type: int, name: str) -> bool:
    """Configs of a topic need the operation on the topic; broker configs need it on the cluster."""
    if resource_type == RESOURCE_TOPIC:
        return ctx.allowed(operation, Res.TOPIC, name)
    return ctx.cluster_allowed(operation)


def _config_denied(resource_type: int, name: str) -> ResourceConfigResult:
    if resource_type == RESOURCE_TOPIC:
        return ResourceConfigResult(resource_type, name, ErrorCode.topic_authorization_failed,
                                    "not authorized for the topic's configs")
    return ResourceConfigResult(resource_type, name, ErrorCode.cluster_authorization_failed,
                                "not authorized for the cluster's configs")


def _append_time(time_ms: int) -> datetime.datetime | None:
    if time_ms < 0:
        return None
    return datetime.datetime.fromtimestamp(time_ms / 1000, tz=datetime.UTC)
