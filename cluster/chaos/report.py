"""The chaos report: pure computation of unavailability windows, and rendering as text or JSON."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from cluster.chaos.checker import ANOMALY_KINDS, CheckResult
from cluster.chaos.history import History, OutcomeKind
from cluster.chaos.nemesis import Fault

__all__ = ["Report", "Window", "unavailability"]


@dataclass(frozen=True)
class Window:
    """After fault `index` started at `start_s`: the first ok ack of a send made after it, and the
    longest gap between consecutive ok acks from the fault's start to its recovery (or the next fault)."""

    index: int
    kind: str
    start_s: float
    next_ack_s: float        # seconds from the fault to that ack; -1 when there was none
    ack_gap_max_s: float


def unavailability(history: History, faults: Sequence[Fault]) -> list[Window]:
    """Pure: one Window per fault (see Window)."""
    sent_at = {s.value: s.time_s for s in history.sends}
    acks = sorted((o.time_s, sent_at.get(o.value, 0.0)) for o in history.outcomes if o.kind is OutcomeKind.ok)
    ack_times = [t for t, _ in acks]
    windows = []
    for index, fault in enumerate(faults):
        first = next((t for t, sent in acks[bisect.bisect_right(ack_times, fault.start_s):] if sent >= fault.start_s),
                     None)
        later = [f.start_s for f in faults[index + 1:]]
        end_s = fault.recovered_s if fault.recovered_s >= 0 else (later[0] if later else fault.end_s)
        end_s = max(end_s, first if first is not None else end_s)
        inside = [fault.start_s] + ack_times[bisect.bisect_right(ack_times, fault.start_s):
                                             bisect.bisect_right(ack_times, end_s)]
        gaps = [b - a for a, b in zip(inside, inside[1:], strict=False)]
        windows.append(Window(index, fault.kind, fault.start_s, -1.0 if first is None else first - fault.start_s,
                              max(gaps, default=0.0)))
    return windows


@dataclass
class Report:
    seed: int
    scenario: str
    duration_s: float
    target: str
    topic: str = ""
    result: CheckResult = field(default_factory=CheckResult)
    timeline: list[Fault] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    totals: dict[str, float | str] = field(default_factory=dict)
    client_errors: dict[str, int] = field(default_factory=dict)
    undrained: list[int] = field(default_factory=list)    # partitions whose final drain did not finish
    problems: list[str] = field(default_factory=list)     # the run itself went wrong (not an anomaly)
    crashed: list[str] = field(default_factory=list)      # nodes that exited without being told to
    warnings: list[str] = field(default_factory=list)     # liveness findings: reported, not anomalies
    reader_stalls: list[dict[str, object]] = field(default_factory=list)  # the reader watchdog's events (workload)
    extra_kinds: tuple[str, ...] = ()                     # anomaly kinds of an extra workload (txn)

    @property
    def anomaly_count(self) -> int:
        return len(self.result.anomalies)

    @property
    def exit_code(self) -> int:
        """0: no anomaly and a complete check; 1: an anomaly; 3: the run could not be fully checked."""
        if self.anomaly_count:
            return 1
        return 3 if (self.undrained or self.problems) else 0

    def to_dict(self) -> dict[str, object]:
        return {
            "seed": self.seed, "scenario": self.scenario, "duration_s": self.duration_s, "target": self.target,
            "topic": self.topic, "anomalies": self.result.counts(), "anomaly_total": self.anomaly_count,
            "examples": self.result.examples(), "info": self.result.info, "totals": self.totals,
            "timeline": [f.to_dict() for f in self.timeline],
            "unavailability": [w.__dict__ for w in self.windows], "client_errors": self.client_errors,
            "undrained_partitions": self.undrained, "problems": self.problems, "crashed": self.crashed,
            "warnings": self.warnings, "reader_stalls": self.reader_stalls,
            "exit_code": self.exit_code,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_text(self) -> str:
        lines = [f"brook chaos report: scenario {self.scenario}, seed {self.seed}, {self.duration_s:g}s "
                 f"of faults, target {self.target}, topic {self.topic}"]
        lines.append("totals: " + ", ".join(f"{k} {_num(v)}" for k, v in self.totals.items()))
        lines.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in self.result.info.items()))
        counts = self.result.counts()
        lines.append("anomalies: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in ANOMALY_KINDS + self.extra_kinds)
                     + f"  (total {self.anomaly_count})")
        for kind, examples in self.result.examples().items():
            lines.append(f"  {kind}:")
            lines += [f"    {e}" for e in examples]
        lines.append(f"fault timeline ({len(self.timeline)} faults; seconds from the start):")
        for index, fault in enumerate(self.timeline):
            window = next((w for w in self.windows if w.index == index), None)
            recovered = (f"{fault.recovered_s:.2f}" if fault.recovered_s >= 0 else
                         "not waited for (overlaps the next round)" if fault.overlapped else "NOT RECOVERED")
            unavailable = "" if window is None else (
                f"  next ack +{window.next_ack_s:.2f}s, longest ack gap {window.ack_gap_max_s:.2f}s"
                if window.next_ack_s >= 0 else "  no ack after it")
            target = f" partition {fault.partition}" if fault.partition >= 0 else ""
            lines.append(f"  #{index} {fault.start_s:7.2f} {fault.kind} nodes {fault.nodes}{target}; "
                         f"restored {fault.end_s:.2f}, healthy {recovered}{unavailable}")
            lines += [f"        {t:7.2f} {action}" for t, action in fault.actions]
        if self.client_errors:
            lines.append("client errors (counted, expected during faults): "
                         + ", ".join(f"{k} {v}" for k, v in sorted(self.client_errors.items())))
        if self.crashed:
            lines.append("nodes that exited on their own: " + "; ".join(self.crashed))
        if self.undrained:
            lines.append(f"final drain did not finish for partitions {self.undrained}")
        lines += [f"problem: {p}" for p in self.problems]
        lines += [f"warning: {w}" for w in self.warnings]
        verdict = {0: "PASS: no anomalies", 1: f"FAIL: {self.anomaly_count} anomalies",
                   3: "INCOMPLETE: the run could not be fully checked"}[self.exit_code]
        lines.append(f"{verdict} (seed {self.seed})")
        return "\n".join(lines)


def _num(value: float | str) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)
