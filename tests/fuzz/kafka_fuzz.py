"""A Kafka-protocol fuzzer for the request decoder, run under a memory cap.

Every API key and version kio knows: random valid requests are generated from kio's schema classes
and encoded with kio's writer, then mutated with structure-aware mutations (lengths and counts
replaced by huge or negative claims, bit flips, truncation, insertion, splicing two requests, the
header's key or version swapped so one API's bytes are read with another's schema) or replaced by
random bytes. Each frame goes through `broker.kafka.codec.decode_request` with every version
"supported"; only RequestDecodeError / UnsupportedRequest may come out.

The process caps its own address space (`--memory-mb`, RLIMIT_AS) first: a decoder that allocates
what a frame claims fails the allocation — and kio's native code aborts the process on that — so a
crash shows as a non-zero exit even on a machine with far more memory than the cap.

    python -m tests.fuzz.kafka_fuzz --seconds 20 --memory-mb 1536 --seed 1

The last line is a summary: `frames=N apis=K crashes=0 peak_rss_mib=M seconds=S` (per-API counts
above it with --verbose). `make fuzz` runs it for longer.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import random
import resource
import struct
import sys
import time
import types
import typing
import uuid
from collections import Counter
from typing import Any

from kio.index import api_key_map, load_request_schema, schema_name_map
from kio.schema.errors import ErrorCode
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
)

__all__ = ["all_request_classes", "mutate", "random_entity", "seed_frames"]

_INTS = {"int8": 7, "int16": 15, "int32": 31, "int64": 63}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def all_request_classes() -> list[tuple[int, int, Any]]:
    out = []
    for key, name in sorted(api_key_map.items()):
        for version in sorted(schema_name_map[name]):
            try:
                out.append((key, version, load_request_schema(key, version)))
            except Exception:  # a version kio lists but cannot load: not part of what we decode
                continue
    return out


def _primitive(kafka_type: str, optional: bool, rng: random.Random) -> Any:
    if optional and rng.random() < 0.3:
        return None
    if kafka_type == "bool":
        return rng.random() < 0.5
    if kafka_type in _INTS:
        bits = _INTS[kafka_type]
        return rng.choice([0, 1, -1, rng.randint(-(1 << bits), (1 << bits) - 1)])
    if kafka_type == "uint16":
        return rng.randint(0, 0xFFFF)
    if kafka_type == "float64":
        return rng.random()
    if kafka_type == "uuid":
        return uuid.UUID(int=rng.getrandbits(128))
    if kafka_type == "error_code":
        return rng.choice(list(ErrorCode))
    if kafka_type in ("timedelta_i32", "timedelta_i64"):
        return datetime.timedelta(milliseconds=rng.randint(0, 100_000))
    if kafka_type == "datetime_i64":
        return _EPOCH + datetime.timedelta(milliseconds=rng.randint(0, 1 << 41))
    if kafka_type == "string":
        return "".join(rng.choice("abc-_.xyz0123") for _ in range(rng.randint(0, 12)))
    if kafka_type in ("bytes", "records"):
        return rng.randbytes(rng.randint(0, 40))
    raise ValueError(f"unknown kafka_type {kafka_type}")


def _nullable(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (types.UnionType, typing.Union) and type(None) in typing.get_args(annotation)


def _element_nullable(annotation: Any) -> bool:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    inner = args[0] if typing.get_origin(annotation) in (types.UnionType, typing.Union) else annotation
    return _nullable(typing.get_args(inner)[0]) if typing.get_args(inner) else False


def random_entity(cls: Any, rng: random.Random, depth: int = 0) -> Any:
    """A random valid instance of a kio entity class (arrays of 0-3 elements, 0 below depth 4)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        kind = classify_field(field)
        optional = _nullable(field.type)
        if isinstance(kind, EntityTupleField | PrimitiveTupleField):
            if optional and rng.random() < 0.2:
                values[field.name] = None
                continue
            count = rng.randint(0, 3) if depth < 4 else 0
            if isinstance(kind, EntityTupleField):
                values[field.name] = tuple(random_entity(kind.type_, rng, depth + 1) for _ in range(count))
            else:
                values[field.name] = tuple(
                    _primitive(field.metadata["kafka_type"], _element_nullable(field.type), rng)
                    for _ in range(count))
        elif isinstance(kind, EntityField):
            values[field.name] = None if optional and rng.random() < 0.3 else random_entity(kind.type_, rng, depth + 1)
        else:
            values[field.name] = _primitive(field.metadata["kafka_type"], optional, rng)
    return cls(**values)


