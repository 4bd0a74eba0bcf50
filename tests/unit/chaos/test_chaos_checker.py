"""The checker is itself tested: histories with an injected anomaly of each kind must be reported,
and clean histories (including legitimate re-delivery after a rebalance) must not be.

Method: build small histories by hand with `make_history`, then a Hypothesis property that generates
clean histories with rebalances, unknown outcomes and a drain, and checks nothing is reported.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.chaos.checker import (
    check,
    check_history,
    check_invariants,
    compare_prefixes,
    unrepaired_divergences,
)
from cluster.chaos.history import (
    DRAIN,
    History,
    Outcome,
    OutcomeKind,
    PartitionSample,
    Read,
    ReplicaSample,
    Send,
)


def make_history(acks: dict[str, tuple[int, int]], reads: list[tuple[str, int, int, int, str]],
                 unknown: tuple[str, ...] = (), failed: tuple[str, ...] = (),
                 drained: dict[int, int] | None = None) -> History:
    """acks: value -> (partition, offset); reads: (reader, assignment, partition, offset, value)."""
    h = History(partitions=(0, 1))
    t = 0.0
    for value in [*acks, *unknown, *failed]:
        t += 0.01
        h.send(Send(value, 0, t))
    for value, (p, o) in acks.items():
        h.outcome(Outcome(value, OutcomeKind.ok, t + 1, p, o))
    for value in unknown:
        h.outcome(Outcome(value, OutcomeKind.unknown, t + 1, error="_MSG_TIMED_OUT"))
    for value in failed:
        h.outcome(Outcome(value, OutcomeKind.failed, t + 1, error="_PURGE_QUEUE"))
    for reader, assignment, p, o, value in reads:
        h.read(Read(reader, assignment, p, o, value, t + 2))
    for p, hw in (drained or {}).items():
        h.drained(p, hw)
    return h


def kinds(result) -> dict[str, int]:  # noqa: ANN001
    return {k: v for k, v in result.counts().items() if v}


ACKS = {"a": (0, 0), "b": (0, 1), "c": (1, 0)}
DRAIN_ALL = [(DRAIN, 0, 0, 0, "a"), (DRAIN, 0, 0, 1, "b"), (DRAIN, 0, 1, 0, "c")]


def test_clean_history_has_no_anomaly():
    reads = [("r0", 1, 0, 0, "a"), ("r0", 1, 0, 1, "b"), ("r1", 1, 1, 0, "c"), *DRAIN_ALL]
    result = check(make_history(ACKS, reads, drained={0: 2, 1: 1}))
    assert result.ok, result.anomalies
    assert result.info["ok"] == 3 and result.info["unseen"] == 0


def test_lost_write_is_reported_after_a_finished_drain():
    reads = [r for r in DRAIN_ALL if r[4] != "b"]
    result = check_history(make_history(ACKS, reads, drained={0: 2, 1: 1}))
    assert kinds(result) == {"lost": 1}
    assert "b acked at partition 0 offset 1" in result.anomalies[0].detail


def test_lost_write_is_reported_when_a_later_offset_was_read_without_a_drain():
    acks = {**ACKS, "d": (0, 2)}
    reads = [("r0", 1, 0, 0, "a"), ("r0", 1, 0, 2, "d"), ("r0", 1, 1, 0, "c")]
    result = check_history(make_history(acks, reads))
    assert kinds(result) == {"lost": 1}
    assert "b acked" in result.anomalies[0].detail


def test_unread_ack_without_drain_or_later_read_is_unverified_not_lost():
    reads = [("r0", 1, 0, 0, "a"), ("r0", 1, 1, 0, "c")]
    result = check_history(make_history(ACKS, reads))
    assert result.ok
    assert result.info["unverified"] == 1


def test_duplicate_value_at_two_offsets_is_reported():
    acks = {"a": (0, 0), "b": (0, 1)}
    reads = [(DRAIN, 0, 0, 0, "a"), (DRAIN, 0, 0, 1, "b"), (DRAIN, 0, 0, 2, "a")]
    result = check_history(make_history(acks, reads, drained={0: 3}))
    assert kinds(result) == {"duplicate": 1}
    assert "a read at 0@0, 0@2" in result.examples()["duplicate"][0]


def test_inconsistent_offset_is_reported():
    reads = [("r0", 1, 0, 0, "a"), ("r0", 1, 0, 1, "b"), ("r1", 1, 1, 0, "c"),
             (DRAIN, 0, 0, 0, "a"), (DRAIN, 0, 0, 1, "x"), (DRAIN, 0, 1, 0, "c")]
    h = make_history(ACKS, reads, unknown=("x",), drained={0: 2, 1: 1})
    result = check_history(h)
    # b's acknowledged offset holds x in the drain: also an acked-offset mismatch.
    assert kinds(result) == {"inconsistent_offset": 1, "acked_offset_mismatch": 1}
    assert "partition 0 offset 1 read as ['b', 'x']" in result.examples()["inconsistent_offset"][0]


def test_acked_offset_mismatch_is_reported():
    reads = [(DRAIN, 0, 0, 0, "a"), (DRAIN, 0, 0, 2, "b"), (DRAIN, 0, 1, 0, "c")]
    result = check_history(make_history(ACKS, reads, drained={0: 3, 1: 1}))
    assert kinds(result) == {"acked_offset_mismatch": 1}
    assert "b acked at 0@1 but read at 0@2" in result.anomalies[0].detail


def test_non_monotonic_within_one_assignment_is_reported():
    reads = [("r0", 1, 0, 0, "a"), ("r0", 1, 0, 1, "b"), ("r0", 1, 0, 0, "a"), *DRAIN_ALL]
    result = check_history(make_history(ACKS, reads, drained={0: 2, 1: 1}))
    assert kinds(result) == {"non_monotonic": 1}
    assert "offset 0 after offset 1" in result.anomalies[0].detail


def test_redelivery_after_a_rebalance_is_not_an_anomaly():
    reads = [("r0", 1, 0, 0, "a"), ("r0", 1, 0, 1, "b"),
             ("r0", 3, 0, 0, "a"), ("r0", 3, 0, 1, "b"),     # r0 was revoked (2) and re-assigned (3)
             ("r1", 2, 0, 1, "b"), *DRAIN_ALL]              # r1 had partition 0 in between
    assert check_history(make_history(ACKS, reads, drained={0: 2, 1: 1})).ok


def test_unknown_outcome_never_read_is_unseen_not_an_anomaly():
    result = check_history(make_history(ACKS, DRAIN_ALL, unknown=("u",), drained={0: 2, 1: 1}))
    assert result.ok
    assert result.info["unseen"] == 1 and result.info["unknown"] == 1


def test_failed_write_that_was_read_is_reported():
    reads = [*DRAIN_ALL, (DRAIN, 0, 1, 1, "f")]
    result = check_history(make_history(ACKS, reads, failed=("f",), drained={0: 2, 1: 2}))
    assert kinds(result) == {"failed_but_read": 1}


def test_value_never_sent_is_a_phantom_read():
    result = check_history(make_history(ACKS, [*DRAIN_ALL, (DRAIN, 0, 1, 1, "zzz")], drained={0: 2, 1: 2}))
    assert kinds(result) == {"phantom_read": 1}


def test_ok_outcome_wins_over_an_earlier_unknown_report_of_the_same_value():
    h = make_history(ACKS, DRAIN_ALL, drained={0: 2, 1: 1})
    h.outcome(Outcome("a", OutcomeKind.unknown, 0.5, error="_MSG_TIMED_OUT"))
    result = check_history(h)
    assert result.ok and result.info["ok"] == 3


@st.composite
def clean_histories(draw):  # noqa: ANN001, ANN201
    """Acked writes at contiguous offsets, unknown writes (read or not), and a group whose readers
    re-read from an earlier committed offset after each rebalance, then a full drain."""
    partitions = draw(st.integers(1, 3))
    logs: dict[int, list[str]] = {p: [] for p in range(partitions)}
    acks: dict[str, tuple[int, int]] = {}
    unknown: list[str] = []
    for i in range(draw(st.integers(0, 30))):
        value = f"v{i}"
        fate = draw(st.sampled_from(["ok", "ok", "unknown-written", "unknown-lost"]))
        if fate == "unknown-lost":
            unknown.append(value)
            continue
        p = draw(st.integers(0, partitions - 1))
        logs[p].append(value)
        if fate == "ok":
            acks[value] = (p, len(logs[p]) - 1)
        else:
            unknown.append(value)
    reads: list[tuple[str, int, int, int, str]] = []
    for p, log in logs.items():
        assignment, position = 0, 0
        while position < len(log):
            assignment += 1
            reader = draw(st.sampled_from(["r0", "r1"]))
            end = draw(st.integers(position + 1, len(log)))
            reads += [(reader, assignment, p, o, log[o]) for o in range(position, end)]
            position = draw(st.integers(max(0, position - 2), end))   # a rebalance re-delivers a little
    reads += [(DRAIN, 0, p, o, v) for p, log in logs.items() for o, v in enumerate(log)]
    return make_history(acks, reads, unknown=tuple(unknown), drained={p: len(log) for p, log in logs.items()})


@settings(max_examples=200, deadline=None)
@given(clean_histories())
def test_clean_histories_have_no_anomalies(history):  # noqa: ANN001
    result = check(history)
    assert result.ok, result.anomalies


# -- invariants ------------------------------------------------------------------------------------


def replica(t: float, broker: int, pid: int, leader: bool, epoch: int, hw: int, leo: int,
            isr: tuple[int, ...] = (101, 102, 103)) -> ReplicaSample:
    return ReplicaSample(t, broker, pid, "t", 0, leader, epoch, 0, leo, hw, isr if leader else ())


def partition(t: float, leader: int, epoch: int, isr: tuple[int, ...] = (101, 102, 103)) -> PartitionSample:
    return PartitionSample(t, "t", 0, leader, epoch, (101, 102, 103), isr)


def invariant_kinds(replicas, partitions=()) -> dict[str, int]:  # noqa: ANN001
    out: dict[str, int] = {}
    for a in check_invariants(replicas, list(partitions)):
        out[a.kind] = out.get(a.kind, 0) + 1
    return out


def test_clean_samples_have_no_anomaly():
    samples = [replica(1, 101, 7, True, 1, 5, 6), replica(1, 102, 8, False, 1, 5, 6),
               replica(2, 102, 8, True, 2, 6, 7), replica(2, 101, 9, False, 2, 3, 6)]   # 101 restarted: new pid
    assert invariant_kinds(samples, [partition(1, 101, 1), partition(2, 102, 2, (101, 102))]) == {}


def test_two_leaders_in_one_epoch_are_reported_from_brokers_and_from_the_controller():
    assert invariant_kinds([replica(1, 101, 7, True, 3, 5, 5), replica(1.5, 102, 8, True, 3, 5, 5)]) == \
        {"two_leaders_one_epoch": 1}
    assert invariant_kinds([replica(1, 101, 7, True, 3, 5, 5)], [partition(1, 102, 3)]) == \
        {"two_leaders_one_epoch": 1}


def test_hw_decrease_within_one_process_is_reported():
    samples = [replica(1, 101, 7, False, 1, 9, 9), replica(2, 101, 7, False, 1, 4, 9)]
    assert invariant_kinds(samples) == {"hw_decreased": 1}


def test_hw_restarts_for_a_replica_a_reassignment_removed_and_added_back():
    """Only a removal in between resets the replica: without one the same drop is an anomaly."""
    samples = [replica(1, 101, 7, False, 1, 9, 9), replica(4, 101, 7, False, 1, 0, 0)]
    moved = [PartitionSample(0.5, "t", 0, 102, 1, (101, 102, 103), (101, 102, 103)),
             PartitionSample(2, "t", 0, 102, 1, (102, 103), (102, 103)),
             PartitionSample(3, "t", 0, 102, 1, (102, 103, 101), (102, 103))]
    assert invariant_kinds(samples, moved) == {}
    kept = [PartitionSample(t, "t", 0, 102, 1, (101, 102, 103), (102, 103)) for t in (0.5, 2, 3)]
    assert invariant_kinds(samples, kept) == {"hw_decreased": 1}


def test_hw_above_log_end_is_reported():
    assert invariant_kinds([replica(1, 101, 7, False, 1, 10, 9)]) == {"hw_above_log_end": 1}


def test_isr_outside_replicas_and_leader_outside_isr_are_reported():
    bad_isr = PartitionSample(1, "t", 0, 101, 1, (101, 102, 103), (101, 104))
    outside = partition(1, 103, 2, (101, 102))
    assert invariant_kinds([], [bad_isr, outside]) == {"isr_not_subset": 2}
    assert invariant_kinds([replica(1, 101, 7, True, 1, 5, 5, (101, 105))], [partition(1, 101, 1)]) == \
        {"isr_not_subset": 1}


def test_truncation_tripwire_above_zero_is_truncation_incomplete():
    """A broker's tripwire counter above 0 in any sample is one anomaly per broker process and
    partition, timed at the first such sample; counters of 0 are clean."""
    clean = [replica(1, 101, 7, True, 4, 5, 6), replica(1, 102, 8, False, 4, 5, 6)]
    assert invariant_kinds(clean) == {}
    tripped = ReplicaSample(3.5, 102, 8, "t", 1, False, 4, 0, 20, 18, (), 1)
    again = ReplicaSample(4.0, 102, 8, "t", 1, False, 5, 0, 22, 20, (), 2)
    found = check_invariants(clean + [again, tripped], [])
    assert [a.kind for a in found] == ["truncation_incomplete"]
    assert found[0].time_s == 3.5
    assert "broker 102 (pid 8) t-1" in found[0].detail and "2 time(s)" in found[0].detail
    restarted = ReplicaSample(9.0, 102, 9, "t", 1, False, 6, 0, 22, 20, (), 1)  # a new process counts anew
    assert invariant_kinds(clean + [tripped, again, restarted]) == {"truncation_incomplete": 2}


def test_truncation_tripwire_counts_of_a_process_from_before_the_faults_are_its_baseline():
    """A process sampled before the faults started (an adopted cluster) may carry trips of an earlier
    run: only a rise above what it showed then counts. A process first seen after the faults started
    counts from 0. The final read after the sweep counts like any sample."""
    old = ReplicaSample(0.5, 101, 7, "t", 0, False, 3, 0, 10, 10, (), 2)      # before the faults (at 1.0)
    same = ReplicaSample(5.0, 101, 7, "t", 0, False, 3, 0, 12, 12, (), 2)
    assert check_invariants([old, same], [], fault_start_s=1.0) == []
    rose = ReplicaSample(6.0, 101, 7, "t", 0, False, 4, 0, 14, 14, (), 3)
    (found,) = check_invariants([old, same, rose], [], fault_start_s=1.0)
    assert found.kind == "truncation_incomplete" and found.time_s == 6.0 and "1 time(s)" in found.detail
    late = ReplicaSample(7.0, 102, 9, "t", 0, False, 4, 0, 14, 14, (), 1)     # first seen during the faults
    assert [a.kind for a in check_invariants([late], [], fault_start_s=1.0)] == ["truncation_incomplete"]
    final = ReplicaSample(90.0, 103, 4, "t", 2, False, 4, 0, 14, 14, (), 1)   # read after the sweep
    assert [a.kind for a in check_invariants([], [], fault_start_s=1.0, final=[final])] == ["truncation_incomplete"]
    history = make_history(ACKS, DRAIN_ALL, drained={0: 2, 1: 1})
    history.fault_start_s, history.final_replica_samples = 1.0, [final]
    assert [a.kind for a in check(history).anomalies] == ["truncation_incomplete"]


def test_truncation_incomplete_is_counted_and_shown_in_the_report():
    from cluster.chaos.report import Report

    history = make_history(ACKS, DRAIN_ALL, drained={0: 2, 1: 1})
    history.samples(replicas=[ReplicaSample(2.0, 103, 11, "t", 0, False, 3, 0, 2, 2, (), 1)])
    result = check(history)
    assert kinds(result) == {"truncation_incomplete": 1}
    report = Report(seed=1, scenario="random", duration_s=10.0, target="local", topic="t", result=result)
    text = report.to_text()
    assert "truncation_incomplete 1" in text and "broker 103 (pid 11) t-0" in text
    assert report.exit_code == 1 and report.to_dict()["anomalies"]["truncation_incomplete"] == 1


def test_sampler_records_the_tripwire_counter_of_each_replica():
    """The sampler's mapping of a ReplicaStates answer (without its threads and channels)."""
    from types import SimpleNamespace

    from brookpb import broker_pb2 as bpb
    from cluster.chaos.sampler import Sampler

    sampler = Sampler.__new__(Sampler)
    sampler.history, sampler.errors = History(), 0
    sampler.incarnation, sampler.clock = (lambda broker_id: 42), (lambda: 1.5)
    reply = bpb.ReplicaStateResponse(broker_id=102)
    reply.replicas.add(topic="t", partition=0, leader_epoch=4, log_end_offset=9, high_watermark=9)
    reply.replicas.add(topic="t", partition=1, leader_epoch=4, log_end_offset=9, high_watermark=9,
                       divergences_after_truncation=3)
    sampler._sample_broker(102, SimpleNamespace(replica_states=lambda: reply))  # type: ignore[arg-type]
    assert [(s.broker_id, s.incarnation, s.partition, s.divergences_after_truncation)
            for s in sampler.history.replica_samples] == [(102, 42, 0, 0), (102, 42, 1, 3)]
    assert [a.kind for a in check_invariants(sampler.history.replica_samples, [])] == ["truncation_incomplete"]


