"""Topic create/delete, configs, replica assignment (balanced by construction) and leader counts."""

from __future__ import annotations

import itertools

import pytest
from ctl_helpers import apply, make_image, part, tid
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.errors import ConfigError, ErrorCode
from cluster.records import RESOURCE_BROKER, RESOURCE_TOPIC, ConfigRecord, RemoveTopic
from controller.topics import (
    TopicRequest,
    alter_configs,
    assign_replicas,
    create_topics,
    delete_topics,
    leader_counts,
)

# -- assignment --------------------------------------------------------------------------------------


def _check_balanced(brokers, partitions, rf, assignment):
    assert len(assignment) == partitions
    leaders = {b: 0 for b in brokers}
    replicas = {b: 0 for b in brokers}
    for r in assignment:
        assert len(r) == rf and len(set(r)) == rf and set(r) <= set(brokers)
        leaders[r[0]] += 1
        for b in r:
            replicas[b] += 1
    n = len(brokers)
    assert set(leaders.values()) <= {partitions // n, -(-partitions // n)}
    assert set(replicas.values()) <= {partitions * rf // n, -(-partitions * rf // n)}


@pytest.mark.parametrize(("n", "rf", "partitions"), [
    (3, 3, 3), (3, 1, 7), (4, 3, 2), (6, 3, 3), (6, 4, 9), (5, 5, 12), (1, 1, 4), (4, 2, 0),
])
def test_assignment_table(n, rf, partitions):
    brokers = list(range(10, 10 + n))
    for start in range(n):
        _check_balanced(brokers, partitions, rf, assign_replicas(brokers, partitions, rf, start_index=start))


def test_assignment_is_exhaustively_balanced_for_small_clusters():
    for n in range(1, 8):
        for rf, partitions, start in itertools.product(range(1, n + 1), range(0, 2 * n + 3), range(n)):
            _check_balanced(list(range(n)), partitions, rf,
                            assign_replicas(list(range(n)), partitions, rf, start_index=start))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=12, unique=True), st.integers(0, 200),
       st.integers(1, 12), st.integers(0, 10_000))
def test_assignment_property(brokers, partitions, rf, start):
    rf = min(rf, len(brokers))
    _check_balanced(brokers, partitions, rf, assign_replicas(brokers, partitions, rf, start_index=start))


def test_assignment_rotates_with_start_index():
    assert [r[0] for r in assign_replicas([1, 2, 3], 3, 2, start_index=1)] == [2, 3, 1]


# -- create ------------------------------------------------------------------------------------------

def _ids():
    counter = itertools.count(1)
    return lambda: next(counter).to_bytes(16, "big")


def _validate(key: str, value: str) -> str:
    if key != "retention.ms":
        raise ConfigError(f"unknown topic config {key!r}")
    if not value.strip().isdigit():
        raise ConfigError(f"retention.ms: {value!r} is not a number")
    return value.strip()


def _create(image, *requests, validate_only=False):
    return create_topics(image, list(requests), default_partitions=2, default_replication_factor=2,
                         new_topic_id=_ids(), validate_config=_validate, validate_only=validate_only)


def test_create_records_partitions_and_configs():
    image = make_image()
    records, outcomes = _create(image, TopicRequest("orders", 3, 3, {"retention.ms": " 1000 "}), TopicRequest("d"))
    assert [(o.name, o.error, o.message) for o in outcomes] == [("orders", ErrorCode.none, ""), ("d", ErrorCode.none, "")]
    after = apply(image, records)
    orders = after.topic_by_name("orders")
    assert orders is not None and orders.topic_id == outcomes[0].topic_id
    for p in orders.partitions.values():
        assert p.isr == p.replicas and p.leader == p.replicas[0] and len(p.replicas) == 3
        assert (p.leader_epoch, p.partition_epoch) == (0, 0)
    assert sorted(p.leader for p in orders.partitions.values()) == [1, 2, 3]
    assert dict(after.config(RESOURCE_TOPIC, "orders")) == {"retention.ms": "1000"}
    d = after.topic_by_name("d")
    assert d is not None and len(d.partitions) == 2 and all(len(p.replicas) == 2 for p in d.partitions.values())
    # preferred leaders continue round robin across topics: d starts where orders ended
    assert [d.partitions[i].leader for i in range(2)] == [1, 2]


@pytest.mark.parametrize(("request_", "error", "message"), [
    (TopicRequest("t", 1, 4), ErrorCode.invalid_replication_factor,
     "replication factor 4 is larger than the 3 available brokers"),
    (TopicRequest("t", 1, 0), ErrorCode.invalid_replication_factor, "replication factor must be positive, got 0"),
    (TopicRequest("t", 0, 1), ErrorCode.invalid_partitions, "number of partitions must be positive, got 0"),
    (TopicRequest("t", -5, 1), ErrorCode.invalid_partitions, "number of partitions must be positive, got -5"),
    (TopicRequest("t", 20_000, 1), ErrorCode.invalid_partitions, None),
    (TopicRequest("bad name"), ErrorCode.invalid_topic_exception, None),
    (TopicRequest("é"), ErrorCode.invalid_topic_exception, None),
    (TopicRequest(""), ErrorCode.invalid_topic_exception, "topic name is empty"),
    (TopicRequest("."), ErrorCode.invalid_topic_exception, None),
    (TopicRequest(".."), ErrorCode.invalid_topic_exception, None),
    (TopicRequest("x" * 250), ErrorCode.invalid_topic_exception, None),
    (TopicRequest("exists"), ErrorCode.topic_already_exists, "topic 'exists' already exists"),
    (TopicRequest("my_topic"), ErrorCode.invalid_topic_exception, None),  # collides with my.topic
    (TopicRequest("t", configs={"nope": "1"}), ErrorCode.invalid_config, "unknown topic config 'nope'"),
    (TopicRequest("t", configs={"retention.ms": "x"}), ErrorCode.invalid_config, "retention.ms: 'x' is not a number"),
])
def test_create_errors(request_, error, message):
    image = make_image(brokers=(1, 2, 3, 4), fenced=(4,), topics={"exists": [((1,), (1,), 1)], "my.topic": []})
    records, outcomes = _create(image, request_)
    assert records == []
    assert [o.error for o in outcomes] == [error]
    assert outcomes[0].message and "\n" not in outcomes[0].message
    if message is not None:
        assert outcomes[0].message == message


