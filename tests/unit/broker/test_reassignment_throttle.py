"""Reassignment throttles (leader/follower.replication.throttled.rate) on real ReplicaManagers and
fetchers over MemoryLog, on a manual clock: only the joining replica of a reassignment is slowed, by
at most the rate per second of clock (plus one batch, which is never split); ISR replication is not."""

from __future__ import annotations

from broker_harness import TOPIC_ID, Cluster, batch, run

from cluster.records import RESOURCE_BROKER, RESOURCE_TOPIC, ConfigRecord, PartitionRecord, TopicRecord

BATCHES = 20


async def _reassigning(rate_key: str, broker: int, rate: int) -> tuple[Cluster, int]:
    """Partition t-0 led by 1, ISR {1, 2}, broker 3 joining (a reassignment adds it); BATCHES batches."""
    c = Cluster()
    c.commit([TopicRecord("t", TOPIC_ID), PartitionRecord(TOPIC_ID, 0, (1, 2, 3), (1, 2), 1, adding_replicas=(3,)),
              ConfigRecord(RESOURCE_BROKER, str(broker), rate_key, str(rate))])
    c.sync()
    for i in range(BATCHES):
        await c.produce(1, batch(5, tag=b"x%d-" % i))
    return c, c.nodes[1].log.log_end_offset


def batch_bytes() -> int:
    return len(batch(5, tag=b"x10-"))


def bytes_of(first: int, last: int) -> int:
    """Bytes of the produced batches holding offsets [first, last) (5 records each)."""
    return sum(len(batch(5, tag=b"x%d-" % i)) for i in range(first // 5, last // 5))


def test_leader_throttle_slows_only_the_joining_replica():
    async def body() -> None:
        size = batch_bytes()
        rate = 3 * size
        c, leo = await _reassigning("leader.replication.throttled.rate", 1, rate)
        await c.rounds(2, 5)
        assert c.nodes[2].log.log_end_offset == leo  # the ISR follower is never throttled
        await c.rounds(3, 10)
        first = c.nodes[3].log.log_end_offset
        assert 0 < first < leo
        sent = bytes_of(0, first)
        assert sent <= rate + size, f"{sent} bytes on a frozen clock, rate {rate}"
        c.clock.advance(1000)
        await c.rounds(3, 10)
        second = c.nodes[3].log.log_end_offset
        assert first < second < leo
        assert bytes_of(first, second) <= rate + size
        # The throttle lifted: it catches up.
        c.commit([ConfigRecord(RESOURCE_BROKER, "1", "leader.replication.throttled.rate", None)])
        c.sync()
        await c.rounds(3, 5)
        assert c.nodes[3].log.log_end_offset == leo
    run(body)


def test_follower_throttle_pauses_the_joining_replica():
    """The follower side cannot cut a fetch answer short: what it got beyond its rate is paid for by a
    pause as long as the excess takes at that rate, so the average stays at the rate."""
    async def body() -> None:
        size = batch_bytes()
        rate = 2 * size
        c, leo = await _reassigning("follower.replication.throttled.rate", 3, rate)
        await c.rounds(3, 3)  # the first round may be the truncation exchange
        got = c.nodes[3].log.log_end_offset
        assert got > 0
        pause_ms = c.nodes[3].partition.paused_until_ms - c.clock()
        assert pause_ms >= (bytes_of(0, got) - rate) * 1000 // rate, pause_ms
        for i in range(5):
            await c.produce(1, batch(5, tag=b"y%d-" % i))
        c.clock.advance(pause_ms - 1)
        await c.rounds(3, 5)
        assert c.nodes[3].log.log_end_offset == got  # still paused
        c.clock.advance(2)
        await c.rounds(3, 5)
        assert c.nodes[3].log.log_end_offset > got
    run(body)


def test_no_throttle_without_a_reassignment():
    async def body() -> None:
        c = Cluster()
        c.commit([TopicRecord("t", TOPIC_ID), PartitionRecord(TOPIC_ID, 0, (1, 2, 3), (1, 2), 1),
                  ConfigRecord(RESOURCE_BROKER, "1", "leader.replication.throttled.rate", "1")])
        c.sync()
        for i in range(BATCHES):
            await c.produce(1, batch(5, tag=b"x%d-" % i))
        await c.rounds(3, 5)
        assert c.nodes[3].log.log_end_offset == c.nodes[1].log.log_end_offset
    run(body)


async def _listed(rate_key: str, broker: int, rate: int, replicas_key: str, listed: str) -> tuple[Cluster, int]:
    """t-0 led by 1, ISR {1, 2}, broker 3 out of the ISR, no reassignment; the topic's throttled-replicas
    config `replicas_key` = `listed`, as kafka-reassign-partitions --throttle writes it."""
    c = Cluster()
    c.commit([TopicRecord("t", TOPIC_ID), PartitionRecord(TOPIC_ID, 0, (1, 2, 3), (1, 2), 1),
              ConfigRecord(RESOURCE_BROKER, str(broker), rate_key, str(rate)),
              ConfigRecord(RESOURCE_TOPIC, "t", replicas_key, listed)])
    c.sync()
    for i in range(BATCHES):
        await c.produce(1, batch(5, tag=b"x%d-" % i))
    return c, c.nodes[1].log.log_end_offset


def test_leader_throttled_replicas_topic_config_slows_a_listed_out_of_sync_replica():
    """leader.replication.throttled.replicas naming the leader's replica (0:1): the out-of-ISR follower 3
    is sent at most the rate; the ISR follower 2 is not throttled (Kafka's shouldLeaderThrottle)."""
    async def body() -> None:
        size = batch_bytes()
        rate = 3 * size
        c, leo = await _listed("leader.replication.throttled.rate", 1, rate,
                               "leader.replication.throttled.replicas", "0:1,0:2")
        await c.rounds(2, 5)
        assert c.nodes[2].log.log_end_offset == leo
        await c.rounds(3, 10)
        first = c.nodes[3].log.log_end_offset
        assert 0 < first < leo and bytes_of(0, first) <= rate + size
    run(body)


def test_leader_throttled_replicas_not_naming_the_leader_do_not_throttle():
    async def body() -> None:
        c, leo = await _listed("leader.replication.throttled.rate", 1, 1,
                               "leader.replication.throttled.replicas", "0:2,1:1")
        await c.rounds(3, 5)
        assert c.nodes[3].log.log_end_offset == leo
    run(body)


def test_follower_throttled_replicas_topic_config_pauses_the_listed_follower():
    async def body() -> None:
        size = batch_bytes()
        c, _leo = await _listed("follower.replication.throttled.rate", 3, 2 * size,
                               "follower.replication.throttled.replicas", "0:3")
        await c.rounds(3, 3)
        got = c.nodes[3].log.log_end_offset
        assert got > 0 and c.nodes[3].partition.paused_until_ms > c.clock()  # paid for by a pause
    run(body)
