"""Partition leadership and ISR decisions: pure functions from a `MetadataImage` to records.

The heart is `build_partition_change`, Brook's version of Kafka's `PartitionChangeBuilder`: it takes
a partition registration, a target ISR, an acceptability predicate and an `Election` kind, and
returns one `PartitionChange` record, or None when nothing would change. Every other function here
(fencing, unfencing, controlled shutdown, AlterPartition, manual elections) chooses the target ISR
and the election kind and lets the builder decide.

Rules (issues 2 and 4):

- A broker that may lead or be in an ISR is *active*: registered, unfenced, not shutting down.
- The ISR is never empty. A fenced broker leaves every ISR except when it is the last member: then
  it stays as the ISR and the partition goes offline (leader -1) until it returns, or until an
  unclean election (topic or cluster `unclean.leader.election.enable`, or a manual one) elects a
  live replica, which becomes the whole ISR and is recorded with `unclean=True`.
- A leader in controlled shutdown keeps leading while no other active ISR member exists.
- The leader epoch changes only when the leader changes; every change bumps the partition epoch
  (`PartitionRegistration.merge`).

Nothing here reads a clock, does I/O or mutates the image: state changes only when the records are
replayed (`cluster.image.replay_all`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from cluster.errors import ErrorCode
from cluster.image import MetadataImage, PartitionRegistration, TopicImage, replay_all
from cluster.records import (
    LEADER_UNCHANGED,
    NO_LEADER,
    BrokerShutdown,
    FenceBroker,
    PartitionChange,
    Record,
    UnfenceBroker,
)


@dataclass(frozen=True, slots=True, order=True)
class LogEnd:
    """Where a replica's log ends: its latest leader epoch, then its log end offset. Compared in
    that order: a log that saw a later epoch holds a later leader's history, whatever its length."""

    last_epoch: int
    log_end_offset: int


UNKNOWN_LOG_END = LogEnd(-1, -1)

# Log ends known for a partition's replicas, when the caller has them (the longest log wins an
# unclean election). Given per partition: (topic_id, partition) -> {broker id: LogEnd, or a bare log
# end offset when only that is known (heartbeats report no epoch)}.
LogEndOffsets = Callable[[bytes, int], Mapping[int, "LogEnd | int"] | None]


def _as_log_end(value: LogEnd | int | None) -> LogEnd:
    if value is None:
        return UNKNOWN_LOG_END
    if isinstance(value, LogEnd):
        return value
    return LogEnd(-1, value)


def choose_unclean_leader(candidates: Sequence[int], log_ends: Mapping[int, LogEnd | int] | None) -> int:
    """The live replica with the longest log: highest (last epoch, log end offset), or the highest
    log end offset alone when a candidate's end is known without its epoch; replicas with nothing
    known count as shortest; ties go to the first in `candidates` (replica order).
    NO_LEADER when there is no candidate."""
    if not candidates:
        return NO_LEADER
    known = log_ends or {}
    ends = {b: _as_log_end(known.get(b)) for b in candidates}
    # max() keeps the first of equals, so ties go to replica order.
    if any(end.last_epoch < 0 <= end.log_end_offset for end in ends.values()):
        # A bare log end (a heartbeat's report, epoch unknown) cannot be ranked by epoch against a
        # probed one: an unknown epoch would lose to any known one however much longer its log is
        # (soak 201 elected a replica 46 offsets shorter and lost writes two replicas had
        # acknowledged). Without every epoch, the longest log wins.
        return max(candidates, key=lambda b: ends[b].log_end_offset)
    return max(candidates, key=lambda b: ends[b])


