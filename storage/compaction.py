"""Log compaction plan (pure): keep only the latest record per key in the closed segments.

Offsets are preserved: a rewritten batch keeps its base offset and lastOffsetDelta, so the log's
offset ranges, the epoch cache and producer state do not move; gaps appear inside and between
batches. A tombstone (null value) that is the latest for its key is kept until its timestamp is
older than delete.retention.ms, so consumers reading slowly still see the delete.

Left as is: control batches and transactional batches (aborted-transaction cleanup needs the
transaction index, which Brook does not have yet) and records with a null key (Kafka rejects
them on compacted topics; we cannot without decoding on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cluster.errors import LogError
from storage.batch import decode_batch, parse_header, rebuild_batch
from storage.compression import DECOMPRESSED_BYTES_MAX_DEFAULT

__all__ = ["CompactionAction", "plan_compaction"]


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


def _latest_offsets(batches: Iterable[tuple[int, bytes]], size_max: int) -> dict[bytes, int]:
    latest: dict[bytes, int] = {}
    for _, batch in batches:
        header = parse_header(batch)
        if header.is_control or header.is_transactional:
            continue
        records = _decodable(batch, size_max)
        if records is None:
            continue
        for record in records:
            if record.key is not None:
                latest[record.key] = header.base_offset + record.offset_delta
    return latest


def plan_compaction(
    batches: Callable[[], Iterable[tuple[int, bytes]]], now_ms: int, delete_retention_ms: int,
    decompressed_bytes_max: int = DECOMPRESSED_BYTES_MAX_DEFAULT,
) -> list[CompactionAction]:
    """Two passes over the closed range (`batches()` is called twice so nothing is held in memory
    but the key map and one decoded batch): find each key's latest offset, then rewrite batches
    that lose records. A batch whose records do not decode within `decompressed_bytes_max` bytes is
    left as it is (and its keys do not count)."""
    latest = _latest_offsets(batches(), decompressed_bytes_max)
    tombstone_horizon_ms = now_ms - delete_retention_ms
    actions: list[CompactionAction] = []
    for base_offset, batch in batches():
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
                latest.get(record.key) == base_offset + record.offset_delta
                and (record.value is not None or record.timestamp_ms >= tombstone_horizon_ms)
            )
        ]
        if len(kept) == len(records):
            continue
        actions.append(CompactionAction(base_offset, rebuild_batch(header, kept) if kept else None))
    return actions
