"""The pure group state machine: the transition table, then whole scenarios driven with `now_ms`.

Method: call `Group` methods directly with explicit times and fresh member ids, drain
`take_effects()` after each call the way the coordinator shell does, and check replies, effects
and state. No clock, no I/O.
"""

from __future__ import annotations

import itertools

import pytest

from broker.groups.offsets import GroupMetadataValue, MemberMetadata
from broker.groups.state import (
    Group,
    GroupState,
    IllegalTransition,
    Member,
    check_transition,
    parse_subscribed_topics,
    select_protocol,
)
from cluster.errors import ErrorCode

pytestmark = pytest.mark.timeout(10)

S = GroupState
SESSION = 10_000
REBALANCE = 30_000

ALLOWED = {
    (S.EMPTY, S.PREPARING_REBALANCE),
    (S.PREPARING_REBALANCE, S.EMPTY),
    (S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE),
    (S.COMPLETING_REBALANCE, S.STABLE),
    (S.COMPLETING_REBALANCE, S.PREPARING_REBALANCE),
    (S.STABLE, S.PREPARING_REBALANCE),
} | {(s, S.DEAD) for s in S}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_transition_table(source, target):
    if (source, target) in ALLOWED:
        check_transition(source, target)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(source, target)


_ids = itertools.count()


def join(group, now, member_id="", *, instance=None, protocols=(("range", b"m"),), v4=True,
         session=SESSION, rebalance=REBALANCE, protocol_type="consumer"):
    return group.join(now, member_id=member_id, group_instance_id=instance, client_id="c", client_host="/h",
                      session_timeout_ms=session, rebalance_timeout_ms=rebalance, protocol_type=protocol_type,
                      protocols=list(protocols), require_known_member_id=v4,
                      fresh_member_id=f"{instance or 'c'}-{next(_ids)}")


def join_new(group, now, **kw):
    """The v4 two-step join: MEMBER_ID_REQUIRED, then the real join (parked)."""
    first = join(group, now, **kw)
    assert first.reply is not None and first.reply.error == ErrorCode.member_id_required
    second = join(group, now, first.member_id, **kw)
    assert second.reply is None
    return second.member_id


def joins(effects):
    return dict(effects.joins)


def stable_group_of(n, now=0):
    """A Stable group of n members (no initial delay); returns (group, [member ids])."""
    group = Group("g", now)
    ids = []
    for _ in range(n):
        ids.append(join_new(group, now))
        group.take_effects()
    # Members that joined earlier rejoin the rebalance the later ones started.
    for mid in ids:
        if group.state is S.PREPARING_REBALANCE and not group.members[mid].awaiting_join:
            join(group, now, mid)
    effects = group.take_effects()
    assert group.state is S.COMPLETING_REBALANCE, group.state
    leader = group.leader_id
    assert set(joins(effects)) >= set(ids) or n == 1
    assert group.sync(now, member_id=leader, group_instance_id=None, generation_id=group.generation,
                      protocol_type=None, protocol_name=None,
                      assignments={mid: mid.encode() for mid in ids}) is None
    group.take_effects()
    assert group.state is S.STABLE
    return group, ids


def test_single_member_join_v4_member_id_required_then_completes():
    group = Group("g", 0)
    first = join(group, 0)
    assert first.reply.error == ErrorCode.member_id_required
    assert first.reply.member_id == first.member_id
    assert group.state is S.EMPTY and first.member_id in group.pending_members
    second = join(group, 5, first.member_id)
    assert second.reply is None  # the only member rejoined: the rebalance completes at once
    effects = group.take_effects()
    result = joins(effects)[first.member_id]
    assert result.error == ErrorCode.none and result.generation_id == 1
    assert result.leader_id == first.member_id and result.protocol_name == "range"
    assert [m.member_id for m in result.members] == [first.member_id]
    # Kafka's onCompleteJoin stores only an Empty group; this generation is stored by the leader's sync.
    assert not effects.store_group
    assert group.state is S.COMPLETING_REBALANCE


def test_old_client_v0_joins_without_member_id_required():
    group = Group("g", 0)
    outcome = join(group, 0, v4=False)
    assert outcome.reply is None
    assert joins(group.take_effects())[outcome.member_id].error == ErrorCode.none


