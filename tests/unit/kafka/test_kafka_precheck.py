"""Crash-proof decoding (issue 11, item 1): no allocation sized by a count beyond the bytes present.

kio's native reader pre-allocates an array from the count a message claims and aborts the process
when the allocation fails; the 21-byte Metadata v12 frame below made it ask for 32 GiB. These run
the decoder in a subprocess under an address-space cap, so an abort shows as a failed test instead
of killing pytest, and allocations a 24 GiB machine would grant still fail.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from broker.kafka.codec import RequestDecodeError, decode_request, encode_request
from tests.fuzz.kafka_fuzz import all_request_classes, random_entity

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[3]

# api_key 3, version 12, correlation id 1, null client id, no header tags; then the topics array:
# compact length 0xFFFFFFFF (claims 2^32 - 2 entries), and one more byte.
METADATA_BOMB = struct.pack(">hhih", 3, 12, 1, -1) + b"\x00" + b"\xff\xff\xff\xff\x0f" + b"\x00"
FRAME_21 = struct.pack(">i", len(METADATA_BOMB)) + METADATA_BOMB

_DECODE = textwrap.dedent("""
    import resource, sys
    cap = 1024 << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from broker.kafka.codec import RequestDecodeError, decode_request
    frame = bytes.fromhex(sys.argv[1])
    try:
        decode_request(frame, {3: (0, 12)})
        print("decoded")
    except RequestDecodeError as e:
        print("refused:", e)
""")


def test_the_21_byte_metadata_frame_is_refused_without_allocating() -> None:
    assert len(FRAME_21) == 21
    proc = subprocess.run([sys.executable, "-c", _DECODE, METADATA_BOMB.hex()], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, f"decoder died with {proc.returncode}: {proc.stderr[-500:]}"
    assert proc.stdout.startswith("refused:") and "claims 4294967294 elements" in proc.stdout, proc.stdout


@pytest.mark.parametrize("claim", [b"\xff\xff\xff\xff\x0f", b"\x80\x80\x80\x40", b"\x81\x80\x04"])
def test_nested_claims_are_checked_against_what_the_parent_has_left(claim: bytes) -> None:
    """A Metadata v12 with one topic whose (tagged-fields) count claims more than the frame holds."""
    body = b"\x02" + bytes(16) + b"\x02t" + claim + b"\x00\x00\x00"
    frame = struct.pack(">hhih", 3, 12, 1, -1) + b"\x00" + body
    with pytest.raises(RequestDecodeError):
        decode_request(frame, {3: (0, 12)})


def test_every_valid_request_of_every_api_and_version_passes_the_check() -> None:
    """The pre-check refuses nothing kio writes: random valid requests of all 300 schemas decode."""
    rng = random.Random(11)
    classes = all_request_classes()
    assert len(classes) > 250
    supported = {key: (0, 100) for key, _, _ in classes}
    for key, version, cls in classes:
        for i in range(4):
            body = random_entity(cls, rng)
            frame = encode_request(body, correlation_id=i)[4:]
            decoded = decode_request(frame, supported)
            assert decoded.body == body, (key, version)


def test_protocol_fuzzer_under_a_memory_cap() -> None:
    """The CI budget of the fuzzer (`make fuzz` runs it longer): mutated requests of every API and
    version, 1.5 GiB address space; any decoder abort or escaped exception fails the run."""
    proc = subprocess.run([sys.executable, "-m", "tests.fuzz.kafka_fuzz", "--seconds", "25", "--memory-mb", "1536",
                           "--seed", "11"], capture_output=True, text=True, cwd=ROOT, timeout=110)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(summary)
    assert proc.returncode == 0, f"fuzzer died with {proc.returncode}: {proc.stderr[-1500:]}"
    assert "crashes=0" in summary