def unclean_loss(leader: int, log_ends: Mapping[int, LogEnd | int] | None) -> tuple[int, int] | None:
    """The offsets an unclean election to `leader` is known to lose: [its log end, the longest log
    end another replica reported), or None when no reported replica is longer. Replicas that did not
    answer (the dead ones, usually) may have held more: this is a lower bound."""
    known = {b: _as_log_end(v) for b, v in (log_ends or {}).items()}
    mine = known.get(leader, UNKNOWN_LOG_END).log_end_offset
    longest = max((end.log_end_offset for b, end in known.items() if b != leader), default=-1)
    if mine < 0 or longest <= mine:
        return None
    return mine, longest


class Election(enum.Enum):
    PREFERRED = "preferred"
    ONLINE = "online"
    UNCLEAN = "unclean"


# -- the builder -------------------------------------------------------------------------------------

def build_partition_change(
    topic_id: bytes,
    partition: int,
    current: PartitionRegistration,
    *,
    is_acceptable: Callable[[int], bool],
    election: Election = Election.ONLINE,
    target_isr: Sequence[int] | None = None,
    log_end_offsets: Mapping[int, LogEnd | int] | None = None,
    may_keep_leading: Callable[[int], bool] | None = None,
) -> PartitionChange | None:
    """The change that moves `current` to the target ISR and a valid leader, or None if no change.

    `is_acceptable(b)`: may `b` be in the ISR and become leader. `may_keep_leading(b)` (default
    `is_acceptable`): may the *current* leader keep leading while it stays in the target ISR — the
    callers here pass "registered and unfenced", so a leader in controlled shutdown keeps a
    partition nobody else can take.

    ISR: the target (default: the current ISR), deduplicated, restricted to the replicas and to
    acceptable brokers (plus a current leader that may keep leading). If that leaves nothing, the
    ISR keeps its last member(s): the target as given, or the current ISR if the target is empty.

    Leader ladder:
      PREFERRED  replicas[0] if acceptable and in the new ISR; else as ONLINE.
      ONLINE     the current leader if it may keep leading and is in the new ISR; else the first
                 replica (replica order) that is acceptable and in the new ISR; else -1.
      UNCLEAN    as ONLINE, but when no ISR member qualifies: an acceptable replica — the longest
                 log per `log_end_offsets` (`choose_unclean_leader`: last epoch, then log end
                 offset; ties and unknowns: replica order) — with ISR = [it].
    """
    keep = may_keep_leading or is_acceptable
    replicas = current.replicas
    target = _dedupe(current.isr if target_isr is None else target_isr, replicas)
    leader_may_stay = current.leader != NO_LEADER and keep(current.leader)
    isr = tuple(b for b in target if is_acceptable(b) or (b == current.leader and leader_may_stay))
    if not isr:
        isr = target or current.isr  # never empty: the ISR keeps its last member(s)

    def valid_new_leader(b: int) -> bool:
        return b in isr and is_acceptable(b)

    leader = NO_LEADER
    unclean = False
    preferred = replicas[0] if replicas else NO_LEADER
    if election is Election.PREFERRED and preferred != NO_LEADER and valid_new_leader(preferred):
        leader = preferred
    elif leader_may_stay and current.leader in isr:
        leader = current.leader
    else:
        leader = next((b for b in replicas if valid_new_leader(b)), NO_LEADER)
        if leader == NO_LEADER and election is Election.UNCLEAN:
            live = [b for b in replicas if is_acceptable(b)]
            if live:
                leader = choose_unclean_leader(live, log_end_offsets)
                isr = (leader,)
                unclean = True

    isr_changed = isr != current.isr
    leader_changed = leader != current.leader
    if not isr_changed and not leader_changed:
        return None  # Kafka changeRecordIsNoOp
    return PartitionChange(
        topic_id=topic_id,
        partition=partition,
        isr=isr if isr_changed else None,
        leader=leader if leader_changed else LEADER_UNCHANGED,
        unclean=unclean,
        unclean_loss=unclean_loss(leader, log_end_offsets) if unclean else None,
    )


def _dedupe(brokers: Sequence[int], replicas: Sequence[int]) -> tuple[int, ...]:
    seen: list[int] = []
    for b in brokers:
        if b in replicas and b not in seen:
            seen.append(b)
    return tuple(seen)


