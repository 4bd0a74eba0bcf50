"""The transaction coordinator's state machine (pure): one transactional id's metadata and its moves.

Kafka's `TransactionMetadata` / `TransactionState` and the decisions of `TransactionCoordinator`
(handleInitProducerId, handleAddPartitionsToTransaction, handleEndTransaction, the timeout abort),
written as functions of (metadata, request, now) that return a `Decision`: an error for the client
or the next metadata to write to `__transaction_state`, and what to do once it is written. No
clock, no I/O: the shell (`coordinator.py`) writes, sends markers and answers.

    Empty ──AddPartitions──► Ongoing ──EndTxn(commit)──► PrepareCommit ──markers──► CompleteCommit
      ▲                        │     ──EndTxn(abort)───► PrepareAbort  ──markers──► CompleteAbort
      └──── InitProducerId ◄───┴──── timeout / re-init: epoch bumped, then PrepareAbort

Producer ids and epochs (KIP-98, KIP-360, KIP-588): every InitProducerId bumps the epoch, which
fences the previous incarnation; when the epoch would pass EPOCH_MAX a new producer id is taken.
An open transaction on re-init is aborted with the bumped epoch first (the client retries on
CONCURRENT_TRANSACTIONS until the abort completes). A client that names its current producer id
and epoch (KIP-360, after an abortable error) may bump again if that epoch is the current one or
the one before a coordinator-side bump (`last_producer_epoch`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from cluster.errors import ErrorCode

__all__ = [
    "EPOCH_MAX",
    "NO_PRODUCER_EPOCH",
    "NO_PRODUCER_ID",
    "After",
    "Decision",
    "TxnMetadata",
    "TxnState",
    "add_partitions",
    "complete",
    "end_txn",
    "expired",
    "init_producer_id",
    "timed_out",
    "valid_transition",
]

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
# Kafka bumps to a new producer id when the epoch reaches Short.MaxValue - 1 (one value is kept
# so that a fenced producer's epoch + 1 never overflows).
EPOCH_MAX = 32767 - 1


class TxnState(enum.IntEnum):
    """Kafka's TransactionState, with the ids written in `__transaction_state`."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("_"))


# Kafka's TransactionState.validPreviousStates.
_VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    TxnState.EMPTY: frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}),
    TxnState.ONGOING: frozenset({TxnState.ONGOING, TxnState.EMPTY, TxnState.COMPLETE_COMMIT,
                                 TxnState.COMPLETE_ABORT}),
    TxnState.PREPARE_COMMIT: frozenset({TxnState.ONGOING}),
    TxnState.PREPARE_ABORT: frozenset({TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.COMPLETE_COMMIT: frozenset({TxnState.PREPARE_COMMIT}),
    TxnState.COMPLETE_ABORT: frozenset({TxnState.PREPARE_ABORT}),
    TxnState.DEAD: frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}),
    TxnState.PREPARE_EPOCH_FENCE: frozenset({TxnState.ONGOING}),
}


def valid_transition(old: TxnState, new: TxnState) -> bool:
    return old in _VALID_PREVIOUS[new]


Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class TxnMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: frozenset[Partition] = frozenset()
    start_ms: int = -1           # when the open transaction began (-1: none open)
    last_update_ms: int = -1
    last_producer_epoch: int = NO_PRODUCER_EPOCH  # the epoch before a coordinator-side bump
    prev_producer_id: int = NO_PRODUCER_ID        # the id before a rotation (epoch exhaustion)

    def to(self, state: TxnState, now_ms: int, **changes: object) -> TxnMetadata:
        assert valid_transition(self.state, state), f"{self.state.name} -> {state.name} is not a transition"
        return replace(self, state=state, last_update_ms=now_ms, **changes)  # type: ignore[arg-type]

    @property
    def completing(self) -> bool:
        return self.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)


class After(enum.Enum):
    """What the shell does once the decision's metadata is written."""

    ANSWER = "answer"                  # answer the client (with the written metadata's id/epoch)
    SEND_MARKERS = "send_markers"      # answer, then write markers to every partition, then complete
    ABORT_THEN_RETRY = "abort_then_retry"  # send abort markers; the client is told to retry


@dataclass(frozen=True, slots=True)
class Decision:
    error: ErrorCode = ErrorCode.none
    write: TxnMetadata | None = None   # metadata to append to __transaction_state before answering
    after: After = After.ANSWER
    # For an answer without a write (already done, a retry): the metadata to answer from.
    current: TxnMetadata | None = None
    needs_producer_id: bool = False    # the shell allocates a producer id and calls again
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.error == ErrorCode.none


