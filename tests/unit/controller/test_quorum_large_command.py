"""A 10,000-partition command through a real 3-node pysyncobj quorum (issue 16, item 5).

Goal: the largest command a controller writes (one CreateTopics of PARTITIONS_PER_REQUEST_MAX
partitions) reaches every voter whole. pysyncobj 0.3.17 splits an entry larger than
appendEntriesBatchSizeBytes into "transmission" parts and marks the wrong part as the last one (it
compares the part's position with the entry's length, not with its pickle's, which protocol 2 makes
longer), so followers unpickle truncated data on the Raft thread again and again, drop the connection
and stall the quorum. Method: three `Quorum`s on loopback in one event loop; submit the command; every
voter must apply it, and pysyncobj must log no failed tick on the way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging

import pytest
from ctl_helpers import apply, make_image

from cluster.cli.launcher import free_ports
from cluster.codec import decode_command, encode_command
from cluster.config import validate_topic_config
from cluster.image import image_to_records
from controller.commands import QuorumError
from controller.quorum import _DECODE_SKIPPABLE, Quorum, QuorumSettings
from controller.topics import (
    PARTITIONS_PER_REQUEST_MAX,
    PartitionsRequest,
    TopicRequest,
    create_partitions,
    create_topics,
)

pytestmark = pytest.mark.timeout(120)
SECRET = "unit-test-secret-0123456789"


async def _leader(quorums: list[Quorum]) -> Quorum:
    for _ in range(400):
        leader = next((q for q in quorums if q.is_leader()), None)
        if leader is not None:
            return leader
        await asyncio.sleep(0.05)
    raise AssertionError("no leader elected")


def test_a_command_of_the_largest_create_topics_reaches_every_voter(tmp_path, caplog) -> None:
    ids = (n.to_bytes(16, "big") for n in itertools.count(1))
    base = make_image()
    records, outcomes = create_topics(base, [TopicRequest("big", PARTITIONS_PER_REQUEST_MAX, 3)],
                                      default_partitions=1, default_replication_factor=3,
                                      new_topic_id=lambda: next(ids), validate_config=validate_topic_config)
    assert outcomes[0].error == 0

    async def body() -> None:
        loop = asyncio.get_running_loop()
        ports = free_ports(3)
        voters = [(i + 1, f"127.0.0.1:{port}") for i, port in enumerate(ports)]
        quorums = [Quorum(QuorumSettings(node_id, voters, SECRET, str(tmp_path / f"raft-{node_id}")), loop)
                   for node_id, _ in voters]
        try:
            leader = await _leader(quorums)
            assert (await leader.submit(image_to_records(base), leader.state.image.offset)).status == "ok"
            with caplog.at_level(logging.ERROR, logger="pysyncobj"):
                # On a loaded machine applying 10,000 records can stall a Raft thread past the election
                # timeout, so leadership may move during the submit: retry on the new leader unless the
                # command was committed anyway (the point here is that it reaches every voter whole).
                for attempt in range(3):
                    if any(q.state.image.topics for q in quorums):
                        break
                    try:
                        result = await leader.submit(records, leader.state.image.offset, timeout_s=60)
                    except QuorumError:
                        if attempt == 2:
                            raise
                        leader = await _leader(quorums)
                        continue
                    assert result.status == "ok"
                    break
                for _ in range(600):
                    if all(len(q.state.image.topics) == 1 for q in quorums):
                        break
                    await asyncio.sleep(0.05)
            counts = [sum(len(t.partitions) for t in q.state.image.topics.values()) for q in quorums]
            assert counts == [PARTITIONS_PER_REQUEST_MAX] * 3
            failed = [r.getMessage() for r in caplog.records if r.name.startswith("pysyncobj")]
            assert not failed, f"pysyncobj failed while replicating the command: {failed[:3]}"
        finally:
            for q in quorums:
                q.close()

    asyncio.run(body())


def test_the_records_a_leader_skips_decoding_equal_their_decoding() -> None:
    """The leader applies CreateTopics / CreatePartitions commands from the records it encoded
    (`Quorum.submit` → `MetadataStateMachine.remember`); followers decode the bytes. Both must give
    the same image, so those records must equal their own decoding, field types included."""
    ids = (n.to_bytes(16, "big") for n in itertools.count(1))
    image = make_image()
    created, _ = create_topics(image, [TopicRequest("t", 7, 3), TopicRequest("u", 2, 2)], default_partitions=1,
                               default_replication_factor=3, new_topic_id=lambda: next(ids),
                               validate_config=validate_topic_config)
    image = apply(image, created)
    grown, outcomes = create_partitions(image, [PartitionsRequest("t", 9), PartitionsRequest("u", 4, ((3, 1), (2, 1)))])
    assert all(o.error == 0 for o in outcomes) and grown
    for records in (created, grown):
        assert all(type(r) in _DECODE_SKIPPABLE for r in records)
        _, _, decoded = decode_command(encode_command("id", 0, records))
        assert decoded == records
        assert [type(v) for r in decoded for v in vars_of(r)] == [type(v) for r in records for v in vars_of(r)]


def vars_of(record) -> list:
    return [getattr(record, f.name) for f in dataclasses.fields(record)]
