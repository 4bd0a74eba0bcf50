"""The transactional checker (cluster.chaos.txn_check) is itself tested: a table of small histories,
each with the anomaly kinds it must report (and a clean baseline that must report nothing)."""

from __future__ import annotations

import pytest

from cluster.chaos.txn_check import (
    DRAIN,
    Txn,
    TxnHistory,
    TxnOutcome,
    TxnRead,
    check_txns,
    ctp_input,
    ctp_output,
)

IN, OUT = "in", "out"
C, A, U = TxnOutcome.committed, TxnOutcome.aborted, TxnOutcome.unknown


def _history(txns: list[Txn], drain: list[tuple[str, int, int, str]], live: list[tuple[str, int, int, str, float]] = (),
             committed: dict[int, int] | None = None, drained: bool = True,
             drained_only: list[tuple[str, int]] = ()) -> TxnHistory:
    """drain: (topic, partition, offset, value) read by the final drain; live: ... plus the read time."""
    h = TxnHistory(input_topic=IN, output_topic=OUT, partitions=(0, 1))
    for t in txns:
        h.txn(t)
    for topic, p, o, v in drain:
        h.read(TxnRead(DRAIN, topic, p, o, v, 100.0))
    for topic, p, o, v, at in live:
        h.read(TxnRead("reader-0", topic, p, o, v, at))
    if drained:
        for topic in (IN, OUT):
            for p in (0, 1):
                h.finished_drain(topic, p)
    for topic, p in drained_only:
        h.finished_drain(topic, p)
    h.committed_offsets = dict(committed or {})
    return h


def _txn(txn_id: str, outcome: TxnOutcome, *values: str, topic: str = IN, commit_s: float = 10.0,
         ctp: bool = False) -> Txn:
    return Txn(txn_id, topic, values, outcome, commit_s if outcome is not A else -1.0, ctp)


T1 = _txn("t1", C, "a", "b")                         # committed: a on partition 0, b on partition 1
T2 = _txn("t2", A, "c", "d")                         # aborted
T3 = _txn("t3", U, "e", "f")                         # commit requested, outcome unknown
CTP1 = _txn("ctp1", C, ctp_output("a", "ctp1"), ctp_output("b", "ctp1"), topic=OUT, ctp=True)
CLEAN_DRAIN = [(IN, 0, 0, "a"), (IN, 1, 0, "b"), (OUT, 0, 0, ctp_output("a", "ctp1")),
               (OUT, 1, 0, ctp_output("b", "ctp1"))]
COMMITTED = {0: 1, 1: 1}

