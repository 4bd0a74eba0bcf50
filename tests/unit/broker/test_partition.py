"""Table tests for the leader's pure replication state (broker/partition.py).

Goal: the high-watermark rule (min LEO over the maximal ISR, never decreasing), the ISR shrink and
expand candidates (lag time, HW and epoch-start rules, eligibility), follower progress per broker
incarnation (KIP-903) and the min.insync gate. Method: build a LeaderState from a row, apply the
row's fetches, compare with the expected answer.
"""

from __future__ import annotations

import pytest

from broker.partition import UNKNOWN_BROKER_EPOCH, FollowerProgress, LeaderState

LAG_MS = 1000
NOW_MS = 100_000


def _state(isr=(1, 2, 3), hw=0, pending=None, epoch_start=0, **leos) -> LeaderState:
    """Leader 1 of replicas 1,2,3; `leos` like f2=10 gives follower 2 LEO 10, fetched just now."""
    state = LeaderState.start(1, 5, 0, (1, 2, 3), tuple(isr), hw, NOW_MS - 10 * LAG_MS, epoch_start_offset=epoch_start)
    for name, leo in leos.items():
        state.followers[int(name[1:])] = FollowerProgress(leo, NOW_MS, NOW_MS, leo)
    state.pending_isr = pending
    return state


# (id, state kwargs, leader LEO, expected HW)
HW = [
    ("min-over-isr", dict(f2=7, f3=9), 10, 7),
    ("leader-is-the-min", dict(f2=12, f3=12), 10, 10),
    ("follower-outside-isr-ignored", dict(isr=(1, 2), f2=8, f3=1), 10, 8),
    ("unknown-follower-holds-hw", dict(isr=(1, 2)), 10, 0),
    ("never-decreases", dict(hw=9, f2=3, f3=3), 10, 9),
    ("pending-addition-counts", dict(isr=(1, 2), pending=(1, 2, 3), f2=10, f3=4), 10, 4),
    ("pending-shrink-keeps-maximal", dict(isr=(1, 2, 3), pending=(1, 2), f2=10, f3=4), 10, 4),
    ("leader-alone", dict(isr=(1,), f2=2, f3=2), 10, 10),
]


@pytest.mark.parametrize(("kwargs", "leo", "hw"), [c[1:] for c in HW], ids=[c[0] for c in HW])
def test_high_watermark(kwargs, leo, hw):
    assert _state(**kwargs).compute_high_watermark(leo) == hw


# (id, state kwargs, follower 3 last fetch age ms, expected expand result; eligible = {1,2,3})
EXPAND = [
    ("reached-hw", dict(isr=(1, 2), hw=10, f2=10, f3=10), 0, (1, 2, 3)),
    ("below-hw", dict(isr=(1, 2), hw=10, f2=10, f3=9), 0, (1, 2)),
    ("reached-hw-below-epoch-start", dict(isr=(1, 2), hw=5, epoch_start=10, f2=5, f3=5), 0, (1, 2)),
    ("reached-epoch-start", dict(isr=(1, 2), hw=5, epoch_start=10, f2=5, f3=10), 0, (1, 2, 3)),
    ("stale-fetch", dict(isr=(1, 2), hw=10, f2=10, f3=10), LAG_MS + 1, (1, 2)),
    ("never-fetched", dict(isr=(1, 2), hw=0, f2=0), 0, (1, 2)),
]


@pytest.mark.parametrize(("kwargs", "age", "expected"), [c[1:] for c in EXPAND], ids=[c[0] for c in EXPAND])
def test_expand_candidates(kwargs, age, expected):
    state = _state(**kwargs)
    if 3 in state.followers:
        state.followers[3].last_fetch_ms = NOW_MS - age
    assert state.expand_candidates(NOW_MS, LAG_MS, {1, 2, 3}) == expected


def test_expand_skips_ineligible_and_non_replicas():
    state = _state(isr=(1,), hw=10, f2=10, f3=10)
    state.followers[9] = FollowerProgress(10, NOW_MS, NOW_MS, 10)
    assert state.expand_candidates(NOW_MS, LAG_MS, {1, 3, 9}) == (1, 3)


# (id, follower 3 LEO, last caught up age, expected shrink result; leader LEO 10)
SHRINK = [
    ("caught-up", 10, 5 * LAG_MS, (1, 2, 3)),
    ("lagging-within-window", 4, LAG_MS, (1, 2, 3)),
    ("lagging-past-window", 4, LAG_MS + 1, (1, 2)),
]


@pytest.mark.parametrize(("leo", "age", "expected"), [c[1:] for c in SHRINK], ids=[c[0] for c in SHRINK])
def test_shrink_candidates(leo, age, expected):
    state = _state(f2=10, f3=leo)
    state.followers[3].last_caught_up_ms = NOW_MS - age
    assert state.shrink_candidates(NOW_MS, LAG_MS, 10) == expected


def test_record_fetch_caught_up_rule():
    state = _state(isr=(1, 2))
    progress = state.followers[2]
    state.record_fetch(2, 4, 10, NOW_MS)  # behind the leader's LEO: not caught up now
    assert progress.last_caught_up_ms < NOW_MS
    state.record_fetch(2, 10, 12, NOW_MS + 5)  # reached the LEO of its previous fetch: caught up then
    assert progress.last_caught_up_ms == NOW_MS
    state.record_fetch(2, 12, 12, NOW_MS + 9)  # at the leader's LEO: caught up now
    assert progress.last_caught_up_ms == NOW_MS + 9


def test_new_incarnation_resets_progress_and_old_one_is_ignored():
    """KIP-903: a restarted follower (new broker epoch, maybe an empty log) does not inherit what its
    previous incarnation fetched; a late fetch from the previous one changes nothing."""
    state = _state(isr=(1, 2))
    assert state.record_fetch(3, 10, 10, NOW_MS, broker_epoch=7)
    assert state.followers[3].log_end_offset == 10 and state.followers[3].broker_epoch == 7
    assert state.record_fetch(3, 0, 10, NOW_MS + 1, broker_epoch=9)
    assert (state.followers[3].log_end_offset, state.followers[3].broker_epoch) == (0, 9)
    assert state.followers[3].leo_at_last_fetch == 10
    assert not state.record_fetch(3, 10, 10, NOW_MS + 2, broker_epoch=7)
    assert state.followers[3].log_end_offset == 0
    assert state.broker_epochs((1, 2, 3)) == (UNKNOWN_BROKER_EPOCH, UNKNOWN_BROKER_EPOCH, 9)


def test_offsets_available_once_the_hw_reaches_the_epoch_start():
    assert not _state(hw=5, epoch_start=10).offsets_available
    assert _state(hw=10, epoch_start=10).offsets_available


def test_maximal_isr():
    assert _state(isr=(1, 2)).maximal_isr == (1, 2)
    assert _state(isr=(1, 2), pending=(1, 2, 3)).maximal_isr == (1, 2, 3)
    assert _state(isr=(1, 2, 3), pending=(1, 3)).maximal_isr == (1, 2, 3)
