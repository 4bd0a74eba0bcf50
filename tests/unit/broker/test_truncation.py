"""Table tests for the follower's truncation decision (broker/truncation.py, KIP-279)."""

from __future__ import annotations

import pytest

from broker.truncation import TruncationDecision, decide_truncation
from storage.log import EpochEntry


def _cache(*pairs: tuple[int, int]) -> list[EpochEntry]:
    return [EpochEntry(epoch, start) for epoch, start in pairs]


# (id, follower epochs, follower LEO, leader's answer (epoch, end offset), expected (truncate to, done))
CASES = [
    ("same-epoch-leader-shorter", _cache((0, 0), (3, 10)), 20, (3, 15), (15, True)),
    ("same-epoch-follower-shorter", _cache((0, 0), (3, 10)), 12, (3, 15), (12, True)),
    ("leader-lacks-our-epoch-round-1", _cache((0, 0), (3, 10)), 20, (2, 15), (10, False)),
    ("leader-lacks-our-epoch-round-2", _cache((0, 0)), 10, (0, 5), (5, True)),
    ("leader-knows-nothing", _cache((0, 0), (3, 10)), 20, (-1, -1), (20, True)),
    ("leader-offset-without-epoch", _cache((0, 0)), 20, (-1, 7), (7, True)),
    ("our-history-starts-later", _cache((4, 10)), 20, (2, 12), (10, True)),
    ("empty-epoch-at-our-end", _cache((0, 0), (5, 10)), 10, (3, 12), (10, False)),
    ("agree-entirely", _cache((0, 0), (2, 5)), 20, (2, 20), (20, True)),
]


@pytest.mark.parametrize(("epochs", "leo", "answer", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_truncation(epochs, leo, answer, expected):
    assert decide_truncation(epochs, leo, *answer) == TruncationDecision(*expected)


def test_kip_279_example_converges_to_five():
    """Leader {0@0, 2@5, 4@15} vs follower {0@0, 3@10}: repeat until the epochs agree."""
    leader = _cache((0, 0), (2, 5), (4, 15))
    follower, leo = _cache((0, 0), (3, 10)), 20

    def leader_answer(epoch: int) -> tuple[int, int]:
        floor = [e for e in leader if e.epoch <= epoch]
        later = [e for e in leader if e.epoch > epoch]
        return floor[-1].epoch, later[0].start_offset if later else 20

    for _ in range(5):
        decision = decide_truncation(follower, leo, *leader_answer(follower[-1].epoch))
        leo = decision.truncate_to
        follower = [e for e in follower if e.start_offset < leo]
        if decision.done:
            break
    assert (leo, decision.done) == (5, True)
