"""Transactional offset commits (TxnOffsetCommit, KIP-98/KIP-447) at the group coordinator: pending
per producer until the transaction's marker, visible on COMMIT, dropped on ABORT, both live (the
marker listener) and when a new coordinator loads the offsets partition from its log."""

from __future__ import annotations

import struct

import pytest

from broker.groups.api import CommitPartition, CommitRequest
from broker.groups.coordinator import OFFSETS_TOPIC, GroupCoordinator, partition_for
from cluster.errors import ErrorCode
from storage.txn_index import control_batch
from tests.unit.groups.test_group_coordinator import OFFSETS_PARTITIONS, Clock, FakeCore, aio, settle

pytestmark = pytest.mark.timeout(20)

GROUP = "txn-group"
PID, EPOCH = 4242, 3


def request(offset: int) -> CommitRequest:
    return CommitRequest(GROUP, -1, "", None, (CommitPartition("events", 0, offset), CommitPartition("events", 1, offset)))


def offsets(coordinator, require_stable=False):
    error, found = coordinator.fetch_offsets(GROUP, [("events", (0, 1))], require_stable=require_stable)
    assert error == ErrorCode.none
    return {key: (value.offset if value is not None else None, err) for key, (value, err) in found.items()}


def write_marker(core, commit: bool) -> int:
    """Append a marker to the group's offsets partition as the partition leader would."""
    index = partition_for(GROUP, OFFSETS_PARTITIONS)
    log = core.logs.setdefault((OFFSETS_TOPIC, index), [])
    base = log[-1][0] + struct.unpack_from(">i", log[-1][1], 23)[0] + 1 if log else 0
    batch = control_batch(PID, EPOCH, 0, commit, 1000)
    log.append((base, struct.pack(">q", base) + batch[8:]))
    return index


@pytest.mark.parametrize("commit", [True, False])
@aio
async def test_pending_until_the_marker_live_and_after_load(env, commit):
    core, coordinator, clock = env
    result = await coordinator.txn_commit_offsets(request(17), PID, EPOCH)
    assert set(result.values()) == {ErrorCode.none}
    # Not visible yet; a stable fetch (require_stable) says so.
    assert offsets(coordinator) == {("events", 0): (None, ErrorCode.none), ("events", 1): (None, ErrorCode.none)}
    assert offsets(coordinator, True)[("events", 0)] == (None, ErrorCode.unstable_offset_commit)
    # A new coordinator loading the log now must not see them either (no marker yet).
    loaded = GroupCoordinator(FakeCore(core.logs), clock=Clock(), tick_interval_ms=3_600_000)
    await loaded.start()
    await settle(50)
    assert offsets(loaded)[("events", 0)] == (None, ErrorCode.none)
    await loaded.stop()
    index = write_marker(core, commit)
    coordinator._on_marker(OFFSETS_TOPIC, index, PID, commit)
    expected = 17 if commit else None
    assert offsets(coordinator) == {("events", 0): (expected, ErrorCode.none), ("events", 1): (expected, ErrorCode.none)}
    assert offsets(coordinator, True)[("events", 0)] == (expected, ErrorCode.none)
    # Failover: a fresh coordinator replays the transactional batch and its marker from the log.
    successor = GroupCoordinator(FakeCore(core.logs), clock=Clock(), tick_interval_ms=3_600_000)
    await successor.start()
    await settle(50)
    try:
        assert offsets(successor) == {("events", 0): (expected, ErrorCode.none),
                                      ("events", 1): (expected, ErrorCode.none)}
    finally:
        await successor.stop()


@aio
async def test_transactional_commit_is_written_as_a_transactional_batch_of_the_producer(env):
    core, coordinator, clock = env
    await coordinator.txn_commit_offsets(request(5), PID, EPOCH)
    index = partition_for(GROUP, OFFSETS_PARTITIONS)
    (_, batch), = core.logs[(OFFSETS_TOPIC, index)]
    attributes, = struct.unpack_from(">h", batch, 21)
    producer_id, producer_epoch = struct.unpack_from(">qh", batch, 43)
    assert attributes & 0x10 and (producer_id, producer_epoch) == (PID, EPOCH)
