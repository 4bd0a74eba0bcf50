"""Leader imbalance and the automatic preferred-leader rebalance."""

from __future__ import annotations

import pytest
from ctl_helpers import apply, make_image, state

from controller.balance import imbalance_by_broker, rebalance_records


def _image(**kw):
    # preferred: 1 leads 4 partitions (2 lost to 2 and 3), 2 prefers 2 (leads both), 3 prefers 1 (lost to 1)
    return make_image(topics={"t": [
        ((1, 2, 3), (1, 2, 3), 1), ((1, 2, 3), (1, 2, 3), 1), ((1, 2, 3), (1, 2, 3), 2), ((1, 3, 2), (1, 3, 2), 3),
        ((2, 1, 3), (2, 1, 3), 2), ((2, 3, 1), (2, 3, 1), 2),
        ((3, 1, 2), (1, 2), 1),
    ]}, **kw)


def test_imbalance_ratios():
    assert imbalance_by_broker(_image()) == {1: 0.5, 2: 0.0, 3: 1.0}
    assert imbalance_by_broker(make_image()) == {}


@pytest.mark.parametrize(("percentage", "fenced", "moved"), [
    (10, (), {2: 1, 3: 1}),          # 3's preferred replica is not in the ISR: nothing for it
    (50, (), {}),                    # 1 is at exactly 50 %: not above
    (49, (1,), {}),                  # 1 is fenced: cannot take leadership back
    (100, (), {}),
])
def test_rebalance(percentage, fenced, moved):
    image = _image(fenced=fenced)
    records = rebalance_records(image, percentage)
    after = apply(image, records)
    assert {r.partition: r.leader for r in records} == {k: 1 for k in moved}
    for index in moved:
        assert state(after, "t", index)[1] == 1
        assert after.partition(b"t".ljust(16, b"\0"), index).leader_epoch == 1


def test_rebalance_is_bounded():
    image = _image()
    assert len(rebalance_records(image, 10, elections_max=1)) == 1
