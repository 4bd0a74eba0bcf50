"""The transaction coordinator shell (broker/txn/coordinator.py) over a fake core, driven through the
Kafka adapter (broker/kafka/txn_handlers.py); every response is serialised with kio.

The fake core is one broker leading every partition, with an in-memory log per partition (the same
fake as the group coordinator's tests). Markers go to a recording sender that can be made to fail.
Failover is simulated by a second coordinator over the same logs.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from broker.api import ProducerIdResult
from broker.kafka.txn_handlers import TxnHandlers
from broker.txn.coordinator import TXN_TOPIC, TransactionCoordinator
from cluster.errors import ErrorCode
from cluster.image import MetadataImage, PartitionRegistration, TopicImage
from tests.unit.groups.test_group_coordinator import FakeCore, check_wire, req

pytestmark = pytest.mark.timeout(30)


def image() -> MetadataImage:
    topics, ids = {}, {}
    for number, (name, count) in enumerate([("events", 2), (TXN_TOPIC, 3), ("__consumer_offsets", 4)]):
        topic_id = bytes([number + 1]) * 16
        partitions = {i: PartitionRegistration(replicas=(1,), isr=(1,), leader=1, leader_epoch=5)
                      for i in range(count)}
        topics[topic_id] = TopicImage(name, topic_id, partitions)
        ids[name] = topic_id
    return MetadataImage(offset=1, topics=topics, topic_ids=ids)


class TxnCore(FakeCore):
    def __init__(self, logs=None):
        super().__init__(logs)
        self._image = image()
        self.next_pid = 1000
        self.config.update({"transaction.max.timeout.ms": 900_000,
                            "transaction.abort.timed.out.transaction.cleanup.interval.ms": 10_000})

    async def init_producer_id(self):
        self.next_pid += 1
        return ProducerIdResult(ErrorCode.none, self.next_pid, 0)


class Markers:
    def __init__(self):
        self.sent: list[tuple[str, int, int, int, int, bool]] = []
        self.fail = False

    async def __call__(self, leader, topic, partitions, pid, epoch, coordinator_epoch, commit):
        if self.fail:
            raise ConnectionError("leader unreachable")
        self.sent += [(topic, p, pid, epoch, coordinator_epoch, commit) for p in partitions]
        return [ErrorCode.none] * len(partitions)


class WallClock:
    def __init__(self):
        self.s = 1_700_000_000.0

    def __call__(self):
        return self.s


async def started(core, markers, clock=None) -> tuple[TransactionCoordinator, TxnHandlers]:
    coordinator = TransactionCoordinator(core, markers, wall_clock=clock or WallClock())
    await coordinator.start()
    for _ in range(200):
        if all(not p.loading for p in coordinator._parts.values()) and coordinator._parts:
            break
        await asyncio.sleep(0.01)
    return coordinator, TxnHandlers(coordinator, None, core)


async def settle(coordinator, tid):
    """Wait until the id's transaction has completed (CompleteCommit / CompleteAbort)."""
    for _ in range(300):
        (d,) = coordinator.describe([tid])
        if d.state.startswith("Complete"):
            return d
        await asyncio.sleep(0.01)
    raise AssertionError(f"{tid} did not complete: {coordinator.describe([tid])}")


async def init(handlers, tid, version=4, timeout_ms=60_000, pid=-1, epoch=-1):
    response = await handlers.init_producer_id(req(22, version, "InitProducerIdRequest", transactional_id=tid,
                                                   transaction_timeout=datetime.timedelta(milliseconds=timeout_ms),
                                                   producer_id=pid, producer_epoch=epoch), version)
    check_wire(response)
    return response


async def add(handlers, tid, pid, epoch, partitions, version=3):
    module_req = req(24, version, "AddPartitionsToTxnRequest", v3_and_below_transactional_id=tid,
                     v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
                     v3_and_below_topics=(req(24, version, "AddPartitionsToTxnTopic", name="events",
                                              partitions=tuple(partitions)),))
    response = check_wire(await handlers.add_partitions_to_txn(module_req, version))
    return {r.partition_index: r.partition_error_code
            for t in response.results_by_topic_v3_and_below for r in t.results_by_partition}


async def end(handlers, tid, pid, epoch, commit, version=3):
    response = await handlers.end_txn(req(26, version, "EndTxnRequest", transactional_id=tid, producer_id=pid,
                                          producer_epoch=epoch, committed=commit), version)
    return check_wire(response).error_code


