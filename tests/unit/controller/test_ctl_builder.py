"""build_partition_change: a table of every rung of the leader ladder and the ISR rules."""

from __future__ import annotations

import pytest

from cluster.image import PartitionRegistration
from cluster.records import LEADER_UNCHANGED, PartitionChange
from controller.replication import Election, build_partition_change

T = b"t" * 16
P, ON, U = Election.PREFERRED, Election.ONLINE, Election.UNCLEAN

# (id, replicas, isr, leader, active, election, target_isr, log_end_offsets, expected)
# expected: None (no change) or (new isr or None, new leader or LEADER_UNCHANGED, unclean)
CASES = [
    ("noop-all-live", (1, 2, 3), (1, 2, 3), 1, {1, 2, 3}, ON, None, None, None),
    ("online-keeps-valid-leader", (1, 2, 3), (1, 2, 3), 2, {1, 2, 3}, ON, None, None, None),
    ("online-leader-fenced-next-in-replica-order", (1, 2, 3), (3, 2, 1), 1, {2, 3}, ON, None, None,
     ((3, 2), 2, False)),
    ("online-follower-fenced-shrinks-isr", (1, 2, 3), (1, 2, 3), 1, {1, 2}, ON, None, None, ((1, 2), LEADER_UNCHANGED, False)),
    ("online-target-removes-leader", (1, 2, 3), (1, 2, 3), 1, {1, 2, 3}, ON, (2, 3), None, ((2, 3), 2, False)),
    ("online-last-member-stays-offline", (1, 2, 3), (1,), 1, {2, 3}, ON, None, None, (None, -1, False)),
    ("online-empty-target-keeps-current-isr", (1, 2, 3), (1,), 1, {2, 3}, ON, (), None, (None, -1, False)),
    ("online-offline-stays-offline", (1, 2, 3), (1,), -1, {2, 3}, ON, None, None, None),
    ("online-offline-isr-member-returns", (1, 2, 3), (1,), -1, {1, 2}, ON, None, None, (None, 1, False)),
    ("online-leader-not-in-isr-repaired", (1, 2, 3), (2, 3), 1, {1, 2, 3}, ON, None, None, (None, 2, False)),
    ("online-target-outside-replicas-dropped", (1, 2), (1, 2), 1, {1, 2, 9}, ON, (1, 2, 9), None, None),
    ("online-target-duplicates-dropped", (1, 2), (1,), 1, {1, 2}, ON, (1, 2, 2), None, ((1, 2), LEADER_UNCHANGED, False)),
    ("preferred-moves-to-first-replica", (1, 2, 3), (1, 2, 3), 2, {1, 2, 3}, P, None, None, (None, 1, False)),
    ("preferred-already-leads", (1, 2, 3), (1, 2, 3), 1, {1, 2, 3}, P, None, None, None),
    ("preferred-not-in-isr-no-change", (1, 2, 3), (2, 3), 2, {1, 2, 3}, P, None, None, None),
    ("preferred-not-live-no-change", (1, 2, 3), (1, 2, 3), 2, {2, 3}, P, None, None, ((2, 3), LEADER_UNCHANGED, False)),
    ("preferred-falls-back-to-online", (1, 2, 3), (1, 2, 3), 2, {3}, P, None, None, ((3,), 3, False)),
    ("unclean-clean-when-isr-live", (1, 2, 3), (1, 2), -1, {2, 3}, U, None, None, ((2,), 2, False)),
    ("unclean-replica-order", (1, 2, 3), (1,), -1, {2, 3}, U, None, None, ((2,), 2, True)),
    ("unclean-longest-log", (1, 2, 3), (1,), -1, {2, 3}, U, None, {2: 10, 3: 12}, ((3,), 3, True)),
    ("unclean-longest-log-tie-replica-order", (1, 3, 2), (1,), -1, {2, 3}, U, None, {2: 12, 3: 12}, ((3,), 3, True)),
    ("unclean-leader-fenced", (1, 2, 3), (1,), 1, {3}, U, None, None, ((3,), 3, True)),
    ("unclean-nobody-live", (1, 2, 3), (1,), 1, set(), U, None, None, (None, -1, False)),
    ("unclean-keeps-valid-leader", (1, 2, 3), (1,), 1, {1, 2, 3}, U, None, None, None),
]


@pytest.mark.parametrize(("replicas", "isr", "leader", "active", "election", "target", "offsets", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_ladder(replicas, isr, leader, active, election, target, offsets, expected):
    current = PartitionRegistration(replicas, isr, leader, leader_epoch=4, partition_epoch=7)
    change = build_partition_change(T, 0, current, is_acceptable=active.__contains__, election=election,
                                    target_isr=target, log_end_offsets=offsets)
    if expected is None:
        assert change is None
        return
    new_isr, new_leader, unclean = expected
    assert change == PartitionChange(T, 0, isr=new_isr, leader=new_leader, unclean=unclean)
    merged = current.merge(change)
    assert merged.partition_epoch == 8
    assert merged.leader_epoch == (5 if new_leader != LEADER_UNCHANGED else 4)
    assert merged.isr and set(merged.isr) <= set(replicas)
    assert merged.leader == -1 or merged.leader in merged.isr


def test_a_leader_that_may_keep_leading_stays_when_nobody_else_qualifies():
    # Broker 1 is in controlled shutdown (not acceptable, but unfenced): it keeps the partition.
    current = PartitionRegistration((1, 2, 3), (1, 2), 1)
    change = build_partition_change(T, 0, current, is_acceptable={3}.__contains__,
                                    may_keep_leading={1, 3}.__contains__, target_isr=(1,))
    assert change == PartitionChange(T, 0, isr=(1,))


def test_a_kept_leader_yields_to_the_preferred_replica():
    current = PartitionRegistration((2, 1), (1, 2), 1)
    change = build_partition_change(T, 0, current, is_acceptable={2}.__contains__,
                                    may_keep_leading={1, 2}.__contains__, election=P)
    assert change == PartitionChange(T, 0, leader=2)
