"""The transactional chaos workload's history and checker (pure: no clock, no client, no I/O).

The transactional workload (`txn_workload.py`) records, on the runner's clock:

    Txn      one transaction of a producer: its unique id, the values it produced (each unique in the
             run), its outcome and when its commit was requested. Outcomes:
                 committed  commit_transaction returned;
                 aborted    commit was never requested (abort_transaction, a fenced or failed producer,
                            the workload stopping): it can never become visible;
                 unknown    commit was requested and failed (a timeout, a fatal error): either way.
             Input transactions write `<run>-x<producer>-<txn>-<i>` to the input topic. The
             consume-transform-produce loop (CTP) writes, for an input value V read with
             read_committed in its attempt A, `V@A` to the output topic, in transaction A, together
             with the input offsets (send_offsets_to_transaction).
    TxnRead  a record read with isolation.level=read_committed: by a live reader during the run, or by
             the final drain (reader DRAIN) that reads every partition of both topics from offset 0 to
             its end after every transaction has ended.
    drained  the (topic, partition)s whose final drain reached the end (a transaction is judged whole
             or lost only when every partition it wrote to was drained).
    committed_offsets  the CTP group's committed offsets on the input topic, read after the run.

What `check_txns` reports (each kind only from evidence that proves it):

    txn_aborted_read   a value of a transaction whose commit was never requested was read (by anyone,
                       or it was transformed by the CTP, which reads with read_committed)
    txn_early_read     a value was read before its transaction's commit was requested (the last
                       stable offset was not respected)
    txn_partial        after the complete drain, a transaction is visible in part (some values, not all)
    txn_lost           after the complete drain, a committed transaction is not visible at all
    txn_duplicate      a value is visible at two positions in the drain
    ctp_duplicate      one input value has two visible outputs: processed twice (not exactly once)
    ctp_lost           an input value below the CTP group's committed offset has no visible output
    ctp_orphan         a visible output whose input is not visible (a transformed uncommitted input)

Info (never an anomaly): transactions by outcome, `unknown_committed` / `unknown_aborted` (how the
unknown ones ended), `unverified` (values in a partition whose drain did not finish).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cluster.chaos.checker import Anomaly

__all__ = [
    "DRAIN",
    "TXN_KINDS",
    "Txn",
    "TxnHistory",
    "TxnOutcome",
    "TxnRead",
    "check_txns",
    "ctp_input",
    "ctp_output",
]

DRAIN = "drain"
TXN_KINDS = (
    "txn_aborted_read",
    "txn_early_read",
    "txn_partial",
    "txn_lost",
    "txn_duplicate",
    "ctp_duplicate",
    "ctp_lost",
    "ctp_orphan",
)
_SEPARATOR = "@"


def ctp_output(input_value: str, attempt: str) -> str:
    """The CTP's output for `input_value` in its transaction `attempt`."""
    return f"{input_value}{_SEPARATOR}{attempt}"


def ctp_input(output_value: str) -> str:
    """The input value an output value was made from."""
    return output_value.rsplit(_SEPARATOR, 1)[0]


class TxnOutcome(StrEnum):
    committed = "committed"
    aborted = "aborted"
    unknown = "unknown"


@dataclass(frozen=True, slots=True)
class Txn:
    txn_id: str
    topic: str
    values: tuple[str, ...]
    outcome: TxnOutcome
    commit_requested_s: float = -1.0   # when commit_transaction was called (-1: never)
    ctp: bool = False                  # a transaction of the consume-transform-produce loop
    partitions: tuple[int, ...] = ()   # the partition of each value (empty: unknown, any partition)


@dataclass(frozen=True, slots=True)
class TxnRead:
    reader: str
    topic: str
    partition: int
    offset: int
    value: str
    time_s: float


@dataclass
class TxnHistory:
    """Appended to by the workload's threads (under one lock); read by `check_txns` after the run."""

    input_topic: str = ""
    output_topic: str = ""
    txns: list[Txn] = field(default_factory=list)
    reads: list[TxnRead] = field(default_factory=list)
    drained: set[tuple[str, int]] = field(default_factory=set)
    partitions: tuple[int, ...] = ()
    committed_offsets: dict[int, int] = field(default_factory=dict)  # input partition -> CTP group offset
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def txn(self, txn: Txn) -> None:
        with self._lock:
            self.txns.append(txn)

    def read(self, read: TxnRead) -> None:
        with self._lock:
            self.reads.append(read)

    def finished_drain(self, topic: str, partition: int) -> None:
        with self._lock:
            self.drained.add((topic, partition))


@dataclass
class TxnCheck:
    anomalies: list[Anomaly] = field(default_factory=list)
    info: dict[str, int] = field(default_factory=dict)