def test_commit_writes_markers_then_completes():
    async def run():
        core, markers = TxnCore(), Markers()
        coordinator, handlers = await started(core, markers)
        r = await init(handlers, "t1")
        assert (r.error_code, r.producer_epoch) == (ErrorCode.none, 0)
        assert await add(handlers, "t1", r.producer_id, 0, [0, 1]) == {0: ErrorCode.none, 1: ErrorCode.none}
        assert await end(handlers, "t1", r.producer_id, 0, True) == ErrorCode.none
        d = await settle(coordinator, "t1")
        assert d.state == "CompleteCommit" and d.partitions == ()
        assert sorted(markers.sent) == [("events", 0, r.producer_id, 0, 5, True), ("events", 1, r.producer_id, 0, 5, True)]
        await coordinator.stop()
    asyncio.run(run())


def test_new_coordinator_finishes_a_prepared_commit_after_failover():
    async def run():
        core, markers = TxnCore(), Markers()
        first, handlers = await started(core, markers)
        r = await init(handlers, "t2")
        await add(handlers, "t2", r.producer_id, 0, [1])
        markers.fail = True  # the leader of events-1 cannot be reached: the commit stays prepared
        assert await end(handlers, "t2", r.producer_id, 0, True) == ErrorCode.none
        await asyncio.sleep(0.1)
        assert first.describe(["t2"])[0].state == "PrepareCommit"
        await first.stop()  # the coordinator dies; a new leader of the partition loads the log
        markers.fail = False
        second, handlers2 = await started(TxnCore(core.logs), markers)
        d = await settle(second, "t2")
        assert d.state == "CompleteCommit"
        assert markers.sent == [("events", 1, r.producer_id, 0, 5, True)]
        # The producer's retried EndTxn is answered as done, and a new transaction may start.
        assert await end(handlers2, "t2", r.producer_id, 0, True) == ErrorCode.none
        await second.stop()
    asyncio.run(run())


def test_second_init_fences_the_first_and_aborts_its_open_transaction():
    async def run():
        core, markers = TxnCore(), Markers()
        coordinator, handlers = await started(core, markers)
        first = await init(handlers, "t3")
        await add(handlers, "t3", first.producer_id, 0, [0])
        again = await init(handlers, "t3")
        assert again.error_code == ErrorCode.concurrent_transactions  # aborting the open transaction
        await settle(coordinator, "t3")
        assert markers.sent == [("events", 0, first.producer_id, 1, 5, False)]  # abort at the bumped epoch
        again = await init(handlers, "t3")
        assert (again.error_code, again.producer_id, again.producer_epoch) == (ErrorCode.none, first.producer_id, 2)
        assert await add(handlers, "t3", first.producer_id, 0, [1]) == {1: ErrorCode.producer_fenced}
        assert await add(handlers, "t3", first.producer_id, 0, [1], version=1) == {1: ErrorCode.invalid_producer_epoch}
        await coordinator.stop()
    asyncio.run(run())


def test_timed_out_transaction_is_aborted_with_a_bumped_epoch():
    async def run():
        core, markers, clock = TxnCore(), Markers(), WallClock()
        coordinator, handlers = await started(core, markers, clock)
        r = await init(handlers, "t4", timeout_ms=1000)
        await add(handlers, "t4", r.producer_id, 0, [0])
        coordinator.abort_timed_out()
        await asyncio.sleep(0.05)
        assert coordinator.describe(["t4"])[0].state == "Ongoing"
        clock.s += 1.0
        coordinator.abort_timed_out()
        d = await settle(coordinator, "t4")
        assert d.state == "CompleteAbort" and d.producer_epoch == 1
        assert markers.sent == [("events", 0, r.producer_id, 1, 5, False)]
        assert await end(handlers, "t4", r.producer_id, 0, True) == ErrorCode.producer_fenced
        await coordinator.stop()
    asyncio.run(run())


def test_describe_and_list_serialise():
    async def run():
        core, markers = TxnCore(), Markers()
        coordinator, handlers = await started(core, markers)
        r = await init(handlers, "t5")
        await add(handlers, "t5", r.producer_id, 0, [0])
        described = check_wire(await handlers.describe_transactions(
            req(65, 0, "DescribeTransactionsRequest", transactional_ids=("t5", "nope")), 0))
        states = {s.transactional_id: s for s in described.transaction_states}
        assert states["t5"].transaction_state == "Ongoing" and states["t5"].topics[0].partitions == (0,)
        assert states["nope"].error_code == ErrorCode.transactional_id_not_found
        listed = check_wire(await handlers.list_transactions(
            req(66, 1, "ListTransactionsRequest", state_filters=("Ongoing", "Bogus"), producer_id_filters=(),
                duration_filter=-1), 1))
        assert [s.transactional_id for s in listed.transaction_states] == ["t5"]
        assert listed.unknown_state_filters == ("Bogus",)
        await coordinator.stop()
    asyncio.run(run())
