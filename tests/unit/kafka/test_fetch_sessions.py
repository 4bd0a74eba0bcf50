"""Consumer fetch sessions (KIP-227, issue 16 item 4): the pure cache in broker/kafka/fetch_sessions.py.

Goal: Kafka's session rules hold — which requests open, use, close or are refused a session, what an
incremental answer carries, and how the bounded cache evicts. Method: drive `FetchSessionCache` with
tables of requests and check the plans; no clock, no sockets.
"""

from __future__ import annotations

import itertools

import pytest

from broker.kafka.fetch_sessions import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    FetchParams,
    FetchSessionCache,
    Mode,
)
from cluster.errors import ErrorCode

pytestmark = pytest.mark.timeout(30)

OWNER = "User:alice"


def _cache(slots: int = 10, partitions: int = 1000, eviction_ms: int = 1000) -> FetchSessionCache:
    ids = itertools.count(101)
    return FetchSessionCache(slots, partitions, eviction_ms, new_id=lambda: next(ids))


def _listed(*partitions: int, offset: int = 0, topic: str = "t") -> list[tuple[tuple[str, int], FetchParams]]:
    return [((topic, p), FetchParams(offset, 1 << 20)) for p in partitions]


def _open(cache: FetchSessionCache, *partitions: int, now_ms: int = 0, owner: str = OWNER) -> int:
    plan = cache.begin(0, INITIAL_EPOCH, _listed(*partitions), [], owner, now_ms)
    assert plan.mode is Mode.FULL and plan.error == ErrorCode.none
    for key, _ in plan.partitions:  # the full answer: everything at HW 0
        assert plan.answered(key, 0, 0, 0, False, False)
    return plan.response_session_id


@pytest.mark.parametrize(
    ("session_id", "epoch", "mode", "error", "session_opened"),
    [
        (0, FINAL_EPOCH, Mode.SESSIONLESS, ErrorCode.none, False),      # librdkafka, v4..6: no sessions
        (0, INITIAL_EPOCH, Mode.FULL, ErrorCode.none, True),            # the Java client's first fetch
        (999, INITIAL_EPOCH, Mode.FULL, ErrorCode.none, True),          # close an unknown id: still a new session
        (999, FINAL_EPOCH, Mode.SESSIONLESS, ErrorCode.none, False),
        (999, 1, Mode.INCREMENTAL, ErrorCode.fetch_session_id_not_found, False),
        (0, 1, Mode.INCREMENTAL, ErrorCode.fetch_session_id_not_found, False),
        (0, -2, Mode.SESSIONLESS, ErrorCode.invalid_fetch_session_epoch, False),
    ],
)
def test_what_a_request_without_a_live_session_gets(session_id: int, epoch: int, mode: Mode, error: ErrorCode,
                                                     session_opened: bool) -> None:
    cache = _cache()
    plan = cache.begin(session_id, epoch, _listed(0, 1), [], OWNER, 0)
    assert (plan.mode, plan.error) == (mode, error)
    assert (plan.response_session_id != 0) is session_opened
    assert len(cache.sessions) == (1 if session_opened else 0)
    if error == ErrorCode.none:
        assert [key for key, _ in plan.partitions] == [("t", 0), ("t", 1)]
    else:
        assert plan.partitions == []


@pytest.mark.parametrize(
    ("epoch", "error"),
    [(1, ErrorCode.none), (2, ErrorCode.invalid_fetch_session_epoch), (0, ErrorCode.none),
     (FINAL_EPOCH, ErrorCode.none)],
)
def test_a_live_session_accepts_only_its_next_epoch(epoch: int, error: ErrorCode) -> None:
    cache = _cache()
    sid = _open(cache, 0, 1)
    plan = cache.begin(sid, epoch, [], [], OWNER, 1)
    assert plan.error == error
    if epoch == 1:
        assert plan.mode is Mode.INCREMENTAL and plan.response_session_id == sid
        assert cache.sessions[sid].next_epoch == 2
        # The epoch was used: repeating it is refused, the next one works.
        assert cache.begin(sid, 1, [], [], OWNER, 2).error == ErrorCode.invalid_fetch_session_epoch
        assert cache.begin(sid, 2, [], [], OWNER, 3).error == ErrorCode.none
    elif epoch in (0, FINAL_EPOCH):
        assert sid not in cache.sessions  # a full request closes the session it names
        assert cache.partitions_held == 0  # and this empty request opens none


def test_another_principal_cannot_use_or_close_a_session() -> None:
    cache = _cache()
    sid = _open(cache, 0)
    assert cache.begin(sid, 1, [], [], "User:mallory", 1).error == ErrorCode.fetch_session_id_not_found
    cache.begin(sid, FINAL_EPOCH, [], [], "User:mallory", 1)
    assert sid in cache.sessions
    assert cache.begin(sid, 1, [], [], OWNER, 1).error == ErrorCode.none


def test_incremental_requests_update_add_and_forget_partitions() -> None:
    cache = _cache()
    sid = _open(cache, 0, 1, 2)
    plan = cache.begin(sid, 1, _listed(1, offset=7) + _listed(3, offset=0), [("t", 0)], OWNER, 1)
    assert plan.error == ErrorCode.none
    read = dict(plan.partitions)
    assert set(read) == {("t", 1), ("t", 2), ("t", 3)}   # every session partition is read
    assert read[("t", 1)].fetch_offset == 7 and read[("t", 2)].fetch_offset == 0
    assert cache.partitions_held == 3
    # The next request need not list partition 1 again: the session remembers offset 7.
    plan = cache.begin(sid, 2, [], [], OWNER, 2)
    assert dict(plan.partitions)[("t", 1)].fetch_offset == 7


