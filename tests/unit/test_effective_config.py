"""cluster.effective_config: which layer wins for a topic / the cluster, typed values, bad values.

Method: build images with Config records on the topic and on the cluster-default broker resource,
a static Config from overrides, and check each key's effective value and source in a table.
"""

from __future__ import annotations

import dataclasses

import pytest

from broker.topic_configs import TopicConfigs, log_config
from cluster.config import TOPIC_KEYS, TOPIC_TO_SERVER_DEFAULT, Config, topic_config_defaults
from cluster.config.schema import TOPIC_ONLY_KEYS
from cluster.effective_config import (
    SOURCE_CLUSTER,
    SOURCE_DYNAMIC,
    SOURCE_STATIC,
    SOURCE_TOPIC,
    ClusterConfig,
    EffectiveConfigError,
    TopicConfig,
    cluster_config,
    server_config_entries,
    topic_config,
)
from cluster.errors import ConfigError
from cluster.image import MetadataImage, replay_all
from cluster.records import RESOURCE_BROKER, RESOURCE_TOPIC, ConfigRecord, TopicRecord
from storage.log import LogConfig

TOPIC = "orders"


def image_with(topic: dict[str, str] | None = None, cluster: dict[str, str] | None = None,
               broker_1: dict[str, str] | None = None) -> MetadataImage:
    records: list = [TopicRecord(TOPIC, b"t" * 16)]
    records += [ConfigRecord(RESOURCE_TOPIC, TOPIC, k, v) for k, v in (topic or {}).items()]
    records += [ConfigRecord(RESOURCE_BROKER, "", k, v) for k, v in (cluster or {}).items()]
    records += [ConfigRecord(RESOURCE_BROKER, "1", k, v) for k, v in (broker_1 or {}).items()]
    return replay_all(MetadataImage(), records)


def static(**props: str) -> Config:
    return Config.from_mapping({k.replace("_", "."): v for k, v in props.items()}, validate=False)


# (case, topic config, cluster dynamic config, static overrides, topic key, expected value, expected source)
PRECEDENCE = [
    ("default", {}, {}, {}, "retention.ms", 7 * 24 * 3600 * 1000, SOURCE_STATIC),
    ("static-file", {}, {}, {"log_retention_ms": "1000"}, "retention.ms", 1000, SOURCE_STATIC),
    ("cluster-beats-static", {}, {"log.retention.ms": "2000"}, {"log_retention_ms": "1000"}, "retention.ms",
     2000, SOURCE_CLUSTER),
    ("topic-beats-cluster", {"retention.ms": "3000"}, {"log.retention.ms": "2000"}, {"log_retention_ms": "1000"},
     "retention.ms", 3000, SOURCE_TOPIC),
    ("topic-beats-static", {"retention.ms": "3000"}, {}, {"log_retention_ms": "1000"}, "retention.ms", 3000,
     SOURCE_TOPIC),
    # The cluster layer is read under the server key: a topic key there means nothing.
    ("cluster-uses-server-key", {}, {"retention.ms": "2000"}, {}, "retention.ms", 7 * 24 * 3600 * 1000,
     SOURCE_STATIC),
    ("segment-ms-from-log-roll-ms", {}, {"log.roll.ms": "60000"}, {}, "segment.ms", 60000, SOURCE_CLUSTER),
    ("max-message-bytes-from-message-max-bytes", {}, {}, {"message_max_bytes": "2048"}, "max.message.bytes", 2048,
     SOURCE_STATIC),
    ("cleanup-policy-list", {"cleanup.policy": "compact,delete"}, {}, {}, "cleanup.policy", ("compact", "delete"),
     SOURCE_TOPIC),
    ("cleanup-policy-static-list", {}, {}, {"log_cleanup_policy": "compact"}, "cleanup.policy", ("compact",),
     SOURCE_STATIC),
    ("min-insync-cluster", {}, {"min.insync.replicas": "2"}, {}, "min.insync.replicas", 2, SOURCE_CLUSTER),
    ("min-insync-topic", {"min.insync.replicas": "3"}, {"min.insync.replicas": "2"}, {}, "min.insync.replicas", 3,
     SOURCE_TOPIC),
    ("unclean-static-true", {}, {}, {"unclean_leader_election_enable": "true"}, "unclean.leader.election.enable",
     True, SOURCE_STATIC),
    ("unclean-cluster-false-beats-static-true", {}, {"unclean.leader.election.enable": "false"},
     {"unclean_leader_election_enable": "true"}, "unclean.leader.election.enable", False, SOURCE_CLUSTER),
    ("unclean-topic-true-beats-cluster-false", {"unclean.leader.election.enable": "true"},
     {"unclean.leader.election.enable": "false"}, {}, "unclean.leader.election.enable", True, SOURCE_TOPIC),
    ("flush-ms-default-is-never", {}, {}, {}, "flush.ms", -1, SOURCE_STATIC),
    ("timestamp-type-topic", {"message.timestamp.type": "LogAppendTime"}, {}, {}, "message.timestamp.type",
     "LogAppendTime", SOURCE_TOPIC),
    ("compression-cluster", {}, {"compression.type": "zstd"}, {}, "compression.type", "zstd", SOURCE_CLUSTER),
]