def seed_frames(rng: random.Random, per_class: int = 3) -> dict[tuple[int, int], list[bytes]]:
    """Valid encoded request payloads (no size prefix) for every API key and version."""
    from broker.kafka.codec import encode_request

    seeds: dict[tuple[int, int], list[bytes]] = {}
    for key, version, cls in all_request_classes():
        frames = []
        for i in range(per_class):
            entity = random_entity(cls, rng)
            frames.append(encode_request(entity, correlation_id=i, client_id=rng.choice([None, "fuzz"]))[4:])
        seeds[(key, version)] = frames
    return seeds


# Claims that make a naive decoder allocate: compact (uvarint) and legacy (int32/int16) lengths.
_HUGE = [
    b"\xff\xff\xff\xff\x0f", b"\xff\xff\xff\x7f", b"\x80\x80\x80\x80\x10", b"\xff\xff\x03",
    struct.pack(">i", 0x7FFFFFFF), struct.pack(">i", 0x0FFFFFFF), struct.pack(">i", 100_000_000),
    struct.pack(">i", -2), struct.pack(">h", 0x7FFF), struct.pack(">h", -2),
]


def mutate(frame: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """One to four mutations of a request payload (header prefix: key, version, correlation id)."""
    out = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["huge", "huge", "huge", "flip", "set", "truncate", "insert", "splice", "version", "key"])
        if kind == "huge" and len(out) > 8:
            i = rng.randint(8, len(out) - 1)
            claim = rng.choice(_HUGE)
            if rng.random() < 0.5:
                out[i:i + len(claim)] = claim  # overwrite
            else:
                out[i:i] = claim  # insert
        elif kind == "flip" and len(out) > 8:
            i = rng.randint(8, len(out) - 1)
            out[i] ^= 1 << rng.randint(0, 7)
        elif kind == "set" and len(out) > 8:
            out[rng.randint(8, len(out) - 1)] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF])
        elif kind == "truncate" and out:
            del out[rng.randint(0, len(out) - 1):]
        elif kind == "insert":
            i = rng.randint(0, len(out))
            out[i:i] = rng.randbytes(rng.randint(1, 16))
        elif kind == "splice":
            other = rng.choice(pool)
            out[rng.randint(0, len(out)):] = other[rng.randint(0, len(other)):]
        elif kind == "version" and len(out) >= 4:
            out[2:4] = struct.pack(">h", rng.randint(-1, 20))
        elif kind == "key" and len(out) >= 2:
            out[0:2] = struct.pack(">h", rng.choice(list(api_key_map)))
    return bytes(out)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(seconds: float, seed: int, verbose: bool) -> int:
    from broker.kafka.codec import RequestDecodeError, UnsupportedRequest, decode_request

    rng = random.Random(seed)
    seeds = seed_frames(rng)
    keys = sorted(seeds)
    pool = [f for frames in seeds.values() for f in frames]
    supported: dict[int, tuple[int, int]] = {}
    for key, version in keys:
        low, high = supported.get(key, (version, version))
        supported[key] = (min(low, version), max(high, version))
    per_api: Counter[int] = Counter()
    decoded: Counter[int] = Counter()
    started = time.monotonic()
    frames = 0
    # Valid seeds first: every one must decode (the pre-check refuses nothing kio itself writes).
    for key_version in keys:
        for frame in seeds[key_version]:
            decode_request(frame, supported)
    while time.monotonic() - started < seconds:
        for _ in range(200):
            roll = rng.random()
            if roll < 0.05:
                frame = struct.pack(">hh", rng.choice(keys)[0], rng.randint(-1, 20)) + rng.randbytes(rng.randint(0, 64))
            else:
                frame = mutate(rng.choice(seeds[rng.choice(keys)]), rng, pool)
            api_key = int.from_bytes(frame[:2], "big", signed=True) if len(frame) >= 2 else -1
            if api_key not in api_key_map:
                api_key = -1  # garbage keys counted together
            per_api[api_key] += 1
            frames += 1
            try:
                decode_request(frame, supported)
                decoded[api_key] += 1
            except (RequestDecodeError, UnsupportedRequest):
                pass
    elapsed = time.monotonic() - started
    if verbose:
        for key in sorted(per_api):
            name = api_key_map.get(key, "?")
            print(f"api {key:3d} {name:35s} frames={per_api[key]:7d} decoded={decoded[key]:6d}")
    print(f"frames={frames} apis={len([k for k in per_api if k in api_key_map])} versions={len(keys)} "
          f"decoded={sum(decoded.values())} crashes=0 peak_rss_mib={_peak_rss_mib():.0f} seconds={elapsed:.1f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--memory-mb", type=int, default=1536, help="address-space cap (RLIMIT_AS); 0 = none")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.memory_mb:
        cap = args.memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    print(f"kafka fuzz: seed={args.seed} seconds={args.seconds} memory_cap_mib={args.memory_mb}", flush=True)
    return run(args.seconds, args.seed, args.verbose)


if __name__ == "__main__":
    sys.exit(main())
