"""The follower's truncation decision (pure): where its log departs from the leader's.

A follower never truncates by its own high watermark. It asks the leader for the end offset of an
epoch (OffsetsForLeaderEpoch, or the leader volunteers one as a KIP-320 diverging epoch in a fetch
answer) and compares the answer with its own epoch cache:

- The leader knows the epoch we asked about (same epoch in both caches): the histories agree up to
  the smaller of the two end offsets; cut there and stop.
- The leader answered a *lower* epoch (it never had ours): our entries above that epoch are not in
  its history. Cut to where our copy of that lower epoch ends — and ask again with our new latest
  epoch, because our copy of the lower epoch may itself be longer than the leader's (KIP-279).
  Leader {0@0, 2@5, 4@15} vs follower {0@0, 3@10}: ask 3 → leader (2, 15), our epoch 2 is epoch 0
  ending at 10 → cut to 10, again; ask 0 → leader (0, 5) → cut to 5, done.
- The leader knows nothing (end offset -1): nothing can be decided; keep the log.

No clock, no I/O: the fetcher (broker/fetcher.py) feeds answers in and applies the decision; the
simulator calls `decide_truncation` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.epoch_cache import EpochCache
from storage.log import EpochEntry

__all__ = ["TruncationDecision", "decide_truncation"]

UNDEFINED = -1


@dataclass(frozen=True, slots=True)
class TruncationDecision:
    """Cut the log to `truncate_to` (equal to the log end offset: nothing to cut). When `done` is
    False, ask the leader again for the end of the latest epoch left after the cut."""

    truncate_to: int
    done: bool


def decide_truncation(local_epochs: Sequence[EpochEntry], log_end_offset: int, leader_epoch: int,
                      leader_end_offset: int) -> TruncationDecision:
    """The follower's next step given its epoch cache and log end offset and the leader's answer
    (`leader_epoch`, `leader_end_offset`) for the end of an epoch the follower asked about (or the
    diverging epoch the leader sent)."""
    assert log_end_offset >= 0, f"negative log end offset {log_end_offset}"
    if leader_end_offset < 0:
        return TruncationDecision(log_end_offset, True)
    if leader_epoch < 0:
        return TruncationDecision(min(leader_end_offset, log_end_offset), True)
    local_epoch, local_end = EpochCache(list(local_epochs)).end_offset_for_epoch(leader_epoch, log_end_offset)
    if local_epoch < 0:
        # We hold no epoch at or below the leader's: only the leader's end offset bounds us.
        return TruncationDecision(min(leader_end_offset, log_end_offset), True)
    target = min(leader_end_offset, local_end, log_end_offset)
    if local_epoch == leader_epoch:
        return TruncationDecision(target, True)
    # Our history skips the leader's epoch: what we hold of the lower epoch `local_epoch` may
    # extend past where the leader's does, so the exchange continues from there.
    assert local_epoch < leader_epoch, f"local epoch {local_epoch} above the asked {leader_epoch}"
    return TruncationDecision(target, False)
