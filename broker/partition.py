"""Pure leader-side replication state of one partition: follower progress, high watermark, ISR intents.

No clock, no I/O: time comes in as `now_ms`. The shell (broker/replica_manager.py) feeds it follower
fetches and log appends, and acts on what it returns (advance the HW, send AlterPartition).

Rules (Kafka's):
- HW = min log end offset over the *maximal* ISR: the committed ISR plus the members of an
  AlterPartition still in flight (the leader's own LEO included); it never decreases. While an
  addition is pending the controller may already have committed it, and a replica in the committed
  ISR may be elected, so it must hold everything below the HW (Kafka's `maximalIsr`).
- A follower is caught up at time t when its fetch offset reached the leader's LEO as of its
  previous fetch; it falls out of the ISR when not caught up for `replica_lag_time_max_ms`.
- A follower outside the ISR is added back once its fetch offset reaches the HW *and* the leader's
  epoch start offset (KAFKA-7128): a new leader's HW may lag what the previous leader acknowledged,
  and only the epoch start offset is sure to cover it.
- Follower progress belongs to one broker incarnation (KIP-903): a fetch from a new broker epoch
  resets it, a fetch from an older one is ignored, and an ISR addition names the broker epoch the
  leader saw so the controller can refuse a stale one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNKNOWN_BROKER_EPOCH = -1


@dataclass(slots=True)
class FollowerProgress:
    log_end_offset: int = -1
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    leo_at_last_fetch: int = 0  # the leader's LEO when this follower last fetched
    broker_epoch: int = UNKNOWN_BROKER_EPOCH  # the incarnation these fetches came from
    log_start_offset: int = -1  # the follower's log start as of its last fetch (-1: unknown)


@dataclass(slots=True)
class LeaderState:
    broker_id: int
    leader_epoch: int
    partition_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    high_watermark: int
    epoch_start_offset: int = 0  # the leader's LEO when it took this epoch (KAFKA-7128, KIP-207)
    followers: dict[int, FollowerProgress] = field(default_factory=dict)
    pending_isr: tuple[int, ...] | None = None  # an AlterPartition in flight

    @classmethod
    def start(cls, broker_id: int, leader_epoch: int, partition_epoch: int, replicas: tuple[int, ...],
              isr: tuple[int, ...], high_watermark: int, now_ms: int, epoch_start_offset: int = 0) -> LeaderState:
        """A new leader gives every follower a full lag window before it may leave the ISR."""
        state = cls(broker_id, leader_epoch, partition_epoch, replicas, isr, high_watermark, epoch_start_offset)
        for replica in replicas:
            if replica != broker_id:
                state.followers[replica] = FollowerProgress(last_caught_up_ms=now_ms, last_fetch_ms=now_ms)
        return state

    def update_registration(self, partition_epoch: int, replicas: tuple[int, ...], isr: tuple[int, ...],
                            now_ms: int) -> None:
        if partition_epoch < self.partition_epoch:
            return
        newer = partition_epoch > self.partition_epoch
        self.partition_epoch, self.replicas, self.isr = partition_epoch, replicas, isr
        if newer or self.pending_isr == isr:
            # A newer partition epoch settles any AlterPartition in flight: it was either applied (it is
            # this state or an earlier one) or it will be refused, being based on an older epoch.
            self.pending_isr = None
        for replica in replicas:
            if replica != self.broker_id and replica not in self.followers:
                self.followers[replica] = FollowerProgress(last_caught_up_ms=now_ms, last_fetch_ms=now_ms)

    @property
    def proposal(self) -> tuple[int, int, tuple[int, ...]] | None:
        """The AlterPartition in flight as (leader epoch, partition epoch it is based on, proposed
        ISR), or None. An answer names the request it answers this way (Kafka compares the proposed
        state with the current one before acting on an AlterPartition response)."""
        if self.pending_isr is None:
            return None
        return self.leader_epoch, self.partition_epoch, tuple(self.pending_isr)

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        """The committed ISR plus the members a pending AlterPartition would add."""
        if self.pending_isr is None:
            return self.isr
        return self.isr + tuple(b for b in self.pending_isr if b not in self.isr)

    @property
    def offsets_available(self) -> bool:
        """KIP-207: until the HW reaches the epoch start, "latest" would be an offset the previous
        leader may already have passed; ListOffsets answers OFFSET_NOT_AVAILABLE meanwhile."""
        return self.high_watermark >= self.epoch_start_offset

    def record_fetch(self, follower_id: int, fetch_offset: int, leader_leo: int, now_ms: int,
                     broker_epoch: int = UNKNOWN_BROKER_EPOCH, log_start_offset: int = -1) -> bool:
        """Note a follower's fetch; False when it was ignored (unknown follower, stale incarnation)."""
        progress = self.followers.get(follower_id)
        if progress is None:
            return False
        if broker_epoch != UNKNOWN_BROKER_EPOCH and broker_epoch != progress.broker_epoch:
            if broker_epoch < progress.broker_epoch:
                return False  # an older incarnation's fetch arrived late
            # A new incarnation (perhaps with a wiped log): nothing the old one fetched counts.
            progress = FollowerProgress(last_caught_up_ms=progress.last_caught_up_ms, last_fetch_ms=now_ms,
                                        broker_epoch=broker_epoch)
            self.followers[follower_id] = progress
        if fetch_offset >= leader_leo:
            progress.last_caught_up_ms = now_ms
        elif fetch_offset >= progress.leo_at_last_fetch:
            progress.last_caught_up_ms = max(progress.last_caught_up_ms, progress.last_fetch_ms)
        progress.log_end_offset = fetch_offset
        progress.log_start_offset = log_start_offset
        progress.leo_at_last_fetch = leader_leo
        progress.last_fetch_ms = now_ms
        return True

    def note_idle_rounds(self, follower_id: int, fetch_offset: int, at_ms: int) -> None:
        """An incremental fetch session answered rounds without reading this partition: it did not
        change, and the follower stayed at `fetch_offset`. Count it as fetched at `at_ms` (the last
        such round) as a full fetch would have, so an idle caught-up follower keeps its lag clock."""
        progress = self.followers.get(follower_id)
        if progress is None or progress.log_end_offset != fetch_offset or at_ms <= progress.last_fetch_ms:
            return
        self.record_fetch(follower_id, fetch_offset, progress.leo_at_last_fetch, at_ms, progress.broker_epoch)

    def quiescent(self, leader_leo: int) -> bool:
        """Nothing for ISR maintenance to do until the next append or registration change: every
        replica is in the ISR, none has an AlterPartition in flight, and every follower of the ISR
        has fetched up to `leader_leo` (so shrinking needs new data; expanding has nobody to add)."""
        if self.pending_isr is not None or set(self.isr) != set(self.replicas):
            return False
        for replica in self.isr:
            if replica == self.broker_id:
                continue
            progress = self.followers.get(replica)
            if progress is None or progress.log_end_offset < leader_leo:
                return False
        return True

    def compute_high_watermark(self, leader_leo: int) -> int:
        """The new HW (never below the current one): min LEO over the maximal ISR."""
        hw = leader_leo
        for replica in self.maximal_isr:
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
        """The ISR plus followers in sync (replica order): fetched within the lag time and reached
        both the HW and the leader's epoch start offset (KAFKA-7128).

        A follower's progress is remembered after it dies, so recency matters: only a follower that
        is fetching now, and that the metadata shows as eligible (unfenced, not shutting down), is added.
        """
        isr = set(self.isr)
        needed = max(self.high_watermark, self.epoch_start_offset, 0)
        for replica, progress in self.followers.items():
            if replica in isr or replica not in self.replicas or replica not in eligible:
                continue
            recent = now_ms - progress.last_fetch_ms <= lag_time_max_ms
            if recent and progress.log_end_offset >= needed and progress.log_end_offset >= 0:
                isr.add(replica)
        return tuple(r for r in self.replicas if r in isr)

    def broker_epochs(self, isr: tuple[int, ...]) -> tuple[int, ...]:
        """The broker epoch of each member as its fetches showed it (KIP-903), in `isr` order; the
        leader itself and members without a known epoch get UNKNOWN_BROKER_EPOCH."""
        epochs = []
        for replica in isr:
            progress = self.followers.get(replica)
            epochs.append(UNKNOWN_BROKER_EPOCH if progress is None else progress.broker_epoch)
        return tuple(epochs)