# -- predicates over an image ------------------------------------------------------------------------

def _active(image: MetadataImage) -> Callable[[int], bool]:
    def is_active(broker_id: int) -> bool:
        broker = image.brokers.get(broker_id)
        return broker is not None and broker.active
    return is_active


def _unfenced(image: MetadataImage) -> Callable[[int], bool]:
    def is_unfenced(broker_id: int) -> bool:
        broker = image.brokers.get(broker_id)
        return broker is not None and not broker.fenced
    return is_unfenced


def _partitions(image: MetadataImage) -> Iterator[tuple[TopicImage, int, PartitionRegistration]]:
    """Every partition in a stable order (topic name, partition index)."""
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        for index, registration in sorted(topic.partitions.items()):
            yield topic, index, registration


def _offsets_for(log_end_offsets: LogEndOffsets | None, topic_id: bytes,
                 partition: int) -> Mapping[int, LogEnd | int] | None:
    return None if log_end_offsets is None else log_end_offsets(topic_id, partition)


def _change(image: MetadataImage, topic: TopicImage, index: int, current: PartitionRegistration, *,
            election: Election, target_isr: Sequence[int] | None = None,
            log_end_offsets: LogEndOffsets | None = None) -> PartitionChange | None:
    """The builder with the image's own predicates: active may join/lead, unfenced may keep leading."""
    return build_partition_change(
        topic.topic_id, index, current,
        is_acceptable=_active(image),
        may_keep_leading=_unfenced(image),
        election=election,
        target_isr=target_isr,
        log_end_offsets=_offsets_for(log_end_offsets, topic.topic_id, index),
    )


def _never(_topic: str) -> bool:
    return False


# -- broker state changes ----------------------------------------------------------------------------

def fence_broker_records(image: MetadataImage, broker_id: int, *, unclean_enabled: Callable[[str], bool],
                         log_end_offsets: LogEndOffsets | None = None) -> list[Record]:
    """FenceBroker, then the broker leaves every ISR (but never empties one) and every leadership.

    Partitions it led get a new leader from the live ISR, or an unclean one if the topic allows it,
    or go offline (leader -1). An unknown broker gives []; an already fenced one gives only the ISR
    changes still missing (usually none).
    """
    broker = image.brokers.get(broker_id)
    if broker is None:
        return []
    records: list[Record] = [] if broker.fenced else [FenceBroker(broker_id, broker.broker_epoch)]
    after = replay_all(image, records)
    for topic, index, p in _partitions(after):
        if broker_id not in p.isr and p.leader != broker_id:
            continue
        election = Election.UNCLEAN if unclean_enabled(topic.name) else Election.ONLINE
        change = _change(after, topic, index, p, election=election,
                         target_isr=tuple(b for b in p.isr if b != broker_id), log_end_offsets=log_end_offsets)
        if change is not None:
            records.append(change)
    return records


def unfence_broker_records(image: MetadataImage, broker_id: int, *, unclean_enabled: Callable[[str], bool],
                           log_end_offsets: LogEndOffsets | None = None) -> list[Record]:
    """UnfenceBroker, then elections for the offline partitions this broker can now lead.

    Clean when it is in the ISR (the ISR's last member came back); unclean when the topic allows it.
    Acceptability is evaluated on the image with the unfence applied. [] if unknown or not fenced.
    """
    broker = image.brokers.get(broker_id)
    if broker is None or not broker.fenced:
        return []
    records: list[Record] = [UnfenceBroker(broker_id, broker.broker_epoch)]
    after = replay_all(image, records)
    for topic, index, p in _partitions(after):
        if p.leader != NO_LEADER or broker_id not in p.replicas:
            continue
        election = Election.UNCLEAN if unclean_enabled(topic.name) else Election.ONLINE
        change = _change(after, topic, index, p, election=election, log_end_offsets=log_end_offsets)
        if change is not None:
            records.append(change)
    return records