@pytest.mark.parametrize("case,topic,cluster,props,key,expected,source", PRECEDENCE, ids=[c[0] for c in PRECEDENCE])
def test_precedence(case, topic, cluster, props, key, expected, source):
    settings = topic_config(image_with(topic, cluster), static(**props), TOPIC)
    assert settings.value(key) == expected
    assert settings.source(key) == source


def test_per_broker_dynamic_config_is_not_a_topic_default():
    """Only the cluster-wide default resource (name "") gives topic defaults, as before."""
    settings = topic_config(image_with(broker_1={"log.retention.ms": "5"}), static(), TOPIC)
    assert settings.retention_ms == 7 * 24 * 3600 * 1000 and settings.source("retention.ms") == SOURCE_STATIC


def test_other_topics_config_does_not_leak():
    image = replay_all(image_with({"retention.ms": "3000"}), [TopicRecord("other", b"o" * 16)])
    assert topic_config(image, static(), "other").retention_ms == 7 * 24 * 3600 * 1000


def test_every_topic_key_is_typed_and_its_text_is_the_stored_form():
    """With nothing set, text() equals the server-derived defaults the broker used before."""
    props = {"log_retention_ms": "1234", "log_cleanup_policy": "compact,delete", "compression_type": "lz4"}
    settings = topic_config(image_with(), static(**props), TOPIC)
    defaults = topic_config_defaults(static(**props))
    assert {key: settings.text(key) for key in TOPIC_KEYS} == defaults
    # every topic key takes its default from a server key, except the two throttled-replicas lists (issue 13)
    assert set(settings.sources) == set(TOPIC_KEYS) == set(TOPIC_TO_SERVER_DEFAULT) | {k.name for k in TOPIC_ONLY_KEYS}
    for key, spec in TOPIC_KEYS.items():
        expected_type = {"int": int, "long": int, "bool": bool, "string": str, "list": tuple}[spec.type]
        assert isinstance(settings.value(key), expected_type), key


def test_topic_config_is_frozen():
    settings = topic_config(image_with(), static(), TOPIC)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.retention_ms = 1  # type: ignore[misc]


# (case, topic config, cluster dynamic config, words the error must contain)
BAD = [
    ("topic-not-a-number", {"retention.ms": "soon"}, {}, ["orders", "retention.ms", "soon"]),
    ("topic-below-range", {"segment.bytes": "1"}, {}, ["orders", "segment.bytes", "'1'"]),
    ("topic-bad-bool", {"unclean.leader.election.enable": "yes"}, {}, ["unclean.leader.election.enable", "yes"]),
    ("topic-bad-choice", {"message.timestamp.type": "Now"}, {}, ["message.timestamp.type", "Now"]),
    ("topic-bad-policy", {"cleanup.policy": "forever"}, {}, ["cleanup.policy", "forever"]),
    ("cluster-not-a-number", {}, {"log.retention.ms": "soon"}, ["cluster-wide", "log.retention.ms", "soon"]),
    ("cluster-bad-min-insync", {}, {"min.insync.replicas": "0"}, ["cluster-wide", "min.insync.replicas"]),
]


@pytest.mark.parametrize("case,topic,cluster,words", BAD, ids=[c[0] for c in BAD])
def test_bad_values_are_refused_with_the_key_value_and_layer(case, topic, cluster, words):
    with pytest.raises(EffectiveConfigError) as info:
        topic_config(image_with(topic, cluster), static(), TOPIC)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)
    # The broker's ReplicaManager keeps a partition's old log config on ValueError; the admin answers
    # INVALID_CONFIG from a ConfigError: the error is both.
    assert isinstance(info.value, ValueError) and isinstance(info.value, ConfigError)


def test_a_bad_value_under_a_lower_layer_is_not_read_when_a_higher_one_wins():
    settings = topic_config(image_with({"retention.ms": "5"}, {"log.retention.ms": "soon"}), static(), TOPIC)
    assert settings.retention_ms == 5


