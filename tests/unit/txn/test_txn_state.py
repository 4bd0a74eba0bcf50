"""The transaction coordinator's pure state machine (broker/txn/state.py): Kafka's TransactionState
transitions and the decisions of InitProducerId, AddPartitionsToTxn, EndTxn and the timeout abort."""

from __future__ import annotations

import pytest

from broker.txn import state
from broker.txn.state import EPOCH_MAX, After, TxnMetadata, TxnState
from cluster.errors import ErrorCode

S = TxnState
NOW = 1_000_000
TID = "tid"


def meta(st: TxnState = S.EMPTY, epoch: int = 3, partitions=(), start_ms: int = -1, **kw) -> TxnMetadata:
    return TxnMetadata(TID, 7, epoch, 60_000, st, frozenset(partitions), start_ms, NOW - 1, **kw)


# Kafka's TransactionState.validPreviousStates, as a table of every (old, new) pair.
VALID = {
    (S.EMPTY, S.EMPTY), (S.COMPLETE_COMMIT, S.EMPTY), (S.COMPLETE_ABORT, S.EMPTY),
    (S.EMPTY, S.ONGOING), (S.ONGOING, S.ONGOING), (S.COMPLETE_COMMIT, S.ONGOING), (S.COMPLETE_ABORT, S.ONGOING),
    (S.ONGOING, S.PREPARE_COMMIT), (S.ONGOING, S.PREPARE_ABORT), (S.PREPARE_EPOCH_FENCE, S.PREPARE_ABORT),
    (S.PREPARE_COMMIT, S.COMPLETE_COMMIT), (S.PREPARE_ABORT, S.COMPLETE_ABORT),
    (S.EMPTY, S.DEAD), (S.COMPLETE_COMMIT, S.DEAD), (S.COMPLETE_ABORT, S.DEAD),
    (S.ONGOING, S.PREPARE_EPOCH_FENCE),
}


@pytest.mark.parametrize("old", list(S))
@pytest.mark.parametrize("new", list(S))
def test_transition_table_is_kafkas(old, new):
    assert state.valid_transition(old, new) == ((old, new) in VALID)


def test_state_ids_are_kafkas():
    assert [(s.kafka_name, int(s)) for s in S] == [
        ("Empty", 0), ("Ongoing", 1), ("PrepareCommit", 2), ("PrepareAbort", 3), ("CompleteCommit", 4),
        ("CompleteAbort", 5), ("Dead", 6), ("PrepareEpochFence", 7)]


# -- InitProducerId ----------------------------------------------------------------------------------

def test_new_transactional_id_asks_for_a_producer_id_then_starts_at_epoch_0():
    first = state.init_producer_id(None, TID, 60_000, NOW)
    assert first.needs_producer_id and first.write is None
    second = state.init_producer_id(None, TID, 60_000, NOW, new_producer_id=42)
    assert second.ok and second.write == TxnMetadata(TID, 42, 0, 60_000, S.EMPTY, frozenset(), -1, NOW)


@pytest.mark.parametrize("st", [S.EMPTY, S.COMPLETE_COMMIT, S.COMPLETE_ABORT])
def test_reinit_bumps_the_epoch_fencing_the_previous_producer(st):
    d = state.init_producer_id(meta(st, epoch=3), TID, 30_000, NOW)
    assert d.ok and d.write is not None
    assert (d.write.producer_id, d.write.producer_epoch, d.write.state) == (7, 4, S.EMPTY)
    assert d.write.last_producer_epoch == 3 and d.write.timeout_ms == 30_000


def test_reinit_during_an_open_transaction_aborts_it_with_the_bumped_epoch():
    d = state.init_producer_id(meta(S.ONGOING, epoch=3, partitions=[("t", 0)], start_ms=NOW), TID, 60_000, NOW)
    assert d.error == ErrorCode.concurrent_transactions  # the client retries until the abort completes
    assert d.after is After.ABORT_THEN_RETRY
    assert d.write is not None and d.write.state is S.PREPARE_ABORT and d.write.producer_epoch == 4
    assert d.write.partitions == frozenset({("t", 0)})  # the markers go to the open partitions


@pytest.mark.parametrize("st", [S.PREPARE_COMMIT, S.PREPARE_ABORT])
def test_reinit_while_completing_is_concurrent(st):
    d = state.init_producer_id(meta(st), TID, 60_000, NOW)
    assert d.error == ErrorCode.concurrent_transactions and d.write is None


def test_epoch_exhaustion_rotates_to_a_new_producer_id():
    d = state.init_producer_id(meta(S.EMPTY, epoch=EPOCH_MAX), TID, 60_000, NOW)
    assert d.needs_producer_id
    d = state.init_producer_id(meta(S.EMPTY, epoch=EPOCH_MAX), TID, 60_000, NOW, new_producer_id=99)
    assert d.write is not None and (d.write.producer_id, d.write.producer_epoch, d.write.prev_producer_id) == (99, 0, 7)


@pytest.mark.parametrize(("expected_id", "expected_epoch", "error"), [
    (7, 3, ErrorCode.none),                    # KIP-360: the current epoch may bump
    (7, 2, ErrorCode.none),                    # the epoch before a coordinator-side bump
    (7, 1, ErrorCode.producer_fenced),         # an older incarnation
    (8, 3, ErrorCode.producer_fenced),         # another producer id
])
def test_kip360_expected_producer_id_and_epoch(expected_id, expected_epoch, error):
    d = state.init_producer_id(meta(S.COMPLETE_ABORT, epoch=3, last_producer_epoch=2), TID, 60_000, NOW,
                               expected_id, expected_epoch)
    assert d.error == error
    assert (d.write is not None) == (error == ErrorCode.none)