def test_prefix_mismatch_names_the_first_difference():
    same = {101: b"abc", 102: b"abc", 103: b"abc"}
    assert compare_prefixes("t", 0, same, 3) == []
    decoded = {101: [(0, b"a"), (1, b"b")], 102: [(0, b"a"), (1, b"X")]}
    found = compare_prefixes("t", 0, {101: b"ab", 102: b"aX"}, 2, decoded)
    assert [a.kind for a in found] == ["prefix_mismatch"]
    assert "first difference at offset 1" in found[0].detail



@pytest.mark.parametrize("copy,expected", [
    ([(0, b"a"), (1, b"b")], []),                          # a lagging copy: a prefix of the leader's
    ([(0, b"a"), (1, b"b"), (2, b"c")], []),                # converged but for its HW
    ([(0, b"a"), (1, b"X")], ["unrepaired_divergence"]),    # another record below the leader's HW
    ([(0, b"a"), (1, b"b"), (2, b"c"), (3, b"Y")], []),     # a stale tail above the leader's HW: not judged
    ([], []),
])
def test_unrepaired_divergence_is_a_copy_that_disagrees_below_the_leaders_hw(copy, expected):
    """Replicas that did not converge after the heal: broker 102's copy against leader 101's (HW 3)."""
    leader = [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]
    found = unrepaired_divergences("t", 0, {101: leader, 102: copy}, 101, 3)
    assert [a.kind for a in found] == expected
    if found:
        assert "broker 102 holds b'X' at offset 1" in found[0].detail


