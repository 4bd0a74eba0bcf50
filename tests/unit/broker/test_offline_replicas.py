"""ReplicaManager.offline: the hosted replicas of partitions without a leader, kept from metadata changes.

Goal: every heartbeat reports these replicas' log ends (the controller's unclean-election probe) by
reading this set, not by walking every hosted partition (issue 16: per-tick work O(changed)). The set
must follow the metadata exactly: a partition enters when it loses its leader, leaves when it gets
one again or is deleted. Method: the in-process broker harness, metadata changes applied by `sync`.
"""

from __future__ import annotations

from cluster.records import PartitionChange, RemoveTopic
from tests.unit.broker.broker_harness import TOPIC_ID, Cluster


def offline(c: Cluster) -> dict[int, set[tuple[bytes, int]]]:
    return {b: set(node.manager.offline) for b, node in c.nodes.items()}


def test_a_partition_is_offline_exactly_while_it_has_no_leader() -> None:
    c = Cluster()
    c.create((1, 2, 3), leader=1)
    c.sync()
    assert offline(c) == {1: set(), 2: set(), 3: set()}
    c.commit([PartitionChange(TOPIC_ID, 0, isr=(1,), leader=-1)])  # the last ISR member is fenced
    c.sync()
    key = (TOPIC_ID, 0)
    assert offline(c) == {1: {key}, 2: {key}, 3: {key}}
    c.commit([PartitionChange(TOPIC_ID, 0, isr=(2,), leader=2)])  # an (unclean) election
    c.sync()
    assert offline(c) == {1: set(), 2: set(), 3: set()}
    c.commit([PartitionChange(TOPIC_ID, 0, isr=(2,), leader=-1)])
    c.sync()
    assert offline(c)[3] == {key}
    c.commit([RemoveTopic(TOPIC_ID)])
    c.sync()
    assert offline(c) == {1: set(), 2: set(), 3: set()}
