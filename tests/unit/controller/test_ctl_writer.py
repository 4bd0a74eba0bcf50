"""The controller's single writer (`ControllerRuntime.write`) against a fake quorum, without pysyncobj.

Method: `FakeQuorum` is a quorum of one that decides every command with the production
`controller.commands.apply_command` (the same dedupe and base-offset rules the pysyncobj state machine
runs). It can let "another writer" commit just before the runtime's command (so the runtime's base
offset goes stale), or deliver a command twice (pysyncobj committing a timed-out call and its retry).
Each case checks what the quorum saw (base offsets, request ids, statuses), how often the runtime
computed, and the final image.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from types import SimpleNamespace

import pytest
from ctl_helpers import make_image

from cluster.codec import encode_command
from cluster.config import Config
from cluster.image import MetadataImage
from cluster.records import RESOURCE_BROKER, ConfigRecord, PartitionChange, ProducerIds, Record
from controller.commands import ApplyResult, QuorumError, RequestIds, apply_command
from controller.service import PRODUCER_ID_BLOCK_SIZE, ControllerRuntime, NotActive


class FakeQuorum:
    """The parts of `controller.quorum.Quorum` the runtime uses, with commands applied in-process."""

    def __init__(self, image: MetadataImage) -> None:
        self.settings = SimpleNamespace(node_id=1)
        self.self_address = "127.0.0.1:1"
        self.state = SimpleNamespace(image=image)
        self.ids = RequestIds()
        self.other_writers: list[list[Record]] = []  # each lands just before one submitted command
        self.deliver_twice = False
        self.seen: list[tuple[str | None, int, str]] = []  # (request id, base offset, status)

    def add_state_listener(self, callback) -> None:
        pass

    def add_change_listener(self, callback) -> None:
        pass

    def is_leader(self) -> bool:
        return True

    def _commit(self, data: bytes) -> ApplyResult:
        applied = apply_command(self.state.image, self.ids, data)
        if applied.result.status == "ok":
            self.state.image = applied.image
            if applied.request_id:
                self.ids.add(applied.request_id)
        return applied.result

    async def submit(self, records: Sequence[Record], base_offset: int, request_id: str | None = None,
                     timeout_s: float = 5.0) -> ApplyResult:
        if self.other_writers:
            other = self.other_writers.pop(0)
            assert self._commit(encode_command(uuid.uuid4().hex, self.state.image.offset, other)).status == "ok"
        data = encode_command(request_id or uuid.uuid4().hex, base_offset, records)
        result = self._commit(data)
        if self.deliver_twice:
            result = self._commit(data)
        self.seen.append((request_id, base_offset, result.status))
        await asyncio.sleep(0)
        return result


def runtime_over(quorum: FakeQuorum) -> ControllerRuntime:
    rt = ControllerRuntime(Config.from_mapping({}, validate=False), quorum, "127.0.0.1:2",  # type: ignore[arg-type]
                           clock_ms=lambda: 0)
    rt.active = True  # as after `_activate`: this controller leads and has committed in its term
    return rt


def retention(value: str) -> list[Record]:
    return [ConfigRecord(RESOURCE_BROKER, "", "log.retention.ms", value)]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


# (case, commits by other writers, deliver twice, expected statuses, expected number of computes)
SCENARIOS = [
    ("no-conflict", [], False, ["ok"], 1),
    ("conflict-then-recompute-applies", [retention("1")], False, ["conflict", "ok"], 2),
    ("two-conflicts", [retention("1"), retention("2")], False, ["conflict", "conflict", "ok"], 3),
    ("duplicate-delivery-applies-once", [], True, ["duplicate"], 1),
]


@pytest.mark.parametrize("case,others,twice,statuses,computes", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_single_writer(case, others, twice, statuses, computes):
    start = make_image()
    quorum = FakeQuorum(start)
    quorum.other_writers = list(others)
    quorum.deliver_twice = twice
    seen_offsets: list[int] = []

    def compute(img: MetadataImage) -> tuple[list[Record], int]:
        # The records depend on the image they were computed from, as every controller decision does.
        seen_offsets.append(img.offset)
        return [ConfigRecord(RESOURCE_BROKER, "", "computed.at", str(img.offset))], img.offset

    async def main():
        return await runtime_over(quorum).write(compute)

    response = run(main())
    assert [status for _, _, status in quorum.seen] == statuses
    assert len(seen_offsets) == computes
    # Every attempt is computed from the then-latest image and submitted with that image's offset.
    assert [base for _, base, _ in quorum.seen] == seen_offsets
    assert seen_offsets == [start.offset + i for i in range(computes)]
    # One request id for all attempts of one write (so a late commit of an earlier attempt dedupes).
    assert len({request_id for request_id, _, _ in quorum.seen}) == 1
    # The response is from the attempt that applied, and the records applied exactly once.
    final = quorum.state.image
    assert response == seen_offsets[-1]
    assert final.offset == start.offset + len(others) + 1
    assert final.config(RESOURCE_BROKER, "")["computed.at"] == str(seen_offsets[-1])


def test_nothing_to_write_submits_nothing():
    quorum = FakeQuorum(make_image())

    async def main():
        return await runtime_over(quorum).write(lambda img: ([], "answer"))

    assert run(main()) == "answer" and quorum.seen == []


def test_rejected_command_raises_and_is_not_retried():
    quorum = FakeQuorum(make_image())
    computes = []

    def compute(img):
        computes.append(img.offset)
        return [PartitionChange(b"x" * 16, 0, isr=(1,))], None  # unknown partition: replay refuses it

    async def main():
        await runtime_over(quorum).write(compute)

    with pytest.raises(QuorumError, match="rejected"):
        run(main())
    assert len(computes) == 1 and [s for _, _, s in quorum.seen] == ["invalid"]


def test_inactive_controller_does_not_compute():
    quorum = FakeQuorum(make_image())

    async def main():
        rt = runtime_over(quorum)
        rt.active = False
        await rt.write(lambda img: pytest.fail("computed on an inactive controller"))

    with pytest.raises(NotActive):
        run(main())
    assert quorum.seen == []


def test_producer_id_blocks_never_overlap_after_a_conflict():
    """Another broker's block commits first: the recomputed block starts after it."""
    start = make_image()
    quorum = FakeQuorum(start)
    first_other = max(start.next_producer_id, 1000)
    other_epoch = start.brokers[2].broker_epoch
    quorum.other_writers = [[ProducerIds(2, other_epoch, first_other + PRODUCER_ID_BLOCK_SIZE)]]

    async def main():
        rt = runtime_over(quorum)
        return await rt.write(rt.allocate_producer_ids(1, start.brokers[1].broker_epoch))

    error, first = run(main())
    assert int(error) == 0
    assert first == first_other + PRODUCER_ID_BLOCK_SIZE
    assert quorum.state.image.next_producer_id == first + PRODUCER_ID_BLOCK_SIZE
