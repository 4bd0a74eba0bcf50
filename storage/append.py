"""Validate and prepare an append before anything is written (pure; shared by both logs).

Everything that can fail fails here, so a rejected request leaves the log untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from cluster.errors import ErrorCode, LogError
from storage.batch import (
    BatchHeader,
    Codec,
    check_compressed_records,
    decode_batch,
    iter_batches,
    parse_header,
    rewrite_offsets,
    with_log_append_time,
)
from storage.compression import decompressed_bytes_max
from storage.log import LogConfig

__all__ = ["PreparedAppend", "check_compressed_request", "find_record_at_or_after", "has_compressed_batches",
           "prepare_follower_append", "prepare_leader_append"]


@dataclass(frozen=True, slots=True)
class PreparedAppend:
    """Batches ready to store (offsets and epochs final) and the epoch-cache entries they start."""

    batches: tuple[tuple[BatchHeader, bytes], ...]
    epoch_starts: tuple[tuple[int, int], ...]  # (epoch, start offset)
    log_append_time_ms: int
    size_bytes: int
    max_timestamp: int
    records_count: int

    @property
    def first_offset(self) -> int:
        return self.batches[0][0].base_offset

    @property
    def last_offset(self) -> int:
        return self.batches[-1][0].last_offset


def _finish(batches: list[tuple[BatchHeader, bytes]], epoch_starts: list[tuple[int, int]], append_time: int) -> PreparedAppend:
    return PreparedAppend(
        tuple(batches), tuple(epoch_starts), append_time,
        sum(h.size_bytes for h, _ in batches), max(h.max_timestamp for h, _ in batches),
        sum(h.records_count for h, _ in batches),
    )


def prepare_leader_append(
    records: bytes, leader_epoch: int, now_ms: int, config: LogConfig, log_end_offset: int, latest_epoch: int,
    compressed_checked: bool = False,
) -> PreparedAppend:
    """Validate producer batches and assign offsets from `log_end_offset` and `leader_epoch`.
    `compressed_checked`: the caller already ran `check_compressed_request` on `records` (off the event
    loop), so compressed batches are not decompressed again here.

    Raises LogError: the batch errors of `iter_batches`, or FENCED_LEADER_EPOCH if `leader_epoch`
    is older than the newest epoch this log has seen.
    """
    if leader_epoch < latest_epoch:
        raise LogError(f"leader epoch {leader_epoch} is older than the log's {latest_epoch}", ErrorCode.fenced_leader_epoch)
    validated = list(iter_batches(records, strict=True, batch_bytes_max=config.max_message_bytes))
    if not compressed_checked:
        for header, view in validated:
            if header.compression != Codec.NONE and not header.is_control:
                check_compressed_records(header, view, decompressed_bytes_max(config.max_message_bytes))
    log_append_time = config.message_timestamp_type == "LogAppendTime"
    next_offset = log_end_offset
    batches: list[tuple[BatchHeader, bytes]] = []
    for header, view in validated:
        stored = rewrite_offsets(view, next_offset, leader_epoch)
        if log_append_time:
            stored = with_log_append_time(stored, now_ms)
        stored_header = parse_header(stored)
        batches.append((stored_header, stored))
        next_offset = stored_header.next_offset
        assert stored_header.base_offset + header.last_offset_delta + 1 == next_offset
    epoch_starts = [(leader_epoch, log_end_offset)] if leader_epoch > latest_epoch else []
    return _finish(batches, epoch_starts, now_ms if log_append_time else -1)


def has_compressed_batches(records: bytes) -> bool:
    """Whether a produce request holds a compressed (non-control) batch: the ones worth checking off the
    event loop. Reads headers only; a malformed request answers False (append refuses it anyway)."""
    try:
        return any(h.compression != Codec.NONE and not h.is_control for h, _ in iter_batches(records))
    except LogError:
        return False


def check_compressed_request(records: bytes, max_message_bytes: int) -> None:
    """LogValidator's checks of every compressed batch of a produce request (record count, offset deltas),
    each decompressed within the topic's cap. Pure and thread-safe: the broker runs it on a worker thread
    (zlib, zstd and lz4 release the GIL while they decompress). Raises LogError."""
    size_max = decompressed_bytes_max(max_message_bytes)
    for header, view in iter_batches(records, strict=True, batch_bytes_max=max_message_bytes):
        if header.compression != Codec.NONE and not header.is_control:
            check_compressed_records(header, view, size_max)


def prepare_follower_append(records: bytes, config: LogConfig, log_end_offset: int, latest_epoch: int) -> PreparedAppend:
    """Validate batches copied from the leader: offsets must continue at `log_end_offset`.

    A follower's first batch may start past its log end only if its log is empty of data, which
    the caller handles with truncate_fully_and_start_at; here any gap or overlap is an error.
    Leader epochs come from the batches and feed the epoch cache.
    """
    validated = list(iter_batches(records, strict=False, batch_bytes_max=None))
    expected = log_end_offset
    batches: list[tuple[BatchHeader, bytes]] = []
    epoch_starts: list[tuple[int, int]] = []
    running_epoch = latest_epoch
    for header, view in validated:
        if header.base_offset != expected:
            raise LogError(
                f"follower append not contiguous: batch starts at {header.base_offset}, log end offset is {expected}",
                ErrorCode.unknown_server_error,
            )
        if header.partition_leader_epoch > running_epoch:
            epoch_starts.append((header.partition_leader_epoch, header.base_offset))
            running_epoch = header.partition_leader_epoch
        batches.append((header, bytes(view)))
        expected = header.next_offset
    return _finish(batches, epoch_starts, -1)


def find_record_at_or_after(
    batch: bytes, timestamp_ms: int, offset_min: int, size_max: int | None = None
) -> tuple[int, int] | None:
    """The first record of `batch` at offset >= `offset_min` with timestamp >= `timestamp_ms`.

    A batch whose records cannot be decoded within `size_max` decompressed bytes (or at all) is
    answered from its header: its first offset at or after `offset_min` when its max timestamp is
    late enough, which is at or before the exact answer (a consumer reads a few more records).
    """
    try:
        header, records = decode_batch(batch) if size_max is None else decode_batch(batch, size_max)
    except LogError:
        header = parse_header(batch)
        if header.max_timestamp >= timestamp_ms and header.last_offset >= offset_min:
            return max(header.base_offset, offset_min), header.max_timestamp
        return None
    for record in records:
        offset = header.base_offset + record.offset_delta
        if offset >= offset_min and record.timestamp_ms >= timestamp_ms:
            return offset, record.timestamp_ms
    return None
