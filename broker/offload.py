"""CPU-heavy broker work off the event loop: compressed produce validation, ListOffsets-by-time decoding
and log compaction run on worker threads; the event loop only hands work over and applies results.

Threads, not processes: the inputs are bytes already in memory (a process would copy them), and the heavy
part is decompression, which zlib, zstd and lz4 do with the GIL released. Record parsing after
decompression is Python and holds the GIL, so the loop still shares the interpreter with it, in 5 ms
switch intervals instead of waiting for the whole batch or segment.

Memory is bounded by the number of workers: each works on one batch at a time (at most
32 x max.message.bytes decompressed, storage/compression.py), the cleaner (one thread, as Kafka's
log.cleaner.threads=1) on one partition at a time with its bounded key map
(log.cleaner.dedupe.buffer.size) and at most CLEANER_CHUNK_BYTES of rewritten batches between apply
steps. The log itself stays single-threaded (storage/log.py): workers read only snapshots, the loop
applies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from storage.append import check_compressed_request, find_record_at_or_after, has_compressed_batches
from storage.compaction import CLEANER_CHUNK_BYTES, take_chunk
from storage.compression import decompressed_bytes_max

__all__ = ["Offload"]

log = logging.getLogger("brook.broker.offload")

T = TypeVar("T")
VALIDATION_THREADS = 2


class Offload:
    """The broker's worker threads: `cpu` for produce validation and ListOffsets, `cleaner` for compaction."""

    def __init__(self, validation_threads: int = VALIDATION_THREADS) -> None:
        self.cpu = ThreadPoolExecutor(max_workers=validation_threads, thread_name_prefix="brook-cpu")
        self.cleaner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="brook-cleaner")

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def check_produce(self, records: bytes, max_message_bytes: int) -> bool:
        """LogValidator's checks of the request's compressed batches on a worker. True when it ran (so
        the append need not decompress again); raises LogError as the append would."""
        if not has_compressed_batches(records):
            return False
        await self._run(self.cpu, check_compressed_request, records, max_message_bytes)
        return True

    async def offset_for_timestamp(self, log_: Any, timestamp_ms: int) -> tuple[int, int] | None:
        """`log.offset_for_timestamp` with each candidate batch decoded on a worker."""
        offset_min = log_.log_start_offset
        size_max = decompressed_bytes_max(log_.config.max_message_bytes)
        for body in log_.timestamp_candidates(timestamp_ms):
            found = await self._run(self.cpu, find_record_at_or_after, body, timestamp_ms, offset_min, size_max)
            if found is not None:
                return found
        return None

    async def compact(self, log_: Any, now_ms: int, chunk_bytes: int = CLEANER_CHUNK_BYTES) -> int:
        """One compaction pass of `log_`: planned on the cleaner thread, applied here chunk by chunk (each
        only if no truncation or retention overtook the plan). Returns batches rewritten or dropped."""
        job = log_.compaction_job(now_ms)
        if job is None:
            return 0
        cpass = await self._run(self.cleaner, job.plan)
        actions = cpass.actions()
        done = 0
        while chunk := await self._run(self.cleaner, take_chunk, actions, chunk_bytes):
            if not log_.apply_compaction(job, chunk):
                log.info("compaction pass overtaken by a truncation or retention; the next round starts over")
                return done
            done += len(chunk)
        log_.finish_compaction(job, cpass.upto)
        return done

    def close(self) -> None:
        """Wait for running work (a worker may be reading a RocksDB snapshot: the database must outlive
        it), drop queued work."""
        for pool in (self.cpu, self.cleaner):
            pool.shutdown(wait=True, cancel_futures=True)