# -- the replica sweep, the acks=1 writer, unclean elections (issue 15) ---------------------------------

def test_sweep_finds_an_acknowledged_write_missing_from_one_copy():
    """Broker 102's copy (read while it led alone) lacks b at 0@1: lost_on_replica, although the
    final drain (from another leader) read everything."""
    reads = [*DRAIN_ALL, ("sweep-101", 0, 0, 0, "a"), ("sweep-101", 0, 0, 1, "b"), ("sweep-101", 0, 1, 0, "c"),
             ("sweep-102", 0, 0, 0, "a"), ("sweep-102", 0, 1, 0, "c")]
    h = make_history(ACKS, reads, drained={0: 2, 1: 1})
    for reader in ("sweep-101", "sweep-102"):
        h.drained(0, 2, reader)
        h.drained(1, 1, reader)
    result = check_history(h)
    assert kinds(result) == {"lost_on_replica": 1}
    assert "sweep-102" in result.anomalies[0].detail and "b acked at partition 0 offset 1" in result.anomalies[0].detail


def test_sweep_reading_identical_copies_is_clean():
    reads = [*DRAIN_ALL] + [(f"sweep-{b}", 0, p, o, v) for b in (101, 102) for _, _, p, o, v in DRAIN_ALL]
    h = make_history(ACKS, reads, drained={0: 2, 1: 1})
    for b in (101, 102):
        h.drained(0, 2, f"sweep-{b}")
        h.drained(1, 1, f"sweep-{b}")
    assert check(h).ok


