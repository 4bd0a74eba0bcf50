"""`brook groups reset-offsets --to-datetime / --shift-by / --all-topics`: parsing and the pure plan."""

from __future__ import annotations

import argparse
import datetime

import pytest

from cluster.cli import groups
from cluster.cli.main import build_parser
from cluster.errors import BrookError

RANGES = {("t", 0): (10, 100), ("t", 1): (0, 30)}


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_parse_datetime_zones():
    assert groups.parse_datetime("2024-05-01T12:30:00.250Z") == 1714566600250
    assert groups.parse_datetime("2024-05-01T14:30:00.250+02:00") == 1714566600250
    local = datetime.datetime(2024, 5, 1, 12, 30).astimezone()
    assert groups.parse_datetime("2024-05-01T12:30:00") == int(local.timestamp() * 1000)


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00", "", "12:30"])
def test_parse_datetime_refuses_with_the_expected_format(text):
    with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM-DDTHH:mm:SS"):
        groups.parse_datetime(text)


def test_new_options_parse():
    args = parse("groups", "reset-offsets", "g", "--all-topics", "--shift-by", "-3")
    assert args.all_topics and args.topic is None and args.shift_by == -3
    args = parse("groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "2024-05-01T00:00:00Z")
    assert args.to_datetime == 1714521600000


def test_shift_by_moves_the_committed_offset_within_the_log():
    committed = {("t", 0): 50, ("t", 1): 5}
    assert groups.plan_reset("shift", -10, RANGES, committed) == {("t", 0): 40, ("t", 1): 0}
    assert groups.plan_reset("shift", 1000, RANGES, committed) == {("t", 0): 100, ("t", 1): 30}
    assert groups.plan_reset("shift", -45, RANGES, committed) == {("t", 0): 10, ("t", 1): 0}


def test_shift_by_without_a_committed_offset_is_an_error():
    with pytest.raises(BrookError, match="no committed offset"):
        groups.plan_reset("shift", 1, RANGES, {("t", 0): 50})


def test_to_datetime_uses_the_found_offset_or_the_log_end():
    assert groups.plan_reset("datetime", None, RANGES, by_time={("t", 0): 42, ("t", 1): -1}) == \
        {("t", 0): 42, ("t", 1): 30}
    assert groups.plan_reset("datetime", None, RANGES, by_time={("t", 0): 3, ("t", 1): 7}) == \
        {("t", 0): 10, ("t", 1): 7}