def controlled_shutdown_records(image: MetadataImage, broker_id: int) -> list[Record]:
    """BrokerShutdown (once), then move leaderships away and leave ISRs where another member is active.

    Where the broker is the only active ISR member it stays (as leader if it leads): the partition
    keeps a leader until the broker actually goes. [] when there is nothing left to do (also for an
    unknown or fenced broker).
    """
    broker = image.brokers.get(broker_id)
    if broker is None or broker.fenced:
        return []
    records: list[Record] = [] if broker.shutting_down else [BrokerShutdown(broker_id, broker.broker_epoch)]
    after = replay_all(image, records)
    is_active = _active(after)
    for topic, index, p in _partitions(after):
        if broker_id not in p.isr:
            continue
        target = tuple(b for b in p.isr if b != broker_id)
        if not any(is_active(b) for b in target):
            continue
        change = _change(after, topic, index, p, election=Election.ONLINE, target_isr=target)
        if change is not None:
            records.append(change)
    return records


def shutdown_complete(image: MetadataImage, broker_id: int) -> bool:
    """True when the broker is in no ISR that has another active member (so leads nothing movable)."""
    broker = image.brokers.get(broker_id)
    if broker is None or broker.fenced:
        return True
    is_active = _active(image)
    for _, _, p in image.iter_partitions():
        if broker_id in p.isr and any(b != broker_id and is_active(b) for b in p.isr):
            return False
    return True


# -- AlterPartition ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AlterPartitionItem:
    topic_id: bytes
    partition: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[int, ...]
    # KIP-903: the broker epoch of each new_isr member as the leader saw it in its fetches (same
    # order; -1 where unknown). Empty from a broker that predates the field: not checked then.
    new_isr_broker_epochs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class AlterPartitionOutcome:
    topic_id: bytes
    partition: int
    error: ErrorCode
    registration: PartitionRegistration | None  # the partition after the change (or as it is)


