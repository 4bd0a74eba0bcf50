"""Segments as logical offset ranges, and the pure decisions about them (roll, retention).

A segment is [base_offset, next segment's base_offset) and the last one (the active segment)
runs to the log end offset. Only whole closed segments are ever deleted; the active one never is.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

from storage.log import LogConfig

__all__ = ["Segment", "decode_segment", "encode_segment", "select_segments_to_delete", "should_roll"]

_SEGMENT = struct.Struct(">qqq")  # size_bytes, created_ms, max_timestamp


@dataclass(frozen=True, slots=True)
class Segment:
    """A logical segment. `created_ms` is the clock of its first append (segment.ms counts from it)."""

    base_offset: int
    size_bytes: int = 0
    created_ms: int = -1
    max_timestamp: int = -1

    def with_append(self, size_bytes: int, max_timestamp: int, now_ms: int) -> Segment:
        """The segment after appending `size_bytes`; an empty segment starts its clock now."""
        created_ms = now_ms if self.size_bytes == 0 else self.created_ms
        return replace(
            self,
            size_bytes=self.size_bytes + size_bytes,
            created_ms=created_ms,
            max_timestamp=max(self.max_timestamp, max_timestamp),
        )


def encode_segment(segment: Segment) -> bytes:
    return _SEGMENT.pack(segment.size_bytes, segment.created_ms, segment.max_timestamp)


def decode_segment(base_offset: int, value: bytes) -> Segment:
    size_bytes, created_ms, max_timestamp = _SEGMENT.unpack(value)
    return Segment(base_offset, size_bytes, created_ms, max_timestamp)


def should_roll(active: Segment, append_bytes: int, now_ms: int, config: LogConfig) -> bool:
    """Roll before an append when the active segment is non-empty and would pass segment.bytes,
    or has been open for segment.ms. An empty segment never rolls, so one oversized append still
    lands somewhere (Kafka does the same: the check is per append call, not per batch)."""
    if active.size_bytes == 0:
        return False
    if active.size_bytes + append_bytes > config.segment_bytes:
        return True
    return now_ms - active.created_ms >= config.segment_ms


def _retention_timestamp(segment: Segment) -> int:
    """A segment's age for retention.ms: its largest record timestamp, else its creation clock."""
    return segment.max_timestamp if segment.max_timestamp >= 0 else segment.created_ms


def select_segments_to_delete(
    segments: Sequence[Segment],
    log_start_offset: int,
    high_watermark: int,
    now_ms: int,
    config: LogConfig,
) -> int:
    """How many leading segments retention may delete now.

    A closed segment is deletable when it lies wholly below the log start offset (DeleteRecords),
    or, with cleanup.policy containing 'delete', when it is older than retention.ms or the log
    without it is still at least retention.bytes. Only segments wholly below the high watermark
    qualify (consumers may still need uncommitted data to become committed), and the scan stops at
    the first segment that is kept, so the log stays a contiguous suffix.
    """
    total_bytes = sum(segment.size_bytes for segment in segments)
    excess_bytes = total_bytes - config.retention_bytes
    count = 0
    for index in range(len(segments) - 1):  # the active segment is never deleted
        segment, end_offset = segments[index], segments[index + 1].base_offset
        if end_offset > high_watermark:
            break
        below_start = end_offset <= log_start_offset
        too_old = config.delete and config.retention_ms >= 0 and (
            _retention_timestamp(segment) < now_ms - config.retention_ms
        )
        too_big = config.delete and config.retention_bytes >= 0 and excess_bytes - segment.size_bytes >= 0
        if not (below_start or too_old or too_big):
            break
        excess_bytes -= segment.size_bytes
        count += 1
    return count
