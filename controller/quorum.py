"""The controller quorum: the only module that imports pysyncobj.

`MetadataStateMachine` is a `SyncObjConsumer` whose replicated state is the metadata image. Its one
replicated method, `apply_command(bytes)`, decodes a `MetadataCommand` and replays it with
`cluster.image.replay_all` — the single place controller state changes. Commands are protobuf bytes
and snapshots are protobuf bytes (`_serialize` is overridden), so pysyncobj never pickles a project
class and a newer Brook can replay an older journal.

Two guards make replay safe under retries and leader changes — the request-id dedupe and the
base-offset check; both are decided by the pure `controller.commands.apply_command`, which this shell
calls and whose verdict it stores.

`Quorum` wraps the `SyncObj`: configuration measured for this job (see DESIGN.md), a secret always
(pysyncobj's wire format is pickle), a journal made durable before anything is acknowledged
(`controller/durable_journal.py`, the only other pysyncobj import), and results handed to asyncio with
`call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import threading
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pysyncobj.pickle as raft_pickle
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.monotonic import monotonic as raft_monotonic
from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.transport import TCPTransport

from cluster.aio import wait_for
from cluster.codec import decode_snapshot, encode_command, encode_snapshot
from cluster.image import MetadataImage, image_from_records, image_to_records
from cluster.records import PartitionRecord, Record, TopicRecord
from controller.commands import REQUEST_IDS_MAX, ApplyResult, QuorumError, RequestIds, apply_command
from controller.durable_journal import DurableFileJournal, durable_journals, sync_before_send_transport
from controller.raft_frames import RaftFrameBuffer, RaftFrameError

__all__ = ["REQUEST_IDS_MAX", "ApplyResult", "MetadataStateMachine", "Quorum", "QuorumError", "QuorumSettings",
           "is_loopback_host"]

log = logging.getLogger("brook.quorum")

# One appendEntries message carries at most this many bytes of log entries, and no command may be
# larger (`submit` refuses it): a 10,000-partition CreateTopics with RF 3 encodes to ~0.5 MiB.
RAFT_APPEND_BYTES_MAX = 16 * 1024 * 1024

# Commands a leader remembers the records of until they are applied (older ones are decoded again).
# Only commands made of these record types, whose records equal their own decoding (checked by
# tests/unit/controller/test_quorum_large_command.py for CreateTopics and CreatePartitions): the
# leader's image must be the followers' image, field types included.
ENCODED_COMMANDS_MAX = 64
_DECODE_SKIPPABLE = (TopicRecord, PartitionRecord)
# An apply longer than this gives a follower this long to read its socket before its election timer
# may fire (`MetadataStateMachine._after_long_apply`).
APPLY_STALL_S = 0.2

# How many applied records each controller keeps in memory to answer broker heartbeats with a delta;
# a broker further behind gets the full image.
RECENT_RECORDS_MAX = 20_000


class MetadataStateMachine(SyncObjConsumer):
    """Replicated metadata. Runs on pysyncobj's thread; readers on other threads take `view()`."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._image = MetadataImage()
        self._recent: deque[tuple[int, Record]] = deque(maxlen=RECENT_RECORDS_MAX)
        self._request_ids = RequestIds()
        self.on_change: Callable[[], None] | None = None
        # Makes the journal durable before a command is applied (and so acknowledged) here; a
        # single-voter quorum commits without sending anything, so the send barrier alone is not enough.
        self.before_apply: Callable[[], None] | None = None
        # Commands this node encoded (as leader) with their records, so applying them skips the decode.
        self._encoded: OrderedDict[bytes, tuple[str, int, list[Record]]] = OrderedDict()
        self._encoded_lock = threading.Lock()

    def remember(self, data: bytes, decoded: tuple[str, int, list[Record]]) -> None:
        """Note what `data` decodes to (called by `Quorum.submit`, which encoded it)."""
        with self._encoded_lock:
            self._encoded[data] = decoded
            while len(self._encoded) > ENCODED_COMMANDS_MAX:
                self._encoded.popitem(last=False)

    # -- replicated ------------------------------------------------------------------------------
    @replicated
    def apply_command(self, data: bytes) -> ApplyResult:
        started = raft_monotonic()
        if self.before_apply is not None:
            self.before_apply()
        with self._encoded_lock:
            decoded = self._encoded.pop(data, None)
        applied = apply_command(self._image, self._request_ids, data, decoded)
        self._after_long_apply(raft_monotonic() - started)
        if applied.replay_error:
            log.error("rejected metadata command %s: %s", applied.request_id, applied.result.message)
        if applied.result.status != "ok":
            return applied.result
        with self._lock:
            for index, record in enumerate(applied.records):
                self._recent.append((applied.base_offset + 1 + index, record))
            self._image = applied.image
            if applied.request_id:
                self._request_ids.add(applied.request_id)
        self._notify()
        return applied.result

    def _after_long_apply(self, elapsed_s: float) -> None:
        """A follower that spent long applying a command (10,000 partitions on a loaded machine) has
        not read its socket meanwhile: pysyncobj checks the election deadline *before* reading what
        the leader sent during the stall, and would start an election against a live leader. Give
        the next tick a short grace to read it (liveness only: Raft's safety does not depend on
        election timing)."""
        syncobj = self._syncObj
        if elapsed_s < APPLY_STALL_S or syncobj is None or syncobj._isLeader():
            return
        deadline = raft_monotonic() + APPLY_STALL_S
        if getattr(syncobj, "_SyncObj__raftElectionDeadline", deadline) < deadline:
            syncobj._SyncObj__raftElectionDeadline = deadline

    # -- snapshots: protobuf bytes, never pickled objects ----------------------------------------
    def _serialize(self) -> dict[str, bytes]:
        with self._lock:
            image, ids = self._image, list(self._request_ids)
        return {"snapshot": encode_snapshot(image.offset, image_to_records(image), ids)}

    def _deserialize(self, data: dict[str, bytes]) -> None:
        offset, records, ids = decode_snapshot(data["snapshot"])
        image = image_from_records(records, offset)
        with self._lock:
            self._image = image
            self._recent.clear()
            self._request_ids = RequestIds(ids)
        self._notify()

    def _notify(self) -> None:
        callback = self.on_change
        if callback is not None:
            callback()

    # -- readers (any thread) --------------------------------------------------------------------
    @property
    def image(self) -> MetadataImage:
        return self._image

    def records_since(self, offset: int, limit: int) -> tuple[MetadataImage, list[Record] | None]:
        """(image, records after `offset`), or (image, None) when they are no longer in memory."""
        with self._lock:
            image = self._image
            if offset >= image.offset:
                return image, []
            if not self._recent or self._recent[0][0] > offset + 1:
                return image, None
            first = self._recent[0][0]
            start = offset + 1 - first
            records = [r for _, r in list(self._recent)[start:start + limit]]
        return image, records