def test_sync_distributes_leader_assignment_and_followers_get_theirs():
    group = Group("g", 0)
    a = join_new(group, 0)
    group.take_effects()
    b_first = join(group, 1)
    b = join(group, 1, b_first.member_id).member_id
    # b joined while a was CompletingRebalance: a new rebalance waits for a to rejoin.
    assert group.state is S.PREPARING_REBALANCE
    assert join(group, 2, a).reply is None
    effects = joins(group.take_effects())
    assert set(effects) == {a, b}
    assert effects[a].members and not effects[b].members  # only the leader gets the member list
    assert effects[a].leader_id == a == effects[b].leader_id
    generation = group.generation
    assert group.sync(3, member_id=b, group_instance_id=None, generation_id=generation, protocol_type=None,
                      protocol_name=None, assignments={}) is None  # parked until the leader syncs
    assert group.sync(4, member_id=a, group_instance_id=None, generation_id=generation,
                      protocol_type="consumer", protocol_name="range",
                      assignments={a: b"A", b: b"B"}) is None
    syncs = dict(group.take_effects().syncs)
    assert syncs[a].assignment == b"A" and syncs[b].assignment == b"B"
    assert group.state is S.STABLE
    # A late SyncGroup in Stable answers at once with the member's assignment.
    late = group.sync(5, member_id=b, group_instance_id=None, generation_id=generation, protocol_type=None,
                      protocol_name=None, assignments={})
    assert late.error == ErrorCode.none and late.assignment == b"B"


@pytest.mark.parametrize(("case", "member", "generation", "expected"), [
    ("ok", "a", 0, ErrorCode.none),
    ("unknown member", "zzz", 0, ErrorCode.unknown_member_id),
    ("old generation", "a", -1, ErrorCode.illegal_generation),
    ("future generation", "a", 1, ErrorCode.illegal_generation),
])
def test_heartbeat_table(case, member, generation, expected):
    group, (a,) = stable_group_of(1)
    member_id = a if member == "a" else member
    error = group.heartbeat(10, member_id=member_id, group_instance_id=None,
                            generation_id=group.generation + generation)
    assert error == expected, case


def test_heartbeat_during_rebalance_says_rebalance_in_progress():
    group, (a,) = stable_group_of(1)
    join_new(group, 10)
    assert group.state is S.PREPARING_REBALANCE
    assert group.heartbeat(11, member_id=a, group_instance_id=None,
                           generation_id=group.generation) == ErrorCode.rebalance_in_progress


def test_leave_triggers_rebalance_and_remaining_member_completes_it():
    group, (a, b) = stable_group_of(2)
    gen = group.generation
    assert group.leave(10, [(b, None)]) == [ErrorCode.none]
    assert group.state is S.PREPARING_REBALANCE
    assert join(group, 11, a).reply is None
    result = joins(group.take_effects())[a]
    assert result.generation_id == gen + 1 and result.leader_id == a
    assert set(group.members) == {a}


def test_leave_batch_v3_unknown_and_fenced():
    group = Group("g", 0)
    s = join(group, 0, instance="inst-1")
    group.take_effects()
    errors = group.leave(1, [("nobody", None), ("wrong-id", "inst-1"), ("", "no-such-instance")])
    assert errors == [ErrorCode.unknown_member_id, ErrorCode.fenced_instance_id, ErrorCode.unknown_member_id]
    assert group.leave(2, [("", "inst-1")]) == [ErrorCode.none]
    assert s.member_id not in group.members


def test_last_member_leaving_makes_group_empty_with_next_generation():
    group, (a,) = stable_group_of(1)
    gen = group.generation
    group.leave(10, [(a, None)])
    assert group.state is S.EMPTY and group.generation == gen + 1
    assert group.take_effects().store_group


def test_session_expiry_removes_member_and_rebalances():
    group, (a, b) = stable_group_of(2)
    # a heartbeats, b goes silent.
    assert group.heartbeat(SESSION - 1, member_id=a, group_instance_id=None,
                           generation_id=group.generation) == ErrorCode.none
    result = group.tick(SESSION)
    assert result.expired_members == (b,)
    assert group.state is S.PREPARING_REBALANCE
    assert join(group, SESSION + 1, a).reply is None
    assert joins(group.take_effects())[a].members[0].member_id == a


