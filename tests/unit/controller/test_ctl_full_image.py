"""The full image a far-behind broker is sent (issue 16, item 5): encoded once per image, never stale.

Goal: `metadata_reply` answers a broker whose records are gone with exactly the current image, whether
the encoding comes from the cache or not, and a new image replaces the cached one. Method: a runtime
stub whose quorum returns (image, None) from `records_since`; decode the reply's records and compare
with `image_to_records`.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from ctl_helpers import apply, make_image

from brookpb import controller_pb2 as cpb
from cluster import codec
from cluster.config import validate_topic_config
from cluster.image import image_to_records
from controller.service import metadata_reply
from controller.topics import TopicRequest, create_topics

pytestmark = pytest.mark.timeout(60)


def _runtime(image):
    state = SimpleNamespace(records_since=lambda offset, limit: (image, None))
    return SimpleNamespace(quorum=SimpleNamespace(state=state))


def _decoded(reply: cpb.BrokerHeartbeatResponse) -> list:
    return [codec.record_from_pb(m) for m in reply.records]


def test_a_far_behind_broker_gets_the_current_image_each_time() -> None:
    ids = (n.to_bytes(16, "big") for n in itertools.count(1))
    image = make_image()
    seen = []
    for name in ("a", "b", "c"):
        records, _ = create_topics(image, [TopicRequest(name, 50, 3)], default_partitions=1,
                                   default_replication_factor=3, new_topic_id=lambda: next(ids),
                                   validate_config=validate_topic_config)
        image = apply(image, records)
        for _ in range(2):  # the second reply comes from the cache
            reply = cpb.BrokerHeartbeatResponse()
            reply.records.add().cluster.cluster_id = "left over"  # a reply is filled from scratch
            metadata_reply(_runtime(image), 0, reply)
            assert reply.full_image and reply.metadata_offset == image.offset
            assert _decoded(reply) == image_to_records(image)
        seen.append(len(reply.records))
    assert seen[0] < seen[1] < seen[2]
