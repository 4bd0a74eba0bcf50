"""Fencing, unfencing, controlled shutdown, AlterPartition and manual elections: compute, replay, check."""

from __future__ import annotations

import pytest
from ctl_helpers import apply, make_image, part, state, tid

from cluster.errors import ErrorCode
from cluster.records import BrokerShutdown, FenceBroker, PartitionChange, UnfenceBroker
from controller.replication import (
    AlterPartitionItem,
    Election,
    alter_partition,
    controlled_shutdown_records,
    elect_leaders,
    fence_broker_records,
    shutdown_complete,
    unfence_broker_records,
)


def no(_topic: str) -> bool:
    return False


def yes(_topic: str) -> bool:
    return True


# -- fencing -----------------------------------------------------------------------------------------

# (id, partition (replicas, isr, leader), fenced already, broker to fence, unclean, expected (isr, leader))
FENCE = [
    ("leader-moves-to-isr", ((1, 2, 3), (1, 2, 3), 1), (), 1, False, ((2, 3), 2)),
    ("follower-leaves-isr", ((1, 2, 3), (1, 2, 3), 1), (), 3, False, ((1, 2), 1)),
    ("not-in-isr-untouched", ((1, 2, 3), (1, 2), 1), (), 3, False, ((1, 2), 1)),
    ("last-member-offline", ((1, 2, 3), (1,), 1), (), 1, False, ((1,), -1)),
    ("last-member-unclean", ((1, 2, 3), (1,), 1), (), 1, True, ((2,), 2)),
    ("second-last-then-offline", ((1, 2), (2,), 2), (1,), 2, False, ((2,), -1)),
    ("unclean-nobody-live", ((1, 2), (1,), 1), (2,), 1, True, ((1,), -1)),
    ("leader-moves-replica-order", ((3, 1, 2), (1, 2, 3), 1), (), 1, False, ((2, 3), 3)),
]


@pytest.mark.parametrize(("p", "fenced", "broker", "unclean", "expected"), [c[1:] for c in FENCE],
                         ids=[c[0] for c in FENCE])
def test_fence(p, fenced, broker, unclean, expected):
    image = make_image(fenced=fenced, topics={"t": [p]})
    records = fence_broker_records(image, broker, unclean_enabled=yes if unclean else no)
    assert records[0] == FenceBroker(broker, image.brokers[broker].broker_epoch)
    after = apply(image, records)
    assert after.brokers[broker].fenced
    assert state(after, "t") == expected
    if expected[1] != p[2]:
        assert part(after, "t").leader_epoch == 1
    assert after.unclean_elections == (1 if unclean and expected[1] not in p[1] and expected[1] != -1 else 0)


def test_fence_touches_every_partition_and_is_idempotent():
    image = make_image(topics={"a": [((1, 2, 3), (1, 2, 3), 1), ((2, 3, 1), (2, 3, 1), 2)],
                               "b": [((3, 1, 2), (3, 1), 3)]})
    after = apply(image, fence_broker_records(image, 1, unclean_enabled=no))
    assert state(after, "a", 0) == ((2, 3), 2)
    assert state(after, "a", 1) == ((2, 3), 2)
    assert state(after, "b", 0) == ((3,), 3)
    assert fence_broker_records(after, 1, unclean_enabled=no) == []
    assert fence_broker_records(after, 42, unclean_enabled=no) == []


# -- unfencing ---------------------------------------------------------------------------------------

# (id, partition, fenced, broker to unfence, unclean, expected (isr, leader))
UNFENCE = [
    ("isr-member-returns-clean", ((1, 2, 3), (1,), -1), (1, 2, 3), 1, False, ((1,), 1)),
    ("non-isr-stays-offline", ((1, 2, 3), (1,), -1), (1, 2, 3), 2, False, ((1,), -1)),
    ("non-isr-unclean", ((1, 2, 3), (1,), -1), (1, 2, 3), 2, True, ((2,), 2)),
    ("led-partition-untouched", ((1, 2, 3), (2, 3), 2), (1,), 1, True, ((2, 3), 2)),
    ("not-a-replica", ((2, 3), (2,), -1), (1, 2, 3), 1, True, ((2,), -1)),
]


