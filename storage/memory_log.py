"""An in-memory PartitionLog with the same semantics as the RocksDB one.

Deliberately naive (a list of batches, linear scans) so it can serve as the model the RocksDB log
is checked against in the property tests; also a fast stand-in in broker unit tests.
"""

from __future__ import annotations

from cluster.errors import ErrorCode, LogError
from storage.append import (
    PreparedAppend,
    find_record_at_or_after,
    prepare_follower_append,
    prepare_leader_append,
)
from storage.batch import BatchHeader, parse_header
from storage.compaction import plan_compaction
from storage.compression import decompressed_bytes_max
from storage.epoch_cache import EpochCache
from storage.log import AppendInfo, EpochEntry, LogConfig, ProducerCheck, ReadResult
from storage.producer_state import ProducerEntry, ProducerStateTable
from storage.segments import Segment, select_segments_to_delete, should_roll
from storage.txn_index import AbortedTxn, TxnIndex

__all__ = ["MemoryLog"]


class MemoryLog:
    """A PartitionLog kept in a Python list."""

    def __init__(self, config: LogConfig | None = None, start_offset: int = 0) -> None:
        self._config = config or LogConfig()
        self._batches: list[tuple[BatchHeader, bytes]] = []
        self._segments: list[Segment] = [Segment(start_offset)]
        self._epochs = EpochCache()
        self._producers = ProducerStateTable()
        self._txns = TxnIndex()
        self._log_start_offset = self._log_end_offset = self._high_watermark = start_offset
        self._cleaner_offset = start_offset

    # Offsets and configuration.
    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @property
    def config(self) -> LogConfig:
        return self._config

    def segments(self) -> list[Segment]:
        return list(self._segments)

    def update_config(self, config: LogConfig) -> None:
        self._config = config

    def set_high_watermark(self, high_watermark: int) -> None:
        self._high_watermark = min(max(high_watermark, self._log_start_offset), self._log_end_offset)

    # Appends.
    def append_as_leader(self, records: bytes, leader_epoch: int, now_ms: int) -> AppendInfo:
        prepared = prepare_leader_append(
            records, leader_epoch, now_ms, self._config, self._log_end_offset, self._epochs.latest_epoch()
        )
        return self._apply(prepared, now_ms)

    def append_as_follower(self, records: bytes, now_ms: int | None = None) -> AppendInfo:
        prepared = prepare_follower_append(records, self._config, self._log_end_offset, self._epochs.latest_epoch())
        return self._apply(prepared, prepared.max_timestamp if now_ms is None else now_ms)

    def _apply(self, prepared: PreparedAppend, now_ms: int) -> AppendInfo:
        if should_roll(self._segments[-1], prepared.size_bytes, now_ms, self._config):
            self._segments.append(Segment(self._log_end_offset))
        self._segments[-1] = self._segments[-1].with_append(prepared.size_bytes, prepared.max_timestamp, now_ms)
        self._batches.extend(prepared.batches)
        for epoch, start_offset in prepared.epoch_starts:
            self._epochs.assign(epoch, start_offset)
        self._producers.update(header for header, _ in prepared.batches)
        self._txns.update(prepared.batches)
        self._log_end_offset = prepared.batches[-1][0].next_offset
        return AppendInfo(
            prepared.first_offset, prepared.last_offset, prepared.log_append_time_ms,
            tuple(header for header, _ in prepared.batches), prepared.size_bytes,
        )

    # Reads.
    def read(self, offset: int, max_bytes: int, upper_bound: int, min_one: bool = True) -> ReadResult:
        if offset < self._log_start_offset or offset > self._log_end_offset:
            raise LogError(
                f"offset {offset} outside [{self._log_start_offset}, {self._log_end_offset}]",
                ErrorCode.offset_out_of_range,
            )
        chosen: list[bytes] = []
        total = 0
        first_offset = next_offset = offset
        for header, batch in self._batches:
            if header.last_offset < offset:
                continue
            if header.last_offset >= upper_bound:
                break
            if total + len(batch) > max_bytes and (chosen or not min_one):
                break
            if not chosen:
                first_offset = header.base_offset
            chosen.append(batch)
            total += len(batch)
            next_offset = header.next_offset
        return ReadResult(b"".join(chosen), first_offset, next_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        for header, batch in self._batches:
            if header.last_offset < self._log_start_offset or header.max_timestamp < timestamp_ms:
                continue
            found = find_record_at_or_after(batch, timestamp_ms, self._log_start_offset,
                                            decompressed_bytes_max(self._config.max_message_bytes))
            if found is not None:
                return found
        return None

    # Epochs and producers.
    def latest_epoch(self) -> int:
        return self._epochs.latest_epoch()

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        return self._epochs.end_offset_for_epoch(epoch, self._log_end_offset)

    def epoch_entries(self) -> list[EpochEntry]:
        return self._epochs.entries()

    def assign_epoch(self, epoch: int, start_offset: int) -> bool:
        return self._epochs.assign(epoch, start_offset)

    def check_producer_batch(
        self, producer_id: int, producer_epoch: int, base_sequence: int, last_sequence: int
    ) -> ProducerCheck:
        return self._producers.check(producer_id, producer_epoch, base_sequence, last_sequence)

    def producer_entries(self) -> dict[int, ProducerEntry]:
        return dict(self._producers.entries())

    # Transactions.
    def first_unstable_offset(self) -> int | None:
        return self._txns.first_unstable_offset()

    def ongoing_transactions(self) -> dict[int, int]:
        return self._txns.ongoing()

    def aborted_transactions(self, start_offset: int, upper_offset: int) -> list[AbortedTxn]:
        return self._txns.aborted(start_offset, upper_offset)

    # Truncation and deletion.
    def truncate_to(self, offset: int) -> None:
        if offset >= self._log_end_offset:
            # No data to cut, but an epoch this replica recorded on election without appending
            # anything starts at the log end: it is not part of any leader's history (Kafka too).
            self._epochs.truncate_from_end(self._log_end_offset)
            return
        straddling = [h for h, _ in self._batches if h.base_offset < offset <= h.last_offset]
        new_end = straddling[0].base_offset if straddling else offset
        if offset < self._log_start_offset or new_end < self._log_start_offset:
            # Below the log start nothing survives; Kafka restarts the log at the target.
            self.truncate_fully_and_start_at(min(offset, self._log_start_offset))
            return
        self._batches = [(h, b) for h, b in self._batches if h.base_offset < new_end]
        self._segments = [s for s in self._segments if s.base_offset <= new_end] or [Segment(new_end)]
        active = self._segments[-1]
        kept = [h for h, _ in self._batches if h.base_offset >= active.base_offset]
        self._segments[-1] = Segment(
            active.base_offset, sum(h.size_bytes for h in kept), active.created_ms,
            max((h.max_timestamp for h in kept), default=-1),
        )
        self._epochs.truncate_from_end(new_end)
        self._producers.truncate(new_end, (h for h, _ in reversed(self._batches)))
        self._txns.truncate(new_end)
        self._log_end_offset = new_end
        self._high_watermark = min(self._high_watermark, new_end)
        self._cleaner_offset = min(self._cleaner_offset, new_end)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        self._batches = []
        self._segments = [Segment(offset)]
        self._epochs.clear()
        self._producers.clear()
        self._txns.clear()
        self._log_start_offset = self._log_end_offset = self._high_watermark = offset
        self._cleaner_offset = offset

    def delete_records_before(self, offset: int) -> int:
        if offset > self._high_watermark or offset < 0:
            raise LogError(
                f"cannot delete before {offset}: high watermark is {self._high_watermark}", ErrorCode.offset_out_of_range
            )
        if offset > self._log_start_offset:
            self._advance_log_start(offset)
            self._delete_leading_segments(
                select_segments_to_delete(self._segments, self._log_start_offset, self._high_watermark, 0, _NO_RETENTION)
            )
        return self._log_start_offset

    def apply_retention(self, now_ms: int) -> int:
        count = select_segments_to_delete(
            self._segments, self._log_start_offset, self._high_watermark, now_ms, self._config
        )
        self._delete_leading_segments(count)
        return count

    def _advance_log_start(self, offset: int) -> None:
        self._log_start_offset = offset
        self._epochs.truncate_from_start(offset)
        self._txns.drop_before(offset)
        self._high_watermark = max(self._high_watermark, offset)

    def _delete_leading_segments(self, count: int) -> None:
        if count == 0:
            return
        self._segments = self._segments[count:]
        base = self._segments[0].base_offset
        self._batches = [(h, b) for h, b in self._batches if h.base_offset >= base]
        if base > self._log_start_offset:
            self._advance_log_start(base)

    # Compaction.
    def maybe_compact(self, now_ms: int) -> int:
        end = self._segments[-1].base_offset
        if not self._config.compact or end <= self._cleaner_offset:
            return 0
        closed = [(h.base_offset, b) for h, b in self._batches if h.base_offset < end]
        actions = {a.base_offset: a.batch for a in plan_compaction(
            lambda: closed, now_ms, self._config.delete_retention_ms,
            decompressed_bytes_max(self._config.max_message_bytes))}
        rebuilt: list[tuple[BatchHeader, bytes]] = []
        for header, batch in self._batches:
            if header.base_offset not in actions:
                rebuilt.append((header, batch))
            elif (replacement := actions[header.base_offset]) is not None:
                rebuilt.append((parse_header(replacement), replacement))
        self._batches = rebuilt
        self._segments = [
            Segment(s.base_offset, self._bytes_between(s.base_offset, n), s.created_ms, s.max_timestamp)
            for s, n in zip(self._segments, [s.base_offset for s in self._segments[1:]] + [1 << 62], strict=True)
        ]
        self._cleaner_offset = end
        return len(actions)

    def _bytes_between(self, start: int, end: int) -> int:
        return sum(h.size_bytes for h, _ in self._batches if start <= h.base_offset < end)

    def flush_due(self) -> bool:
        return False

    def flush(self) -> None:
        """Nothing to flush: memory is the medium."""

    def close(self) -> None:
        """Nothing to release."""


_NO_RETENTION = LogConfig(retention_ms=-1, retention_bytes=-1)
