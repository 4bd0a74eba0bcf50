"""Which `__consumer_offsets` partition coordinates a group: Kafka's placement, bit for bit.

The coordinator of group G is the leader of partition
`Utils.abs(G.hashCode()) % partitions(__consumer_offsets)`, with Java's `String.hashCode`, so a
group lands on the same partition number as in Kafka. Pure.
"""

from __future__ import annotations

__all__ = ["java_string_hashcode", "partition_for"]


def java_string_hashcode(text: str) -> int:
    """Java's `String.hashCode()` (over UTF-16 code units, int32 wrap-around)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_for(group_id: str, partition_count: int) -> int:
    """Kafka `Utils.abs(groupId.hashCode()) % partitionCount` (`Utils.abs(MIN_VALUE)` is 0)."""
    h = java_string_hashcode(group_id)
    return (0 if h == -(2**31) else abs(h)) % partition_count
