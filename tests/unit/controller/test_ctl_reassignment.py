"""Reassignment decisions (controller/reassignment.py), KIP-455: start, complete, cancel, list.

Goal: a move from replicas O to target T keeps O serving until T is fully in the ISR, then ends
with replicas = T, the leader inside T, and no reassignment state; bad targets are refused.
Method: tables of (image, request) -> resulting registration, replaying the records each step.
"""

from __future__ import annotations

import pytest

from cluster.codec import record_from_pb, record_to_pb
from cluster.errors import ErrorCode
from cluster.records import PartitionChange
from controller.reassignment import (
    alter_reassignments,
    complete_reassignments,
    list_reassignments,
    unregister_broker,
)
from tests.unit.controller.ctl_helpers import apply, make_image, part, tid


def view(image, name="t", index=0):
    p = part(image, name, index)
    return p.replicas, p.isr, p.leader, p.adding_replicas, p.removing_replicas


@pytest.mark.parametrize(("start", "target", "moving"), [
    # (replicas, isr, leader), target -> (replicas, isr, leader, adding, removing) while moving
    (((1, 2, 3), (1, 2, 3), 1), (4, 5, 6), ((4, 5, 6, 1, 2, 3), (1, 2, 3), 1, (4, 5, 6), (1, 2, 3))),
    (((1, 2, 3), (1, 2, 3), 1), (1, 2, 4), ((1, 2, 4, 3), (1, 2, 3), 1, (4,), (3,))),
    (((1, 2, 3), (1, 2, 3), 2), (3, 4), ((3, 4, 1, 2), (1, 2, 3), 2, (4,), (1, 2))),
    (((1,), (1,), 1), (2, 3), ((2, 3, 1), (1,), 1, (2, 3), (1,))),
    # removal only: nothing to copy; it completes at once (the target is in the ISR)
    (((1, 2, 3), (1, 2, 3), 3), (1, 2), ((1, 2, 3), (1, 2, 3), 3, (), (3,))),
])
def test_start_keeps_the_old_replicas_serving(start, target, moving) -> None:
    image = make_image((1, 2, 3, 4, 5, 6), topics={"t": [start]})
    records, outcomes = alter_reassignments(image, [("t", 0, target)])
    assert [o.error for o in outcomes] == [ErrorCode.none]
    assert view(apply(image, records)) == moving


@pytest.mark.parametrize(("start", "target", "isr_after_catch_up", "done"), [
    # the adding replicas caught up (the leader put them in the ISR) -> replicas = target, leader in it
    (((1, 2, 3), (1, 2, 3), 1), (4, 5, 6), (1, 2, 3, 4, 5, 6), ((4, 5, 6), (4, 5, 6), 4)),
    (((1, 2, 3), (1, 2, 3), 1), (1, 2, 4), (1, 2, 3, 4), ((1, 2, 4), (1, 2, 4), 1)),
    (((1, 2, 3), (1, 2, 3), 2), (3, 4), (1, 2, 3, 4), ((3, 4), (3, 4), 3)),
    (((1, 2, 3), (1, 2, 3), 3), (1, 2), (1, 2, 3), ((1, 2), (1, 2), 1)),
])
def test_complete_once_the_target_is_in_sync(start, target, isr_after_catch_up, done) -> None:
    image = make_image((1, 2, 3, 4, 5, 6), topics={"t": [start]})
    image = apply(image, alter_reassignments(image, [("t", 0, target)])[0])
    if set(target) - set(start[0]):
        assert complete_reassignments(image) == []  # the new replicas have not caught up
    image = apply(image, [PartitionChange(tid("t"), 0,
                                          isr=isr_after_catch_up)])
    image = apply(image, complete_reassignments(image))
    assert view(image) == (*done, (), ())
    assert complete_reassignments(image) == []


def test_a_target_not_fully_in_sync_does_not_complete() -> None:
    image = make_image((1, 2, 3, 4, 5), topics={"t": [((1, 2, 3), (1, 2, 3), 1)]})
    image = apply(image, alter_reassignments(image, [("t", 0, (4, 5, 1))])[0])
    image = apply(image, [PartitionChange(tid("t"), 0, isr=(1, 2, 3, 4))])
    assert complete_reassignments(image) == []
    assert list_reassignments(image)[0].adding_replicas == (4, 5)


