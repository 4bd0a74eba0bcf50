"""`Config` (an immutable, typed server configuration), `load_config` and the checks across keys.

Sources, later wins: defaults < properties file < BROOK_CFG_* environment < --override key=value.
Also the single-key checks used by create / alter (`validate_topic_config`, `validate_server_config`)
and `topic_config_defaults`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from cluster.config.properties import _parse_properties_located
from cluster.config.schema import (
    _ALIAS_ORDER,
    ALIASES,
    KAFKA_IGNORED,
    SERVER_KEYS,
    TOPIC_KEYS,
    TOPIC_ONLY_KEYS,
    TOPIC_TO_SERVER_DEFAULT,
)
from cluster.config.values import (
    _WILDCARD_HOSTS,
    ENV_PREFIX,
    LISTENER_NAMES,
    Endpoint,
    Voter,
    _parse_listeners,
    _parse_voters,
    _q,
)
from cluster.errors import ConfigError
from cluster.limits import (
    LONG_MAX,
)

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
# Config

_SOURCES = ("default", "file", "env", "override")


class Config:
    """An immutable, typed server configuration. Build it with `load_config` (or `Config.from_mapping`)."""

    __slots__ = ("_values", "_sources", "warnings")

    _values: Mapping[str, Any]
    _sources: Mapping[str, str]
    warnings: tuple[str, ...]  # one line per Kafka key that does not apply to Brook (ignored)

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str],
                 warnings: Sequence[str] = ()) -> None:
        full = {name: key.default for name, key in SERVER_KEYS.items()}
        full.update(values)
        object.__setattr__(self, "_values", MappingProxyType(full))
        object.__setattr__(self, "_sources", MappingProxyType({n: sources.get(n, "default") for n in full}))
        object.__setattr__(self, "warnings", tuple(warnings))

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

    @property
    def super_users(self) -> frozenset[str]:
        out: set[str] = set()
        for item in self._values["super.users"]:
            out.update(p.strip() for p in item.split(";") if p.strip())
        return frozenset(out)

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


def _translate_aliases(entries: list[tuple[str, str, str]],
                       errors: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Aliases become their ms key; within one source the precise key wins (applied last). A bad alias
    value is appended to `errors` as (key, message)."""
    aliased = [e for e in entries if e[0] in ALIASES]
    plain = [e for e in entries if e[0] not in ALIASES]
    out = []
    for name, raw, where in sorted(aliased, key=lambda e: _ALIAS_ORDER.get(e[0], 0)):
        target, factor = ALIASES[name]
        text = raw.strip()
        if not re.fullmatch(r"[+-]?\d+", text) or int(text) < -1:
            errors.append((target, _at(where, f"invalid value {_q(raw)} for '{name}': expected an integer >= -1")))
            continue
        number = int(text)
        ms = -1 if number == -1 else number * factor
        if ms > LONG_MAX:
            errors.append((target, _at(where, f"invalid value {_q(raw)} for '{name}': too large")))
            continue
        out.append((target, str(ms), where))
    return out + plain


def _at(where: str, message: str) -> str:
    return f"{where}: {message}" if where else message


def _build(layers: Sequence[_Layer], *, validate: bool = True) -> Config:
    """Every key of every layer is checked and every error is reported in one ConfigError; Kafka keys
    that do not apply to Brook become `Config.warnings`. When every key is valid, the cross-key checks
    run, again all of them (they would judge defaults in place of refused values, so not before)."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: dict[str, str] = {}
    errors: list[tuple[str, str]] = []  # (key, message)
    known = list(SERVER_KEYS) + list(ALIASES) + list(KAFKA_IGNORED)
    for source, entries in layers:
        for name, raw, where in _translate_aliases(entries, errors):
            key = SERVER_KEYS.get(name)
            if key is None:
                if name in KAFKA_IGNORED:
                    warnings[name] = _at(where, f"'{name}' does not apply to Brook and is ignored: {KAFKA_IGNORED[name]}")
                else:
                    errors.append((name, _at(where, _unknown(name, known, hints=_SERVER_HINTS).message)))
                continue
            try:
                values[name] = key.parse(raw)
            except ConfigError as e:
                errors.append((name, _at(where, e.message)))
                continue
            sources[name] = source
    config = Config(values, sources, list(warnings.values()))
    if errors:
        raise _all_errors([m for _, m in errors])
    if validate:
        _cross_validate(config)
    return config


def _all_errors(messages: Sequence[str]) -> ConfigError:
    """One ConfigError for all `messages`, on one line (the CLI prints it as `error: ...`)."""
    if len(messages) == 1:
        return ConfigError(messages[0])
    return ConfigError(f"{len(messages)} config errors: " + "; ".join(messages))


def _env_layer(env: Mapping[str, str]) -> list[tuple[str, str, str]]:
    out = []
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX):
            continue
        name = var[len(ENV_PREFIX) :].lower().replace("_", ".")
        if not name:
            raise ConfigError(f"{var}: environment variable names no config key")
        base = name[: -len(".file")]
        if name not in SERVER_KEYS and name.endswith(".file") and base in SERVER_KEYS:
            # BROOK_CFG_<KEY>_FILE=/run/secrets/x: the value is that file's content (Docker secrets).
            if var[: -len("_FILE")] in env:
                raise ConfigError(f"{var}: {var[: -len('_FILE')]} is set too; set one of them")
            out.append((base, _read_secret_file(var, env[var]), var))
            continue
        out.append((name, env[var], var))
    return out


SECRET_FILE_BYTES_MAX = 64 * 1024


def _read_secret_file(var: str, path: str) -> str:
    """A value from a file: its text without the trailing newline (a secret mounted by Docker/Kubernetes)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(SECRET_FILE_BYTES_MAX + 1)
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{var}: cannot read {path!r}: {getattr(e, 'strerror', None) or e}") from None
    if len(text) > SECRET_FILE_BYTES_MAX:
        raise ConfigError(f"{var}: {path!r} is larger than {SECRET_FILE_BYTES_MAX} bytes")
    return text.rstrip("\r\n")


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
    """Raise one ConfigError listing every cross-key error of `c`."""
    messages = _cross_errors(c)
    if messages:
        raise _all_errors(messages)


