"""The transaction coordinator under failover, deterministically: every point at which a coordinator
can die while ending a transaction, and what the next coordinator (a new leader of the same
`__transaction_state` partition, loading the same log) must make of it.

The points, for a transaction over two partitions, committed or aborted:

    after the Prepare write, before any marker        (k = 0 markers written)
    after 1 of the 2 markers                          (k = 1)
    after every marker, before the Complete write     (k = 2: the new coordinator may write them again)
    the Prepare write is in the log but its acknowledgement was lost (the client saw an error)

Required after the failover: every partition of the transaction got a marker of the decided kind
and none of the other kind (nothing partial, nothing lost), the state is Complete*, the producer's
retried EndTxn is answered NONE, the opposite EndTxn is refused, and the next transaction works.

The brook chaos mutant `txn-failover-drops-markers` (tests/mutants/brook_mutants.py) breaks exactly
this; `test_the_failover_mutant_is_caught` applies it and requires these checks to fail.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from cluster.errors import ErrorCode
from tests.unit.txn.test_txn_coordinator import TxnCore, add, end, init, settle, started

pytestmark = pytest.mark.timeout(60)

PARTITIONS = (0, 1)  # of "events"
ALL = [("events", 0), ("events", 1)]


class CrashingMarkers:
    """Writes markers one partition at a time; after `budget` of them, every call fails (the
    coordinator that sends them is about to die)."""

    def __init__(self, budget: int | None = None) -> None:
        self.sent: list[tuple[str, int, bool]] = []
        self.budget = budget

    async def __call__(self, leader, topic, partitions, pid, epoch, coordinator_epoch, commit):
        errors = []
        for p in partitions:
            if self.budget is not None and self.budget <= 0:
                raise ConnectionError("the coordinator is dying")
            self.sent.append((topic, p, commit))
            if self.budget is not None:
                self.budget -= 1
            errors.append(ErrorCode.none)
        return errors


class LostAckCore(TxnCore):
    """A core whose next state write reaches the log but is answered with a timeout."""

    lose_next_ack = False

    async def produce(self, topic, partition, records, acks, timeout_ms):
        result = await super().produce(topic, partition, records, acks, timeout_ms)
        if self.lose_next_ack:
            self.lose_next_ack = False
            from broker.api import ProduceResult
            return ProduceResult(error=ErrorCode.request_timed_out)
        return result


async def _failover(commit: bool, markers_before_crash: int | None, lose_prepare_ack: bool = False) -> None:
    core = LostAckCore()
    first_markers = CrashingMarkers(markers_before_crash)
    first, handlers = await started(core, first_markers)
    r = await init(handlers, "tf")
    pid = r.producer_id
    assert await add(handlers, "tf", pid, 0, list(PARTITIONS)) == dict.fromkeys(PARTITIONS, ErrorCode.none)
    core.lose_next_ack = lose_prepare_ack
    answer = await end(handlers, "tf", pid, 0, commit)
    assert answer == (ErrorCode.coordinator_not_available if lose_prepare_ack else ErrorCode.none)
    await asyncio.sleep(0.05)
    await first.stop()  # the coordinator dies here; whatever it wrote is in core.logs

    second_markers = CrashingMarkers()
    second, handlers2 = await started(TxnCore(core.logs), second_markers)
    d = await settle(second, "tf")
    assert d.state == ("CompleteCommit" if commit else "CompleteAbort")
    sent = first_markers.sent + second_markers.sent
    for tp in ALL:  # every partition decided, the same way
        kinds = {c for t, p, c in sent if (t, p) == tp}
        assert kinds == {commit}, f"{tp}: markers {sent}"
    assert await end(handlers2, "tf", pid, 0, commit) == ErrorCode.none  # the client's retry
    assert await end(handlers2, "tf", pid, 0, not commit) == ErrorCode.invalid_txn_state
    assert await add(handlers2, "tf", pid, 0, [0]) == {0: ErrorCode.none}  # the next transaction
    await second.stop()


CASES = [(commit, k) for commit in (True, False) for k in (0, 1, 2)]


@pytest.mark.parametrize(("commit", "markers_before_crash"), CASES,
                         ids=[f"{'commit' if c else 'abort'}-after-{k}-markers" for c, k in CASES])
def test_new_coordinator_completes_what_the_old_one_decided(commit: bool, markers_before_crash: int) -> None:
    asyncio.run(_failover(commit, markers_before_crash))


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
def test_prepare_written_but_its_ack_lost(commit: bool) -> None:
    """The client saw an error for its EndTxn; the decision is in the log all the same, and the new
    coordinator carries it out (the client's retry then finds it done)."""
    asyncio.run(_failover(commit, 0, lose_prepare_ack=True))


def test_the_failover_mutant_is_caught() -> None:
    """Break-on-purpose: with the chaos mutant that drops a loaded transaction's markers, a commit
    whose coordinator died before its markers leaves its partitions undecided."""
    here = Path(__file__).resolve().parents[2] / "mutants"
    sys.path.insert(0, str(here))
    try:
        import brook_mutants
    finally:
        sys.path.remove(str(here))
    import broker.txn.coordinator as coordinator

    cls = coordinator.TransactionCoordinator
    saved = {name: cls.__dict__[name] for name in ("_write", "_complete")}
    brook_mutants.TXN_MUTANTS["txn-failover-drops-markers"][2](coordinator)
    try:
        with pytest.raises(AssertionError, match="markers"):
            asyncio.run(_failover(True, 0))
    finally:
        for name, value in saved.items():
            setattr(cls, name, value)


# -- seeded random histories: several producers, coordinator failovers at any step ------------------

RETRIABLE = (ErrorCode.concurrent_transactions, ErrorCode.coordinator_load_in_progress,
             ErrorCode.not_coordinator, ErrorCode.coordinator_not_available)


class FlakyMarkers(CrashingMarkers):
    """Records every marker with its producer; a call fails with probability `fail` (the
    coordinator retries with backoff, or dies first)."""

    def __init__(self, rng, fail: float) -> None:
        super().__init__()
        self.rng, self.fail = rng, fail
        self.log: list[tuple[int, str, int, bool]] = []  # (producer id, topic, partition, commit)

    async def __call__(self, leader, topic, partitions, pid, epoch, coordinator_epoch, commit):
        if self.rng.random() < self.fail:
            raise ConnectionError("marker lost")
        self.log += [(pid, topic, p, commit) for p in partitions]
        return [ErrorCode.none] * len(partitions)


async def _retry(call, attempts: int = 4000):
    """The client's retry loop (bounded: marker retries back off up to 1 s each under failures)."""
    for _ in range(attempts):
        result = await call()
        code = result if isinstance(result, ErrorCode) else getattr(result, "error_code", None)
        if isinstance(result, dict):
            code = next(iter(result.values()))
        if code not in RETRIABLE:
            return result
        await asyncio.sleep(0.005)
    raise AssertionError("no answer but retriable errors")


async def _random_history(seed: int) -> None:
    import random

    rng = random.Random(seed)
    markers = FlakyMarkers(rng, fail=0.3)
    core = TxnCore()
    coordinator, handlers = await started(core, markers)

    async def failover() -> None:
        nonlocal coordinator, handlers, core
        await coordinator.stop()
        successor = TxnCore(core.logs)
        successor.next_pid = core.next_pid
        core = successor
        coordinator, handlers = await started(core, markers)

    producers: dict[str, tuple[int, int]] = {}
    # (producer id, partitions, decided commit or None (unknown), index of the first marker it may own)
    txns: list[tuple[int, frozenset[int], bool | None, int]] = []
    for _ in range(12):
        tid = rng.choice(["a", "b", "c"])
        if tid not in producers or rng.random() < 0.15:  # (re-)init: fences and aborts an open one
            r = await _retry(lambda tid=tid: init(handlers, tid))
            assert r.error_code == ErrorCode.none, r
            producers[tid] = (r.producer_id, r.producer_epoch)
        pid, epoch = producers[tid]
        parts = frozenset(rng.sample(PARTITIONS, rng.randint(1, len(PARTITIONS))))
        added = await _retry(lambda tid=tid, pid=pid, epoch=epoch, parts=parts:
                             add(handlers, tid, pid, epoch, sorted(parts)))
        if set(added.values()) != {ErrorCode.none}:
            producers.pop(tid)  # fenced by the coordinator (a timeout cannot happen here): start again
            continue
        start = len(markers.log)
        if rng.random() < 0.3:
            await failover()  # the transaction is open while its coordinator moves
        commit = rng.random() < 0.6
        answer = await _retry(lambda tid=tid, pid=pid, epoch=epoch, commit=commit:
                              end(handlers, tid, pid, epoch, commit))
        txns.append((pid, parts, commit if answer == ErrorCode.none else None, start))
        if rng.random() < 0.4:
            await failover()  # mid-commit: Prepare written, markers in any state
    markers.fail = 0.0
    for tid in producers:
        await settle(coordinator, tid)
    await coordinator.stop()
    # Every transaction: each of its partitions got markers of one kind, the decided one.
    for i, (pid, parts, decided, start) in enumerate(txns):
        later = [t for t in txns[i + 1:] if t[0] == pid]
        end_at = later[0][3] if later else len(markers.log)
        mine = [(p, c) for q, _, p, c in markers.log[start:end_at] if q == pid]
        assert {p for p, _ in mine} == parts, (seed, i, parts, mine)
        kinds = {c for _, c in mine}
        assert len(kinds) == 1, (seed, i, mine)  # nothing partial
        if decided is not None:
            assert kinds == {decided}, (seed, i, decided, mine)  # an acknowledged end is kept


@pytest.mark.parametrize("seed", range(1, 21))
def test_random_histories_with_coordinator_failovers(seed: int) -> None:
    asyncio.run(_random_history(seed))
