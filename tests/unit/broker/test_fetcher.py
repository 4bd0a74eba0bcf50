"""The follower fetcher's error handling (issue 10 fix 8): back off with jitter, log once.

Goal: a top-level ReplicaFetch error (STALE_BROKER_EPOCH) makes a round fail instead of looping at
once; repeated OFFSET_OUT_OF_RANGE pauses the partition with a growing, jittered delay and one log
line. Method: the pure backoff function in a table with a seeded RNG, and the real fetcher against a
leader in the unit harness.
"""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from broker_harness import Cluster, FetcherLoop, InProcessStub, batch, run

from broker.fetcher import (
    BACKOFF_BASE_MS,
    BACKOFF_MS_MAX,
    OUT_OF_RANGE_BEFORE_BACKOFF,
    backoff_ms,
    on_partition_error,
)
from cluster.errors import ErrorCode


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 30])
def test_backoff_grows_is_capped_and_jittered(attempt):
    ceiling = min(BACKOFF_MS_MAX, BACKOFF_BASE_MS * 2 ** (attempt - 1))
    delays = {backoff_ms(attempt, random.Random(seed)) for seed in range(50)}
    assert all(ceiling // 2 <= d <= ceiling for d in delays)
    assert len(delays) > 1, "no jitter"


def test_backoff_is_deterministic_for_a_seed():
    assert [backoff_ms(a, random.Random(7)) for a in range(1, 6)] == [backoff_ms(a, random.Random(7)) for a in range(1, 6)]


def test_top_level_error_fails_the_round():
    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)
        c.sync()
        follower = c.nodes[2]
        loop = FetcherLoop(follower.manager, 2, lambda: 12345, 1, "in-process")  # a stale broker epoch
        loop.stub = InProcessStub(c, 1)
        try:
            parts = loop.partitions()
            assert await loop.run_once(parts) is None  # the truncation exchange carries no broker epoch
            error = await loop.run_once(loop.partitions())
        finally:
            await loop.channel.close(grace=None)
        assert error is not None and "stale_broker_epoch" in error
    run(body)


def test_fetch_loop_backs_off_and_logs_a_repeated_error_once(caplog):
    """The loop itself: every failed round sleeps a growing delay (no hot loop), one warning."""
    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)
        c.sync()
        follower = c.nodes[2]
        loop = FetcherLoop(follower.manager, 2, lambda: 12345, 1, "in-process")
        loop.stub = InProcessStub(c, 1)
        loop.rng = random.Random(3)
        delays: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            delays.append(seconds)
            if len(delays) == 6:
                raise asyncio.CancelledError

        loop.sleep = fake_sleep
        with caplog.at_level(logging.INFO, logger="brook.fetcher"):
            with pytest.raises(asyncio.CancelledError):
                await loop._run()
        await loop.channel.close(grace=None)
        assert len(delays) == 6
        assert all(0 < d <= BACKOFF_MS_MAX / 1000 for d in delays)
        assert delays[-1] > delays[0]
        assert len([r for r in caplog.records if "backing off" in r.getMessage()]) == 1
    run(body)


def test_repeated_out_of_range_pauses_with_backoff_and_logs_once(caplog):
    async def body() -> None:
        c = Cluster()
        c.create(replicas=(1, 2, 3), leader=1)
        c.sync()
        await c.produce(1, batch(5))
        p = c.nodes[2].partition
        rng = random.Random(1)
        now = c.clock()
        with caplog.at_level(logging.INFO, logger="brook.fetcher"):
            for count in range(1, 6):
                on_partition_error(p, ErrorCode.offset_out_of_range, now, rng=rng)
                assert p.needs_truncation
                if count < OUT_OF_RANGE_BEFORE_BACKOFF:
                    assert p.paused_until_ms <= now
                else:
                    assert p.paused_until_ms > now
        warnings = [r for r in caplog.records if "OFFSET_OUT_OF_RANGE" in r.getMessage()]
        assert len(warnings) == 1
        # A successful fetch answer resets the count.
        p.needs_truncation, p.paused_until_ms = False, 0
        await c.round(2)
        assert p.out_of_range_count == 0
    run(body)
