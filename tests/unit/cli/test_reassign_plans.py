"""The pure parts of `brook partitions reassign` / `brook brokers decommission` (cluster/cli/reassign.py).

Goal: Kafka's plan JSON is read exactly (every malformed plan is refused with a message naming the
problem, never a traceback), a generated plan spreads replicas evenly, and a drain plan removes the
broker from every partition without ever putting two replicas on one broker.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from cluster.cli.reassign import drain_plan, generate_plan, parse_plan, render_plan
from cluster.errors import BrookError


def test_a_kafka_plan_round_trips() -> None:
    text = json.dumps({"version": 1, "partitions": [
        {"topic": "a", "partition": 1, "replicas": [3, 1], "log_dirs": ["any", "any"]},
        {"topic": "a", "partition": 0, "replicas": [2]}]})
    plan = parse_plan(text)
    assert plan == {("a", 1): (3, 1), ("a", 0): (2,)}
    assert parse_plan(render_plan(plan)) == plan


@pytest.mark.parametrize(("text", "needle"), [
    ("not json", "not JSON"),
    ("[]", "expected"),
    ('{"version": 2, "partitions": []}', "version 2"),
    ('{"partitions": []}', "lists no partition"),
    ('{"partitions": [5]}', "not an object"),
    ('{"partitions": [{"partition": 0, "replicas": [1]}]}', "'topic'"),
    ('{"partitions": [{"topic": "a", "partition": -1, "replicas": [1]}]}', "'partition'"),
    ('{"partitions": [{"topic": "a", "partition": true, "replicas": [1]}]}', "'partition'"),
    ('{"partitions": [{"topic": "a", "partition": 0, "replicas": []}]}', "'replicas'"),
    ('{"partitions": [{"topic": "a", "partition": 0, "replicas": ["1"]}]}', "'replicas'"),
    ('{"partitions": [{"topic": "a", "partition": 0, "replicas": [1, 1]}]}', "repeats"),
    ('{"partitions": [{"topic": "a", "partition": 0, "replicas": [1]},'
     ' {"topic": "a", "partition": 0, "replicas": [2]}]}', "twice"),
])
def test_malformed_plans_are_refused(text: str, needle: str) -> None:
    with pytest.raises(BrookError) as e:
        parse_plan(text, "plan.json")
    assert needle in e.value.message and "plan.json" in e.value.message


def test_generate_spreads_replicas_and_leaders_evenly() -> None:
    current = {("t", i): (1, 2, 3) for i in range(6)}
    plan = generate_plan(current, [4, 5, 6])
    assert all(len(set(r)) == 3 and set(r) == {4, 5, 6} for r in plan.values())
    assert Counter(r[0] for r in plan.values()) == {4: 2, 5: 2, 6: 2}
    with pytest.raises(BrookError, match="only 2 brokers"):
        generate_plan(current, [4, 5])


def test_drain_moves_the_broker_out_of_every_partition() -> None:
    current = {("t", 0): (1, 2), ("t", 1): (2, 3), ("t", 2): (3, 1), ("u", 0): (1, 3)}
    plan = drain_plan(current, 1, [1, 2, 3, 4])
    assert set(plan) == {("t", 0), ("t", 2), ("u", 0)}
    for key, replicas in plan.items():
        assert 1 not in replicas and len(set(replicas)) == len(replicas) == len(current[key])
        assert [r for r in replicas if r in current[key]] == [r for r in current[key] if r != 1]
    assert plan[("t", 0)] == (4, 2)  # 4 is the least loaded, and keeps the leaving broker's position


def test_drain_refuses_when_no_broker_can_take_a_replica() -> None:
    with pytest.raises(BrookError, match="every other broker already holds"):
        drain_plan({("t", 0): (1, 2, 3)}, 1, [2, 3])