@pytest.mark.parametrize(("p", "fenced", "broker", "unclean", "expected"), [c[1:] for c in UNFENCE],
                         ids=[c[0] for c in UNFENCE])
def test_unfence(p, fenced, broker, unclean, expected):
    image = make_image(fenced=fenced, topics={"t": [p]})
    records = unfence_broker_records(image, broker, unclean_enabled=yes if unclean else no)
    assert records[0] == UnfenceBroker(broker, image.brokers[broker].broker_epoch)
    after = apply(image, records)
    assert not after.brokers[broker].fenced
    assert state(after, "t") == expected


def test_unfence_of_an_unfenced_or_unknown_broker_is_nothing():
    image = make_image()
    assert unfence_broker_records(image, 1, unclean_enabled=yes) == []
    assert unfence_broker_records(image, 9, unclean_enabled=yes) == []


def test_unclean_election_prefers_the_longest_log():
    image = make_image(fenced=(1, 2, 3), topics={"t": [((1, 2, 3), (1,), -1)]})
    image = apply(image, unfence_broker_records(image, 2, unclean_enabled=no))
    image = apply(image, [UnfenceBroker(3, image.brokers[3].broker_epoch)])
    _, outcomes = elect_leaders(image, Election.UNCLEAN, [("t", 0)],
                                log_end_offsets=lambda topic_id, p: {2: 5, 3: 9})
    assert outcomes[0].leader == 3


# -- controlled shutdown -----------------------------------------------------------------------------

# (id, partitions, broker, expected states after, complete before)
SHUTDOWN = [
    ("leader-moves", [((1, 2, 3), (1, 2, 3), 1)], 1, [((2, 3), 2)], False),
    ("follower-leaves", [((1, 2, 3), (1, 2, 3), 1)], 2, [((1, 3), 1)], False),
    ("sole-member-keeps-leading", [((1, 2, 3), (1,), 1)], 1, [((1,), 1)], True),
    ("mixed", [((1, 2), (1, 2), 1), ((2, 1), (2, 1), 2), ((1, 3), (1,), 1)], 1,
     [((2,), 2), ((2,), 2), ((1,), 1)], False),
]


@pytest.mark.parametrize(("parts", "broker", "expected", "complete_before"), [c[1:] for c in SHUTDOWN],
                         ids=[c[0] for c in SHUTDOWN])
def test_controlled_shutdown(parts, broker, expected, complete_before):
    image = make_image(topics={"t": parts})
    assert shutdown_complete(image, broker) is complete_before
    records = controlled_shutdown_records(image, broker)
    assert records[0] == BrokerShutdown(broker, image.brokers[broker].broker_epoch)
    after = apply(image, records)
    assert after.brokers[broker].shutting_down and not after.brokers[broker].active
    assert [state(after, "t", i) for i in range(len(parts))] == expected
    assert shutdown_complete(after, broker)
    assert controlled_shutdown_records(after, broker) == []


def test_shutdown_moves_leadership_once_a_follower_rejoins():
    image = make_image(topics={"t": [((1, 2), (1,), 1)]})
    image = apply(image, controlled_shutdown_records(image, 1))
    assert state(image, "t") == ((1,), 1)
    p = part(image, "t")
    records, outcomes = alter_partition(image, 1, image.brokers[1].broker_epoch,
                                        [AlterPartitionItem(tid("t"), 0, p.leader_epoch, p.partition_epoch, (1, 2))])
    assert outcomes[0].error == ErrorCode.none
    image = apply(image, records)
    assert not shutdown_complete(image, 1)
    image = apply(image, controlled_shutdown_records(image, 1))
    assert state(image, "t") == ((2,), 2)
    assert shutdown_complete(image, 1)


def test_fencing_another_broker_does_not_take_leadership_from_a_shutting_down_leader():
    image = make_image(shutting=(1,), topics={"t": [((1, 2, 3), (1, 2), 1)]})
    after = apply(image, fence_broker_records(image, 2, unclean_enabled=no))
    assert state(after, "t") == ((1,), 1)


def test_shutdown_of_fenced_or_unknown_broker_is_nothing():
    image = make_image(fenced=(1,))
    assert controlled_shutdown_records(image, 1) == []
    assert controlled_shutdown_records(image, 7) == []
    assert shutdown_complete(image, 1) and shutdown_complete(image, 7)


