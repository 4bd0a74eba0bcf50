"""Pure: the settings that are in force for a topic and for the cluster, worked out in one place.

    topic_config(image, static, topic) -> TopicConfig      every topic key, typed
    cluster_config(image, static) -> ClusterConfig         the cluster-wide keys the controller acts on
    server_config_entries(image, static, broker)           every server key as text, for DescribeConfigs

Precedence, highest first (Kafka's):
1. the topic's own config (`Config` records on the topic, set by create / alter),
2. the cluster-wide dynamic default (`Config` records on the default broker resource, under the *server*
   key: `log.retention.ms` for `retention.ms`),
3. the node's static config (`Config`: properties file < environment < --override), which already holds
   Brook's default for every key nobody set.

The image holds text (as validated by the controller on the way in); values are parsed with the same
schema (`TOPIC_KEYS` / `SERVER_KEYS`) the controller validated them with. A value that does not parse —
which only a corrupt or hand-made image can hold — raises `EffectiveConfigError` naming the topic, the
key, the value and the layer it came from; it is a `ValueError` too, so a broker keeps a partition's old
log settings rather than applying a half-read config.

No clock, no I/O, nothing from broker/, controller/ or storage/: the broker turns a `TopicConfig` into
storage's `LogConfig` itself (broker/topic_configs.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cluster.config import SERVER_KEYS, TOPIC_KEYS, TOPIC_TO_SERVER_DEFAULT, Config, ConfigKey
from cluster.errors import ConfigError
from cluster.image import MetadataImage
from cluster.records import RESOURCE_BROKER, RESOURCE_TOPIC

__all__ = [
    "SOURCE_CLUSTER",
    "SOURCE_STATIC",
    "SOURCE_TOPIC",
    "SOURCE_DYNAMIC",
    "ClusterConfig",
    "EffectiveConfigError",
    "ServerEntry",
    "TopicConfig",
    "cluster_config",
    "server_config_entries",
    "topic_config",
]

# Where an effective value came from.
SOURCE_TOPIC = "topic"      # the topic's own config
SOURCE_CLUSTER = "cluster"  # the cluster-wide dynamic default
SOURCE_STATIC = "static"    # this node's static config (or Brook's default)
SOURCE_DYNAMIC = "dynamic"  # a server key set at runtime, for one broker or cluster-wide

# The cluster-wide dynamic default lives on the broker resource with the empty name (Kafka's default
# broker resource, `--entity-default`).
_CLUSTER_DEFAULT_RESOURCE = (RESOURCE_BROKER, "")


class EffectiveConfigError(ConfigError, ValueError):
    """A value in the metadata image does not parse; the message names topic, key, value and layer."""


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """The effective value of every topic-level key (Kafka's names, dots become underscores)."""

    topic: str
    retention_ms: int
    retention_bytes: int
    segment_bytes: int
    segment_ms: int
    cleanup_policy: tuple[str, ...]
    delete_retention_ms: int
    min_compaction_lag_ms: int
    max_message_bytes: int
    min_insync_replicas: int
    unclean_leader_election_enable: bool
    flush_messages: int
    flush_ms: int  # -1 = no time-based flush
    message_timestamp_type: str
    compression_type: str
    leader_replication_throttled_replicas: tuple[str, ...]  # kafka-reassign-partitions --throttle's
    follower_replication_throttled_replicas: tuple[str, ...]
    # {topic key: SOURCE_*} for every key; not part of equality.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def value(self, key: str) -> Any:
        """The typed value of topic key `key` (e.g. 'retention.ms')."""
        return getattr(self, _attribute(key))

    def text(self, key: str) -> str:
        """The value of `key` in its canonical text form (the form topic configs are stored in)."""
        return TOPIC_KEYS[key].format(self.value(key))

    def source(self, key: str) -> str:
        return self.sources[key]


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """The effective cluster-wide settings the active controller acts on (dynamic default > static)."""

    auto_leader_rebalance_enable: bool
    leader_imbalance_check_interval_seconds: int
    leader_imbalance_per_broker_percentage: int
    unclean_leader_election_enable: bool
    min_insync_replicas: int


def _attribute(key: str) -> str:
    return key.replace(".", "_")


_TOPIC_FIELDS = tuple(f.name for f in fields(TopicConfig) if f.name not in ("topic", "sources"))
_CLUSTER_FIELDS = tuple(f.name for f in fields(ClusterConfig))
# Every topic key has exactly one field, and every cluster field is a server key: adding a key to the
# schema without adding it here fails at import, not at the first read.
assert sorted(_TOPIC_FIELDS) == sorted(_attribute(k) for k in TOPIC_KEYS), "TopicConfig fields != TOPIC_KEYS"
_CLUSTER_KEYS = {name: name.replace("_", ".") for name in _CLUSTER_FIELDS}
assert all(key in SERVER_KEYS for key in _CLUSTER_KEYS.values()), "ClusterConfig field without a server key"


def _parse(spec: ConfigKey, text: str, where: str) -> Any:
    try:
        return spec.parse(text)
    except ConfigError as e:
        raise EffectiveConfigError(f"{where}: {e}") from None


def _static(static: Config, key: str) -> Any:
    value = static[key]
    return tuple(value) if isinstance(value, list) else value


def topic_config(image: MetadataImage, static: Config, topic: str) -> TopicConfig:
    """The effective settings of `topic`: its own config > the cluster dynamic default > static config.

    A topic that does not exist (yet) gets the cluster's values, as a topic created now would."""
    explicit = image.config(RESOURCE_TOPIC, topic)
    dynamic = image.config(*_CLUSTER_DEFAULT_RESOURCE)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, spec in TOPIC_KEYS.items():
        server_key = TOPIC_TO_SERVER_DEFAULT.get(key)
        if key in explicit:
            value = _parse(spec, explicit[key], f"topic {topic!r} config")
            source = SOURCE_TOPIC
        elif server_key is None:  # a topic-only key: Kafka's default
            value = spec.default
            source = SOURCE_STATIC
        elif server_key in dynamic:
            value = _parse(SERVER_KEYS[server_key], dynamic[server_key], "cluster-wide dynamic config")
            source = SOURCE_CLUSTER
        else:
            value = _static(static, server_key)
            source = SOURCE_STATIC
        values[_attribute(key)] = value
        sources[key] = source
    return TopicConfig(topic=topic, sources=sources, **values)


def cluster_config(image: MetadataImage, static: Config) -> ClusterConfig:
    """The effective cluster-wide settings: the dynamic default > static config."""
    dynamic = image.config(*_CLUSTER_DEFAULT_RESOURCE)
    values: dict[str, Any] = {}
    for name, key in _CLUSTER_KEYS.items():
        if key in dynamic:
            values[name] = _parse(SERVER_KEYS[key], dynamic[key], "cluster-wide dynamic config")
        else:
            values[name] = _static(static, key)
    return ClusterConfig(**values)


def server_value(image: MetadataImage, static: Config, broker: str, key: str) -> Any:
    """One dynamic server key as broker `broker` runs with it: its own dynamic config > the cluster-wide
    dynamic default > static config (typed)."""
    own = image.config(RESOURCE_BROKER, broker) if broker else {}
    if key in own:
        return _parse(SERVER_KEYS[key], own[key], f"broker {broker} dynamic config")
    dynamic = image.config(*_CLUSTER_DEFAULT_RESOURCE)
    if key in dynamic:
        return _parse(SERVER_KEYS[key], dynamic[key], "cluster-wide dynamic config")
    return _static(static, key)


@dataclass(frozen=True, slots=True)
class ServerEntry:
    name: str
    text: str
    source: str  # SOURCE_DYNAMIC | SOURCE_STATIC


def server_config_entries(image: MetadataImage, static: Config, broker: str) -> list[ServerEntry]:
    """Every server key but secrets, sorted, as broker `broker` ("" = the cluster default) runs with it:
    its own dynamic config > the cluster-wide dynamic default > static config. Stored text is shown as
    stored (it was validated on the way in), so describing never fails."""
    dynamic = dict(image.config(*_CLUSTER_DEFAULT_RESOURCE))
    if broker:
        dynamic.update(image.config(RESOURCE_BROKER, broker))
    out = []
    for key, spec in sorted(SERVER_KEYS.items()):
        if spec.type == "password":
            continue
        if key in dynamic:
            out.append(ServerEntry(key, dynamic[key], SOURCE_DYNAMIC))
        else:
            out.append(ServerEntry(key, _format_static(static[key]), SOURCE_STATIC))
    return out


def _format_static(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)
