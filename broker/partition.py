"""Pure leader-side replication state of one partition: follower progress, high watermark, ISR intents.

No clock, no I/O: time comes in as `now_ms`. The shell (broker/replica_manager.py) feeds it follower
fetches and log appends, and acts on what it returns (advance the HW, send AlterPartition).

Rules (Kafka's):
- HW = min log end offset over the ISR (the leader's own LEO included); it never decreases.
- A follower is caught up at time t when its fetch offset reached the leader's LEO as of its
  previous fetch; it falls out of the ISR when not caught up for `replica_lag_time_max_ms`.
- A follower outside the ISR is added back once its fetch offset reaches the HW.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class FollowerProgress:
    log_end_offset: int = -1
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    leo_at_last_fetch: int = 0  # the leader's LEO when this follower last fetched


@dataclass(slots=True)
class LeaderState:
    broker_id: int
    leader_epoch: int
    partition_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    high_watermark: int
    followers: dict[int, FollowerProgress] = field(default_factory=dict)
    pending_isr: tuple[int, ...] | None = None  # an AlterPartition in flight

    @classmethod
    def start(cls, broker_id: int, leader_epoch: int, partition_epoch: int, replicas: tuple[int, ...],
              isr: tuple[int, ...], high_watermark: int, now_ms: int) -> LeaderState:
        """A new leader gives every follower a full lag window before it may leave the ISR."""
        state = cls(broker_id, leader_epoch, partition_epoch, replicas, isr, high_watermark)
        for replica in replicas:
            if replica != broker_id:
                state.followers[replica] = FollowerProgress(last_caught_up_ms=now_ms, last_fetch_ms=now_ms)
        return state

    def update_registration(self, partition_epoch: int, replicas: tuple[int, ...], isr: tuple[int, ...],
                            now_ms: int) -> None:
        if partition_epoch < self.partition_epoch:
            return
        self.partition_epoch, self.replicas, self.isr = partition_epoch, replicas, isr
        if self.pending_isr == isr:
            self.pending_isr = None
        for replica in replicas:
            if replica != self.broker_id and replica not in self.followers:
                self.followers[replica] = FollowerProgress(last_caught_up_ms=now_ms, last_fetch_ms=now_ms)

    def record_fetch(self, follower_id: int, fetch_offset: int, leader_leo: int, now_ms: int) -> None:
        progress = self.followers.get(follower_id)
        if progress is None:
            return
        if fetch_offset >= leader_leo:
            progress.last_caught_up_ms = now_ms
        elif fetch_offset >= progress.leo_at_last_fetch:
            progress.last_caught_up_ms = max(progress.last_caught_up_ms, progress.last_fetch_ms)
        progress.log_end_offset = fetch_offset
        progress.leo_at_last_fetch = leader_leo
        progress.last_fetch_ms = now_ms

    def compute_high_watermark(self, leader_leo: int) -> int:
        """The new HW (never below the current one)."""
        hw = leader_leo
        for replica in self.isr:
            if replica == self.broker_id:
                continue
            progress = self.followers.get(replica)
            hw = min(hw, progress.log_end_offset if progress else -1)
        return max(self.high_watermark, hw)

    def shrink_candidates(self, now_ms: int, lag_time_max_ms: int, leader_leo: int) -> tuple[int, ...]:
        """The ISR without followers that have not caught up within the lag time (or the ISR itself)."""
        keep = []
        for replica in self.isr:
            progress = self.followers.get(replica)
            if replica == self.broker_id or progress is None:
                keep.append(replica)
            elif progress.log_end_offset >= leader_leo or now_ms - progress.last_caught_up_ms <= lag_time_max_ms:
                keep.append(replica)
        return tuple(keep)

    def expand_candidates(self, now_ms: int, lag_time_max_ms: int, eligible: frozenset[int] | set[int]) -> tuple[int, ...]:
        """The ISR plus followers that reached the HW and fetched within the lag time (replica order).

        A follower's progress is remembered after it dies, so recency matters: only a follower that
        is fetching now, and that the metadata shows as eligible (unfenced, not shutting down), is added.
        """
        isr = set(self.isr)
        for replica, progress in self.followers.items():
            if replica in isr or replica not in self.replicas or replica not in eligible:
                continue
            recent = now_ms - progress.last_fetch_ms <= lag_time_max_ms
            if recent and progress.log_end_offset >= max(self.high_watermark, 0) and progress.log_end_offset >= 0:
                isr.add(replica)
        return tuple(r for r in self.replicas if r in isr)