# -- the Raft port's transport: pysyncobj's, with bounded, linear framing --------------------------
# pysyncobj's TcpConnection buffers with quadratic copying and waits for whatever a length prefix
# claims before the HMAC check (see controller/raft_frames.py). Its connections are adopted by
# `_BoundedTcpConnection`, which overrides the (name-mangled) read path only.

# Reads per poll event on one connection, so one busy peer cannot hold the Raft thread.
READ_CHUNKS_PER_EVENT = 64
# Connections that have not yet named their node (before and during the secret handshake).
UNKNOWN_CONNECTIONS_MAX = 32


class _BoundedTcpConnection(TcpConnection):
    _frames: RaftFrameBuffer

    @classmethod
    def adopt(cls, conn: TcpConnection) -> _BoundedTcpConnection:
        conn.__class__ = cls
        assert isinstance(conn, cls)
        conn._frames = RaftFrameBuffer(authenticated=conn.encryptor is None)
        return conn

    def _drop(self, reason: str) -> None:
        log.warning("raft port: dropped a connection: %s", reason)
        self.disconnect()

    def connect(self, host, port):  # type: ignore[no-untyped-def]
        self._frames.clear()
        self._frames.authenticated = self.encryptor is None
        return super().connect(host, port)

    def disconnect(self) -> None:
        frames = getattr(self, "_frames", None)
        if frames is not None:
            frames.clear()
            frames.authenticated = self.encryptor is None
        super().disconnect()

    def _TcpConnection__tryReadBuffer(self) -> None:
        for _ in range(READ_CHUNKS_PER_EVENT):
            if not self._TcpConnection__processRead():
                break
        self._TcpConnection__lastReadTime = raft_monotonic()

    def _TcpConnection__processRead(self) -> bool:
        sock = self._TcpConnection__socket
        if sock is None:
            return False
        try:
            incoming = sock.recv(self._TcpConnection__recvBufferSize)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                self.disconnect()
            return False
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or not incoming:
            self.disconnect()
            return False
        try:
            self._frames.feed(incoming)
        except RaftFrameError as e:
            self._drop(str(e))
            return False
        return True

    def _TcpConnection__processParseMessage(self):  # type: ignore[no-untyped-def]
        try:
            self._frames.recheck()
            data = self._frames.next_frame()
        except RaftFrameError as e:
            self._drop(str(e))
            return None
        if data is None:
            return None
        try:
            if self.encryptor:
                timestamp = self.encryptor.extract_timestamp(data)
                if timestamp < self.recvLastTimestamp:
                    raise ValueError("replayed timestamp")
                self.recvLastTimestamp = timestamp
                data = self.encryptor.decrypt(data)
            message = raft_pickle.loads(zlib.decompress(data))
            if self.recvRandKey:
                rand_key, message = message
                if rand_key != self.recvRandKey:
                    raise ValueError("wrong session key")
        except Exception:  # a frame that does not decrypt: a peer without the secret
            self._drop("a frame failed authentication")
            return None
        self._frames.authenticated = True
        return message


