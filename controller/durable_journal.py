"""Make pysyncobj's Raft journal durable before anything that depends on it leaves this node.

pysyncobj keeps its log in an mmap it never msyncs, and writes the term/vote file without fsync. A
controller would then acknowledge an AppendEntries (or a vote) that a power loss erases: after a
power loss of a majority, two leaders could be elected in one term, or committed metadata could roll
back. KRaft fsyncs its metadata log before acknowledging; this module does the same for pysyncobj.

How, without changing pysyncobj:
- `DurableFileJournal` (a `FileJournal`) marks itself dirty on every change and `sync()`s on demand:
  msync of the mmap plus fsync of the file. Term and vote are written to a temporary file, fsynced,
  renamed over the old one, and the directory fsynced, before `setCurrentTerm` returns (Raft: a vote
  must be durable before it is granted).
- `SyncBeforeSendTransport` (a `TCPTransport`) syncs the journal before it sends any message. Every
  acknowledgement a node gives (an AppendEntries response, a vote, and the leader's own
  AppendEntries that lets followers commit) is a message, so nothing is acknowledged before it is
  on disk — and the syncs batch by themselves: all entries added while handling one message cost
  one sync, and a message without new entries costs none.
- `Quorum` also syncs before a command is applied locally, which covers a single-voter quorum (it
  commits without sending anything).

Everything here runs on pysyncobj's own thread, so the dirty flag needs no lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pysyncobj.syncobj as _syncobj_module
from pysyncobj.journal import FileJournal
from pysyncobj.pickle import dumps
from pysyncobj.transport import TCPTransport

__all__ = ["DurableFileJournal", "SyncBeforeSendTransport", "durable_journals", "sync_before_send_transport"]


def _fsync_directory(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableFileJournal(FileJournal):
    """pysyncobj's file journal with explicit durability: `sync()` and a durable term/vote."""

    def __init__(self, journal_file: str) -> None:
        self._dirty = False
        self.syncs = 0  # how many syncs wrote something (for tests and benchmarks)
        super().__init__(journal_file)
        self._journal_file_path = journal_file
        self._dirty = False

    # Every mutation marks the journal dirty; `sync` makes it durable.
    def add(self, command: Any, idx: int, term: int) -> None:
        super().add(command, idx, term)
        self._dirty = True

    def clear(self) -> None:
        super().clear()
        self._dirty = True

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 - pysyncobj's name
        super().deleteEntriesFrom(entryFrom)
        self._dirty = True

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802 - pysyncobj's name
        super().deleteEntriesTo(entryTo)
        self._dirty = True

    @property
    def dirty(self) -> bool:
        return self._dirty

    def sync(self) -> None:
        """msync the journal's mmap and fsync its file, if anything changed since the last sync."""
        if not self._dirty:
            return
        resizable = self._FileJournal__journalFile  # type: ignore[attr-defined]
        resizable.flush()  # mmap.flush() is msync(MS_SYNC)
        os.fsync(resizable._ResizableFile__f.fileno())  # the file size may have grown
        self._dirty = False
        self.syncs += 1

    def setCurrentTerm(self, term: int, votedForNodeId: Any) -> None:  # noqa: N802,N803 - pysyncobj's names
        """Store term and vote durably before returning (temp file, fsync, rename, fsync dir)."""
        meta = self._FileJournal__meta  # type: ignore[attr-defined]
        meta["currentTerm"] = term
        meta["votedForNodeId"] = votedForNodeId
        path = self._FileJournal__metaStorer.getPath()  # type: ignore[attr-defined]
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(dumps(meta))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_directory(path)
        self._FileJournal__metaSaved = True  # type: ignore[attr-defined]


class SyncBeforeSendTransport(TCPTransport):
    """A TCPTransport that makes the journal(s) in `journals` durable before any message leaves.

    Use `sync_before_send_transport(journals)` for a class bound to one quorum's journal list: SyncObj
    creates its journal before its transport, so the list is filled when the first message goes."""

    journals: list[DurableFileJournal] = []

    def send(self, node: Any, message: Any) -> bool:
        for journal in self.journals:
            journal.sync()
        return bool(super().send(node, message))


def sync_before_send_transport(journals: list[DurableFileJournal]) -> type[SyncBeforeSendTransport]:
    return type("BoundSyncBeforeSendTransport", (SyncBeforeSendTransport,), {"journals": journals})


_create_lock = threading.Lock()


@contextmanager
def durable_journals(created: list[DurableFileJournal]) -> Iterator[None]:
    """While active, pysyncobj's `createJournal(path)` builds a DurableFileJournal (appended to
    `created`). SyncObj looks the factory up by name in its module when it starts, so the patch
    only needs to last through the constructor; a lock keeps two constructions apart."""
    original: Callable[..., Any] = _syncobj_module.createJournal

    def create(journal_file: str | None = None) -> Any:
        if journal_file is None:
            return original(journal_file)
        journal = DurableFileJournal(journal_file)
        created.append(journal)
        return journal

    with _create_lock:
        _syncobj_module.createJournal = create  # type: ignore[attr-defined]
        try:
            yield
        finally:
            _syncobj_module.createJournal = original  # type: ignore[attr-defined]