def test_the_leader_leaves_only_for_an_active_target_replica() -> None:
    image = make_image((1, 2, 3), fenced=(3,), topics={"t": [((1, 2), (1, 2), 1)]})
    image = apply(image, alter_reassignments(image, [("t", 0, (2,))])[0])
    image = apply(image, complete_reassignments(image))
    assert view(image) == ((2,), (2,), 2, (), ())


def test_cancel_returns_to_the_original_replicas() -> None:
    image = make_image((1, 2, 3, 4), topics={"t": [((1, 2, 3), (1, 2, 3), 1)]})
    image = apply(image, alter_reassignments(image, [("t", 0, (4, 2, 3))])[0])
    image = apply(image, [PartitionChange(tid("t"), 0, isr=(1, 2, 3, 4), leader=4)])
    records, outcomes = alter_reassignments(image, [("t", 0, None)])
    assert outcomes[0].error == ErrorCode.none
    # Kafka's order: the original replicas are the replicas minus the adding ones (target order first)
    assert view(apply(image, records)) == ((2, 3, 1), (1, 2, 3), 2, (), ())


def test_a_new_target_replaces_the_one_in_progress() -> None:
    image = make_image((1, 2, 3, 4, 5), topics={"t": [((1, 2, 3), (1, 2, 3), 1)]})
    image = apply(image, alter_reassignments(image, [("t", 0, (4, 2, 3))])[0])
    image = apply(image, alter_reassignments(image, [("t", 0, (5, 2, 3))])[0])
    assert view(image) == ((5, 2, 3, 1), (1, 2, 3), 1, (5,), (1,))


@pytest.mark.parametrize(("request_", "error"), [
    (("nope", 0, (1,)), ErrorCode.unknown_topic_or_partition),
    (("t", 7, (1,)), ErrorCode.unknown_topic_or_partition),
    (("t", 0, ()), ErrorCode.invalid_replica_assignment),
    (("t", 0, (1, 1)), ErrorCode.invalid_replica_assignment),
    (("t", 0, (1, 9)), ErrorCode.invalid_replica_assignment),
    (("t", 0, None), ErrorCode.no_reassignment_in_progress),
])
def test_bad_requests_are_refused_without_records(request_, error) -> None:
    image = make_image((1, 2, 3), topics={"t": [((1, 2, 3), (1, 2, 3), 1)]})
    records, outcomes = alter_reassignments(image, [request_])
    assert records == [] and outcomes[0].error == error and outcomes[0].message


def test_the_same_replicas_is_a_no_op() -> None:
    image = make_image((1, 2, 3), topics={"t": [((1, 2, 3), (1, 2, 3), 1)]})
    records, outcomes = alter_reassignments(image, [("t", 0, (1, 2, 3))])
    assert records == [] and outcomes[0].error == ErrorCode.none


def test_list_and_codec_round_trip() -> None:
    image = make_image((1, 2, 3, 4), topics={"t": [((1, 2), (1, 2), 1), ((2, 3), (2, 3), 2)], "u": [((1,), (1,), 1)]})
    records, _ = alter_reassignments(image, [("t", 1, (4, 3)), ("u", 0, (2,))])
    assert [record_from_pb(record_to_pb(r)) for r in records] == records
    image = apply(image, records)
    assert [(r.topic, r.partition, r.adding_replicas, r.removing_replicas) for r in list_reassignments(image)] == [
        ("t", 1, (4,), (2,)), ("u", 0, (2,), (1,))]
    assert [r.topic for r in list_reassignments(image, {"u": []})] == ["u"]
    assert list_reassignments(image, {"t": [0]}) == []


@pytest.mark.parametrize(("fenced", "topics", "error"), [
    ((3,), {"t": [((1, 2), (1, 2), 1)]}, ErrorCode.none),
    ((), {"t": [((1, 2), (1, 2), 1)]}, ErrorCode.invalid_request),           # running: it would re-register
    ((3,), {"t": [((1, 3), (1,), 1)]}, ErrorCode.invalid_request),           # still a replica
])
def test_unregister_only_a_stopped_broker_without_replicas(fenced, topics, error) -> None:
    image = make_image((1, 2, 3), fenced=fenced, topics=topics)
    records, (code, message) = unregister_broker(image, 3)
    assert code == error
    if error == ErrorCode.none:
        assert [record_from_pb(record_to_pb(r)) for r in records] == records
        assert 3 not in apply(image, records).brokers
    else:
        assert records == [] and message


def test_unregister_an_unknown_broker() -> None:
    records, (code, _) = unregister_broker(make_image((1, 2)), 7)
    assert records == [] and code == ErrorCode.broker_id_not_registered