# -- AlterPartition ----------------------------------------------------------------------------------

def _alter_image():
    # t-0: replicas 1,2,3 ISR 1,2 leader 1, leader epoch 0, partition epoch 0; broker 4 fenced, 3 active
    return make_image(brokers=(1, 2, 3, 4, 5), fenced=(4,), shutting=(5,),
                      topics={"t": [((1, 2, 3, 4, 5), (1, 2), 1)]})


# (id, broker, epoch delta, leader_epoch, partition_epoch, new_isr, expected error)
ALTER = [
    ("expand", 1, 0, 0, 0, (1, 2, 3), ErrorCode.none),
    ("shrink", 1, 0, 0, 0, (1,), ErrorCode.none),
    ("unchanged", 1, 0, 0, 0, (1, 2), ErrorCode.none),
    ("stale-broker-epoch", 1, -1, 0, 0, (1, 2, 3), ErrorCode.stale_broker_epoch),
    ("unknown-broker", 9, 0, 0, 0, (1, 2, 3), ErrorCode.stale_broker_epoch),
    ("fenced-broker", 4, 0, 0, 0, (1, 2, 3), ErrorCode.stale_broker_epoch),
    ("not-leader", 2, 0, 0, 0, (1, 2, 3), ErrorCode.not_leader_or_follower),
    ("future-leader-epoch", 1, 0, 1, 0, (1, 2, 3), ErrorCode.not_leader_or_follower),
    ("stale-partition-epoch", 1, 0, 0, 3, (1, 2, 3), ErrorCode.invalid_update_version),
    ("not-a-replica", 1, 0, 0, 0, (1, 2, 9), ErrorCode.invalid_request),
    ("without-leader", 1, 0, 0, 0, (2, 3), ErrorCode.invalid_request),
    ("duplicate-member", 1, 0, 0, 0, (1, 2, 2), ErrorCode.invalid_request),
    ("empty", 1, 0, 0, 0, (), ErrorCode.invalid_request),
    ("fenced-member", 1, 0, 0, 0, (1, 2, 4), ErrorCode.ineligible_replica),
    ("shutting-down-member", 1, 0, 0, 0, (1, 2, 5), ErrorCode.ineligible_replica),
]


@pytest.mark.parametrize(("broker", "delta", "leader_epoch", "partition_epoch", "new_isr", "error"),
                         [c[1:] for c in ALTER], ids=[c[0] for c in ALTER])
def test_alter_partition(broker, delta, leader_epoch, partition_epoch, new_isr, error):
    image = _alter_image()
    epoch = image.brokers[broker].broker_epoch + delta if broker in image.brokers else 1
    item = AlterPartitionItem(tid("t"), 0, leader_epoch, partition_epoch, new_isr)
    records, outcomes = alter_partition(image, broker, epoch, [item])
    assert [o.error for o in outcomes] == [error]
    if error != ErrorCode.none:
        assert records == [] and outcomes[0].registration is None
        return
    after = apply(image, records)
    assert outcomes[0].registration == part(after, "t")
    assert part(after, "t").isr == new_isr
    assert part(after, "t").partition_epoch == (0 if new_isr == (1, 2) else 1)
    assert part(after, "t").leader_epoch == 0


def test_alter_partition_fenced_leader_epoch_and_per_item_results():
    image = make_image(topics={"t": [((1, 2, 3), (1, 2, 3), 1), ((2, 1, 3), (2, 1), 2)]})
    image = apply(image, elect_leaders(image, Election.PREFERRED, None)[0])  # nothing to do
    image = apply(image, fence_broker_records(image, 2, unclean_enabled=no))  # t-1: leader 1, epoch 1
    image = apply(image, unfence_broker_records(image, 2, unclean_enabled=no))
    p0, p1 = part(image, "t", 0), part(image, "t", 1)
    items = [
        AlterPartitionItem(tid("t"), 0, p0.leader_epoch, p0.partition_epoch, (1, 2, 3)),
        AlterPartitionItem(tid("t"), 1, p1.leader_epoch - 1, p1.partition_epoch, (1, 2)),
        AlterPartitionItem(tid("t"), 7, 0, 0, (1,)),
        AlterPartitionItem(tid("nope"), 0, 0, 0, (1,)),
        AlterPartitionItem(tid("t"), 0, p0.leader_epoch, p0.partition_epoch, (1, 3)),
    ]
    records, outcomes = alter_partition(image, 1, image.brokers[1].broker_epoch, items)
    assert [o.error for o in outcomes] == [ErrorCode.none, ErrorCode.fenced_leader_epoch,
                                           ErrorCode.unknown_topic_or_partition,
                                           ErrorCode.unknown_topic_or_partition, ErrorCode.invalid_request]
    after = apply(image, records)
    assert state(after, "t", 0) == ((1, 2, 3), 1)


