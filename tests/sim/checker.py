"""Invariants checked after every simulation step and at the end.

1. Every acknowledged record is at its offset in the log of every member of the committed ISR
   (the controller's) and of the leader's own ISR view — so any clean election keeps it; and so is
   every committed record (below the current leader's HW), acknowledged or not.
2. Committed prefixes are identical: below a replica's own high watermark its log equals the
   committed history (what leaders' HWs passed, first come).
3. A leader's HW never decreases within its leader epoch (per process incarnation).
4. At most one broker leads a given leader epoch, and the controller never reuses an epoch.
5. When the client receives an acks=all acknowledgement, at least min.insync.replicas replicas hold
   its records at their offsets.
6. An idempotent producer's record is committed at most once.
7. Truncation's postcondition (KIP-279): a live follower done truncating against the live leader
   of its current epoch holds a prefix of that leader's log.
8. At the end (everything healed, quiet): the leader and every ISR replica hold every acknowledged
   record, and all ISR replicas agree up to the HW.

Logs are read through a small incremental cache (MemoryLog keeps its batches in a list that
appends extend and truncations replace), so a step that changes nothing costs little.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cluster.records import PartitionChange, PartitionRecord
from storage.memory_log import MemoryLog
from tests.sim.cluster import BROKER_IDS, SimCluster, decode_values

MIN_INSYNC = 2  # the simulated topic's min.insync.replicas


class LogView:
    """offset -> value of one MemoryLog, refreshed incrementally."""

    def __init__(self) -> None:
        self.batches_id = 0
        self.seen = 0
        self.values: dict[int, bytes] = {}
        self.version = 0  # bumps when content may have been removed (truncation, new list)

    def refresh(self, log: MemoryLog) -> None:
        batches = log._batches  # noqa: SLF001 - the checker reads the model's contents directly
        if id(batches) != self.batches_id or len(batches) < self.seen:
            self.batches_id, self.seen, self.values = id(batches), 0, {}
            self.version += 1
        for _, batch in batches[self.seen:]:
            for offset, value in decode_values(batch):
                self.values[offset] = value
        self.seen = len(batches)


class Checker:
    def __init__(self, cluster: SimCluster) -> None:
        self.c = cluster
        self.views: dict[tuple[int, int], LogView] = {}   # (broker, id(log)) -> view
        self.committed: list[bytes] = []
        self.epoch_leader: dict[int, int] = {}
        self.hw_seen: dict[tuple[int, int, int], int] = {}  # (broker, incarnation gen, epoch) -> HW
        self.acked_checked: dict[int, tuple[int, int, int]] = {}  # broker -> (view key, version, count)
        self.committed_checked: dict[int, tuple[int, int, int]] = {}  # broker -> (view key, version, upto)
        self.prefix_checked: dict[int, tuple[int, int, int]] = {}  # broker -> (view key, version, upto)
        self.controller_epochs: dict[int, int] = {}
        self.last_fingerprint: tuple[Any, ...] = ()
        self.committed_idempotent: set[bytes] = set()
        self.follower_checked: dict[int, tuple[Any, int]] = {}
        cluster.metadata_listeners.append(self._on_commit)
        cluster.ack_listeners.append(self._on_ack)

    # -- the controller's records ----------------------------------------------------------------
    def _on_commit(self, records: list[Any], image: Any) -> None:
        t = image.topic_by_name("t")
        if t is None:
            return
        for r in records:
            if isinstance(r, (PartitionChange, PartitionRecord)) and r.topic_id == t.topic_id:
                reg = t.partitions[r.partition]
                leader = self.controller_epochs.get(reg.leader_epoch)
                if leader is not None and leader != reg.leader:
                    self.c.violation(f"controller gave leader epoch {reg.leader_epoch} to {leader} and {reg.leader}")
                self.controller_epochs[reg.leader_epoch] = reg.leader

    def _on_ack(self, values: list[bytes], base_offset: int) -> None:
        """acks=all with min.insync.replicas=2: when the client learns of the ack, at least two replicas
        hold each record at its offset (Kafka's promise for the setting)."""
        holders = []
        for bid in BROKER_IDS:
            found = self._view(bid)
            if found is not None and all(found[0].values.get(base_offset + i) == v for i, v in enumerate(values)):
                holders.append(bid)
        if len(holders) < MIN_INSYNC:
            self.c.violation(f"acknowledged {values[0]!r}.. at {base_offset} is held by {len(holders)} replica(s) "
                             f"{holders}, fewer than min.insync.replicas={MIN_INSYNC}")

    # -- helpers ----------------------------------------------------------------------------------
    def _log(self, broker_id: int) -> MemoryLog | None:
        logs = self.c.brokers[broker_id].logs.logs
        return logs.get((self.c.topic_id, 0)) if self.c.topic_id else None

    def _view(self, broker_id: int) -> tuple[LogView, MemoryLog] | None:
        log = self._log(broker_id)
        if log is None:
            return None
        key = (broker_id, id(log))
        view = self.views.get(key)
        if view is None:
            view = self.views[key] = LogView()
        view.refresh(log)
        return view, log

    # -- after every step -------------------------------------------------------------------------
    def check_step(self) -> None:
        c = self.c
        if not c.topic_id:
            return
        key = (c.topic_id, 0)
        fingerprint = self._fingerprint(key)
        if fingerprint == self.last_fingerprint:
            return
        self.last_fingerprint = fingerprint
        for bid in BROKER_IDS:
            broker = c.brokers[bid]
            if broker.b is None:
                continue
            p = broker.b.replicas.partitions.get(key)
            state = p.leader if p is not None else None
            if state is None:
                continue
            owner = self.epoch_leader.setdefault(state.leader_epoch, bid)
            if owner != bid:
                c.violation(f"brokers {owner} and {bid} both lead epoch {state.leader_epoch}")
            hw_key = (bid, broker.node.gen, state.leader_epoch)
            before = self.hw_seen.get(hw_key, -1)
            if state.high_watermark < before:
                c.violation(f"b{bid} HW went back from {before} to {state.high_watermark} in epoch {state.leader_epoch}")
            self.hw_seen[hw_key] = state.high_watermark
            self._extend_committed(bid, state.high_watermark)
        for bid in BROKER_IDS:
            self._check_prefix(bid)
        members = self._isr_members()
        self._check_acked(members)
        self._check_committed_on_isr(members)
        self._check_followers(key)

    def _fingerprint(self, key: tuple[bytes, int]) -> tuple[Any, ...]:
        """Everything the checks read; a step that changes none of it needs no check."""
        c = self.c
        parts: list[Any] = [len(c.state.acked), c.raft.image.offset]
        append = parts.append
        for broker in c.broker_list:
            log = broker.logs.logs.get(key)
            if log is not None:
                batches = log._batches  # noqa: SLF001
                append((id(batches), len(batches), log._high_watermark))  # noqa: SLF001
            b = broker.b
            p = b.replicas.partitions.get(key) if b is not None else None
            state = p.leader if p is not None else None
            if p is None:
                append(None)
            elif state is None:
                append((p.leader_id, p.leader_epoch, p.needs_truncation))
            else:
                append((state.leader_epoch, state.high_watermark, state.isr))
        return tuple(parts)

    def _isr_members(self) -> list[int]:
        """The committed ISR, plus the ISR as the current leader sees it (a deposed leader's view is stale)."""
        members: list[int] = []
        t = self.c.raft.image.topic_by_name("t")
        reg = t.partitions.get(0) if t else None
        if reg is None:
            return members
        members.extend(reg.isr)
        b = self.c.brokers[reg.leader].b if reg.leader in self.c.brokers else None
        p = b.replicas.partitions.get((self.c.topic_id, 0)) if b is not None else None
        if p is not None and p.leader is not None and p.leader.leader_epoch == reg.leader_epoch:
            members.extend(r for r in p.leader.isr if r not in members)
        return members

    def _leader_hw(self) -> int:
        """The HW of the controller's current leader, as that leader has it (-1: no such leader)."""
        t = self.c.raft.image.topic_by_name("t")
        reg = t.partitions.get(0) if t else None
        b = self.c.brokers[reg.leader].b if reg is not None and reg.leader in self.c.brokers else None
        p = b.replicas.partitions.get((self.c.topic_id, 0)) if b is not None else None
        if reg is None or p is None or p.leader is None or p.leader.leader_epoch != reg.leader_epoch:
            return -1
        return p.leader.high_watermark

    def _isr_views(self, members: list[int], checked_by: dict[int, Any]) -> Iterator[tuple[int, Any, Any, int]]:
        """(broker, view, log, resume index) of every ISR member whose log can be read; brokers out of
        the ISR are forgotten in `checked_by`. The resume index is where the previous check of this
        very log version stopped (`checked_by[b]` = (id(log), version, index)), else 0: each check
        is incremental."""
        for bid in BROKER_IDS:
            if bid not in members:
                checked_by.pop(bid, None)
                continue
            found = self._view(bid)
            if found is None:
                continue
            view, log = found
            checked = checked_by.get(bid)
            if checked is not None and checked[0] == id(log) and checked[1] == view.version:
                yield bid, view, log, checked[2]
            else:
                yield bid, view, log, 0

    def _check_committed_on_isr(self, members: list[int]) -> None:
        """Invariant 1 for every committed record, acknowledged or not: below the current leader's HW
        every ISR member holds the committed history (consumers may have read it; any clean
        election must keep it)."""
        upto = min(self._leader_hw(), len(self.committed))
        for bid, view, log, start in self._isr_views(members, self.committed_checked):
            for offset in range(start, upto):
                if view.values.get(offset) != self.committed[offset]:
                    self.c.violation(f"committed record {self.committed[offset]!r} at {offset} (below the leader's HW "
                                     f"{upto}) is not in ISR member b{bid}'s log (it has {view.values.get(offset)!r}, "
                                     f"LEO {log.log_end_offset})")
                    return
            self.committed_checked[bid] = (id(log), view.version, max(start, upto))

    def _check_followers(self, key: tuple[bytes, int]) -> None:
        """Truncation's postcondition (KIP-279): a live follower that has finished truncating against
        the live leader of its current epoch holds a prefix of that leader's log. (Fetching keeps it
        so: the leader only appends within an epoch.)"""
        brokers = self.c.brokers
        for bid in BROKER_IDS:
            b = brokers[bid].b
            p = b.replicas.partitions.get(key) if b is not None else None
            if p is None or p.leader is not None or p.needs_truncation or p.leader_id not in brokers:
                continue
            lb = brokers[p.leader_id].b
            lp = lb.replicas.partitions.get(key) if lb is not None else None
            if lp is None or lp.leader is None or lp.leader_epoch != p.leader_epoch:
                continue
            mine, theirs = self._view(bid), self._view(p.leader_id)
            if mine is None or theirs is None:
                continue
            (view, log), (lview, llog) = mine, theirs
            stamp = (id(log), view.version, id(llog), lview.version, p.leader_epoch)
            done = self.follower_checked.get(bid)
            start = done[1] if done is not None and done[0] == stamp else 0
            end = log.log_end_offset
            for offset in range(max(start, log.log_start_offset), end):
                if offset >= llog.log_end_offset or view.values.get(offset) != lview.values.get(offset):
                    self.c.violation(f"b{bid} follows b{p.leader_id} at epoch {p.leader_epoch}, done truncating, "
                                     f"but at {offset} has {view.values.get(offset)!r} where the leader has "
                                     f"{lview.values.get(offset)!r} (follower LEO {end}, epochs "
                                     f"{[(e.epoch, e.start_offset) for e in log.epoch_entries()]}; leader "
                                     f"{[(e.epoch, e.start_offset) for e in llog.epoch_entries()]})")
                    return
            self.follower_checked[bid] = (stamp, max(start, end))

    def _extend_committed(self, leader_id: int, hw: int) -> None:
        if hw <= len(self.committed):
            return
        found = self._view(leader_id)
        if found is None:
            return
        view, _ = found
        for offset in range(len(self.committed), hw):
            value = view.values.get(offset)
            if value is None:
                self.c.violation(f"b{leader_id} leads with HW {hw} but has no record at {offset}")
                return
            if not value.startswith(b"-1:"):  # an idempotent producer's record: exactly once
                if value in self.committed_idempotent:
                    first = self.committed.index(value)
                    self.c.violation(f"idempotent record {value!r} committed twice, at {first} and {offset}")
                    return
                self.committed_idempotent.add(value)
            self.committed.append(value)

    def _check_prefix(self, broker_id: int) -> None:
        found = self._view(broker_id)
        if found is None:
            return
        view, log = found
        upto = min(log.high_watermark, len(self.committed))
        view_key = id(log)
        start = 0
        checked = self.prefix_checked.get(broker_id)
        if checked is not None and checked[0] == view_key and checked[1] == view.version:
            start = checked[2]
        for offset in range(start, upto):
            value = view.values.get(offset)
            if value != self.committed[offset]:
                self.c.violation(f"b{broker_id} below its HW {log.high_watermark} has {value!r} at {offset}, "
                                 f"the committed record is {self.committed[offset]!r}")
                return
        self.prefix_checked[broker_id] = (view_key, view.version, max(upto, start))

    def _check_acked(self, members: list[int]) -> None:
        acked = self.c.state.acked
        for bid, view, log, start in self._isr_views(members, self.acked_checked):
            for a in acked[start:]:
                if view.values.get(a.offset) != a.value:
                    self.c.violation(f"acknowledged {a.value!r} at {a.offset} (acked at t={a.at_ms}) is not in "
                                     f"ISR member b{bid}'s log (it has {view.values.get(a.offset)!r}, "
                                     f"LEO {log.log_end_offset})")
                    return
            self.acked_checked[bid] = (id(log), view.version, len(acked))

    # -- at the end ---------------------------------------------------------------------------------
    def check_end(self) -> None:
        c = self.c
        self.last_fingerprint = ()
        self.check_step()
        t = c.raft.image.topic_by_name("t")
        reg = t.partitions.get(0) if t else None
        if reg is None:
            c.violation("the topic was never created")
            return
        if reg.leader < 0:
            c.sim.note(f"end: partition offline (ISR {reg.isr}); acknowledged records checked on the ISR")
        members = list(reg.isr) + ([reg.leader] if reg.leader > 0 and reg.leader not in reg.isr else [])
        self.acked_checked.clear()
        self._check_acked(members)
        hws = []
        for bid in members:
            found = self._view(bid)
            if found is not None:
                hws.append(found[1].high_watermark)
        c.sim.note(f"end: leader {reg.leader} epoch {reg.leader_epoch} ISR {list(reg.isr)}; "
                   f"{len(c.state.acked)} acknowledged; committed {len(self.committed)}")
