"""Partition caps (issue 11, item 8): per CreateTopics command, and per cluster so that a full
metadata image always fits one gRPC message."""

from __future__ import annotations

import itertools

import pytest
from ctl_helpers import apply, make_image

from cluster.codec import encode_snapshot
from cluster.config import validate_topic_config
from cluster.errors import ErrorCode
from cluster.grpcutil import GRPC_MESSAGE_BYTES_MAX
from cluster.image import image_to_records
from controller.topics import (
    PARTITIONS_PER_CLUSTER_MAX,
    PARTITIONS_PER_REQUEST_MAX,
    PARTITIONS_PER_TOPIC_MAX,
    TopicRequest,
    create_topics,
)

pytestmark = pytest.mark.timeout(300)


def _create(image, requests, ids):
    return create_topics(image, requests, default_partitions=1, default_replication_factor=3,
                         new_topic_id=lambda: next(ids), validate_config=validate_topic_config)


def _ids():
    return (n.to_bytes(16, "big") for n in itertools.count(1))


def test_one_request_creates_at_most_the_per_request_cap() -> None:
    image = make_image()
    per_topic = PARTITIONS_PER_REQUEST_MAX // 4
    requests = [TopicRequest(f"t{i}", per_topic, 3) for i in range(6)]
    records, outcomes = _create(image, requests, _ids())
    errors = [o.error for o in outcomes]
    assert errors == [ErrorCode.none] * 4 + [ErrorCode.policy_violation] * 2
    assert "more than" in outcomes[4].message
    assert sum(1 for r in records if type(r).__name__ == "PartitionRecord") == PARTITIONS_PER_REQUEST_MAX


def test_a_full_image_at_the_cluster_cap_fits_a_grpc_message() -> None:
    image = make_image()
    ids = _ids()
    index = 0
    while True:
        n = min(PARTITIONS_PER_TOPIC_MAX, PARTITIONS_PER_CLUSTER_MAX - sum(len(t.partitions) for t in image.topics.values()))
        if n == 0:
            break
        records, outcomes = _create(image, [TopicRequest(f"topic-with-a-longish-name-{index:06d}", n, 3)], ids)
        assert outcomes[0].error == ErrorCode.none, outcomes[0].message
        image = apply(image, records)
        index += 1
    _, outcomes = _create(image, [TopicRequest("one-more", 1, 3)], ids)
    assert outcomes[0].error == ErrorCode.policy_violation
    size = len(encode_snapshot(image.offset, image_to_records(image), ["x" * 32] * 10_000))
    print(f"image of {PARTITIONS_PER_CLUSTER_MAX} partitions: {size} bytes")
    assert size < GRPC_MESSAGE_BYTES_MAX // 2
