"""Pure: the replication throttles of a reassignment (Kafka's leader/follower.replication.throttled.rate).

A token bucket per direction: `allowance(now_ms)` says how many bytes may go now, `spend(n, now_ms)`
charges what went (it may go below zero: a record batch is never split, so one batch can overshoot and
the next rounds then wait). The bucket holds at most one second of the rate. Only the catch-up traffic
of a reassignment is throttled: the joining (adding) replicas of a partition being reassigned, on the
leader that serves them and on the joining broker that fetches, and (Kafka's
`leader/follower.replication.throttled.replicas` topic configs, which kafka-reassign-partitions
--throttle sets) the listed replicas while they are out of the ISR; ISR replication never is.
"""

from __future__ import annotations

from cluster.limits import LONG_MAX

UNLIMITED = LONG_MAX


class ByteRate:
    def __init__(self, rate_bytes_per_s: int = UNLIMITED) -> None:
        self.rate = rate_bytes_per_s
        self.tokens = float(rate_bytes_per_s)
        self.last_ms: int | None = None

    @property
    def limited(self) -> bool:
        return self.rate < UNLIMITED

    def set_rate(self, rate_bytes_per_s: int) -> None:
        if rate_bytes_per_s != self.rate:
            self.rate = rate_bytes_per_s
            self.tokens = min(self.tokens, float(rate_bytes_per_s))

    def _refill(self, now_ms: int) -> None:
        if self.last_ms is not None and now_ms > self.last_ms:
            self.tokens = min(float(self.rate), self.tokens + self.rate * (now_ms - self.last_ms) / 1000.0)
        if self.last_ms is None or now_ms > self.last_ms:
            self.last_ms = now_ms

    def allowance(self, now_ms: int) -> int:
        """Bytes that may be sent now (0 while the bucket is empty or in debt)."""
        if not self.limited:
            return UNLIMITED
        self._refill(now_ms)
        return max(0, int(self.tokens))

    def spend(self, size: int, now_ms: int) -> None:
        if self.limited and size > 0:
            self._refill(now_ms)
            self.tokens -= size

    def wait_ms(self, now_ms: int) -> int:
        """How long until the bucket holds a byte again (0 when it does now)."""
        if not self.limited:
            return 0
        self._refill(now_ms)
        return 0 if self.tokens >= 1 else int((1 - self.tokens) * 1000 / self.rate) + 1


def listed(throttled_replicas: str, partition: int, broker: int) -> bool:
    """Whether a `leader/follower.replication.throttled.replicas` topic config (`*` or
    `PARTITION:BROKER,...`, as kafka-reassign-partitions --throttle writes it) names `broker`'s replica
    of `partition` (Kafka's TopicConfigHandler.parseThrottledPartitions)."""
    items = {item.strip() for item in throttled_replicas.split(",")}
    return "*" in items or f"{partition}:{broker}" in items


def is_throttled(adding_replicas: tuple[int, ...], isr: tuple[int, ...], replica: int,
                 throttled_replicas: str, partition: int, local_broker: int) -> bool:
    """Whether replication of `partition` to `replica` goes at the throttled rate on `local_broker`: a
    reassignment's joining replica always; otherwise, as in Kafka, a replica out of the ISR when the
    topic's throttled-replicas config of this side names `local_broker`'s replica of the partition
    (the leader on the leader side, the fetching follower on the follower side)."""
    if is_catch_up(adding_replicas, replica):
        return True
    return replica not in isr and bool(throttled_replicas) and listed(throttled_replicas, partition, local_broker)


def is_catch_up(adding_replicas: tuple[int, ...], replica: int) -> bool:
    """Whether replication to `replica` is a reassignment's catch-up traffic (throttled)."""
    return replica in adding_replicas
