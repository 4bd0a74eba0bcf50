"""Structural pre-check of a Kafka message before kio decodes it (pure, sans I/O).

kio's native reader pre-allocates an array from the count the message claims: a 20-byte Metadata v12
frame whose topic array claims 2^32-2 entries makes it ask for 32 GiB, and the process aborts (Rust
aborts on allocation failure, nothing can catch it). So before kio sees a frame, `check(cls, buf,
offset)` walks the same schema kio will read — every field of every version, nested entities,
flexible (compact) and legacy encodings, tagged fields — and refuses the frame unless every claimed
length fits the bytes actually left:

  - a string, bytes or records field: its length <= the bytes left;
  - an array: count x (smallest possible encoding of one element) <= the bytes left, and then each
    element is walked, so a nested array is checked against what its parent really has left;
  - a tagged field: its size <= the bytes left; a tag this version knows is walked inside its size.

What kio allocates for an accepted frame is then bounded by the bytes present (a constant factor for
its Python objects), so the memory a client can make a broker use is bounded by
`socket.request.max.bytes` per in-flight request. The walk is compiled once per schema class into a
list of closures; an array of fixed-size elements is skipped in one step, so the cost is small next
to kio's own decode.

The walk follows kio 0.6.5's layout: compact lengths are unsigned varints holding N + 1 (0 = null),
legacy strings an int16, legacy bytes and arrays an int32 (-1 = null); a nullable nested entity is
preceded by an int8 marker (< 0 = null); uuids are 16 bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from collections.abc import Callable
from typing import Any

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    is_optional,
)

__all__ = ["StructureError", "check", "min_size"]

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")

# Encoded size of each fixed-size kafka_type.
_FIXED = {
    "bool": 1, "int8": 1, "int16": 2, "uint16": 2, "int32": 4, "int64": 8, "float64": 8, "uuid": 16,
    "error_code": 2, "timedelta_i32": 4, "timedelta_i64": 8, "datetime_i64": 8,
}
_VARIABLE = frozenset({"string", "bytes", "records"})
# The largest value a length varint may hold (kio reads lengths as u32).
_UVARINT_MAX = 0xFFFF_FFFF

Walker = Callable[[Any, int, int], int]  # (buffer, position, end) -> position after the field


class StructureError(ValueError):
    """The message claims more than it holds, or is otherwise not walkable."""


def _uvarint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    for _ in range(5):
        if pos >= end:
            raise StructureError(f"truncated varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result > _UVARINT_MAX:
                raise StructureError(f"varint {result} at byte {pos} is out of range")
            return result, pos
        shift += 7
    raise StructureError(f"varint longer than 5 bytes at byte {pos}")


def _skip(pos: int, size: int, end: int, what: str) -> int:
    if size > end - pos:
        raise StructureError(f"{what} claims {size} bytes, {max(0, end - pos)} left")
    return pos + size


def _fixed(size: int, what: str) -> Walker:
    def walk(buf: Any, pos: int, end: int) -> int:
        pos += size
        if pos > end:
            raise StructureError(f"{what}: message ends inside a fixed-size field")
        return pos
    return walk


def _compact_length(buf: Any, pos: int, end: int) -> tuple[int, int]:
    """A compact length (N + 1, 0 = null) as (N or -1, position after it)."""
    n, pos = _uvarint(buf, pos, end)
    return n - 1, pos


def _legacy_length(buf: Any, pos: int, end: int, width: int, what: str) -> tuple[int, int]:
    if pos + width > end:
        raise StructureError(f"{what}: message ends inside a length")
    (n,) = (_INT16 if width == 2 else _INT32).unpack_from(buf, pos)
    if n < -1:
        raise StructureError(f"{what} has a negative length {n}")
    return n, pos + width


def _variable(kind: str, flexible: bool, what: str) -> Walker:
    width = 2 if kind == "string" else 4
    if flexible:
        def walk(buf: Any, pos: int, end: int) -> int:
            n, pos = _compact_length(buf, pos, end)
            return pos if n < 0 else _skip(pos, n, end, what)
    else:
        def walk(buf: Any, pos: int, end: int) -> int:
            n, pos = _legacy_length(buf, pos, end, width, what)
            return pos if n < 0 else _skip(pos, n, end, what)
    return walk


def _array(element: Walker, element_min: int, element_fixed: int | None, flexible: bool, what: str) -> Walker:
    """An array whose elements are walked by `element` (each at least `element_min` bytes)."""
    element_min = max(1, element_min)

    def walk(buf: Any, pos: int, end: int) -> int:
        if flexible:
            count, pos = _compact_length(buf, pos, end)
        else:
            count, pos = _legacy_length(buf, pos, end, 4, what)
        if count <= 0:
            return pos
        if count > (end - pos) // element_min:
            raise StructureError(f"{what} claims {count} elements, {max(0, end - pos)} bytes left")
        if element_fixed is not None:
            return pos + count * element_fixed
        for _ in range(count):
            pos = element(buf, pos, end)
        return pos
    return walk


def _nullable_entity(inner: Walker, what: str) -> Walker:
    def walk(buf: Any, pos: int, end: int) -> int:
        if pos >= end:
            raise StructureError(f"{what}: message ends before a nullable entity marker")
        marker = buf[pos]
        if marker >= 0x80:  # int8 < 0: null
            return pos + 1
        return inner(buf, pos + 1, end)
    return walk


def _field_walker(field: dataclasses.Field, flexible: bool, owner: str) -> tuple[Walker, int, int | None]:
    """(walker, smallest encoding, fixed size or None) of one field."""
    what = f"{owner}.{field.name}"
    kind = classify_field(field)
    if isinstance(kind, (EntityField, EntityTupleField)):
        sub = _compiled(kind.type_)
        if isinstance(kind, EntityTupleField):
            prefix = 1 if flexible else 4
            return _array(sub.walk, sub.min_size, sub.fixed_size, flexible, what), prefix, None
        if is_optional(field):
            return _nullable_entity(sub.walk, what), 1, None
        return sub.walk, sub.min_size, sub.fixed_size
    kafka_type = field.metadata.get("kafka_type")
    if kafka_type in _FIXED:
        size = _FIXED[kafka_type]
        walker: Walker = _fixed(size, what)
        if isinstance(kind, PrimitiveTupleField):
            return _array(walker, size, size, flexible, what), (1 if flexible else 4), None
        assert isinstance(kind, PrimitiveField)
        return walker, size, size
    if kafka_type in _VARIABLE:
        walker = _variable(kafka_type, flexible, what)
        smallest = 1 if flexible else (2 if kafka_type == "string" else 4)
        if isinstance(kind, PrimitiveTupleField):
            return _array(walker, smallest, None, flexible, what), (1 if flexible else 4), None
        return walker, smallest, None
    raise StructureError(f"{what}: unknown kafka_type {kafka_type!r}")  # a kio version this code does not know


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled:
    walk: Walker
    min_size: int
    fixed_size: int | None  # every encoding of the entity has this size (no variable part)


@functools.cache
def _compiled(cls: type) -> _Compiled:
    flexible = bool(cls.__flexible__)  # type: ignore[attr-defined]  # kio marks each generated schema class
    owner = cls.__name__
    steps: list[Walker] = []
    tagged: dict[int, Walker] = {}
    min_total = 0
    fixed_run = 0
    all_fixed = True
    for field in dataclasses.fields(cls):
        walker, smallest, fixed = _field_walker(field, flexible, owner)
        tag = get_field_tag(field)
        if tag is not None:
            tagged[int(tag)] = walker
            continue
        min_total += smallest
        if fixed is not None:
            fixed_run += fixed  # consecutive fixed-size fields are skipped in one step
            continue
        all_fixed = False
        if fixed_run:
            steps.append(_fixed(fixed_run, owner))
            fixed_run = 0
        steps.append(walker)
    if fixed_run:
        steps.append(_fixed(fixed_run, owner))
    if flexible:
        steps.append(_tagged_section(tagged, owner))
        min_total += 1
        all_fixed = False
    fixed_size = min_total if all_fixed else None
    if len(steps) == 1:
        return _Compiled(steps[0], min_total, fixed_size)
    run = tuple(steps)

    def walk(buf: Any, pos: int, end: int) -> int:
        for step in run:
            pos = step(buf, pos, end)
        return pos
    return _Compiled(walk, min_total, fixed_size)


def _tagged_section(known: dict[int, Walker], owner: str) -> Walker:
    def walk(buf: Any, pos: int, end: int) -> int:
        count, pos = _uvarint(buf, pos, end)
        if count > (end - pos) // 2:  # each tagged field is at least a tag and a size
            raise StructureError(f"{owner} claims {count} tagged fields, {max(0, end - pos)} bytes left")
        for _ in range(count):
            tag, pos = _uvarint(buf, pos, end)
            size, pos = _uvarint(buf, pos, end)
            field_end = _skip(pos, size, end, f"{owner} tagged field {tag}")
            walker = known.get(tag)
            if walker is not None:
                walker(buf, pos, field_end)
            pos = field_end
        return pos
    return walk


def min_size(cls: type) -> int:
    """The smallest encoding of an entity of `cls` (tests use it)."""
    return _compiled(cls).min_size


def check(cls: type, buf: Any, offset: int = 0) -> int:
    """Walk an encoded `cls` at `offset`; returns where it ends. Raises StructureError."""
    return _compiled(cls).walk(buf, offset, len(buf))