def test_rebalance_timeout_removes_members_that_did_not_rejoin():
    group, (a, b) = stable_group_of(2)
    join(group, 100, a)  # a's rejoin starts a rebalance (a is the leader)
    assert group.state is S.PREPARING_REBALANCE
    # b keeps heartbeating (so its session never expires) but never rejoins.
    for now in range(200, 100 + REBALANCE, 5000):
        assert group.heartbeat(now, member_id=b, group_instance_id=None,
                               generation_id=group.generation) == ErrorCode.rebalance_in_progress
        assert not group.tick(now).rebalance_completed
    assert not group.tick(100 + REBALANCE - 1).rebalance_completed
    assert group.tick(100 + REBALANCE).rebalance_completed
    effects = group.take_effects()
    assert joins(effects)[a].error == ErrorCode.none
    assert set(group.members) == {a} and group.state is S.COMPLETING_REBALANCE


def test_pending_member_id_blocks_early_completion_until_it_expires():
    group, (a,) = stable_group_of(1)
    pending = join(group, 10).member_id  # MEMBER_ID_REQUIRED, never rejoins
    join(group, 11, a)
    assert group.state is S.PREPARING_REBALANCE  # not complete: a member id is outstanding
    group.tick(10 + SESSION)  # the pending id expires, then everyone known has joined
    assert pending not in group.pending_members
    assert group.state is S.COMPLETING_REBALANCE


def test_initial_rebalance_delay_waits_for_more_members():
    group = Group("g", 0, initial_rebalance_delay_ms=3000)
    a = join_new(group, 0)
    assert group.state is S.PREPARING_REBALANCE
    b = join_new(group, 1000)
    assert not group.tick(2999).rebalance_completed
    assert not group.tick(3000).rebalance_completed  # b arrived during the delay: one more delay
    assert group.tick(6000).rebalance_completed
    assert set(joins(group.take_effects())) == {a, b}
    assert group.generation == 1


def test_inconsistent_protocols_are_rejected():
    group, _ = stable_group_of(1)
    other = join(group, 5, protocols=(("roundrobin", b""),))
    assert other.reply.error == ErrorCode.inconsistent_group_protocol
    wrong_type = join(group, 5, protocol_type="connect")
    assert wrong_type.reply.error == ErrorCode.inconsistent_group_protocol
    assert join(Group("h", 0), 0, protocols=()).reply.error == ErrorCode.inconsistent_group_protocol


def _member(mid, *names):
    return Member(mid, None, "c", "h", SESSION, REBALANCE, "consumer", tuple((n, b"") for n in names))


@pytest.mark.parametrize(("members", "expected"), [
    ([("range", "roundrobin")], "range"),
    ([("range", "roundrobin"), ("roundrobin", "range"), ("roundrobin", "range")], "roundrobin"),
    ([("cooperative-sticky", "range"), ("range",)], "range"),
    ([("a",), ("b",)], None),
    ([("x", "y"), ("y", "x")], "x"),  # a tie: the first member's order decides
])
def test_select_protocol_by_vote(members, expected):
    assert select_protocol([_member(str(i), *names) for i, names in enumerate(members)]) == expected


def test_static_member_rejoin_keeps_assignment_without_rebalance():
    group = Group("g", 0)
    s1 = join(group, 0, instance="i1")
    assert s1.reply is None
    group.take_effects()
    gen = group.generation
    group.sync(1, member_id=s1.member_id, group_instance_id="i1", generation_id=gen, protocol_type=None,
               protocol_name=None, assignments={s1.member_id: b"P0"})
    group.take_effects()
    # The process restarts: same instance id, no member id.
    again = join(group, 100, instance="i1")
    assert again.reply is not None and again.reply.error == ErrorCode.none
    assert again.reply.generation_id == gen and again.member_id != s1.member_id
    assert group.state is S.STABLE and group.leader_id == again.member_id
    assert group.sync(101, member_id=again.member_id, group_instance_id="i1", generation_id=gen,
                      protocol_type=None, protocol_name=None, assignments={}).assignment == b"P0"
    # The old incarnation is fenced.
    assert group.heartbeat(102, member_id=s1.member_id, group_instance_id="i1",
                           generation_id=gen) == ErrorCode.fenced_instance_id
    assert group.validate_offset_commit(s1.member_id, "i1", gen) == ErrorCode.fenced_instance_id


def test_static_member_rejoin_during_rebalance_fences_the_parked_old_join():
    group, (a,) = stable_group_of(1)
    s1 = join(group, 1, instance="i1").member_id  # a second, static member: a rebalance starts
    assert group.state is S.PREPARING_REBALANCE
    group.take_effects()
    s2 = join(group, 2, instance="i1")
    effects = group.take_effects()
    assert joins(effects)[s1].error == ErrorCode.fenced_instance_id
    assert s2.reply is None and group.static_members["i1"] == s2.member_id


