"""A partition's transactions (storage/txn_index.py) in both logs: the last stable offset, the
aborted-transactions index, truncation and restart."""

from __future__ import annotations

from storage.batch import build_batch, parse_header
from storage.records import Record
from storage.txn_index import COMPLETED_MAX, AbortedTxn, TxnIndex, control_batch, control_type


def data(pid: int, seq: int, n: int = 2, transactional: bool = True) -> bytes:
    return build_batch([Record(b"k", f"v{i}".encode(), 1000) for i in range(n)], producer_id=pid, producer_epoch=0,
                       base_sequence=seq, transactional=transactional)


def marker(pid: int, commit: bool, epoch: int = 0) -> bytes:
    return control_batch(pid, epoch, 1, commit, 1000)


def test_control_batch_type_round_trips():
    assert control_type(marker(1, True)) == 1 and control_type(marker(1, False)) == 0
    header = parse_header(marker(1, True))
    assert header.is_control and header.is_transactional and header.records_count == 1


def test_lso_stops_at_the_oldest_open_transaction(make_log):
    log = make_log()
    log.append_as_leader(data(-1, -1, transactional=False), 0, 1)         # 0-1 plain
    log.append_as_leader(data(7, 0), 0, 1)                                # 2-3 txn of 7
    log.append_as_leader(data(8, 0), 0, 1)                                # 4-5 txn of 8
    assert log.first_unstable_offset() == 2 and log.ongoing_transactions() == {7: 2, 8: 4}
    log.append_as_leader(marker(7, True), 0, 1)                           # 6 commit 7
    assert log.first_unstable_offset() == 4
    log.append_as_leader(marker(8, False), 0, 1)                          # 7 abort 8
    assert log.first_unstable_offset() is None
    assert log.aborted_transactions(0, 100) == [AbortedTxn(8, 4, 7)]
    assert log.aborted_transactions(8, 100) == []                         # ended before the range
    assert log.aborted_transactions(0, 4) == []                           # starts at/after the range end


def test_truncation_reopens_a_cut_marker_and_forgets_cut_starts(make_log):
    log = make_log()
    log.append_as_leader(data(7, 0), 0, 1)                                # 0-1
    log.append_as_leader(marker(7, False), 0, 1)                          # 2
    log.append_as_leader(data(8, 0), 0, 1)                                # 3-4
    log.truncate_to(3)
    assert log.ongoing_transactions() == {} and log.aborted_transactions(0, 10) == [AbortedTxn(7, 0, 2)]
    log.truncate_to(2)
    assert log.ongoing_transactions() == {7: 0} and log.aborted_transactions(0, 10) == []


def test_follower_appends_build_the_same_index(make_log):
    from storage.memory_log import MemoryLog

    leader, follower = MemoryLog(), make_log()
    for b in (data(7, 0), marker(7, False), data(9, 0)):
        info = leader.append_as_leader(b, 0, 1)
        follower.append_as_follower(leader.read(info.first_offset, 1 << 20, info.last_offset + 1).records)
    assert follower.ongoing_transactions() == leader.ongoing_transactions() == {9: 3}
    assert follower.aborted_transactions(0, 10) == leader.aborted_transactions(0, 10)


def test_rocksdb_index_survives_reopen(log_dir):
    from storage.log import LogConfig
    from storage.rocksdb_log import LogManager

    topic_id = bytes(range(16))
    manager = LogManager(log_dir)
    log = manager.get_or_create(topic_id, "t", 0, LogConfig())
    log.append_as_leader(data(7, 0), 0, 1)
    log.append_as_leader(marker(7, False), 0, 1)
    log.append_as_leader(data(8, 0), 0, 1)
    manager.close()
    manager = LogManager(log_dir)
    try:
        log = manager.get_or_create(topic_id, "t", 0, LogConfig())
        assert log.ongoing_transactions() == {8: 3}
        assert log.aborted_transactions(0, 10) == [AbortedTxn(7, 0, 2)]
    finally:
        manager.close()


def test_encode_decode_and_bounded_commits():
    index = TxnIndex()
    for i in range(COMPLETED_MAX + 10):
        index.update([(parse_header(b), b) for b in (data(i, 0), marker(i, i % 2 == 1))])
    again = TxnIndex.decode(index.encode())
    assert again.aborted(0, 1 << 40) == index.aborted(0, 1 << 40)
    assert len(again.aborted(0, 1 << 40)) == (COMPLETED_MAX + 10) // 2  # every abort is kept


def test_marker_without_data_changes_nothing():
    index = TxnIndex()
    assert not index.update([(parse_header(marker(5, True)), marker(5, True))])
    assert index.last_stable_offset(10) == 10