def alter_partition(image: MetadataImage, broker_id: int, broker_epoch: int,
                    items: Sequence[AlterPartitionItem], *,
                    suspect: Collection[int] = frozenset()) -> tuple[list[Record], list[AlterPartitionOutcome]]:
    """A leader's ISR change, with the partition epoch as compare-and-set.

    Whole request: unknown, fenced or stale-epoch broker -> STALE_BROKER_EPOCH on every item.
    Per item, in order: UNKNOWN_TOPIC_OR_PARTITION; an older leader epoch -> FENCED_LEADER_EPOCH;
    not the leader (or a leader epoch from the future) -> NOT_LEADER_OR_FOLLOWER; partition epoch
    mismatch -> INVALID_UPDATE_VERSION; duplicates, members outside the replicas, or an ISR without
    the leader -> INVALID_REQUEST; an *added* member that is fenced or shutting down ->
    INELIGIBLE_REPLICA (members kept from the current ISR, such as the leader itself in controlled
    shutdown, may stay: a shrink is never blocked); an added member whose broker epoch (as the
    leader saw it in its fetches) is not its current one -> INELIGIBLE_REPLICA too (KIP-903: the
    leader's view of that replica came from an earlier incarnation, maybe with a longer log than
    the one restarted now); broker epochs not matching new_isr in length -> INVALID_REQUEST; an
    added member in `suspect` -> INELIGIBLE_REPLICA too. The same partition twice in one request ->
    INVALID_REQUEST for the second. An ISR equal to the current one succeeds with no record.

    `suspect`: brokers whose session the active controller doubts at this moment (soft state it
    passes in: `BrokerHeartbeatTracker.suspect` — the controller connection was lost and nothing
    came since, the session expired but fencing has not acted yet, or not heard from since this
    controller became active). A broker that crashed may have lost the unsynced tail of its log
    (a power loss), so the fetch offset the leader saw no longer describes it; admitted, it would
    be an ISR member lacking acknowledged records until fencing removed it, and electable in that
    window (found by the simulator, seed 29423). Beyond Kafka, which refuses only fenced and
    shutting-down brokers (KIP-841) and leaves the rest to KIP-966's unclean-shutdown handling.
    The leader retries on its next ISR check, so a live broker joins once it has called again.
    """
    broker = image.brokers.get(broker_id)
    if broker is None or broker.fenced or broker.broker_epoch != broker_epoch:
        return [], [AlterPartitionOutcome(i.topic_id, i.partition, ErrorCode.stale_broker_epoch, None)
                    for i in items]
    is_active = _active(image)
    records: list[Record] = []
    outcomes: list[AlterPartitionOutcome] = []
    seen: set[tuple[bytes, int]] = set()
    for item in items:
        key = (item.topic_id, item.partition)
        current = image.partition(item.topic_id, item.partition)
        error = ErrorCode.none
        if key in seen:
            error = ErrorCode.invalid_request
        elif current is None:
            error = ErrorCode.unknown_topic_or_partition
        elif item.leader_epoch < current.leader_epoch:
            error = ErrorCode.fenced_leader_epoch
        elif current.leader != broker_id or item.leader_epoch != current.leader_epoch:
            error = ErrorCode.not_leader_or_follower
        elif item.partition_epoch != current.partition_epoch:
            error = ErrorCode.invalid_update_version
        else:
            new_isr = tuple(item.new_isr)
            if (len(set(new_isr)) != len(new_isr) or not set(new_isr) <= set(current.replicas)
                    or current.leader not in new_isr):
                error = ErrorCode.invalid_request
            elif item.new_isr_broker_epochs and len(item.new_isr_broker_epochs) != len(new_isr):
                error = ErrorCode.invalid_request
            elif any(b not in current.isr and not is_active(b) for b in new_isr):
                error = ErrorCode.ineligible_replica
            elif _stale_additions(image, current, new_isr, item.new_isr_broker_epochs):
                error = ErrorCode.ineligible_replica
            elif any(b not in current.isr and b in suspect for b in new_isr):
                error = ErrorCode.ineligible_replica
        seen.add(key)
        if error != ErrorCode.none or current is None:
            outcomes.append(AlterPartitionOutcome(item.topic_id, item.partition, error, None))
            continue
        new_isr = tuple(item.new_isr)
        if new_isr == current.isr:
            outcomes.append(AlterPartitionOutcome(item.topic_id, item.partition, ErrorCode.none, current))
            continue
        change = PartitionChange(item.topic_id, item.partition, isr=new_isr)
        records.append(change)
        outcomes.append(AlterPartitionOutcome(item.topic_id, item.partition, ErrorCode.none, current.merge(change)))
    return records, outcomes


def _stale_additions(image: MetadataImage, current: PartitionRegistration, new_isr: tuple[int, ...],
                     broker_epochs: tuple[int, ...]) -> list[int]:
    """Members `new_isr` adds whose broker epoch as the leader saw it is not their current one."""
    if not broker_epochs:
        return []
    stale = []
    for member, epoch in zip(new_isr, broker_epochs, strict=True):
        broker = image.brokers.get(member)
        if member not in current.isr and (broker is None or broker.broker_epoch != epoch):
            stale.append(member)
    return stale


# -- manual elections --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ElectOutcome:
    topic: str
    partition: int
    error: ErrorCode
    message: str
    leader: int


