"""Every property Brook reads: Kafka's names, Kafka's defaults where they suit, and the reason where not.

    SERVER_KEYS / TOPIC_KEYS     the schema (`ConfigKey`: type, default, validator, doc, Kafka's default)
    load_config(path, overrides, env) -> Config
                                 defaults < properties file < BROOK_CFG_* environment < --override k=v
    validate_topic_config(name, value) -> str      per-topic configs on create / alter
    validate_server_config(name, value) -> str     one server key (e.g. a dynamic cluster-wide alter)
    topic_config_defaults(server) -> {topic key: str}
    markdown_table() -> str      the reference in docs/CONFIG.md (`python -m cluster.config > docs/CONFIG.md`)

Every mistake is a `ConfigError` with a one-line message that names the key, the value and what is
allowed, and where the value came from (`server.properties:7:`, `BROOK_CFG_NUM_PARTITIONS:`, `--override:`).

The module is pure: it reads the properties file in `load_config` and nothing else. The quorum secret
is held in a `Secret` whose repr and str are masked, so printing a `Config` never leaks it.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from cluster.errors import ConfigError

__all__ = [
    "ALIASES",
    "ENV_PREFIX",
    "LISTENER_NAMES",
    "SERVER_KEYS",
    "TOPIC_KEYS",
    "TOPIC_TO_SERVER_DEFAULT",
    "Config",
    "ConfigKey",
    "Endpoint",
    "Secret",
    "Voter",
    "load_config",
    "markdown_table",
    "parse_properties",
    "topic_config_defaults",
    "validate_server_config",
    "validate_topic_config",
]

ENV_PREFIX = "BROOK_CFG_"
# Brook's own listeners; every other listener name is a Kafka listener whose security protocol comes
# from `listener.security.protocol.map`.
LISTENER_NAMES = ("GRPC", "CONTROLLER")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_LISTENER_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
ROLES = frozenset({"broker", "controller"})
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
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


def _check_secret(value: Any) -> Any:
    if value is not None and not value.reveal().strip():
        raise _Invalid("expected a non-empty secret")
    return value


# --------------------------------------------------------------------------------------------------
# The schema

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


_POS = Range(1, None)
_NONNEG = Range(0, None)
_COMPRESSION = Choice("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_TIMESTAMP = Choice("CreateTime", "LogAppendTime")
_CLEANUP = ListOf("delete", "compact")

_SERVER: list[ConfigKey] = [
    # -- identity and roles --
    _key(
        "process.roles",
        "list",
        (),
        "The roles of this process: `broker`, `controller`, or `broker,controller` (combined, for small deployments).",
        validator=Custom(_check_roles, "broker, controller or broker,controller"),
        required=True,
    ),
    _key(
        "node.id",
        "int",
        -1,
        "This node's id, unique in the cluster; a controller's id must appear in `controller.quorum.voters`.",
        validator=Range(0, None),
        required=True,
        kafka_default=None,
    ),
    _key(
        "cluster.id",
        "string",
        "",
        "The expected cluster id. Empty: accept the id the controller quorum holds; set: refuse to join a cluster with another id.",
        brook_only=True,
        reason="Kafka stores the id with `kafka-storage format`; Brook has no format step.",
    ),
    _key("broker.rack", "string", "", "The rack of this broker, used to spread replicas. Empty: no rack."),
    # -- listeners --
    _key(
        "listeners",
        "list",
        (),
        "Comma-separated `NAME://host:port`. `GRPC` = the broker's gRPC service (replication, controller callbacks), `CONTROLLER` = the controller's gRPC service (brokers, admin CLI); every other name (e.g. `PLAINTEXT`, `SASL_SSL`, `EXTERNAL`) is a Kafka listener whose security protocol `listener.security.protocol.map` gives. A broker needs GRPC and at least one Kafka listener, a controller needs CONTROLLER. An empty host or 0.0.0.0 binds every interface; port 0 picks a free port.",
        validator=Custom(
            _check_listeners,
            "a comma-separated list of NAME://host:port",
        ),
        kafka_default="PLAINTEXT://:9092",
        reason="Which listeners a node needs depends on its roles, so Brook has no default and checks them by role.",
    ),
    _key(
        "advertised.listeners",
        "list",
        (),
        "The addresses other nodes and clients use, `NAME://host:port` with a reachable host. A listener not listed here is advertised as bound; a listener bound to a wildcard host must be listed here.",
        validator=Custom(
            _check_advertised, "a comma-separated list of NAME://host:port with a reachable host"
        ),
    ),
    _key(
        "listener.security.protocol.map",
        "list",
        ("PLAINTEXT:PLAINTEXT", "SSL:SSL", "SASL_PLAINTEXT:SASL_PLAINTEXT", "SASL_SSL:SASL_SSL"),
        "The security protocol of each Kafka listener, `NAME:PROTOCOL,...` with PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (e.g. `INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT`).",
        validator=Custom(_check_protocol_map, "a comma-separated list of NAME:PROTOCOL"),
        kafka_default="PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        reason="Brook's CONTROLLER and GRPC listeners are gRPC, not Kafka listeners, so they are not in the map.",
    ),
    _key(
        "inter.broker.listener.name",
        "string",
        "GRPC",
        "The listener brokers use to reach each other. Brook brokers replicate over gRPC, so this is the `GRPC` listener; a Kafka listener named here (as in a Kafka server.properties) is accepted and only noted in the log: replication still uses GRPC, and clients on that listener are answered with that listener's addresses as on any other.",
        validator=Custom(_check_listener_name, "a listener name"),
        kafka_default="(from security.inter.broker.protocol: PLAINTEXT)",
        reason="Replication is gRPC (DESIGN: followers pull over gRPC), not the Kafka protocol.",
    ),
    _key(
        "controller.listener.names",
        "list",
        ("CONTROLLER",),
        "The listener controllers serve brokers and the admin CLI on. Brook's controller listener is always called `CONTROLLER` (a gRPC service), so this is CONTROLLER or empty.",
        validator=Custom(_check_controller_listener_names, "CONTROLLER"),
        kafka_default="(none; required in KRaft mode)",
        reason="Brook has one controller listener, a gRPC service named CONTROLLER.",
    ),
    # -- controller quorum --
    _key(
        "controller.quorum.voters",
        "list",
        (),
        "The Raft voters, `id@host:port,...`: the controllers' pysyncobj (Raft) addresses. Every controller lists the same set.",
        validator=Custom(_check_voters, "a comma-separated list of id@host:port"),
    ),
    _key(
        "controller.quorum.bootstrap.servers",
        "list",
        (),
        "The controllers' gRPC addresses (their CONTROLLER listeners), `host:port,...`, for brokers and the admin CLI. Required for brokers.",
        validator=Custom(_check_servers, "a comma-separated list of host:port"),
    ),
    _key(
        "controller.quorum.secret",
        "password",
        None,
        "The shared secret of the Raft port. pysyncobj's wire format is pickle, so an open Raft port without a secret lets anyone who reaches it run code: a controller refuses to start without one. Never printed.",
        validator=Custom(_check_secret, "a non-empty secret"),
        brook_only=True,
        reason="Kafka's Raft port is not pickle-based; Brook's is.",
    ),
    _key(
        "controller.quorum.insecure.dev",
        "bool",
        False,
        "Allow a controller to start without `controller.quorum.secret`. Only for throwaway local clusters on loopback.",
        brook_only=True,
        reason="The explicit opt-out of the secret check.",
    ),
    _key(
        "controller.quorum.election.timeout.ms",
        "int",
        500,
        "Raft election timeout: pysyncobj's raftMinTimeout; raftMaxTimeout is twice this. A follower that hears nothing from the leader for a random time in [t, 2t] starts an election.",
        validator=Range(10, None),
        kafka_default=1000,
        reason="Brook's failover target is a new active controller within 3 s of the old one dying; a randomized [1000, 2000] ms timeout plus failure detection and reconnects leaves little margin. [500, 1000] ms measured a median failover under 1 s on a 2-core machine, while 300 ms saw spurious elections when the machine was saturated by a full test run.",
    ),
    _key(
        "controller.quorum.fetch.timeout.ms",
        "int",
        2000,
        "Accepted for Kafka compatibility. pysyncobj has no separate fetch timeout: a follower starts an election after `controller.quorum.election.timeout.ms`.",
        validator=_NONNEG,
    ),
    _key(
        "controller.quorum.request.timeout.ms",
        "int",
        2000,
        "Deadline of one request to a controller (register, heartbeat, admin) before the caller retries, possibly another controller.",
        validator=_POS,
    ),
    _key(
        "controller.quorum.connection.retry.ms",
        "int",
        500,
        "How soon pysyncobj reconnects to a voter it lost (connectionRetryTime).",
        validator=Range(10, None),
        brook_only=True,
        reason="pysyncobj's default of 5 s made failovers after a controller restart take 3.5-4.8 s.",
    ),
    _key(
        "controller.quorum.leader.fallback.ms",
        "int",
        2000,
        "A Raft leader that has not heard from a majority for this long steps down (pysyncobj leaderFallbackTimeout). Must exceed the election timeout.",
        validator=Range(10, None),
        brook_only=True,
        reason="pysyncobj's default of 30 s lets a leader cut off from the majority believe it leads for 30 s.",
    ),
    _key(
        "metadata.log.dir",
        "string",
        "",
        "Where a controller keeps the Raft journal and snapshots. Empty: the first of `log.dirs`.",
    ),
    # -- storage --
    _key(
        "log.dirs",
        "list",
        ("/tmp/brook-logs",),
        "The directories that hold partition data (comma-separated).",
        validator=Custom(_check_dirs, "a comma-separated list of distinct directories"),
        kafka_default="/tmp/kafka-logs",
        reason="Brook's own folder name (Kafka's default comes from `log.dir`).",
    ),
    _key(
        "log.retention.ms",
        "long",
        604800000,
        "Default for topic `retention.ms`: how long a log segment is kept before deletion; -1 = forever. Aliases: `log.retention.minutes`, `log.retention.hours` (ms wins over minutes over hours in one source).",
        validator=Range(-1, None),
        dynamic=True,
    ),
    _key(
        "log.retention.bytes",
        "long",
        -1,
        "Default for topic `retention.bytes`: the size a partition may grow to before old segments are deleted; -1 = no limit.",
        validator=Range(-1, None),
        dynamic=True,
    ),
    _key(
        "log.segment.bytes",
        "int",
        1073741824,
        "Default for topic `segment.bytes`: the size of one log segment.",
        validator=Range(14, None),
        dynamic=True,
    ),
    _key(
        "log.roll.ms",
        "long",
        604800000,
        "Default for topic `segment.ms`: a segment is rolled after this long even if not full. Alias: `log.roll.hours`.",
        validator=_POS,
        dynamic=True,
    ),
    _key(
        "log.retention.check.interval.ms", "long", 300000, "How often retention is enforced.", validator=_POS
    ),
    _key(
        "log.cleanup.policy",
        "list",
        ("delete",),
        "Default for topic `cleanup.policy`: `delete`, `compact`, or `compact,delete`.",
        validator=_CLEANUP,
        dynamic=True,
    ),
    _key(
        "log.cleaner.delete.retention.ms",
        "long",
        86400000,
        "Default for topic `delete.retention.ms`: how long tombstones are kept in compacted topics.",
        validator=_NONNEG,
        dynamic=True,
    ),
    _key(
        "log.cleaner.min.compaction.lag.ms",
        "long",
        0,
        "Default for topic `min.compaction.lag.ms`: the minimum time a message stays uncompacted.",
        validator=_NONNEG,
        dynamic=True,
    ),
    _key(
        "log.flush.interval.messages",
        "long",
        LONG_MAX,
        "Default for topic `flush.messages`: fsync after this many messages (default: leave it to the OS and replication).",
        validator=_POS,
        dynamic=True,
    ),
    _key(
        "log.flush.interval.ms",
        "long",
        -1,
        "Default for topic `flush.ms`: fsync after this long; -1 = unset (no time-based flush).",
        validator=Range(-1, None),
        dynamic=True,
        kafka_default="null",
        reason="Kafka's null (unset); Brook spells unset as -1. Same behaviour.",
    ),
    _key(
        "log.message.timestamp.type",
        "string",
        "CreateTime",
        "Default for topic `message.timestamp.type`: `CreateTime` (the producer's) or `LogAppendTime` (the broker's).",
        validator=_TIMESTAMP,
        dynamic=True,
    ),
    _key(
        "message.max.bytes",
        "int",
        1048588,
        "Default for topic `max.message.bytes`: the largest record batch a broker accepts.",
        validator=_NONNEG,
        dynamic=True,
    ),
    _key(
        "compression.type",
        "string",
        "producer",
        "Default for topic `compression.type`: the codec batches are stored with; `producer` keeps the producer's codec.",
        validator=_COMPRESSION,
        dynamic=True,
    ),
    # -- topics and replication --
    _key(
        "num.partitions",
        "int",
        1,
        "Partitions of a topic created without a partition count (including auto-created topics).",
        validator=_POS,
    ),
    _key(
        "default.replication.factor",
        "int",
        1,
        "Replication factor of a topic created without one.",
        validator=Range(1, 32767),
    ),
    _key(
        "min.insync.replicas",
        "int",
        1,
        "Default for topic `min.insync.replicas`: with acks=all, the fewest in-sync replicas a write needs.",
        validator=_POS,
        dynamic=True,
    ),
    _key(
        "unclean.leader.election.enable",
        "bool",
        False,
        "Default for topic `unclean.leader.election.enable`: elect a replica outside the ISR when no ISR member is alive (may lose data).",
        dynamic=True,
    ),
    _key(
        "auto.create.topics.enable",
        "bool",
        True,
        "Create a topic when a client asks for metadata of an unknown one.",
    ),
    _key("delete.topic.enable", "bool", True, "Allow topic deletion."),
    _key(
        "auto.leader.rebalance.enable",
        "bool",
        True,
        "Move leadership back to preferred leaders when the imbalance exceeds `leader.imbalance.per.broker.percentage`.",
        dynamic=True,
    ),
    _key(
        "leader.imbalance.per.broker.percentage",
        "int",
        10,
        "Allowed share of a broker's partitions not led by their preferred leader, in percent.",
        validator=Range(0, 100),
        dynamic=True,
    ),
    _key(
        "leader.imbalance.check.interval.seconds",
        "long",
        300,
        "How often the controller checks leader imbalance.",
        validator=_POS,
    ),
    _key(
        "replica.lag.time.max.ms",
        "long",
        30000,
        "A follower that has not caught up with the leader for this long leaves the ISR.",
        validator=_POS,
    ),
    _key(
        "replica.fetch.wait.max.ms",
        "int",
        500,
        "How long a follower's long-poll fetch waits for data. Must be below `replica.lag.time.max.ms` and `replica.socket.timeout.ms`.",
        validator=_NONNEG,
    ),
    _key(
        "replica.fetch.max.bytes",
        "int",
        1048576,
        "Bytes a follower fetch asks for per partition (a larger first batch is still returned).",
        validator=_POS,
    ),
    _key(
        "replica.fetch.response.max.bytes",
        "int",
        10485760,
        "Bytes a follower fetch asks for in total.",
        validator=_POS,
    ),
    _key("replica.socket.timeout.ms", "int", 30000, "Deadline of a follower fetch RPC.", validator=_POS),
    _key(
        "grpc.max.message.bytes",
        "int",
        64 * 1024 * 1024,
        "Largest gRPC message Brook sends or accepts. Must exceed `replica.fetch.response.max.bytes`.",
        validator=Range(4 * 1024 * 1024, None),
        brook_only=True,
        reason="gRPC's own 4 MiB limit is below a fetch response of `replica.fetch.response.max.bytes` (10 MiB) and a full metadata image.",
    ),
    # -- broker lifecycle --
    _key(
        "broker.heartbeat.interval.ms",
        "int",
        2000,
        "How often a broker heartbeats to the active controller.",
        validator=_POS,
    ),
    _key(
        "broker.session.timeout.ms",
        "int",
        9000,
        "A broker without a heartbeat for this long is fenced. Must exceed `broker.heartbeat.interval.ms`.",
        validator=_POS,
    ),
    _key(
        "controlled.shutdown.enable",
        "bool",
        True,
        "On SIGTERM a broker asks the controller to move its leaderships away before it stops.",
    ),
    _key(
        "controlled.shutdown.timeout.ms",
        "int",
        10000,
        "How long a broker waits for a controlled shutdown before stopping anyway.",
        validator=_NONNEG,
        brook_only=True,
        reason="Kafka bounds it with controlled.shutdown.max.retries and retry.backoff.ms; Brook uses one deadline.",
    ),
    # -- network --
    _key(
        "socket.request.max.bytes", "int", 104857600, "Largest Kafka request a broker reads.", validator=_POS
    ),
    _key(
        "connections.max.idle.ms",
        "long",
        600000,
        "Idle Kafka connections are closed after this long.",
        validator=_POS,
    ),
    _key(
        "request.timeout.ms",
        "int",
        30000,
        "Deadline of requests a broker itself sends to other brokers.",
        validator=_NONNEG,
    ),
    # -- groups --
    _key(
        "group.initial.rebalance.delay.ms",
        "int",
        3000,
        "How long the coordinator waits for more members before the first rebalance of an empty group. Kafka's value, kept; set 0 in tests for faster joins.",
        validator=_NONNEG,
    ),
    _key(
        "group.min.session.timeout.ms",
        "int",
        6000,
        "Smallest session timeout a group member may ask for.",
        validator=_NONNEG,
    ),
    _key(
        "group.max.session.timeout.ms",
        "int",
        1800000,
        "Largest session timeout a group member may ask for.",
        validator=_NONNEG,
    ),
    _key(
        "offsets.topic.num.partitions",
        "int",
        10,
        "Partitions of the internal `__consumer_offsets` topic (fixed once it exists).",
        validator=_POS,
        kafka_default=50,
        reason="Brook targets small clusters, and every partition costs a Python broker a log, replication work and memory; 10 spreads groups over a small cluster.",
    ),
    _key(
        "offsets.topic.replication.factor",
        "int",
        3,
        "Replication factor of `__consumer_offsets`; creation waits until this many brokers are registered.",
        validator=Range(1, 32767),
    ),
    _key(
        "offsets.retention.minutes",
        "int",
        10080,
        "Committed offsets of an empty group are kept this long.",
        validator=_POS,
    ),
]

SERVER_KEYS: Mapping[str, ConfigKey] = MappingProxyType({k.name: k for k in _SERVER})

# Topic key -> the server key that gives its default.
TOPIC_TO_SERVER_DEFAULT: Mapping[str, str] = MappingProxyType(
    {
        "retention.ms": "log.retention.ms",
        "retention.bytes": "log.retention.bytes",
        "segment.bytes": "log.segment.bytes",
        "segment.ms": "log.roll.ms",
        "cleanup.policy": "log.cleanup.policy",
        "delete.retention.ms": "log.cleaner.delete.retention.ms",
        "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
        "max.message.bytes": "message.max.bytes",
        "min.insync.replicas": "min.insync.replicas",
        "unclean.leader.election.enable": "unclean.leader.election.enable",
        "flush.messages": "log.flush.interval.messages",
        "flush.ms": "log.flush.interval.ms",
        "message.timestamp.type": "log.message.timestamp.type",
        "compression.type": "compression.type",
    }
)

_TOPIC_DOCS = {
    "retention.ms": "How long a log segment is kept before deletion; -1 = forever.",
    "retention.bytes": "The size a partition may grow to before old segments are deleted; -1 = no limit.",
    "segment.bytes": "The size of one log segment.",
    "segment.ms": "A segment is rolled after this long even if not full.",
    "cleanup.policy": "`delete`, `compact`, or `compact,delete`.",
    "delete.retention.ms": "How long tombstones are kept in a compacted topic.",
    "min.compaction.lag.ms": "The minimum time a message stays uncompacted.",
    "max.message.bytes": "The largest record batch the topic accepts.",
    "min.insync.replicas": "With acks=all, the fewest in-sync replicas a write needs.",
    "unclean.leader.election.enable": "Elect a replica outside the ISR when no ISR member is alive (may lose data).",
    "flush.messages": "fsync after this many messages.",
    "flush.ms": "fsync after this long; -1 = no time-based flush (Kafka's topic default is Long.MAX for the same).",
    "message.timestamp.type": "`CreateTime` (the producer's) or `LogAppendTime` (the broker's).",
    "compression.type": "The codec batches are stored with; `producer` keeps the producer's.",
}

TOPIC_KEYS: Mapping[str, ConfigKey] = MappingProxyType(
    {
        topic: ConfigKey(
            name=topic,
            type=SERVER_KEYS[server].type,
            default=SERVER_KEYS[server].default,
            doc=_TOPIC_DOCS[topic],
            scope="topic",
            validator=SERVER_KEYS[server].validator,
            dynamic=True,
            server_default=server,
        )
        for topic, server in TOPIC_TO_SERVER_DEFAULT.items()
    }
)

# Older Kafka spellings accepted in files, env and overrides: alias -> (key, multiplier to ms).
# Within one source the precise key wins: ms over minutes over hours. A later source wins over an earlier one.
ALIASES: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        "log.retention.hours": ("log.retention.ms", 3_600_000),
        "log.retention.minutes": ("log.retention.ms", 60_000),
        "log.roll.hours": ("log.roll.ms", 3_600_000),
    }
)
_ALIAS_ORDER = {"log.retention.hours": 0, "log.roll.hours": 0, "log.retention.minutes": 1}

assert all("_" not in name for name in SERVER_KEYS), "BROOK_CFG_* env mapping assumes no '_' in key names"


# --------------------------------------------------------------------------------------------------
# Unknown keys


def _unknown(
    name: str, known: Sequence[str], *, noun: str = "config key", hints: Mapping[str, str] | None = None
) -> ConfigError:
    suggestion = (hints or {}).get(name)
    if suggestion is None:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        suggestion = close[0] if close else None
    tail = f" (did you mean '{suggestion}'?)" if suggestion else ""
    return ConfigError(f"unknown {noun} {_q(name)}{tail}")


_SERVER_HINTS = dict(TOPIC_TO_SERVER_DEFAULT)  # a topic key used at server level -> its server key
_TOPIC_HINTS = {server: topic for topic, server in TOPIC_TO_SERVER_DEFAULT.items()}


# --------------------------------------------------------------------------------------------------
# .properties parsing

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join continuation lines; yield (first physical line number, logical line without leading space)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start = i
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(line):  # a continuation on the last line: drop the backslash
            line = line[:-1]
        yield start + 1, line


def _continues(line: str) -> bool:
    n = len(line) - len(line.rstrip("\\"))
    return n % 2 == 1


def _unescape(text: str, where: str) -> list[tuple[str, bool]]:
    """-> [(char, was_escaped)]"""
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append((c, False))
            i += 1
            continue
        if i + 1 >= len(text):
            i += 1
            continue
        n = text[i + 1]
        if n == "u":
            digits = text[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                raise ConfigError(f"{where}: bad unicode escape {_q(text[i : i + 6])}")
            out.append((chr(int(digits, 16)), True))
            i += 6
            continue
        out.append((_ESCAPES.get(n, n), True))
        i += 2
    return out


def _strip(chars: list[tuple[str, bool]]) -> str:
    lo, hi = 0, len(chars)
    while lo < hi and chars[lo][0] in " \t\f" and not chars[lo][1]:
        lo += 1
    while hi > lo and chars[hi - 1][0] in " \t\f" and not chars[hi - 1][1]:
        hi -= 1
    return "".join(c for c, _ in chars[lo:hi])


def _has_inner_space(chars: list[tuple[str, bool]]) -> bool:
    """An unescaped blank between non-blank characters (`a b=c`)."""
    marks = [c in " \t\f" and not esc for c, esc in chars]
    while marks and marks[0]:
        marks.pop(0)
    while marks and marks[-1]:
        marks.pop()
    return any(marks)


def _parse_properties_located(text: str, origin: str) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for lineno, line in _logical_lines(text):
        where = f"{origin}:{lineno}"
        chars = _unescape(line, where)
        sep = next((i for i, (c, esc) in enumerate(chars) if c in "=:" and not esc), None)
        if sep is None:
            raise ConfigError(f"{where}: expected key=value, got {_q(line.strip())}")
        key_chars = chars[:sep]
        key = _strip(key_chars)
        if not key:
            raise ConfigError(f"{where}: missing key before {_q(chars[sep][0])}")
        if _has_inner_space(key_chars):
            raise ConfigError(f"{where}: expected key=value, got {_q(line.strip())}")
        value = _strip(chars[sep + 1 :])
        if key in out:
            raise ConfigError(f"{where}: duplicate key {_q(key)} (first set on line {out[key][1]})")
        out[key] = (value, lineno)
    return out


def parse_properties(text: str, origin: str) -> dict[str, str]:
    """Parse a Java .properties subset: `#`/`!` comments, `key=value` or `key: value`, surrounding
    whitespace trimmed, a trailing backslash continues the line, escapes `\\t \\n \\r \\f \\uXXXX \\x`.
    Errors are ConfigError("<origin>:<line>: ..."). A key set twice is an error."""
    return {k: v for k, (v, _) in _parse_properties_located(text, origin).items()}


# --------------------------------------------------------------------------------------------------
# Config

_SOURCES = ("default", "file", "env", "override")


class Config:
    """An immutable, typed server configuration. Build it with `load_config` (or `Config.from_mapping`)."""

    __slots__ = ("_values", "_sources")

    _values: Mapping[str, Any]
    _sources: Mapping[str, str]

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
        full = {name: key.default for name, key in SERVER_KEYS.items()}
        full.update(values)
        object.__setattr__(self, "_values", MappingProxyType(full))
        object.__setattr__(self, "_sources", MappingProxyType({n: sources.get(n, "default") for n in full}))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Config is immutable")

    @classmethod
    def from_mapping(cls, props: Mapping[str, str], *, validate: bool = True) -> Config:
        """A Config from `{key: text}` (source 'override'), e.g. for tests. validate=False skips the
        cross-key (role) checks but still checks every key and value."""
        return _build([("override", [(k, v, "") for k, v in props.items()])], validate=validate)

    # -- generic access ---------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        try:
            value = self._values[name]
        except KeyError:
            raise KeyError(_unknown(name, list(SERVER_KEYS), hints=_SERVER_HINTS).message) from None
        return list(value) if isinstance(value, tuple) else value

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def getint(self, name: str) -> int:
        value = self[name]
        assert isinstance(value, int) and not isinstance(value, bool), name
        return value

    def getbool(self, name: str) -> bool:
        value = self[name]
        assert isinstance(value, bool), name
        return value

    def getstr(self, name: str) -> str:
        value = self[name]
        assert isinstance(value, str), name
        return value

    def getlist(self, name: str) -> list[str]:
        value = self[name]
        assert isinstance(value, list), name
        return value

    def getfloat(self, name: str) -> float:
        return float(self[name])

    def source(self, name: str) -> str:
        """'default' | 'file' | 'env' | 'override'"""
        self[name]  # noqa: B018 - KeyError for unknown names
        return self._sources[name]

    def items(self) -> Iterator[tuple[str, Any]]:
        """(name, typed value) for every server key, sorted by name. The secret stays a `Secret`."""
        for name in sorted(self._values):
            yield name, self[name]

    def explicit(self) -> dict[str, str]:
        """{name: text} of every key not taken from its default. The secret is masked."""
        return {
            name: SERVER_KEYS[name].format(self._values[name])
            for name in sorted(self._values)
            if self._sources[name] != "default"
        }

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.explicit().items())
        return f"Config({inner})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and dict(self._values) == dict(other._values)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._values.items())))

    def __reduce__(self) -> Any:
        return (Config, (dict(self._values), dict(self._sources)))

    # -- derived ----------------------------------------------------------------------------------

    @property
    def process_roles(self) -> frozenset[str]:
        return frozenset(self._values["process.roles"])

    @property
    def node_id(self) -> int:
        return int(self._values["node.id"])

    @property
    def is_broker(self) -> bool:
        return "broker" in self.process_roles

    @property
    def is_controller(self) -> bool:
        return "controller" in self.process_roles

    @property
    def controller_voters(self) -> list[Voter]:
        """The Raft (pysyncobj) addresses from controller.quorum.voters, in the order given."""
        return _parse_voters(self._values["controller.quorum.voters"])

    @property
    def controller_bootstrap(self) -> list[str]:
        """The controllers' gRPC addresses (host:port) from controller.quorum.bootstrap.servers."""
        return list(self._values["controller.quorum.bootstrap.servers"])

    @property
    def quorum_secret(self) -> str | None:
        """The revealed controller.quorum.secret, for pysyncobj's `password`. Do not log it."""
        secret = self._values["controller.quorum.secret"]
        return secret.reveal() if secret is not None else None

    @property
    def log_dirs(self) -> list[str]:
        return list(self._values["log.dirs"])

    @property
    def metadata_log_dir(self) -> str:
        """metadata.log.dir, or the first of log.dirs."""
        explicit = self._values["metadata.log.dir"]
        if explicit:
            return str(explicit)
        dirs = self._values["log.dirs"]
        return str(dirs[0]) if dirs else ""

    def listeners(self) -> dict[str, Endpoint]:
        return _parse_listeners(self._values["listeners"], advertised=False)

    def kafka_listeners(self) -> dict[str, Endpoint]:
        """The Kafka listeners (every listener but GRPC and CONTROLLER), in `listeners` order."""
        return {n: e for n, e in self.listeners().items() if n not in LISTENER_NAMES}

    def security_protocol(self, name: str) -> str:
        """The security protocol of Kafka listener `name` (ConfigError when the map lacks it)."""
        for item in self._values["listener.security.protocol.map"]:
            listener, _, protocol = item.partition(":")
            if listener == name.upper():
                return protocol
        raise ConfigError(f"listener {name.upper()} has no security protocol in listener.security.protocol.map")

    def listener(self, name: str) -> Endpoint | None:
        """The bind address (host, port) of listener `name`, or None."""
        return self.listeners().get(name.upper())

    def advertised_listener(self, name: str) -> Endpoint | None:
        """The address others use for listener `name`: its advertised.listeners entry, else the bound
        address. None if there is no such listener. A listener bound to a wildcard host (empty, 0.0.0.0,
        ::) without an advertised.listeners entry raises ConfigError."""
        name = name.upper()
        advertised = _parse_listeners(self._values["advertised.listeners"], advertised=True)
        if name in advertised:
            return advertised[name]
        bound = self.listener(name)
        if bound is None:
            return None
        if bound.host in _WILDCARD_HOSTS:
            shown = bound.host or "(empty)"
            raise ConfigError(
                f"listener {name} binds the wildcard host {shown}: add {name}://<reachable host>:{bound.port} "
                "to advertised.listeners"
            )
        return bound


