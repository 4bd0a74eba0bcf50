"""CreatePartitions (Kafka API 37) as a pure controller decision: image -> PartitionRecords + outcomes."""

from __future__ import annotations

import pytest
from ctl_helpers import apply, make_image, part

from cluster.errors import ErrorCode
from controller.topics import PartitionsRequest, create_partitions

pytestmark = pytest.mark.timeout(30)

RF2 = [((1, 2), (1, 2), 1), ((2, 3), (2, 3), 2)]


def test_new_partitions_keep_the_replication_factor_and_spread():
    image = make_image((1, 2, 3), topics={"t": RF2})
    records, outcomes = create_partitions(image, [PartitionsRequest("t", 5)])
    assert [o.error for o in outcomes] == [ErrorCode.none]
    after = apply(image, records)
    assert len(after.topic_by_name("t").partitions) == 5
    new = [part(after, "t", i) for i in (2, 3, 4)]
    assert all(len(p.replicas) == 2 and len(set(p.replicas)) == 2 and p.isr == p.replicas
               and p.leader == p.replicas[0] and p.leader_epoch == 0 for p in new)
    assert {p.leader for p in new} == {1, 2, 3}  # preferred leaders go round robin
    assert part(after, "t", 0) == part(image, "t", 0)  # existing partitions untouched


def test_manual_assignments_are_used_and_checked():
    image = make_image((1, 2, 3), topics={"t": RF2})
    records, outcomes = create_partitions(image, [PartitionsRequest("t", 3, ((3, 1),))])
    assert outcomes[0].error == ErrorCode.none
    assert part(apply(image, records), "t", 2).replicas == (3, 1)
    for assignments, fragment in [(((3,),), "has 1 replicas"), (((3, 3),), "names a broker twice"),
                                  (((3, 9),), "unregistered brokers [9]"), (((3, 1), (1, 2)), "2 replica assignments")]:
        records, outcomes = create_partitions(image, [PartitionsRequest("t", 3, assignments)])
        assert records == [] and outcomes[0].error == ErrorCode.invalid_replica_assignment
        assert fragment in outcomes[0].message, outcomes[0].message


@pytest.mark.parametrize("request_, error", [
    (PartitionsRequest("missing", 3), ErrorCode.unknown_topic_or_partition),
    (PartitionsRequest("t", 2), ErrorCode.invalid_partitions),         # not larger
    (PartitionsRequest("t", 1), ErrorCode.invalid_partitions),         # shrinking
    (PartitionsRequest("t", 10_001), ErrorCode.invalid_partitions),    # over the per-topic limit
    (PartitionsRequest("__consumer_offsets", 60), ErrorCode.invalid_request),
])
def test_refusals_write_nothing(request_, error):
    image = make_image((1, 2, 3), topics={"t": RF2, "__consumer_offsets": [((1,), (1,), 1)]})
    records, outcomes = create_partitions(image, [request_])
    assert records == [] and [o.error for o in outcomes] == [error]


def test_replication_factor_above_the_live_brokers_is_refused():
    image = make_image((1, 2, 3), fenced=(2, 3), topics={"t": RF2})
    records, outcomes = create_partitions(image, [PartitionsRequest("t", 3)])
    assert records == [] and outcomes[0].error == ErrorCode.invalid_replication_factor


def test_duplicates_and_validate_only():
    image = make_image((1, 2, 3), topics={"t": RF2})
    records, outcomes = create_partitions(image, [PartitionsRequest("t", 3), PartitionsRequest("t", 4)])
    assert records == [] and [o.error for o in outcomes] == [ErrorCode.invalid_request] * 2
    records, outcomes = create_partitions(image, [PartitionsRequest("t", 3)], validate_only=True)
    assert records == [] and outcomes[0].error == ErrorCode.none
