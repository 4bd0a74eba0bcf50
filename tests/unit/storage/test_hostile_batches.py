"""Decompression bombs and malformed compressed producer batches (issue 11, item 2).

A producer may send a CRC-valid batch whose few KiB of compressed records expand to gigabytes. The
leader refuses it (RECORD_TOO_LARGE) like Kafka's LogValidator refuses a batch it cannot validate;
and a bomb already in a log (copied by a follower, or written before this check) is read by
ListOffsets-by-time and compaction in bounded memory, checked in a subprocess under an address-space
cap, where a decompression that allocates what the bomb expands to fails.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cluster.errors import ErrorCode, LogError
from storage.append import prepare_leader_append
from storage.batch import Record, build_batch
from storage.compression import Codec, decompress
from storage.log import LogConfig
from tests.fuzz.bombs import bomb_batch

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[3]
CODECS = [Codec.GZIP, Codec.SNAPPY, Codec.LZ4, Codec.ZSTD]
CAP = 32 * LogConfig().max_message_bytes  # storage.compression.decompressed_bytes_max


def _bomb_size(codec: int) -> int:
    # Each one over the cap; zstd's ratio lets a 32 KiB batch hold a gigabyte.
    return {Codec.ZSTD: 1 << 30}.get(codec, 64 << 20)


# Snappy expands at most ~21x, so no snappy batch within max.message.bytes passes the 32x cap.
@pytest.mark.parametrize("codec", [Codec.GZIP, Codec.LZ4, Codec.ZSTD], ids=lambda c: Codec(c).name)
def test_a_bomb_is_refused_on_produce_as_record_too_large(codec: int) -> None:
    bomb = bomb_batch(codec, _bomb_size(codec))
    assert len(bomb) <= LogConfig().max_message_bytes  # within max.message.bytes as sent
    with pytest.raises(LogError) as caught:
        prepare_leader_append(bomb, 0, 0, LogConfig(), 0, -1)
    assert caught.value.code == ErrorCode.message_too_large, caught.value


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: Codec(c).name)
def test_decompress_stops_at_the_cap(codec: int) -> None:
    bomb = bomb_batch(codec, 4 << 20)
    payload = bomb[61:]
    with pytest.raises(LogError) as caught:
        decompress(codec, payload, 1 << 20)
    assert caught.value.code == ErrorCode.message_too_large
    assert len(decompress(codec, payload, 8 << 20)) > 4 << 20  # the same data within a larger cap


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: Codec(c).name)
def test_valid_compressed_batches_pass_validation(codec: int) -> None:
    records = [Record(b"k%d" % i, b"v" * i, 1000 + i, (("h", b"x"),)) for i in range(50)]
    batch = build_batch(records, compression=codec)
    prepared = prepare_leader_append(batch, 3, 0, LogConfig(), 10, -1)
    assert prepared.records_count == 50


def _with_count(batch: bytes, count: int) -> bytes:
    """The batch with recordsCount and lastOffsetDelta set to `count` (CRC recomputed)."""
    import crc32c
    out = bytearray(batch)
    struct.pack_into(">i", out, 57, count)
    struct.pack_into(">i", out, 23, count - 1)
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: Codec(c).name)
@pytest.mark.parametrize("claimed", [1, 3, 1_000_000])
def test_record_count_must_match_the_header(codec: int, claimed: int) -> None:
    batch = _with_count(build_batch([Record(b"a", b"1"), Record(b"b", b"2")], compression=codec), claimed)
    with pytest.raises(LogError) as caught:
        prepare_leader_append(batch, 0, 0, LogConfig(), 0, -1)
    assert caught.value.code == ErrorCode.invalid_record


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: Codec(c).name)
def test_offset_deltas_must_be_sequential(codec: int) -> None:
    records = [Record(b"a", b"1", offset_delta=0), Record(b"b", b"2", offset_delta=5), Record(b"c", b"3", offset_delta=2)]
    batch = _with_count(build_batch(records, compression=codec), 3)
    with pytest.raises(LogError) as caught:
        prepare_leader_append(batch, 0, 0, LogConfig(), 0, -1)
    assert caught.value.code == ErrorCode.invalid_record
    assert "offset delta 5" in str(caught.value)


_READER = textwrap.dedent("""
    import resource, sys, tempfile
    cap = int(sys.argv[2]) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from storage.compression import Codec
    from storage.log import LogConfig
    from storage.memory_log import MemoryLog
    from storage.rocksdb_log import LogManager
    from tests.fuzz.bombs import bomb_batch
    from storage.batch import build_batch, Record
    bomb = bomb_batch(Codec.ZSTD, 1 << 30, timestamp_ms=5_000)
    config = LogConfig(cleanup_policy="compact", segment_ms=1, delete_retention_ms=0)
    if sys.argv[1] == "memory":
        log = MemoryLog(config)
    else:
        manager = LogManager(tempfile.mkdtemp())
        log = manager.get_or_create(bytes(16), "bombed", 0, config)
    log.append_as_follower(bomb, now_ms=5_000)           # a bomb already in the log
    for i in range(3):                                  # then ordinary batches, rolling segments
        batch = build_batch([Record(b"k", b"v%d" % i, 6_000 + i)], base_offset=1 + i, partition_leader_epoch=0)
        log.append_as_follower(batch, now_ms=6_000 + i * 10)
    log.set_high_watermark(log.log_end_offset)
    print("by-time", log.offset_for_timestamp(0), log.offset_for_timestamp(5_000), log.offset_for_timestamp(6_001))
    print("compacted", log.maybe_compact(100_000))
    print("read", len(log.read(0, 1 << 20, log.log_end_offset).records))
    print("peak_rss_mib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
""")


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_a_bomb_in_the_log_is_read_in_bounded_memory(kind: str) -> None:
    """ListOffsets-by-time, compaction and fetch over a log holding a 1 GiB zstd bomb, under a
    768 MiB address-space cap: the bomb is answered from its header and left as is."""
    proc = subprocess.run([sys.executable, "-c", _READER, kind, "768"], capture_output=True, text=True,
                          cwd=ROOT, timeout=100)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-2000:]}"
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["by-time"] == "(0, 5000) (0, 5000) (2, 6001)", lines
    assert lines["read"] != "0"
