"""Internal topics (issue 11, item 3): no delete, no unsafe config; delete.topic.enable honoured."""

from __future__ import annotations

import itertools

import pytest
from ctl_helpers import apply, make_image

from cluster.config import validate_topic_config
from cluster.errors import ErrorCode
from cluster.records import RESOURCE_TOPIC
from controller.topics import TopicRequest, alter_configs, create_topics, delete_topics

OFFSETS = "__consumer_offsets"


def _image_with_offsets_topic():
    image = make_image()
    ids = (bytes([i]) * 16 for i in itertools.count(1))
    records, outcomes = create_topics(
        image, [TopicRequest(OFFSETS, 3, 3, {"cleanup.policy": "compact"}), TopicRequest("orders", 1, 3)],
        default_partitions=1, default_replication_factor=3, new_topic_id=lambda: next(ids),
        validate_config=validate_topic_config)
    assert [o.error for o in outcomes] == [ErrorCode.none, ErrorCode.none]
    return apply(image, records)


def test_internal_topic_cannot_be_deleted() -> None:
    image = _image_with_offsets_topic()
    records, outcomes = delete_topics(image, [OFFSETS, "orders"])
    by_name = {o.name: o for o in outcomes}
    assert by_name[OFFSETS].error == ErrorCode.invalid_topic_exception
    assert "internal" in by_name[OFFSETS].message
    assert by_name["orders"].error == ErrorCode.none
    assert len(records) == 1  # only orders goes


def test_delete_topic_enable_false_refuses_every_deletion() -> None:
    image = _image_with_offsets_topic()
    records, outcomes = delete_topics(image, ["orders"], deletion_enabled=False)
    assert records == []
    assert [o.error for o in outcomes] == [ErrorCode.topic_deletion_disabled]


@pytest.mark.parametrize(("ops", "allowed"), [
    ([("cleanup.policy", "delete", 0)], False),
    ([("cleanup.policy", "compact,delete", 0)], False),
    ([("cleanup.policy", None, 1)], False),                      # DELETE -> the broker default (delete)
    ([("unclean.leader.election.enable", "true", 0)], False),
    ([("max.message.bytes", "1000", 0)], False),
    ([("retention.ms", "1000", 0)], True),                       # harmless while the policy is compact
    ([("max.message.bytes", "2000000", 0)], True),
    ([("segment.bytes", "104857600", 0)], True),
])
def test_unsafe_configs_on_an_internal_topic_are_refused(ops, allowed) -> None:
    image = _image_with_offsets_topic()
    records, error, message = alter_configs(image, RESOURCE_TOPIC, OFFSETS, ops, validate=validate_topic_config)
    if allowed:
        assert error == ErrorCode.none and records, message
    else:
        assert error == ErrorCode.invalid_config and records == [], (error, message)
        assert OFFSETS in message
    # An ordinary topic takes any of them.
    _, error, message = alter_configs(image, RESOURCE_TOPIC, "orders", [(k, v if v is not None else "1", o)
                                                                          for k, v, o in ops if o == 0] or
                                      [("retention.ms", "1", 0)], validate=validate_topic_config)
    assert error == ErrorCode.none, message


def test_an_internal_topic_is_created_only_with_safe_configs() -> None:
    image = make_image()
    _, outcomes = create_topics(image, [TopicRequest(OFFSETS, 3, 3, {"cleanup.policy": "delete"})],
                                default_partitions=1, default_replication_factor=3, new_topic_id=lambda: b"\x01" * 16,
                                validate_config=validate_topic_config)
    assert outcomes[0].error == ErrorCode.invalid_config