def _bumped(meta: TxnMetadata, new_producer_id: int | None) -> tuple[int, int, int, bool]:
    """(producer id, epoch, previous id, needs a new id) after one epoch bump."""
    if meta.producer_epoch >= EPOCH_MAX:
        if new_producer_id is None:
            return meta.producer_id, meta.producer_epoch, meta.prev_producer_id, True
        return new_producer_id, 0, meta.producer_id, False
    return meta.producer_id, meta.producer_epoch + 1, meta.prev_producer_id, False


def init_producer_id(meta: TxnMetadata | None, transactional_id: str, timeout_ms: int, now_ms: int,
                     expected_producer_id: int = NO_PRODUCER_ID, expected_epoch: int = NO_PRODUCER_EPOCH,
                     new_producer_id: int | None = None, timeout_max_ms: int = 900_000) -> Decision:
    """InitProducerId with a transactional id. `new_producer_id` is a freshly allocated id, given
    when a previous call answered `needs_producer_id`."""
    if not transactional_id:
        return Decision(ErrorCode.invalid_request, message="empty transactional id")
    if timeout_ms <= 0 or timeout_ms > timeout_max_ms:
        return Decision(ErrorCode.invalid_transaction_timeout,
                        message=f"transaction.timeout.ms {timeout_ms} is not in (0, {timeout_max_ms}]")
    if meta is None or meta.state is TxnState.DEAD:
        if expected_producer_id != NO_PRODUCER_ID:
            # KIP-360: the client names an id this coordinator does not know (it expired).
            return Decision(ErrorCode.invalid_producer_id_mapping, message="unknown transactional id")
        if new_producer_id is None:
            return Decision(needs_producer_id=True)
        return Decision(write=TxnMetadata(transactional_id, new_producer_id, 0, timeout_ms, TxnState.EMPTY,
                                          frozenset(), -1, now_ms))
    if meta.completing:
        return Decision(ErrorCode.concurrent_transactions, message=f"transaction is {meta.state.kafka_name}")
    if expected_producer_id != NO_PRODUCER_ID:
        known_ids = (meta.producer_id, meta.prev_producer_id)
        if expected_producer_id not in known_ids:
            return Decision(ErrorCode.producer_fenced, message="another producer id owns the transactional id")
        if expected_producer_id == meta.producer_id and expected_epoch not in (meta.producer_epoch,
                                                                               meta.last_producer_epoch):
            return Decision(ErrorCode.producer_fenced, message=f"epoch {expected_epoch} is fenced")
        if expected_producer_id == meta.prev_producer_id and meta.state is not TxnState.ONGOING:
            # A retry after a rotation that already succeeded: answer the current id and epoch.
            return Decision(current=meta)
    if meta.state is TxnState.ONGOING:
        # Fence the open transaction's producer and abort it with the bumped epoch (PrepareEpochFence).
        producer_id, epoch, prev, need = _bumped(meta, new_producer_id)
        if need:
            return Decision(needs_producer_id=True)
        if producer_id != meta.producer_id:
            # A new id: the abort still goes out under the old id, at its highest epoch.
            producer_id, epoch, prev = meta.producer_id, meta.producer_epoch, meta.prev_producer_id
        fenced = meta.to(TxnState.PREPARE_ABORT, now_ms, producer_epoch=epoch,
                         last_producer_epoch=meta.producer_epoch, prev_producer_id=prev)
        return Decision(ErrorCode.concurrent_transactions, write=fenced, after=After.ABORT_THEN_RETRY,
                        message="aborting the open transaction of the previous producer")
    producer_id, epoch, prev, need = _bumped(meta, new_producer_id)
    if need:
        return Decision(needs_producer_id=True)
    return Decision(write=meta.to(TxnState.EMPTY, now_ms, producer_id=producer_id, producer_epoch=epoch,
                                  prev_producer_id=prev, last_producer_epoch=meta.producer_epoch,
                                  timeout_ms=timeout_ms, partitions=frozenset(), start_ms=-1))


