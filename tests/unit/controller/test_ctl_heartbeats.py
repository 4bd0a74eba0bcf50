"""BrokerHeartbeatTracker: soft session state with an injected clock."""

from __future__ import annotations

import pytest

from controller.heartbeats import BrokerHeartbeatTracker


def test_stale_after_the_session_timeout_oldest_first():
    t = BrokerHeartbeatTracker(1000)
    t.touch(1, 0)
    t.touch(2, 100)
    t.touch(3, 500)
    assert t.stale(1000, [1, 2, 3]) == []
    assert t.stale(1001, [1, 2, 3]) == [1]
    assert t.stale(1200, [3, 2, 1]) == [1, 2]
    t.touch(1, 1200)
    assert t.stale(1200, [1, 2, 3]) == [2]
    assert t.stale(5000, [1]) == [1]  # only candidates are considered


def test_reset_gives_everyone_a_full_session():
    t = BrokerHeartbeatTracker(1000)
    t.touch(1, 0)
    t.reset_all([1, 2], 10_000)
    assert t.stale(10_900, [1, 2, 3]) == []
    assert t.stale(11_001, [1, 2, 3]) == [1, 2, 3]  # 3 was never seen: counts as seen at the reset


def test_never_seen_without_a_reset_starts_its_session_when_first_asked():
    t = BrokerHeartbeatTracker(1000)
    assert t.stale(5000, [7]) == []
    assert t.stale(6001, [7]) == [7]


def test_touch_never_moves_back_and_forget():
    t = BrokerHeartbeatTracker(1000)
    t.touch(1, 5000)
    t.touch(1, 10)  # an out-of-order (older) timestamp does not shorten the session
    assert t.stale(5500, [1]) == []
    t.forget(1)
    t.forget(1)
    t.reset_all([], 0)
    assert t.stale(1001, [1]) == [1]


def test_bad_timeout():
    with pytest.raises(ValueError):
        BrokerHeartbeatTracker(0)


@pytest.mark.parametrize(
    "events, now, stale",
    [
        # (what happened: (t, "touch"|"gone", broker)), when we ask, who is stale — session 9000, grace 1000
        pytest.param([(0, "touch", 1), (100, "gone", 1)], 1000, [], id="within-grace"),
        pytest.param([(0, "touch", 1), (100, "gone", 1)], 1101, [1], id="gone-after-grace"),
        pytest.param([(0, "touch", 1), (100, "gone", 1), (300, "touch", 1)], 5000, [], id="called-again"),
        pytest.param([(0, "touch", 1), (100, "gone", 1), (300, "touch", 1), (400, "gone", 1)], 1401, [1],
                     id="gone-twice"),
        pytest.param([(0, "touch", 1), (0, "touch", 2), (100, "gone", 2)], 1200, [2], id="only-the-gone-one"),
        pytest.param([(0, "touch", 1)], 9001, [1], id="session-still-applies"),
    ],
)
def test_a_lost_connection_is_stale_after_the_grace(events: list[tuple[int, str, int]], now: int,
                                                    stale: list[int]) -> None:
    t = BrokerHeartbeatTracker(9000, disconnect_grace_ms=1000)
    for at, what, broker in events:
        if what == "touch":
            t.touch(broker, at)
        else:
            t.disconnected(broker, at)
    assert t.stale(now, [1, 2]) == stale


def test_reset_forgets_lost_connections() -> None:
    t = BrokerHeartbeatTracker(9000, disconnect_grace_ms=1000)
    t.touch(1, 0)
    t.disconnected(1, 100)
    t.reset_all([1], 200)  # a new active controller gives everyone a full session
    assert t.stale(1500, [1]) == []


def test_grace_never_exceeds_the_session() -> None:
    assert BrokerHeartbeatTracker(500, disconnect_grace_ms=1000).disconnect_grace_ms == 500


# Whose session is in doubt (`suspect`; an ISR must not grow by such a broker). Session 9000, grace
# 1000; the controller became active at t=0 (reset_all). (events after the reset, now, expected reason
# prefix or "" for not in doubt)
SUSPECT = [
    pytest.param([], 10, "not heard from", id="not-heard-since-activation"),
    pytest.param([(5, "touch")], 10, "", id="heard"),
    pytest.param([(5, "touch"), (8, "gone")], 9, "controller connection lost 1 ms ago", id="connection-lost"),
    pytest.param([(5, "touch"), (8, "gone")], 5000, "controller connection lost", id="lost-past-grace-not-fenced"),
    pytest.param([(5, "touch"), (8, "gone"), (9, "touch")], 10, "", id="called-again"),
    pytest.param([(5, "touch"), (8, "gone"), (8, "touch")], 10, "", id="called-again-same-ms"),
    pytest.param([(5, "touch")], 9005, "", id="session-at-the-limit"),
    pytest.param([(5, "touch")], 9006, "no contact for 9001 ms", id="session-expired-not-fenced"),
]


@pytest.mark.parametrize("events, now, reason", SUSPECT)
def test_suspect(events: list[tuple[int, str]], now: int, reason: str) -> None:
    t = BrokerHeartbeatTracker(9000, disconnect_grace_ms=1000)
    t.reset_all([1], 0)
    for at, what in events:
        if what == "touch":
            t.touch(1, at)
        else:
            t.disconnected(1, at)
    why = t.suspect(now, 1)
    assert why.startswith(reason) and bool(why) == bool(reason), why
    assert t.suspects(now, [1, 2]) == ({1, 2} if reason else {2})  # 2 was never heard from


def test_suspect_after_a_new_activation_and_forget() -> None:
    t = BrokerHeartbeatTracker(9000)
    t.touch(1, 0)
    assert t.suspect(1, 1) == ""
    t.reset_all([1], 100)  # a new active controller: everyone must call it first
    assert t.suspect(150, 1).startswith("not heard from")
    assert t.stale(150, [1]) == []  # ... though nobody is fenced for it
    t.touch(1, 160)
    assert t.suspect(170, 1) == ""
    t.forget(1)
    assert t.suspect(170, 1).startswith("not heard from")
