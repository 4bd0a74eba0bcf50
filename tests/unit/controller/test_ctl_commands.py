"""controller.commands.apply_command: request-id dedupe and the base-offset check (no pysyncobj).

Method: a small replicated-state model keeps (image, applied request ids) exactly as
`MetadataStateMachine.apply_command` does (store the image and the id only on "ok") and feeds it a
script of commands; each step checks the status and the image offset after it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from ctl_helpers import make_image

from cluster.codec import encode_command
from cluster.image import MetadataImage
from cluster.records import RESOURCE_BROKER, ConfigRecord, PartitionChange, Record, TopicRecord
from controller.commands import RequestIds, apply_command


class Model:
    """What every controller holds: the image and the ids of applied commands."""

    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self.ids = RequestIds()
        self.start = image.offset

    def submit(self, request_id: str, base_offset: int, records: list[Record]) -> str:
        applied = apply_command(self.image, self.ids, encode_command(request_id, base_offset, records))
        if applied.result.status == "ok":
            assert applied.image.offset == self.image.offset + len(records) == applied.result.offset
            self.image = applied.image
            if applied.request_id:
                self.ids.add(applied.request_id)
        else:
            assert applied.result.offset == self.image.offset
        return applied.result.status


def config(value: str) -> list[Record]:
    return [ConfigRecord(RESOURCE_BROKER, "", "log.retention.ms", value)]


CREATE = [TopicRecord("t", b"t" * 16)]
UNKNOWN_PARTITION = [PartitionChange(b"x" * 16, 0, isr=(1,))]

# A step: (request id, base offset relative to the model's start offset, records, expected status,
# expected image offset after the step relative to the start).
# Each script runs from the same start image.
SCRIPTS = [
    ("fresh-command-applies", [
        ("a", 0, config("1"), "ok", 1)]),
    ("two-records-advance-two", [
        ("a", 0, config("1") + config("2"), "ok", 2)]),
    # pysyncobj may commit a timed-out call later: the retry (same id, same base) must not apply twice.
    ("retry-after-apply-is-a-duplicate", [
        ("a", 0, CREATE, "ok", 1),
        ("a", 0, CREATE, "duplicate", 1)]),
    # The retry's base offset is stale once the original applied: dedupe must be decided first,
    # otherwise the writer would see "conflict", recompute and write again.
    ("duplicate-wins-over-stale-base", [
        ("a", 0, config("1"), "ok", 1),
        ("b", 1, config("2"), "ok", 2),
        ("a", 0, config("1"), "duplicate", 2)]),
    # Same id at the *current* base offset: only the dedupe stops a second apply.
    ("duplicate-at-current-base-is-a-no-op", [
        ("a", 0, config("1"), "ok", 1),
        ("a", 1, config("1"), "duplicate", 1)]),
    ("stale-base-offset-is-a-conflict", [
        ("a", 0, config("1"), "ok", 1),
        ("b", 0, config("2"), "conflict", 1)]),
    ("future-base-offset-is-a-conflict", [
        ("a", 5, config("1"), "conflict", 0)]),
    # The writer retries a conflicted command with the same id after recomputing: it must apply.
    ("conflicted-id-is-not-remembered", [
        ("b", 0, config("0"), "ok", 1),
        ("a", 0, config("1"), "conflict", 1),
        ("a", 1, config("1"), "ok", 2)]),
    ("replay-error-is-invalid-and-not-remembered", [
        ("a", 0, UNKNOWN_PARTITION, "invalid", 0),
        ("a", 0, config("1"), "ok", 1)]),
    ("second-create-of-a-topic-is-invalid", [
        ("a", 0, CREATE, "ok", 1),
        ("b", 1, CREATE, "invalid", 1)]),
    ("empty-request-id-never-dedupes", [
        ("", 0, config("1"), "ok", 1),
        ("", 1, config("1"), "ok", 2)]),
]


@pytest.mark.parametrize("case,steps", SCRIPTS, ids=[s[0] for s in SCRIPTS])
def test_apply_command(case, steps):
    model = Model(make_image())
    for number, (request_id, base, records, status, offset) in enumerate(steps):
        got = model.submit(request_id, model.start + base, records)
        assert (number, got, model.image.offset - model.start) == (number, status, offset)


def test_garbage_bytes_are_invalid():
    image = make_image()
    applied = apply_command(image, RequestIds(), b"\xff\x00not a command")
    assert applied.result.status == "invalid" and applied.image is image and not applied.replay_error


def test_replay_error_is_flagged_for_the_log():
    image = make_image()
    applied = apply_command(image, RequestIds(), encode_command("a", image.offset, UNKNOWN_PARTITION))
    assert applied.result.status == "invalid" and applied.replay_error and "unknown topic" in applied.result.message


def test_request_ids_forget_the_oldest_beyond_the_limit():
    ids = RequestIds(limit=2)
    for request_id in ("a", "b", "c"):
        ids.add(request_id)
    assert "a" not in ids and list(ids) == ["b", "c"]
    assert list(RequestIds(["x", "y", "z"], limit=2)) == ["y", "z"]  # a snapshot restores in order


def test_commands_module_does_not_import_pysyncobj():
    code = "import sys, controller.commands, controller.service; assert 'pysyncobj' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