# (case, cluster dynamic config, static overrides, field, expected)
CLUSTER = [
    ("rebalance-default-on", {}, {}, "auto_leader_rebalance_enable", True),
    ("rebalance-static-off", {}, {"auto_leader_rebalance_enable": "false"}, "auto_leader_rebalance_enable", False),
    ("rebalance-dynamic-beats-static", {"auto.leader.rebalance.enable": "true"},
     {"auto_leader_rebalance_enable": "false"}, "auto_leader_rebalance_enable", True),
    ("percentage-dynamic", {"leader.imbalance.per.broker.percentage": "25"}, {},
     "leader_imbalance_per_broker_percentage", 25),
    ("interval-static", {}, {"leader_imbalance_check_interval_seconds": "7"},
     "leader_imbalance_check_interval_seconds", 7),
    ("unclean-dynamic", {"unclean.leader.election.enable": "true"}, {}, "unclean_leader_election_enable", True),
]


@pytest.mark.parametrize("case,cluster,props,name,expected", CLUSTER, ids=[c[0] for c in CLUSTER])
def test_cluster_config(case, cluster, props, name, expected):
    settings = cluster_config(image_with(cluster=cluster), static(**props))
    assert isinstance(settings, ClusterConfig)
    assert getattr(settings, name) == expected


def test_cluster_config_bad_value():
    with pytest.raises(EffectiveConfigError, match="leader.imbalance.per.broker.percentage"):
        cluster_config(image_with(cluster={"leader.imbalance.per.broker.percentage": "lots"}), static())


# (case, cluster dynamic, broker 1 dynamic, static overrides, broker asked about, key, text, source)
SERVER = [
    ("static", {}, {}, {"log_retention_ms": "1000"}, "1", "log.retention.ms", "1000", SOURCE_STATIC),
    ("cluster-beats-static", {"log.retention.ms": "2000"}, {}, {"log_retention_ms": "1000"}, "1",
     "log.retention.ms", "2000", SOURCE_DYNAMIC),
    ("broker-beats-cluster", {"log.retention.ms": "2000"}, {"log.retention.ms": "3000"}, {}, "1",
     "log.retention.ms", "3000", SOURCE_DYNAMIC),
    ("other-brokers-config-not-shown", {}, {"log.retention.ms": "3000"}, {}, "2", "log.retention.ms",
     str(7 * 24 * 3600 * 1000), SOURCE_STATIC),
    ("cluster-default-resource", {"log.retention.ms": "2000"}, {"log.retention.ms": "3000"}, {}, "",
     "log.retention.ms", "2000", SOURCE_DYNAMIC),
    ("list-as-text", {}, {}, {"log_cleanup_policy": "compact,delete"}, "1", "log.cleanup.policy", "compact,delete",
     SOURCE_STATIC),
    ("bool-as-text", {}, {}, {}, "1", "auto.create.topics.enable", "true", SOURCE_STATIC),
]


@pytest.mark.parametrize("case,cluster,broker_1,props,broker,key,text,source", SERVER, ids=[c[0] for c in SERVER])
def test_server_config_entries(case, cluster, broker_1, props, broker, key, text, source):
    entries = {e.name: e for e in server_config_entries(image_with(cluster=cluster, broker_1=broker_1),
                                                         static(**props), broker)}
    assert (entries[key].text, entries[key].source) == (text, source)


def test_server_config_entries_never_show_the_secret():
    props = {"controller.quorum.secret": "s3cr3t-Quorum-Pass"}
    entries = server_config_entries(image_with(), Config.from_mapping(props, validate=False), "1")
    assert "controller.quorum.secret" not in {e.name for e in entries}
    assert all("s3cr3t" not in e.text for e in entries)


# -- the broker's conversion to storage's LogConfig ------------------------------------------------

def test_log_config_from_topic_config():
    settings = topic_config(image_with({"cleanup.policy": "compact,delete", "retention.bytes": "100",
                                        "flush.ms": "50"}, {"log.segment.bytes": "4096"}), static(), TOPIC)
    cfg = log_config(settings)
    assert cfg == LogConfig(segment_bytes=4096, segment_ms=settings.segment_ms, retention_ms=settings.retention_ms,
                            retention_bytes=100, cleanup_policy="compact,delete",
                            delete_retention_ms=settings.delete_retention_ms,
                            max_message_bytes=settings.max_message_bytes, flush_messages=settings.flush_messages,
                            flush_ms=50, message_timestamp_type="CreateTime")


def test_log_config_flush_ms_minus_one_means_never():
    assert log_config(topic_config(image_with(), static(), TOPIC)).flush_ms == (1 << 63) - 1


def test_topic_configs_cache_follows_the_image():
    configs = TopicConfigs(static())
    first = image_with({"min.insync.replicas": "2"})
    assert configs.topic_value(first, TOPIC, "min.insync.replicas") == "2"
    assert configs.get(first, TOPIC) is configs.get(first, TOPIC)
    second = replay_all(first, [ConfigRecord(RESOURCE_TOPIC, TOPIC, "min.insync.replicas", "3")])
    assert configs.topic_value(second, TOPIC, "min.insync.replicas") == "3"
    assert isinstance(configs.get(second, TOPIC), TopicConfig)
