"""The chaos checker: pure functions from a `History` to a list of anomalies.

What it proves about the workload (values are unique per run, so every value names one send):

    lost                  acknowledged (ok at partition/offset), never read, although the final drain
                          of that partition finished (or, without a drain, a later offset was read)
    lost_on_replica       acknowledged, but missing from (or elsewhere in) one broker's copy when the
                          replica sweep made that broker the only leader and read it to its end (after
                          an unclean election of the partition, a copy holding there what the final
                          drain read is the surviving log, not a diverged copy: info
                          `unclean_swept_replaced`)
    duplicate             one value read at two different (partition, offset) positions
    inconsistent_offset   one (partition, offset) read with two different values
    acked_offset_mismatch the acknowledgement said (p, o) but the value was read elsewhere, or (p, o)
                          holds another value
    non_monotonic         a group consumer's offsets for a partition did not increase within one
                          uninterrupted assignment (a rebalance legitimately re-delivers, so only
                          reads between two rebalances of one consumer are compared)
    failed_but_read       a send that certainly failed (never sent) was read
    phantom_read          a value that was never sent was read

and about the replicas (sampled during the run, compared after the heal):

    two_leaders_one_epoch  two brokers led one partition in one leader epoch (broker or controller view)
    hw_decreased           a replica's high watermark went down within one broker process (a replica
                           that a reassignment removed and added back is a new replica: its HW restarts)
    hw_above_log_end       a replica reported HW > its log end offset
    isr_not_subset         an ISR member that is not a replica, or a leader outside its ISR
    prefix_mismatch        replicas differ below the smallest high watermark after the heal
    unrepaired_divergence  replicas did not converge after the heal, and one holds below the leader's
                           high watermark a record other than the leader's at that offset: a diverged
                           copy its truncation never repaired
    duplicate_sequence     one idempotent batch (producer id, producer epoch, base sequence) stored
                           twice in a partition's log: the broker's de-duplication failed
    truncation_incomplete  a broker's safety-net tripwire fired for a replica: its leader reported a
                           divergence (KIP-320) after the replica had finished truncating against that
                           leader and epoch (KIP-279), which a correct build never does; the second
                           defence repaired the log, so no write need be lost (one per broker process
                           and partition)

A value of an idempotent writer read at two positions is a `duplicate` unless the two copies are in
batches of the same producer id with different producer epochs: librdkafka re-sends a possibly
persisted message after bumping its producer epoch (KIP-360; librdkafka issue 4953), which Kafka's
idempotence does not de-duplicate either (counted as info `duplicate_new_producer_epoch`).

Informational, never an anomaly: unseen (unknown outcome, never read), unknown_but_read,
unverified (acknowledged, not read, and no finished drain of its partition to judge by).

Writes of the acks=1 writer (`Send.acks == 1`) promise nothing: their loss, duplication or move is
not an anomaly (counted as info `weak_lost`, `weak_moved`). They still take part in every position
check: two different values read at one (partition, offset) is always `inconsistent_offset`.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cluster.chaos.history import (
    DRAIN,
    History,
    Outcome,
    OutcomeKind,
    PartitionSample,
    ReplicaSample,
    is_group_reader,
)

__all__ = [
    "ANOMALY_KINDS",
    "Anomaly",
    "CheckResult",
    "check",
    "check_history",
    "check_invariants",
    "check_truncation_tripwire",
    "compare_prefixes",
    "unrepaired_divergences",
]

HISTORY_KINDS = (
    "lost",
    "lost_on_replica",
    "duplicate",
    "inconsistent_offset",
    "acked_offset_mismatch",
    "non_monotonic",
    "failed_but_read",
    "phantom_read",
)
INVARIANT_KINDS = (
    "two_leaders_one_epoch",
    "hw_decreased",
    "hw_above_log_end",
    "isr_not_subset",
    "prefix_mismatch",
    "duplicate_sequence",
    "unrepaired_divergence",
    "truncation_incomplete",
)
ANOMALY_KINDS = HISTORY_KINDS + INVARIANT_KINDS
# Evidence items kept per anomaly kind in a report (the counts are always complete).
EXAMPLES_PER_KIND_MAX = 20

Position = tuple[int, int]  # (partition, offset)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """`time_s`: when its first evidence happened (seconds from the run start; -1: only at the end).
    For a lost or moved acknowledged write that is the acknowledgement: the loss came after it."""

    kind: str
    detail: str
    time_s: float = -1.0


@dataclass
class CheckResult:
    anomalies: list[Anomaly] = field(default_factory=list)
    info: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {kind: 0 for kind in ANOMALY_KINDS}
        for a in self.anomalies:
            out[a.kind] = out.get(a.kind, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return not self.anomalies

    def examples(self, per_kind: int = EXAMPLES_PER_KIND_MAX) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for a in self.anomalies:
            if len(out[a.kind]) < per_kind:
                out[a.kind].append(a.detail)
        return dict(out)


def check(history: History, prefixes: Iterable[Anomaly] = ()) -> CheckResult:
    """Everything: the history checks, the sampled invariants and the given prefix anomalies."""
    result = check_history(history)
    result.anomalies += check_invariants(history.replica_samples, history.partition_samples,
                                         history.unclean_since, result.info, history.fault_start_s,
                                         history.final_replica_samples)
    result.anomalies += list(prefixes)
    result.anomalies += check_batches(history.idempotent_batches)
    return result


def check_batches(batches: Mapping[int, Sequence[tuple[int, int, int, int, int]]]) -> list[Anomaly]:
    """`duplicate_sequence`: an idempotent batch (producer id, epoch, base sequence) stored twice in
    one partition. `batches`: partition -> (base offset, last offset, producer id, epoch, base sequence)."""
    anomalies: list[Anomaly] = []
    for partition, items in sorted(batches.items()):
        first: dict[tuple[int, int, int], int] = {}
        for base, _, producer_id, epoch, sequence in items:
            key = (producer_id, epoch, sequence)
            if key in first:
                anomalies.append(Anomaly("duplicate_sequence", f"partition {partition}: producer {producer_id} epoch "
                                                               f"{epoch} sequence {sequence} stored at offsets "
                                                               f"{first[key]} and {base}"))
            else:
                first[key] = base
    return anomalies


def _producer_epoch_at(batches: Mapping[int, Sequence[tuple[int, int, int, int, int]]],
                       position: Position) -> tuple[int, int] | None:
    """(producer id, producer epoch) of the idempotent batch holding `position`, None if unknown."""
    items = batches.get(position[0])
    if not items:
        return None
    i = bisect.bisect_right(items, (position[1], float("inf"))) - 1
    if i >= 0 and items[i][0] <= position[1] <= items[i][1]:
        return items[i][2], items[i][3]
    return None


def _new_producer_epoch(batches: Mapping[int, Sequence[tuple[int, int, int, int, int]]],
                        where: Iterable[Position]) -> bool:
    """Every copy is in a batch of one producer id, each under a different producer epoch."""
    owners = [_producer_epoch_at(batches, w) for w in where]
    if any(o is None for o in owners):
        return False
    return len({o[0] for o in owners if o}) == 1 and len({o[1] for o in owners if o}) == len(owners)


# -- history ---------------------------------------------------------------------------------------


def _positions(history: History) -> tuple[dict[str, set[Position]], dict[Position, set[str]]]:
    by_value: dict[str, set[Position]] = defaultdict(set)
    by_position: dict[Position, set[str]] = defaultdict(set)
    for r in history.reads:
        by_value[r.value].add((r.partition, r.offset))
        by_position[(r.partition, r.offset)].add(r.value)
    return by_value, by_position


def check_history(history: History) -> CheckResult:
    """The workload checks (see the module doc)."""
    by_value, by_position = _positions(history)
    weak = _weak_values(history)
    final = _final_outcomes(history)
    first_read: dict[tuple[Position, str], float] = {}
    for r in history.reads:
        key = ((r.partition, r.offset), r.value)
        first_read[key] = min(first_read.get(key, r.time_s), r.time_s)
    unclean = history.unclean_since
    result = CheckResult()
    anomalies = result.anomalies
    info = result.info

    def excuse(kind: str) -> None:
        info[kind] = info.get(kind, 0) + 1

    for value, where in sorted(by_value.items()):
        if len(where) > 1:
            outcome = final.get(value)
            at = (outcome.partition, outcome.offset) if outcome is not None and outcome.kind is OutcomeKind.ok else None
            if value in weak:
                excuse("weak_duplicate")
            elif any(p in unclean for p, _ in where) and (at is None or at in where):
                excuse("unclean_duplicate")
            elif _new_producer_epoch(history.idempotent_batches, where):
                excuse("duplicate_new_producer_epoch")
            else:
                anomalies.append(Anomaly("duplicate", f"{value} read at {_fmt(where)}",
                                         max(first_read[(w, value)] for w in where)))
    for position, values in sorted(by_position.items()):
        if len(values) > 1:
            promised = [v for v in values if v not in weak and (o := final.get(v)) is not None
                        and o.kind is OutcomeKind.ok and (o.partition, o.offset) == position]
            if position[0] in unclean and len(promised) <= 1:
                excuse("unclean_inconsistent_offset")
                continue
            anomalies.append(Anomaly("inconsistent_offset",
                                     f"partition {position[0]} offset {position[1]} read as {sorted(values)}",
                                     sorted(first_read[(position, v)] for v in values)[1]))
    anomalies += _check_outcomes(history, by_value, by_position, result.info, weak)
    anomalies += _check_monotonic(history, info)
    anomalies += _check_sweep(history, weak, info)
    return result


def _weak_values(history: History) -> frozenset[str]:
    """Values of acks=1 sends: no promise about them."""
    return frozenset(s.value for s in history.sends if s.acks != -1)


def _check_sweep(history: History, weak: frozenset[str], info: dict[str, int] | None = None) -> list[Anomaly]:
    """Every acknowledged (acks=all) value below the HW a sweep read to is in that broker's copy at its
    acknowledged offset: a diverged or short copy is found even if no consumer would read it today.

    After an unclean election of the partition, a copy that holds at the acknowledged offset the same
    value the final drain read there is not a diverged replica: the election replaced the write in the
    surviving log itself (counted as info `unclean_swept_replaced`; `_check_outcomes` judges the value)."""
    anomalies: list[Anomaly] = []
    if not history.swept_to:
        return anomalies
    info = {} if info is None else info
    final = _final_outcomes(history)
    seen: dict[str, dict[Position, str]] = defaultdict(dict)
    values: dict[str, set[str]] = defaultdict(set)
    drained: dict[Position, set[str]] = defaultdict(set)
    for r in history.reads:
        if r.reader in history.swept_to:
            seen[r.reader][(r.partition, r.offset)] = r.value
            values[r.reader].add(r.value)
        elif r.reader == DRAIN:
            drained[(r.partition, r.offset)].add(r.value)
    for reader, highs in sorted(history.swept_to.items()):
        copy = seen.get(reader, {})
        for value, outcome in sorted(final.items()):
            if outcome.kind is not OutcomeKind.ok or value in weak:
                continue
            high = highs.get(outcome.partition)
            if high is None or outcome.offset >= high:
                continue
            if outcome.offset < 0:  # acknowledged without an offset: it must be somewhere in the copy
                if value not in values[reader]:
                    anomalies.append(Anomaly("lost_on_replica", f"{value} acked (no offset) in partition "
                                                                f"{outcome.partition}: not in {reader}'s copy",
                                                                outcome.time_s))
                continue
            there = copy.get((outcome.partition, outcome.offset))
            if (there is not None and there != value and outcome.partition in history.unclean_since
                    and drained.get((outcome.partition, outcome.offset)) == {there}):
                info["unclean_swept_replaced"] = info.get("unclean_swept_replaced", 0) + 1
                continue
            if there != value:
                anomalies.append(Anomaly("lost_on_replica", f"{value} acked at partition {outcome.partition} offset "
                                                            f"{outcome.offset}: {reader} (read to HW {high} while "
                                                            f"leading alone) has {there or 'nothing'} there",
                                                            outcome.time_s))
    return anomalies


def _check_outcomes(history: History, by_value: Mapping[str, set[Position]],
                    by_position: Mapping[Position, set[str]], info: dict[str, int],
                    weak: frozenset[str] = frozenset()) -> list[Anomaly]:
    anomalies: list[Anomaly] = []
    sent = {s.value for s in history.sends}
    final = _final_outcomes(history)
    read_max: dict[int, int] = defaultdict(lambda: -1)
    for partition, offset in by_position:
        read_max[partition] = max(read_max[partition], offset)
    counts: dict[str, int] = defaultdict(int)
    for value, outcome in sorted(final.items()):
        counts[outcome.kind.value] += 1
        where = by_value.get(value, set())
        if outcome.kind is OutcomeKind.ok and value in weak:
            acked = (outcome.partition, outcome.offset)
            if not where:
                counts["weak_lost"] += 1
            elif acked not in where or by_position.get(acked, set()) - {value}:
                counts["weak_moved"] += 1
        elif outcome.kind is OutcomeKind.ok:
            acked = (outcome.partition, outcome.offset)
            if not where:
                drained = history.drained_to.get(outcome.partition)
                if drained is not None or (outcome.offset >= 0 and read_max[outcome.partition] > outcome.offset):
                    end = f"drained to HW {drained}" if drained is not None else \
                        f"read up to offset {read_max[outcome.partition]}"
                    anomalies.append(Anomaly("lost", f"{value} acked at partition {acked[0]} offset {acked[1]} "
                                                     f"at {outcome.time_s:.3f}s, never read ({end})", outcome.time_s))
                else:
                    counts["unverified"] += 1
                continue
            if outcome.offset < 0:  # acknowledged without an offset (a recognised duplicate): read is enough
                counts["acked_without_offset"] += 1
                continue
            others = by_position.get(acked, set()) - {value}
            if acked in where and others and acked[0] in history.unclean_since and not any(
                    (o := final.get(v)) is not None and o.kind is OutcomeKind.ok and v not in weak
                    and (o.partition, o.offset) == acked for v in others):
                # An unclean election replaced what a reader saw there (never acknowledged with acks=all);
                # the acknowledged value itself is where its acknowledgement said.
                counts["unclean_acked_position_reread"] += 1
                continue
            if acked not in where or others:
                anomalies.append(Anomaly("acked_offset_mismatch",
                                         f"{value} acked at {_fmt([acked])} but read at {_fmt(where)}"
                                         + (f"; {_fmt([acked])} holds {sorted(others)}" if others else ""),
                                         outcome.time_s))
        elif outcome.kind is OutcomeKind.failed and where and value not in weak:
            anomalies.append(Anomaly("failed_but_read", f"{value} failed ({outcome.error}) but read at {_fmt(where)}"))
        elif outcome.kind is OutcomeKind.unknown:
            counts["unknown_but_read" if where else "unseen"] += 1
    for value in sorted(set(by_value) - sent):
        anomalies.append(Anomaly("phantom_read", f"{value} read at {_fmt(by_value[value])} but never sent"))
    counts["sent"] = len(sent)
    counts["no_outcome"] = len(sent - set(final))
    counts["read_values"] = len(by_value)
    info.update({k: counts.get(k, 0) for k in ("sent", "ok", "failed", "unknown", "unseen", "unknown_but_read",
                                                 "unverified", "no_outcome", "read_values", "weak_lost",
                                                 "weak_moved", "acked_without_offset",
                                                 "unclean_acked_position_reread")})
    return anomalies


def _final_outcomes(history: History) -> dict[str, Outcome]:
    """One outcome per value: an ok wins over anything else (a retry can report after a timeout)."""
    final: dict[str, Outcome] = {}
    for outcome in history.outcomes:
        current = final.get(outcome.value)
        if current is None or outcome.kind is OutcomeKind.ok:
            final[outcome.value] = outcome
    return final


def _check_monotonic(history: History, info: dict[str, int] | None = None) -> list[Anomaly]:
    """Within one (reader, assignment, partition), offsets strictly increase in the order read (after an
    unclean election of that partition a reader may legitimately be sent back: counted, not flagged)."""
    anomalies: list[Anomaly] = []
    info = {} if info is None else info
    last: dict[tuple[str, int, int], int] = {}
    for r in history.reads:
        if not is_group_reader(r.reader):
            continue
        key = (r.reader, r.assignment, r.partition)
        previous = last.get(key)
        if previous is not None and r.offset <= previous:
            since = history.unclean_since.get(r.partition)
            if since is not None and r.time_s >= since:
                info["unclean_non_monotonic"] = info.get("unclean_non_monotonic", 0) + 1
            else:
                anomalies.append(Anomaly("non_monotonic", f"{r.reader} (assignment {r.assignment}) read partition "
                                                          f"{r.partition} offset {r.offset} after offset {previous} "
                                                          f"at {r.time_s:.3f}s", r.time_s))
        last[key] = r.offset if previous is None else max(previous, r.offset)
    return anomalies


def _fmt(positions: Iterable[Position]) -> str:
    return ", ".join(f"{p}@{o}" for p, o in sorted(positions))


# -- invariants ------------------------------------------------------------------------------------


def check_invariants(replicas: Sequence[ReplicaSample], partitions: Sequence[PartitionSample],
                     unclean_since: Mapping[int, float] | None = None,
                     info: dict[str, int] | None = None, fault_start_s: float = 0.0,
                     final: Sequence[ReplicaSample] = ()) -> list[Anomaly]:
    """The sampled invariants: one leader per epoch, HW monotonic and <= LEO, ISR ⊆ replicas, the
    brokers' truncation tripwire never fired. After an unclean election of a partition its followers
    may truncate below their HW: counted, not flagged (the tripwire holds through unclean elections)."""
    anomalies = _check_leaders(replicas, partitions)
    found = _check_high_watermarks(replicas, partitions)
    unclean = unclean_since or {}
    for anomaly, sample in found:
        since = unclean.get(sample.partition)
        if anomaly.kind == "hw_decreased" and since is not None and sample.time_s >= since:
            if info is not None:
                info["unclean_hw_decreased"] = info.get("unclean_hw_decreased", 0) + 1
        else:
            anomalies.append(anomaly)
    anomalies += _check_isr(replicas, partitions)
    anomalies += check_truncation_tripwire([*replicas, *final], fault_start_s)
    return anomalies


def check_truncation_tripwire(replicas: Sequence[ReplicaSample], fault_start_s: float = 0.0) -> list[Anomaly]:
    """`truncation_incomplete`: one per (broker process, partition) whose tripwire counter rose above
    its baseline in a sample, timed at the first such sample. The counter lives in the broker's
    memory: a restart starts it again at 0, so the samples of each process are judged on their own.
    The baseline is what a process's first sample showed if that was taken before `fault_start_s`
    (the process predates this run's faults: an adopted cluster may carry an earlier run's trips),
    else 0."""
    baseline: dict[tuple[int, int, str, int], int] = {}
    first: dict[tuple[int, int, str, int], ReplicaSample] = {}
    most: dict[tuple[int, int, str, int], int] = {}
    for s in sorted(replicas, key=lambda s: s.time_s):
        key = (s.broker_id, s.incarnation, s.topic, s.partition)
        if key not in baseline:
            baseline[key] = s.divergences_after_truncation if s.time_s < fault_start_s else 0
        if s.divergences_after_truncation <= baseline[key]:
            continue
        first.setdefault(key, s)
        most[key] = max(most.get(key, 0), s.divergences_after_truncation - baseline[key])
    anomalies: list[Anomaly] = []
    for key, s in sorted(first.items()):
        anomalies.append(Anomaly("truncation_incomplete",
                                 f"broker {s.broker_id} (pid {s.incarnation}) {s.topic}-{s.partition}: its leader "
                                 f"reported a divergence after this replica had finished truncating against it "
                                 f"(KIP-279 postcondition broken; {most[key]} time(s), first seen at "
                                 f"{s.time_s:.3f}s, sampled at leader epoch {s.leader_epoch})", s.time_s))
    return anomalies


def _check_leaders(replicas: Sequence[ReplicaSample], partitions: Sequence[PartitionSample]) -> list[Anomaly]:
    leaders: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    ids: dict[tuple[str, int, int], set[int]] = defaultdict(set)
    for s in replicas:
        if s.is_leader:
            ids[(s.topic, s.partition, s.leader_epoch)].add(s.broker_id)
            leaders[(s.topic, s.partition, s.leader_epoch)].add(f"broker {s.broker_id} at {s.time_s:.3f}s")
    for p in partitions:
        if p.leader >= 0:
            ids[(p.topic, p.partition, p.leader_epoch)].add(p.leader)
            leaders[(p.topic, p.partition, p.leader_epoch)].add(f"controller: {p.leader} at {p.time_s:.3f}s")
    anomalies: list[Anomaly] = []
    for (topic, partition, epoch), leader_ids in sorted(ids.items()):
        if len(leader_ids) > 1:
            seen = "; ".join(sorted(leaders[(topic, partition, epoch)])[:6])
            anomalies.append(Anomaly("two_leaders_one_epoch",
                                     f"{topic}-{partition} epoch {epoch} led by {sorted(leader_ids)} ({seen})"))
    return anomalies


def _removals(partitions: Sequence[PartitionSample]) -> dict[tuple[str, int, int], list[float]]:
    """(topic, partition, broker) -> times the controller showed the broker outside the partition's
    replicas after it had been in them (a reassignment removed it; its copy was deleted)."""
    out: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    seen: dict[tuple[str, int], set[int]] = defaultdict(set)
    for p in sorted(partitions, key=lambda p: p.time_s):
        key = (p.topic, p.partition)
        for broker in seen[key] - set(p.replicas):
            out[(p.topic, p.partition, broker)].append(p.time_s)
        seen[key] |= set(p.replicas)
    return out


def _check_high_watermarks(replicas: Sequence[ReplicaSample], partitions: Sequence[PartitionSample] = ()) \
        -> list[tuple[Anomaly, ReplicaSample]]:
    anomalies: list[tuple[Anomaly, ReplicaSample]] = []
    last: dict[tuple[int, int, str, int], ReplicaSample] = {}
    removed = _removals(partitions)
    for s in sorted(replicas, key=lambda s: s.time_s):
        if s.high_watermark > s.log_end_offset:
            anomalies.append((Anomaly("hw_above_log_end", f"broker {s.broker_id} {s.topic}-{s.partition} HW "
                                                          f"{s.high_watermark} > LEO {s.log_end_offset} at "
                                                          f"{s.time_s:.3f}s", s.time_s), s))
        key = (s.broker_id, s.incarnation, s.topic, s.partition)
        previous = last.get(key)
        if previous is not None and any(previous.time_s < t < s.time_s
                                        for t in removed.get((s.topic, s.partition, s.broker_id), ())):
            previous = None  # removed and added back by a reassignment: a new, empty replica
        if previous is not None and s.high_watermark < previous.high_watermark:
            anomalies.append((Anomaly("hw_decreased", f"broker {s.broker_id} (pid {s.incarnation}) {s.topic}-"
                                                      f"{s.partition} HW {previous.high_watermark} at "
                                                      f"{previous.time_s:.3f}s -> {s.high_watermark} at "
                                                      f"{s.time_s:.3f}s", s.time_s), s))
        if previous is None or s.high_watermark >= previous.high_watermark:
            last[key] = s
    return anomalies


def _check_isr(replicas: Sequence[ReplicaSample], partitions: Sequence[PartitionSample]) -> list[Anomaly]:
    anomalies: list[Anomaly] = []
    assigned: dict[tuple[str, int], set[int]] = defaultdict(set)
    for p in partitions:
        assigned[(p.topic, p.partition)].update(p.replicas)
        extra = set(p.isr) - set(p.replicas)
        if extra:
            anomalies.append(Anomaly("isr_not_subset", f"controller: {p.topic}-{p.partition} ISR {list(p.isr)} "
                                                       f"not within replicas {list(p.replicas)} at {p.time_s:.3f}s", p.time_s))
        if p.leader >= 0 and p.leader not in p.isr:
            anomalies.append(Anomaly("isr_not_subset", f"controller: {p.topic}-{p.partition} leader {p.leader} "
                                                       f"outside ISR {list(p.isr)} at {p.time_s:.3f}s", p.time_s))
    for s in replicas:
        known = assigned.get((s.topic, s.partition))
        if not s.is_leader or not known:
            continue
        extra = set(s.isr) - known
        if extra or s.broker_id not in s.isr:
            anomalies.append(Anomaly("isr_not_subset", f"broker {s.broker_id} leads {s.topic}-{s.partition} "
                                                       f"with ISR {list(s.isr)}; replicas {sorted(known)} "
                                                       f"at {s.time_s:.3f}s", s.time_s))
    return anomalies


def compare_prefixes(topic: str, partition: int, logs: Mapping[int, bytes], upto: int,
                     decoded: Mapping[int, Sequence[tuple[int, bytes | None]]] | None = None) -> list[Anomaly]:
    """Replicas' raw bytes below `upto` (the smallest HW) must be identical; `logs`: broker -> bytes.

    `decoded` (broker -> [(offset, value)]), when given, names the first differing offset.
    """
    if len(logs) < 2:
        return []
    reference_id = min(logs)
    reference = logs[reference_id]
    anomalies: list[Anomaly] = []
    for broker_id, data in sorted(logs.items()):
        if broker_id == reference_id or data == reference:
            continue
        where = ""
        if decoded is not None and reference_id in decoded and broker_id in decoded:
            where = _first_difference(decoded[reference_id], decoded[broker_id])
        anomalies.append(Anomaly("prefix_mismatch", f"{topic}-{partition} below offset {upto}: broker {broker_id} "
                                                    f"({len(data)} bytes) differs from broker {reference_id} "
                                                    f"({len(reference)} bytes){where}"))
    return anomalies


def unrepaired_divergences(topic: str, partition: int, decoded: Mapping[int, Sequence[tuple[int, bytes | None]]],
                           leader: int, committed: int) -> list[Anomaly]:
    """Only for replicas that did not converge after the heal (writers stopped, every node running, the
    convergence wait over): `decoded` (broker -> [(offset, value)], ascending) holds each copy, the
    leader's (`leader`, the highest HW `committed`) included. A copy that holds, below `committed`, a
    record other than the leader's at the same offset has a diverged history that truncation should
    have cut long ago (a lagging copy that is a prefix of the leader's is not one)."""
    reference = dict(decoded.get(leader, ()))
    anomalies: list[Anomaly] = []
    for broker_id, records in sorted(decoded.items()):
        if broker_id == leader:
            continue
        for offset, value in records:
            if offset >= committed:
                break
            if offset in reference and reference[offset] != value:
                anomalies.append(Anomaly(
                    "unrepaired_divergence",
                    f"{topic}-{partition}: broker {broker_id} holds {value!r} at offset {offset}, below leader "
                    f"{leader}'s high watermark {committed}, where the leader has {reference[offset]!r}; the "
                    f"replicas did not converge after the heal"))
                break
    return anomalies


def _first_difference(a: Sequence[tuple[int, bytes | None]], b: Sequence[tuple[int, bytes | None]]) -> str:
    for x, y in zip(a, b, strict=False):
        if x != y:
            return f"; first difference at offset {x[0]}: {x[1]!r} vs {y[0]}: {y[1]!r}"
    if len(a) != len(b):
        return f"; record counts {len(a)} vs {len(b)}"
    return "; same records, different batch bytes"