def _check_producer(meta: TxnMetadata | None, producer_id: int, producer_epoch: int) -> Decision | None:
    if meta is None or meta.state is TxnState.DEAD:
        return Decision(ErrorCode.invalid_producer_id_mapping, message="unknown transactional id")
    if meta.producer_id != producer_id:
        return Decision(ErrorCode.invalid_producer_id_mapping,
                        message=f"producer id {producer_id} does not own the transactional id")
    if producer_epoch < meta.producer_epoch:
        return Decision(ErrorCode.producer_fenced, message=f"epoch {producer_epoch} is fenced by {meta.producer_epoch}")
    if producer_epoch > meta.producer_epoch:
        return Decision(ErrorCode.invalid_producer_epoch, message=f"epoch {producer_epoch} is unknown")
    return None


def add_partitions(meta: TxnMetadata | None, producer_id: int, producer_epoch: int,
                   partitions: frozenset[Partition], now_ms: int) -> Decision:
    """AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition)."""
    refused = _check_producer(meta, producer_id, producer_epoch)
    if refused is not None:
        return refused
    assert meta is not None
    if meta.completing:
        return Decision(ErrorCode.concurrent_transactions, message=f"transaction is {meta.state.kafka_name}")
    if meta.state is TxnState.ONGOING and partitions <= meta.partitions:
        return Decision(current=meta)  # nothing new to record
    start_ms = meta.start_ms if meta.state is TxnState.ONGOING else now_ms
    return Decision(write=meta.to(TxnState.ONGOING, now_ms, partitions=meta.partitions | partitions,
                                  start_ms=start_ms))


def end_txn(meta: TxnMetadata | None, producer_id: int, producer_epoch: int, commit: bool,
            now_ms: int) -> Decision:
    """EndTxn: PrepareCommit / PrepareAbort, then the markers. Retries of a finished end succeed."""
    refused = _check_producer(meta, producer_id, producer_epoch)
    if refused is not None:
        # A producer fenced by the coordinator's own abort (timeout) that now aborts is answered
        # as Kafka does: the transaction is already aborted, the epoch is fenced.
        return refused
    assert meta is not None
    state = meta.state
    if state is TxnState.ONGOING:
        target = TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT
        return Decision(write=meta.to(target, now_ms), after=After.SEND_MARKERS)
    if state is TxnState.COMPLETE_COMMIT and commit or state is TxnState.COMPLETE_ABORT and not commit:
        return Decision(current=meta)  # a retry of an end that completed
    if state is TxnState.PREPARE_COMMIT and commit or state is TxnState.PREPARE_ABORT and not commit:
        return Decision(ErrorCode.concurrent_transactions, message="the transaction is completing")
    return Decision(ErrorCode.invalid_txn_state,
                    message=f"cannot {'commit' if commit else 'abort'} in state {state.kafka_name}")


def complete(meta: TxnMetadata, now_ms: int) -> TxnMetadata:
    """Every marker is written: PrepareCommit -> CompleteCommit, PrepareAbort -> CompleteAbort."""
    target = TxnState.COMPLETE_COMMIT if meta.state is TxnState.PREPARE_COMMIT else TxnState.COMPLETE_ABORT
    return meta.to(target, now_ms, partitions=frozenset(), start_ms=-1)


def timed_out(meta: TxnMetadata, now_ms: int) -> TxnMetadata | None:
    """An Ongoing transaction past its timeout: PrepareAbort with the epoch bumped (the producer is
    fenced, KIP-588), or None when it has not expired (or cannot be bumped: it is then aborted at
    its current epoch, as Kafka does at the epoch limit)."""
    if meta.state is not TxnState.ONGOING or meta.start_ms < 0 or now_ms < meta.start_ms + meta.timeout_ms:
        return None
    epoch = meta.producer_epoch + 1 if meta.producer_epoch < EPOCH_MAX else meta.producer_epoch
    return meta.to(TxnState.PREPARE_ABORT, now_ms, producer_epoch=epoch, last_producer_epoch=meta.producer_epoch)


# States in which a transactional id may expire: no transaction in progress or completing.
_EXPIRABLE = frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT})


def expired(meta: TxnMetadata, now_ms: int, expiration_ms: int) -> bool:
    """transactional.id.expiration.ms (Kafka's TransactionStateManager.removeExpiredTransactionalIds):
    an id with no transaction in progress whose state last changed `expiration_ms` ago or more is
    removed (a tombstone in __transaction_state). Ongoing and Prepare* ids never expire here: the
    transaction timeout aborts them first, and the abort's completion starts the clock again."""
    return meta.state in _EXPIRABLE and meta.last_update_ms >= 0 and now_ms - meta.last_update_ms >= expiration_ms