def test_create_duplicates_in_one_request_fail_both_and_others_proceed():
    image = make_image()
    records, outcomes = _create(image, TopicRequest("a"), TopicRequest("b"), TopicRequest("a"))
    assert [(o.name, o.error) for o in outcomes] == [
        ("a", ErrorCode.invalid_request), ("b", ErrorCode.none), ("a", ErrorCode.invalid_request)]
    after = apply(image, records)
    assert list(after.topic_ids) == ["b"]


def test_create_validate_only_writes_nothing():
    image = make_image()
    records, outcomes = _create(image, TopicRequest("a"), TopicRequest("b", 0), validate_only=True)
    assert records == []
    assert [o.error for o in outcomes] == [ErrorCode.none, ErrorCode.invalid_partitions]


def test_create_skips_colliding_topic_ids():
    image = make_image(topics={"x": []})
    ids = iter([tid("x"), bytes(16), tid("y")])
    records, outcomes = create_topics(image, [TopicRequest("y", 1, 1)], default_partitions=1,
                                      default_replication_factor=1, new_topic_id=lambda: next(ids),
                                      validate_config=_validate)
    assert outcomes[0].topic_id == tid("y")
    apply(image, records)


# -- delete ------------------------------------------------------------------------------------------

def test_delete():
    image = make_image(topics={"a": [((1,), (1,), 1)], "b": []})
    image = apply(image, [ConfigRecord(RESOURCE_TOPIC, "a", "retention.ms", "5")])
    records, outcomes = delete_topics(image, ["a", "nope", "b", "b"])
    assert records == [RemoveTopic(tid("a"))]
    assert [(o.name, o.error, o.topic_id) for o in outcomes] == [
        ("a", ErrorCode.none, tid("a")), ("nope", ErrorCode.unknown_topic_or_partition, b""),
        ("b", ErrorCode.invalid_request, b""), ("b", ErrorCode.invalid_request, b"")]
    after = apply(image, records)
    assert after.topic_by_name("a") is None and not after.config(RESOURCE_TOPIC, "a")


# -- configs -----------------------------------------------------------------------------------------

def _broker_validate(key: str, value: str) -> str:
    if key == "bad":
        raise ConfigError("config key 'bad' cannot be changed at runtime")
    return value.lower()


@pytest.mark.parametrize(("rtype", "name", "ops", "error", "expected"), [
    (RESOURCE_BROKER, "", [("unclean.leader.election.enable", "TRUE", 0)], ErrorCode.none,
     {"unclean.leader.election.enable": "true", "keep": "1"}),
    (RESOURCE_BROKER, "", [("keep", None, 1)], ErrorCode.none, {}),
    (RESOURCE_BROKER, "", [("absent", None, 1)], ErrorCode.none, {"keep": "1"}),
    (RESOURCE_BROKER, "", [("keep", "1", 0)], ErrorCode.none, {"keep": "1"}),
    (RESOURCE_BROKER, "", [("a", "x", 0), ("bad", "y", 0)], ErrorCode.invalid_config, {"keep": "1"}),
    (RESOURCE_BROKER, "", [("a", "x", 0), ("a", "y", 0)], ErrorCode.invalid_request, {"keep": "1"}),
    (RESOURCE_BROKER, "", [("a", "x", 2)], ErrorCode.invalid_request, {"keep": "1"}),
    (RESOURCE_BROKER, "", [("a", None, 0)], ErrorCode.invalid_config, {"keep": "1"}),
    (RESOURCE_BROKER, "abc", [("a", "x", 0)], ErrorCode.invalid_request, None),
    (RESOURCE_BROKER, "2", [("a", "X", 0)], ErrorCode.none, {"a": "x"}),
    (RESOURCE_TOPIC, "t", [("a", "X", 0)], ErrorCode.none, {"a": "x"}),
    (RESOURCE_TOPIC, "nope", [("a", "X", 0)], ErrorCode.unknown_topic_or_partition, None),
    (7, "x", [("a", "X", 0)], ErrorCode.invalid_request, None),
])
def test_alter_configs(rtype, name, ops, error, expected):
    image = make_image(topics={"t": []})
    image = apply(image, [ConfigRecord(RESOURCE_BROKER, "", "keep", "1")])
    records, got, message = alter_configs(image, rtype, name, ops, validate=_broker_validate)
    assert got == error
    assert (message == "") == (error == ErrorCode.none)
    if error != ErrorCode.none:
        assert records == []
    if expected is not None:
        assert dict(apply(image, records).config(rtype, name)) == expected


def test_leader_counts():
    image = make_image(brokers=(1, 2, 3), topics={"t": [((1, 2), (1, 2), 1), ((2, 1), (2, 1), 1),
                                                       ((1, 2), (1,), -1)]})
    assert leader_counts(image) == {1: 2, 2: 0, 3: 0}
    assert part(image, "t", 2).leader == -1
