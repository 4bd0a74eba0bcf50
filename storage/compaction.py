"""Log compaction plan (pure): keep only the latest record per key in the closed segments.

Offsets are preserved: a rewritten batch keeps its base offset and lastOffsetDelta, so the log's
offset ranges, the epoch cache and producer state do not move; gaps appear inside and between
batches. A tombstone (null value) that is the latest for its key is kept until its timestamp is
older than delete.retention.ms, so consumers reading slowly still see the delete.

The key map is bounded (Kafka's `log.cleaner.dedupe.buffer.size`): `compaction_pass` builds it from the
dirty part of the log (from where the last pass ended) until it would exceed `dedupe_bytes_max`, cleans the
closed range below that point with it, and says where it stopped; the next pass continues from there.
Records are kept unless a later record of the same key is in the map, so the clean part (compacted
before, one record per key) needs no map entries. Each key costs len(key) + DEDUPE_ENTRY_OVERHEAD_BYTES
(a Python dict entry, its bytes object and int) against the bound. Actions are produced lazily, so the
caller can apply them in bounded chunks; nothing but the map and one decoded batch is held.

Left as is: control batches and transactional batches (aborted-transaction cleanup needs the
transaction index, which Brook does not have yet) and records with a null key (Kafka rejects
them on compacted topics; we cannot without decoding on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from cluster.errors import LogError
from storage.batch import decode_batch, parse_header, rebuild_batch
from storage.compression import DECOMPRESSED_BYTES_MAX_DEFAULT

__all__ = ["CLEANER_CHUNK_BYTES", "DEDUPE_BYTES_MAX_DEFAULT", "DEDUPE_ENTRY_OVERHEAD_BYTES", "CompactionAction",
           "CompactionJob", "CompactionPass", "compaction_pass", "plan_compaction", "take_chunk"]

DEDUPE_BYTES_MAX_DEFAULT = 128 * 1024 * 1024  # Kafka's log.cleaner.dedupe.buffer.size
DEDUPE_ENTRY_OVERHEAD_BYTES = 100              # a dict slot + a bytes object header + an int, in CPython
CLEANER_CHUNK_BYTES = 8 * 1024 * 1024          # rewritten batches handed to the log per apply step


@dataclass(frozen=True, slots=True)
class CompactionAction:
    """Replace the batch at `base_offset` with `batch`, or delete it when `batch` is None."""

    base_offset: int
    batch: bytes | None


def _decodable(batch: bytes, size_max: int) -> list | None:
    """The batch's records, or None when they cannot be decoded within `size_max` bytes (the batch
    is then kept as is: a corrupt or oversized batch never stops the cleaner)."""
    try:
        return decode_batch(batch, size_max)[1]
    except LogError:
        return None


def _latest_offsets(batches: Iterable[tuple[int, bytes]], size_max: int, dirty_offset: int,
                    bytes_max: int | None) -> tuple[dict[bytes, int], int | None]:
    """The latest offset of each key in the batches from `dirty_offset` on, stopping before the batch that
    would take the map past `bytes_max` (a first batch always fits). Returns the map and the base offset
    of the first batch left out (None: the map reached the end)."""
    latest: dict[bytes, int] = {}
    used = 0
    for base_offset, batch in batches:
        if base_offset < dirty_offset:
            continue
        header = parse_header(batch)
        if header.is_control or header.is_transactional:
            continue
        records = _decodable(batch, size_max)
        if records is None:
            continue
        new = {r.key for r in records if r.key is not None and r.key not in latest}
        cost = sum(len(k) + DEDUPE_ENTRY_OVERHEAD_BYTES for k in new)
        if bytes_max is not None and latest and used + cost > bytes_max:
            return latest, base_offset
        used += cost
        for record in records:
            if record.key is not None:
                latest[record.key] = header.base_offset + record.offset_delta
    return latest, None


@dataclass(frozen=True, slots=True)
class CompactionPass:
    """One pass: `actions()` yields the rewrites below `upto`; `upto` is where the next pass starts
    (None: this pass covered every closed batch). `keys` is the map's size."""

    upto: int | None
    keys: int
    actions: Callable[[], Iterator[CompactionAction]]


def compaction_pass(
    batches: Callable[[], Iterable[tuple[int, bytes]]], now_ms: int, delete_retention_ms: int,
    decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX_DEFAULT, *, dirty_offset: int = 0,
    dedupe_bytes_max: int | None = None,
) -> CompactionPass:
    """Build the key map from `dirty_offset` (bounded by `dedupe_bytes_max`); the pass's actions clean
    every batch below where the map stopped. `batches()` is called once for the map and once by
    `actions()`."""
    latest, upto = _latest_offsets(batches(), decompressed_bytes_max, dirty_offset, dedupe_bytes_max)
    tombstone_horizon_ms = now_ms - delete_retention_ms

    def actions() -> Iterator[CompactionAction]:
        for base_offset, batch in batches():
            if upto is not None and base_offset >= upto:
                return
            header = parse_header(batch)
            if header.is_control or header.is_transactional:
                continue
            records = _decodable(batch, decompressed_bytes_max)
            if records is None:
                continue
            kept = [
                record for record in records
                if record.key is None
                or (
                    latest.get(record.key, base_offset + record.offset_delta) <= base_offset + record.offset_delta
                    and (record.value is not None or record.timestamp_ms >= tombstone_horizon_ms)
                )
            ]
            if len(kept) == len(records):
                continue
            yield CompactionAction(base_offset, rebuild_batch(header, kept) if kept else None)

    return CompactionPass(upto, len(latest), actions)


def plan_compaction(
    batches: Callable[[], Iterable[tuple[int, bytes]]], now_ms: int, delete_retention_ms: int,
    decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX_DEFAULT,
) -> list[CompactionAction]:
    """One unbounded pass over the whole closed range (the map holds every key): find each key's latest
    offset, then rewrite batches that lose records. A batch whose records do not decode within
    `decompressed_bytes_max` bytes is left as it is (and its keys do not count)."""
    return list(compaction_pass(batches, now_ms, delete_retention_ms, decompressed_bytes_max).actions())


@dataclass(frozen=True, slots=True)
class CompactionJob:
    """A compaction of a log's closed range [start, end), planned from a consistent read-only view
    (`read`: a RocksDB snapshot or a copied batch list, safe to iterate from another thread) and applied
    by the log only if nothing else changed the range meanwhile (`generation`, see the logs'
    `apply_compaction`)."""

    generation: int
    start: int
    end: int
    dirty_offset: int
    read: Callable[[], Iterable[tuple[int, bytes]]]
    now_ms: int
    delete_retention_ms: int
    decompressed_bytes_max: int
    dedupe_bytes_max: int | None

    def plan(self) -> CompactionPass:
        """The CPU-heavy part (decoding every closed batch): runs anywhere, touches only `read`."""
        return compaction_pass(self.read, self.now_ms, self.delete_retention_ms, self.decompressed_bytes_max,
                               dirty_offset=self.dirty_offset, dedupe_bytes_max=self.dedupe_bytes_max)


def take_chunk(actions: Iterator[CompactionAction], bytes_max: int = CLEANER_CHUNK_BYTES) -> list[CompactionAction]:
    """The next actions, up to about `bytes_max` bytes of rewritten batches (at least one action, unless
    there are none left)."""
    chunk: list[CompactionAction] = []
    size = 0
    for action in actions:
        chunk.append(action)
        size += len(action.batch or b"")
        if size >= bytes_max:
            break
    return chunk