def check_txns(history: TxnHistory) -> TxnCheck:
    """The transactional checks (see the module doc)."""
    result = TxnCheck()
    anomalies, info = result.anomalies, result.info
    owner: dict[str, Txn] = {}
    for t in history.txns:
        info[f"txns_{t.outcome.value}" + ("_ctp" if t.ctp else "")] = \
            info.get(f"txns_{t.outcome.value}" + ("_ctp" if t.ctp else ""), 0) + 1
        for v in t.values:
            owner[v] = t

    # Reads by anyone: never an aborted value, never before the commit was requested.
    reported_aborted: set[str] = set()
    reported_early: set[str] = set()
    for r in history.reads:
        found = owner.get(r.value)
        if found is None:
            continue
        t = found
        if t.outcome is TxnOutcome.aborted and r.value not in reported_aborted:
            reported_aborted.add(r.value)
            anomalies.append(Anomaly("txn_aborted_read", f"{r.value} of aborted transaction {t.txn_id} read by "
                                                         f"{r.reader} at {r.topic}/{r.partition}@{r.offset}",
                                     r.time_s))
        elif t.commit_requested_s >= 0 and r.time_s < t.commit_requested_s and r.value not in reported_early:
            reported_early.add(r.value)
            anomalies.append(Anomaly("txn_early_read", f"{r.value} read by {r.reader} at {r.time_s:.2f}s, before "
                                                       f"{t.txn_id}'s commit was requested at "
                                                       f"{t.commit_requested_s:.2f}s", r.time_s))
    # The CTP read with read_committed: an output made from an aborted input shows that it saw it.
    for r in history.reads:
        if r.topic != history.output_topic:
            continue
        source = owner.get(ctp_input(r.value))
        if source is not None and source.outcome is TxnOutcome.aborted and r.value not in reported_aborted:
            reported_aborted.add(r.value)
            anomalies.append(Anomaly("txn_aborted_read", f"output {r.value} made from {ctp_input(r.value)} of "
                                                         f"aborted transaction {source.txn_id}", r.time_s))

    # The final drain.
    drain_at: dict[str, set[tuple[str, int, int]]] = defaultdict(set)
    for r in history.reads:
        if r.reader == DRAIN:
            drain_at[r.value].add((r.topic, r.partition, r.offset))
    for value, where in sorted(drain_at.items()):
        if len(where) > 1:
            anomalies.append(Anomaly("txn_duplicate", f"{value} visible at {_fmt(where)}"))
    complete = {topic: all((topic, p) in history.drained for p in history.partitions)
                for topic in (history.input_topic, history.output_topic)}
    for t in history.txns:
        if not (all((t.topic, p) in history.drained for p in t.partitions) if t.partitions
                else complete.get(t.topic, False)):
            info["unverified"] = info.get("unverified", 0) + len(t.values)
            continue
        visible = [v for v in t.values if v in drain_at]
        if t.outcome is TxnOutcome.unknown:
            key = "unknown_committed" if visible else "unknown_aborted"
            info[key] = info.get(key, 0) + 1
        if visible and len(visible) < len(t.values):
            missing = [v for v in t.values if v not in drain_at]
            anomalies.append(Anomaly("txn_partial", f"{t.txn_id} ({t.outcome.value}) visible in part: "
                                                    f"{len(visible)} of {len(t.values)} values, missing "
                                                    f"{', '.join(missing[:5])}"))
        elif not visible and t.outcome is TxnOutcome.committed and t.values:
            anomalies.append(Anomaly("txn_lost", f"committed transaction {t.txn_id} ({len(t.values)} values) "
                                                 f"is not visible"))

    # Consume-transform-produce: exactly one visible output per processed input.
    anomalies += _check_ctp(history, drain_at)
    return result


def _check_ctp(history: TxnHistory, drain_at: Mapping[str, set[tuple[str, int, int]]]) -> list[Anomaly]:
    """The CTP writes the output of an input of partition p to output partition p: a missing input or
    output is judged only where both partitions p were drained; a duplicate output anywhere."""
    anomalies: list[Anomaly] = []
    outputs: dict[str, list[tuple[str, int]]] = defaultdict(list)
    inputs: dict[str, tuple[int, int]] = {}
    for value, where in drain_at.items():
        for topic, partition, offset in where:
            if topic == history.output_topic:
                outputs[ctp_input(value)].append((value, partition))
            elif topic == history.input_topic:
                inputs[value] = (partition, offset)

    def judged(partition: int) -> bool:
        return ((history.input_topic, partition) in history.drained
                and (history.output_topic, partition) in history.drained)

    for source, made in sorted(outputs.items()):
        if len(made) > 1:
            anomalies.append(Anomaly("ctp_duplicate", f"{source} was output {len(made)} times: "
                                                      f"{sorted(v for v, _ in made)}"))
        if source not in inputs and judged(made[0][1]):
            anomalies.append(Anomaly("ctp_orphan", f"output {made[0][0]} of {source}, which is not visible"))
    for value, (partition, offset) in sorted(inputs.items()):
        if offset < history.committed_offsets.get(partition, -1) and value not in outputs and judged(partition):
            anomalies.append(Anomaly("ctp_lost", f"{value} (partition {partition} offset {offset}) is below the "
                                                 f"committed offset {history.committed_offsets[partition]} "
                                                 f"but has no visible output"))
    return anomalies


def _fmt(where: Iterable[tuple[str, int, int]]) -> str:
    return ", ".join(f"{t}/{p}@{o}" for t, p, o in sorted(where))