class _BoundedTransport(TCPTransport):
    """pysyncobj's TCP transport whose connections use `_BoundedTcpConnection`."""

    def _onNewIncomingConnection(self, conn):  # type: ignore[no-untyped-def]
        super()._onNewIncomingConnection(conn)
        _BoundedTcpConnection.adopt(conn)
        if len(self._unknownConnections) > UNKNOWN_CONNECTIONS_MAX:
            conn.disconnect()

    def addNode(self, node):  # type: ignore[no-untyped-def]
        super().addNode(node)
        conn = self._connections.get(node)
        if conn is not None and not isinstance(conn, _BoundedTcpConnection):
            _BoundedTcpConnection.adopt(conn)


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    return host == "localhost" or host == "::1" or host.startswith("127.")


@dataclass(frozen=True, slots=True)
class QuorumSettings:
    node_id: int
    voters: Sequence[tuple[int, str]]  # (node id, "host:port") of every voter, this node included
    secret: str | None                 # None only behind controller.quorum.insecure.dev
    data_dir: str
    election_timeout_ms: int = 500
    connection_retry_ms: int = 500
    leader_fallback_ms: int = 2000
    # Sync journal entries and term/vote before acknowledging them (controller/durable_journal.py).
    # Off only to measure what durability costs (bench/quorum_bench.py --compare).
    journal_sync: bool = True