def _cross_errors(c: Config) -> list[str]:
    """Every cross-key error: each independent check runs, each stops at its own first error."""
    out: list[str] = []
    try:
        _check_identity(c)
    except ConfigError as e:
        out.append(e.message)  # the role checks would only repeat it
        return out + _relation_errors(c)
    for check in (_check_advertised_names, _check_controller_role, _check_broker_role):
        try:
            check(c)
        except ConfigError as e:
            out.append(e.message)
    return out + _relation_errors(c)


def _check_identity(c: Config) -> None:
    if not c.process_roles:
        raise ConfigError("process.roles is not set: expected broker, controller or broker,controller")
    if c.node_id < 0:
        raise ConfigError("node.id is not set: expected an integer >= 0")


def _check_advertised_names(c: Config) -> None:
    listeners = c.listeners()
    advertised = _parse_listeners(c._values["advertised.listeners"], advertised=True)
    for name in advertised:
        if name not in listeners:
            raise ConfigError(f"advertised.listeners names {name}, which is not in listeners")


def _check_controller_role(c: Config) -> None:
    listeners = c.listeners()
    if "controller" in c.process_roles:
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



def _check_broker_role(c: Config) -> None:
    listeners = c.listeners()
    if "broker" in c.process_roles:
        if "GRPC" not in listeners:
            raise ConfigError("process.roles includes broker but listeners has no GRPC://host:port")
        c.advertised_listener("GRPC")
        if not c.kafka_listeners():
            raise ConfigError("process.roles includes broker but listeners has no Kafka listener (e.g. PLAINTEXT://host:port)")
        for name in c.kafka_listeners():
            c.advertised_listener(name)
            c.security_protocol(name)
        _check_listener_names(c)
        _check_security(c)
        if not c.log_dirs:
            raise ConfigError("process.roles includes broker but log.dirs is empty")
        if len(c.log_dirs) > 1:
            raise ConfigError(
                f"log.dirs lists {len(c.log_dirs)} directories; a Brook broker keeps its partitions in one "
                "RocksDB and uses exactly one (Kafka's JBOD is not supported): list one directory")
        if not c.controller_bootstrap:
            raise ConfigError(
                "process.roles includes broker but controller.quorum.bootstrap.servers is not set"
            )


def _relation_errors(c: Config) -> list[str]:
    """The relations between timeouts and sizes, each checked on its own."""
    out: list[str] = []

    def need(cond: bool, message: str) -> None:
        if not cond:
            out.append(message)

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
    return out


# --------------------------------------------------------------------------------------------------
# Topic configs and single server keys


def _check_listener_names(c: Config) -> None:
    """`inter.broker.listener.name` names a listener of this broker (GRPC, or a Kafka listener that a
    Kafka server.properties names; see the key's doc)."""
    name = c.getstr("inter.broker.listener.name")
    if name not in c.listeners():
        raise ConfigError(f"inter.broker.listener.name is {name}, which is not in listeners "
                          f"({', '.join(c.listeners())})")


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_security(c: Config) -> None:
    """TLS material where a listener needs it, and Brook's rule: no unauthenticated non-loopback port."""
    v = c._values
    if v["grpc.ssl.enabled"] and not (v["ssl.keystore.location"] and v["ssl.truststore.location"]):
        raise ConfigError("grpc.ssl.enabled=true needs ssl.keystore.location and ssl.truststore.location")
    for name, ep in c.kafka_listeners().items():
        protocol = c.security_protocol(name)
        if protocol in ("SSL", "SASL_SSL") and not v["ssl.keystore.location"]:
            raise ConfigError(f"listener {name} is {protocol} but ssl.keystore.location is not set")
        if protocol == "SSL" and v["ssl.client.auth"] != "none" and not v["ssl.truststore.location"]:
            raise ConfigError(f"listener {name} checks client certificates (ssl.client.auth={v['ssl.client.auth']}) "
                              "but ssl.truststore.location is not set")
        authenticated = protocol.startswith("SASL_") or (protocol == "SSL" and v["ssl.client.auth"] == "required")
        if not authenticated and not _is_loopback(ep.host) and not v["allow.unauthenticated.listeners"]:
            shown = ep.host or "every interface"
            raise ConfigError(
                f"listener {name} ({protocol} on {shown}) does not authenticate clients and is not on loopback: "
                "use SASL_SSL, SASL_PLAINTEXT or SSL with ssl.client.auth=required, bind it to 127.0.0.1, "
                "or set allow.unauthenticated.listeners=true if that is really meant")


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
        errors: list[tuple[str, str]] = []
        translated = _translate_aliases([(name, value, "")], errors)
        if errors:
            raise ConfigError(errors[0][1])
        name, value = translated[0][0], translated[0][1]
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
    for key in TOPIC_ONLY_KEYS:  # no server default: Kafka's (empty)
        out[key.name] = key.format(key.default)
    return out
