"""The value types of Brook's config, the validators, address parsing, and `ConfigKey` (one key).

Pure: no I/O. The tables of keys are in `cluster/config/schema.py`; loading is `cluster/config/loading.py`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cluster.errors import ConfigError
from cluster.limits import (
    INT_MAX,
    INT_MIN,
    LONG_MAX,
    LONG_MIN,
)

ENV_PREFIX = "BROOK_CFG_"
# Brook's own listeners; every other listener name is a Kafka listener whose security protocol comes
# from `listener.security.protocol.map`.
LISTENER_NAMES = ("GRPC", "CONTROLLER")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_LISTENER_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
ROLES = frozenset({"broker", "controller"})
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
_MASK = "******"


# --------------------------------------------------------------------------------------------------
# Small value types


class Secret:
    """A password value. `str()`/`repr()` are masked; `reveal()` gives the text."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return format(_MASK, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


class Endpoint(NamedTuple):
    host: str
    port: int

    @property
    def hostport(self) -> str:
        """`host:port`, with an IPv6 host in brackets."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Voter(NamedTuple):
    node_id: int
    host: str
    port: int

    @property
    def hostport(self) -> str:
        return Endpoint(self.host, self.port).hostport


class _Invalid(Exception):
    """Raised by parsers/validators with the 'expected ...' part of a message."""


def _q(value: str, limit: int = 80) -> str:
    """Quote a value for a one-line message."""
    text = value if len(value) <= limit else value[: limit - 3] + "..."
    if any(ord(c) < 32 or c in "'\\" for c in text):
        return repr(text)
    return f"'{text}'"


# --------------------------------------------------------------------------------------------------
# Validators: `check(value) -> value` (possibly normalized) or raise _Invalid("expected ...")


class Validator:
    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        raise NotImplementedError


class Range(Validator):
    def __init__(self, lo: float | None = None, hi: float | None = None, noun: str = "an integer") -> None:
        self.lo, self.hi, self.noun = lo, hi, noun

    def describe(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"{self.noun} between {self.lo} and {self.hi}"
        if self.lo is not None:
            return f"{self.noun} >= {self.lo}"
        if self.hi is not None:
            return f"{self.noun} <= {self.hi}"
        return self.noun

    def check(self, value: Any) -> Any:
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise _Invalid(f"expected {self.describe()}")
        return value


class Choice(Validator):
    """One of fixed strings (case-insensitive; normalized to the canonical spelling)."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices
        self._by_lower = {c.lower(): c for c in choices}

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)

    def check(self, value: Any) -> Any:
        try:
            return self._by_lower[str(value).strip().lower()]
        except KeyError:
            raise _Invalid(f"expected {self.describe()}") from None


class ListOf(Validator):
    """A non-empty comma-separated list of distinct choices."""

    def __init__(self, *choices: str, allow_empty: bool = False) -> None:
        self.item = Choice(*choices)
        self.allow_empty = allow_empty

    def describe(self) -> str:
        return "a comma-separated list of " + ", ".join(self.item.choices)

    def check(self, value: Any) -> Any:
        if not value and not self.allow_empty:
            raise _Invalid(f"expected {self.describe()}")
        try:
            out = tuple(self.item.check(v) for v in value)
        except _Invalid:
            raise _Invalid(f"expected {self.describe()}") from None
        if len(set(out)) != len(out):
            raise _Invalid(f"expected {self.describe()} without repeats")
        return out


class Custom(Validator):
    def __init__(self, fn: Callable[[Any], Any], description: str) -> None:
        self.fn, self.description = fn, description

    def describe(self) -> str:
        return self.description

    def check(self, value: Any) -> Any:
        return self.fn(value)


# --------------------------------------------------------------------------------------------------
# Addresses: host:port, NAME://host:port, id@host:port


