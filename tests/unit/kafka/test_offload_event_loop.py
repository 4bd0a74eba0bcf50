"""CPU-heavy work runs off the event loop (issue 11, point 2): while a compaction, a compressed produce
validation or a ListOffsets-by-time decode is in progress on a worker thread, the same event loop still
answers a Kafka ApiVersions request.

Each piece of work is made to wait, inside the worker, until the test has received its ApiVersions answer
(a threading.Event with a bound). Ordering is the evidence: off the loop, the answer comes first and the
work finishes after; on the loop, the wait would hold the loop, the request could not be answered until
the bound ran out, and the work would finish first. Nothing is timed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest
from wire_helpers import FakeCore, WireClient, sample_request

import broker.offload as offload_module
from broker.kafka.server import start_kafka_listener
from broker.offload import Offload
from storage.batch import Record, build_batch
from storage.compression import Codec
from storage.log import LogConfig
from storage.memory_log import MemoryLog

pytestmark = pytest.mark.timeout(60)
WAIT_BOUND_S = 10.0  # only reached when the work runs on the loop (the failure this test is about)


class _Gate:
    """Blocks the worker until the test opens it; records the order of events."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Event()
        self.events: list[str] = []

    def wait(self) -> None:
        self.entered.set()
        self.open.wait(WAIT_BOUND_S)


def _race(work: Callable[[_Gate], Any]) -> list[str]:
    """Start `work` (a coroutine factory), then ask the listener for ApiVersions on the same loop."""
    gate = _Gate()

    async def main() -> None:
        core = FakeCore()
        listener = await start_kafka_listener(core, "127.0.0.1", 0)
        core.set_port(listener.port)
        client = await WireClient.connect(listener.port)
        try:
            async def run_work() -> None:
                await work(gate)
                gate.events.append("work done")

            task = asyncio.get_running_loop().create_task(run_work())
            await asyncio.sleep(0)  # the work starts (and, if it ran on the loop, would hold it from here)
            response = await client.call(sample_request(18, 3))
            assert response.error_code == 0
            gate.events.append("ApiVersions answered")
            gate.open.set()
            await task
        finally:
            gate.open.set()
            await client.close()
            await listener.close()

    asyncio.run(main())
    assert gate.entered.is_set(), "the work reached its gate"
    return gate.events


def _compacted_log() -> MemoryLog:
    log = MemoryLog(LogConfig(cleanup_policy="compact", segment_bytes=300, delete_retention_ms=0))
    for i in range(200):
        log.append_as_leader(build_batch([Record(b"k%d" % (i % 7), b"v%d" % i, 1000)]), 0, 1000)
    log.set_high_watermark(log.log_end_offset)
    return log


def test_compaction_runs_while_the_loop_answers() -> None:
    log = _compacted_log()
    real_job = log.compaction_job

    def gated_job(gate: _Gate) -> Callable[[int], Any]:
        def job(now_ms: int) -> Any:
            found = real_job(now_ms)
            read = found.read

            def slow_read() -> Any:
                gate.wait()
                return read()
            return dataclasses.replace(found, read=slow_read)
        return job

    offload = Offload()

    async def work(gate: _Gate) -> None:
        log.compaction_job = gated_job(gate)  # type: ignore[method-assign]
        assert await offload.compact(log, 2000) > 0

    try:
        assert _race(work) == ["ApiVersions answered", "work done"]
    finally:
        offload.close()


def test_compressed_produce_validation_runs_while_the_loop_answers(monkeypatch) -> None:
    batch = build_batch([Record(b"k", b"x" * 1000, 1000) for _ in range(50)], compression=Codec.ZSTD)
    real = offload_module.check_compressed_request
    offload = Offload()

    async def work(gate: _Gate) -> None:
        def gated(records: bytes, max_message_bytes: int) -> None:
            gate.wait()
            real(records, max_message_bytes)
        monkeypatch.setattr(offload_module, "check_compressed_request", gated)
        assert await offload.check_produce(batch, 1 << 20) is True

    try:
        assert _race(work) == ["ApiVersions answered", "work done"]
    finally:
        offload.close()


def test_list_offsets_by_time_decodes_while_the_loop_answers(monkeypatch) -> None:
    log = MemoryLog(LogConfig())
    log.append_as_leader(build_batch([Record(b"k", b"v%d" % i, 1000 + i) for i in range(20)],
                                     compression=Codec.GZIP), 0, 1000)
    log.set_high_watermark(log.log_end_offset)
    real = offload_module.find_record_at_or_after
    offload = Offload()

    async def work(gate: _Gate) -> None:
        def gated(*args: Any) -> Any:
            gate.wait()
            return real(*args)
        monkeypatch.setattr(offload_module, "find_record_at_or_after", gated)
        assert await offload.offset_for_timestamp(log, 1005) == (5, 1005)

    try:
        assert _race(work) == ["ApiVersions answered", "work done"]
    finally:
        offload.close()


def test_a_decompression_bomb_is_refused_on_the_worker() -> None:
    from cluster.errors import ErrorCode, LogError

    bomb = build_batch([Record(b"k", b"\0" * (40 << 20), 1000)], compression=Codec.ZSTD)  # cap: 32 MiB
    offload = Offload()
    try:
        with pytest.raises(LogError) as refused:
            asyncio.run(offload.check_produce(bomb, 64 * 1024))
        assert refused.value.code == ErrorCode.message_too_large  # MESSAGE_TOO_LARGE (10)
    finally:
        offload.close()
