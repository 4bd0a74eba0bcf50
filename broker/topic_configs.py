"""The broker's view of topic settings: `cluster.effective_config` per image, and storage's `LogConfig`.

`TopicConfigs` remembers the effective config of each topic for the newest image it was asked about
(images are immutable, so the answer cannot go stale); a new image starts an empty cache. The produce
path asks for min.insync.replicas on every acks=all request, so this matters.
"""

from __future__ import annotations

import dataclasses

from cluster.config import Config
from cluster.effective_config import TopicConfig, topic_config
from cluster.image import MetadataImage
from cluster.limits import LONG_MAX
from storage.log import LogConfig

# Kafka's topic default for flush.ms is Long.MAX ("never"); Brook writes it as -1.


def log_config(topic: TopicConfig) -> LogConfig:
    """The storage settings of one topic. Raises ValueError if storage refuses them."""
    return LogConfig(
        segment_bytes=topic.segment_bytes, segment_ms=topic.segment_ms,
        retention_ms=topic.retention_ms, retention_bytes=topic.retention_bytes,
        cleanup_policy=",".join(topic.cleanup_policy), delete_retention_ms=topic.delete_retention_ms,
        max_message_bytes=topic.max_message_bytes, flush_messages=topic.flush_messages,
        flush_ms=topic.flush_ms if topic.flush_ms >= 0 else LONG_MAX,
        message_timestamp_type=topic.message_timestamp_type)


class TopicConfigs:
    """Effective topic configs for one broker, cached per image."""

    def __init__(self, static: Config) -> None:
        self.static = static
        self._image: MetadataImage | None = None
        self._cache: dict[str, TopicConfig] = {}

    def get(self, image: MetadataImage, topic: str) -> TopicConfig:
        if image is not self._image:
            self._image, self._cache = image, {}
        found = self._cache.get(topic)
        if found is None:
            found = self._cache[topic] = topic_config(image, self.static, topic)
        return found

    def log_config_for(self, image: MetadataImage, topic: str) -> LogConfig:
        return dataclasses.replace(log_config(self.get(image, topic)),
                                   dedupe_bytes_max=max(1, self.static.getint("log.cleaner.dedupe.buffer.size")))

    def topic_value(self, image: MetadataImage, topic: str, key: str) -> str:
        """One topic key as text (the ReplicaManager's callback signature)."""
        return self.get(image, topic).text(key)
