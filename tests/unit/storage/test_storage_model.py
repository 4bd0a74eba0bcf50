"""Property test: the RocksDB log always equals the naive in-memory model.

Method: Hypothesis drives random leader and follower appends, truncations, high-watermark moves,
DeleteRecords, retention runs, compaction, config changes and reopens against both logs, and
after every step compares everything observable (offsets, epochs, segments, producer state,
reads from several offsets, timestamp lookups). A failure prints the shortest step sequence.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cluster.errors import LogError
from storage.batch import Codec, Record, build_batch, rewrite_offsets
from storage.log import LogConfig
from storage.memory_log import MemoryLog
from storage.rocksdb_log import LogManager

TOPIC = b"\x07" * 16
CONFIGS = [
    LogConfig(segment_bytes=250, segment_ms=40, retention_ms=-1),
    LogConfig(segment_bytes=400, retention_ms=60, cleanup_policy="compact,delete", delete_retention_ms=20),
    LogConfig(segment_bytes=200, retention_ms=-1, retention_bytes=500),
    LogConfig(segment_bytes=300, cleanup_policy="compact", delete_retention_ms=0),
]
record_lists = st.lists(
    st.tuples(st.sampled_from([b"a", b"b", b"c", None]), st.sampled_from([b"1", b"22", None])),
    min_size=1, max_size=4,
)


class LogComparison(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="brook-model-")
        self.config = CONFIGS[0]
        self.manager = LogManager(self.directory)
        self.real = self.manager.get_or_create(TOPIC, "t", 0, self.config)
        self.model = MemoryLog(self.config)
        self.now_ms = 0
        self.epoch = 0
        self.sequences: dict[int, int] = {}

    def teardown(self) -> None:
        self.manager.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _both(self, action):
        """Run `action` on both logs: both must fail the same way or both succeed alike."""
        outcomes = []
        for log in (self.model, self.real):
            try:
                outcomes.append(("ok", action(log)))
            except LogError as error:
                outcomes.append(("error", error.code))
        assert outcomes[0] == outcomes[1], outcomes
        return outcomes[0]

    def _batch(self, records, codec, producer_id):
        self.now_ms += 7
        sequence = self.sequences.get(producer_id, 0)
        built = build_batch(
            [Record(k, v, self.now_ms + i) for i, (k, v) in enumerate(records)], compression=codec,
            producer_id=producer_id, producer_epoch=0 if producer_id >= 0 else -1,
            base_sequence=sequence if producer_id >= 0 else -1,
        )
        if producer_id >= 0:
            self.sequences[producer_id] = sequence + len(records)
        return built

    @rule(batches=st.lists(record_lists, min_size=1, max_size=3), codec=st.sampled_from([Codec.NONE, Codec.LZ4]),
          producer_id=st.sampled_from([-1, 1, 2]), bump=st.booleans())
    def append_as_leader(self, batches, codec, producer_id, bump):
        self.epoch += int(bump)
        payload = b"".join(self._batch(records, codec, producer_id) for records in batches)
        self._both(lambda log: log.append_as_leader(payload, self.epoch, self.now_ms))

    @rule(batches=st.lists(record_lists, min_size=1, max_size=3), bump=st.booleans(), gap=st.sampled_from([0, 0, 1]))
    def append_as_follower(self, batches, bump, gap):
        self.epoch += int(bump)
        offset = self.model.log_end_offset + gap
        payload = b""
        for records in batches:
            payload += rewrite_offsets(self._batch(records, Codec.NONE, -1), offset, self.epoch)
            offset += len(records)
        self._both(lambda log: log.append_as_follower(payload))

    @rule(back=st.integers(0, 12))
    def truncate_to(self, back):
        target = max(0, self.model.log_end_offset - back)
        self._both(lambda log: log.truncate_to(target))

    @rule(ahead=st.integers(0, 5))
    def truncate_fully(self, ahead):
        target = self.model.log_end_offset + ahead
        self._both(lambda log: log.truncate_fully_and_start_at(target))

    @rule(fraction=st.floats(0, 1.2))
    def set_high_watermark(self, fraction):
        target = int(self.model.log_end_offset * fraction)
        self._both(lambda log: log.set_high_watermark(target))

    @rule(fraction=st.floats(0, 1.1))
    def delete_records(self, fraction):
        target = int(self.model.high_watermark * fraction)
        self._both(lambda log: log.delete_records_before(target))

    @rule(advance=st.integers(0, 200))
    def retention(self, advance):
        self.now_ms += advance
        self._both(lambda log: log.apply_retention(self.now_ms))

    @rule()
    def compact(self):
        self._both(lambda log: log.maybe_compact(self.now_ms))

    @rule(index=st.integers(0, len(CONFIGS) - 1))
    def change_config(self, index):
        self.config = CONFIGS[index]
        self._both(lambda log: log.update_config(self.config))

    @precondition(lambda self: True)
    @rule()
    def reopen(self):
        self.manager.close()
        self.manager = LogManager(self.directory)
        self.real = self.manager.get_or_create(TOPIC, "t", 0, self.config)

    @invariant()
    def logs_are_equal(self):
        real, model = self.real, self.model
        assert (real.log_start_offset, real.log_end_offset, real.high_watermark) == (
            model.log_start_offset, model.log_end_offset, model.high_watermark)
        assert real.epoch_entries() == model.epoch_entries()
        assert real.segments() == model.segments()
        assert real.producer_entries() == model.producer_entries()
        start, end = model.log_start_offset, model.log_end_offset
        for offset in sorted({start, (start + end) // 2, end}):
            for max_bytes in (1, 300, 1 << 20):
                assert real.read(offset, max_bytes, model.high_watermark) == model.read(offset, max_bytes, model.high_watermark)
        assert real.read(start, 1 << 20, end) == model.read(start, 1 << 20, end)
        for timestamp in (0, self.now_ms - 30, self.now_ms):
            assert real.offset_for_timestamp(timestamp) == model.offset_for_timestamp(timestamp)
        for producer_id in (1, 2):
            sequence = self.sequences.get(producer_id, 0)
            assert real.check_producer_batch(producer_id, 0, sequence, sequence) == model.check_producer_batch(
                producer_id, 0, sequence, sequence)


LogComparison.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_rocksdb_log_matches_memory_model = pytest.mark.timeout(120)(LogComparison.TestCase)
