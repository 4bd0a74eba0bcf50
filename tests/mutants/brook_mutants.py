"""Deliberately broken Brook builds ("mutants"), each a small monkeypatch of one safety mechanism.

A mutant proves the chaos tester's power: `make chaos-mutants` runs `brook chaos` against a cluster
whose servers run one mutant each and reports whether (and after how many faults / seconds) the
checker found an anomaly. Mutants are applied by `install(name)` from this directory's
`sitecustomize.py` when BROOK_MUTANT names one; nothing here is imported by Brook itself.

Each entry of MUTANTS: name -> (module, description, patch function). The patch runs right after the
module's first import in the server process (an import hook), so the broken function is the one
every caller sees.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["MUTANTS", "TXN_MUTANTS", "describe", "install"]

ENV = "BROOK_MUTANT"


# -- the mutants -------------------------------------------------------------------------------------

def _ack_before_replication(rm: ModuleType) -> None:
    """acks=all acknowledged right after the leader's own append (no wait for the HW)."""
    async def wait_for_hw(self: Any, p: Any, epoch: int, target: int, timeout_ms: int, result: Any) -> Any:
        return result
    rm.ReplicaManager._wait_for_hw = wait_for_hw


def _hw_leader_only(partition: ModuleType) -> None:
    """The high watermark is the leader's own log end offset: followers are not counted."""
    def compute_high_watermark(self: Any, leader_leo: int) -> int:
        return max(self.high_watermark, leader_leo)
    partition.LeaderState.compute_high_watermark = compute_high_watermark


def _no_min_insync(rm: ModuleType) -> None:
    """The HW over the ISR without the min.insync.replicas check: an ISR of the leader alone acknowledges."""
    rm.ReplicaManager.min_insync = lambda self, p: 1


def _no_truncation(fetcher: ModuleType) -> None:
    """A follower never truncates: no OffsetsForLeaderEpoch exchange, and a divergence the leader
    reports on a fetch (KIP-320) is ignored; it keeps whatever its log had."""
    async def truncate(self: Any, parts: list[Any]) -> None:
        for p in parts:
            p.needs_truncation = False
    fetcher.FetcherLoop._truncate = truncate
    original = fetcher.apply_fetch_answer

    def apply_fetch_answer(p: Any, answer: Any, *args: Any, **kwargs: Any) -> None:
        if answer.HasField("diverging_epoch"):
            answer.ClearField("diverging_epoch")
        original(p, answer, *args, **kwargs)
        p.needs_truncation = False
    fetcher.apply_fetch_answer = apply_fetch_answer


def _election_outside_isr(replication: ModuleType) -> None:
    """A clean election may pick a live replica outside the ISR (the first live one in replica order)."""
    original = replication.build_partition_change

    def build_partition_change(topic_id: bytes, partition: int, current: Any, **kwargs: Any) -> Any:
        change = original(topic_id, partition, current, **kwargs)
        if change is None or change.leader in (replication.LEADER_UNCHANGED, replication.NO_LEADER):
            return change
        if kwargs.get("election") is replication.Election.UNCLEAN and change.unclean:
            return change
        acceptable = kwargs["is_acceptable"]
        leader = next((b for b in current.replicas if acceptable(b) and b != current.leader), change.leader)
        if leader == change.leader:
            return change
        isr = change.isr if change.isr is not None else current.isr
        isr = tuple(b for b in current.replicas if b in set(isr) | {leader})
        return type(change)(topic_id=change.topic_id, partition=change.partition, isr=isr, leader=leader,
                            unclean=change.unclean)
    replication.build_partition_change = build_partition_change


def _no_fetch_epoch_check(rm: ModuleType) -> None:
    """The leader answers a replica fetch whatever leader epoch the follower sends."""
    import dataclasses

    original = rm.LeaderSide.read_for_follower

    def read_for_follower(self: Any, replica_id: int, item: Any, budget: int, *args: Any, **kwargs: Any) -> Any:
        p = self.m.partitions.get((item.topic_id, item.partition))
        if p is not None and p.leader is not None and item.current_leader_epoch != p.leader_epoch:
            item = dataclasses.replace(item, current_leader_epoch=p.leader_epoch)
        return original(self, replica_id, item, budget, *args, **kwargs)
    rm.LeaderSide.read_for_follower = read_for_follower


def _no_dedupe(rm: ModuleType) -> None:
    """Idempotent de-duplication off: a retried batch the leader already has is appended again."""
    original = rm.ReplicaManager._check_idempotence

    def check_idempotence(self: Any, p: Any, records: bytes) -> Any:
        result = original(self, p, records)
        if result is not None and result.error == rm.ErrorCode.none:
            return None  # DUPLICATE: append it again
        return result
    rm.ReplicaManager._check_idempotence = check_idempotence