CASES = {
    "clean": (_history([T1, T2, T3, CTP1], CLEAN_DRAIN, [(IN, 0, 0, "a", 11.0)], COMMITTED), set()),
    "clean, unknown outcome that committed": (
        _history([T1, T3, CTP1], CLEAN_DRAIN + [(IN, 0, 1, "e"), (IN, 1, 1, "f")], committed=COMMITTED), set()),
    "aborted value read live": (
        _history([T1, T2, CTP1], CLEAN_DRAIN, [(IN, 0, 1, "c", 5.0)], COMMITTED), {"txn_aborted_read"}),
    "aborted value in the drain, and so the transaction partial": (
        _history([T1, T2, CTP1], CLEAN_DRAIN + [(IN, 0, 1, "c")], committed=COMMITTED),
        {"txn_aborted_read", "txn_partial"}),
    "committed value read before the commit was requested": (
        _history([T1, CTP1], CLEAN_DRAIN, [(IN, 0, 0, "a", 9.5)], COMMITTED), {"txn_early_read"}),
    "committed transaction visible in part": (
        _history([T1, CTP1], CLEAN_DRAIN[:1] + CLEAN_DRAIN[2:], committed={0: 1}), {"txn_partial", "ctp_orphan"}),
    "unknown transaction visible in part": (
        _history([T1, T3, CTP1], CLEAN_DRAIN + [(IN, 0, 1, "e")], committed=COMMITTED), {"txn_partial"}),
    "committed transaction lost": (
        _history([T1, _txn("t4", C, "g"), CTP1], CLEAN_DRAIN, committed=COMMITTED), {"txn_lost"}),
    "a value visible twice": (
        _history([T1, CTP1], CLEAN_DRAIN + [(IN, 0, 5, "a")], committed=COMMITTED), {"txn_duplicate"}),
    "an input transformed twice": (
        _history([T1, CTP1, _txn("ctp2", C, ctp_output("a", "ctp2"), topic=OUT, ctp=True)],
                 CLEAN_DRAIN + [(OUT, 0, 1, ctp_output("a", "ctp2"))], committed=COMMITTED), {"ctp_duplicate"}),
    "an aborted CTP attempt visible": (
        _history([T1, CTP1, _txn("ctp2", A, ctp_output("a", "ctp2"), topic=OUT, ctp=True)],
                 CLEAN_DRAIN + [(OUT, 0, 1, ctp_output("a", "ctp2"))], committed=COMMITTED),
        {"ctp_duplicate", "txn_aborted_read"}),
    "an input below the committed offset without output": (
        _history([T1, CTP1], CLEAN_DRAIN[:3], committed=COMMITTED), {"ctp_lost", "txn_partial"}),
    "an input above the committed offset without output is not lost": (
        _history([T1], CLEAN_DRAIN[:2], committed={0: 0, 1: 0}), set()),
    "an output made from an aborted input": (
        _history([T1, T2, CTP1, _txn("ctp2", C, ctp_output("c", "ctp2"), topic=OUT, ctp=True)],
                 CLEAN_DRAIN + [(OUT, 0, 1, ctp_output("c", "ctp2"))], committed=COMMITTED),
        {"txn_aborted_read", "ctp_orphan"}),
    "only partition 0 drained: a transaction on partition 0 only is judged": (
        _history([_txn("t5", C, "h", "i"), Txn("t6", IN, ("j",), C, 10.0, partitions=(0,)),
                  Txn("t7", IN, ("k", "l"), C, 10.0, partitions=(0, 1))],
                 [], drained=False, drained_only=[(IN, 0), (OUT, 0)]), {"txn_lost"}),
    "only partition 0 drained: a CTP loss on partition 0 is judged, not on partition 1": (
        _history([T1], CLEAN_DRAIN[:2], committed=COMMITTED, drained=False, drained_only=[(IN, 0), (OUT, 0)]),
        {"ctp_lost"}),
    "no finished drain: nothing about completeness is claimed": (
        _history([T1, _txn("t4", C, "g"), CTP1], CLEAN_DRAIN[:1], drained=False), set()),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reported_kinds(name: str) -> None:
    history, expected = CASES[name]
    result = check_txns(history)
    assert {a.kind for a in result.anomalies} == expected, [a.detail for a in result.anomalies]


def test_info_counts_outcomes_and_unknown_resolution() -> None:
    history, _ = CASES["clean, unknown outcome that committed"]
    info = check_txns(history).info
    assert info["txns_committed"] == 1 and info["txns_unknown"] == 1 and info["unknown_committed"] == 1
    assert info["txns_committed_ctp"] == 1


def test_undrained_values_are_counted_unverified() -> None:
    history, _ = CASES["no finished drain: nothing about completeness is claimed"]
    assert check_txns(history).info["unverified"] == 5


def test_ctp_value_round_trip() -> None:
    assert ctp_input(ctp_output("run-x0-3-1", "ctp-7")) == "run-x0-3-1"


def test_cli_refuses_txn_workload_with_netns(capsys) -> None:  # noqa: ANN001
    from cluster.chaos.runner import main

    assert main(["run", "--workload", "txn", "--network", "netns"]) == 2
    assert "--workload txn" in capsys.readouterr().err
    assert main(["run", "--workload", "bogus"]) == 2