def test_alter_partition_may_keep_a_member_that_is_now_shutting_down():
    image = make_image(topics={"t": [((1, 2, 3), (1, 2, 3), 1)]})
    image = apply(image, [BrokerShutdown(3, image.brokers[3].broker_epoch)])  # 3 not yet moved out
    records, outcomes = alter_partition(image, 1, image.brokers[1].broker_epoch,
                                        [AlterPartitionItem(tid("t"), 0, 0, 0, (1, 3))])
    assert outcomes[0].error == ErrorCode.none


def test_alter_partition_by_a_shutting_down_sole_leader_is_allowed():
    image = make_image(shutting=(1,), topics={"t": [((1, 2), (1,), 1)]})
    records, outcomes = alter_partition(image, 1, image.brokers[1].broker_epoch,
                                        [AlterPartitionItem(tid("t"), 0, 0, 0, (1, 2))])
    assert outcomes[0].error == ErrorCode.none
    assert records == [PartitionChange(tid("t"), 0, isr=(1, 2))]


# KIP-903: (id, broker epochs the leader saw for new ISR (1, 2, 3), given as deltas from each member's
# current epoch, None = not sent; expected error). Only the *added* member 3 is checked.
ALTER_BROKER_EPOCHS = [
    ("current-epoch", (0, 0, 0), ErrorCode.none),
    ("not-sent-by-an-older-broker", None, ErrorCode.none),
    ("added-member-previous-incarnation", (0, 0, -1), ErrorCode.ineligible_replica),
    ("added-member-unknown-epoch", (0, 0, "unknown"), ErrorCode.ineligible_replica),
    ("kept-member-epoch-not-checked", (0, -1, 0), ErrorCode.none),
    ("length-mismatch", (0, 0), ErrorCode.invalid_request),
]


@pytest.mark.parametrize(("deltas", "error"), [c[1:] for c in ALTER_BROKER_EPOCHS],
                         ids=[c[0] for c in ALTER_BROKER_EPOCHS])
def test_alter_partition_checks_the_broker_epoch_of_added_members(deltas, error):
    image = _alter_image()
    epochs: tuple[int, ...] = ()
    if deltas is not None:
        epochs = tuple(-1 if d == "unknown" else image.brokers[b].broker_epoch + d
                       for b, d in zip((1, 2, 3), deltas, strict=False))
    item = AlterPartitionItem(tid("t"), 0, 0, 0, (1, 2, 3), epochs)
    records, outcomes = alter_partition(image, 1, image.brokers[1].broker_epoch, [item])
    assert [o.error for o in outcomes] == [error]
    assert (records != []) == (error == ErrorCode.none)


# Sessions in doubt (issue 10, simulator seed 29423): (id, new ISR, suspect brokers, expected error).
# The ISR is (1, 2) led by 1; 3 is an active replica outside it. Only an *added* suspect is refused:
# a shrink, or an unchanged member the controller doubts, goes through (fencing removes it).
ALTER_SUSPECT = [
    ("added-member-suspect", (1, 2, 3), {3}, ErrorCode.ineligible_replica),
    ("added-member-fine", (1, 2, 3), {2}, ErrorCode.none),
    ("nobody-suspect", (1, 2, 3), set(), ErrorCode.none),
    ("kept-member-suspect", (1, 2), {2}, ErrorCode.none),
    ("shrink-away-from-suspect", (1,), {2}, ErrorCode.none),
    ("shrink-while-leader-suspect", (1,), {1}, ErrorCode.none),
    ("suspect-not-in-request", (1, 2, 3), {4, 5}, ErrorCode.none),
]


