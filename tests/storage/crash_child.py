"""Child process of test_crash.py: appends to a RocksDB log until it is SIGKILLed.

After each append returns it prints the log end offset ("acked N"), so the parent knows what
was acknowledged. Batch contents are a pure function of (seed, base offset), so the parent can
check every stored batch without being told what was written.
"""

from __future__ import annotations

import random
import sys

from storage.batch import Codec, Record, build_batch
from storage.log import LogConfig
from storage.rocksdb_log import LogManager

TOPIC = b"\x01" * 16
CONFIG = LogConfig(segment_bytes=256 * 1024, retention_ms=-1, retention_bytes=2 * 1024 * 1024)
EPOCH_SPAN = 700  # a new leader epoch every 700 offsets


def expected_batch(seed: int, base_offset: int) -> tuple[list[Record], int]:
    """The records a batch appended at `base_offset` holds, and its compression codec."""
    rng = random.Random(seed * 1_000_003 + base_offset)
    count = rng.randint(1, 20)
    records = [
        Record(b"k%d" % rng.randint(0, 50), rng.randbytes(rng.randint(0, 2000)), 1_000_000 + base_offset + i)
        for i in range(count)
    ]
    return records, rng.choice([Codec.NONE, Codec.NONE, Codec.LZ4])


def main(log_dir: str, seed: int) -> None:
    manager = LogManager(log_dir)
    log = manager.get_or_create(TOPIC, "crash", 0, CONFIG)
    print(f"acked {log.log_end_offset}", flush=True)
    appends = 0
    while True:
        base_offset = log.log_end_offset
        records, codec = expected_batch(seed, base_offset)
        log.append_as_leader(build_batch(records, compression=codec), base_offset // EPOCH_SPAN, base_offset)
        log.set_high_watermark(log.log_end_offset)
        print(f"acked {log.log_end_offset}", flush=True)
        appends += 1
        if appends % 25 == 0:
            log.apply_retention(base_offset)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