def test_kip360_unknown_transactional_id():
    d = state.init_producer_id(None, TID, 60_000, NOW, 7, 3)
    assert d.error == ErrorCode.invalid_producer_id_mapping


@pytest.mark.parametrize("timeout_ms", [0, -1, 900_001])
def test_transaction_timeout_bounds(timeout_ms):
    assert state.init_producer_id(None, TID, timeout_ms, NOW).error == ErrorCode.invalid_transaction_timeout


# -- AddPartitionsToTxn ------------------------------------------------------------------------------

def test_first_partition_opens_the_transaction_at_now():
    d = state.add_partitions(meta(S.EMPTY), 7, 3, frozenset({("t", 0)}), NOW)
    assert d.write is not None and d.write.state is S.ONGOING and d.write.start_ms == NOW


def test_more_partitions_keep_the_start_time_and_known_ones_write_nothing():
    ongoing = meta(S.ONGOING, partitions=[("t", 0)], start_ms=NOW - 50)
    more = state.add_partitions(ongoing, 7, 3, frozenset({("t", 1)}), NOW)
    assert more.write is not None and more.write.start_ms == NOW - 50
    assert more.write.partitions == frozenset({("t", 0), ("t", 1)})
    again = state.add_partitions(ongoing, 7, 3, frozenset({("t", 0)}), NOW)
    assert again.ok and again.write is None


@pytest.mark.parametrize(("pid", "epoch", "st", "error"), [
    (7, 2, S.ONGOING, ErrorCode.producer_fenced),
    (7, 4, S.ONGOING, ErrorCode.invalid_producer_epoch),
    (8, 3, S.ONGOING, ErrorCode.invalid_producer_id_mapping),
    (7, 3, S.PREPARE_COMMIT, ErrorCode.concurrent_transactions),
    (7, 3, S.PREPARE_ABORT, ErrorCode.concurrent_transactions),
    (7, 3, S.DEAD, ErrorCode.invalid_producer_id_mapping),
])
def test_add_partitions_refusals(pid, epoch, st, error):
    d = state.add_partitions(meta(st, partitions=[("t", 0)]), pid, epoch, frozenset({("t", 1)}), NOW)
    assert d.error == error and d.write is None


# -- EndTxn ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("commit", "target"), [(True, S.PREPARE_COMMIT), (False, S.PREPARE_ABORT)])
def test_end_prepares_and_sends_markers(commit, target):
    d = state.end_txn(meta(S.ONGOING, partitions=[("t", 0)], start_ms=NOW), 7, 3, commit, NOW)
    assert d.write is not None and d.write.state is target and d.after is After.SEND_MARKERS


@pytest.mark.parametrize(("st", "commit", "error"), [
    (S.COMPLETE_COMMIT, True, ErrorCode.none),              # a retried commit that completed
    (S.COMPLETE_ABORT, False, ErrorCode.none),
    (S.PREPARE_COMMIT, True, ErrorCode.concurrent_transactions),
    (S.PREPARE_ABORT, False, ErrorCode.concurrent_transactions),
    (S.COMPLETE_COMMIT, False, ErrorCode.invalid_txn_state),
    (S.COMPLETE_ABORT, True, ErrorCode.invalid_txn_state),
    (S.PREPARE_COMMIT, False, ErrorCode.invalid_txn_state),
    (S.EMPTY, True, ErrorCode.invalid_txn_state),
])
def test_end_in_other_states(st, commit, error):
    d = state.end_txn(meta(st), 7, 3, commit, NOW)
    assert d.error == error and d.write is None


def test_end_from_a_fenced_epoch():
    d = state.end_txn(meta(S.ONGOING, epoch=4, partitions=[("t", 0)]), 7, 3, True, NOW)
    assert d.error == ErrorCode.producer_fenced


def test_complete_clears_the_partitions():
    done = state.complete(meta(S.PREPARE_COMMIT, partitions=[("t", 0)], start_ms=NOW), NOW + 5)
    assert (done.state, done.partitions, done.start_ms) == (S.COMPLETE_COMMIT, frozenset(), -1)
    assert state.complete(meta(S.PREPARE_ABORT), NOW).state is S.COMPLETE_ABORT


# -- timeouts ----------------------------------------------------------------------------------------

def test_timeout_aborts_with_a_bumped_epoch_only_once_expired():
    ongoing = meta(S.ONGOING, epoch=3, partitions=[("t", 0)], start_ms=NOW)
    assert state.timed_out(ongoing, NOW + 59_999) is None
    aborted = state.timed_out(ongoing, NOW + 60_000)
    assert aborted is not None and aborted.state is S.PREPARE_ABORT
    assert (aborted.producer_epoch, aborted.last_producer_epoch) == (4, 3)
    # The fenced producer's EndTxn now gets PRODUCER_FENCED, and its KIP-360 re-init is accepted.
    assert state.end_txn(aborted, 7, 3, True, NOW).error == ErrorCode.producer_fenced
    done = state.complete(aborted, NOW)
    assert state.init_producer_id(done, TID, 60_000, NOW, 7, 3).ok


@pytest.mark.parametrize("st", [S.EMPTY, S.PREPARE_COMMIT, S.COMPLETE_ABORT])
def test_only_ongoing_transactions_time_out(st):
    assert state.timed_out(meta(st, start_ms=0), NOW * 10) is None
