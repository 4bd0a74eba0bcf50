"""The durable Raft journal (issue 10 item 9): nothing is acknowledged before it is synced.

Goal: every journal change marks the journal dirty and `sync` makes it durable once; term and vote
are on disk (fsynced file, renamed) when `setCurrentTerm` returns; the transport syncs before any
message leaves; a Quorum uses all of it. Method: the real pysyncobj FileJournal subclass on a temp
file, os.fsync / TCPTransport.send observed through monkeypatching.
"""

from __future__ import annotations

import os

import pytest
from pysyncobj.journal import FileJournal
from pysyncobj.transport import TCPTransport

from controller import durable_journal
from controller.durable_journal import DurableFileJournal, durable_journals, sync_before_send_transport


@pytest.fixture
def fsyncs(monkeypatch):
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(durable_journal.os, "fsync", counting)
    return calls


def test_changes_are_synced_once_and_survive_reopen(tmp_path, fsyncs):
    path = str(tmp_path / "raft.journal")
    journal = DurableFileJournal(path)
    assert not journal.dirty
    journal.add(b"one", 1, 1)
    journal.add(b"two", 2, 1)
    assert journal.dirty
    journal.sync()
    assert not journal.dirty and journal.syncs == 1 and len(fsyncs) == 1
    journal.sync()  # nothing new: no I/O
    assert journal.syncs == 1 and len(fsyncs) == 1
    journal.deleteEntriesFrom(1)
    assert journal.dirty
    journal.sync()
    journal._destroy()
    reopened = FileJournal(path)
    assert [reopened[i] for i in range(len(reopened))] == [(b"one", 1, 1)]


def test_term_and_vote_are_durable_when_set(tmp_path, fsyncs):
    path = str(tmp_path / "raft.journal")
    journal = DurableFileJournal(path)
    journal.setCurrentTerm(7, "127.0.0.1:1")
    assert len(fsyncs) == 2  # the file, then its directory
    assert not os.path.exists(path + ".meta.tmp")
    reopened = FileJournal(path)
    assert (reopened.getCurrentTerm(), reopened.getVotedForNodeId()) == (7, "127.0.0.1:1")


def test_transport_syncs_before_sending(tmp_path, monkeypatch):
    events: list[str] = []
    journal = DurableFileJournal(str(tmp_path / "raft.journal"))
    real_sync = journal.sync

    def sync() -> None:
        events.append("sync" if journal.dirty else "clean")
        real_sync()

    journal.sync = sync  # type: ignore[method-assign]
    monkeypatch.setattr(TCPTransport, "send", lambda self, node, message: events.append(f"send {message}") or True)
    transport_class = sync_before_send_transport([journal])
    transport = transport_class.__new__(transport_class)  # no sockets needed to check the order
    journal.add(b"entry", 1, 1)
    assert transport.send("node", "append_entries_response")
    assert transport.send("node", "heartbeat_response")
    assert events == ["sync", "send append_entries_response", "clean", "send heartbeat_response"]


def test_durable_journals_swaps_the_factory_only_inside(tmp_path):
    import pysyncobj.syncobj as syncobj_module

    created: list[DurableFileJournal] = []
    original = syncobj_module.createJournal
    with durable_journals(created):
        journal = syncobj_module.createJournal(str(tmp_path / "j"))
        assert syncobj_module.createJournal(None).__class__.__name__ == "MemoryJournal"
    assert isinstance(journal, DurableFileJournal) and created == [journal]
    assert syncobj_module.createJournal is original
