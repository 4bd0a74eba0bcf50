"""Pure: whether one replicated metadata command applies, and the image it leads to.

Every controller runs this on every committed command, in log order, so it must be deterministic: no
clock, no I/O, no pysyncobj (controller/quorum.py is the shell that calls it on pysyncobj's thread).

Two guards make replay safe under retries and leader changes, checked in this order:
- `request_id`: a command whose id was already applied is a no-op ("duplicate"). pysyncobj does not
  cancel a timed-out call, so a retry may race the original; the retry carries the original's base
  offset, which is stale once the original applied, so this check must come first.
- `base_offset`: records are computed from an image; if the image moved on before they were applied
  the command is rejected ("conflict") and the writer recomputes (optimistic concurrency). This also
  fences a deposed leader: its stale computations never apply.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cluster.codec import DecodeError, decode_command
from cluster.image import MetadataImage, ReplayError, replay_all
from cluster.records import Record

# How many applied request ids are remembered to make retried commands idempotent. A retry arrives
# within seconds of the original; 10,000 ids cover minutes at the ~1,000 commits/s pysyncobj does here.
REQUEST_IDS_MAX = 10_000

STATUS_OK = "ok"
STATUS_DUPLICATE = "duplicate"
STATUS_CONFLICT = "conflict"
STATUS_INVALID = "invalid"


class QuorumError(Exception):
    """A metadata write could not be committed (no leader, not the leader, timed out)."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    status: str  # "ok" | "duplicate" | "conflict" | "invalid"
    offset: int
    message: str = ""


class RequestIds:
    """The ids of the last `limit` applied commands, oldest first (they go into snapshots in order)."""

    def __init__(self, ids: Iterable[str] = (), limit: int = REQUEST_IDS_MAX) -> None:
        assert limit > 0
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()
        for request_id in ids:
            self.add(request_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, request_id: str) -> None:
        self._ids[request_id] = None
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Applied:
    """The decision on one command. `image` is the new image only when `result.status == "ok"`."""

    result: ApplyResult
    image: MetadataImage
    request_id: str = ""
    base_offset: int = -1
    records: list[Record] = field(default_factory=list)
    replay_error: bool = False  # decoded, but replay refused the records


def apply_command(image: MetadataImage, applied_ids: RequestIds, data: bytes,
                  decoded: tuple[str, int, list[Record]] | None = None) -> Applied:
    """Decide one command against `image`. Mutates nothing: the caller stores the image and the id.

    `decoded` is `decode_command(data)` when the caller already has it (the leader, which encoded
    the command from these records), so a 10,000-record command is not decoded again on the Raft thread.
    """
    try:
        request_id, base_offset, records = decoded if decoded is not None else decode_command(data)
    except DecodeError as e:
        return Applied(ApplyResult(STATUS_INVALID, image.offset, str(e)), image)
    if request_id and request_id in applied_ids:
        return Applied(ApplyResult(STATUS_DUPLICATE, image.offset), image, request_id, base_offset)
    if base_offset != image.offset:
        return Applied(ApplyResult(STATUS_CONFLICT, image.offset), image, request_id, base_offset)
    try:
        after = replay_all(image, records)
    except ReplayError as e:
        return Applied(ApplyResult(STATUS_INVALID, image.offset, str(e)), image, request_id, base_offset,
                       replay_error=True)
    return Applied(ApplyResult(STATUS_OK, after.offset), after, request_id, base_offset, records)