# --------------------------------------------------------------------------------------------------
# Loading

_Layer = tuple[str, list[tuple[str, str, str]]]  # (source, [(name, raw, where)])


def _translate_aliases(entries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """Aliases become their ms key; within one source the precise key wins (applied last)."""
    aliased = [e for e in entries if e[0] in ALIASES]
    plain = [e for e in entries if e[0] not in ALIASES]
    out = []
    for name, raw, where in sorted(aliased, key=lambda e: _ALIAS_ORDER.get(e[0], 0)):
        target, factor = ALIASES[name]
        text = raw.strip()
        if not re.fullmatch(r"[+-]?\d+", text) or int(text) < -1:
            raise ConfigError(_at(where, f"invalid value {_q(raw)} for '{name}': expected an integer >= -1"))
        number = int(text)
        ms = -1 if number == -1 else number * factor
        if ms > LONG_MAX:
            raise ConfigError(_at(where, f"invalid value {_q(raw)} for '{name}': too large"))
        out.append((target, str(ms), where))
    return out + plain


def _at(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def _build(layers: Sequence[_Layer], *, validate: bool = True) -> Config:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    known = list(SERVER_KEYS) + list(ALIASES)
    for source, entries in layers:
        for name, raw, where in _translate_aliases(entries):
            key = SERVER_KEYS.get(name)
            if key is None:
                raise ConfigError(_at(where, _unknown(name, known, hints=_SERVER_HINTS).message))
            try:
                values[name] = key.parse(raw)
            except ConfigError as e:
                raise ConfigError(_at(where, e.message)) from None
            sources[name] = source
    config = Config(values, sources)
    if validate:
        _cross_validate(config)
    return config


def _env_layer(env: Mapping[str, str]) -> list[tuple[str, str, str]]:
    out = []
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX):
            continue
        name = var[len(ENV_PREFIX) :].lower().replace("_", ".")
        if not name:
            raise ConfigError(f"{var}: environment variable names no config key")
        out.append((name, env[var], var))
    return out


def _override_layer(overrides: Sequence[str]) -> list[tuple[str, str, str]]:
    out = []
    for item in overrides:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--override: expected key=value, got {_q(item)}")
        out.append((name.strip(), raw.strip(), "--override"))
    return out


def load_config(
    path: str | None, overrides: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Config:
    """Build the server Config. Precedence: defaults < the properties file at `path` < BROOK_CFG_*
    environment variables (`env`, default os.environ) < `overrides` ("key=value"; a later one wins).

    Environment: BROOK_CFG_<KEY> with the key upper-cased and '.' written '_' (BROOK_CFG_LOG_DIRS ->
    log.dirs). No Brook key contains '_', so the mapping is exact. Other variables are ignored.

    Raises ConfigError with a one-line message on an unreadable file, a malformed line, an unknown key
    (naming the nearest known key), a bad value (naming key, value and what is allowed) and a
    combination that cannot run (e.g. a controller without controller.quorum.secret)."""
    layers: list[_Layer] = []
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ConfigError(f"cannot read config file {_q(path)}: {reason}") from None
        located = _parse_properties_located(text, path)
        layers.append(("file", [(k, v, f"{path}:{line}") for k, (v, line) in located.items()]))
    layers.append(("env", _env_layer(os.environ if env is None else env)))
    layers.append(("override", _override_layer(overrides)))
    return _build(layers)


# --------------------------------------------------------------------------------------------------
# Cross-key validation


def _cross_validate(c: Config) -> None:
    roles = c.process_roles
    if not roles:
        raise ConfigError("process.roles is not set: expected broker, controller or broker,controller")
    if c.node_id < 0:
        raise ConfigError("node.id is not set: expected an integer >= 0")

    listeners = c.listeners()
    advertised = _parse_listeners(c._values["advertised.listeners"], advertised=True)
    for name in advertised:
        if name not in listeners:
            raise ConfigError(f"advertised.listeners names {name}, which is not in listeners")

    if "controller" in roles:
        voters = c.controller_voters
        if not voters:
            raise ConfigError("process.roles includes controller but controller.quorum.voters is not set")
        me = next((v for v in voters if v.node_id == c.node_id), None)
        if me is None:
            ids = ",".join(str(v.node_id) for v in voters)
            raise ConfigError(f"node.id {c.node_id} is not among controller.quorum.voters (ids {ids})")
        if "CONTROLLER" not in listeners:
            raise ConfigError("process.roles includes controller but listeners has no CONTROLLER://host:port")
        c.advertised_listener("CONTROLLER")
        for name, ep in listeners.items():
            if ep.port == me.port and ep.host in (me.host, *_WILDCARD_HOSTS):
                raise ConfigError(
                    f"listener {name} and this node's Raft address {me.hostport} (controller.quorum.voters) use the same port"
                )
        if c._values["controller.quorum.secret"] is None and not c._values["controller.quorum.insecure.dev"]:
            raise ConfigError(
                "process.roles includes controller but controller.quorum.secret is not set "
                "(the Raft port runs pickle; set a secret, or controller.quorum.insecure.dev=true for a local test cluster)"
            )
        if not c.metadata_log_dir:
            raise ConfigError(
                "process.roles includes controller but neither metadata.log.dir nor log.dirs is set"
            )

    if "broker" in roles:
        if "GRPC" not in listeners:
            raise ConfigError("process.roles includes broker but listeners has no GRPC://host:port")
        c.advertised_listener("GRPC")
        if not c.kafka_listeners():
            raise ConfigError("process.roles includes broker but listeners has no Kafka listener (e.g. PLAINTEXT://host:port)")
        for name in c.kafka_listeners():
            c.advertised_listener(name)
            c.security_protocol(name)
        _check_listener_names(c)
        if not c.log_dirs:
            raise ConfigError("process.roles includes broker but log.dirs is empty")
        if not c.controller_bootstrap:
            raise ConfigError(
                "process.roles includes broker but controller.quorum.bootstrap.servers is not set"
            )

    def need(cond: bool, message: str) -> None:
        if not cond:
            raise ConfigError(message)

    v = c._values
    need(
        v["broker.session.timeout.ms"] > v["broker.heartbeat.interval.ms"],
        f"broker.session.timeout.ms ({v['broker.session.timeout.ms']}) must exceed broker.heartbeat.interval.ms ({v['broker.heartbeat.interval.ms']})",
    )
    need(
        v["controller.quorum.leader.fallback.ms"] > v["controller.quorum.election.timeout.ms"],
        f"controller.quorum.leader.fallback.ms ({v['controller.quorum.leader.fallback.ms']}) must exceed controller.quorum.election.timeout.ms ({v['controller.quorum.election.timeout.ms']})",
    )
    need(
        v["replica.fetch.wait.max.ms"] < v["replica.socket.timeout.ms"],
        f"replica.fetch.wait.max.ms ({v['replica.fetch.wait.max.ms']}) must be below replica.socket.timeout.ms ({v['replica.socket.timeout.ms']})",
    )
    need(
        v["replica.fetch.wait.max.ms"] < v["replica.lag.time.max.ms"],
        f"replica.fetch.wait.max.ms ({v['replica.fetch.wait.max.ms']}) must be below replica.lag.time.max.ms ({v['replica.lag.time.max.ms']})",
    )
    need(
        v["group.min.session.timeout.ms"] <= v["group.max.session.timeout.ms"],
        f"group.min.session.timeout.ms ({v['group.min.session.timeout.ms']}) must not exceed group.max.session.timeout.ms ({v['group.max.session.timeout.ms']})",
    )
    need(
        v["replica.fetch.response.max.bytes"] < v["grpc.max.message.bytes"],
        f"replica.fetch.response.max.bytes ({v['replica.fetch.response.max.bytes']}) must be below grpc.max.message.bytes ({v['grpc.max.message.bytes']})",
    )
    need(
        v["message.max.bytes"] <= v["socket.request.max.bytes"],
        f"message.max.bytes ({v['message.max.bytes']}) must not exceed socket.request.max.bytes ({v['socket.request.max.bytes']})",
    )


# --------------------------------------------------------------------------------------------------
# Topic configs and single server keys


def _check_listener_names(c: Config) -> None:
    """`inter.broker.listener.name` names a listener of this broker (GRPC, or a Kafka listener that a
    Kafka server.properties names; see the key's doc)."""
    name = c.getstr("inter.broker.listener.name")
    if name not in c.listeners():
        raise ConfigError(f"inter.broker.listener.name is {name}, which is not in listeners "
                          f"({', '.join(c.listeners())})")


def validate_topic_config(name: str, value: str) -> str:
    """Check one per-topic config (create / alter). Returns the normalized text. Raises ConfigError on an
    unknown key (naming the nearest topic key) or a bad value (naming key, value and what is allowed)."""
    key = TOPIC_KEYS.get(name)
    if key is None:
        raise _unknown(name, list(TOPIC_KEYS), noun="topic config", hints=_TOPIC_HINTS)
    return key.format(key.parse(value))


def validate_server_config(name: str, value: str, *, dynamic_only: bool = False) -> str:
    """Check one server key and value. Returns the normalized text (a secret comes back masked).
    dynamic_only=True also refuses keys that cannot change at runtime."""
    name = name.strip()
    if name in ALIASES:
        target = _translate_aliases([(name, value, "")])[0]
        name, value = target[0], target[1]
    key = SERVER_KEYS.get(name)
    if key is None:
        raise _unknown(name, list(SERVER_KEYS) + list(ALIASES), hints=_SERVER_HINTS)
    if dynamic_only and not key.dynamic:
        raise ConfigError(
            f"config key '{name}' cannot be changed at runtime (set it in the server config and restart)"
        )
    return key.format(key.parse(value))


def topic_config_defaults(server: Config | Mapping[str, Any]) -> dict[str, str]:
    """{topic key: text} resolved from the server defaults. `server` is a Config or a mapping of server
    keys to text (keys it lacks take Brook's defaults)."""
    out: dict[str, str] = {}
    for topic, server_name in TOPIC_TO_SERVER_DEFAULT.items():
        skey = SERVER_KEYS[server_name]
        if isinstance(server, Config):
            out[topic] = skey.format(server._values[server_name])
        elif server_name in server:
            raw = server[server_name]
            out[topic] = skey.format(skey.parse(raw) if isinstance(raw, str) else raw)
        else:
            out[topic] = skey.format(skey.default)
    return out


# --------------------------------------------------------------------------------------------------
# Documentation


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _show_default(key: ConfigKey) -> str:
    if key.type == "password":
        return "(none)"
    if key.required:
        return "(required)"
    text = key.format(key.default)
    return f"`{text}`" if text else '`""`'


def _show_kafka(key: ConfigKey) -> str:
    if key.brook_only:
        return "(Brook-only)"
    kd = key.kafka_default
    if isinstance(kd, str):
        return f"`{kd}`" if kd else '`""`'
    return f"`{kd}`"


def markdown_table() -> str:
    """The configuration reference (docs/CONFIG.md). Secrets are never shown."""
    out: list[str] = []
    w = out.append
    w("# Brook configuration")
    w("")
    w(
        "<!-- Generated by `python -m cluster.config > docs/CONFIG.md`; edit cluster/config.py, not this file. -->"
    )
    w("")
    w("Brook uses Kafka's property names and, where they suit, Kafka's defaults. Every default that differs")
    w("from Kafka's, and every Brook-only key, is listed with its reason below.")
    w("")
    w("## Sources and precedence")
    w("")
    w(
        "Later wins: **defaults < properties file < `BROOK_CFG_*` environment < `--override key=value`** (a later"
    )
    w("`--override` wins over an earlier one).")
    w("")
    w(
        "- **File** (`brook server --config FILE`): Java `.properties` — `key=value` or `key: value`, `#` and `!`"
    )
    w(
        "  comments, surrounding whitespace trimmed, a trailing `\\` continues the line, escapes `\\t \\n \\uXXXX`."
    )
    w("  A key set twice in one file is an error.")
    w("- **Environment**: `BROOK_CFG_` + the key upper-cased with `.` written `_`: `BROOK_CFG_LOG_DIRS` sets")
    w(
        "  `log.dirs`, `BROOK_CFG_CONTROLLER_QUORUM_SECRET` sets `controller.quorum.secret`. No Brook key contains `_`,"
    )
    w("  so the mapping is exact. Other variables are ignored; an unknown `BROOK_CFG_*` key is an error.")
    w("- **Overrides**: `--override key=value`, repeatable.")
    w(
        "- **Aliases**: "
        + ", ".join(f"`{a}` → `{t}`" for a, (t, _) in ALIASES.items())
        + ". Within one source the precise key wins (ms over minutes over hours); -1 stays -1."
    )
    w("")
    w("An unknown key names the nearest known one; a bad value names the key, the value and what is allowed;")
    w("every error is one line and says where the value came from (`file:line`, the variable, `--override`).")
    w("")
    w("## Role requirements")
    w("")
    w("- `process.roles` is `broker`, `controller` or `broker,controller`; `node.id` >= 0 is required.")
    w(
        "- **controller**: `controller.quorum.voters` lists `node.id`; `listeners` has `CONTROLLER://host:port`"
    )
    w("  (gRPC, on a port other than this node's Raft port); `controller.quorum.secret` is set — or")
    w("  `controller.quorum.insecure.dev=true` for a throwaway local cluster.")
    w("- **broker**: `listeners` has `GRPC://` and at least one Kafka listener (e.g. `PLAINTEXT://`); `log.dirs` and")
    w("  `controller.quorum.bootstrap.servers` are set.")
    w("- A listener bound to a wildcard host (empty, `0.0.0.0`, `::`) needs an `advertised.listeners` entry.")
    w(
        "- `broker.session.timeout.ms` > `broker.heartbeat.interval.ms`; `controller.quorum.leader.fallback.ms` >"
    )
    w(
        "  `controller.quorum.election.timeout.ms`; `replica.fetch.wait.max.ms` < `replica.socket.timeout.ms` and"
    )
    w("  < `replica.lag.time.max.ms`; `group.min.session.timeout.ms` <= `group.max.session.timeout.ms`;")
    w(
        "  `replica.fetch.response.max.bytes` < `grpc.max.message.bytes`; `message.max.bytes` <= `socket.request.max.bytes`."
    )
    w(
        "  `min.insync.replicas` may exceed `default.replication.factor` (as in Kafka; acks=all writes then fail)."
    )
    w("")
    w("## Server keys")
    w("")
    w("| Key | Type | Default | Valid values | Dynamic | Description |")
    w("|---|---|---|---|---|---|")
    for key in sorted(SERVER_KEYS.values(), key=lambda k: k.name):
        doc = key.doc
        if key.brook_only:
            doc += f" **Brook-only.** {key.reason or ''}"
        elif key.kafka_default is not None:
            doc += f" **Kafka's default: {_show_kafka(key)}.** {key.reason or ''}"
        w(
            f"| `{key.name}` | {key.type} | {_md(_show_default(key))} | {_md(key.expected())} | "
            f"{'yes' if key.dynamic else 'no'} | {_md(doc.strip())} |"
        )
    w("")
    w("## Topic keys")
    w("")
    w(
        "Set per topic on create or with configs alter (all dynamic). A key not set on the topic takes the server key."
    )
    w("")
    w("| Key | Server default from | Type | Default | Valid values | Description |")
    w("|---|---|---|---|---|---|")
    for key in sorted(TOPIC_KEYS.values(), key=lambda k: k.name):
        w(
            f"| `{key.name}` | `{key.server_default}` | {key.type} | {_md(_show_default(key))} | "
            f"{_md(key.expected())} | {_md(key.doc)} |"
        )
    w("")
    w("## Defaults that differ from Kafka's, and Brook-only keys")
    w("")
    w("| Key | Brook | Kafka | Reason |")
    w("|---|---|---|---|")
    for key in sorted(SERVER_KEYS.values(), key=lambda k: k.name):
        if key.brook_only or key.kafka_default is not None:
            w(
                f"| `{key.name}` | {_md(_show_default(key))} | {_md(_show_kafka(key))} | {_md(key.reason or '')} |"
            )
    w("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown_table(), end="")
