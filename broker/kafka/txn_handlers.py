"""Kafka transaction APIs over the typed `TransactionCoordinator` (and the group coordinator for
TxnOffsetCommit): kio requests in, kio responses out.

InitProducerId (both idempotent and transactional producers), AddPartitionsToTxn (v0-3, the
client path; v4+ broker verification is not served), AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
WriteTxnMarkers (for tools and other brokers; Brook's own coordinator uses gRPC), DescribeTransactions
and ListTransactions. The listener serves them through the same `{api_key: handler}` mapping as the
group APIs.

Authorization, as Kafka's KafkaApis: WRITE on the transactional id (InitProducerId, AddPartitions,
AddOffsets, EndTxn, TxnOffsetCommit), WRITE on each added topic, READ on the group (AddOffsetsToTxn,
TxnOffsetCommit), DESCRIBE on the transactional id (Describe/ListTransactions), CLUSTER_ACTION on
the cluster (WriteTxnMarkers).

PRODUCER_FENCED (KIP-588) is answered only to versions that know it (InitProducerId v4+,
AddPartitionsToTxn/AddOffsetsToTxn/EndTxn v2+, TxnOffsetCommit v3+); older ones get
INVALID_PRODUCER_EPOCH, as Kafka does.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

from broker.groups.api import CommitPartition, CommitRequest
from broker.groups.coordinator import GroupCoordinator
from broker.kafka.codec import ZERO_MS, build, ms, response_module
from broker.txn.coordinator import TransactionCoordinator
from cluster.errors import ErrorCode
from cluster.security.acl import AclOperation as Op
from cluster.security.acl import ResourceType as Res

__all__ = ["SUPPORTED_VERSIONS", "TxnHandlers"]

INIT_PRODUCER_ID, ADD_PARTITIONS, ADD_OFFSETS, END_TXN = 22, 24, 25, 26
WRITE_TXN_MARKERS, TXN_OFFSET_COMMIT, DESCRIBE_TXNS, LIST_TXNS = 27, 28, 65, 66

SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {
    INIT_PRODUCER_ID: (0, 5),   # v6 is two-phase commit (KIP-939)
    ADD_PARTITIONS: (0, 3),     # v4+ batches transactional ids for broker-side verification (KIP-890)
    ADD_OFFSETS: (0, 3),        # v4 is transaction version 2 (KIP-890)
    END_TXN: (0, 3),            # v4+ transaction version 2 (epoch bump per transaction)
    WRITE_TXN_MARKERS: (1, 1),
    TXN_OFFSET_COMMIT: (0, 3),  # v4 is transaction version 2
    DESCRIBE_TXNS: (0, 0),
    LIST_TXNS: (0, 1),          # v2 adds a transactional id pattern
}
# The first version of each API that knows PRODUCER_FENCED (KIP-588).
_FENCED_FROM = {INIT_PRODUCER_ID: 4, ADD_PARTITIONS: 2, ADD_OFFSETS: 2, END_TXN: 2, TXN_OFFSET_COMMIT: 3}

Handler = Callable[..., Awaitable[Any]]


def _allowed(context: Any, operation: Op, resource_type: Res, name: str) -> bool:
    allowed = getattr(context, "allowed", None)
    return True if allowed is None else bool(allowed(operation, resource_type, name))


def _cluster_allowed(context: Any, operation: Op) -> bool:
    allowed = getattr(context, "cluster_allowed", None)
    return True if allowed is None else bool(allowed(operation))


def _for_version(api_key: int, api_version: int, error: ErrorCode) -> ErrorCode:
    if error == ErrorCode.producer_fenced and api_version < _FENCED_FROM.get(api_key, 0):
        return ErrorCode.invalid_producer_epoch
    return error


class TxnHandlers:
    def __init__(self, coordinator: TransactionCoordinator, groups: GroupCoordinator, core: Any) -> None:
        self.coordinator = coordinator
        self.groups = groups
        self.core = core

    def handlers(self) -> dict[int, Handler]:
        return {
            INIT_PRODUCER_ID: self.init_producer_id,
            ADD_PARTITIONS: self.add_partitions_to_txn,
            ADD_OFFSETS: self.add_offsets_to_txn,
            END_TXN: self.end_txn,
            WRITE_TXN_MARKERS: self.write_txn_markers,
            TXN_OFFSET_COMMIT: self.txn_offset_commit,
            DESCRIBE_TXNS: self.describe_transactions,
            LIST_TXNS: self.list_transactions,
        }

    def versions(self) -> dict[int, tuple[int, int]]:
        return dict(SUPPORTED_VERSIONS)

    # -- InitProducerId -------------------------------------------------------------------------------
    async def init_producer_id(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(INIT_PRODUCER_ID, api_version)

        def answer(error: ErrorCode, producer_id: int = -1, epoch: int = -1) -> Any:
            return build(mod.InitProducerIdResponse, throttle_time=ZERO_MS,
                         error_code=_for_version(INIT_PRODUCER_ID, api_version, error), producer_id=producer_id,
                         producer_epoch=epoch)

        tid = request.transactional_id
        if tid is None:
            # Kafka 3+: an idempotent producer needs IDEMPOTENT_WRITE on the cluster or WRITE on a topic.
            authorizer = getattr(context, "authorizer", None)
            if not (authorizer is None or _cluster_allowed(context, Op.IDEMPOTENT_WRITE)
                    or any(_allowed(context, Op.WRITE, Res.TOPIC, t.name)
                           for t in self.core.image().topics.values())):
                return answer(ErrorCode.cluster_authorization_failed)
            result = await self.core.init_producer_id()
            return answer(result.error, result.producer_id, result.producer_epoch)
        if not _allowed(context, Op.WRITE, Res.TRANSACTIONAL_ID, tid):
            return answer(ErrorCode.transactional_id_authorization_failed)
        error, producer_id, epoch = await self.coordinator.init_producer_id(
            tid, ms(request.transaction_timeout), int(getattr(request, "producer_id", -1)),
            int(getattr(request, "producer_epoch", -1)))
        return answer(error, producer_id, epoch)

    # -- AddPartitionsToTxn / AddOffsetsToTxn / EndTxn ------------------------------------------------
    async def add_partitions_to_txn(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(ADD_PARTITIONS, api_version)
        tid, pid, epoch = (request.v3_and_below_transactional_id, request.v3_and_below_producer_id,
                           request.v3_and_below_producer_epoch)
        topics = request.v3_and_below_topics
        wanted = [(t.name, int(p)) for t in topics for p in t.partitions]
        results: dict[tuple[str, int], ErrorCode]
        if not _allowed(context, Op.WRITE, Res.TRANSACTIONAL_ID, tid):
            results = dict.fromkeys(wanted, ErrorCode.transactional_id_authorization_failed)
        else:
            denied = {tp for tp in wanted if not _allowed(context, Op.WRITE, Res.TOPIC, tp[0])}
            if denied:
                results = {tp: ErrorCode.topic_authorization_failed if tp in denied
                           else ErrorCode.operation_not_attempted for tp in wanted}
            else:
                results = await self.coordinator.add_partitions(tid, int(pid), int(epoch), wanted)
        by_topic: dict[str, list[Any]] = {}
        for (topic, partition), error in results.items():
            by_topic.setdefault(topic, []).append(build(
                mod.AddPartitionsToTxnPartitionResult, partition_index=partition,
                partition_error_code=_for_version(ADD_PARTITIONS, api_version, error)))
        topic_results = tuple(build(mod.AddPartitionsToTxnTopicResult, name=name, results_by_partition=tuple(parts))
                              for name, parts in by_topic.items())
        return build(mod.AddPartitionsToTxnResponse, throttle_time=ZERO_MS, results_by_topic_v3_and_below=topic_results)

    async def add_offsets_to_txn(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(ADD_OFFSETS, api_version)
        tid = request.transactional_id
        if not _allowed(context, Op.WRITE, Res.TRANSACTIONAL_ID, tid):
            error = ErrorCode.transactional_id_authorization_failed
        elif not _allowed(context, Op.READ, Res.GROUP, request.group_id):
            error = ErrorCode.group_authorization_failed
        else:
            error = await self.coordinator.add_offsets(tid, int(request.producer_id), int(request.producer_epoch),
                                                       request.group_id)
        return build(mod.AddOffsetsToTxnResponse, throttle_time=ZERO_MS,
                     error_code=_for_version(ADD_OFFSETS, api_version, error))

    async def end_txn(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(END_TXN, api_version)
        tid = request.transactional_id
        if not _allowed(context, Op.WRITE, Res.TRANSACTIONAL_ID, tid):
            error = ErrorCode.transactional_id_authorization_failed
        else:
            error = await self.coordinator.end_txn(tid, int(request.producer_id), int(request.producer_epoch),
                                                   bool(request.committed))
        return build(mod.EndTxnResponse, throttle_time=ZERO_MS, error_code=_for_version(END_TXN, api_version, error),
                     producer_id=int(request.producer_id), producer_epoch=int(request.producer_epoch))

    # -- TxnOffsetCommit ------------------------------------------------------------------------------
    async def txn_offset_commit(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(TXN_OFFSET_COMMIT, api_version)
        keys = [(t.name, int(p.partition_index)) for t in request.topics for p in t.partitions]
        results: dict[tuple[str, int], ErrorCode]
        if not _allowed(context, Op.WRITE, Res.TRANSACTIONAL_ID, request.transactional_id):
            results = dict.fromkeys(keys, ErrorCode.transactional_id_authorization_failed)
        elif not _allowed(context, Op.READ, Res.GROUP, request.group_id):
            results = dict.fromkeys(keys, ErrorCode.group_authorization_failed)
        else:
            partitions = tuple(
                CommitPartition(t.name, int(p.partition_index), int(p.committed_offset),
                                int(getattr(p, "committed_leader_epoch", -1)), p.committed_metadata or "")
                for t in request.topics for p in t.partitions)
            commit = CommitRequest(request.group_id, int(getattr(request, "generation_id", -1)),
                                   getattr(request, "member_id", "") or "", getattr(request, "group_instance_id", None),
                                   partitions)
            results = await self.groups.txn_commit_offsets(commit, int(request.producer_id),
                                                           int(request.producer_epoch))
        by_topic: dict[str, list[Any]] = {}
        for (topic, partition) in keys:
            error = _for_version(TXN_OFFSET_COMMIT, api_version,
                                 results.get((topic, partition), ErrorCode.unknown_server_error))
            by_topic.setdefault(topic, []).append(build(mod.TxnOffsetCommitResponsePartition,
                                                        partition_index=partition, error_code=error))
        topics = tuple(build(mod.TxnOffsetCommitResponseTopic, name=name, partitions=tuple(parts))
                       for name, parts in by_topic.items())
        return build(mod.TxnOffsetCommitResponse, throttle_time=ZERO_MS, topics=topics)

    # -- WriteTxnMarkers ------------------------------------------------------------------------------
    async def write_txn_markers(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(WRITE_TXN_MARKERS, api_version)
        allowed = _cluster_allowed(context, Op.CLUSTER_ACTION)
        markers = []
        for marker in request.markers:
            topics = []
            for topic in marker.topics:
                parts = []
                for index in topic.partition_indexes:
                    if not allowed:
                        error = ErrorCode.cluster_authorization_failed
                    else:
                        error = await self.core.append_marker(topic.name, int(index), int(marker.producer_id),
                                                              int(marker.producer_epoch),
                                                              int(marker.coordinator_epoch),
                                                              bool(marker.transaction_result), 10_000)
                    parts.append(build(mod.WritableTxnMarkerPartitionResult, partition_index=int(index),
                                       error_code=error))
                topics.append(build(mod.WritableTxnMarkerTopicResult, name=topic.name, partitions=tuple(parts)))
            markers.append(build(mod.WritableTxnMarkerResult, producer_id=marker.producer_id, topics=tuple(topics)))
        return build(mod.WriteTxnMarkersResponse, markers=tuple(markers))

    # -- DescribeTransactions / ListTransactions -----------------------------------------------------
    async def describe_transactions(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(DESCRIBE_TXNS, api_version)
        states = []
        for tid in request.transactional_ids:
            if not _allowed(context, Op.DESCRIBE, Res.TRANSACTIONAL_ID, tid):
                states.append(build(mod.TransactionState, error_code=ErrorCode.transactional_id_authorization_failed,
                                    transactional_id=tid, transaction_state="", transaction_timeout=ZERO_MS,
                                    transaction_start_time=_time(-1), producer_id=-1, producer_epoch=-1, topics=()))
                continue
            (d,) = self.coordinator.describe([tid])
            by_topic: dict[str, list[int]] = {}
            for topic, index in d.partitions:
                by_topic.setdefault(topic, []).append(index)
            topics = tuple(build(mod.TopicData, topic=t, partitions=tuple(ps)) for t, ps in by_topic.items()
                           if _allowed(context, Op.DESCRIBE, Res.TOPIC, t))
            states.append(build(mod.TransactionState, error_code=d.error, transactional_id=tid,
                                transaction_state=d.state, transaction_timeout=datetime.timedelta(milliseconds=d.timeout_ms),
                                transaction_start_time=_time(d.start_ms), producer_id=d.producer_id,
                                producer_epoch=d.producer_epoch, topics=topics))
        return build(mod.DescribeTransactionsResponse, throttle_time=ZERO_MS, transaction_states=tuple(states))

    async def list_transactions(self, request: Any, api_version: int, context: Any = None) -> Any:
        mod = response_module(LIST_TXNS, api_version)
        known = {"empty", "ongoing", "preparecommit", "prepareabort", "completecommit", "completeabort", "dead",
                 "prepareepochfence"}
        filters = tuple(request.state_filters)
        unknown = tuple(f for f in filters if f.lower() not in known)
        error, listed = self.coordinator.list([f for f in filters if f.lower() in known],
                                              [int(p) for p in request.producer_id_filters])
        duration_ms = int(getattr(request, "duration_filter", -1))
        now_ms = int(datetime.datetime.now(tz=datetime.UTC).timestamp() * 1000)
        states = tuple(
            build(mod.TransactionState, transactional_id=d.transactional_id, producer_id=d.producer_id,
                  transaction_state=d.state)
            for d in listed
            if _allowed(context, Op.DESCRIBE, Res.TRANSACTIONAL_ID, d.transactional_id)
            and (duration_ms < 0 or (d.start_ms >= 0 and now_ms - d.start_ms >= duration_ms)))
        return build(mod.ListTransactionsResponse, throttle_time=ZERO_MS, error_code=error,
                     unknown_state_filters=unknown, transaction_states=states)


def _time(ms_value: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(max(ms_value, -1) / 1000, tz=datetime.UTC)