# -- the four acknowledged-write loss paths of issue 10, reintroduced after their fixes ---------------

def _leader_epoch_not_recorded(rm: ModuleType) -> None:
    """Loss path 1 (KAFKA-7415): a new leader does not record its own leader epoch when elected."""
    original = rm.ReplicaManager._become_leader

    def become_leader(self: Any, local: Any) -> None:
        p = self._get_or_create(local)
        cls = type(p.log)
        assign = cls.assign_epoch
        cls.assign_epoch = lambda log, epoch, offset: None  # only for this call (one event-loop step)
        try:
            original(self, local)
        finally:
            cls.assign_epoch = assign
    rm.ReplicaManager._become_leader = become_leader


def _single_truncation_round(fetcher: ModuleType) -> None:
    """Loss path 2 (KIP-279): truncation stops after one OffsetsForLeaderEpoch round."""
    original = fetcher.apply_epoch_answer

    def apply_epoch_answer(p: Any, *args: Any, **kwargs: Any) -> None:
        original(p, *args, **kwargs)
        p.needs_truncation = False
    fetcher.apply_epoch_answer = apply_epoch_answer


def _hw_ignores_pending_isr(partition: ModuleType) -> None:
    """Loss path 3 (maximal ISR): the HW is the minimum over the committed ISR only, ignoring a
    pending ISR addition."""
    def compute_high_watermark(self: Any, leader_leo: int) -> int:
        hw = leader_leo
        for replica in self.isr:
            if replica == self.broker_id:
                continue
            progress = self.followers.get(replica)
            hw = min(hw, progress.log_end_offset if progress else -1)
        return max(self.high_watermark, hw)
    partition.LeaderState.compute_high_watermark = compute_high_watermark


def _isr_expansion_ignores_epoch_start(partition: ModuleType) -> None:
    """Loss path 4 (KAFKA-7128): a follower joins the ISR once it reaches the (possibly lagging) HW,
    even below the leader's epoch start offset."""
    original = partition.LeaderState.expand_candidates

    def expand_candidates(self: Any, *args: Any, **kwargs: Any) -> Any:
        saved = self.epoch_start_offset
        self.epoch_start_offset = -1
        try:
            return original(self, *args, **kwargs)
        finally:
            self.epoch_start_offset = saved
    partition.LeaderState.expand_candidates = expand_candidates


MUTANTS: dict[str, tuple[str, str, Callable[[ModuleType], None]]] = {
    "ack-before-replication": ("broker.replica_manager", _ack_before_replication.__doc__ or "",
                               _ack_before_replication),
    "hw-leader-only": ("broker.partition", _hw_leader_only.__doc__ or "", _hw_leader_only),
    "hw-no-min-insync": ("broker.replica_manager", _no_min_insync.__doc__ or "", _no_min_insync),
    "no-truncation": ("broker.fetcher", _no_truncation.__doc__ or "", _no_truncation),
    "election-outside-isr": ("controller.replication", _election_outside_isr.__doc__ or "", _election_outside_isr),
    "no-fetch-epoch-check": ("broker.replica_manager", _no_fetch_epoch_check.__doc__ or "", _no_fetch_epoch_check),
    "no-idempotent-dedupe": ("broker.replica_manager", _no_dedupe.__doc__ or "", _no_dedupe),
    "loss1-epoch-not-recorded": ("broker.replica_manager", _leader_epoch_not_recorded.__doc__ or "",
                                 _leader_epoch_not_recorded),
    "loss2-one-truncation-round": ("broker.fetcher", _single_truncation_round.__doc__ or "",
                                   _single_truncation_round),
    "loss3-hw-ignores-pending-isr": ("broker.partition", _hw_ignores_pending_isr.__doc__ or "",
                                     _hw_ignores_pending_isr),
    "loss4-isr-ignores-epoch-start": ("broker.partition", _isr_expansion_ignores_epoch_start.__doc__ or "",
                                      _isr_expansion_ignores_epoch_start),
}


# Not a mutant of the table: a second defence switched off, to combine with one ("loss1-epoch-not-recorded
# +kip320-off") and show what that defence masks in a black-box run.
def _no_divergence_check(rm: ModuleType) -> None:
    """The leader skips the KIP-320 check on replica fetches (the follower's last fetched epoch is ignored)."""
    import dataclasses

    original = rm.LeaderSide.read_for_follower

    def read_for_follower(self: Any, replica_id: int, item: Any, budget: int, *args: Any, **kwargs: Any) -> Any:
        return original(self, replica_id, dataclasses.replace(item, last_fetched_epoch=-1), budget, *args, **kwargs)
    rm.LeaderSide.read_for_follower = read_for_follower