@pytest.mark.parametrize(("new_isr", "suspect", "error"), [c[1:] for c in ALTER_SUSPECT],
                         ids=[c[0] for c in ALTER_SUSPECT])
def test_alter_partition_refuses_adding_a_broker_whose_session_is_in_doubt(new_isr, suspect, error):
    image = _alter_image()
    item = AlterPartitionItem(tid("t"), 0, 0, 0, new_isr, tuple(image.brokers[b].broker_epoch for b in new_isr))
    records, outcomes = alter_partition(image, 1, image.brokers[1].broker_epoch, [item], suspect=frozenset(suspect))
    assert [o.error for o in outcomes] == [error]
    if error == ErrorCode.none:
        assert part(apply(image, records), "t").isr == new_isr
    else:
        assert records == [] and outcomes[0].registration is None


# -- manual elections --------------------------------------------------------------------------------

# (id, partition, fenced, election, expected error, expected leader)
ELECT = [
    ("preferred-moves", ((1, 2, 3), (1, 2, 3), 2), (), Election.PREFERRED, ErrorCode.none, 1),
    ("preferred-not-needed", ((1, 2, 3), (1, 2, 3), 1), (), Election.PREFERRED, ErrorCode.election_not_needed, 1),
    ("preferred-not-in-isr", ((1, 2, 3), (2, 3), 2), (), Election.PREFERRED,
     ErrorCode.preferred_leader_not_available, 2),
    ("preferred-fenced", ((1, 2, 3), (1, 2, 3), 2), (1,), Election.PREFERRED,
     ErrorCode.preferred_leader_not_available, 2),
    ("unclean-not-needed", ((1, 2, 3), (1, 2, 3), 2), (), Election.UNCLEAN, ErrorCode.election_not_needed, 2),
    ("unclean-elects-live-replica", ((1, 2, 3), (1,), -1), (1,), Election.UNCLEAN, ErrorCode.none, 2),
    ("unclean-prefers-live-isr", ((1, 2, 3), (3,), -1), (), Election.UNCLEAN, ErrorCode.none, 3),
    ("unclean-nobody-live", ((1, 2, 3), (1,), -1), (1, 2, 3), Election.UNCLEAN,
     ErrorCode.eligible_leaders_not_available, -1),
    ("online-needs-isr", ((1, 2, 3), (1,), -1), (1,), Election.ONLINE, ErrorCode.eligible_leaders_not_available, -1),
]


@pytest.mark.parametrize(("p", "fenced", "election", "error", "leader"), [c[1:] for c in ELECT],
                         ids=[c[0] for c in ELECT])
def test_elect_leaders(p, fenced, election, error, leader):
    image = make_image(fenced=fenced, topics={"t": [p]})
    records, outcomes = elect_leaders(image, election, [("t", 0)], unclean_enabled=no)
    assert [(o.topic, o.partition, o.error, o.leader) for o in outcomes] == [("t", 0, error, leader)]
    assert bool(outcomes[0].message) == (error != ErrorCode.none)
    after = apply(image, records)
    assert part(after, "t").leader == leader
    assert (records != []) == (error == ErrorCode.none)


def test_elect_leaders_all_unknown_whole_topic_and_duplicates():
    image = make_image(topics={"a": [((1, 2), (1, 2), 2), ((2, 1), (2, 1), 2)], "b": [((3, 1), (3, 1), 1)]})
    records, outcomes = elect_leaders(image, Election.PREFERRED, None)
    assert [(o.topic, o.partition, o.error) for o in outcomes] == [
        ("a", 0, ErrorCode.none), ("a", 1, ErrorCode.election_not_needed), ("b", 0, ErrorCode.none)]
    after = apply(image, records)
    assert [state(after, "a", 0)[1], state(after, "b", 0)[1]] == [1, 3]
    _, outcomes = elect_leaders(image, Election.PREFERRED, [("a", -1), ("a", 0), ("zz", 0), ("a", 5), ("zz", -1)])
    assert [(o.topic, o.partition, o.error) for o in outcomes] == [
        ("a", 0, ErrorCode.none), ("a", 1, ErrorCode.election_not_needed),
        ("zz", 0, ErrorCode.unknown_topic_or_partition), ("a", 5, ErrorCode.unknown_topic_or_partition),
        ("zz", -1, ErrorCode.unknown_topic_or_partition)]
