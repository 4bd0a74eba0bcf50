"""Idempotent-producer state after truncation (issue 10 fix 6), on both log implementations.

Goal: a producer whose last stored batches are truncated away must be known again from the batches
that remain in the log (Kafka rebuilds producer state from snapshot + log), so that neither a stale
sequence nor a duplicate of a surviving batch is accepted as new. Method: ten one-record batches of
one producer, a truncation that removes the five the state table remembered, then the checks.
"""

from __future__ import annotations

from storage.batch import Record, build_batch
from storage.log import ProducerCheckResult

PRODUCER_ID = 7000


def _append_sequences(log, first: int, count: int, producer_epoch: int = 0) -> None:
    for sequence in range(first, first + count):
        log.append_as_leader(build_batch([Record(b"k", b"v%d" % sequence, 1000)], producer_id=PRODUCER_ID,
                                         producer_epoch=producer_epoch, base_sequence=sequence), 0, 0)


def test_producer_survives_truncation_of_its_remembered_batches(make_log):
    log = make_log()
    _append_sequences(log, 0, 10)  # offsets 0-9 hold sequences 0-9
    log.truncate_to(5)
    assert log.check_producer_batch(PRODUCER_ID, 0, 42, 42).result == ProducerCheckResult.OUT_OF_ORDER_SEQUENCE
    duplicate = log.check_producer_batch(PRODUCER_ID, 0, 4, 4)
    assert (duplicate.result, duplicate.first_offset) == (ProducerCheckResult.DUPLICATE, 4)
    assert log.check_producer_batch(PRODUCER_ID, 0, 5, 5).result == ProducerCheckResult.NEW


def test_producer_epoch_is_rebuilt_from_the_log(make_log):
    log = make_log()
    _append_sequences(log, 0, 3, producer_epoch=0)
    _append_sequences(log, 0, 7, producer_epoch=1)  # offsets 3-9, epoch 1
    log.truncate_to(4)  # keeps epoch-1 sequence 0 only
    assert log.check_producer_batch(PRODUCER_ID, 0, 3, 3).result == ProducerCheckResult.INVALID_PRODUCER_EPOCH
    assert log.check_producer_batch(PRODUCER_ID, 1, 1, 1).result == ProducerCheckResult.NEW
    assert log.check_producer_batch(PRODUCER_ID, 1, 5, 5).result == ProducerCheckResult.OUT_OF_ORDER_SEQUENCE


def test_producer_with_nothing_left_in_the_log_is_unknown(make_log):
    log = make_log()
    log.append_as_leader(build_batch([Record(b"k", b"x", 1000)]), 0, 0)
    _append_sequences(log, 0, 3)  # offsets 1-3
    log.truncate_to(1)
    assert log.check_producer_batch(PRODUCER_ID, 0, 0, 0).result == ProducerCheckResult.NEW