def elect_leaders(image: MetadataImage, election: Election, partitions: Sequence[tuple[str, int]] | None, *,
                  unclean_enabled: Callable[[str], bool] = _never,
                  log_end_offsets: LogEndOffsets | None = None) -> tuple[list[Record], list[ElectOutcome]]:
    """Manual (admin) elections for the given (topic, partition)s; None = every partition.

    A partition index < 0 means every partition of that topic. Repeated partitions are answered once.
    PREFERRED: ELECTION_NOT_NEEDED if replicas[0] leads; PREFERRED_LEADER_NOT_AVAILABLE if it is not
    active or not in the ISR. UNCLEAN (whatever the topic config says): ELECTION_NOT_NEEDED if the
    partition has a leader; else a live ISR member, else any live replica (longest log first);
    ELIGIBLE_LEADERS_NOT_AVAILABLE if none is live. ONLINE: as UNCLEAN, but unclean only where
    `unclean_enabled(topic)`.
    """
    wanted: list[tuple[str, int]] = []
    if partitions is None:
        wanted = [(t.name, i) for t, i, _ in _partitions(image)]
    else:
        for name, index in partitions:
            topic = image.topic_by_name(name)
            if index < 0 and topic is not None:
                wanted.extend((name, i) for i in sorted(topic.partitions))
            else:
                wanted.append((name, index))
    records: list[Record] = []
    outcomes: list[ElectOutcome] = []
    done: set[tuple[str, int]] = set()
    for name, index in wanted:
        if (name, index) in done:
            continue
        done.add((name, index))
        topic = image.topic_by_name(name)
        current = None if topic is None else topic.partitions.get(index)
        if topic is None or current is None:
            outcomes.append(ElectOutcome(name, index, ErrorCode.unknown_topic_or_partition,
                                         f"unknown topic or partition {name}-{index}", NO_LEADER))
            continue
        change, outcome = _elect_one(image, topic, index, current, election, unclean_enabled, log_end_offsets)
        if change is not None:
            records.append(change)
        outcomes.append(outcome)
    return records, outcomes


def _elect_one(image: MetadataImage, topic: TopicImage, index: int, current: PartitionRegistration,
               election: Election, unclean_enabled: Callable[[str], bool],
               log_end_offsets: LogEndOffsets | None) -> tuple[PartitionChange | None, ElectOutcome]:
    name = topic.name
    if election is Election.PREFERRED:
        preferred = current.preferred_leader
        if current.leader == preferred:
            return None, ElectOutcome(name, index, ErrorCode.election_not_needed,
                                      f"preferred replica {preferred} already leads {name}-{index}", preferred)
        change = _change(image, topic, index, current, election=Election.PREFERRED)
        if change is None or change.leader != preferred:
            why = ("is not in the ISR" if preferred not in current.isr else "is not live")
            return None, ElectOutcome(name, index, ErrorCode.preferred_leader_not_available,
                                      f"preferred replica {preferred} of {name}-{index} {why}", current.leader)
        return change, ElectOutcome(name, index, ErrorCode.none, "", preferred)
    if current.leader != NO_LEADER:
        return None, ElectOutcome(name, index, ErrorCode.election_not_needed,
                                  f"{name}-{index} already has leader {current.leader}", current.leader)
    if election is Election.ONLINE and unclean_enabled(name):
        election = Election.UNCLEAN
    change = _change(image, topic, index, current, election=election, log_end_offsets=log_end_offsets)
    leader = current.leader if change is None or change.leader == LEADER_UNCHANGED else change.leader
    if leader == NO_LEADER:
        where = "replica" if election is Election.UNCLEAN else "ISR member"
        return None, ElectOutcome(name, index, ErrorCode.eligible_leaders_not_available,
                                  f"no live {where} of {name}-{index} can lead", NO_LEADER)
    return change, ElectOutcome(name, index, ErrorCode.none, "", leader)


__all__ = [
    "AlterPartitionItem",
    "AlterPartitionOutcome",
    "ElectOutcome",
    "Election",
    "LogEnd",
    "choose_unclean_leader",
    "unclean_loss",
    "alter_partition",
    "build_partition_change",
    "controlled_shutdown_records",
    "elect_leaders",
    "fence_broker_records",
    "shutdown_complete",
    "unfence_broker_records",
]
