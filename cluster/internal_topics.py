"""Internal topics: the topics the cluster itself writes (pure, shared by every role).

Clients may read them (consumer-group tools do), but may not produce to them, delete them, or give
them configs that break what the cluster stores in them:

  - Produce from a client (Kafka listener or gRPC BrokerService) -> INVALID_TOPIC_EXCEPTION, as Kafka
    answers a client append to an internal topic; the group coordinator appends through the core.
  - DeleteTopics -> INVALID_TOPIC_EXCEPTION (Kafka's tools refuse it client-side; Brook refuses it in
    the controller, so every path is covered).
  - Configs: `cleanup.policy` stays `compact` (with `delete` committed offsets would expire),
    `unclean.leader.election.enable` stays off (an unclean leader loses commits), and
    `max.message.bytes` stays at least Kafka's default (the coordinator's appends assume it).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["INTERNAL_TOPICS", "OFFSETS_TOPIC", "is_internal", "unsafe_internal_config"]

OFFSETS_TOPIC = "__consumer_offsets"
INTERNAL_TOPICS = frozenset({OFFSETS_TOPIC, "__transaction_state"})
# Kafka's default max.message.bytes: the coordinator keeps each append under it.
_MESSAGE_BYTES_MIN = 1_048_588


def is_internal(topic: str) -> bool:
    return topic in INTERNAL_TOPICS


def unsafe_internal_config(topic: str, explicit: Mapping[str, str]) -> str | None:
    """Why the explicit (normalized) configs `explicit` are unsafe for internal `topic`, or None."""
    if not is_internal(topic):
        return None
    policy = explicit.get("cleanup.policy")
    if policy != "compact":
        return (f"internal topic {topic} must keep cleanup.policy=compact "
                f"(got {policy or 'the default'}): other policies expire what the cluster stores there")
    if explicit.get("unclean.leader.election.enable", "false").lower() == "true":
        return f"internal topic {topic} may not enable unclean.leader.election.enable: an unclean leader loses commits"
    size = explicit.get("max.message.bytes")
    if size is not None:
        try:
            too_small = int(size) < _MESSAGE_BYTES_MIN
        except ValueError:
            too_small = True
        if too_small:
            return f"internal topic {topic} needs max.message.bytes >= {_MESSAGE_BYTES_MIN} (got {size})"
    return None