def _private_dir(path: str) -> None:
    """Create `path` (and parents) 0700, or make it 0700; refuse one another user owns."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    owner = os.stat(path).st_uid
    if owner != os.getuid():
        raise QuorumError(f"metadata directory {path} is owned by uid {owner}, not this user ({os.getuid()})")
    os.chmod(path, 0o700)


class Quorum:
    """pysyncobj, configured for a metadata quorum, behind an asyncio-friendly API."""

    def __init__(self, settings: QuorumSettings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self.state = MetadataStateMachine()
        addresses = dict(settings.voters)
        self.self_address = addresses[settings.node_id]
        self.peers = [a for node_id, a in settings.voters if node_id != settings.node_id]
        self.node_by_address = {a: node_id for node_id, a in settings.voters}
        if settings.secret is None and not is_loopback_host(self.self_address.rsplit(":", 1)[0]):
            raise QuorumError(f"controller.quorum.insecure.dev is only allowed on loopback; this controller's Raft "
                              f"address is {self.self_address} (set controller.quorum.secret or "
                              "BROOK_CFG_CONTROLLER_QUORUM_SECRET_FILE)")
        _private_dir(settings.data_dir)
        election_s = settings.election_timeout_ms / 1000.0
        conf = SyncObjConf(
            password=settings.secret,
            appendEntriesUseBatch=False,          # ~1 ms commits instead of ~100 ms (measured)
            # Above the largest command, so one entry is never split into pysyncobj's "transmission"
            # parts: 0.3.17 marks the part that ends at len(entry) as the last, but the parts cut
            # pickle(entry), which protocol 2 makes longer (bytes become latin-1 text, UTF-8 encoded);
            # followers then unpickle truncated data on the Raft thread, over and over (issue 16).
            appendEntriesBatchSizeBytes=RAFT_APPEND_BYTES_MAX,
            raftMinTimeout=election_s,
            raftMaxTimeout=election_s * 2,
            appendEntriesPeriod=min(0.05, election_s / 6),
            connectionTimeout=max(1.0, election_s * 2),
            connectionRetryTime=settings.connection_retry_ms / 1000.0,
            leaderFallbackTimeout=settings.leader_fallback_ms / 1000.0,
            commandsWaitLeader=False,
            dynamicMembershipChange=False,
            journalFile=os.path.join(settings.data_dir, "raft.journal"),
            fullDumpFile=os.path.join(settings.data_dir, "raft.snapshot"),
            logCompactionMinEntries=20_000,
            logCompactionMinTime=300,
            onStateChanged=self._on_state_changed,
            autoTick=True,
        )
        self._state_listeners: list[Callable[[], None]] = []
        self._change_listeners: list[Callable[[], None]] = []
        self.state.on_change = self._on_applied
        # Journal entries and term/vote are durable before this node acknowledges them (see
        # controller/durable_journal.py): KRaft fsyncs its metadata log; pysyncobj alone does not.
        # Every transport is `_BoundedTransport` (bounded, linear framing on the Raft port).
        self.journal: DurableFileJournal | None = None
        if not settings.journal_sync:
            self.syncobj = SyncObj(self.self_address, self.peers, conf=conf, consumers=[self.state],
                                   transportClass=_BoundedTransport)
        else:
            journals: list[DurableFileJournal] = []
            transport = type("BoundedDurableTransport", (_BoundedTransport, sync_before_send_transport(journals)), {})
            with durable_journals(journals):
                self.syncobj = SyncObj(self.self_address, self.peers, conf=conf, consumers=[self.state],
                                       transportClass=transport)
            assert len(journals) == 1, f"expected one durable journal, got {len(journals)}"
            self.journal = journals[0]
            self.state.before_apply = self.journal.sync
        for name in os.listdir(settings.data_dir):  # journal and snapshot: readable by this user only
            path = os.path.join(settings.data_dir, name)
            if os.path.isfile(path):
                os.chmod(path, 0o600)

    # -- events, delivered on the asyncio loop ---------------------------------------------------
    def add_state_listener(self, callback: Callable[[], None]) -> None:
        self._state_listeners.append(callback)

    def add_change_listener(self, callback: Callable[[], None]) -> None:
        self._change_listeners.append(callback)

    def _on_state_changed(self, old: int, new: int) -> None:
        for callback in self._state_listeners:
            self.loop.call_soon_threadsafe(callback)

    def _on_applied(self) -> None:
        for callback in self._change_listeners:
            try:
                self.loop.call_soon_threadsafe(callback)
            except RuntimeError:  # the loop is closed: shutting down
                pass

    # -- queries ---------------------------------------------------------------------------------
    def is_leader(self) -> bool:
        return bool(self.syncobj._isLeader())

    def leader_node_id(self) -> int:
        leader = self.syncobj._getLeader()
        if leader is None:
            return -1
        return self.node_by_address.get(str(getattr(leader, "address", leader)), -1)

    def status(self) -> dict:
        return self.syncobj.getStatus()

    # -- writes ----------------------------------------------------------------------------------
    async def submit(self, records: Sequence[Record], base_offset: int, request_id: str | None = None,
                     timeout_s: float = 5.0) -> ApplyResult:
        """Replicate one command and wait for it to be applied here."""
        request_id_used = request_id or uuid.uuid4().hex
        data = encode_command(request_id_used, base_offset, records)
        if len(data) * 2 + 1024 >= RAFT_APPEND_BYTES_MAX:  # its pickle (protocol 2) may double it
            raise QuorumError(f"metadata command of {len(data)} bytes is too large for one Raft entry")
        if all(type(r) in _DECODE_SKIPPABLE for r in records):  # CreateTopics / CreatePartitions
            self.state.remember(data, (request_id_used, base_offset, list(records)))
        future: asyncio.Future[ApplyResult] = self.loop.create_future()

        def done(result: ApplyResult | None, error: int) -> None:
            def settle() -> None:
                if future.done():
                    return
                if error == FAIL_REASON.SUCCESS and result is not None:
                    future.set_result(result)
                else:
                    future.set_exception(QuorumError(_FAIL_TEXT.get(error, f"raft error {error}")))
            self.loop.call_soon_threadsafe(settle)

        self.state.apply_command(data, callback=done)
        try:
            return await wait_for(future, timeout_s)
        except TimeoutError as e:
            raise QuorumError(f"metadata write not committed within {timeout_s:.1f}s "
                              "(is a majority of controllers reachable?)") from e

    def close(self) -> None:
        try:
            self.syncobj.destroy()
        except Exception:  # best effort on shutdown
            log.debug("syncobj destroy failed", exc_info=True)


_FAIL_TEXT = {
    FAIL_REASON.QUEUE_FULL: "the metadata command queue is full",
    FAIL_REASON.MISSING_LEADER: "the controller quorum has no leader",
    FAIL_REASON.DISCARDED: "the metadata command was discarded by a leader change",
    FAIL_REASON.NOT_LEADER: "this controller is not the leader",
    FAIL_REASON.LEADER_CHANGED: "the controller leader changed",
    FAIL_REASON.REQUEST_DENIED: "the metadata command was denied",
}