def _unclean_replaced_history(copies: dict[int, str], drain: str, unclean: bool) -> History:
    """Soak 201's shape: b acknowledged (acks=all) at 0@1 and read there by a group reader; an unclean
    election then gave 0@1 to the acks=1 writer's x in the surviving log (`drain` is what the final
    drain read at 0@1); `copies` is what each broker's sweep read at 0@1."""
    reads = [("r0", 1, 0, 1, "b"), (DRAIN, 0, 0, 0, "a"), (DRAIN, 0, 0, 1, drain), (DRAIN, 0, 1, 0, "c")]
    for broker, value in copies.items():
        reads += [(f"sweep-{broker}", 0, 0, 0, "a"), (f"sweep-{broker}", 0, 0, 1, value),
                  (f"sweep-{broker}", 0, 1, 0, "c")]
    h = make_history(ACKS, reads, drained={0: 2, 1: 1})
    for value in {drain, *copies.values()} - {"b"}:
        h.send(Send(value, 9, 0.5, acks=1))
    for broker in copies:
        h.drained(0, 2, f"sweep-{broker}")
        h.drained(1, 1, f"sweep-{broker}")
    if unclean:
        h.unclean_since[0] = 1.5
    return h


@pytest.mark.parametrize(("copies", "drain", "unclean", "expected"), [
    # every copy and the drain agree on x: the unclean election replaced b cluster-wide (soak 201)
    ({101: "x", 102: "x", 103: "x"}, "x", True, {}),
    # the same without an unclean election: b lost from every replica
    ({101: "x", 102: "x", 103: "x"}, "x", False, {"lost_on_replica": 3, "acked_offset_mismatch": 1}),
    # after an unclean election one copy still differs from the surviving log: a diverged replica
    ({101: "y", 102: "x", 103: "x"}, "x", True, {"lost_on_replica": 1}),
])
def test_sweep_after_an_unclean_election_flags_only_copies_that_differ_from_the_surviving_log(
        copies: dict[int, str], drain: str, unclean: bool, expected: dict[str, int]) -> None:
    result = check_history(_unclean_replaced_history(copies, drain, unclean))
    assert {k: v for k, v in kinds(result).items() if k != "inconsistent_offset"} == expected, result.anomalies
    if not expected:
        assert result.info["unclean_swept_replaced"] == len(copies)


