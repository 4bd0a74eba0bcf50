"""The classic consumer-group state machine: pure, no clock reads, no I/O.

Rule 1 (after h11 `_state.py`): everything that changes a group's state lives in this file. Time
comes in as `now_ms` (a monotonic millisecond clock chosen by the caller); fresh member ids come in
as arguments. The I/O shell (`coordinator.py`) parks JoinGroup and SyncGroup requests and answers
them from what `Group.take_effects()` returns (the etcd-raft `Ready` pattern): a method call
mutates the group and queues effects; the shell drains them after every call.

States and transitions (Kafka `GroupState` / `GroupMetadata.validPreviousStates`):

    Empty               --join-->                  PreparingRebalance
    PreparingRebalance  --all rejoined/timeout-->  CompletingRebalance  (or Empty if nobody is left)
    CompletingRebalance --leader's SyncGroup-->    Stable
    CompletingRebalance --join/leave/expiry-->     PreparingRebalance
    Stable              --join/leave/expiry-->     PreparingRebalance
    any                 --delete/unload-->         Dead

An illegal transition raises `IllegalTransition` (a programming error, never a client error).

Behaviour follows Kafka's classic `GroupCoordinator` (core/src/main/scala/kafka/coordinator/group/):
MEMBER_ID_REQUIRED for JoinGroup v4+, first member leads, the protocol is chosen by vote among the
protocols every member supports, a rebalance completes when every known member has rejoined (and no
member id handed out by MEMBER_ID_REQUIRED is still outstanding) or the rebalance timeout expires
(members that did not rejoin are removed), `group.initial.rebalance.delay.ms` delays the first
rebalance of an empty group, static members (`group.instance.id`) keep their assignment across a
restart, and a member whose session expires is removed and triggers a rebalance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from broker.groups.offsets import GroupMetadataValue, MemberMetadata, OffsetValue
from cluster.errors import ErrorCode

__all__ = [
    "MEMBERS_MAX",
    "Effects",
    "Group",
    "GroupState",
    "IllegalTransition",
    "JoinOutcome",
    "JoinResult",
    "JoinedMember",
    "Member",
    "SyncResult",
    "TickResult",
    "VALID_PREVIOUS_STATES",
    "check_transition",
    "parse_subscribed_topics",
    "select_protocol",
]

# A group larger than this answers GROUP_MAX_SIZE_REACHED (Kafka's `group.max.size` defaults to
# Integer.MAX_VALUE; every Brook collection is bounded, and 10,000 consumers in one group is far
# beyond any partition count we serve).
MEMBERS_MAX = 10_000


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


# target state -> the states it may be entered from.
VALID_PREVIOUS_STATES: Mapping[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE}),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}


class IllegalTransition(Exception):
    """A transition the table does not allow: a bug in the coordinator, never a client error."""


def check_transition(source: GroupState, target: GroupState) -> None:
    if source not in VALID_PREVIOUS_STATES[target]:
        raise IllegalTransition(f"group state {source.value} -> {target.value} is not allowed")


# -- data -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]  # (name, metadata) in the member's preference order
    assignment: bytes = b""
    awaiting_join: bool = False  # a JoinGroup of this member is parked in the current rebalance
    awaiting_sync: bool = False  # a SyncGroup of this member is parked
    heartbeat_deadline_ms: int = 0

    def protocol_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.protocols)

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""


@dataclass(frozen=True, slots=True)
class JoinedMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What a JoinGroup response carries. `members` is non-empty only for the leader."""

    error: ErrorCode
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = ""
    members: tuple[JoinedMember, ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """The result of `Group.join`: an immediate reply, or None when the request is parked.

    A parked request is answered later through `Effects.joins` under `member_id`.
    """

    member_id: str
    reply: JoinResult | None


@dataclass(slots=True)
class Effects:
    """What the shell must do after a call: answer parked requests, persist the group."""

    joins: list[tuple[str, JoinResult]] = field(default_factory=list)
    syncs: list[tuple[str, SyncResult]] = field(default_factory=list)
    store_group: bool = False

    def __bool__(self) -> bool:
        return bool(self.joins or self.syncs or self.store_group)


@dataclass(frozen=True, slots=True)
class TickResult:
    expired_members: tuple[str, ...] = ()
    expired_pending: tuple[str, ...] = ()
    rebalance_completed: bool = False


def select_protocol(members: Iterable[Member]) -> str | None:
    """The protocol every member supports with the most first-choice votes (Kafka `selectProtocol`).

    Each member votes for its most preferred protocol among the common ones; ties go to the
    protocol listed first by the first member (deterministic, unlike Kafka's hash-map order).
    """
    members = list(members)
    if not members:
        return None
    common = set(members[0].protocol_names())
    for member in members[1:]:
        common &= set(member.protocol_names())
    if not common:
        return None
    order = [name for name in members[0].protocol_names() if name in common]
    votes = dict.fromkeys(order, 0)
    for member in members:
        vote = next(name for name in member.protocol_names() if name in common)
        votes[vote] += 1
    return max(order, key=lambda name: (votes[name], -order.index(name)))


def parse_subscribed_topics(metadata: bytes) -> frozenset[str] | None:
    """Topics of a ConsumerProtocolSubscription (version int16, topics [string], ...), or None."""
    try:
        if len(metadata) < 6:
            return None
        count = int.from_bytes(metadata[2:6], "big", signed=True)
        if count < 0 or count > len(metadata):
            return None
        pos, topics = 6, set()
        for _ in range(count):
            length = int.from_bytes(metadata[pos:pos + 2], "big", signed=True)
            if length < 0 or pos + 2 + length > len(metadata):
                return None
            topics.add(metadata[pos + 2:pos + 2 + length].decode())
            pos += 2 + length
        return frozenset(topics)
    except (UnicodeDecodeError, ValueError):
        return None


# -- the group ------------------------------------------------------------------------------------


class Group:
    """One classic group: membership, generation, assignment and committed offsets."""

    def __init__(self, group_id: str, now_ms: int = 0, *, initial_rebalance_delay_ms: int = 0) -> None:
        self.group_id = group_id
        self.state = GroupState.EMPTY
        self.state_timestamp_ms = now_ms
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}  # insertion order = join order
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        self.pending_members: dict[str, int] = {}  # MEMBER_ID_REQUIRED ids -> expiry (ms)
        self.offsets: dict[tuple[str, int], OffsetValue] = {}
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms
        self.rebalance_deadline_ms = 0
        self._initial_delay = False  # the first rebalance of an empty group is still being delayed
        self._initial_delay_limit_ms = 0
        self._joined_during_delay = False
        self._effects = Effects()

    # -- helpers ----------------------------------------------------------------------------------

    def take_effects(self) -> Effects:
        effects, self._effects = self._effects, Effects()
        return effects

    def _transition(self, target: GroupState, now_ms: int) -> None:
        check_transition(self.state, target)
        self.state = target
        self.state_timestamp_ms = now_ms

    def is_empty(self) -> bool:
        return not self.members and not self.pending_members

    def _static_member_id(self, instance_id: str | None) -> str | None:
        return None if instance_id is None else self.static_members.get(instance_id)

    def _fenced(self, member_id: str, instance_id: str | None) -> bool:
        """A static member presents a member id other than the one its instance id maps to."""
        if instance_id is None:
            return False
        current = self.static_members.get(instance_id)
        return current is not None and current != member_id

    def _supports(self, member_id: str, protocol_type: str, names: Sequence[str]) -> bool:
        if not names or not protocol_type:
            return False
        others = [m for m in self.members.values() if m.member_id != member_id]
        if not others:
            return True
        if protocol_type != self.protocol_type:
            return False
        common = set(names)
        for member in others:
            common &= set(member.protocol_names())
        return bool(common)

    def subscribed_topics(self) -> frozenset[str] | None:
        """Union of the members' subscriptions, or None when unknown (not the consumer protocol)."""
        if self.protocol_type != "consumer" or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            parsed = parse_subscribed_topics(member.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics |= parsed
        return frozenset(topics)

    def _current_join_result(self, member: Member) -> JoinResult:
        is_leader = member.member_id == self.leader_id
        return JoinResult(
            error=ErrorCode.none, member_id=member.member_id, generation_id=self.generation,
            protocol_type=self.protocol_type, protocol_name=self.protocol_name,
            leader_id=self.leader_id or "",
            members=self._member_list() if is_leader else (), skip_assignment=False)

    def _member_list(self) -> tuple[JoinedMember, ...]:
        return tuple(JoinedMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                     for m in self.members.values())

    # -- JoinGroup --------------------------------------------------------------------------------

    def join(self, now_ms: int, *, member_id: str, group_instance_id: str | None, client_id: str,
             client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str,
             protocols: Sequence[tuple[str, bytes]], require_known_member_id: bool,
             fresh_member_id: str) -> JoinOutcome:
        """Handle a JoinGroup. `fresh_member_id` is used if the member needs a new id."""
        assert fresh_member_id, "the shell must supply a fresh member id"
        if self.state is GroupState.DEAD:
            return JoinOutcome(member_id, JoinResult(ErrorCode.coordinator_not_available, member_id))
        protocols = tuple(protocols)
        names = [name for name, _ in protocols]
        if not self._supports(member_id, protocol_type, names):
            return JoinOutcome(member_id, JoinResult(ErrorCode.inconsistent_group_protocol, member_id))
        params = dict(client_id=client_id, client_host=client_host, session_timeout_ms=session_timeout_ms,
                      rebalance_timeout_ms=rebalance_timeout_ms, protocol_type=protocol_type,
                      protocols=protocols)
        if member_id == "":
            return self._join_unknown(now_ms, group_instance_id, require_known_member_id,
                                      fresh_member_id, params)
        return self._join_known(now_ms, member_id, group_instance_id, params)

    def _join_unknown(self, now_ms: int, instance_id: str | None, require_known_member_id: bool,
                      fresh_member_id: str, params: dict) -> JoinOutcome:
        if instance_id is not None and instance_id in self.static_members:
            return self._replace_static_member(now_ms, instance_id, fresh_member_id, params)
        if len(self.members) + len(self.pending_members) >= MEMBERS_MAX:
            return JoinOutcome("", JoinResult(ErrorCode.group_max_size_reached))
        if require_known_member_id and instance_id is None:
            # KIP-394: hand out the id first; the member rejoins with it (bounded by its session).
            self.pending_members[fresh_member_id] = now_ms + params["session_timeout_ms"]
            return JoinOutcome(fresh_member_id,
                               JoinResult(ErrorCode.member_id_required, member_id=fresh_member_id))
        self._add_member(now_ms, fresh_member_id, instance_id, params)
        return JoinOutcome(fresh_member_id, None)

    def _join_known(self, now_ms: int, member_id: str, instance_id: str | None,
                    params: dict) -> JoinOutcome:
        if member_id in self.pending_members:
            del self.pending_members[member_id]
            if self._fenced(member_id, instance_id):
                return JoinOutcome(member_id, JoinResult(ErrorCode.fenced_instance_id, member_id))
            self._add_member(now_ms, member_id, instance_id, params)
            return JoinOutcome(member_id, None)
        if self._fenced(member_id, instance_id):
            return JoinOutcome(member_id, JoinResult(ErrorCode.fenced_instance_id, member_id))
        member = self.members.get(member_id)
        if member is None:
            return JoinOutcome(member_id, JoinResult(ErrorCode.unknown_member_id, member_id))
        changed = member.protocols != params["protocols"]
        if self.state is GroupState.PREPARING_REBALANCE:
            self._update_member(now_ms, member, params)
            self._maybe_complete_join(now_ms)
            return JoinOutcome(member_id, None)
        if self.state is GroupState.COMPLETING_REBALANCE and not changed:
            # The member missed its JoinGroup response: send the current generation again.
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            return JoinOutcome(member_id, self._current_join_result(member))
        if self.state is GroupState.STABLE and not changed and member_id != self.leader_id:
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            return JoinOutcome(member_id, self._current_join_result(member))
        # Stable leader rejoining, or changed metadata: a new rebalance.
        self._update_member(now_ms, member, params)
        self._prepare_rebalance(now_ms)
        self._maybe_complete_join(now_ms)
        return JoinOutcome(member_id, None)

    def _replace_static_member(self, now_ms: int, instance_id: str, new_member_id: str,
                               params: dict) -> JoinOutcome:
        """A known static member restarted (empty member id): swap ids, keep its assignment."""
        old_id = self.static_members[instance_id]
        old = self.members.pop(old_id)
        if old.awaiting_join:
            self._effects.joins.append((old_id, JoinResult(ErrorCode.fenced_instance_id, old_id)))
        if old.awaiting_sync:
            self._effects.syncs.append((old_id, SyncResult(ErrorCode.fenced_instance_id)))
        old_protocols = old.protocols
        member = Member(new_member_id, instance_id, params["client_id"], params["client_host"],
                        params["session_timeout_ms"], params["rebalance_timeout_ms"],
                        params["protocol_type"], params["protocols"], assignment=old.assignment,
                        awaiting_join=old.awaiting_join,
                        heartbeat_deadline_ms=now_ms + params["session_timeout_ms"])
        self.members[new_member_id] = member
        self.static_members[instance_id] = new_member_id
        if self.leader_id == old_id:
            self.leader_id = new_member_id
        if self.state is GroupState.STABLE and select_protocol(self.members.values()) == self.protocol_name \
                and old_protocols == member.protocols:
            self._effects.store_group = True
            return JoinOutcome(new_member_id, self._current_join_result(member))
        if self.state is GroupState.PREPARING_REBALANCE:
            member.awaiting_join = True
            self._maybe_complete_join(now_ms)
            return JoinOutcome(new_member_id, None)
        # Stable with changed protocols, or CompletingRebalance (the leader may be assigning to the
        # old id): rebalance.
        member.awaiting_join = True
        self._prepare_rebalance(now_ms)
        self._maybe_complete_join(now_ms)
        return JoinOutcome(new_member_id, None)

    def _add_member(self, now_ms: int, member_id: str, instance_id: str | None, params: dict) -> None:
        if not self.members:
            self.protocol_type = params["protocol_type"]
        member = Member(member_id, instance_id, params["client_id"], params["client_host"],
                        params["session_timeout_ms"], params["rebalance_timeout_ms"],
                        params["protocol_type"], params["protocols"], awaiting_join=True,
                        heartbeat_deadline_ms=now_ms + params["session_timeout_ms"])
        self.members[member_id] = member
        if instance_id is not None:
            self.static_members[instance_id] = member_id
        if self.leader_id is None or self.leader_id not in self.members:
            self.leader_id = member_id
        if self._initial_delay:
            self._joined_during_delay = True
        self._prepare_rebalance(now_ms)
        self._maybe_complete_join(now_ms)

    def _update_member(self, now_ms: int, member: Member, params: dict) -> None:
        # An empty client id/host means "not known to the caller": keep what the member had.
        member.client_id = params["client_id"] or member.client_id
        member.client_host = params["client_host"] or member.client_host
        member.session_timeout_ms = params["session_timeout_ms"]
        member.rebalance_timeout_ms = params["rebalance_timeout_ms"]
        member.protocols = params["protocols"]
        member.awaiting_join = True
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms

    def _prepare_rebalance(self, now_ms: int) -> None:
        """Enter PreparingRebalance (no-op if already there) and set the join deadline."""
        if self.state is GroupState.PREPARING_REBALANCE:
            return
        if self.state is GroupState.COMPLETING_REBALANCE:
            self._fail_parked_syncs(ErrorCode.rebalance_in_progress)
        rebalance_timeout_ms = max((m.rebalance_timeout_ms for m in self.members.values()), default=0)
        if self.state is GroupState.EMPTY and self.initial_rebalance_delay_ms > 0:
            self._initial_delay = True
            self._joined_during_delay = False
            self._initial_delay_limit_ms = now_ms + rebalance_timeout_ms
            self.rebalance_deadline_ms = now_ms + min(self.initial_rebalance_delay_ms, rebalance_timeout_ms)
        else:
            self._initial_delay = False
            self.rebalance_deadline_ms = now_ms + rebalance_timeout_ms
        self._transition(GroupState.PREPARING_REBALANCE, now_ms)

    def _fail_parked_syncs(self, error: ErrorCode) -> None:
        for member in self.members.values():
            if member.awaiting_sync:
                member.awaiting_sync = False
                self._effects.syncs.append((member.member_id, SyncResult(error)))

    def _all_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    def _maybe_complete_join(self, now_ms: int) -> bool:
        if self.state is not GroupState.PREPARING_REBALANCE:
            return False
        if self._initial_delay:
            if now_ms < self.rebalance_deadline_ms:
                return False
            if self._joined_during_delay and now_ms < self._initial_delay_limit_ms:
                # Members are still arriving: wait one more delay, never past the rebalance timeout.
                self._joined_during_delay = False
                self.rebalance_deadline_ms = min(now_ms + self.initial_rebalance_delay_ms,
                                                 self._initial_delay_limit_ms)
                return False
            self._initial_delay = False
        elif not self._all_joined() and now_ms < self.rebalance_deadline_ms:
            return False
        self._complete_join(now_ms)
        return True

    def _complete_join(self, now_ms: int) -> None:
        """Remove members that did not rejoin, start the next generation, answer parked joins."""
        for member in [m for m in self.members.values() if not m.awaiting_join]:
            self._remove_member(member.member_id, ErrorCode.unknown_member_id)
        self.generation += 1
        if not self.members:
            self.protocol_name = None
            self.leader_id = None
            self._transition(GroupState.EMPTY, now_ms)
            self._effects.store_group = True
            return
        # A generation with members is stored when the leader's SyncGroup brings its assignments (Kafka's
        # onCompleteJoin stores only an Empty group): a record written here would carry empty assignments,
        # and a coordinator loading it would serve generation N Stable with nothing assigned.
        self.protocol_name = select_protocol(self.members.values())
        assert self.protocol_name is not None, "join admitted a member without a common protocol"
        if self.leader_id not in self.members:
            self.leader_id = next(iter(self.members))
        self._transition(GroupState.COMPLETING_REBALANCE, now_ms)
        for member in self.members.values():
            member.awaiting_join = False
            member.assignment = b""
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            self._effects.joins.append((member.member_id, self._current_join_result(member)))

    def _remove_member(self, member_id: str, parked_error: ErrorCode) -> None:
        member = self.members.pop(member_id)
        if member.group_instance_id is not None and self.static_members.get(member.group_instance_id) == member_id:
            del self.static_members[member.group_instance_id]
        if member.awaiting_join:
            self._effects.joins.append((member_id, JoinResult(parked_error, member_id)))
        if member.awaiting_sync:
            self._effects.syncs.append((member_id, SyncResult(parked_error)))
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)

    def _member_gone(self, now_ms: int) -> None:
        """After a member left or expired: rebalance, or finish the rebalance in progress."""
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(now_ms)
        self._maybe_complete_join(now_ms)

    # -- SyncGroup, Heartbeat, LeaveGroup ---------------------------------------------------------

    def sync(self, now_ms: int, *, member_id: str, group_instance_id: str | None, generation_id: int,
             protocol_type: str | None, protocol_name: str | None,
             assignments: Mapping[str, bytes]) -> SyncResult | None:
        """Handle a SyncGroup: an immediate reply, or None when parked (answered via effects)."""
        if self.state is GroupState.DEAD:
            return SyncResult(ErrorCode.coordinator_not_available)
        if self._fenced(member_id, group_instance_id):
            return SyncResult(ErrorCode.fenced_instance_id)
        member = self.members.get(member_id)
        if member is None:
            return SyncResult(ErrorCode.unknown_member_id)
        if generation_id != self.generation:
            return SyncResult(ErrorCode.illegal_generation)
        if (protocol_type is not None and protocol_type != self.protocol_type) or \
                (protocol_name is not None and protocol_name != self.protocol_name):
            return SyncResult(ErrorCode.inconsistent_group_protocol)
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if self.state is GroupState.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.rebalance_in_progress)
        if self.state is GroupState.STABLE:
            return self._sync_result(member)
        assert self.state is GroupState.COMPLETING_REBALANCE, self.state
        member.awaiting_sync = True
        if member_id == self.leader_id:
            for other in self.members.values():
                other.assignment = assignments.get(other.member_id, b"")
            self._transition(GroupState.STABLE, now_ms)
            self._effects.store_group = True
            for other in self.members.values():
                if other.awaiting_sync:
                    other.awaiting_sync = False
                    self._effects.syncs.append((other.member_id, self._sync_result(other)))
        return None

    def _sync_result(self, member: Member) -> SyncResult:
        return SyncResult(ErrorCode.none, member.assignment, self.protocol_type, self.protocol_name)

    def heartbeat(self, now_ms: int, *, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> ErrorCode:
        if self.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if self._fenced(member_id, group_instance_id):
            return ErrorCode.fenced_instance_id
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if generation_id != self.generation:
            return ErrorCode.illegal_generation
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if self.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave(self, now_ms: int, leaving: Sequence[tuple[str, str | None]]) -> list[ErrorCode]:
        """Handle a LeaveGroup of (member id, group instance id) pairs; one error per pair."""
        if self.state is GroupState.DEAD:
            return [ErrorCode.coordinator_not_available] * len(leaving)
        errors = []
        removed = False
        for member_id, instance_id in leaving:
            if instance_id is not None:
                current = self.static_members.get(instance_id)
                if current is None:
                    errors.append(ErrorCode.unknown_member_id)
                    continue
                if member_id and member_id != current:
                    errors.append(ErrorCode.fenced_instance_id)
                    continue
                member_id = current
            if member_id in self.pending_members:
                del self.pending_members[member_id]
                errors.append(ErrorCode.none)
                removed = True
                continue
            if member_id not in self.members:
                errors.append(ErrorCode.unknown_member_id)
                continue
            self._remove_member(member_id, ErrorCode.unknown_member_id)
            errors.append(ErrorCode.none)
            removed = True
        if removed:
            self._member_gone(now_ms)
        return errors

    # -- time -------------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> TickResult:
        """Expire sessions and pending member ids; complete a rebalance whose time is up."""
        if self.state is GroupState.DEAD:
            return TickResult()
        expired_pending = tuple(mid for mid, deadline in self.pending_members.items() if now_ms >= deadline)
        for member_id in expired_pending:
            del self.pending_members[member_id]
        expired = tuple(m.member_id for m in self.members.values()
                        if not m.awaiting_join and now_ms >= m.heartbeat_deadline_ms)
        for member_id in expired:
            self._remove_member(member_id, ErrorCode.unknown_member_id)
        if expired:
            self._member_gone(now_ms)
        completed = self._maybe_complete_join(now_ms)
        return TickResult(expired, expired_pending, completed)

    def next_deadline_ms(self) -> int | None:
        """The earliest time at which `tick` may change something (for tests and schedulers)."""
        deadlines = [d for d in self.pending_members.values()]
        deadlines += [m.heartbeat_deadline_ms for m in self.members.values() if not m.awaiting_join]
        if self.state is GroupState.PREPARING_REBALANCE:
            deadlines.append(self.rebalance_deadline_ms)
        return min(deadlines, default=None)

    # -- offsets, deletion, persistence -----------------------------------------------------------

    def validate_offset_commit(self, member_id: str, group_instance_id: str | None,
                               generation_id: int) -> ErrorCode:
        """Kafka `GroupMetadata.validateOffsetCommit` for the classic protocol."""
        if self.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if self._fenced(member_id, group_instance_id):
            return ErrorCode.fenced_instance_id
        if generation_id < 0 and self.state is GroupState.EMPTY:
            return ErrorCode.none  # a standalone consumer (assign(), not subscribe())
        if self.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        if member_id not in self.members:
            return ErrorCode.unknown_member_id
        if generation_id != self.generation:
            return ErrorCode.illegal_generation
        return ErrorCode.none

    def touch(self, now_ms: int, member_id: str) -> None:
        """An accepted offset commit from a member in a stable group counts as a heartbeat."""
        member = self.members.get(member_id)
        if member is not None and self.state is GroupState.STABLE:
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms

    def shutdown(self, now_ms: int, error: ErrorCode) -> None:
        """Mark the group Dead (deleted, or its partition unloaded); answer every parked request."""
        for member in self.members.values():
            if member.awaiting_join:
                member.awaiting_join = False
                self._effects.joins.append((member.member_id, JoinResult(error, member.member_id)))
            if member.awaiting_sync:
                member.awaiting_sync = False
                self._effects.syncs.append((member.member_id, SyncResult(error)))
        if self.state is not GroupState.DEAD:
            self._transition(GroupState.DEAD, now_ms)

    def to_metadata(self, wall_now_ms: int) -> GroupMetadataValue:
        """The GroupMetadataValue that persists this group (Kafka `groupMetadataValue`)."""
        members = tuple(
            MemberMetadata(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                           m.rebalance_timeout_ms, m.session_timeout_ms,
                           m.metadata(self.protocol_name), m.assignment)
            for m in self.members.values())
        return GroupMetadataValue(self.protocol_type or "", self.generation, self.protocol_name,
                                  self.leader_id, wall_now_ms, members)

    def restore(self, now_ms: int, value: GroupMetadataValue) -> None:
        """Replace membership with a loaded GroupMetadataValue (offsets are kept).

        A group with members comes back Stable (Kafka `GroupMetadata.loadGroup`); its members must
        heartbeat within their session timeout, counted from the load.
        """
        if self.state is GroupState.DEAD:
            return
        self.generation = value.generation
        self.protocol_type = value.protocol_type or None
        self.protocol_name = value.protocol
        self.members = {}
        self.static_members = {}
        self.pending_members = {}
        # Members without a selected protocol cannot be served; such a record is an Empty group.
        for m in value.members if value.protocol is not None else ():
            protocols: tuple[tuple[str, bytes], ...] = ((value.protocol or "", m.subscription),)
            self.members[m.member_id] = Member(
                m.member_id, m.group_instance_id, m.client_id, m.client_host, m.session_timeout_ms,
                m.rebalance_timeout_ms, value.protocol_type, protocols, assignment=m.assignment,
                heartbeat_deadline_ms=now_ms + m.session_timeout_ms)
            if m.group_instance_id is not None:
                self.static_members[m.group_instance_id] = m.member_id
        self.leader_id = value.leader if value.leader in self.members else next(iter(self.members), None)
        self.state = GroupState.STABLE if self.members else GroupState.EMPTY
        self.state_timestamp_ms = now_ms
