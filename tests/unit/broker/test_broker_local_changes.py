"""broker.local_changes: what broker 1 must do with its replicas when the image moves from `before` to `after`.

Method: each case builds two images from records (the same way the controller's replay does), runs
`local_changes(before, after, 1)` and compares the four lists as (topic, partition, leader, epoch)
tuples. Deletes are (topic id, partition).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from broker.local_changes import LocalChanges, local_changes
from cluster.image import MetadataImage, replay_all
from cluster.records import (
    ClusterRecord,
    PartitionChange,
    PartitionRecord,
    Record,
    RegisterBroker,
    RemoveTopic,
    TopicRecord,
)

ME = 1


def tid(name: str) -> bytes:
    return name.encode().ljust(16, b"\0")[:16]


OLD_ID = tid("t")
NEW_ID = tid("t-recreated")


def base() -> MetadataImage:
    records: list[Record] = [ClusterRecord("c")]
    records += [RegisterBroker(b, 1 + b, f"inc-{b}", "127.0.0.1", 9000 + b, 9100 + b) for b in (1, 2, 3)]
    return replay_all(MetadataImage(), records)


def topic(replicas: Sequence[int] = (1, 2, 3), leader: int = 1, isr: Sequence[int] | None = None,
          partitions: int = 1, topic_id: bytes = OLD_ID, name: str = "t") -> list[Record]:
    out: list[Record] = [TopicRecord(name, topic_id)]
    out += [PartitionRecord(topic_id, i, tuple(replicas), tuple(isr if isr is not None else replicas), leader)
            for i in range(partitions)]
    return out


def view(changes: LocalChanges) -> dict[str, list]:
    def parts(items):
        return [(p.topic, p.partition, p.registration.leader, p.registration.leader_epoch,
                 p.topic_id == NEW_ID) for p in items]
    return {"leaders": parts(changes.leaders), "followers": parts(changes.followers),
            "updates": parts(changes.updates), "deletes": sorted(changes.deletes)}


def expect(leaders=(), followers=(), updates=(), deletes=()) -> dict[str, list]:
    return {"leaders": list(leaders), "followers": list(followers), "updates": list(updates),
            "deletes": sorted(deletes)}


# (case, records before (None = no previous image), records applied after, expected changes for broker 1)
# A partition is (topic, index, leader, leader epoch, is the re-created topic id).
CASES = [
    ("first-image-leader", None, topic(leader=1),
     expect(leaders=[("t", 0, 1, 0, False)])),
    ("first-image-follower", None, topic(leader=2),
     expect(followers=[("t", 0, 2, 0, False)])),
    ("first-image-not-a-replica", None, topic(replicas=(2, 3), leader=2),
     expect()),
    ("new-topic-leader-and-follower", [], topic(leader=1, partitions=1) + [PartitionRecord(OLD_ID, 1, (2, 1), (2, 1), 2)],
     expect(leaders=[("t", 0, 1, 0, False)], followers=[("t", 1, 2, 0, False)])),
    ("nothing-changed", topic(leader=1), [],
     expect()),
    ("follower-becomes-leader", topic(leader=2), [PartitionChange(OLD_ID, 0, leader=1)],
     expect(leaders=[("t", 0, 1, 1, False)])),
    ("leader-becomes-follower", topic(leader=1), [PartitionChange(OLD_ID, 0, leader=2)],
     expect(followers=[("t", 0, 2, 1, False)])),
    ("follower-sees-new-leader", topic(leader=2), [PartitionChange(OLD_ID, 0, leader=3)],
     expect(followers=[("t", 0, 3, 1, False)])),
    # Same leader, new leader epoch (leader re-elected after going offline): become leader again.
    ("leader-reelected-new-epoch", topic(leader=1),
     [PartitionChange(OLD_ID, 0, leader=-1, isr=(1,)), PartitionChange(OLD_ID, 0, leader=1)],
     expect(leaders=[("t", 0, 1, 2, False)])),
    # A follower must refetch from the same leader in a new epoch (it may have to truncate).
    ("follower-same-leader-new-epoch", topic(leader=2),
     [PartitionChange(OLD_ID, 0, leader=-1, isr=(2,)), PartitionChange(OLD_ID, 0, leader=2)],
     expect(followers=[("t", 0, 2, 2, False)])),
    ("leader-isr-shrinks", topic(leader=1), [PartitionChange(OLD_ID, 0, isr=(1, 2))],
     expect(updates=[("t", 0, 1, 0, False)])),
    ("follower-isr-shrinks", topic(leader=2), [PartitionChange(OLD_ID, 0, isr=(2, 3))],
     expect(updates=[("t", 0, 2, 0, False)])),
    ("partition-goes-offline", topic(leader=2), [PartitionChange(OLD_ID, 0, leader=-1, isr=(2,))],
     expect(followers=[("t", 0, -1, 1, False)])),
    ("other-brokers-partition-changes", topic(replicas=(2, 3), leader=2), [PartitionChange(OLD_ID, 0, leader=3)],
     expect()),
    ("replica-removed-from-assignment", topic(leader=2), [PartitionChange(OLD_ID, 0, replicas=(2, 3), isr=(2, 3))],
     expect(deletes=[(OLD_ID, 0)])),
    ("replica-added-to-assignment", topic(replicas=(2, 3), leader=2),
     [PartitionChange(OLD_ID, 0, replicas=(2, 3, 1))],
     expect(followers=[("t", 0, 2, 0, False)])),
    ("topic-deleted", topic(leader=1, partitions=2), [RemoveTopic(OLD_ID)],
     expect(deletes=[(OLD_ID, 0), (OLD_ID, 1)])),
    ("topic-deleted-not-a-replica", topic(replicas=(2, 3), leader=2), [RemoveTopic(OLD_ID)],
     expect()),
    # Deleted and created again under the same name: a new topic id, so the old replica goes and a
    # new one is made, even though name, partition, leader and epoch are all the same.
    ("topic-recreated-same-name", topic(leader=1), [RemoveTopic(OLD_ID)] + topic(leader=1, topic_id=NEW_ID),
     expect(leaders=[("t", 0, 1, 0, True)], deletes=[(OLD_ID, 0)])),
    ("topic-recreated-as-follower", topic(leader=2), [RemoveTopic(OLD_ID)] + topic(leader=2, topic_id=NEW_ID),
     expect(followers=[("t", 0, 2, 0, True)], deletes=[(OLD_ID, 0)])),
]


@pytest.mark.parametrize("case,before,after,expected", CASES, ids=[c[0] for c in CASES])
def test_local_changes(case, before, after, expected):
    previous = None if before is None else replay_all(base(), before)
    current = replay_all(previous if previous is not None else base(), after)
    assert view(local_changes(previous, current, ME)) == expected


def test_each_partition_is_in_at_most_one_list():
    """A re-created topic's new replica is never also in deletes under its new id."""
    previous = replay_all(base(), topic(leader=1, partitions=3))
    current = replay_all(previous, [RemoveTopic(OLD_ID)] + topic(leader=2, partitions=3, topic_id=NEW_ID))
    changes = local_changes(previous, current, ME)
    made = [(p.topic_id, p.partition) for p in changes.leaders + changes.followers + changes.updates]
    assert len(made) == len(set(made)) == 3
    assert not set(made) & set(changes.deletes)