@pytest.mark.parametrize(("state_setup", "member", "generation", "expected"), [
    ("empty", "", -1, ErrorCode.none),  # standalone consumer
    ("stable", "a", 0, ErrorCode.none),
    ("stable", "zzz", 0, ErrorCode.unknown_member_id),
    ("stable", "a", 7, ErrorCode.illegal_generation),
    ("completing", "a", 0, ErrorCode.rebalance_in_progress),
    ("preparing", "a", 0, ErrorCode.none),  # commits while revoking partitions are allowed
    ("dead", "a", 0, ErrorCode.coordinator_not_available),
])
def test_validate_offset_commit_table(state_setup, member, generation, expected):
    if state_setup == "empty":
        group, a = Group("g", 0), ""
    else:
        group, (a,) = stable_group_of(1)
        if state_setup == "completing":
            join(group, 1, a)
            group.take_effects()
            assert group.state is S.COMPLETING_REBALANCE
        elif state_setup == "preparing":
            join_new(group, 1)
            assert group.state is S.PREPARING_REBALANCE
        elif state_setup == "dead":
            group.shutdown(1, ErrorCode.not_coordinator)
    member_id = a if member == "a" else member
    gen = group.generation + generation if generation >= 0 else generation
    assert group.validate_offset_commit(member_id, None, gen) == expected


def test_shutdown_answers_parked_requests():
    group = Group("g", 0, initial_rebalance_delay_ms=1000)
    a = join_new(group, 0)
    group.shutdown(1, ErrorCode.not_coordinator)
    assert joins(group.take_effects())[a].error == ErrorCode.not_coordinator
    assert group.state is S.DEAD
    assert join(group, 2).reply.error == ErrorCode.coordinator_not_available


def test_metadata_round_trip_restores_a_stable_group():
    group, (a, b) = stable_group_of(2)
    value = group.to_metadata(wall_now_ms=123)
    assert value.generation == group.generation and value.protocol == "range"
    restored = Group("g", 0)
    restored.restore(500, value)
    assert restored.state is S.STABLE and restored.generation == group.generation
    assert restored.leader_id == group.leader_id
    assert {m: restored.members[m].assignment for m in (a, b)} == {a: a.encode(), b: b.encode()}
    assert restored.heartbeat(600, member_id=a, group_instance_id=None,
                              generation_id=group.generation) == ErrorCode.none
    # b never heartbeats to the new coordinator: its session runs from the load.
    assert restored.tick(500 + SESSION).expired_members == (b,)


def test_restore_of_empty_metadata_is_empty():
    group = Group("g", 0)
    group.restore(0, GroupMetadataValue("consumer", 4, None, None, 0, (
        MemberMetadata("m", None, "c", "h", 1, 1, b"", b""),)))
    assert group.state is S.EMPTY and group.generation == 4 and not group.members


def test_subscription_parsing():
    # ConsumerProtocolSubscription v0: version, topics ["a", "bb"], user data null.
    raw = b"\x00\x00" + b"\x00\x00\x00\x02" + b"\x00\x01a" + b"\x00\x02bb" + b"\xff\xff\xff\xff"
    assert parse_subscribed_topics(raw) == {"a", "bb"}
    assert parse_subscribed_topics(b"\x00") is None


def test_a_generation_with_members_is_stored_by_the_leaders_sync_not_by_the_join():
    """A record stored at join completion carries empty assignments: a coordinator that loaded it would
    answer that generation's SyncGroup Stable with nothing assigned (found in a chaos soak: the group
    record of a generation with 0-byte assignments). Only the leader's sync stores it, with them."""
    group, ids = stable_group_of(2)
    join(group, 10, ids[0])  # a rebalance: both rejoin
    join(group, 10, ids[1])
    effects = group.take_effects()
    assert group.state is S.COMPLETING_REBALANCE and not effects.store_group
    leader = group.leader_id
    assert group.sync(11, member_id=leader, group_instance_id=None, generation_id=group.generation,
                      protocol_type=None, protocol_name=None,
                      assignments={mid: b"a-" + mid.encode() for mid in ids}) is None
    effects = group.take_effects()
    assert effects.store_group and group.state is S.STABLE
    assert all(m.assignment for m in group.members.values())
