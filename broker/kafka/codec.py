"""Request decoding and response encoding with kio, sans I/O.

`decode_request(frame, supported)` turns one frame (without its size prefix) into the request header
and the kio request dataclass of that API version. `encode_response(...)` turns a kio response
dataclass into a complete frame (with its size prefix).

Header versions (Kafka's RequestHeader.json / ResponseHeader.json):
  - a request whose API version is flexible has header v2 (tagged fields), else v1;
  - a flexible response has header v1 (correlation id + tagged fields), else v0;
  - ApiVersions responses always use header v0, so that a client that sent a version the broker
    does not know can still read the error and the version list (KIP-511).

Record batches stay opaque: kio's `records` fields are bytes.

Every frame is walked by `precheck.check` before kio reads it: kio pre-allocates arrays from the
counts a message claims, so an unchecked frame can make it ask for gigabytes and abort the process.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import io
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from types import ModuleType
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from broker.kafka import precheck
from broker.kafka.framing import (
    HeaderError,
    RequestHeader,
    encode_frame,
    parse_request_header,
    peek_request_prefix,
)

__all__ = [
    "API_VERSIONS_KEY",
    "ZERO_MS",
    "DecodedRequest",
    "RequestDecodeError",
    "UnsupportedRequest",
    "build",
    "decode_request",
    "encode_response",
    "is_flexible_request",
    "ms",
    "request_class",
    "response_class",
    "response_module",
]

API_VERSIONS_KEY = 18
# kio carries durations (throttle_time_ms, timeouts) as timedelta.
ZERO_MS = datetime.timedelta(0)


class RequestDecodeError(Exception):
    """A request frame could not be decoded; the connection should be closed."""

    def __init__(self, message: str, correlation_id: int | None = None) -> None:
        super().__init__(message)
        self.correlation_id = correlation_id


class UnsupportedRequest(Exception):
    """The API key or version is not served by this listener."""

    def __init__(self, api_key: int, api_version: int, correlation_id: int) -> None:
        super().__init__(f"unsupported api_key={api_key} api_version={api_version}")
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    header: RequestHeader
    body: Any  # the kio request dataclass

    @property
    def api_key(self) -> int:
        return self.header.api_key

    @property
    def api_version(self) -> int:
        return self.header.api_version

    @property
    def correlation_id(self) -> int:
        return self.header.correlation_id


@functools.cache
def request_class(api_key: int, api_version: int) -> Any:
    """The kio request dataclass (typed Any: kio's classes carry their schema in class attributes)."""
    return load_request_schema(api_key, api_version)


@functools.cache
def response_class(api_key: int, api_version: int) -> Any:
    return load_response_schema(api_key, api_version)


@functools.cache
def response_module(api_key: int, api_version: int) -> ModuleType:
    """The kio module of a response version: its entity classes (`mod.JoinGroupResponseMember`, ...)."""
    return importlib.import_module(response_class(api_key, api_version).__module__)


def ms(value: datetime.timedelta | int) -> int:
    """A kio duration field (timedelta, or int in some schemas) in whole milliseconds."""
    if isinstance(value, datetime.timedelta):
        return int(value / datetime.timedelta(milliseconds=1))
    return int(value)


@functools.cache
def _reader(cls: Any) -> Any:
    return entity_reader(cls)


@functools.cache
def _writer(cls: Any) -> Any:
    return entity_writer(cls)


@functools.cache
def is_flexible_request(api_key: int, api_version: int) -> bool:
    return bool(request_class(api_key, api_version).__flexible__)


def decode_request(frame: bytes, supported: Mapping[int, tuple[int, int]]) -> DecodedRequest:
    """Decode a request frame whose API key/version is in `supported` ({api_key: (min, max)}).

    Raises:
        UnsupportedRequest: the key or version is not in `supported` (the correlation id is known).
        RequestDecodeError: the frame is malformed.
    """
    try:
        api_key, api_version, correlation_id = peek_request_prefix(frame)
    except HeaderError as e:
        raise RequestDecodeError(str(e)) from None
    versions = supported.get(api_key)
    if versions is None or not versions[0] <= api_version <= versions[1]:
        raise UnsupportedRequest(api_key, api_version, correlation_id)
    try:
        cls = request_class(api_key, api_version)
    except Exception:  # kio does not know this version: a bug in `supported`, answered as unsupported.
        raise UnsupportedRequest(api_key, api_version, correlation_id) from None
    try:
        header, offset = parse_request_header(frame, 2 if cls.__flexible__ else 1)
        precheck.check(cls, frame, offset)  # before kio: it pre-allocates arrays from claimed counts
        body, _size = _reader(cls)(frame, offset)
        _check_nulls(body)
    except Exception as e:  # kio raises several types on garbage (DecodeError, ValueError, ...).
        raise RequestDecodeError(
            f"malformed api_key={api_key} v{api_version} request: {type(e).__name__}: {e}", correlation_id
        ) from None
    return DecodedRequest(header, body)


def _is_nullable(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (types.UnionType, typing.Union) and type(None) in typing.get_args(annotation)


def _strip_none(annotation: Any) -> Any:
    if _is_nullable(annotation):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


@functools.cache
def _null_schema(cls: Any) -> tuple[tuple[str, bool, bool, bool, type | None], ...]:
    """Per field: (name, nullable, is_array, elements nullable, nested entity class or None)."""
    out = []
    for f in fields(cls):
        annotation = f.type
        nullable = _is_nullable(annotation)
        inner = _strip_none(annotation)
        is_array = typing.get_origin(inner) is tuple
        element_nullable = False
        if is_array:
            element = typing.get_args(inner)[0]
            element_nullable = _is_nullable(element)
            inner = _strip_none(element)
        nested = inner if isinstance(inner, type) and is_dataclass(inner) else None
        out.append((f.name, nullable, is_array, element_nullable, nested))
    return tuple(out)


def field_is_nullable(cls: Any, name: str) -> bool:
    return any(field == name and nullable for field, nullable, *_ in _null_schema(cls))


def _check_nulls(entity: Any) -> None:
    """kio reads a null (-1 length) into non-nullable strings and arrays as None; refuse those.

    Handlers may then rely on the schema: a field that is not `| None` is never None.
    """
    for name, nullable, is_array, element_nullable, nested in _null_schema(entity.__class__):
        value = getattr(entity, name)
        if value is None:
            if not nullable:
                raise ValueError(f"null in non-nullable field {type(entity).__name__}.{name}")
            continue
        if is_array:
            for item in value:
                if item is None:
                    if not element_nullable:
                        raise ValueError(f"null element in {type(entity).__name__}.{name}")
                elif nested is not None:
                    _check_nulls(item)
        elif nested is not None:
            _check_nulls(value)


def encode_response(api_key: int, api_version: int, correlation_id: int, response: Any) -> bytes:
    """A complete response frame: size, response header, body."""
    buffer = io.BytesIO()
    buffer.write(correlation_id.to_bytes(4, "big", signed=True))
    if response.__flexible__ and api_key != API_VERSIONS_KEY:
        buffer.write(b"\x00")  # response header v1: no tagged fields
    _writer(response.__class__)(buffer, response)
    return encode_frame(buffer.getvalue())


def encode_request(body: Any, correlation_id: int, client_id: str | None = "brook-test") -> bytes:
    """A complete request frame (tests and tools use it to speak to the listener)."""
    buffer = io.BytesIO()
    buffer.write(int(body.__api_key__).to_bytes(2, "big", signed=True))
    buffer.write(int(body.__version__).to_bytes(2, "big", signed=True))
    buffer.write(correlation_id.to_bytes(4, "big", signed=True))
    if client_id is None:
        buffer.write(b"\xff\xff")
    else:
        raw = client_id.encode()
        buffer.write(len(raw).to_bytes(2, "big") + raw)
    if body.__flexible__:
        buffer.write(b"\x00")
    _writer(body.__class__)(buffer, body)
    return encode_frame(buffer.getvalue())


def decode_response(payload: bytes, api_key: int, api_version: int) -> tuple[int, Any]:
    """(correlation_id, response) from a response frame payload (without the size prefix)."""
    cls = response_class(api_key, api_version)
    correlation_id = int.from_bytes(payload[:4], "big", signed=True)
    offset = 4
    if cls.__flexible__ and api_key != API_VERSIONS_KEY:
        offset += 1
    precheck.check(cls, payload, offset)
    body, _size = _reader(cls)(payload, offset)
    return correlation_id, body


@functools.cache
def _field_names(cls: Any) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def build(cls: Any, **values: Any) -> Any:
    """Instantiate a kio dataclass from a superset of its fields (fields a version lacks are dropped).

    Handlers write one response shape for all versions; each version keeps the fields it has.
    """
    names = _field_names(cls)
    return cls(**{k: v for k, v in values.items() if k in names})
