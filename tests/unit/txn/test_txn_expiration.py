"""transactional.id.expiration.ms: idle transactional ids are removed from the coordinator (a
tombstone in `__transaction_state`), with an injected wall clock; ids with a transaction in
progress are kept. Pure rule: broker.txn.state.expired; shell: TransactionCoordinator.remove_expired."""

from __future__ import annotations

import asyncio

import pytest

from broker.txn.state import TxnMetadata, TxnState, expired
from cluster.errors import ErrorCode
from tests.unit.txn.test_txn_coordinator import Markers, TxnCore, WallClock, add, end, init, settle, started

pytestmark = pytest.mark.timeout(30)

EXPIRATION_MS = 60_000


@pytest.mark.parametrize(("state", "idle_ms", "gone"), [
    (TxnState.EMPTY, EXPIRATION_MS, True),
    (TxnState.EMPTY, EXPIRATION_MS - 1, False),
    (TxnState.COMPLETE_COMMIT, EXPIRATION_MS + 5, True),
    (TxnState.COMPLETE_ABORT, EXPIRATION_MS, True),
    (TxnState.ONGOING, 10 * EXPIRATION_MS, False),
    (TxnState.PREPARE_COMMIT, 10 * EXPIRATION_MS, False),
    (TxnState.PREPARE_ABORT, 10 * EXPIRATION_MS, False),
    (TxnState.DEAD, 10 * EXPIRATION_MS, False),
])
def test_expired_rule(state: TxnState, idle_ms: int, gone: bool) -> None:
    meta = TxnMetadata("t", 7, 0, 60_000, state, frozenset(), -1, 1_000)
    assert expired(meta, 1_000 + idle_ms, EXPIRATION_MS) is gone


async def _wait_gone(coordinator, tid: str) -> None:
    for _ in range(200):
        if coordinator.describe([tid])[0].error == ErrorCode.transactional_id_not_found:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{tid} was not removed: {coordinator.describe([tid])}")


def test_idle_ids_expire_and_stay_gone_after_failover_busy_ids_stay() -> None:
    async def run():
        core, markers, clock = TxnCore(), Markers(), WallClock()
        core.config["transactional.id.expiration.ms"] = EXPIRATION_MS
        coordinator, handlers = await started(core, markers, clock)
        idle = await init(handlers, "idle")
        await add(handlers, "idle", idle.producer_id, 0, [0])
        assert await end(handlers, "idle", idle.producer_id, 0, True) == ErrorCode.none
        await settle(coordinator, "idle")
        busy = await init(handlers, "busy", timeout_ms=900_000)
        await add(handlers, "busy", busy.producer_id, 0, [1])  # Ongoing, long transaction timeout

        clock.s += EXPIRATION_MS / 1000 - 1
        coordinator.remove_expired()
        await asyncio.sleep(0.05)
        assert coordinator.describe(["idle"])[0].state == "CompleteCommit"  # not yet

        clock.s += 1
        coordinator.remove_expired()
        await _wait_gone(coordinator, "idle")
        assert coordinator.describe(["busy"])[0].state == "Ongoing"
        await coordinator.stop()

        # A new coordinator loading the log (the tombstone) does not know the id either.
        core2 = TxnCore(core.logs)
        core2.next_pid = core.next_pid  # producer ids are cluster-wide (the controller allocates them)
        second, handlers2 = await started(core2, markers, clock)
        assert second.describe(["idle"])[0].error == ErrorCode.transactional_id_not_found
        assert second.describe(["busy"])[0].state == "Ongoing"
        # The old producer is unknown now (KIP-360 answers INVALID_PRODUCER_ID_MAPPING) ...
        assert await end(handlers2, "idle", idle.producer_id, 0, True) == ErrorCode.invalid_producer_id_mapping
        # ... and the id starts again with a new producer id.
        again = await init(handlers2, "idle")
        assert again.error_code == ErrorCode.none and again.producer_id != idle.producer_id
        assert again.producer_epoch == 0
        await second.stop()
    asyncio.run(run())