def _parse_hostport(text: str, *, concrete: bool, allow_port_zero: bool) -> Endpoint:
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise _Invalid(f"{_q(text)} is not host:port")
        host, port_text = text[1:close], text[close + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise _Invalid(f"{_q(text)} is not host:port")
        if ":" in host:
            raise _Invalid(f"{_q(text)} is not host:port (put an IPv6 host in brackets)")
    if not re.fullmatch(r"\d{1,5}", port_text):
        raise _Invalid(f"{_q(text)} has no valid port")
    port = int(port_text)
    lo = 0 if allow_port_zero else 1
    if not lo <= port <= 65535:
        raise _Invalid(f"{_q(text)} has port {port}, expected {lo}..65535")
    if concrete and host in _WILDCARD_HOSTS:
        raise _Invalid(f"{_q(text)} needs a reachable host, not a wildcard address")
    if host and not re.fullmatch(r"[A-Za-z0-9._:%-]+", host):
        raise _Invalid(f"{_q(text)} has an invalid host")
    return Endpoint(host, port)


def _parse_listeners(items: tuple[str, ...], *, advertised: bool) -> dict[str, Endpoint]:
    out: dict[str, Endpoint] = {}
    for item in items:
        name, sep, rest = item.partition("://")
        name = name.strip().upper()
        if not sep or not name:
            raise _Invalid(f"entry {_q(item)} is not NAME://host:port")
        if not _LISTENER_NAME.fullmatch(name):
            raise _Invalid(f"entry {_q(item)} has listener name {_q(name)}, expected [A-Z][A-Z0-9_]*")
        if name in out:
            raise _Invalid(f"listener {name} appears twice")
        out[name] = _parse_hostport(rest, concrete=advertised, allow_port_zero=not advertised)
    return out


def _check_listeners(value: tuple[str, ...]) -> tuple[str, ...]:
    eps = _parse_listeners(value, advertised=False)
    items = list(eps.items())
    for i, (name, ep) in enumerate(items):
        for other, oep in items[:i]:
            same_host = ep.host == oep.host or ep.host in _WILDCARD_HOSTS or oep.host in _WILDCARD_HOSTS
            if ep.port and ep.port == oep.port and same_host:
                raise _Invalid(f"listeners {other} and {name} both use port {ep.port}")
    return tuple(f"{n}://{e.hostport}" for n, e in eps.items())


def _check_protocol_map(value: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    out = []
    for item in value:
        name, sep, protocol = item.partition(":")
        name, protocol = name.strip().upper(), protocol.strip().upper()
        if not sep or not _LISTENER_NAME.fullmatch(name):
            raise _Invalid(f"entry {_q(item)} is not NAME:PROTOCOL")
        if protocol not in SECURITY_PROTOCOLS:
            raise _Invalid(f"entry {_q(item)} has protocol {protocol}, expected one of {', '.join(SECURITY_PROTOCOLS)}")
        if name in seen:
            raise _Invalid(f"listener {name} appears twice")
        seen.add(name)
        out.append(f"{name}:{protocol}")
    return tuple(out)


def _check_listener_name(value: str) -> str:
    name = value.strip().upper()
    if not _LISTENER_NAME.fullmatch(name):
        raise _Invalid(f"{_q(value)} is not a listener name ([A-Z][A-Z0-9_]*)")
    return name


def _check_controller_listener_names(value: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(v.strip().upper() for v in value if v.strip())
    if names not in ((), ("CONTROLLER",)):
        raise _Invalid(f"{_q(','.join(value))}: Brook's controller listener is always called CONTROLLER")
    return names


def _check_advertised(value: tuple[str, ...]) -> tuple[str, ...]:
    eps = _parse_listeners(value, advertised=True)
    return tuple(f"{n}://{e.hostport}" for n, e in eps.items())


def _parse_voters(items: Sequence[str]) -> list[Voter]:
    voters: list[Voter] = []
    for item in items:
        node, sep, addr = item.partition("@")
        if not sep or not re.fullmatch(r"\s*\d+\s*", node):
            raise _Invalid(f"entry {_q(item)} is not id@host:port")
        ep = _parse_hostport(addr, concrete=True, allow_port_zero=False)
        voter = Voter(int(node), ep.host, ep.port)
        if any(v.node_id == voter.node_id for v in voters):
            raise _Invalid(f"node id {voter.node_id} appears twice")
        if any((v.host, v.port) == (voter.host, voter.port) for v in voters):
            raise _Invalid(f"address {voter.hostport} appears twice")
        voters.append(voter)
    return voters


def _check_voters(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{v.node_id}@{v.hostport}" for v in _parse_voters(value))


def _check_servers(value: tuple[str, ...]) -> tuple[str, ...]:
    out = tuple(_parse_hostport(v, concrete=True, allow_port_zero=False).hostport for v in value)
    if len(set(out)) != len(out):
        raise _Invalid("an address appears twice")
    return out


def _check_dirs(value: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(value)) != len(value):
        raise _Invalid("a directory appears twice")
    return value


def _check_roles(value: tuple[str, ...]) -> tuple[str, ...]:
    roles = tuple(v.lower() for v in value)
    if not roles or not set(roles) <= ROLES or len(set(roles)) != len(roles):
        raise _Invalid("expected broker, controller or broker,controller")
    return roles


# The quorum secret keys an HMAC (pysyncobj's Fernet); shorter than this is guessable.
QUORUM_SECRET_CHARS_MIN = 16


def _check_secret(value: Any) -> Any:
    if value is not None and len(value.reveal().strip()) < QUORUM_SECRET_CHARS_MIN:
        raise _Invalid(f"expected a secret of at least {QUORUM_SECRET_CHARS_MIN} characters")
    return value


def _check_mapping_rules(value: str) -> str:
    from cluster.security.principal import parse_mapping_rules

    try:
        parse_mapping_rules(value)
    except ValueError as e:
        raise _Invalid(str(e)) from None
    return value


def _check_principals(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        kind, sep, name = item.partition(":")
        if not sep or not kind or not name:
            raise _Invalid(f"entry {_q(item)} is not Type:name (e.g. User:admin)")
    return value



# --------------------------------------------------------------------------------------------------
# One key: its type, default and validator; how it parses, checks and formats a value

_TYPES = ("int", "long", "bool", "string", "list", "double", "password")


@dataclass(frozen=True)
class ConfigKey:
    name: str
    type: str  # 'int' | 'long' | 'bool' | 'string' | 'list' | 'double' | 'password'
    default: Any  # typed: int, bool, str, tuple[str, ...], float, Secret | None
    doc: str
    scope: str = "server"  # 'server' | 'topic'
    validator: Validator | None = None
    dynamic: bool = False  # changeable at runtime via configs alter
    kafka_default: Any = None  # set when Brook's default differs from Kafka's
    reason: str | None = None  # why Brook differs (or why the key exists, for Brook-only keys)
    brook_only: bool = False
    required: bool = False  # must be set (role-dependent requirements are checked in load_config)
    server_default: str | None = None  # topic keys: the server key that gives the default

    def __post_init__(self) -> None:
        assert self.type in _TYPES, self.type
        assert self.scope in ("server", "topic"), self.scope

    # -- values ------------------------------------------------------------------------------------

    def parse(self, raw: str) -> Any:
        """Text -> typed value, validated. Raises ConfigError naming the key, the value and what is allowed."""
        try:
            value = self._convert(raw)
            if self.validator is not None:
                value = self.validator.check(value)
        except _Invalid as e:
            shown = _MASK if self.type == "password" else _q(raw)
            raise ConfigError(f"invalid value {shown} for '{self.name}': {e}") from None
        return value

    def _convert(self, raw: str) -> Any:
        text = raw.strip()
        t = self.type
        if t in ("int", "long"):
            lo, hi = (INT_MIN, INT_MAX) if t == "int" else (LONG_MIN, LONG_MAX)
            if not re.fullmatch(r"[+-]?\d+", text) or not lo <= int(text) <= hi:
                raise _Invalid(f"expected {self.expected()}")
            return int(text)
        if t == "bool":
            low = text.lower()
            if low not in ("true", "false"):
                raise _Invalid("expected true or false")
            return low == "true"
        if t == "double":
            try:
                number = float(text)
            except ValueError:
                raise _Invalid(f"expected {self.expected()}") from None
            if not math.isfinite(number):
                raise _Invalid(f"expected {self.expected()}")
            return number
        if t == "list":
            return tuple(item.strip() for item in text.split(",") if item.strip())
        if t == "password":
            return Secret(raw) if raw != "" else None
        return text

    def expected(self) -> str:
        """What is allowed, as in 'expected <this>'."""
        if self.validator is not None and (
            self.type not in ("int", "long", "double") or isinstance(self.validator, Range)
        ):
            return self.validator.describe()
        return {
            "int": "an integer",
            "long": "an integer",
            "bool": "true or false",
            "string": "a string",
            "list": "a comma-separated list",
            "double": "a number",
            "password": "a secret",
        }[self.type]

    def format(self, value: Any) -> str:
        """Typed value -> canonical text (the form `explicit()` and topic configs use). Secrets are masked."""
        if value is None:
            return ""
        if self.type == "password":
            return _MASK
        if self.type == "bool":
            return "true" if value else "false"
        if self.type == "list":
            return ",".join(value)
        if self.type == "double":
            return repr(float(value))
        return str(value)


def _key(name: str, type: str, default: Any, doc: str, **kw: Any) -> ConfigKey:
    return ConfigKey(name, type, default, doc, **kw)