@pytest.mark.parametrize(
    ("answer", "carried"),
    [
        # (high watermark, last stable offset, log start offset, records, error) against cached (0, 0, 0)
        ((0, 0, 0, False, False), False),   # nothing new: left out
        ((0, 0, 0, True, False), True),     # records
        ((5, 0, 0, False, False), True),    # the HW moved (a consumer's lag)
        ((0, 5, 0, False, False), True),    # the LSO moved (read_committed)
        ((0, 0, 3, False, False), True),    # the log start moved (retention)
        ((-1, -1, -1, False, True), True),  # an error is always carried
    ],
)
def test_an_incremental_answer_carries_only_partitions_with_news(answer: tuple, carried: bool) -> None:
    cache = _cache()
    sid = _open(cache, 0)
    plan = cache.begin(sid, 1, [], [], OWNER, 1)
    assert plan.answered(("t", 0), *answer) is carried
    # What was answered is remembered: the same values again are no news (unless records or an error).
    plan = cache.begin(sid, 2, [], [], OWNER, 2)
    assert plan.answered(("t", 0), *answer) is (answer[3] or answer[4])


def test_a_full_answer_carries_everything_and_a_sessionless_one_remembers_nothing() -> None:
    cache = _cache()
    plan = cache.begin(0, INITIAL_EPOCH, _listed(0), [], OWNER, 0)
    assert plan.answered(("t", 0), 0, 0, 0, False, False)
    plan = cache.begin(0, FINAL_EPOCH, _listed(0), [], OWNER, 0)
    assert plan.answered(("t", 0), 0, 0, 0, False, False) and plan.session is None


def test_partitions_that_returned_records_move_to_the_back() -> None:
    cache = _cache()
    sid = _open(cache, 0, 1, 2)
    plan = cache.begin(sid, 1, [], [], OWNER, 1)
    plan.answered(("t", 0), 1, 1, 0, True, False)
    plan.answered(("t", 1), 0, 0, 0, False, False)
    plan.answered(("t", 2), 0, 0, 0, False, False)
    assert [key for key, _ in cache.begin(sid, 2, [], [], OWNER, 2).partitions] == [("t", 1), ("t", 2), ("t", 0)]


def test_a_partition_forgotten_while_a_read_waited_is_left_out() -> None:
    cache = _cache()
    sid = _open(cache, 0, 1)
    waiting = cache.begin(sid, 1, [], [], OWNER, 1)
    cache.begin(sid, 2, [], [("t", 0)], OWNER, 2)
    assert waiting.answered(("t", 0), 9, 9, 0, True, False) is False
    assert cache.partitions_held == 1


@pytest.mark.parametrize(
    ("existing", "idle_ms", "new_size", "evicted"),
    [
        # existing session sizes (all last used at 0), now - 0, new session's size, which one goes
        ([2, 3], 500, 4, 0),        # none idle: the smallest goes, being smaller than the new one
        ([2, 3], 500, 2, None),     # none idle, none smaller: served without a session
        ([5, 3], 1001, 1, 0),       # idle past eviction_ms: the least recently used goes, whatever its size
    ],
)
def test_a_full_cache_evicts_as_kafka_does(existing: list[int], idle_ms: int, new_size: int,
                                           evicted: int | None) -> None:
    cache = _cache(slots=len(existing), eviction_ms=1000)
    ids = []
    for index, size in enumerate(existing):
        ids.append(_open(cache, *range(size), now_ms=index))  # session 0 is the least recently used
    plan = cache.begin(0, INITIAL_EPOCH, _listed(*range(100, 100 + new_size)), [], OWNER, idle_ms)
    if evicted is None:
        assert plan.mode is Mode.SESSIONLESS and plan.response_session_id == 0
        assert set(cache.sessions) == set(ids) and cache.evictions == 0
    else:
        assert plan.mode is Mode.FULL
        assert ids[evicted] not in cache.sessions and cache.evictions == 1
        assert set(cache.sessions) == (set(ids) - {ids[evicted]}) | {plan.response_session_id}
    assert cache.partitions_held == sum(len(s.partitions) for s in cache.sessions.values())


def test_the_partition_budget_bounds_sessions_and_their_growth() -> None:
    cache = _cache(slots=10, partitions=5)
    assert cache.begin(0, INITIAL_EPOCH, _listed(*range(6)), [], OWNER, 0).mode is Mode.SESSIONLESS
    sid = _open(cache, 0, 1, 2, 3)
    # A second session of 2 would need 6 and the only one to evict (4) is not smaller: none is opened.
    assert cache.begin(0, INITIAL_EPOCH, _listed(10, 11), [], OWNER, 1).mode is Mode.SESSIONLESS
    # Growing the session to 5 fits; to 6 drops it and the client must start over.
    assert cache.begin(sid, 1, _listed(4), [], OWNER, 2).error == ErrorCode.none
    assert cache.begin(sid, 2, _listed(5), [], OWNER, 3).error == ErrorCode.fetch_session_id_not_found
    assert sid not in cache.sessions and cache.partitions_held == 0


def test_no_slots_means_no_sessions() -> None:
    cache = _cache(slots=0)
    plan = cache.begin(0, INITIAL_EPOCH, _listed(0), [], OWNER, 0)
    assert plan.mode is Mode.SESSIONLESS and plan.response_session_id == 0


def test_an_empty_fetch_opens_no_session() -> None:
    cache = _cache()
    assert cache.begin(0, INITIAL_EPOCH, [], [], OWNER, 0).mode is Mode.SESSIONLESS
    assert not cache.sessions