DEFENCES: dict[str, tuple[str, str, Callable[[ModuleType], None]]] = {
    "kip320-off": ("broker.replica_manager", _no_divergence_check.__doc__ or "", _no_divergence_check),
}


# -- transactions: found by the transactional workload (`brook chaos run --workload txn`) --------------

def _read_committed_ignores_aborted_index(rm: ModuleType) -> None:
    """read_committed ignores the aborted-transaction index: a fetch lists no aborted transaction, so
    the consumer delivers the records of aborted transactions."""
    import dataclasses

    original = rm.ReplicaManager.read_committed

    def read_committed(self: Any, req: Any, read_committed: bool = False) -> Any:
        result = original(self, req, read_committed)
        if read_committed and result.aborted_transactions:
            return dataclasses.replace(result, aborted_transactions=())
        return result
    rm.ReplicaManager.read_committed = read_committed


def _read_committed_ignores_lso(rm: ModuleType) -> None:
    """The last stable offset is the high watermark: read_committed reads into open transactions."""
    def last_stable_offset(self: Any, p: Any) -> int:
        return p.leader.high_watermark
    rm.ReplicaManager.last_stable_offset = last_stable_offset


def _failover_drops_markers(coordinator: ModuleType) -> None:
    """A new transaction coordinator (failover) that loads a transaction in PrepareCommit/PrepareAbort
    completes it without writing its markers: the partitions keep it open until the producer's next
    marker decides it (a later abort aborts the committed records, a later commit commits aborted ones)."""
    import dataclasses

    original_write = coordinator.TransactionCoordinator._write
    original_complete = coordinator.TransactionCoordinator._complete

    async def write(self: Any, part: Any, meta: Any) -> Any:
        error = await original_write(self, part, meta)
        if meta.completing and error == coordinator.ErrorCode.none:
            part.__dict__.setdefault("mutant_prepared_here", set()).add((meta.transactional_id, meta.producer_epoch))
        return error

    async def complete(self: Any, part: Any, meta: Any) -> None:
        if (meta.transactional_id, meta.producer_epoch) not in part.__dict__.get("mutant_prepared_here", set()):
            meta = dataclasses.replace(meta, partitions=frozenset())
        await original_complete(self, part, meta)
    coordinator.TransactionCoordinator._write = write
    coordinator.TransactionCoordinator._complete = complete


TXN_MUTANTS: dict[str, tuple[str, str, Callable[[ModuleType], None]]] = {
    "txn-ignore-aborted-index": ("broker.replica_manager", _read_committed_ignores_aborted_index.__doc__ or "",
                                 _read_committed_ignores_aborted_index),
    "txn-ignore-lso": ("broker.replica_manager", _read_committed_ignores_lso.__doc__ or "",
                       _read_committed_ignores_lso),
    "txn-failover-drops-markers": ("broker.txn.coordinator", _failover_drops_markers.__doc__ or "",
                                   _failover_drops_markers),
}


def _lookup(part: str) -> tuple[str, str, Callable[[ModuleType], None]]:
    return MUTANTS.get(part) or TXN_MUTANTS.get(part) or DEFENCES[part]


def describe(name: str) -> str:
    return " + ".join(_lookup(part)[1] for part in name.split("+"))


# -- activation --------------------------------------------------------------------------------------

class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds `module` with the other finders, and runs `patch` on it right after it executed."""

    def __init__(self, module: str, patch: Callable[[ModuleType], None]) -> None:
        self.module = module
        self.patch = patch

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader, patch = spec.loader, self.patch

        class Loader(importlib.abc.Loader):
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: ModuleType) -> None:
                loader.exec_module(module)  # type: ignore[attr-defined]
                patch(module)
                sys.stderr.write(f"brook mutant active: {ENV}={_active} ({fullname})\n")

        spec.loader = Loader()
        return spec


_active = ""


def install(name: str) -> None:
    """Patch the mutant's module now if it is imported already, else right after its first import."""
    global _active
    parts = name.split("+")  # a mutant combined with switched-off defences: "a+kip320-off"
    unknown = [part for part in parts if part not in MUTANTS and part not in TXN_MUTANTS and part not in DEFENCES]
    if unknown:
        raise SystemExit(f"{ENV}={name!r}: unknown mutant (one of {', '.join([*MUTANTS, *TXN_MUTANTS])}; "
                         f"combinable with +{', +'.join(DEFENCES)})")
    _active = name
    for part in parts:
        module, _, patch = _lookup(part)
        if module in sys.modules:
            patch(sys.modules[module])
        else:
            sys.meta_path.insert(0, _PatchOnImport(module, patch))