def test_sweep_short_copy_after_an_unclean_election_is_flagged() -> None:
    h = _unclean_replaced_history({101: "x", 102: "x"}, "x", True)
    h.reads[:] = [r for r in h.reads if not (r.reader == "sweep-101" and r.offset == 1)]
    result = check_history(h)
    assert kinds(result) == {"lost_on_replica": 1}
    assert "sweep-101" in result.anomalies[0].detail and "has nothing there" in result.anomalies[0].detail


def test_weak_writer_losses_are_allowed_but_its_records_still_expose_divergence():
    h = make_history(ACKS, DRAIN_ALL, drained={0: 2, 1: 1})
    h.send(Send("w1", 9, 0.5, acks=1))
    h.outcome(Outcome("w1", OutcomeKind.ok, 0.6, 0, 2))   # acks=1, acknowledged, then lost: allowed
    h.drained(0, 3)
    result = check_history(h)
    assert result.ok and result.info["weak_lost"] == 1
    h.send(Send("w2", 9, 0.7, acks=1))
    h.read(Read("r0", 1, 0, 1, "w2", 3.0))                # but 0@1 read as b and as w2: a divergence
    assert kinds(check_history(h)) == {"inconsistent_offset": 1, "acked_offset_mismatch": 1}


def test_after_an_unclean_election_only_unacknowledged_records_may_change():
    """An unclean election may replace records one replica had (never acknowledged with acks=all):
    counted, not flagged. An acknowledged one replaced is still an anomaly."""
    h = make_history(ACKS, [*DRAIN_ALL, ("r0", 1, 0, 2, "x")], drained={0: 3, 1: 1})
    h.send(Send("x", 0, 0.1))
    h.send(Send("y", 0, 0.1))
    h.read(Read(DRAIN, 0, 0, 2, "y", 5.0))
    assert kinds(check_history(h)) == {"inconsistent_offset": 1}
    h.unclean_since[0] = 1.0
    result = check_history(h)
    assert result.ok and result.info["unclean_inconsistent_offset"] == 1
    h.read(Read("r1", 1, 0, 1, "y", 0.5))                 # read at 0@1 before b was acknowledged there
    result = check_history(h)
    assert result.ok and result.info["unclean_acked_position_reread"] == 1
    h.read(Read(DRAIN, 0, 0, 1, "y", 5.0))
    h.reads[:] = [r for r in h.reads if not (r.value == "b")]   # the acknowledged b at 0@1 gone
    assert "lost" in kinds(check_history(h))


