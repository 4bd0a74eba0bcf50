"""The chaos workload's reader watchdog: the stall rule and the recreation it triggers (no cluster)."""

from __future__ import annotations

from cluster.chaos.history import History
from cluster.chaos.workload import Workload, WorkloadConfig, reader_stalled


def test_reader_stalled_rule():
    # read nothing for 30 s while writes were acknowledged, holding partitions: stalled
    assert reader_stalled(now_s=40.0, since_s=10.0, last_ack_s=39.0, assigned=True, group_last_read_s=39.5,
                          stall_s=30.0)
    # not long enough yet
    assert not reader_stalled(39.0, 10.0, 38.0, True, 38.0, 30.0)
    # nothing acknowledged since its last read (the writers stopped or every leader is down)
    assert not reader_stalled(100.0, 10.0, 10.0, True, 10.0, 30.0)
    # no partitions, while the rest of the group reads: an idle member, not a stall
    assert not reader_stalled(40.0, 10.0, 39.0, False, 39.5, 30.0)
    # no partitions and the whole group reads nothing: the group stopped assigning
    assert reader_stalled(40.0, 10.0, 39.0, False, 10.0, 30.0)


def test_watchdog_recreates_a_stalled_reader_once_and_records_it(tmp_path):  # noqa: ANN001
    now = [0.0]
    config = WorkloadConfig("127.0.0.1:1", "t", "run", readers=2, debug_dir=str(tmp_path), stall_s=30.0)
    workload = Workload(config, History(partitions=(0, 1, 2)), lambda: now[0])
    # the bookkeeping start() sets up, without threads or clients
    for reader, partitions in (("reader-0", (0, 1)), ("reader-1", (2,))):
        workload._reader_since[reader] = 0.0
        workload._reader_assigned[reader] = partitions
        workload._recreate[reader] = __import__("threading").Event()
    workload._reader_since["reader-1"] = 35.0   # reader-1 keeps reading
    workload._last_read_s, workload._last_ack_s = 35.0, 36.0
    now[0] = 20.0
    workload._watch_once(now[0])
    assert workload.stalls == []
    now[0] = 36.0
    workload._watch_once(now[0])
    assert [s.reader for s in workload.stalls] == ["reader-0"] and workload._recreate["reader-0"].is_set()
    assert not workload._recreate["reader-1"].is_set()
    stall = workload.stalls[0]
    assert stall.assigned == (0, 1) and stall.since_s == 0.0 and stall.last_ack_s == 36.0
    assert "reader reader-0 read nothing from 0.00s to 36.00s" in stall.describe()
    workload._watch_once(37.0)  # asked once: not again until the reader has recreated its consumer
    assert len(workload.stalls) == 1


def test_debug_lines_collapse_repeats():
    import logging

    from cluster.chaos.workload import _Lines

    lines = _Lines(3)

    def record(text: str, at: float) -> logging.LogRecord:
        r = logging.LogRecord("x", logging.DEBUG, __file__, 1, text, None, None)
        r.created = at
        return r

    lines.emit(record("CGRPSTATE changed state", 1.0))
    for i in range(50):
        lines.emit(record("CGRPQUERY no broker available", 2.0 + i))
    lines.emit(record("CGRPCOORD answered", 60.0))
    assert list(lines.lines) == ["1.000 CGRPSTATE changed state",
                                 "2.000 CGRPQUERY no broker available (repeated 49x, last 51.000)",
                                 "60.000 CGRPCOORD answered"]