def test_ack_without_offset_is_checked_by_value():
    h = make_history({"a": (0, 0)}, [(DRAIN, 0, 0, 0, "a")], drained={0: 2})
    h.send(Send("d", 0, 0.1))
    h.outcome(Outcome("d", OutcomeKind.ok, 1.0, 0, -1))
    assert kinds(check_history(h)) == {"lost": 1}
    h.read(Read(DRAIN, 0, 0, 1, "d", 3.0))
    result = check_history(h)
    assert result.ok and result.info["acked_without_offset"] == 1


# -- idempotent batches: a duplicate within one producer epoch vs a re-send after an epoch bump --------

def _duplicate_history(batches: list[tuple[int, int, int, int, int]]) -> History:
    """Value a acknowledged at 0@2 and also read at 0@0 (b at 0@1); `batches` as the log holds them."""
    acks = {"a": (0, 2), "b": (0, 1)}
    reads = [(DRAIN, 0, 0, 0, "a"), (DRAIN, 0, 0, 1, "b"), (DRAIN, 0, 0, 2, "a")]
    h = make_history(acks, reads, drained={0: 3})
    h.idempotent_batches = {0: batches}
    return h


def test_duplicate_under_a_new_producer_epoch_is_info_not_an_anomaly():
    # producer 7 wrote a at 0 (epoch 3, seq 0) and b at 1 (seq 1), then bumped its epoch and re-sent a.
    h = _duplicate_history([(0, 0, 7, 3, 0), (1, 1, 7, 3, 1), (2, 2, 7, 4, 0)])
    result = check(h)
    assert result.ok, result.anomalies
    assert result.info["duplicate_new_producer_epoch"] == 1


def test_duplicate_within_one_producer_epoch_is_an_anomaly():
    # the same batch (producer 7, epoch 3, sequence 0) stored twice: de-duplication failed.
    h = _duplicate_history([(0, 0, 7, 3, 0), (1, 1, 7, 3, 1), (2, 2, 7, 3, 0)])
    result = check(h)
    assert kinds(result) == {"duplicate": 1, "duplicate_sequence": 1}
    assert "producer 7 epoch 3 sequence 0 stored at offsets 0 and 2" in result.examples()["duplicate_sequence"][0]


def test_duplicate_without_batch_information_stays_an_anomaly():
    # a copy above the compared HW (or a non-idempotent batch): nothing excuses it.
    assert kinds(check(_duplicate_history([(0, 0, 7, 3, 0), (1, 1, 7, 3, 1)]))) == {"duplicate": 1}
    assert kinds(check(_duplicate_history([(0, 0, 7, 3, 0), (1, 1, 7, 3, 1), (2, 2, 8, 4, 0)]))) == {"duplicate": 1}
